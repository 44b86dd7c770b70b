//! Real cgroups on this host's layout (hybrid here: v1 controllers + unified tree). Run as root.

mod common;

use berth_cgroups::{detect, Cgroup, Layout, Version};
use common::{prerequisites, read, unique_path, wait_until, Guard};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    LinuxThrottleDeviceBuilder,
};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

fn new_guard() -> Guard {
    let path = unique_path();
    let cg = Cgroup::new(&path, "test").expect("Cgroup::new");
    Guard::create(cg)
}

#[test]
fn detect_matches_mounts() {
    let expected = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Layout::V2
    } else if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        Layout::Hybrid
    } else {
        Layout::V1
    };
    assert_eq!(detect().unwrap(), expected);
    eprintln!("layout: {expected:?}");
}

#[test]
fn lifecycle_memory_limit_pids_stats_kill_destroy() {
    if !prerequisites("lifecycle") {
        return;
    }
    let mut g = new_guard();
    for h in g.cg.paths() {
        assert!(h.dir.is_dir(), "{} not created", h.dir.display());
    }
    // create is idempotent.
    g.cg.create().unwrap();
    let limit = 64 << 20;
    let res = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(limit).build().unwrap())
        .build()
        .unwrap();
    g.cg.apply(&res).unwrap();
    let got = match (g.cg.v1_dir("memory"), g.cg.unified_dir()) {
        (Some(d), _) => read(d, "memory.limit_in_bytes"),
        (None, Some(d)) => read(d, "memory.max"),
        _ => panic!("no memory controller"),
    };
    assert_eq!(got, limit.to_string());

    // The shell keeps a 1 MB variable: heap pages faulted after it joined, so charged here.
    let i = g.spawn("x=$($B head -c 1000000 /dev/zero | $B tr '\\0' a); echo ready; $B sleep 100");
    let pid = g.pid(i);
    assert!(g.cg.pids().unwrap().contains(&pid));
    g.go(i);
    assert_eq!(g.read_line(i), "ready");
    let stats = g.cg.stats().unwrap();
    assert!(stats.memory.raw_usage > 0, "{stats:?}");
    assert!(stats.cpu.usage_total > 0, "{stats:?}");
    assert_eq!(stats.memory.limit, Some(limit as u64));
    assert!(
        stats.pids.current >= 1 || g.cg.v1_dir("pids").is_none(),
        "{stats:?}"
    );

    g.cg.kill_all(libc::SIGKILL).unwrap();
    let (status, _, _) = g.wait(i);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(wait_until(Duration::from_secs(10), || g
        .cg
        .pids()
        .unwrap()
        .is_empty()));
    g.cg.destroy().unwrap();
    for h in g.cg.paths() {
        assert!(!h.dir.exists(), "{} still exists", h.dir.display());
    }
    // Destroying twice is fine.
    g.cg.destroy().unwrap();
}

#[test]
fn pids_limit_stops_forks() {
    if !prerequisites("pids_limit") {
        return;
    }
    let mut g = new_guard();
    if g.cg.v1_dir("pids").is_none()
        && !g
            .cg
            .unified_dir()
            .is_some_and(|d| d.join("pids.max").exists())
    {
        eprintln!("SKIP pids_limit: no pids controller");
        return;
    }
    let res = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(3).build().unwrap())
        .build()
        .unwrap();
    g.cg.apply(&res).unwrap();
    let i = g.spawn("for i in 1 2 3 4 5 6; do $B sleep 100 >/dev/null 2>&1 & done; wait");
    g.go(i);
    let (status, _, err) = g.wait(i);
    assert!(!status.success(), "forking beyond pids.max=3 succeeded");
    assert!(err.contains("can't fork"), "stderr: {err}");
    let st = g.cg.stats().unwrap();
    assert_eq!(st.pids.limit, Some(3));
    assert!(g.cg.pids().unwrap().len() <= 3);
}

