//! The glue: resolves a [`Cgroup`] against the mounted hierarchies and routes each operation to
//! the v1 or v2 implementation that owns the controller.

use crate::fsutil::{self, FsError};
use crate::mountinfo::{self, Mounted};
use crate::paths::{dir_in_mount, in_hierarchy, resolve_cgroups_path};
use crate::stats::{self, Stats};
use crate::{devices, v1, v2, Cgroup, CgroupError, Hierarchy, Layout, Result, Version};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn is_cgroup2(path: &str) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

pub fn detect() -> Result<Layout> {
    if is_cgroup2("/sys/fs/cgroup") {
        return Ok(Layout::V2);
    }
    if is_cgroup2("/sys/fs/cgroup/unified") {
        return Ok(Layout::Hybrid);
    }
    let mounts = mountinfo::self_mounts()?;
    let hs = mountinfo::find_hierarchies(&mounts);
    if hs.iter().any(|h| !h.v2) {
        Ok(Layout::V1)
    } else if hs.iter().any(|h| h.v2) {
        Ok(Layout::V2)
    } else {
        Err(CgroupError::NoHierarchies)
    }
}

pub fn new(cgroups_path: &str, container_id: &str) -> Result<Cgroup> {
    let layout = detect()?;
    let path = resolve_cgroups_path(cgroups_path, container_id)?;
    let mounts = mountinfo::self_mounts()?;
    let own = mountinfo::self_cgroups()?;
    let mut found = mountinfo::find_hierarchies(&mounts);
    match layout {
        // Only the unified tree matters; stray v1 mounts (e.g. name=systemd for old tools) are
        // not ours to manage on a v2 host.
        Layout::V2 => found.retain(|h| h.v2),
        Layout::V1 => found.retain(|h| !h.v2),
        Layout::Hybrid => {}
    }
    if found.is_empty() {
        return Err(CgroupError::NoHierarchies);
    }
    let hierarchies = found
        .iter()
        .map(|m| resolve_one(m, &own, &path))
        .collect::<Result<Vec<_>>>()?;
    Ok(Cgroup {
        layout,
        path,
        hierarchies,
    })
}

fn resolve_one(m: &Mounted, own: &[mountinfo::ProcCgroup], path: &str) -> Result<Hierarchy> {
    let own_path = mountinfo::own_path(own, m).unwrap_or("/");
    let cgroup_path = in_hierarchy(path, own_path);
    let controllers = if m.v2 {
        v2::controllers(&m.mount_point)?
    } else {
        m.controllers.clone()
    };
    Ok(Hierarchy {
        version: if m.v2 { Version::V2 } else { Version::V1 },
        controllers,
        dir: dir_in_mount(&m.mount_point, &m.root, &cgroup_path),
        mount_point: m.mount_point.clone(),
        cgroup_path,
    })
}

/// Where a controller's files are for this cgroup.
enum Route<'a> {
    V1(&'a Path),
    V2(&'a Path),
    Absent,
}

fn route<'a>(cg: &'a Cgroup, controller: &str) -> Result<Route<'a>> {
    if let Some(d) = cg.v1_dir(controller) {
        return Ok(Route::V1(d));
    }
    if let Some(d) = cg.unified_dir() {
        // The cgroup's own cgroup.controllers says what reached it through the ancestors'
        // subtree_control; absent controllers are skipped rather than failing the container.
        if v2::controllers(d)?.iter().any(|c| c == controller) {
            return Ok(Route::V2(d));
        }
    }
    Ok(Route::Absent)
}

pub fn create(cg: &Cgroup) -> Result<()> {
    for h in &cg.hierarchies {
        match h.version {
            Version::V1 if h.has("cpuset") => v1::create_cpuset(&h.mount_point, &h.dir)?,
            Version::V1 => fsutil::mkdir_all(&h.dir)?,
            Version::V2 => v2::create(&h.mount_point, &h.dir)?,
        }
    }
    Ok(())
}

