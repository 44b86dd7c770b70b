//! Builds a container's OCI runtime `config.json` from the image config, docker's `Config` and `HostConfig`, and
//! Docker's defaults (capabilities, masked and read-only paths, default mounts, device rules, rlimits).
//!
//! Capabilities, masked and read-only paths are docker's lists (the same as
//! `berth_runtime::security::defaults`); the seccomp profile is moby's default from
//! `berth_runtime::security::defaults::docker_default_seccomp_for`, adjusted to the container's capabilities.

use std::path::Path;

use serde_json::{json, Value};

/// Errors building a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A HostConfig/Config value is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The user or group could not be found in the image (docker's message, from the runtime's resolver).
    #[error("{0}")]
    NoUserOrGroup(String),
}

/// The capability set after `Privileged`, `CapAdd` and `CapDrop` (moby's `TweakCapabilities`, in the runtime).
pub fn capabilities(hc: &Value) -> Result<Vec<String>, SpecError> {
    let list = |k: &str| -> Vec<String> {
        hc[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let privileged = hc["Privileged"].as_bool().unwrap_or(false);
    let caps = berth_runtime::security::defaults::docker_tweak_capabilities(
        &list("CapAdd"),
        &list("CapDrop"),
        privileged,
    )
    .map_err(|e| SpecError::Invalid(format!("invalid capability: {e}")))?;
    Ok(if privileged {
        in_bounding_set(caps)
    } else {
        caps
    })
}

/// `--privileged` means every capability berthd itself may hold: one missing from our bounding set (as on
/// hosts that drop CAP_SYS_RESOURCE) could never be granted, and asking for it makes capset fail.
fn in_bounding_set(caps: Vec<String>) -> Vec<String> {
    use berth_runtime::security::capabilities::{number, parse};
    caps.into_iter()
        .filter(|c| {
            parse(c).is_ok_and(|cap| {
                // SAFETY: PR_CAPBSET_READ only reads this thread's bounding set; no pointers are passed.
                unsafe {
                    libc::prctl(
                        libc::PR_CAPBSET_READ,
                        libc::c_ulong::from(number(cap)),
                        0,
                        0,
                        0,
                    ) == 1
                }
            })
        })
        .collect()
}

/// Resolves docker's `User` (`name|uid[:group|gid]`) against the rootfs' /etc/passwd and /etc/group, through
/// the runtime's resolver: it opens them inside the rootfs (`RESOLVE_IN_ROOT`), so an image whose /etc/passwd is a
/// symlink cannot make berthd read a host file.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>), SpecError> {
    use berth_runtime::security::user::{resolve_user as resolve, UserError};
    resolve(rootfs, user).map_err(|e| match e {
        UserError::UserNotFound(_) | UserError::GroupNotFound(_) => {
            SpecError::NoUserOrGroup(e.to_string())
        }
        other => SpecError::Invalid(other.to_string()),
    })
}

/// Parses docker sizes like `10m`, `1g`, `512k`, `100` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .map(|n| (n * mult as f64) as u64)
}

fn rlimit_name(n: &str) -> String {
    format!("RLIMIT_{}", n.to_ascii_uppercase())
}

/// The host's hard RLIMIT_NOFILE (we never ask for more: CAP_SYS_RESOURCE may be missing).
fn host_nofile_hard() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, h)| h)
        .unwrap_or(1024)
}

/// Everything the spec needs besides Config/HostConfig.
#[derive(Debug)]
pub struct SpecInput<'a> {
    /// Container id.
    pub id: &'a str,
    /// Mounted rootfs (merged dir).
    pub rootfs: &'a Path,
    /// Process args (entrypoint + cmd, merged already).
    pub args: &'a [String],
    /// Environment, merged already.
    pub env: &'a [String],
    /// Hostname.
    pub hostname: &'a str,
    /// Generated files to bind-mount: (/etc/hostname, /etc/hosts, /etc/resolv.conf) host paths.
    pub etc_files: [&'a Path; 3],
    /// Whether the host uses cgroup v2 only (then a private cgroup namespace, like docker).
    pub cgroup_v2: bool,
}