#[test]
fn freeze_and_thaw() {
    if !prerequisites("freeze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("count");
    let mut g = new_guard();
    let i = g.spawn(&format!(
        "i=0; while :; do i=$((i+1)); echo $i > {}; done",
        file.display()
    ));
    g.go(i);
    let count = || std::fs::read_to_string(&file).unwrap_or_default();
    assert!(wait_until(Duration::from_secs(10), || count()
        .trim()
        .parse::<u64>()
        .unwrap_or(0)
        > 10));

    assert!(!g.cg.is_frozen().unwrap());
    g.cg.freeze().unwrap();
    assert!(g.cg.is_frozen().unwrap());
    if let Some(d) = g.cg.v1_dir("freezer") {
        assert_eq!(read(d, "freezer.state"), "FROZEN");
    } else {
        assert!(read(g.cg.unified_dir().unwrap(), "cgroup.events").contains("frozen 1"));
    }
    // A frozen task cannot advance, however long we look.
    let before = count();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(count(), before, "counter advanced while frozen");

    g.cg.thaw().unwrap();
    assert!(!g.cg.is_frozen().unwrap());
    assert!(
        wait_until(Duration::from_secs(10), || count() != before
            && !count().is_empty()),
        "counter did not resume after thaw"
    );
    // kill_all with a catchable signal goes through freeze / signal / thaw.
    g.cg.kill_all(libc::SIGTERM).unwrap();
    let (status, _, _) = g.wait(i);
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(!g.cg.is_frozen().unwrap());

    // SIGKILL to a paused container kills it (and leaves the cgroup thawed).
    let j = g.spawn("exec $B sleep 100");
    g.go(j);
    g.cg.freeze().unwrap();
    g.cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(g.wait(j).0.signal(), Some(libc::SIGKILL));
    assert!(!g.cg.is_frozen().unwrap());
}

#[test]
fn oom_kill_is_reported() {
    if !prerequisites("oom") {
        return;
    }
    let mut g = new_guard();
    let limit: i64 = 32 << 20;
    let res = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .swap(limit)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.cg.apply(&res).unwrap();
    assert!(!g.cg.oom_killed().unwrap());
    // busybox tail buffers a newline-free stream whole: 200M of it cannot fit in 32M.
    let i = g.spawn("$B head -c 200000000 /dev/zero | $B tail");
    g.go(i);
    let (status, _, _) = g.wait(i);
    assert!(!status.success());
    assert!(g.cg.oom_killed().unwrap(), "no oom_kill recorded");
    assert!(g.cg.stats().unwrap().memory.oom_kill >= 1);
}

#[test]
fn cpu_values_read_back() {
    if !prerequisites("cpu") {
        return;
    }
    let g = new_guard();
    let res = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.cg.apply(&res).unwrap();
    if let Some(d) = g.cg.v1_dir("cpu") {
        assert_eq!(read(d, "cpu.shares"), "512");
        assert_eq!(read(d, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(d, "cpu.cfs_period_us"), "100000");
    } else if let Some(d) = g.cg.unified_dir().filter(|d| d.join("cpu.max").exists()) {
        assert_eq!(read(d, "cpu.weight"), "59");
        assert_eq!(read(d, "cpu.max"), "50000 100000");
    } else {
        eprintln!("SKIP cpu part: no cpu controller");
    }
    if let Some(d) = g.cg.v1_dir("cpuset") {
        assert_eq!(read(d, "cpuset.cpus"), "0");
        assert_eq!(read(d, "cpuset.mems"), "0");
    }
}

#[test]
fn devices_deny_dev_null() {
    if !prerequisites("devices") {
        return;
    }
    let mut g = new_guard();
    let res = LinuxResourcesBuilder::default()
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rwm")
            .build()
            .unwrap()])
        .build()
        .unwrap();
    g.cg.apply(&res).unwrap();
    let i = g.spawn("$B head -c 3 /dev/zero | $B wc -c; $B cat /dev/null");
    g.go(i);
    let (status, out, err) = g.wait(i);
    assert_eq!(
        out.trim(),
        "3",
        "/dev/zero should still be readable; stderr: {err}"
    );
    assert!(!status.success());
    assert!(err.contains("Operation not permitted"), "stderr: {err}");
}

#[test]
fn hugetlb_limit_where_the_controller_lives() {
    if !prerequisites("hugetlb") {
        return;
    }
    let g = new_guard();
    let (dir, file) = if let Some(d) = g.cg.v1_dir("hugetlb") {
        (d.to_path_buf(), "hugetlb.2MB.limit_in_bytes")
    } else if let Some(d) =
        g.cg.unified_dir()
            .filter(|d| d.join("hugetlb.2MB.max").exists())
    {
        (d.to_path_buf(), "hugetlb.2MB.max")
    } else {
        eprintln!("SKIP hugetlb: controller not available (or no 2MB pages)");
        return;
    };
    let res = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4i64 << 20)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    g.cg.apply(&res).unwrap();
    assert_eq!(read(&dir, file), (4u64 << 20).to_string());
}