pub fn apply(cg: &Cgroup, r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        match route(cg, "memory")? {
            Route::V1(d) => v1::apply_memory(d, m)?,
            Route::V2(d) => v2::apply_memory(d, m)?,
            Route::Absent => {}
        }
    }
    if let Some(c) = r.cpu() {
        match route(cg, "cpu")? {
            Route::V1(d) => v1::apply_cpu(d, c)?,
            Route::V2(d) => v2::apply_cpu(d, c)?,
            Route::Absent => {}
        }
        match route(cg, "cpuset")? {
            Route::V1(d) => v1::apply_cpuset(d, c)?,
            Route::V2(d) => v2::apply_cpuset(d, c)?,
            Route::Absent => {}
        }
    }
    if let Some(p) = r.pids() {
        match route(cg, "pids")? {
            // Same file and syntax on v1 and v2.
            Route::V1(d) | Route::V2(d) => v2::apply_pids(d, p.limit())?,
            Route::Absent => {}
        }
    }
    if let Some(b) = r.block_io() {
        match route(cg, "blkio")? {
            Route::V1(d) => v1::apply_blkio(d, b)?,
            _ => {
                if let Route::V2(d) = route(cg, "io")? {
                    v2::apply_io(d, b)?;
                }
            }
        }
    }
    if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
        match route(cg, "hugetlb")? {
            Route::V1(d) => v1::apply_hugetlb(d, h)?,
            Route::V2(d) => v2::apply_hugetlb(d, h)?,
            Route::Absent => {}
        }
    }
    if let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) {
        if let Some(d) = cg.v1_dir("devices") {
            v1::apply_devices(d, rules)?;
        } else if let Some(d) = cg.unified_dir() {
            // v2 device control is not a controller file but a BPF program on the cgroup.
            devices::apply_bpf(d, rules)?;
        }
    }
    if let Some(n) = r.network() {
        // v1 only: cgroup v2 has no network controllers (runc ignores these there too).
        if let Some(d) = cg.v1_dir("net_cls") {
            v1::apply_net_cls(d, n)?;
        }
        if let Some(d) = cg.v1_dir("net_prio") {
            v1::apply_net_prio(d, n)?;
        }
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        match cg.unified_dir() {
            Some(d) => v2::apply_unified(d, u)?,
            None => {
                return Err(CgroupError::ControllerUnavailable(
                    "unified (cgroup v2)".into(),
                ))
            }
        }
    }
    Ok(())
}

pub fn add_process(cg: &Cgroup, pid: i32) -> Result<()> {
    for h in &cg.hierarchies {
        fsutil::write(&h.dir, "cgroup.procs", &pid.to_string())?;
    }
    Ok(())
}

/// The directory whose cgroup.procs lists the container's processes best: pids or freezer (v1,
/// always mounted with processes), else the unified tree, else any.
fn procs_dir(cg: &Cgroup) -> Option<&Path> {
    cg.v1_dir("pids")
        .or_else(|| cg.v1_dir("freezer"))
        .or_else(|| cg.unified_dir())
        .or_else(|| cg.hierarchies.first().map(|h| h.dir.as_path()))
}

