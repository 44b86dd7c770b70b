//! berth-cgroups: cgroup v1, v2 and hybrid managers.
//!
//! A [`Cgroup`] is resolved once (from `linux.cgroupsPath` and the mount table) into a list of
//! [`Hierarchy`] directories, one per mounted hierarchy (every v1 controller mount, `name=systemd`,
//! and the unified v2 tree). That resolved form is what the runtime stores in its `state.json`, so
//! later commands (`kill`, `delete`, `pause`) act on the same directories even if the caller's own
//! cgroup changed in between.
//!
//! On a hybrid host each resource is routed to the hierarchy that owns its controller: v1 files
//! when the controller is mounted as v1, v2 files in the unified tree when the controller is only
//! available there (e.g. `hugetlb` on hosts that do not mount it as v1).

mod devices;
mod fsutil;
mod hybrid;
mod mountinfo;
mod paths;
mod resources;
mod stats;
mod v1;
mod v2;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use devices::{attached_count as bpf_device_programs, DeviceError};
pub use fsutil::FsError;
pub use mountinfo::{parse_mountinfo, parse_proc_cgroup, MountEntry, MountInfoError, ProcCgroup};
pub use paths::{resolve_cgroups_path, systemd_to_path, PathError};
pub use resources::{
    blkio_weight_to_io_weight, memory_swap_to_v2, shares_to_weight, ResourceError,
};
pub use stats::{BlkioEntry, BlkioStats, CpuStats, MemoryStats, PidsStats, Stats, StatsError};
pub use v1::V1Error;
pub use v2::V2Error;

/// Where the cgroup filesystems of this host are mounted, as in runc's `cgroups.IsCgroup2*`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies (no unified tree, or none we can use).
    V1,
    /// v1 controllers plus a unified v2 tree at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// `/sys/fs/cgroup` is a cgroup2 filesystem.
    V2,
}

/// Which kind of hierarchy a [`Hierarchy`] is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One hierarchy's directory for this cgroup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1 or the unified v2 tree.
    pub version: Version,
    /// v1: the controllers of this mount (`["cpu", "cpuacct"]`, `["name=systemd"]`);
    /// v2: the controllers the root of the tree offers (`cgroup.controllers`).
    pub controllers: Vec<String>,
    /// Where the hierarchy is mounted, e.g. `/sys/fs/cgroup/cpu,cpuacct`.
    pub mount_point: PathBuf,
    /// The cgroup path inside the hierarchy, e.g. `/berth/<id>`.
    pub cgroup_path: String,
    /// The directory of this cgroup: `mount_point` joined with `cgroup_path` (minus the mount root).
    pub dir: PathBuf,
}

