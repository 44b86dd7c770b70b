use super::*;
use crate::security::test_util::{in_child, require_root};

fn process(json: &str) -> Process {
    serde_json::from_str(json).expect("valid process JSON")
}

/// Read a `Field:` line of /proc/self/status.
fn status(field: &str) -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// The checks shared by the full-sequence tests, run in the child after `apply_process_security`.
fn check_applied(nnp: bool) -> i32 {
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if (uid, gid) != (1000, 1000) {
        return 2;
    }
    // Docker's 14 capabilities: effective = permitted = bounding = 0xa80425fb.
    let want = format!("{:016x}", 0xa804_25fb_u64);
    if status("CapEff:") != want || status("CapBnd:") != want || status("CapPrm:") != want {
        return 3;
    }
    if status("Seccomp:") != "2" {
        return 4;
    }
    if status("NoNewPrivs:") != if nnp { "1" } else { "0" } {
        return 5;
    }
    // SAFETY: unshare takes flags only; refused by the docker profile.
    if unsafe { libc::unshare(libc::CLONE_NEWUTS) } != -1 || nix::Error::last() != nix::Error::EPERM
    {
        return 6;
    }
    match rlimits::get(oci_spec::runtime::PosixRlimitType::RlimitNofile) {
        Ok((512, 1024)) => {}
        _ => return 7,
    }
    // SAFETY: umask is read and restored.
    let mask = unsafe {
        let m = libc::umask(0);
        libc::umask(m);
        m
    };
    if mask != 0o027 {
        return 8;
    }
    0
}

fn docker_process(nnp: bool) -> Process {
    let caps = serde_json::to_string(&defaults::docker_default_capabilities()).unwrap();
    process(&format!(
        r#"{{"cwd": "/", "args": ["sh"], "noNewPrivileges": {nnp},
            "user": {{"uid": 1000, "gid": 1000, "additionalGids": [5], "umask": 23}},
            "rlimits": [{{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}}],
            "capabilities": {{"bounding": {caps}, "effective": {caps}, "permitted": {caps}}}}}"#
    ))
}

#[test]
fn full_sequence_with_no_new_privs() {
    require_root!();
    let p = docker_process(true);
    let filter = defaults::docker_default_seccomp();
    let code = in_child(move || match apply_process_security(&p, Some(&filter)) {
        Ok(()) => check_applied(true),
        Err(_) => 1,
    });
    assert_eq!(code, 0, "child check {code} failed");
}

/// Without no_new_privs the filter can only load while CAP_SYS_ADMIN is still there: the early path.
#[test]
fn full_sequence_without_no_new_privs_loads_seccomp_early() {
    require_root!();
    let p = docker_process(false);
    let filter = defaults::docker_default_seccomp();
    let code = in_child(move || match apply_process_security(&p, Some(&filter)) {
        Ok(()) => check_applied(false),
        Err(_) => 1,
    });
    assert_eq!(code, 0, "child check {code} failed");
}

#[test]
fn keeps_sys_admin_decides_the_seccomp_moment() {
    let admin = process(
        r#"{"cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": {"effective": ["CAP_SYS_ADMIN"]}}"#,
    );
    assert!(keeps_sys_admin(&admin));
    let dropped = process(
        r#"{"cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": {"effective": ["CAP_CHOWN"]}}"#,
    );
    assert!(!keeps_sys_admin(&dropped));
    let non_root = process(r#"{"cwd": "/", "user": {"uid": 1000, "gid": 1000}}"#);
    assert!(!keeps_sys_admin(&non_root));
}

#[test]
fn errors_name_the_failing_step() {
    require_root!();
    // A capability outside the bounding set cannot become inheritable: capset refuses, with the sets in the error.
    let p = process(
        r#"{"cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"], "inheritable": ["CAP_KILL"]}}"#,
    );
    let code = in_child(move || match apply_process_security(&p, None) {
        Err(SecurityError::Caps(e)) if e.to_string().contains("capset") => 0,
        _ => 1,
    });
    assert_eq!(code, 0, "expected a capset error");
}
