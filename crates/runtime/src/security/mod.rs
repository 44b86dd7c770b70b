//! Process security settings applied just before `execve`: capabilities, seccomp, rlimits, user and groups,
//! plus Docker's defaults (capabilities, seccomp profile, masked and read-only paths) for the engine.
//!
//! [`apply_process_security`] runs in the container's init (or exec) child, single-threaded, after `pivot_root`
//! and the mounts, right before `execve`. The order, and why:
//!
//! 1. **rlimits** ([`rlimits::apply`]): first, while the process is still root with its full capability sets
//!    (raising a hard limit needs `CAP_SYS_RESOURCE`, which the container usually does not keep).
//! 2. (`oom_score_adj` is written by the caller, elsewhere.)
//! 3. **no_new_privs** if `process.noNewPrivileges`: set before anything that depends on it (seccomp).
//! 4. **seccomp, early case**: loading a filter needs no_new_privs *or* `CAP_SYS_ADMIN`. Without no_new_privs, if
//!    the process is going to lose `CAP_SYS_ADMIN` (steps 5-6), the filter must be loaded now, while it still has
//!    it, as runc does. The filter is then active during steps 5-8, so it must allow `prctl`, `capset`,
//!    `setgroups`, `setresgid`, `setresuid`, `umask` and `execve` (docker's default profile does).
//! 5. **keepcaps + user switch** ([`user::switch`]): `PR_SET_KEEPCAPS` so the permitted set survives leaving uid 0,
//!    then `setgroups`, `setresgid`, `setresuid`, then keepcaps cleared again.
//! 6. **capabilities** ([`capabilities::apply`]): bounding drop, then effective/permitted/inheritable, then
//!    ambient. After the uid switch so the final sets are what the container user keeps (a uid change from 0
//!    clears the effective set).
//! 7. **umask** ([`user::apply_umask`]).
//! 8. **seccomp, late case**: with no_new_privs (or when `CAP_SYS_ADMIN` stays effective), as late as possible so
//!    the fewest syscalls run under the filter before `execve`.
//!
//! `HOME` is not part of this: the caller builds `envp` and should call [`user::ensure_home_env`] first.

pub mod capabilities;
pub mod defaults;
pub mod rlimits;
pub mod seccomp;
pub mod seccomp_cache;
pub mod user;

use oci_spec::runtime::{Capability, LinuxSeccomp, Process};

/// Errors from [`apply_process_security`]; each wraps its module's error.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// Resource limits.
    #[error(transparent)]
    Rlimit(#[from] rlimits::RlimitError),
    /// `PR_SET_NO_NEW_PRIVS` failed.
    #[error("prctl(PR_SET_NO_NEW_PRIVS): {0}")]
    NoNewPrivs(nix::Error),
    /// User switch.
    #[error(transparent)]
    User(#[from] user::UserError),
    /// Capabilities.
    #[error(transparent)]
    Caps(#[from] capabilities::CapsError),
    /// seccomp.
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
}

/// Set `PR_SET_NO_NEW_PRIVS` on the calling thread (inherited by children and across `execve`; irreversible).
pub fn set_no_new_privs() -> Result<(), SecurityError> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments and only changes the calling thread.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SecurityError::NoNewPrivs(nix::Error::last()));
    }
    Ok(())
}

/// Whether the process still has `CAP_SYS_ADMIN` effective once `process` is applied, i.e. whether a seccomp
/// filter can still be loaded without no_new_privs at the very end.
fn keeps_sys_admin(process: &Process) -> bool {
    match process.capabilities() {
        Some(caps) => caps
            .effective()
            .as_ref()
            .is_some_and(|e| e.contains(&Capability::SysAdmin)),
        // No capabilities section: the sets are left alone, but leaving uid 0 empties the effective set.
        None => {
            process.user().uid() == 0
                && capabilities::current().is_ok_and(|(eff, _, _)| {
                    eff & (1 << capabilities::number(Capability::SysAdmin)) != 0
                })
        }
    }
}

/// Apply `process`'s rlimits, no_new_privs, user, capabilities and umask, and load `seccomp`, in the order the
/// module doc explains. Call it in the single-threaded container child right before `execve`.
///
/// The filter is compiled first, before anything changes, so a bad profile fails cleanly and the compilation is
/// not subject to the container's rlimits. To keep the BPF generation out of the child entirely, compile it
/// beforehand with [`seccomp::CompiledFilter::compile`] and use [`apply_process_security_compiled`].
pub fn apply_process_security(
    process: &Process,
    seccomp: Option<&LinuxSeccomp>,
) -> Result<(), SecurityError> {
    let compiled = seccomp.map(seccomp::CompiledFilter::compile).transpose()?;
    apply_process_security_compiled(process, compiled.as_ref())
}

/// [`apply_process_security`] with an already compiled seccomp filter.
pub fn apply_process_security_compiled(
    process: &Process,
    seccomp: Option<&seccomp::CompiledFilter>,
) -> Result<(), SecurityError> {
    if let Some(rl) = process.rlimits() {
        rlimits::apply(rl)?;
    }
    let nnp = process.no_new_privileges().unwrap_or(false);
    if nnp {
        set_no_new_privs()?;
    }
    // Without no_new_privs, a filter can only be loaded with CAP_SYS_ADMIN: load it now if the process is about
    // to lose it (runc's order); otherwise wait until just before execve.
    let early = seccomp.filter(|_| !nnp && !keeps_sys_admin(process));
    if let Some(filter) = early {
        filter.load()?;
    }
    user::switch(process.user())?;
    if let Some(caps) = process.capabilities() {
        capabilities::apply(caps)?;
    }
    user::apply_umask(process.user());
    if early.is_none() {
        if let Some(filter) = seccomp {
            filter.load()?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;

#[cfg(test)]
pub(crate) mod test_util;
