//! Defaults: the spec `runc spec` prints, and Docker's defaults for the engine (capabilities, masked and
//! read-only paths, mounts, and moby's default seccomp profile).
//!
//! The seccomp profile is moby's `profiles/seccomp/default.json`, embedded verbatim
//! (`docker_seccomp_default.json`) and translated at run time the way moby's `setupSeccomp` does: the `archMap`
//! entry of the native architecture (plus its sub-architectures) becomes `architectures`, and each rule is kept
//! only if its `includes` hold (all listed caps in the container's bounding set, the Go arch listed, kernel at
//! least `minKernel`) and its `excludes` do not (any listed cap granted, the arch listed, kernel at least
//! `minKernel`). The same translation serves user profiles (`--security-opt seccomp=profile.json`):
//! [`docker_seccomp_profile`].

use oci_spec::runtime::{
    Arch, Capabilities, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxSeccomp,
    LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompBuilder, LinuxSeccompFilterFlag, LinuxSyscall,
    LinuxSyscallBuilder, Mount, MountBuilder, Spec,
};
use serde::Deserialize;

use super::capabilities;

/// Errors from translating a docker seccomp profile.
#[derive(Debug, thiserror::Error)]
pub enum DefaultsError {
    /// Not valid profile JSON.
    #[error("invalid seccomp profile: {0}")]
    Json(#[from] serde_json::Error),
    /// Both `architectures` and `archMap` given.
    #[error("invalid seccomp profile: 'architectures' and 'archMap' cannot both be set")]
    ArchAndArchMap,
    /// A rule with both `name` and `names`.
    #[error("invalid seccomp profile: a syscall rule cannot set both 'name' and 'names'")]
    NameAndNames,
    /// The oci-spec builder refused a value.
    #[error("building the seccomp config: {0}")]
    Build(#[from] oci_spec::OciSpecError),
}

const RUNC_SPEC: &str = include_str!("runc_spec.json");
const DOCKER_SECCOMP: &str = include_str!("docker_seccomp_default.json");

/// The spec `runc spec` prints (runc 1.1: `sh` on a terminal, three capabilities, NOFILE 1024, read-only rootfs),
/// or with `rootless`, what `runc spec --rootless` prints: a user namespace mapping root to the caller's euid/egid,
/// no network namespace, `/sys` bind-mounted, no `gid=5` on devpts and no cgroup resources.
pub fn runc_spec(rootless: bool) -> Spec {
    // The embedded JSON is runc's own output and is checked by the tests, so parsing it cannot fail.
    let mut spec: Spec = serde_json::from_str(RUNC_SPEC).expect("embedded runc spec is valid");
    if !rootless {
        return spec;
    }
    if let Some(mounts) = spec.mounts_mut() {
        for m in mounts.iter_mut() {
            if m.typ().as_deref() == Some("devpts") {
                let opts = m.options().clone().unwrap_or_default();
                m.set_options(Some(opts.into_iter().filter(|o| o != "gid=5").collect()));
            } else if m.typ().as_deref() == Some("sysfs") {
                m.set_typ(Some("none".into()));
                m.set_source(Some("/sys".into()));
                m.set_options(Some(
                    ["rbind", "nosuid", "noexec", "nodev", "ro"]
                        .map(String::from)
                        .to_vec(),
                ));
            }
        }
    }
    // SAFETY: geteuid/getegid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if let Some(linux) = spec.linux_mut() {
        let map = |host| {
            oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host)
                .size(1u32)
                .build()
                .expect("all id mapping fields set")
        };
        linux.set_uid_mappings(Some(vec![map(uid)]));
        linux.set_gid_mappings(Some(vec![map(gid)]));
        linux.set_resources(None);
        let mut ns: Vec<_> = linux.namespaces().clone().unwrap_or_default();
        ns.retain(|n| n.typ() != LinuxNamespaceType::Network);
        ns.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()
                .expect("type set"),
        );
        linux.set_namespaces(Some(ns));
    }
    spec
}

