//! The last steps of a container process before `execve`, shared by the init and by `exec`: rlimits,
//! no_new_privs, user and groups, capabilities, umask, cwd, seccomp, closing inherited fds, and resolving the
//! binary through the container's PATH.

use crate::security;
use crate::security::seccomp::CompiledFilter;
use oci_spec::runtime::Process;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Errors of process setup (reported to the parent as one line).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("rlimits: {0}")]
    Rlimits(#[from] security::rlimits::RlimitError),
    #[error("capabilities: {0}")]
    Caps(#[from] security::capabilities::CapsError),
    #[error("current working directory {0:?} is outside of the container's root")]
    CwdOutside(PathBuf),
    #[error("user: {0}")]
    User(security::user::UserError),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("exec: {0:?}: {1}")]
    Exec(String, nix::Error),
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ProcessError {
    let what = what.into();
    move |source| ProcessError::Sys { what, source }
}

/// What `execve` needs, prepared before seccomp is loaded.
pub(crate) struct Prepared {
    pub path: CString,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
}

/// Unblocks every signal and restores default dispositions (the parent may have blocked some for forwarding).
pub(crate) fn reset_signals() {
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

/// Applies the process settings in runc's order and returns the prepared `execve` arguments.
///
/// `seccomp` is compiled by the parent before the clone (through the on-disk cache, see
/// `security::seccomp_cache`): the child only loads it.
pub(crate) fn apply(
    p: &Process,
    seccomp: Option<&CompiledFilter>,
    preserve_fds: u32,
) -> Result<Prepared, ProcessError> {
    if let Some(rl) = p.rlimits() {
        security::rlimits::apply(rl)?;
    }
    let nnp = p.no_new_privileges().unwrap_or(false);
    if nnp {
        // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1) only sets a flag on the calling thread.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(sys("set no_new_privs")(nix::Error::last()));
        }
    }
    // Without no_new_privs the filter can only be loaded while we still have CAP_SYS_ADMIN, so before the
    // capabilities are dropped (runc does the same); with it, as late as possible.
    if !nnp {
        load_seccomp(seccomp)?;
    }
    switch_user(p)?;
    if let Some(caps) = p.capabilities() {
        security::capabilities::apply(caps)?;
    }
    if let Some(mask) = p.user().umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    } else {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    }
    // After pivot_root / setns(mnt). A cwd like /proc/self/fd/N naming a leaked host directory would still
    // resolve (CVE-2024-21626), so check that the result is inside our root: the kernel reports a directory
    // outside it as "(unreachable)/..." and glibc's getcwd fails with ENOENT.
    nix::unistd::chdir(p.cwd()).map_err(sys(format!(
        "chdir to cwd {:?} set in config.json",
        p.cwd()
    )))?;
    match nix::unistd::getcwd() {
        Ok(d) if d.is_absolute() => {}
        _ => return Err(ProcessError::CwdOutside(p.cwd().clone())),
    }
    let prepared = prepare_exec(p)?;
    close_fds(preserve_fds)?;
    if nnp {
        load_seccomp(seccomp)?;
    }
    Ok(prepared)
}

fn load_seccomp(seccomp: Option<&CompiledFilter>) -> Result<(), ProcessError> {
    let Some(s) = seccomp else { return Ok(()) };
    s.load().map_err(|e| ProcessError::Seccomp(e.to_string()))
}

/// setgroups, setresgid, setresuid, keeping the permitted capabilities across the switch.
fn switch_user(p: &Process) -> Result<(), ProcessError> {
    security::user::switch(p.user()).map_err(ProcessError::User)
}

/// Marks every fd from `3 + preserve_fds` up close-on-exec (CVE-2024-21626: no host fd survives `execve`).
pub(crate) fn close_fds(preserve_fds: u32) -> Result<(), ProcessError> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags of this process.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 + preserve_fds,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        let e = nix::Error::last();
        // A seccomp profile written before close_range existed (runtime-tools' default, older docker ones)
        // makes it fail with ENOSYS or EPERM: fall back to walking /proc/self/fd, as runc's CloseExecFrom does.
        if !matches!(e, nix::Error::ENOSYS | nix::Error::EPERM) {
            return Err(sys("close_range")(e));
        }
        return cloexec_from_proc(3 + preserve_fds);
    }
    Ok(())
}

/// Sets FD_CLOEXEC on every open fd >= `first`, listing them from /proc/self/fd.
fn cloexec_from_proc(first: u32) -> Result<(), ProcessError> {
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| {
        sys("list /proc/self/fd")(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    })?;
    // Collect first: the directory's own fd is in the listing and goes away when `dir` is dropped.
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd: &i32| *fd >= first as i32)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD only changes the close-on-exec flag of an fd number; a stale one fails with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

fn cstr(s: &[u8]) -> CString {
    CString::new(s).unwrap_or_default()
}

/// Resolves args[0] through the process's PATH (like execvp, but with the container's environment).
pub(crate) fn prepare_exec(p: &Process) -> Result<Prepared, ProcessError> {
    let args = p.args().clone().unwrap_or_default();
    let argv0 = args.first().cloned().unwrap_or_default();
    let env = p.env().clone().unwrap_or_default();
    let path = if argv0.contains('/') {
        PathBuf::from(&argv0)
    } else {
        let path_var = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path_var
            .split(':')
            .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(&argv0))
            .find(|c| is_executable(c))
            .ok_or_else(|| ProcessError::NotFound(argv0.clone()))?
    };
    if let Err(e) = nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK) {
        return Err(ProcessError::Exec(argv0, e));
    }
    Ok(Prepared {
        path: cstr(path.as_os_str().as_bytes()),
        args: args.iter().map(|a| cstr(a.as_bytes())).collect(),
        env: env.iter().map(|a| cstr(a.as_bytes())).collect(),
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `execve`; returns only on failure.
pub(crate) fn exec(p: &Prepared) -> ProcessError {
    let e = nix::unistd::execve(&p.path, &p.args, &p.env).unwrap_err();
    ProcessError::Exec(p.path.to_string_lossy().into_owned(), e)
}
