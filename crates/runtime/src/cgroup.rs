//! The runtime's use of `berth-cgroups`: resolving a container's cgroup from its spec, and the runc-style
//! refusal of systemd cgroup paths when `--systemd-cgroup` is given.

use berth_cgroups::{Cgroup, CgroupError};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, Spec};

/// Errors of cgroup handling in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum CgroupAdapterError {
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
}

/// Resolves (does not create) the container's cgroup from `linux.cgroupsPath`.
pub(crate) fn for_spec(spec: &Spec, id: &str) -> Result<Cgroup, CgroupAdapterError> {
    let path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Cgroup::new(&path, id)?)
}

/// Creates the cgroup, applies resources and adds `pid`.
pub(crate) fn setup(cg: &Cgroup, spec: &Spec, pid: i32) -> Result<(), CgroupAdapterError> {
    cg.create()?;
    if let Some(r) = resources(spec) {
        cg.apply(&r)?;
    }
    cg.add_process(pid)?;
    Ok(())
}

/// `linux.resources` with the device rules runc adds after the spec's: every `linux.devices` entry and the
/// devices every container gets (null, zero, full, random, urandom, tty, ptmx, pts, and mknod of anything),
/// so a spec that denies all devices (runc's and Docker's do) still has a working /dev.
fn resources(spec: &Spec) -> Option<LinuxResources> {
    let linux = spec.linux().as_ref()?;
    let mut r = linux.resources().clone()?;
    let Some(mut rules) = r.devices().clone() else {
        return Some(r);
    };
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_string()));
        d
    };
    for d in linux.devices().iter().flatten() {
        rules.push(rule(d.typ(), Some(d.major()), Some(d.minor()), "rwm"));
    }
    rules.push(rule(LinuxDeviceType::C, None, None, "m"));
    rules.push(rule(LinuxDeviceType::B, None, None, "m"));
    for (maj, min) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(2)),
        (136, None),
    ] {
        rules.push(rule(LinuxDeviceType::C, Some(maj), min, "rwm"));
    }
    r.set_devices(Some(rules));
    Some(r)
}