/// Docker's 14 default capabilities (moby `oci.DefaultCapabilities`).
pub fn docker_default_capabilities() -> Vec<String> {
    [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    .map(String::from)
    .to_vec()
}

/// Docker's capability list for a container: `--privileged` gets every capability; otherwise `--cap-drop` and
/// `--cap-add` (names with or without `CAP_`, any case, or `ALL`) tweak [`docker_default_capabilities`], exactly
/// as moby's `TweakCapabilities`: `--cap-add ALL` means all but the dropped ones, `--cap-drop ALL` means only the
/// added ones. Unknown names are an error naming the capability.
pub fn docker_tweak_capabilities<S: AsRef<str>>(
    adds: &[S],
    drops: &[S],
    privileged: bool,
) -> Result<Vec<String>, capabilities::CapsError> {
    if privileged {
        return Ok(capabilities::all_names());
    }
    let basics = docker_default_capabilities();
    if adds.is_empty() && drops.is_empty() {
        return Ok(basics);
    }
    // Canonical names, "ALL" kept as is, duplicates removed.
    let normalize = |list: &[S]| -> Result<Vec<String>, capabilities::CapsError> {
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for c in list {
            let c = c.as_ref();
            let n = if c.eq_ignore_ascii_case("ALL") {
                "ALL".to_string()
            } else {
                capabilities::name(capabilities::parse(c)?).to_string()
            };
            if !out.contains(&n) {
                out.push(n);
            }
        }
        Ok(out)
    };
    let (adds, drops) = (normalize(adds)?, normalize(drops)?);
    let all = "ALL".to_string();
    Ok(if adds.contains(&all) {
        capabilities::all_names()
            .into_iter()
            .filter(|c| !drops.contains(c))
            .collect()
    } else if drops.contains(&all) {
        adds
    } else {
        let mut caps: Vec<String> = basics.into_iter().filter(|c| !drops.contains(c)).collect();
        for a in adds {
            if !caps.contains(&a) {
                caps.push(a);
            }
        }
        caps
    })
}

/// `process.capabilities` as docker sets them: bounding, effective and permitted all equal to `caps`, no
/// inheritable (dropped by moby after CVE-2022-24769) and no ambient. Unknown names are an error.
pub fn docker_process_capabilities<S: AsRef<str>>(
    caps: &[S],
) -> Result<oci_spec::runtime::LinuxCapabilities, capabilities::CapsError> {
    let set = capabilities::parse_all(caps)?;
    let mut c = oci_spec::runtime::LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set));
    c.set_inheritable(None);
    c.set_ambient(None);
    Ok(c)
}

/// Paths docker masks (as of Docker 28: `/proc/interrupts` and `/sys/devices/virtual/powercap` included).
pub fn docker_masked_paths() -> Vec<String> {
    [
        "/proc/asound",
        "/proc/acpi",
        "/proc/interrupts",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .map(String::from)
    .to_vec()
}

/// Paths docker makes read-only.
pub fn docker_readonly_paths() -> Vec<String> {
    [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .map(String::from)
    .to_vec()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_string()).collect::<Vec<_>>())
        .build()
        .expect("all mount fields set")
}