pub fn pids(cg: &Cgroup) -> Result<Vec<i32>> {
    let Some(dir) = procs_dir(cg) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    collect_pids(dir, &mut out)?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// cgroup.procs of `dir` and all sub-cgroups (a container may create its own).
fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    match fsutil::read_pids(dir, "cgroup.procs") {
        Ok(p) => out.extend(p),
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    for sub in subdirs(dir) {
        collect_pids(&sub, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

pub fn freeze(cg: &Cgroup, frozen: bool) -> Result<()> {
    if let Some(d) = cg.v1_dir("freezer") {
        v1::set_frozen(d, frozen)?;
    } else if let Some(d) = cg.unified_dir() {
        v2::set_frozen(d, frozen)?;
    } else {
        return Err(CgroupError::ControllerUnavailable("freezer".into()));
    }
    Ok(())
}

pub fn is_frozen(cg: &Cgroup) -> Result<bool> {
    if let Some(d) = cg.v1_dir("freezer") {
        Ok(v1::is_frozen(d)?)
    } else if let Some(d) = cg.unified_dir() {
        Ok(v2::frozen_state(d)?)
    } else {
        Err(CgroupError::ControllerUnavailable("freezer".into()))
    }
}

fn has_freezer(cg: &Cgroup) -> bool {
    cg.v1_dir("freezer").is_some()
        || cg
            .unified_dir()
            .is_some_and(|d| d.join("cgroup.freeze").exists())
}

pub fn kill_all(cg: &Cgroup, signal: i32) -> Result<()> {
    let sig = Signal::try_from(signal).map_err(|_| CgroupError::InvalidSignal(signal))?;
    let freezer = has_freezer(cg);
    let was_frozen = freezer && is_frozen(cg).unwrap_or(false);
    // cgroup.kill kills the whole subtree atomically, forks included. On a hybrid host the
    // processes are in the unified tree too (add_process joins every hierarchy).
    if sig == Signal::SIGKILL {
        if let Some(d) = cg.unified_dir() {
            if d.exists() && v2::kill(d)? {
                // A task frozen by the v1 freezer only dies once thawed (v2 frozen tasks die
                // right away); a killed container must not stay paused.
                if was_frozen {
                    freeze(cg, false)?;
                }
                // On a hybrid host, also signal what the v1 hierarchies list, in case a process
                // joined only those (e.g. via a tool that ignores the unified tree).
                if procs_dir(cg) != Some(d) {
                    signal_each(cg, sig)?;
                }
                return Ok(());
            }
        }
    }
    if freezer && !was_frozen {
        freeze(cg, true)?;
    }
    let res = signal_each(cg, sig);
    // Thaw even when signalling failed: a frozen container that cannot be thawed is worse. A
    // paused container stays paused for catchable signals (they are delivered on unpause), but
    // SIGKILL must take effect, so it is thawed then.
    let thaw = if freezer && (!was_frozen || sig == Signal::SIGKILL) {
        freeze(cg, false)
    } else {
        Ok(())
    };
    res.and(thaw)
}

fn signal_each(cg: &Cgroup, sig: Signal) -> Result<()> {
    for pid in pids(cg)? {
        match kill(Pid::from_raw(pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(source) => return Err(CgroupError::Signal { pid, source }),
        }
    }
    Ok(())
}

pub fn stats(cg: &Cgroup) -> Result<Stats> {
    let mut s = Stats::default();
    match route(cg, "memory")? {
        Route::V1(d) => s.memory = stats::memory_v1(d)?,
        Route::V2(d) => s.memory = stats::memory_v2(d)?,
        Route::Absent => {}
    }
    match (cg.v1_dir("cpuacct"), cg.v1_dir("cpu")) {
        (None, None) => {
            if let Some(d) = cg.unified_dir() {
                s.cpu = stats::cpu_v2(d)?;
            }
        }
        (acct, cpu) => s.cpu = stats::cpu_v1(acct, cpu)?,
    }
    match route(cg, "pids")? {
        Route::V1(d) | Route::V2(d) => s.pids = stats::pids(d)?,
        Route::Absent => {}
    }
    if let Some(d) = cg.v1_dir("blkio") {
        s.blkio = stats::blkio_v1(d)?;
    } else if let Route::V2(d) = route(cg, "io")? {
        s.blkio = stats::blkio_v2(d)?;
    }
    Ok(s)
}

pub fn oom_killed(cg: &Cgroup) -> Result<bool> {
    Ok(match route(cg, "memory")? {
        Route::V1(d) => v1::oom_kills(d)? > 0,
        Route::V2(d) => v2::oom_kills(d)? > 0,
        Route::Absent => false,
    })
}

pub fn destroy(cg: &Cgroup) -> Result<()> {
    let mut first_err = None;
    for h in &cg.hierarchies {
        if let Err(e) = remove_tree(&h.dir) {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// rmdir `dir` after its sub-cgroups (cgroupfs directories can only be removed empty of
/// children; their files go with them). EBUSY means tasks are still exiting: retry for a while.
fn remove_tree(dir: &Path) -> Result<(), FsError> {
    for sub in subdirs(dir) {
        remove_tree(&sub)?;
    }
    let start = Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && start.elapsed() < Duration::from_secs(5) =>
            {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(FsError::Rmdir {
                    path: dir.into(),
                    source,
                })
            }
        }
    }
}
