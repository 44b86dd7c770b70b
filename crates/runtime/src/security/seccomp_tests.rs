use super::*;
use crate::security::test_util::{in_child, require_root};

/// Parse an OCI `linux.seccomp` object from JSON: how the filters reach berth in real life.
fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).expect("valid linux.seccomp JSON")
}

fn errno_of(rc: libc::c_long) -> i32 {
    if rc == -1 {
        nix::Error::last() as i32
    } else {
        0
    }
}

#[test]
fn maps_actions_like_runc() {
    assert_eq!(
        action(LinuxSeccompAction::ScmpActErrno, None).unwrap(),
        ScmpAction::Errno(libc::EPERM)
    );
    assert_eq!(
        action(LinuxSeccompAction::ScmpActErrno, Some(42)).unwrap(),
        ScmpAction::Errno(42)
    );
    assert_eq!(
        action(LinuxSeccompAction::ScmpActTrace, None).unwrap(),
        ScmpAction::Trace(1)
    );
    assert_eq!(
        action(LinuxSeccompAction::ScmpActKill, None).unwrap(),
        ScmpAction::KillThread
    );
    assert_eq!(
        action(LinuxSeccompAction::ScmpActKillProcess, None).unwrap(),
        ScmpAction::KillProcess
    );
    assert_eq!(
        action(LinuxSeccompAction::ScmpActLog, None).unwrap(),
        ScmpAction::Log
    );
    let err = action(LinuxSeccompAction::ScmpActNotify, None).unwrap_err();
    assert!(err.to_string().contains("not supported"), "{err}");
}

#[test]
fn compiles_with_unknown_names_foreign_arches_and_flags() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [
              {"names": ["read", "write", "no_such_syscall_ever", "chown32"], "action": "SCMP_ACT_ALLOW"},
              {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
              {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]}"#,
    );
    let ctx = compile(&p).expect("compiles");
    let bpf = tempfile::tempfile().unwrap();
    ctx.export_bpf(&bpf).expect("bpf export");
    assert!(bpf.metadata().unwrap().len() > 0);
    if ScmpArch::native() == ScmpArch::X8664 {
        assert!(ctx.is_arch_present(ScmpArch::X86).unwrap());
        assert!(ctx.is_arch_present(ScmpArch::X32).unwrap());
        assert!(!ctx.is_arch_present(ScmpArch::Aarch64).unwrap_or(false));
    }
    assert!(ctx.get_ctl_log().unwrap());
    assert!(ctx.get_ctl_tsync().unwrap());
    assert!(!ctx.get_ctl_nnp().unwrap());
}

#[test]
fn notify_and_bad_arg_index_are_clear_errors() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(matches!(compile(&p), Err(SeccompError::NotifyUnsupported)));
    let p = profile(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#);
    assert!(matches!(compile(&p), Err(SeccompError::NotifyUnsupported)));
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    let Err(err) = compile(&p) else {
        panic!("index 6 accepted")
    };
    assert!(
        err.to_string().contains("read") && err.to_string().contains('6'),
        "{err}"
    );
}

#[test]
fn mkdir_gets_errno_ret_42() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let target = std::ffi::CString::new(
        dir.path()
            .join("denied")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]}"#,
    );
    // As root, without no_new_privs: CAP_SYS_ADMIN is what makes loading allowed.
    let code = in_child(move || {
        if load(&p).is_err() {
            return 1;
        }
        // SAFETY: mkdir with a valid NUL-terminated path.
        let rc = unsafe { libc::mkdir(target.as_ptr(), 0o755) };
        if rc == -1 && nix::Error::last() as i32 == 42 {
            0
        } else {
            2
        }
    });
    assert_eq!(code, 0, "child check {code} failed");
    assert!(!dir.path().join("denied").exists());
}

