//! cgroup v2 (unified) files. Used for every controller on a pure v2 host, and on a hybrid host
//! for the controllers that are only available in the unified tree.

use crate::fsutil::{self, FsError};
use crate::resources::{
    blkio_weight_to_io_weight, cpu_max, hugepage_size, limit_str, memory_swap_to_v2,
    shares_to_weight, ResourceError,
};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// v2 failures.
#[derive(Debug, thiserror::Error)]
pub enum V2Error {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error("{} is not under {}", dir.display(), mount.display())]
    NotUnderMount { dir: PathBuf, mount: PathBuf },
    #[error("timed out waiting for {} to report frozen {want}", dir.display())]
    FreezeTimeout { dir: PathBuf, want: u8 },
    #[error("unified resource {key}={value:?} cannot be set: {} does not exist (is its controller enabled?)", path.display())]
    UnifiedMissing {
        key: String,
        value: String,
        path: PathBuf,
    },
}

/// The controllers enabled for the cgroup at `dir` (its `cgroup.controllers`).
pub fn controllers(dir: &Path) -> Result<Vec<String>, V2Error> {
    Ok(fsutil::read_opt(dir, "cgroup.controllers")?
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect())
}

/// Creates `dir` below `mount`, enabling in every ancestor's `cgroup.subtree_control` the
/// controllers it offers, so they reach the new cgroup. Each controller is enabled separately and
/// failures are ignored: an ancestor with processes of its own (no-internal-process rule) or a
/// threaded subtree refuses some, and the cgroup then simply lacks that controller.
pub fn create(mount: &Path, dir: &Path) -> Result<(), V2Error> {
    let rel = dir
        .strip_prefix(mount)
        .map_err(|_| V2Error::NotUnderMount {
            dir: dir.into(),
            mount: mount.into(),
        })?;
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        let enabled = fsutil::read_opt(&cur, "cgroup.subtree_control")?.unwrap_or_default();
        for c in controllers(&cur)? {
            if !enabled.split_whitespace().any(|e| e == c) {
                let _ = fsutil::write(&cur, "cgroup.subtree_control", &format!("+{c}"));
            }
        }
        cur.push(comp);
        fsutil::mkdir_all(&cur)?;
    }
    Ok(())
}

/// memory.max, memory.low, memory.swap.max. Swap is written first: runc does, because lowering
/// memory.max with a large swap pushes pages out.
pub fn apply_memory(dir: &Path, m: &LinuxMemory) -> Result<(), V2Error> {
    if let Some(swap) = memory_swap_to_v2(m.swap(), m.limit())? {
        // Hosts without swap accounting have no memory.swap.max.
        if dir.join("memory.swap.max").exists() {
            fsutil::write(dir, "memory.swap.max", &limit_str(swap, true))?;
        }
    }
    if let Some(l) = m.limit().filter(|&l| l != 0) {
        fsutil::write(dir, "memory.max", &limit_str(l, true))?;
    }
    if let Some(r) = m.reservation().filter(|&r| r != 0) {
        fsutil::write(dir, "memory.low", &limit_str(r, true))?;
    }
    // swappiness, kernel, kernel_tcp and disable_oom_killer have no v2 equivalent (runc ignores
    // them too).
    Ok(())
}