/// Docker's default mounts, in moby's order: /proc, /dev (tmpfs), /dev/pts (gid=5), /sys (ro), /sys/fs/cgroup
/// (ro), /dev/mqueue, /dev/shm (64 MiB, docker's default `--shm-size`).
pub fn docker_default_mounts() -> Vec<Mount> {
    vec![
        mount(
            "/proc",
            "proc",
            "proc",
            &["rw", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["rw", "nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "rw",
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["rw", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &[
                "rw",
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                "size=65536k",
            ],
        ),
    ]
}

/// moby's default seccomp profile for a container with Docker's default capabilities.
pub fn docker_default_seccomp() -> LinuxSeccomp {
    let caps = capabilities::parse_all(&docker_default_capabilities())
        .expect("docker's capabilities are known");
    docker_default_seccomp_for(&caps)
}

/// moby's default seccomp profile for a container whose bounding set is `bounding` (e.g. after `--cap-add`).
pub fn docker_default_seccomp_for(bounding: &Capabilities) -> LinuxSeccomp {
    // The embedded profile is moby's own and is checked by the tests, so translating it cannot fail.
    docker_seccomp_profile(DOCKER_SECCOMP, bounding)
        .expect("embedded docker seccomp profile is valid")
}

/// [`docker_default_seccomp_for`] as the JSON of `linux.seccomp`, memoized per bounding set: the engine builds a
/// spec at every create and start, and parsing the 20 KB embedded profile, filtering it and serializing the
/// result again cost more than all the rest of the spec. The profile depends only on the bounding set, the
/// architecture and the kernel version, and the latter two do not change while the process runs.
pub fn docker_default_seccomp_value_for(bounding: &Capabilities) -> serde_json::Value {
    use std::sync::Mutex;
    // Few distinct bounding sets occur (docker's default, a few --cap-add variants): a short list suffices.
    static CACHE: Mutex<Vec<(u64, serde_json::Value)>> = Mutex::new(Vec::new());
    const MAX_ENTRIES: usize = 32;
    // 63: every capability number fits in the mask, known to this kernel or not, so distinct sets never share
    // an entry (an unknown capability still filters rules by name).
    let key = capabilities::mask(Some(bounding), 63);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    memo(&mut cache, key, MAX_ENTRIES, || {
        serde_json::to_value(docker_default_seccomp_for(bounding))
            .expect("a LinuxSeccomp always serializes")
    })
}

/// The value for `key` in a memo of at most `max` entries, made by `make` when missing. The oldest entry
/// makes room: a process that sees ever new bounding sets (`--cap-add` of every combination) keeps a bounded
/// memo, and the few sets in use stay in it.
pub(crate) fn memo(
    cache: &mut Vec<(u64, serde_json::Value)>,
    key: u64,
    max: usize,
    make: impl FnOnce() -> serde_json::Value,
) -> serde_json::Value {
    if let Some((_, v)) = cache.iter().find(|(k, _)| *k == key) {
        return v.clone();
    }
    let v = make();
    while cache.len() >= max.max(1) {
        cache.remove(0);
    }
    cache.push((key, v.clone()));
    v
}

/// A docker seccomp profile (moby's format: `archMap`, `includes`/`excludes`) as JSON.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    name: Option<String>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<LinuxSeccompArg>,
    includes: Option<Filter>,
    excludes: Option<Filter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
    min_kernel: Option<String>,
}

/// The architecture as Go's `runtime.GOARCH` names it: moby's `includes.arches` use those names.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The native architecture in seccomp's naming.
pub fn native_seccomp_arch() -> Option<Arch> {
    Some(match std::env::consts::ARCH {
        "x86_64" => Arch::ScmpArchX86_64,
        "x86" => Arch::ScmpArchX86,
        "aarch64" => Arch::ScmpArchAarch64,
        "arm" => Arch::ScmpArchArm,
        "powerpc64" if cfg!(target_endian = "little") => Arch::ScmpArchPpc64le,
        "powerpc64" => Arch::ScmpArchPpc64,
        "s390x" => Arch::ScmpArchS390x,
        "riscv64" => Arch::ScmpArchRiscv64,
        "mips64" if cfg!(target_endian = "little") => Arch::ScmpArchMipsel64,
        "mips64" => Arch::ScmpArchMips64,
        _ => return None,
    })
}

/// The running kernel's (major, minor) version.
pub fn kernel_version() -> Option<(u32, u32)> {
    let uts = nix::sys::utsname::uname().ok()?;
    parse_version(uts.release().to_str()?)
}

/// Parse "6.1.0-18-amd64" or "4.8" into (major, minor).
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    Some((
        it.next()?.parse().ok()?,
        it.next().and_then(|m| m.parse().ok()).unwrap_or(0),
    ))
}

/// Whether the kernel is at least `min` ("4.8"); an unreadable version counts as new enough, like moby.
fn kernel_at_least(kernel: Option<(u32, u32)>, min: &str) -> bool {
    match (kernel, parse_version(min)) {
        (Some(k), Some(m)) => k >= m,
        _ => true,
    }
}

fn has_cap(bounding: &Capabilities, name: &str) -> bool {
    capabilities::parse(name).is_ok_and(|c| bounding.contains(&c))
}

/// Translate a docker seccomp profile (moby's JSON format) into `linux.seccomp` for a container whose bounding
/// set is `bounding`, filtering rules like moby does (see the module doc).
pub fn docker_seccomp_profile(
    json: &str,
    bounding: &Capabilities,
) -> Result<LinuxSeccomp, DefaultsError> {
    let profile: Profile = serde_json::from_str(json)?;
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(DefaultsError::ArchAndArchMap);
    }
    let mut arches = profile.architectures;
    if let Some(native) = native_seccomp_arch() {
        for m in profile.arch_map.iter().filter(|m| m.architecture == native) {
            arches.push(m.architecture);
            arches.extend(m.sub_architectures.iter().flatten().copied());
        }
    }
    let arch = go_arch();
    let kernel = kernel_version();
    let mut rules: Vec<LinuxSyscall> = Vec::with_capacity(profile.syscalls.len());
    for rule in profile.syscalls {
        if let Some(ex) = &rule.excludes {
            if ex.arches.iter().any(|a| a == arch)
                || ex.caps.iter().any(|c| has_cap(bounding, c))
                || ex
                    .min_kernel
                    .as_deref()
                    .is_some_and(|m| kernel_at_least(kernel, m))
            {
                continue;
            }
        }
        if let Some(inc) = &rule.includes {
            if (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch))
                || !inc.caps.iter().all(|c| has_cap(bounding, c))
                || inc
                    .min_kernel
                    .as_deref()
                    .is_some_and(|m| !kernel_at_least(kernel, m))
            {
                continue;
            }
        }
        let names = match (rule.name, rule.names.is_empty()) {
            (Some(_), false) => return Err(DefaultsError::NameAndNames),
            (Some(n), true) => vec![n],
            (None, _) => rule.names,
        };
        let mut b = LinuxSyscallBuilder::default()
            .names(names)
            .action(rule.action);
        if let Some(e) = rule.errno_ret {
            b = b.errno_ret(e);
        }
        if !rule.args.is_empty() {
            b = b.args(rule.args);
        }
        rules.push(b.build()?);
    }
    let mut b = LinuxSeccompBuilder::default()
        .default_action(profile.default_action)
        .syscalls(rules);
    if let Some(e) = profile.default_errno_ret {
        b = b.default_errno_ret(e);
    }
    if !arches.is_empty() {
        b = b.architectures(arches);
    }
    if !profile.flags.is_empty() {
        b = b.flags(profile.flags);
    }
    Ok(b.build()?)
}

#[cfg(test)]
#[path = "defaults_tests.rs"]
mod tests;