#[test]
fn argument_conditions_and_repeated_arguments() {
    require_root!();
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 43,
             "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 45,
             "args": [{"index": 0, "value": 65280, "valueTwo": 256, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["getsid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 46,
             "args": [{"index": 0, "value": 1000001, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 1000002, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    let code = in_child(move || {
        if load(&p).is_err() {
            return 1;
        }
        // SAFETY: raw syscalls with integer arguments; the fd from socket(AF_UNIX) is closed right away.
        let call = |nr: libc::c_long, a: libc::c_long, b: libc::c_long| unsafe {
            libc::syscall(nr, a, b, 0)
        };
        if errno_of(call(
            libc::SYS_socket,
            libc::AF_NETLINK.into(),
            libc::SOCK_RAW.into(),
        )) != 43
        {
            return 2;
        }
        let fd = call(
            libc::SYS_socket,
            libc::AF_UNIX.into(),
            libc::SOCK_STREAM.into(),
        );
        if fd < 0 {
            return 3;
        }
        // SAFETY: closing the fd we just opened.
        unsafe { libc::close(fd as libc::c_int) };
        // (0x0105 & 0xff00) == 0x0100: denied; pid 0 is not.
        if errno_of(call(libc::SYS_getpgid, 0x0105, 0)) != 45
            || errno_of(call(libc::SYS_getpgid, 0, 0)) != 0
        {
            return 4;
        }
        // Two conditions on arg 0: ORed, so both values are denied, anything else is not.
        if errno_of(call(libc::SYS_getsid, 1_000_001, 0)) != 46
            || errno_of(call(libc::SYS_getsid, 1_000_002, 0)) != 46
        {
            return 5;
        }
        if errno_of(call(libc::SYS_getsid, 0, 0)) != 0 {
            return 6;
        }
        0
    });
    assert_eq!(code, 0, "child check {code} failed");
}

#[test]
fn default_errno_ret_and_kill_process() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 50, "syscalls": [
            {"names": ["exit", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    // Unprivileged path: no_new_privs makes loading allowed without CAP_SYS_ADMIN.
    let code = in_child(move || {
        // SAFETY: PR_SET_NO_NEW_PRIVS with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 || load(&p).is_err() {
            return 1;
        }
        // SAFETY: getpid has no arguments.
        if errno_of(unsafe { libc::syscall(libc::SYS_getpid) }) == 50 {
            0
        } else {
            2
        }
    });
    assert_eq!(code, 0, "child check {code} failed");

    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#,
    );
    let code = in_child(move || {
        // SAFETY: as above.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 || load(&p).is_err() {
            return 1;
        }
        // SAFETY: getppid has no arguments; the filter kills the process here.
        unsafe { libc::syscall(libc::SYS_getppid) };
        2
    });
    assert_eq!(
        code,
        128 + libc::SIGSYS,
        "expected death by SIGSYS, got {code}"
    );
}

#[test]
fn loading_without_nnp_or_cap_sys_admin_fails_clearly() {
    require_root!();
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    let code = in_child(move || {
        // Become uid 1000 without keepcaps: every capability is gone.
        // SAFETY: plain setresgid/setresuid calls in the forked child.
        let rc = unsafe { libc::setresgid(1000, 1000, 1000) | libc::setresuid(1000, 1000, 1000) };
        if rc != 0 {
            return 1;
        }
        match load(&p) {
            Err(e @ SeccompError::Load(_)) if e.to_string().contains("no_new_privs") => {}
            _ => return 2,
        }
        // SAFETY: as above.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return 3;
        }
        if load(&p).is_ok() {
            0
        } else {
            4
        }
    });
    assert_eq!(code, 0, "child check {code} failed");
}

#[test]
fn compiled_filter_round_trips_and_loads() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 47}]}"#,
    );
    let compiled = CompiledFilter::compile(&p).expect("compiles");
    assert_eq!(compiled.flags(), 2);
    assert_eq!(compiled.bpf().len() % 8, 0);
    // What the engine would cache and hand back.
    let cached = CompiledFilter::from_bpf(compiled.bpf().to_vec(), compiled.flags()).unwrap();
    assert_eq!(cached, compiled);
    assert!(matches!(
        CompiledFilter::from_bpf(vec![0; 7], 0),
        Err(SeccompError::BadProgram(7))
    ));
    let code = in_child(move || {
        // SAFETY: PR_SET_NO_NEW_PRIVS with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0
            || cached.load().is_err()
        {
            return 1;
        }
        // SAFETY: getppid/getpid take no arguments.
        let (ppid, pid) = unsafe {
            (
                libc::syscall(libc::SYS_getppid),
                libc::syscall(libc::SYS_getpid),
            )
        };
        if ppid != -1 || pid <= 0 {
            return 2;
        }
        // errno is still that of getppid: getpid succeeded and does not touch it.
        if nix::Error::last() as i32 != 47 {
            return 3;
        }
        0
    });
    assert_eq!(code, 0, "child check {code} failed");
}