/// Builds a throwaway spec from `hc` alone (no rootfs, no generated files) to check the resource and
/// security parts of a HostConfig when the client sends it (create, update), so bad input fails there rather
/// than at the next start. Returns the spec, whose `linux.resources` update applies.
pub fn validate_host_config(
    id: &str,
    args: &[String],
    env: &[String],
    hc: &Value,
) -> Result<Value, SpecError> {
    let fake = Path::new("/nonexistent");
    build(
        &SpecInput {
            id,
            rootfs: fake,
            args,
            env,
            hostname: "x",
            etc_files: [fake, fake, fake],
            cgroup_v2: false,
        },
        &serde_json::json!({}),
        hc,
    )
}

/// Builds config.json.
pub fn build(input: &SpecInput<'_>, config: &Value, hc: &Value) -> Result<Value, SpecError> {
    let privileged = hc["Privileged"].as_bool().unwrap_or(false);
    let user = config["User"].as_str().unwrap_or("");
    let (uid, gid, extra_gids) = resolve_user(input.rootfs, user)?;
    let caps = capabilities(hc)?;
    let tty = config["Tty"].as_bool().unwrap_or(false);
    let mut nnp = false;
    let mut seccomp = !privileged;
    for opt in hc["SecurityOpt"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
    {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt, "true"));
        match k {
            "no-new-privileges" => nnp = v != "false",
            "seccomp" if v == "unconfined" => seccomp = false,
            "seccomp" => {
                return Err(SpecError::Invalid(format!(
                    "custom seccomp profiles are not supported yet: {opt:?} (use seccomp=unconfined or the default)"
                )))
            }
            "apparmor" | "label" => {}
            _ => {
                return Err(SpecError::Invalid(format!(
                    "invalid --security-opt: {opt:?}"
                )))
            }
        }
    }
    let hard = host_nofile_hard();
    let mut rlimits = vec![
        json!({"type": "RLIMIT_NOFILE", "soft": 1048576u64.min(hard), "hard": 1048576u64.min(hard)}),
    ];
    for u in hc["Ulimits"].as_array().into_iter().flatten() {
        let name = u["Name"].as_str().unwrap_or("");
        if name.is_empty() {
            return Err(SpecError::Invalid("ulimit without a name".into()));
        }
        let t = rlimit_name(name);
        rlimits.retain(|r| r["type"] != json!(t));
        rlimits.push(json!({"type": t, "soft": u["Soft"].as_i64().unwrap_or(0), "hard": u["Hard"].as_i64().unwrap_or(0)}));
    }
    let net_mode = hc["NetworkMode"].as_str().unwrap_or("bridge");
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if net_mode != "host" {
        namespaces.push(json!({"type": "network"}));
    }
    if input.cgroup_v2 {
        namespaces.push(json!({"type": "cgroup"}));
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    ];
    for (dest, src) in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
        .iter()
        .zip(input.etc_files)
    {
        mounts.push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    let mut resources = json!({
        "devices": [{"allow": privileged, "access": "rwm"}],
    });
    let mem = hc["Memory"].as_i64().unwrap_or(0);
    let swap = hc["MemorySwap"].as_i64().unwrap_or(0);
    if mem < 0 || (mem > 0 && mem < 6 * 1024 * 1024) {
        return Err(SpecError::Invalid(
            "Minimum memory limit allowed is 6MB".into(),
        ));
    }
    if mem > 0 {
        resources["memory"] = json!({"limit": mem});
        if swap > 0 {
            if swap < mem {
                return Err(SpecError::Invalid(
                    "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
                ));
            }
            resources["memory"]["swap"] = json!(swap);
        } else if swap == -1 {
            resources["memory"]["swap"] = json!(-1);
        }
    }
    let mut cpu = json!({});
    if let Some(s) = hc["CpuShares"].as_u64().filter(|s| *s > 0) {
        cpu["shares"] = json!(s);
    }
    let nano = hc["NanoCpus"].as_i64().unwrap_or(0);
    if nano > 0 {
        if hc["CpuQuota"].as_i64().unwrap_or(0) > 0 || hc["CpuPeriod"].as_i64().unwrap_or(0) > 0 {
            return Err(SpecError::Invalid(
                "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set".into(),
            ));
        }
        cpu["period"] = json!(100000);
        cpu["quota"] = json!(nano * 100000 / 1_000_000_000);
    }
    if let Some(q) = hc["CpuQuota"].as_i64().filter(|q| *q > 0) {
        cpu["quota"] = json!(q);
    }
    if let Some(p) = hc["CpuPeriod"].as_i64().filter(|p| *p > 0) {
        cpu["period"] = json!(p);
    }
    if let Some(c) = hc["CpusetCpus"].as_str().filter(|c| !c.is_empty()) {
        cpu["cpus"] = json!(c);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        resources["cpu"] = cpu;
    }
    if let Some(p) = hc["PidsLimit"].as_i64().filter(|p| *p != 0) {
        resources["pids"] = json!({"limit": p});
    }
    let caps_v = json!(caps);
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": format!("/berth/{}", input.id),
    });
    if seccomp {
        let bounding = berth_runtime::security::capabilities::parse_all(&caps)
            .map_err(|e| SpecError::Invalid(format!("capabilities: {e}")))?;
        linux["seccomp"] =
            berth_runtime::security::defaults::docker_default_seccomp_value_for(&bounding);
    }
    if !privileged {
        linux["maskedPaths"] = json!(berth_runtime::security::defaults::docker_masked_paths());
        linux["readonlyPaths"] = json!(berth_runtime::security::defaults::docker_readonly_paths());
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": extra_gids},
            "args": input.args,
            "env": input.env,
            "cwd": config["WorkingDir"].as_str().filter(|s| !s.is_empty()).unwrap_or("/"),
            "capabilities": {"bounding": caps_v, "effective": caps_v, "permitted": caps_v},
            "rlimits": rlimits,
            "noNewPrivileges": nnp,
        },
        "root": {"path": input.rootfs, "readonly": hc["ReadonlyRootfs"].as_bool().unwrap_or(false)},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": linux,
    });
    // docker's ConsoleSize [height, width]: the terminal starts at the client's size, before any resize.
    let dim = |k: usize| hc["ConsoleSize"][k].as_u64().filter(|n| *n > 0);
    if let (true, Some(h), Some(w)) = (tty, dim(0), dim(1)) {
        spec["process"]["consoleSize"] = json!({"height": h, "width": w});
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_add_drop() {
        let c = capabilities(&json!({})).unwrap();
        assert_eq!(c.len(), 14);
        let c = capabilities(&json!({"CapDrop": ["ALL"], "CapAdd": ["net_admin"]})).unwrap();
        assert_eq!(c, vec!["CAP_NET_ADMIN"]);
        let c = capabilities(&json!({"CapDrop": ["CHOWN"]})).unwrap();
        assert!(!c.contains(&"CAP_CHOWN".to_string()) && c.len() == 13);
        assert!(capabilities(&json!({"CapAdd": ["BOGUS"]})).is_err());
    }

    #[test]
    fn users() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:33:34::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("etc/group"),
            "root:x:0:\nwww:x:34:\nextra:x:50:web\n",
        )
        .unwrap();
        assert_eq!(resolve_user(tmp.path(), "").unwrap(), (0, 0, vec![]));
        assert_eq!(resolve_user(tmp.path(), "web").unwrap(), (33, 34, vec![50]));
        assert_eq!(
            resolve_user(tmp.path(), "1000:1000").unwrap(),
            (1000, 1000, vec![])
        );
        assert_eq!(resolve_user(tmp.path(), "web:root").unwrap().1, 0);
        assert!(resolve_user(tmp.path(), "nobody").is_err());
    }

    #[test]
    fn sizes_and_limits() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("7"), Some(7));
        let tmp = tempfile::tempdir().unwrap();
        let p = Path::new("/x");
        let input = SpecInput {
            id: "abc",
            rootfs: tmp.path(),
            args: &["/hello".to_string()],
            env: &[],
            hostname: "abc",
            etc_files: [p, p, p],
            cgroup_v2: false,
        };
        let s = build(
            &input,
            &json!({}),
            &json!({"NanoCpus": 500_000_000i64, "Memory": 64 << 20}),
        )
        .unwrap();
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 50000);
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert!(s["process"]["rlimits"][0]["hard"].as_u64().unwrap() <= host_nofile_hard());
        assert!(build(&input, &json!({}), &json!({"Memory": 1024})).is_err());
        assert!(s["linux"]["seccomp"]["syscalls"]
            .as_array()
            .is_some_and(|a| !a.is_empty()));
        let unconfined = build(
            &input,
            &json!({}),
            &json!({"SecurityOpt": ["seccomp=unconfined"]}),
        )
        .unwrap();
        assert!(unconfined["linux"]["seccomp"].is_null());
        let host = build(&input, &json!({}), &json!({"NetworkMode": "host"})).unwrap();
        assert!(!host["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
    }
}
