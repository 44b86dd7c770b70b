//! Linux capabilities: the five sets of `process.capabilities`, applied with raw `capset`/`prctl`.
//!
//! Order, as runc does it (and why):
//! 1. drop from the **bounding** set first: `PR_CAPBSET_DROP` needs `CAP_SETPCAP` in the effective set, which the
//!    process only has before its final sets are installed;
//! 2. `capset` **effective, permitted, inheritable** in one call;
//! 3. **ambient** last: the kernel only accepts an ambient capability that is both permitted and inheritable, so it
//!    can only be raised once step 2 is done; others are skipped with a debug log.
//!
//! [`apply`] does all three and can run before or after the uid switch: after `setresuid` to a non-zero uid the
//! effective set is empty (even with `PR_SET_KEEPCAPS`), so [`apply`] first raises the effective set back to the
//! permitted one to regain `CAP_SETPCAP` for the bounding-set drop. The uid switch itself must be bracketed by
//! [`prepare_for_user_switch`] and [`finish_user_switch`] so the permitted set survives it.
//!
//! Capabilities this kernel does not know (number above `/proc/sys/kernel/cap_last_cap`) are ignored with a debug
//! log, as runc does. Sets are plain `u64` bit masks: no allocation, a handful of syscalls.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};
use std::sync::atomic::{AtomicU8, Ordering};

/// Errors from applying capabilities.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// A capability name that is not a Linux capability.
    #[error("unknown capability {0:?}")]
    Unknown(String),
    /// `PR_CAPBSET_DROP` failed (usually: no `CAP_SETPCAP` in the effective set).
    #[error("cannot drop {cap} from the bounding set: {source}")]
    DropBounding {
        /// Capability name, e.g. `CAP_SYS_ADMIN`.
        cap: &'static str,
        /// errno from prctl.
        source: nix::Error,
    },
    /// `capget` failed.
    #[error("capget: {0}")]
    Capget(nix::Error),
    /// `capset` refused the requested sets.
    #[error(
        "capset (effective {effective:#x}, permitted {permitted:#x}, inheritable {inheritable:#x}) failed: {source} \
         (effective must be within permitted; permitted and inheritable cannot grow beyond the current \
         permitted and bounding sets)"
    )]
    Capset {
        /// Requested effective mask.
        effective: u64,
        /// Requested permitted mask.
        permitted: u64,
        /// Requested inheritable mask.
        inheritable: u64,
        /// errno from capset.
        source: nix::Error,
    },
    /// Raising or clearing an ambient capability failed.
    #[error("ambient capability {cap}: {source}")]
    Ambient {
        /// Capability name or `all` for the clear.
        cap: &'static str,
        /// errno from prctl.
        source: nix::Error,
    },
    /// `PR_SET_KEEPCAPS` failed.
    #[error("prctl(PR_SET_KEEPCAPS): {0}")]
    KeepCaps(nix::Error),
}

/// Every capability oci-spec knows, with its kernel number and its canonical name.
const ALL: [(Capability, u8, &str); 41] = [
    (Capability::Chown, 0, "CAP_CHOWN"),
    (Capability::DacOverride, 1, "CAP_DAC_OVERRIDE"),
    (Capability::DacReadSearch, 2, "CAP_DAC_READ_SEARCH"),
    (Capability::Fowner, 3, "CAP_FOWNER"),
    (Capability::Fsetid, 4, "CAP_FSETID"),
    (Capability::Kill, 5, "CAP_KILL"),
    (Capability::Setgid, 6, "CAP_SETGID"),
    (Capability::Setuid, 7, "CAP_SETUID"),
    (Capability::Setpcap, 8, "CAP_SETPCAP"),
    (Capability::LinuxImmutable, 9, "CAP_LINUX_IMMUTABLE"),
    (Capability::NetBindService, 10, "CAP_NET_BIND_SERVICE"),
    (Capability::NetBroadcast, 11, "CAP_NET_BROADCAST"),
    (Capability::NetAdmin, 12, "CAP_NET_ADMIN"),
    (Capability::NetRaw, 13, "CAP_NET_RAW"),
    (Capability::IpcLock, 14, "CAP_IPC_LOCK"),
    (Capability::IpcOwner, 15, "CAP_IPC_OWNER"),
    (Capability::SysModule, 16, "CAP_SYS_MODULE"),
    (Capability::SysRawio, 17, "CAP_SYS_RAWIO"),
    (Capability::SysChroot, 18, "CAP_SYS_CHROOT"),
    (Capability::SysPtrace, 19, "CAP_SYS_PTRACE"),
    (Capability::SysPacct, 20, "CAP_SYS_PACCT"),
    (Capability::SysAdmin, 21, "CAP_SYS_ADMIN"),
    (Capability::SysBoot, 22, "CAP_SYS_BOOT"),
    (Capability::SysNice, 23, "CAP_SYS_NICE"),
    (Capability::SysResource, 24, "CAP_SYS_RESOURCE"),
    (Capability::SysTime, 25, "CAP_SYS_TIME"),
    (Capability::SysTtyConfig, 26, "CAP_SYS_TTY_CONFIG"),
    (Capability::Mknod, 27, "CAP_MKNOD"),
    (Capability::Lease, 28, "CAP_LEASE"),
    (Capability::AuditWrite, 29, "CAP_AUDIT_WRITE"),
    (Capability::AuditControl, 30, "CAP_AUDIT_CONTROL"),
    (Capability::Setfcap, 31, "CAP_SETFCAP"),
    (Capability::MacOverride, 32, "CAP_MAC_OVERRIDE"),
    (Capability::MacAdmin, 33, "CAP_MAC_ADMIN"),
    (Capability::Syslog, 34, "CAP_SYSLOG"),
    (Capability::WakeAlarm, 35, "CAP_WAKE_ALARM"),
    (Capability::BlockSuspend, 36, "CAP_BLOCK_SUSPEND"),
    (Capability::AuditRead, 37, "CAP_AUDIT_READ"),
    (Capability::Perfmon, 38, "CAP_PERFMON"),
    (Capability::Bpf, 39, "CAP_BPF"),
    (Capability::CheckpointRestore, 40, "CAP_CHECKPOINT_RESTORE"),
];

