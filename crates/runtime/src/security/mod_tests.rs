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

/// The script both runc and berth run: the process-security view from inside.
const PROBE: &str =
    "grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs|Seccomp)' /proc/self/status; umask; ulimit -n; \
                     busybox unshare -m true 2>/dev/null; echo unshare=$?";

/// Our side: fork, apply `spec`'s process security, exec busybox with PROBE; its stdout.
fn probe_with_berth(busybox: &str, spec: &oci_spec::runtime::Spec) -> String {
    let process = spec.process().clone().unwrap();
    let filter = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let argv: Vec<std::ffi::CString> = [busybox, "sh", "-c", PROBE]
        .iter()
        .map(|a| std::ffi::CString::new(*a).unwrap())
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let (rd, wr) = nix::unistd::pipe().unwrap();
    let code = in_child(move || {
        // SAFETY: dup2 onto our own stdout; the pipe's write end is valid.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&wr), 1) };
        drop(wr);
        if apply_process_security(&process, filter.as_ref()).is_err() {
            return 1;
        }
        // SAFETY: NUL-terminated path and null-terminated argv, alive across the call.
        unsafe { libc::execv(ptrs[0], ptrs.as_ptr()) };
        127
    });
    let mut out = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(rd), &mut out).unwrap();
    assert_eq!(code, 0, "berth side failed: {out}");
    out
}

/// The same config through `runc run` and through `apply_process_security` gives the same process state.
#[test]
fn matches_runc_for_the_same_config() {
    require_root!();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let (Some(busybox), true) = (
        busybox,
        std::process::Command::new("runc")
            .arg("--version")
            .output()
            .is_ok(),
    ) else {
        eprintln!("skipped: needs busybox and runc");
        return;
    };
    for nnp in [true, false] {
        let mut spec = defaults::runc_spec(false);
        let mut p = spec.process().clone().unwrap();
        p.set_terminal(Some(false));
        p.set_args(Some(vec![
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            PROBE.into(),
        ]));
        p.set_env(Some(vec!["PATH=/bin".into()]));
        let mut caps =
            defaults::docker_process_capabilities(&defaults::docker_default_capabilities())
                .unwrap();
        caps.set_ambient(Some(
            capabilities::parse_all(&["CAP_NET_BIND_SERVICE"]).unwrap(),
        ));
        caps.set_inheritable(Some(
            capabilities::parse_all(&["CAP_NET_BIND_SERVICE", "CAP_KILL"]).unwrap(),
        ));
        p.set_capabilities(Some(caps));
        p.set_user(
            serde_json::from_str(
                r#"{"uid": 1000, "gid": 1000, "additionalGids": [5, 10], "umask": 18}"#,
            )
            .unwrap(),
        );
        p.set_no_new_privileges(Some(nnp));
        spec.set_process(Some(p));
        let mut linux = spec.linux().clone().unwrap();
        linux.set_seccomp(Some(defaults::docker_default_seccomp()));
        spec.set_linux(Some(linux));

        let bundle = tempfile::tempdir().unwrap();
        let bin = bundle.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        // A hard link where possible: a freshly written copy can fail to exec with ETXTBSY while another test
        // thread's forked child still holds our write fd.
        if std::fs::hard_link(busybox, bin.join("busybox")).is_err() {
            std::fs::copy(busybox, bin.join("busybox")).unwrap();
        }
        std::fs::write(
            bundle.path().join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let id = format!("berth-sec-test-{}-{nnp}", std::process::id());
        let out = std::process::Command::new("runc")
            .args(["run", &id])
            .current_dir(bundle.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let theirs = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "runc run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let ours = probe_with_berth(busybox, &spec);
        assert!(
            ours.contains("unshare=1") && ours.contains("Seccomp:\t2"),
            "{ours}"
        );
        assert_eq!(
            ours, theirs,
            "berth (left) and runc (right) differ, no_new_privs={nnp}"
        );
    }
}