#[test]
fn failed_write_names_file_and_value() {
    if !prerequisites("write_error") {
        return;
    }
    let g = new_guard();
    if g.cg.v1_dir("cpuset").is_none() {
        eprintln!("SKIP write_error: no v1 cpuset");
        return;
    }
    let res = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().cpus("999").build().unwrap())
        .build()
        .unwrap();
    let err = g.cg.apply(&res).unwrap_err().to_string();
    assert!(
        err.contains("cpuset.cpus") && err.contains("\"999\""),
        "{err}"
    );
}

#[test]
fn hierarchies_resolve_relative_to_own_cgroup() {
    if !prerequisites("relative") {
        return;
    }
    let cg = Cgroup::new("rel-berth-test", "x").unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for h in cg.paths() {
        let line = own
            .lines()
            .find(|l| {
                let mut p = l.splitn(3, ':');
                let (_, ctrls) = (p.next(), p.next().unwrap());
                match h.version {
                    Version::V2 => ctrls.is_empty(),
                    Version::V1 => {
                        let mut a: Vec<_> = ctrls.split(',').collect();
                        let mut b: Vec<_> = h.controllers.iter().map(String::as_str).collect();
                        a.sort();
                        b.sort();
                        a == b
                    }
                }
            })
            .unwrap();
        let own_path = line.splitn(3, ':').nth(2).unwrap();
        let want = format!("{}/rel-berth-test", own_path.trim_end_matches('/'));
        assert_eq!(h.cgroup_path, want);
    }
    let abs = Cgroup::new("", "abc").unwrap();
    assert!(abs.paths().iter().all(|h| h.cgroup_path == "/berth/abc"));
    assert!(abs.paths().iter().all(|h| h.dir.ends_with("berth/abc")));
}

#[test]
fn memory_updates_keep_memsw_ordering() {
    if !prerequisites("memory_update") {
        return;
    }
    let g = new_guard();
    let Some(d) = g.cg.v1_dir("memory").map(Path::to_path_buf) else {
        eprintln!("SKIP memory_update: no v1 memory controller");
        return;
    };
    if !d.join("memory.memsw.limit_in_bytes").exists() {
        eprintln!("SKIP memory_update: no swap accounting (memory.memsw.*)");
        return;
    }
    let apply = |limit: i64, swap: i64| {
        let res = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(limit)
                    .swap(swap)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        g.cg.apply(&res).unwrap();
        assert_eq!(read(&d, "memory.limit_in_bytes"), limit.to_string());
        assert_eq!(read(&d, "memory.memsw.limit_in_bytes"), swap.to_string());
    };
    apply(64 << 20, 128 << 20);
    // Shrinking: the memory limit must go first (memsw may not drop below it).
    apply(32 << 20, 48 << 20);
    // Growing past the old memsw: memsw must go first.
    apply(256 << 20, 512 << 20);
}

#[test]
fn blkio_weight_and_throttle() {
    if !prerequisites("blkio") {
        return;
    }
    let g = new_guard();
    let Some(d) = g.cg.v1_dir("blkio").map(Path::to_path_buf) else {
        eprintln!("SKIP blkio: no v1 blkio controller (the v2 io path is unit-tested)");
        return;
    };
    // Any block device will do for a throttle rule.
    let dev = std::fs::read_dir("/sys/block")
        .ok()
        .and_then(|mut rd| {
            rd.find_map(|e| std::fs::read_to_string(e.ok()?.path().join("dev")).ok())
        })
        .map(|s| s.trim().to_string());
    let mut b = LinuxBlockIoBuilder::default().weight(500u16);
    if let Some(dev) = &dev {
        let (maj, min) = dev.split_once(':').unwrap();
        b = b.throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
            .major(maj.parse::<i64>().unwrap())
            .minor(min.parse::<i64>().unwrap())
            .rate(1_048_576u64)
            .build()
            .unwrap()]);
    }
    let res = LinuxResourcesBuilder::default()
        .block_io(b.build().unwrap())
        .build()
        .unwrap();
    let has_weight = d.join("blkio.weight").exists() || d.join("blkio.bfq.weight").exists();
    if !has_weight {
        eprintln!("SKIP blkio weight: neither CFQ nor BFQ weight files");
        return;
    }
    g.cg.apply(&res).unwrap();
    let w = if d.join("blkio.weight").exists() {
        read(&d, "blkio.weight")
    } else {
        read(&d, "blkio.bfq.weight")
    };
    assert!(
        w.split_whitespace().any(|t| t == "500"),
        "weight reads {w:?}"
    );
    match dev {
        Some(dev) => assert_eq!(
            read(&d, "blkio.throttle.read_bps_device"),
            format!("{dev} 1048576")
        ),
        None => eprintln!("SKIP blkio throttle: no block device"),
    }
}