/// The kernel number of a capability (`CAP_CHOWN` is 0).
pub fn number(cap: Capability) -> u8 {
    // The table is complete (oci-spec's enum is exhaustive and has 41 members), so the fallback is unreachable.
    ALL.iter()
        .find(|(c, _, _)| *c == cap)
        .map_or(0, |(_, n, _)| *n)
}

/// The canonical name of a capability, e.g. `CAP_SYS_ADMIN`.
pub fn name(cap: Capability) -> &'static str {
    ALL.iter()
        .find(|(c, _, _)| *c == cap)
        .map_or("CAP_UNKNOWN", |(_, _, n)| *n)
}

fn name_of_number(n: u8) -> &'static str {
    ALL.get(usize::from(n))
        .map_or("CAP_UNKNOWN", |(_, _, name)| *name)
}

/// Parse a capability name as docker and the OCI spec write it: `CAP_NET_ADMIN`, `NET_ADMIN`, any case.
pub fn parse(name: &str) -> Result<Capability, CapsError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    ALL.iter()
        .find(|(_, _, n)| &n[4..] == bare)
        .map(|(c, _, _)| *c)
        .ok_or_else(|| CapsError::Unknown(name.to_string()))
}

/// Parse a list of capability names (see [`parse`]); the error names the first unknown one.
pub fn parse_all<S: AsRef<str>>(names: &[S]) -> Result<Capabilities, CapsError> {
    names.iter().map(|n| parse(n.as_ref())).collect()
}

/// Every capability, by canonical name, in kernel order (docker's `--cap-add ALL`, `--privileged`).
pub fn all_names() -> Vec<String> {
    ALL.iter().map(|(_, _, n)| (*n).to_string()).collect()
}

/// The highest capability number the running kernel knows (`/proc/sys/kernel/cap_last_cap`).
///
/// Probed with `PR_CAPBSET_READ` (which fails with `EINVAL` past the last one) so it works without `/proc`, e.g.
/// after `pivot_root` into a rootfs without it; cached after the first call.
pub fn last_cap() -> u8 {
    static LAST: AtomicU8 = AtomicU8::new(u8::MAX);
    let cached = LAST.load(Ordering::Relaxed);
    if cached != u8::MAX {
        return cached;
    }
    let known = |n: u8| {
        // SAFETY: PR_CAPBSET_READ only reads the calling thread's bounding set; no pointers are passed.
        unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(n), 0, 0, 0) >= 0 }
    };
    // Start at the newest capability we know of: usually two probes.
    let mut n: u8 = 40;
    if known(n) {
        while n < 63 && known(n + 1) {
            n += 1;
        }
    } else {
        while n > 0 && !known(n) {
            n -= 1;
        }
    }
    LAST.store(n, Ordering::Relaxed);
    n
}

/// Bit mask of a set of capabilities, leaving out (with a debug log) those the kernel does not know.
pub fn mask(set: Option<&Capabilities>, last: u8) -> u64 {
    let mut m = 0u64;
    for cap in set.into_iter().flatten() {
        let n = number(*cap);
        if n > last {
            log::debug!(
                "ignoring capability {} unknown to this kernel (cap_last_cap {last})",
                name(*cap)
            );
            continue;
        }
        m |= 1 << n;
    }
    m
}

/// The thread's current (effective, permitted, inheritable) masks.
pub fn current() -> Result<(u64, u64, u64), CapsError> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are valid, properly sized (v3 uses two data structs) and live across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(CapsError::Capget(nix::Error::last()));
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

