//! CVE-2019-5736: the process that enters a container must not run from the host's berth binary, or a
//! container could open `/proc/<pid>/exe` and overwrite it. Before doing anything else, `create`, `run` and
//! `exec` re-execute themselves from a sealed memfd copy of the binary; writes to a sealed memfd are refused by
//! the kernel, and the host file is never reachable through `/proc/self/exe`.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// Set in the environment of the re-executed process so the copy happens once.
const MARK: &str = "_BERTH_SEALED_EXE";
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Errors of the memfd re-exec.
#[derive(Debug, thiserror::Error)]
pub enum SelfExeError {
    #[error("cannot {what} (protecting the runtime binary, CVE-2019-5736): {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> SelfExeError {
    move |source| SelfExeError::Io { what, source }
}

/// Whether `fd` is a memfd carrying all of our seals.
pub fn is_sealed(fd: &impl AsRawFd) -> bool {
    // SAFETY: F_GET_SEALS only reads the seals of a valid fd.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Re-executes the current process from a sealed memfd copy of `/proc/self/exe`, unless it already runs from
/// one. Returns only when no re-exec was needed (or in the re-executed process).
pub fn ensure_sealed_exe() -> Result<(), SelfExeError> {
    if std::env::var_os(MARK).is_some() {
        // Hooks and other children must not inherit the mark.
        std::env::remove_var(MARK);
        return Ok(());
    }
    let exe = File::open("/proc/self/exe").map_err(io("open /proc/self/exe"))?;
    if is_sealed(&exe) {
        return Ok(());
    }
    let memfd = seal_copy(&exe)?;
    let args: Vec<CString> = std::env::args_os().map(cstr).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(kv)
        })
        .collect();
    env.push(CString::new(format!("{MARK}=1")).expect("no NUL"));
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    // SAFETY: argv/envp are NULL-terminated arrays of valid C strings that outlive the call; on success the
    // call does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            memfd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(io("execute the sealed copy")(
        std::io::Error::last_os_error(),
    ))
}

fn cstr(s: OsString) -> CString {
    // Arguments and environment strings from the kernel never contain NUL.
    CString::new(s.as_bytes()).unwrap_or_default()
}

/// Copies `exe` into a new memfd and seals it against any change.
fn seal_copy(exe: &File) -> Result<OwnedFd, SelfExeError> {
    // SAFETY: memfd_create with a static name; the returned fd is owned below.
    let fd = unsafe {
        libc::memfd_create(
            c"berth".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io("create a memfd")(std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = exe.metadata().map_err(io("stat /proc/self/exe"))?.len() as usize;
    let mut left = len;
    while left > 0 {
        // SAFETY: both fds are valid; null offsets use and advance the file positions.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                left,
            )
        };
        if n < 0 {
            return Err(io("copy the binary into a memfd")(
                std::io::Error::last_os_error(),
            ));
        }
        if n == 0 {
            break;
        }
        left -= n as usize;
    }
    // SAFETY: F_ADD_SEALS on our own memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(io("seal the memfd")(std::io::Error::last_os_error()));
    }
    Ok(memfd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_copy_refuses_writes() {
        let exe = File::open("/proc/self/exe").unwrap();
        assert!(!is_sealed(&exe));
        let memfd = seal_copy(&exe).unwrap();
        assert!(is_sealed(&memfd));
        let mut f = File::from(memfd);
        use std::io::Write;
        assert!(f.write_all(b"x").is_err());
    }
}
