//! CVE-2019-5736: the process that enters a container must not run from the host's berth binary, or a
//! container could open `/proc/<pid>/exe` and overwrite it. Before doing anything else, `create`, `run` and
//! `exec` re-execute themselves from a sealed view of the binary, like runc 1.2 (`libcontainer/exeseal`):
//!
//! 1. preferably the binary opened through a **detached read-only overlayfs** made with the new mount API
//!    (`fsopen("overlay")`, two lower dirs and no upper dir, so the overlay refuses every write; `fsmount`
//!    without `move_mount`, so the mount is in no mount tree and nobody can remount it read-write). This copies
//!    nothing: `/proc/self/exe` then names a file on that mount, and opening it for writing fails with `EROFS`;
//! 2. otherwise (old kernel, no overlayfs, unprivileged) a **sealed memfd copy** (writes refused by the seals).
//!
//! [`is_sealed_exe`] recognizes both, so a process started already sealed (berthd spawns its monitors from a
//! sealed fd it keeps, see [`sealed_exe_fd`]) skips the re-exec.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Set in the environment of the re-executed process so the sealing happens once.
const MARK: &str = "_BERTH_SEALED_EXE";
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
const OVERLAYFS_SUPER_MAGIC: libc::c_long = 0x794c_7630;
/// Directories tried, in order, as the second (dummy) lower layer: overlayfs needs two lower layers to run
/// without an upper one, and refuses layers that overlap (so not the binary's own directory twice). The
/// binary's directory is the top layer, so nothing in the dummy one can shadow the binary.
const DUMMY_LOWER: &[&str] = &["/run", "/tmp", "/var/tmp", "/dev"];

/// Errors of the sealed re-exec.
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

/// Whether `fd` (an executable) cannot be written through: a sealed memfd, or a file on a read-only overlayfs
/// mount that is attached nowhere in our mount namespace (so it cannot be remounted read-write).
pub fn is_sealed_exe(fd: &impl AsRawFd) -> bool {
    is_sealed(fd) || on_detached_ro_overlay(fd.as_raw_fd())
}

fn on_detached_ro_overlay(fd: RawFd) -> bool {
    // SAFETY: fstatfs fills a zeroed statfs for a valid fd.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above; `st` outlives the call.
    if unsafe { libc::fstatfs(fd, &mut st) } != 0
        || st.f_type as libc::c_long != OVERLAYFS_SUPER_MAGIC
    {
        return false;
    }
    // SAFETY: fstatvfs fills a zeroed statvfs for a valid fd.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above; `vfs` outlives the call.
    if unsafe { libc::fstatvfs(fd, &mut vfs) } != 0 || vfs.f_flag & libc::ST_RDONLY == 0 {
        return false;
    }
    let Some(id) = mount_id(fd) else { return false };
    let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    !mi.lines()
        .any(|l| l.split(' ').next().and_then(|f| f.parse::<u64>().ok()) == Some(id))
}

/// The mount id of `fd`, from `/proc/self/fdinfo`.
fn mount_id(fd: RawFd) -> Option<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Re-executes the current process from a sealed view of its binary (module doc), unless it already runs from
/// one. Returns only when no re-exec was needed (or in the re-executed process).
pub fn ensure_sealed_exe() -> Result<(), SelfExeError> {
    if std::env::var_os(MARK).is_some() {
        // Hooks and other children must not inherit the mark.
        std::env::remove_var(MARK);
        return Ok(());
    }
    let exe = File::open("/proc/self/exe").map_err(io("open /proc/self/exe"))?;
    if is_sealed_exe(&exe) {
        return Ok(());
    }
    let sealed = seal(&exe)?;
    drop(exe);
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
            sealed.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(io("execute the sealed binary")(
        std::io::Error::last_os_error(),
    ))
}

/// A close-on-exec fd of a sealed view of the running binary, to `execveat(fd, "", AT_EMPTY_PATH)` (e.g. the
/// daemon keeps one to spawn monitors that start sealed). The fd of the running binary is returned as is when it
/// is sealed already.
pub fn sealed_exe_fd() -> Result<OwnedFd, SelfExeError> {
    let exe = File::open("/proc/self/exe").map_err(io("open /proc/self/exe"))?;
    if is_sealed_exe(&exe) {
        return Ok(exe.into());
    }
    seal(&exe)
}

/// A close-on-exec fd of a sealed view of the executable at `path` (the same two ways as for our own binary),
/// to spawn it with `execveat(fd, "", AT_EMPTY_PATH)` or through `/proc/self/fd/<fd>`: berthd keeps one of the
/// `berth` binary so the monitors it spawns start sealed and skip their own re-exec.
pub fn sealed_fd_of(path: &Path) -> Result<OwnedFd, SelfExeError> {
    let file = File::open(path).map_err(io("open the binary to seal"))?;
    if is_sealed_exe(&file) {
        return Ok(file.into());
    }
    match overlay_view_of(path) {
        Ok(fd) if same_file(&file, &fd) => return Ok(fd),
        Ok(_) => log::debug!(
            "exeseal: overlay view differs from {}, copying instead",
            path.display()
        ),
        Err(e) => log::debug!(
            "exeseal: no overlayfs view of {} ({e}), copying instead",
            path.display()
        ),
    }
    seal_copy(&file)
}

