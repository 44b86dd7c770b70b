//! The v2 code path for real, on the unified tree only (on a hybrid host the unified tree has no
//! memory/pids controllers: those are skipped, everything else works as on a pure v2 host).

mod common;

use berth_cgroups::{bpf_device_programs, Cgroup, Layout, Version};
use common::{cmdline, prerequisites, read, unique_path, wait_until, Guard};
use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResourcesBuilder,
};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// A cgroup that lives only in the unified hierarchy, as on a pure v2 host.
fn unified_guard(test: &str) -> Option<Guard> {
    if !prerequisites(test) {
        return None;
    }
    let mut cg = Cgroup::new(&unique_path(), "test").unwrap();
    cg.hierarchies.retain(|h| h.version == Version::V2);
    if cg.hierarchies.is_empty() {
        eprintln!("SKIP {test}: no cgroup2 hierarchy mounted");
        return None;
    }
    cg.layout = Layout::V2;
    Some(Guard::create(cg))
}

#[test]
fn v2_procs_freeze_kill_destroy() {
    let Some(mut g) = unified_guard("v2_lifecycle") else {
        return;
    };
    let dir = g.cg.unified_dir().unwrap().to_path_buf();
    if !dir.join("cgroup.freeze").exists() {
        eprintln!("SKIP v2_lifecycle: kernel without cgroup.freeze");
        return;
    }
    // Absent controllers (memory and pids on a hybrid host) are skipped, not errors.
    let res = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
        .build()
        .unwrap();
    g.cg.apply(&res).unwrap();

    let i = g.spawn("exec $B sleep 100");
    let pid = g.pid(i);
    g.go(i);
    assert!(wait_until(Duration::from_secs(10), || cmdline(pid).contains("sleep")));
    assert_eq!(g.cg.pids().unwrap(), vec![pid]);
    assert!(read(&dir, "cgroup.procs").contains(&pid.to_string()));

    g.cg.freeze().unwrap();
    assert!(g.cg.is_frozen().unwrap());
    assert!(read(&dir, "cgroup.events").contains("frozen 1"));
    g.cg.thaw().unwrap();
    assert!(!g.cg.is_frozen().unwrap());
    assert!(read(&dir, "cgroup.events").contains("frozen 0"));

    let st = g.cg.stats().unwrap();
    assert!(st.cpu.usage_total > 0, "{st:?}");

    // SIGTERM: freeze, signal each, thaw.
    g.cg.kill_all(libc::SIGTERM).unwrap();
    assert_eq!(g.wait(i).0.signal(), Some(libc::SIGTERM));
    assert!(!g.cg.is_frozen().unwrap());

    // SIGKILL: cgroup.kill when the kernel has it, also while frozen.
    let j = g.spawn("exec $B sleep 100");
    g.go(j);
    g.cg.freeze().unwrap();
    g.cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(g.wait(j).0.signal(), Some(libc::SIGKILL));
    assert!(wait_until(Duration::from_secs(10), || g
        .cg
        .pids()
        .unwrap()
        .is_empty()));
    g.cg.destroy().unwrap();
    assert!(!dir.exists());
}

fn dev(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    acc: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(acc);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().unwrap()
}

#[test]
fn v2_ebpf_device_filter() {
    let Some(mut g) = unified_guard("v2_devices") else {
        return;
    };
    let dir = g.cg.unified_dir().unwrap().to_path_buf();
    // Docker-style: deny everything, then allow /dev/zero (1:5) and /dev/urandom (1:9) read.
    let rules = vec![
        dev(false, LinuxDeviceType::A, None, None, "rwm"),
        dev(true, LinuxDeviceType::C, Some(1), Some(5), "rwm"),
        dev(true, LinuxDeviceType::C, Some(1), Some(9), "r"),
    ];
    let res = LinuxResourcesBuilder::default()
        .devices(rules)
        .build()
        .unwrap();
    g.cg.apply(&res).unwrap();
    assert_eq!(bpf_device_programs(&dir).unwrap(), 1);
    let i = g.spawn(
        "$B head -c 3 /dev/zero | $B wc -c; $B head -c 2 /dev/urandom | $B wc -c; \
         echo x >> /dev/urandom || echo urandom-write-denied; $B cat /dev/null",
    );
    g.go(i);
    let (status, out, err) = g.wait(i);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["3", "2", "urandom-write-denied"], "stderr: {err}");
    assert!(!status.success());
    assert!(err.contains("Operation not permitted"), "stderr: {err}");

    // Re-applying replaces the program rather than stacking a second one.
    let res = LinuxResourcesBuilder::default()
        .devices(vec![dev(
            false,
            LinuxDeviceType::C,
            Some(1),
            Some(5),
            "rwm",
        )])
        .build()
        .unwrap();
    g.cg.apply(&res).unwrap();
    assert_eq!(bpf_device_programs(&dir).unwrap(), 1);
    let j = g.spawn("$B cat /dev/null && echo null-ok; $B head -c 1 /dev/zero");
    g.go(j);
    let (status, out, err) = g.wait(j);
    assert_eq!(out.trim(), "null-ok");
    assert!(!status.success());
    assert!(err.contains("Operation not permitted"), "stderr: {err}");
}
