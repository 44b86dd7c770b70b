//! cgroup v1 files: one directory per controller mount.

use crate::fsutil::{self, FsError};
use crate::resources::{hugepage_size, limit_str, ResourceError};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxNetwork,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// v1 failures.
#[derive(Debug, thiserror::Error)]
pub enum V1Error {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error("{} is not under {}", dir.display(), mount.display())]
    NotUnderMount {
        dir: std::path::PathBuf,
        mount: std::path::PathBuf,
    },
    #[error("timed out waiting for {} to become {want} (last state {last:?})", dir.display())]
    FreezeTimeout {
        dir: std::path::PathBuf,
        want: &'static str,
        last: String,
    },
}

/// Creates `dir` level by level below `mount`, copying `cpuset.cpus`/`cpuset.mems` from the parent
/// into every level that has them empty: a new v1 cpuset starts empty and refuses tasks (ENOSPC)
/// until both are set.
pub fn create_cpuset(mount: &Path, dir: &Path) -> Result<(), V1Error> {
    let rel = dir
        .strip_prefix(mount)
        .map_err(|_| V1Error::NotUnderMount {
            dir: dir.into(),
            mount: mount.into(),
        })?;
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        fsutil::mkdir_all(&cur)?;
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if fsutil::read(&cur, f)?.trim().is_empty() {
                let v = fsutil::read(&parent, f)?;
                fsutil::write(&cur, f, v.trim())?;
            }
        }
    }
    Ok(())
}