#[test]
fn enosys_stub_only_for_denying_defaults() {
    let allow = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(enosys::stub(&allow, &[ScmpArch::native()]).is_empty());
    let deny = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let stub = enosys::stub(&deny, &[ScmpArch::native()]);
    assert!(!stub.is_empty());
    // Starts by loading seccomp_data.arch, ends in a return.
    assert_eq!(
        (stub[0].code, stub[0].k),
        ((libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, 4)
    );
    assert_eq!(
        stub.last().unwrap().code,
        (libc::BPF_RET | libc::BPF_K) as u16
    );
    let nothing = profile(r#"{"defaultAction": "SCMP_ACT_ERRNO"}"#);
    assert!(enosys::stub(&nothing, &[ScmpArch::native()]).is_empty());
}

#[test]
fn newer_syscalls_get_enosys_older_ones_the_default() {
    // Names up to exit_group (231 on x86_64): fanotify_init (300) is "newer" and gets ENOSYS, times (100) EPERM.
    if ScmpArch::native() != ScmpArch::X8664 {
        eprintln!("skipped: syscall numbers below are x86_64's");
        return;
    }
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["exit", "exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let filter = CompiledFilter::compile(&p).unwrap();
    let docker =
        CompiledFilter::compile(&crate::security::defaults::docker_default_seccomp()).unwrap();
    let code = in_child(move || {
        // SAFETY: PR_SET_NO_NEW_PRIVS with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0
            || filter.load().is_err()
        {
            return 1;
        }
        // SAFETY: raw syscalls with no pointer arguments.
        let (newer, older, pid) = unsafe {
            (
                errno_of(libc::syscall(300)),
                errno_of(libc::syscall(100)),
                libc::syscall(libc::SYS_getpid),
            )
        };
        match (newer, older, pid > 0) {
            (libc::ENOSYS, libc::EPERM, true) => 0,
            _ => 2,
        }
    });
    assert_eq!(code, 0, "child check {code} failed");
    let code = in_child(move || {
        // SAFETY: as above.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0
            || docker.load().is_err()
        {
            return 1;
        }
        // 1000 is beyond every syscall; unshare is old and refused by the profile.
        // SAFETY: raw syscalls with integer arguments only.
        let (beyond, unshare) = unsafe {
            (
                errno_of(libc::syscall(1000)),
                errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS)),
            )
        };
        match (beyond, unshare) {
            (libc::ENOSYS, libc::EPERM) => 0,
            _ => 2,
        }
    });
    assert_eq!(code, 0, "docker profile child check {code} failed");
}

/// The i386 side of a filter on x86_64: `int 0x80` syscalls are checked against the X86 rules and stub.
#[cfg(target_arch = "x86_64")]
#[test]
fn i386_syscalls_are_filtered_too() {
    fn int80(nr: i64, a: i64) -> i64 {
        let ret: i64;
        // SAFETY: `int 0x80` with i386 syscall numbers that take at most one integer argument (in ebx, swapped
        // in and out since LLVM reserves rbx); the kernel preserves every register but eax.
        unsafe {
            std::arch::asm!(
                "xchg {a}, rbx",
                "int 0x80",
                "xchg {a}, rbx",
                a = inout(reg) a => _,
                inlateout("rax") nr => ret,
                options(nostack),
            )
        };
        ret
    }
    let docker =
        CompiledFilter::compile(&crate::security::defaults::docker_default_seccomp()).unwrap();
    // Without IA32 emulation `int 0x80` kills the child: skip then.
    if in_child(|| i32::from(int80(20, 0) <= 0)) != 0 {
        eprintln!("skipped: no IA32 syscall emulation in this kernel");
        return;
    }
    let code = in_child(move || {
        // SAFETY: PR_SET_NO_NEW_PRIVS with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0
            || docker.load().is_err()
        {
            return 1;
        }
        // i386 numbers: getpid 20 (allowed), unshare 310 (refused), 1000 (beyond every syscall).
        let unshare = -i64::from(libc::EPERM);
        let beyond = -i64::from(libc::ENOSYS);
        match (
            int80(20, 0) > 0,
            int80(310, i64::from(libc::CLONE_NEWUTS)),
            int80(1000, 0),
        ) {
            (true, u, b) if u == unshare && b == beyond => 0,
            _ => 2,
        }
    });
    assert_eq!(code, 0, "child check {code} failed");
}