/// Set the thread's (effective, permitted, inheritable) masks in one `capset`.
pub fn set(effective: u64, permitted: u64, inheritable: u64) -> Result<(), CapsError> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // Truncation is the point: each 64-bit mask is split into its low and high 32-bit halves.
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data are valid and properly sized for _LINUX_CAPABILITY_VERSION_3; capset only reads data.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(CapsError::Capset {
            effective,
            permitted,
            inheritable,
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// Drop every capability not in `keep` from the bounding set (needs `CAP_SETPCAP` in the effective set).
/// Capabilities already out of the bounding set are skipped, so this also works when the caller has no
/// `CAP_SETPCAP` but nothing needs dropping.
pub fn drop_bounding(keep: u64, last: u8) -> Result<(), CapsError> {
    for n in 0..=last {
        if keep & (1 << n) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_READ takes an integer and reads the calling thread's bounding set.
        let present =
            unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(n), 0, 0, 0) };
        if present <= 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes an integer and only changes the calling thread's bounding set.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(n), 0, 0, 0) } != 0 {
            return Err(CapsError::DropBounding {
                cap: name_of_number(n),
                source: nix::Error::last(),
            });
        }
    }
    Ok(())
}

/// Clear the ambient set, then raise each capability of `ambient` that is in both `permitted` and `inheritable`
/// (the kernel refuses any other; those are skipped with a debug log).
pub fn set_ambient(
    ambient: u64,
    permitted: u64,
    inheritable: u64,
    last: u8,
) -> Result<(), CapsError> {
    let op = |action: libc::c_int, n: u8| {
        // SAFETY: PR_CAP_AMBIENT with integer arguments only changes the calling thread's ambient set.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::c_ulong::from(action as u32),
                libc::c_ulong::from(n),
                0,
                0,
            )
        }
    };
    if op(libc::PR_CAP_AMBIENT_CLEAR_ALL, 0) != 0 {
        let err = nix::Error::last();
        // EINVAL: a kernel before 4.3 has no ambient set; nothing to clear then, and nothing can be raised.
        if err == nix::Error::EINVAL && ambient == 0 {
            return Ok(());
        }
        return Err(CapsError::Ambient {
            cap: "all",
            source: err,
        });
    }
    for n in 0..=last {
        if ambient & (1 << n) == 0 {
            continue;
        }
        if permitted & inheritable & (1 << n) == 0 {
            log::debug!(
                "not raising ambient {}: not in both permitted and inheritable",
                name_of_number(n)
            );
            continue;
        }
        if op(libc::PR_CAP_AMBIENT_RAISE, n) != 0 {
            return Err(CapsError::Ambient {
                cap: name_of_number(n),
                source: nix::Error::last(),
            });
        }
    }
    Ok(())
}

/// Apply all five sets of `caps`: bounding, then effective/permitted/inheritable, then ambient (see the module
/// doc). A missing set is an empty one, as in the OCI spec.
pub fn apply(caps: &LinuxCapabilities) -> Result<(), CapsError> {
    let last = last_cap();
    let bounding = mask(caps.bounding().as_ref(), last);
    let effective = mask(caps.effective().as_ref(), last);
    let permitted = mask(caps.permitted().as_ref(), last);
    let inheritable = mask(caps.inheritable().as_ref(), last);
    let ambient = mask(caps.ambient().as_ref(), last);

    // After a switch to a non-zero uid the effective set is empty: raise it to the permitted set so
    // CAP_SETPCAP (needed for PR_CAPBSET_DROP) is usable again. A no-op as root before the switch.
    let (cur_eff, cur_perm, cur_inh) = current()?;
    let setpcap = 1u64 << number(Capability::Setpcap);
    if cur_eff & setpcap == 0 && cur_perm & setpcap != 0 {
        set(cur_perm, cur_perm, cur_inh)?;
    }
    drop_bounding(bounding, last)?;
    set(effective, permitted, inheritable)?;
    set_ambient(ambient, permitted, inheritable, last)
}

/// Keep the permitted capabilities across the coming `setresuid` away from uid 0 (`PR_SET_KEEPCAPS` 1). Call it
/// right before [`super::user::switch`], then [`finish_user_switch`] after it.
pub fn prepare_for_user_switch() -> Result<(), CapsError> {
    set_keepcaps(1)
}

/// Clear `PR_SET_KEEPCAPS` again after the uid switch, as runc does, so a later `setuid` in the container behaves
/// as usual.
pub fn finish_user_switch() -> Result<(), CapsError> {
    set_keepcaps(0)
}

fn set_keepcaps(on: libc::c_ulong) -> Result<(), CapsError> {
    // SAFETY: PR_SET_KEEPCAPS takes an integer and only changes the calling thread's securebits.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on, 0, 0, 0) } != 0 {
        return Err(CapsError::KeepCaps(nix::Error::last()));
    }
    Ok(())
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[cfg(test)]
#[path = "capabilities_tests.rs"]
mod tests;
