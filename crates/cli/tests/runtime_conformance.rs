//! Regressions found by running the opencontainers runtime-tools validation suite against `berth runtime`
//! (docs/runtime-tools-results.md): each test pins one check that runc passes.

mod runtime_common;
use runtime_common::*;
use serde_json::json;

/// runtime-tools' generated config carries a seccomp profile older than close_range(2) whose unknown
/// syscalls fail with ENOSYS: the container must still start (fds are then marked close-on-exec through
/// /proc/self/fd, like runc's fallback), and no runtime fd may reach the container process.
#[test]
fn starts_when_seccomp_denies_close_range() {
    if !privileged("starts_when_seccomp_denies_close_range") {
        return;
    }
    let b = Bundle::new();
    b.edit(|c| {
        c["process"]["args"] = json!(["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
        });
    });
    let (code, out, err) = b.run(&unique("closerange"));
    assert_eq!(code, 0, "container did not start: {err}");
    // sh's 0-2 plus the fd ls uses for reading the directory itself.
    assert_eq!(
        out.trim(),
        "0 1 2 3",
        "unexpected fds in the container: {out}"
    );
}

/// `linux.rootfsPropagation` shared / unbindable: pivot_root refuses a shared new root and an unbindable
/// "/" cannot be bind-mounted, so both are applied to the container's "/" after pivot_root (runc fails
/// to create such containers on this host; runtime-tools' linux_rootfs_propagation checks the result).
#[test]
fn rootfs_propagation_shared_and_unbindable() {
    if !privileged("rootfs_propagation_shared_and_unbindable") {
        return;
    }
    let b = Bundle::new();
    for (prop, tag) in [("shared", "shared:"), ("unbindable", "unbindable")] {
        b.edit(|c| {
            c["linux"]["rootfsPropagation"] = json!(prop);
            c["process"]["args"] = json!(["sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo"]);
        });
        let (code, out, err) = b.run(&unique(&format!("prop-{prop}")));
        assert_eq!(code, 0, "{prop}: container did not start: {err}");
        assert!(out.contains(tag), "{prop}: root mount lacks {tag}: {out}");
    }
}