/// memory.* limits. Order matters: memory.memsw.limit_in_bytes must stay >= the memory limit at
/// every step, so when the limit grows memsw is written first and when it shrinks, last.
pub fn apply_memory(dir: &Path, m: &LinuxMemory) -> Result<(), V1Error> {
    let limit = m.limit();
    let swap = m.swap();
    let has_memsw = dir.join("memory.memsw.limit_in_bytes").exists();
    match (limit, swap.filter(|_| has_memsw)) {
        (Some(l), Some(s)) => {
            let cur = fsutil::read_u64(dir, "memory.limit_in_bytes")?;
            let growing = l < 0 || (l as u64) > cur;
            if growing {
                fsutil::write(dir, "memory.memsw.limit_in_bytes", &limit_str(s, false))?;
                fsutil::write(dir, "memory.limit_in_bytes", &limit_str(l, false))?;
            } else {
                fsutil::write(dir, "memory.limit_in_bytes", &limit_str(l, false))?;
                fsutil::write(dir, "memory.memsw.limit_in_bytes", &limit_str(s, false))?;
            }
        }
        (Some(l), None) => fsutil::write(dir, "memory.limit_in_bytes", &limit_str(l, false))?,
        (None, Some(s)) => fsutil::write(dir, "memory.memsw.limit_in_bytes", &limit_str(s, false))?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation() {
        fsutil::write(dir, "memory.soft_limit_in_bytes", &limit_str(r, false))?;
    }
    if let Some(s) = m.swappiness() {
        // Values above 100 are "unset" in runc's convention.
        if s <= 100 {
            fsutil::write(dir, "memory.swappiness", &s.to_string())?;
        }
    }
    if m.disable_oom_killer() == Some(true) {
        fsutil::write(dir, "memory.oom_control", "1")?;
    }
    // kernel / kernel_tcp: kernel memory limits are deprecated and rejected by current kernels;
    // ignored like runc does.
    Ok(())
}

/// cpu.* (shares, CFS quota/period, burst, idle, realtime).
pub fn apply_cpu(dir: &Path, c: &LinuxCpu) -> Result<(), V1Error> {
    if let Some(s) = c.shares().filter(|&s| s != 0) {
        fsutil::write(dir, "cpu.shares", &s.to_string())?;
    }
    if let Some(p) = c.period().filter(|&p| p != 0) {
        fsutil::write(dir, "cpu.cfs_period_us", &p.to_string())?;
    }
    if let Some(q) = c.quota().filter(|&q| q != 0) {
        fsutil::write(dir, "cpu.cfs_quota_us", &limit_str(q, false))?;
    }
    if let Some(b) = c.burst() {
        fsutil::write_if_exists(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        fsutil::write_if_exists(dir, "cpu.idle", &i.to_string())?;
    }
    // Realtime only when asked: writing rt files fails without CONFIG_RT_GROUP_SCHED.
    if let Some(p) = c.realtime_period().filter(|&p| p != 0) {
        fsutil::write(dir, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|&r| r != 0) {
        fsutil::write(dir, "cpu.rt_runtime_us", &r.to_string())?;
    }
    Ok(())
}

/// cpuset.cpus / cpuset.mems.
pub fn apply_cpuset(dir: &Path, c: &LinuxCpu) -> Result<(), V1Error> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        fsutil::write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        fsutil::write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// blkio weights and throttles. The weight goes to `blkio.weight` (CFQ) or, on kernels with only
/// BFQ, `blkio.bfq.weight`.
pub fn apply_blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), V1Error> {
    // CFQ files when present (older kernels), else BFQ's; per-device weights have their own
    // file under BFQ.
    let (weight_file, weight_device_file) = if dir.join("blkio.weight").exists() {
        ("blkio.weight", "blkio.weight_device")
    } else {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        fsutil::write(dir, weight_file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
        fsutil::write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            fsutil::write(
                dir,
                weight_device_file,
                &format!("{}:{} {}", wd.major(), wd.minor(), w),
            )?;
        }
        if let Some(w) = wd.leaf_weight() {
            fsutil::write(
                dir,
                "blkio.leaf_weight_device",
                &format!("{}:{} {}", wd.major(), wd.minor(), w),
            )?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for t in list.iter().flatten() {
            fsutil::write(
                dir,
                file,
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// The v1 rule line for a device rule: `type major:minor access`.
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let typ = d
        .typ()
        .map(|t| t.as_str().to_string())
        .unwrap_or_else(|| "a".into());
    let num = |v: Option<i64>| {
        v.filter(|&v| v >= 0)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "*".into())
    };
    let access = d
        .access()
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "rwm".into());
    format!("{typ} {}:{} {access}", num(d.major()), num(d.minor()))
}

/// devices.allow / devices.deny, in order (later rules override earlier ones, as in the spec).
pub fn apply_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), V1Error> {
    for r in rules {
        let file = if r.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        fsutil::write(dir, file, &device_rule(r))?;
    }
    Ok(())
}

/// hugetlb.<size>.limit_in_bytes.
pub fn apply_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), V1Error> {
    for l in limits {
        let size = hugepage_size(l.page_size())?;
        fsutil::write(
            dir,
            &format!("hugetlb.{size}.limit_in_bytes"),
            &limit_str(l.limit(), false),
        )?;
    }
    Ok(())
}

/// net_cls.classid.
pub fn apply_net_cls(dir: &Path, n: &LinuxNetwork) -> Result<(), V1Error> {
    if let Some(id) = n.class_id() {
        fsutil::write(dir, "net_cls.classid", &id.to_string())?;
    }
    Ok(())
}

/// net_prio.ifpriomap, one `iface prio` write per interface.
pub fn apply_net_prio(dir: &Path, n: &LinuxNetwork) -> Result<(), V1Error> {
    for p in n.priorities().iter().flatten() {
        fsutil::write(
            dir,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

/// Sets freezer.state and waits for the kernel to report the target state. Freezing can stall in
/// FREEZING while a task is in an uninterruptible sleep, so the request is re-issued while waiting.
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<(), V1Error> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let start = Instant::now();
    let mut delay = Duration::from_micros(100);
    loop {
        fsutil::write(dir, "freezer.state", want)?;
        let state = fsutil::read(dir, "freezer.state")?;
        if state.trim() == want {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(V1Error::FreezeTimeout {
                dir: dir.into(),
                want,
                last: state.trim().into(),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// Whether freezer.state says FROZEN (FREEZING counts as not yet frozen).
pub fn is_frozen(dir: &Path) -> Result<bool, V1Error> {
    Ok(fsutil::read(dir, "freezer.state")?.trim() == "FROZEN")
}

/// The oom_kill counter of memory.oom_control (kernel ≥ 4.13), falling back to under_oom.
pub fn oom_kills(dir: &Path) -> Result<u64, V1Error> {
    let s = fsutil::read(dir, "memory.oom_control")?;
    Ok(fsutil::flat_get(&s, "oom_kill")
        .or_else(|| fsutil::flat_get(&s, "under_oom"))
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};

    #[test]
    fn device_rules() {
        let r = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        assert_eq!(device_rule(&r), "a *:* rwm");
        let r = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rw")
            .build()
            .unwrap();
        assert_eq!(device_rule(&r), "c 1:3 rw");
        let r = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::B)
            .major(8)
            .build()
            .unwrap();
        assert_eq!(device_rule(&r), "b 8:* rwm");
    }

    #[test]
    fn net_and_hugetlb_files() {
        use oci_spec::runtime::{
            LinuxHugepageLimitBuilder, LinuxInterfacePriorityBuilder, LinuxNetworkBuilder,
        };
        let d = tempfile::tempdir().unwrap();
        for f in [
            "net_cls.classid",
            "net_prio.ifpriomap",
            "hugetlb.1GB.limit_in_bytes",
        ] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let n = LinuxNetworkBuilder::default()
            .class_id(0x100001u32)
            .priorities(vec![LinuxInterfacePriorityBuilder::default()
                .name("eth0")
                .priority(5u32)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        apply_net_cls(d.path(), &n).unwrap();
        apply_net_prio(d.path(), &n).unwrap();
        let h = [LinuxHugepageLimitBuilder::default()
            .page_size("1GB")
            .limit(-1i64)
            .build()
            .unwrap()];
        apply_hugetlb(d.path(), &h).unwrap();
        let get = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap();
        assert_eq!(get("net_cls.classid"), "1048577");
        assert_eq!(get("net_prio.ifpriomap"), "eth0 5");
        assert_eq!(get("hugetlb.1GB.limit_in_bytes"), "-1");
        // A missing controller file is an error that names it.
        let e = apply_hugetlb(
            d.path(),
            &[LinuxHugepageLimitBuilder::default()
                .page_size("2MB")
                .limit(1i64)
                .build()
                .unwrap()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("hugetlb.2MB.limit_in_bytes") && e.contains("\"1\""),
            "{e}"
        );
    }
}
