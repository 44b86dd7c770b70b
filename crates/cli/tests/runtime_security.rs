//! Security of `berth runtime` containers: capabilities, seccomp, read-only root, masked paths, fd leaks
//! (CVE-2024-21626) and the runtime binary (CVE-2019-5736).

mod runtime_common;
use runtime_common::*;
use serde_json::json;

#[test]
fn dropped_capabilities_are_denied() {
    if !privileged("dropped_capabilities_are_denied") {
        return;
    }
    let b = Bundle::new();
    // runc's default spec keeps only AUDIT_WRITE, KILL and NET_BIND_SERVICE.
    b.args(&["sh", "-c", "chown 1 /tmp && echo chown-ok; mknod /tmp/n c 1 3 && echo mknod-ok; hostname x && echo hostname-ok; echo end"]);
    let (code, out, err) = b.run(&unique("caps"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "end", "{out}");
    // With CAP_CHOWN and CAP_MKNOD granted, the same commands work: the denial came from the capability sets.
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .extend([json!("CAP_CHOWN"), json!("CAP_MKNOD")]);
        }
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "chown 1 /tmp && echo chown-ok; mknod /tmp/n c 1 3 && echo mknod-ok; echo end"
        ]);
    });
    let (code, out, err) = b.run(&unique("caps2"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["chown-ok", "mknod-ok", "end"]
    );
}

#[test]
fn seccomp_rule_returns_errno() {
    if !privileged("seccomp_rule_returns_errno") {
        return;
    }
    let b = Bundle::new();
    b.edit(|c| {
        c["process"]["args"] = json!(["sh", "-c", "mkdir /tmp/d; echo rc=$?"]);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        });
    });
    let (code, out, err) = b.run(&unique("seccomp"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "rc=1");
    assert!(
        err.contains("Permission denied"),
        "EACCES (13) expected: {err}"
    );
}

#[test]
fn readonly_rootfs_and_masked_paths() {
    if !privileged("readonly_rootfs_and_masked_paths") {
        return;
    }
    let b = Bundle::new();
    b.edit(|c| {
        c["root"]["readonly"] = json!(true);
        c["process"]["args"] = json!(["sh", "-c", "touch /x 2>/dev/null && echo writable; wc -c < /proc/keys; ls /proc/acpi | wc -l; [ -e /proc/kcore ] && wc -c < /proc/kcore; stat -c %t:%T /proc/keys; echo x > /proc/sys/kernel/hostname 2>/dev/null && echo sys-writable; echo end"]);
    });
    // /proc/kcore is not there on every kernel; /proc/keys (file) and /proc/acpi (directory) are masked too.
    let kcore = std::path::Path::new("/proc/kcore").exists();
    let (code, out, err) = b.run(&unique("ro"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let want: Vec<&str> = if kcore {
        vec!["0", "0", "0", "1:3", "end"]
    } else {
        vec!["0", "0", "1:3", "end"]
    };
    assert_eq!(lines, want, "{out}");
    assert!(!b.rootfs().join("x").exists());
}

#[test]
fn host_fds_do_not_leak() {
    if !privileged("host_fds_do_not_leak") {
        return;
    }
    let b = Bundle::new();
    b.args(&["ls", "/proc/self/fd"]);
    // An inheritable host fd (no O_CLOEXEC) at 42 in the runtime's parent.
    let f = std::fs::File::open("/etc/hostname").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: dup2 onto an unused fd number of this test process.
    let dup = unsafe { libc::dup2(raw, 42) };
    assert_eq!(dup, 42);
    let (code, out, err) = b.run(&unique("fds"));
    // SAFETY: closing the fd we created above.
    unsafe { libc::close(42) };
    assert_eq!(code, 0, "{err}");
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "only stdio and ls's own directory fd: {out}"
    );
}

#[test]
fn runtime_binary_cannot_be_overwritten() {
    if !privileged("runtime_binary_cannot_be_overwritten") {
        return;
    }
    let before = std::fs::read(berth()).unwrap();
    let b = Bundle::new();
    // /bin/evil runs "the runtime" through /proc/self/exe, as in CVE-2019-5736. (The kernel passes the rest of a
    // shebang line as one argument: a single flag is what reaches the binary intact.)
    std::fs::write(b.rootfs().join("bin/evil"), "#!/proc/self/exe --version\n").unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(b.rootfs().join("bin/evil"))
        .status()
        .unwrap();
    b.args(&["/bin/evil"]);
    let (code, out, err) = b.run(&unique("cve1"));
    // Depending on the kernel and on how berth is linked the interpreter either cannot be run at all (ENOENT for
    // the init's memfd exe, or for a dynamically linked berth's ld.so, absent from this rootfs) or it runs the
    // sealed copy; never the host file.
    assert!(
        code == 127 || (code == 0 && out.contains("Berth version")),
        "{code} {out} {err}"
    );
    assert!(
        std::fs::read(berth()).unwrap() == before,
        "host binary changed"
    );
    // While the init waits on the exec fifo it runs runtime code: a process in the container cannot open its exe
    // for writing.
    b.args(&["true"]);
    let id = unique("cve2");
    let o = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (code, out, _) = b.exec(
        &id,
        &[
            "sh",
            "-c",
            "echo pwned >> /proc/1/exe && echo wrote; echo end",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "end");
    assert!(
        std::fs::read(berth()).unwrap() == before,
        "host binary changed"
    );
}

#[test]
fn container_exe_cannot_be_opened_for_writing_from_the_host() {
    if !privileged("container_exe_cannot_be_opened_for_writing_from_the_host") {
        return;
    }
    let before = std::fs::read(berth()).unwrap();
    let b = Bundle::new();
    b.args(&["true"]);
    let id = unique("cve3");
    let o = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The init waits on the exec fifo, still running berth's code: its exe is the sealed view of the binary
    // (a detached read-only overlayfs, or a sealed memfd), which even host root cannot open for writing.
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    assert!(pid > 0);
    let exe = format!("/proc/{pid}/exe");
    let target = std::fs::read_link(&exe).unwrap();
    assert_ne!(
        std::fs::canonicalize(berth()).unwrap(),
        target,
        "the container's init runs the host binary"
    );
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&exe)
        .expect_err("the container init's exe must not be writable");
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::EROFS | libc::ETXTBSY | libc::EACCES | libc::EPERM)
        ),
        "{exe} -> {target:?}: {err}"
    );
    assert!(
        std::fs::read(berth()).unwrap() == before,
        "host binary changed"
    );
}

#[test]
fn proc_through_a_symlink_is_refused() {
    if !privileged("proc_through_a_symlink_is_refused") {
        return;
    }
    let b = Bundle::new();
    // An image whose /proc points elsewhere would get procfs mounted where no mask applies.
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::fs::create_dir(b.rootfs().join("fakeproc")).unwrap();
    std::os::unix::fs::symlink("/fakeproc", b.rootfs().join("proc")).unwrap();
    let id = unique("procsym");
    let o = b.rt(&["create", "-b", b.path().to_str().unwrap(), &id]);
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("refusing to mount proc"),
        "{}",
        text(&o.stderr)
    );
    assert!(!b.root.join(&id).exists());
}