impl Hierarchy {
    /// The basename of the mount point (`cpu,cpuacct`, `systemd`, `unified`, or `cgroup` for a
    /// pure v2 host): the name the runtime gives the bind mount under the container's
    /// `/sys/fs/cgroup`.
    pub fn mount_name(&self) -> String {
        self.mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Whether this hierarchy carries `controller` (v1: mounted with it; v2: offered by the root).
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// Errors of the public API.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Not returned by [`Cgroup::new`] today (systemd-style paths are mapped to cgroupfs paths);
    /// kept so callers can match on it if a systemd driver ever refuses a path.
    #[error("systemd cgroup path {0:?} is not supported: berth manages cgroupfs directly (use a path like /berth/<id>)")]
    SystemdNotSupported(String),
    #[error("invalid signal number {0}")]
    InvalidSignal(i32),
    #[error("no cgroup hierarchies are mounted (looked in /proc/self/mountinfo)")]
    NoHierarchies,
    #[error("cgroup controller {0} is not available on this host")]
    ControllerUnavailable(String),
    #[error("timed out after {secs}s waiting for {what} in {dir}")]
    Timeout {
        what: String,
        dir: PathBuf,
        secs: u64,
    },
    #[error("cannot signal pid {pid}: {source}")]
    Signal { pid: i32, source: nix::Error },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    MountInfo(#[from] MountInfoError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error(transparent)]
    V1(#[from] V1Error),
    #[error(transparent)]
    V2(#[from] V2Error),
    #[error(transparent)]
    Devices(#[from] DeviceError),
    #[error(transparent)]
    Stats(#[from] StatsError),
}

/// Result alias of this crate.
pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

/// Detects the cgroup layout of this host the way runc does: `statfs(/sys/fs/cgroup)` is cgroup2
/// means pure v2; otherwise a cgroup2 `/sys/fs/cgroup/unified` means hybrid; otherwise v1.
pub fn detect() -> Result<Layout> {
    hybrid::detect()
}

/// A container's cgroup, resolved to one directory per hierarchy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    /// The layout this cgroup was resolved for.
    pub layout: Layout,
    /// The cgroups path as given (after the empty and systemd-style forms were mapped).
    pub path: String,
    /// One entry per hierarchy.
    pub hierarchies: Vec<Hierarchy>,
}

impl Cgroup {
    /// Resolves `cgroups_path` against the mount table and this process's own cgroups.
    /// `""` becomes `/berth/<container_id>`; an absolute path is relative to each hierarchy's
    /// root; a relative path is relative to this process's cgroup (runc's rule);
    /// `slice:prefix:name` (systemd driver syntax) is mapped to the cgroupfs path systemd would use
    /// (`/system.slice/prefix-name.scope`).
    pub fn new(cgroups_path: &str, container_id: &str) -> Result<Cgroup, CgroupError> {
        hybrid::new(cgroups_path, container_id)
    }

    /// Builds a cgroup from explicit hierarchies (tests, or callers that resolved paths themselves).
    pub fn from_hierarchies(layout: Layout, path: &str, hierarchies: Vec<Hierarchy>) -> Cgroup {
        Cgroup {
            layout,
            path: path.to_string(),
            hierarchies,
        }
    }

    /// Creates the directory in every hierarchy (idempotent). On v1 the cpuset of every new level
    /// is initialised from its parent; on v2 the available controllers are enabled in the
    /// ancestors' `cgroup.subtree_control`.
    pub fn create(&self) -> Result<()> {
        hybrid::create(self)
    }

    /// Applies `linux.resources`.
    pub fn apply(&self, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
        hybrid::apply(self, r)
    }

    /// Moves `pid` into this cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        hybrid::add_process(self, pid)
    }

    /// The pids in this cgroup and its descendants.
    pub fn pids(&self) -> Result<Vec<i32>> {
        hybrid::pids(self)
    }

    /// Freezes every process and waits until the kernel reports the cgroup frozen.
    pub fn freeze(&self) -> Result<()> {
        hybrid::freeze(self, true)
    }

    /// Thaws the cgroup and waits until the kernel reports it thawed.
    pub fn thaw(&self) -> Result<()> {
        hybrid::freeze(self, false)
    }

    /// Whether the cgroup is frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        hybrid::is_frozen(self)
    }

    /// Sends `signal` to every process. SIGKILL uses `cgroup.kill` when the kernel has it;
    /// otherwise the cgroup is frozen, each pid is signalled, and the cgroup is thawed, so no
    /// process can fork away in between.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        hybrid::kill_all(self, signal)
    }

    /// Resource usage.
    pub fn stats(&self) -> Result<Stats> {
        hybrid::stats(self)
    }

    /// Whether the kernel OOM-killed a process in this cgroup.
    pub fn oom_killed(&self) -> Result<bool> {
        hybrid::oom_killed(self)
    }

    /// Removes the directory in every hierarchy (and any sub-cgroups the container created).
    /// Missing directories are fine; EBUSY is retried briefly while exiting processes leave.
    /// Does not kill anything.
    pub fn destroy(&self) -> Result<()> {
        hybrid::destroy(self)
    }

    /// The per-hierarchy directories.
    pub fn paths(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// The v1 directory carrying `controller`, if any.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.version == Version::V1 && h.has(controller))
            .map(|h| h.dir.as_path())
    }

    /// The unified (v2) directory, if any.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.version == Version::V2)
            .map(|h| h.dir.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_json_round_trip() {
        let cg = Cgroup::from_hierarchies(
            Layout::Hybrid,
            "/berth/x",
            vec![Hierarchy {
                version: Version::V1,
                controllers: vec!["cpu".into(), "cpuacct".into()],
                mount_point: "/sys/fs/cgroup/cpu,cpuacct".into(),
                cgroup_path: "/berth/x".into(),
                dir: "/sys/fs/cgroup/cpu,cpuacct/berth/x".into(),
            }],
        );
        let back: Cgroup = serde_json::from_str(&serde_json::to_string(&cg).unwrap()).unwrap();
        assert_eq!(back, cg);
        assert_eq!(
            back.v1_dir("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/x"))
        );
        assert_eq!(back.paths()[0].mount_name(), "cpu,cpuacct");
        assert!(back.unified_dir().is_none());
    }
}
