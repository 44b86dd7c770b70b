//! Namespace planning: which namespaces the single `clone` creates, which are joined by path, and which the
//! child unshares itself (the cgroup namespace always, after the parent put it in its cgroup).

use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Errors of namespace handling.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("cannot open namespace {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot join namespace {path}: {source}")]
    Join { path: PathBuf, source: nix::Error },
    #[error("duplicate namespace type {0} in config.json")]
    Duplicate(String),
}

/// `/proc/<pid>/ns/` name of a namespace type.
pub(crate) fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

pub(crate) fn flag(t: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(t as libc::c_int)
}

/// How the namespaces of a container come to be.
#[derive(Debug, Clone)]
pub(crate) struct NsPlan {
    /// Created by the `clone` itself.
    pub clone_flags: CloneFlags,
    /// Joined by the child, user namespace first.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// Created by the child with `unshare` after joining (when something is joined the new namespaces must be
    /// created after, so they are owned by the joined user namespace).
    pub unshare: CloneFlags,
    /// The pid namespace to join, by the parent, before the clone.
    pub pid_path: Option<PathBuf>,
    /// The child unshares a cgroup namespace once it is in its cgroup.
    pub new_cgroup: bool,
    /// A new user namespace is created (the parent writes id maps).
    pub new_user: bool,
    /// A user namespace is in effect (new or joined): devices are bind-mounted.
    pub any_user: bool,
    pub new_pid: bool,
    pub new_uts: bool,
    pub new_net: bool,
}

impl NsPlan {
    pub(crate) fn new(namespaces: &[LinuxNamespace]) -> Result<NsPlan, NsError> {
        let mut plan = NsPlan {
            clone_flags: CloneFlags::empty(),
            join: Vec::new(),
            unshare: CloneFlags::empty(),
            pid_path: None,
            new_cgroup: false,
            new_user: false,
            any_user: false,
            new_pid: false,
            new_uts: false,
            new_net: false,
        };
        let mut seen = Vec::new();
        let mut new = CloneFlags::empty();
        for ns in namespaces {
            let t = ns.typ();
            if seen.contains(&t) {
                return Err(NsError::Duplicate(proc_name(t).to_string()));
            }
            seen.push(t);
            match (t, ns.path()) {
                (LinuxNamespaceType::Pid, Some(p)) => plan.pid_path = Some(p.clone()),
                (LinuxNamespaceType::Cgroup, None) => plan.new_cgroup = true,
                (_, Some(p)) => plan.join.push((t, p.clone())),
                (_, None) => new |= flag(t),
            }
            if t == LinuxNamespaceType::User {
                plan.any_user = true;
                plan.new_user = ns.path().is_none();
            }
        }
        // Join order: user first (it grants the capabilities for the others), mount last.
        plan.join.sort_by_key(|(t, _)| match t {
            LinuxNamespaceType::User => 0,
            LinuxNamespaceType::Mount => 2,
            _ => 1,
        });
        plan.new_pid = new.contains(CloneFlags::CLONE_NEWPID);
        plan.new_uts = new.contains(CloneFlags::CLONE_NEWUTS);
        plan.new_net = new.contains(CloneFlags::CLONE_NEWNET);
        // CLONE_NEWTIME cannot be passed to clone(2) (its value collides with CSIGNAL): always unshare it.
        let time = flag(LinuxNamespaceType::Time);
        if plan.join.is_empty() {
            plan.clone_flags = new - time;
            plan.unshare = new & time;
        } else {
            plan.clone_flags = new & CloneFlags::CLONE_NEWPID;
            plan.unshare = new - CloneFlags::CLONE_NEWPID;
        }
        Ok(plan)
    }
}

/// Opens a namespace file.
pub(crate) fn open_ns(path: &Path) -> Result<OwnedFd, NsError> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| NsError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// Joins the namespace at `path`.
pub(crate) fn join(path: &Path, t: Option<LinuxNamespaceType>) -> Result<(), NsError> {
    let fd = open_ns(path)?;
    setns(fd.as_fd(), t.map(flag).unwrap_or(CloneFlags::empty())).map_err(|source| NsError::Join {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether `/proc/<pid>/ns/<name>` differs from ours (joining our own user namespace is an error).
pub(crate) fn differs(pid: i32, name: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
    let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
    match (theirs, ours) {
        (Ok(a), Ok(b)) => a.ino() != b.ino() || a.dev() != b.dev(),
        _ => false,
    }
}

/// `clone(2)` used like `fork(2)` (child continues on a copy of our stack) with extra namespace flags.
/// Returns 0 in the child.
///
/// # Safety
/// Same rules as `fork`: the caller must be single-threaded, and the child must only run code that is safe
/// after fork (which holds for a single-threaded process).
pub(crate) unsafe fn clone_fork(flags: CloneFlags) -> nix::Result<i32> {
    // SAFETY: a NULL stack makes clone behave as fork (child uses a copy-on-write copy of our stack); the caller
    // guarantees we are single-threaded.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        Err(nix::Error::last())
    } else {
        Ok(r as i32)
    }
}