fn seal(exe: &File) -> Result<OwnedFd, SelfExeError> {
    match overlay_view() {
        Ok(fd) if same_file(exe, &fd) => return Ok(fd),
        Ok(_) => log::debug!("exeseal: overlay view differs from /proc/self/exe, copying instead"),
        Err(e) => log::debug!("exeseal: no overlayfs view of the binary ({e}), copying instead"),
    }
    seal_copy(exe)
}

/// Size and times agree: the overlay view shows the file the kernel runs (not a binary replaced since).
fn same_file(exe: &File, fd: &OwnedFd) -> bool {
    let Ok(a) = exe.metadata() else { return false };
    let Ok(b) = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
        return false;
    };
    a.len() == b.len()
        && (a.mtime(), a.mtime_nsec(), a.ctime(), a.ctime_nsec())
            == (b.mtime(), b.mtime_nsec(), b.ctime(), b.ctime_nsec())
}

fn sys(r: libc::c_long) -> std::io::Result<libc::c_long> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Escapes `:` and `\` in an overlayfs lower dir.
fn escape_lower(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p.as_os_str().as_bytes() {
        if b == b'\\' || b == b':' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// An `O_PATH` fd of the running binary opened through a detached read-only overlayfs (module doc).
fn overlay_view() -> std::io::Result<OwnedFd> {
    let path: PathBuf = std::fs::read_link("/proc/self/exe")?;
    if path.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(std::io::Error::other("the binary was deleted or replaced"));
    }
    overlay_view_of(&path)
}

/// An `O_PATH` fd of `path` (an absolute path without symlinks) opened through a detached read-only overlayfs.
fn overlay_view_of(path: &Path) -> std::io::Result<OwnedFd> {
    // overlayfs needs the real directory; the name must not be a symlink either (O_NOFOLLOW below).
    let path = std::fs::canonicalize(path)?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::other("no directory in /proc/self/exe"));
    };
    let name = CString::new(name.as_bytes()).map_err(std::io::Error::other)?;
    let mut last = std::io::Error::other("no dummy lower directory");
    for dummy in DUMMY_LOWER {
        // Overlapping layers (the dummy inside the binary's directory or around it) are refused by the
        // kernel with ELOOP: the next candidate is tried.
        match overlay_mount(dir, Path::new(dummy)) {
            Ok(mnt) => {
                // SAFETY: openat relative to our mount fd with a NUL-terminated name; the fd is owned below.
                let fd = sys(unsafe {
                    libc::openat(
                        mnt.as_raw_fd(),
                        name.as_ptr(),
                        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    )
                } as libc::c_long)?;
                // SAFETY: openat just returned this fd.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `fsopen("overlay")` with `lowerdir=<top>:<dummy>`, `fsmount`ed read-only, nosuid, nodev, never attached.
fn overlay_mount(top: &Path, dummy: &Path) -> std::io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 2;
    const MOUNT_ATTR_NODEV: libc::c_uint = 4;
    // SAFETY: fsopen with a NUL-terminated fs name; the fd is owned below.
    let ctx = sys(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: fsopen just returned this fd.
    let ctx = unsafe { OwnedFd::from_raw_fd(ctx as RawFd) };
    let mut lower = escape_lower(top);
    lower.push(b':');
    lower.extend(escape_lower(dummy));
    let lower = CString::new(lower).map_err(std::io::Error::other)?;
    let set = |key: &std::ffi::CStr, value: &std::ffi::CStr| {
        // SAFETY: fsconfig on our context fd with NUL-terminated key and value.
        sys(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                ctx.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        })
    };
    set(c"lowerdir", &lower)?;
    // Only to avoid dmesg noise when the layers are on different filesystems; failure is harmless.
    let _ = set(c"xino", c"off");
    // SAFETY: fsconfig(FSCONFIG_CMD_CREATE) on our context fd, no key or value.
    sys(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: fsmount on a created context; the returned mount fd is owned below.
    let mnt = sys(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            ctx.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    })?;
    // SAFETY: fsmount just returned this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as RawFd) })
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
    let mut off: libc::off_t = 0;
    while left > 0 {
        // SAFETY: both fds are valid; `off` is our own read offset, so the shared file position of `exe`
        // (possibly used by the caller) is left alone.
        let n = unsafe { libc::sendfile(memfd.as_raw_fd(), exe.as_raw_fd(), &mut off, left) };
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

/// Reads the first bytes of `fd` (tests: the sealed view is the same ELF).
#[cfg(test)]
fn head(fd: &OwnedFd) -> Vec<u8> {
    use std::io::Read;
    let mut f = File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    let mut b = vec![0; 64];
    f.read_exact(&mut b).unwrap();
    b
}

#[cfg(test)]
#[path = "selfexe_tests.rs"]
mod tests;