/// cpu.weight, cpu.max, cpu.max.burst, cpu.idle.
pub fn apply_cpu(dir: &Path, c: &LinuxCpu) -> Result<(), V2Error> {
    if let Some(s) = c.shares().filter(|&s| s != 0) {
        fsutil::write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    if let Some(v) = cpu_max(c.quota(), c.period()) {
        fsutil::write(dir, "cpu.max", &v)?;
    }
    if let Some(b) = c.burst() {
        fsutil::write_if_exists(dir, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        fsutil::write_if_exists(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

/// cpuset.cpus / cpuset.mems (v2 cpusets inherit the parent's effective set when empty, so no
/// initialisation is needed).
pub fn apply_cpuset(dir: &Path, c: &LinuxCpu) -> Result<(), V2Error> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        fsutil::write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        fsutil::write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// pids.max.
pub fn apply_pids(dir: &Path, limit: i64) -> Result<(), V2Error> {
    // 0 means unset in the spec (runc), negative means unlimited.
    if limit != 0 {
        fsutil::write(dir, "pids.max", &limit_str(limit, true))?;
    }
    Ok(())
}

/// io.weight / io.bfq.weight and io.max. BFQ takes the blkio weight as is; io.weight uses the
/// 1..10000 range.
pub fn apply_io(dir: &Path, b: &LinuxBlockIo) -> Result<(), V2Error> {
    let bfq = dir.join("io.bfq.weight").exists();
    let weight = |w: u16| {
        if bfq {
            u64::from(w)
        } else {
            blkio_weight_to_io_weight(w)
        }
    };
    let file = if bfq { "io.bfq.weight" } else { "io.weight" };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        fsutil::write(dir, file, &weight(w).to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            fsutil::write(
                dir,
                file,
                &format!("{}:{} {}", wd.major(), wd.minor(), weight(w)),
            )?;
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for t in list.iter().flatten() {
            let rate = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            fsutil::write(
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", t.major(), t.minor()),
            )?;
        }
    }
    Ok(())
}

/// hugetlb.<size>.max.
pub fn apply_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), V2Error> {
    for l in limits {
        let size = hugepage_size(l.page_size())?;
        fsutil::write(
            dir,
            &format!("hugetlb.{size}.max"),
            &limit_str(l.limit(), true),
        )?;
    }
    Ok(())
}

/// `linux.resources.unified`: raw `file=value` writes, applied last so they override the
/// converted values (runc's order). Keys must be plain file names.
pub fn apply_unified(dir: &Path, unified: &HashMap<String, String>) -> Result<(), V2Error> {
    let mut keys: Vec<_> = unified.keys().collect();
    keys.sort();
    for key in keys {
        let value = &unified[key];
        if key.is_empty() || key.contains('/') || key == "." || key == ".." || !key.contains('.') {
            return Err(ResourceError::UnifiedKey(key.clone()).into());
        }
        let path = dir.join(key);
        if !path.exists() {
            return Err(V2Error::UnifiedMissing {
                key: key.clone(),
                value: value.clone(),
                path,
            });
        }
        fsutil::write(dir, key, value)?;
    }
    Ok(())
}

/// Writes cgroup.freeze and waits until cgroup.events says `frozen <want>`.
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<(), V2Error> {
    let want = u8::from(frozen);
    fsutil::write(dir, "cgroup.freeze", &want.to_string())?;
    let start = Instant::now();
    let mut delay = Duration::from_micros(100);
    loop {
        if frozen_state(dir)? == frozen {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(V2Error::FreezeTimeout {
                dir: dir.into(),
                want,
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// `frozen` from cgroup.events.
pub fn frozen_state(dir: &Path) -> Result<bool, V2Error> {
    let ev = fsutil::read(dir, "cgroup.events")?;
    Ok(fsutil::flat_get(&ev, "frozen") == Some(1))
}

/// Writes cgroup.kill when the kernel has it (5.14+); `false` when it does not.
pub fn kill(dir: &Path) -> Result<bool, V2Error> {
    Ok(fsutil::write_if_exists(dir, "cgroup.kill", "1")?)
}

/// oom_kill from memory.events (0 when the memory controller is not enabled).
pub fn oom_kills(dir: &Path) -> Result<u64, V2Error> {
    Ok(fsutil::read_opt(dir, "memory.events")?
        .and_then(|s| fsutil::flat_get(&s, "oom_kill"))
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    //! The v2 file-writing logic against a plain directory standing in for a cgroup2 dir (this
    //! hybrid host cannot mount a v2 hierarchy with controllers while v1 uses them).
    use crate::{Cgroup, Hierarchy, Layout, Version};
    use oci_spec::runtime::*;
    use std::collections::HashMap;
    use std::path::Path;

    const FILES: &[&str] = &[
        "memory.max",
        "memory.low",
        "memory.swap.max",
        "cpu.weight",
        "cpu.max",
        "cpu.max.burst",
        "cpu.idle",
        "cpuset.cpus",
        "cpuset.mems",
        "pids.max",
        "io.weight",
        "io.max",
        "hugetlb.2MB.max",
        "memory.high",
        "cgroup.procs",
    ];

    fn fake(controllers: &str) -> (tempfile::TempDir, Cgroup) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("berth/x");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
        for f in FILES {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let h = Hierarchy {
            version: Version::V2,
            controllers: controllers.split_whitespace().map(String::from).collect(),
            mount_point: t.path().to_path_buf(),
            cgroup_path: "/berth/x".into(),
            dir,
        };
        (t, Cgroup::from_hierarchies(Layout::V2, "/berth/x", vec![h]))
    }

    fn get(cg: &Cgroup, f: &str) -> String {
        std::fs::read_to_string(cg.unified_dir().unwrap().join(f)).unwrap()
    }

    fn resources() -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(100i64 << 20)
                    .swap(300i64 << 20)
                    .reservation(50i64 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(20_000i64)
                    .period(100_000u64)
                    .cpus("0-1")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight(500u16)
                    .build()
                    .unwrap(),
            )
            .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                .page_size("2MB")
                .limit(2i64 << 20)
                .build()
                .unwrap()])
            .unified(HashMap::from([(
                "memory.high".to_string(),
                "90000000".to_string(),
            )]))
            .build()
            .unwrap()
    }

    #[test]
    fn writes_converted_values() {
        let (_t, cg) = fake("cpuset cpu io memory hugetlb pids");
        cg.apply(&resources()).unwrap();
        assert_eq!(get(&cg, "memory.max"), (100u64 << 20).to_string());
        assert_eq!(get(&cg, "memory.swap.max"), (200u64 << 20).to_string());
        assert_eq!(get(&cg, "memory.low"), (50u64 << 20).to_string());
        assert_eq!(get(&cg, "cpu.weight"), "100");
        assert_eq!(get(&cg, "cpu.max"), "20000 100000");
        assert_eq!(get(&cg, "cpuset.cpus"), "0-1");
        assert_eq!(get(&cg, "pids.max"), "max");
        assert_eq!(
            get(&cg, "io.weight"),
            crate::blkio_weight_to_io_weight(500).to_string()
        );
        assert_eq!(get(&cg, "hugetlb.2MB.max"), (2u64 << 20).to_string());
        assert_eq!(get(&cg, "memory.high"), "90000000");
    }

    #[test]
    fn absent_controllers_are_skipped() {
        let (_t, cg) = fake("cpu");
        let mut r = resources();
        r.set_unified(None);
        cg.apply(&r).unwrap();
        assert_eq!(get(&cg, "memory.max"), "");
        assert_eq!(get(&cg, "pids.max"), "");
        assert_eq!(get(&cg, "cpu.max"), "20000 100000");
    }

    #[test]
    fn bad_values_are_rejected_with_names() {
        let (_t, cg) = fake("memory");
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(100i64)
                    .swap(50i64)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert!(cg
            .apply(&r)
            .unwrap_err()
            .to_string()
            .contains("memory+swap"));
        let r = LinuxResourcesBuilder::default()
            .unified(HashMap::from([(
                "../../etc/passwd".to_string(),
                "x".to_string(),
            )]))
            .build()
            .unwrap();
        assert!(cg.apply(&r).is_err());
        let r = LinuxResourcesBuilder::default()
            .unified(HashMap::from([(
                "memory.nonexistent".to_string(),
                "1".to_string(),
            )]))
            .build()
            .unwrap();
        let e = cg.apply(&r).unwrap_err().to_string();
        assert!(e.contains("memory.nonexistent"), "{e}");
    }

    #[test]
    fn create_enables_controllers_in_ancestors() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cgroup.controllers"), "memory").unwrap();
        std::fs::write(t.path().join("cgroup.subtree_control"), "").unwrap();
        let dir = t.path().join("a/b");
        super::create(t.path(), &dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(
            std::fs::read_to_string(t.path().join("cgroup.subtree_control")).unwrap(),
            "+memory"
        );
        assert!(super::create(Path::new("/elsewhere"), &dir).is_err());
    }
}
