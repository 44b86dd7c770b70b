//! `--version`, usage, `spec` and `features`.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// runc-style version text.
pub fn version() -> String {
    format!(
        "berth runtime version {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        berth_runtime::OCI_VERSION
    )
}

pub fn usage() -> &'static str {
    "usage: berth runtime [global options] command [command options] [arguments...]\n\
     commands: create, start, run, state, kill, delete, exec, list, ps, pause, resume, spec, features\n\
     global options: --root DIR, --log FILE, --log-format text|json, --systemd-cgroup, --debug, --rootless"
}

/// `spec`: writes the default config.json (runc's) into the bundle; never overwrites one.
pub fn spec(p: &super::args::Parsed) -> Result<i32> {
    let bundle = PathBuf::from(p.value("bundle").unwrap_or("."));
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let spec = berth_runtime::security::defaults::runc_spec(p.has("rootless"));
    let data = serde_json::to_vec_pretty(&spec)?;
    std::fs::write(&path, data).with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}

/// `features`: what this runtime supports, in runc's `features` JSON shape.
pub fn features() -> serde_json::Value {
    let caps = berth_runtime::security::capabilities::all_names();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": berth_runtime::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime",
            "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private",
            "rbind", "relatime", "remount", "ro", "rprivate", "rshared", "rslave", "runbindable", "rw",
            "shared", "slave", "strictatime", "suid", "sync", "tmpcopyup", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP", "SCMP_ACT_NOTIFY"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {
            "org.opencontainers.runc.version": env!("CARGO_PKG_VERSION"),
            "io.github.berth.runtime": "berth"
        },
        "potentiallyUnsafeConfigAnnotations": []
    })
}
