//! berth-safepath: the one place where berth resolves a path inside a container's root filesystem.
//!
//! # The threat
//! A container rootfs is controlled by whoever built the image or runs code in the container. When berth (as
//! root, on the host) opens `<rootfs>/etc/passwd`, mounts onto `<rootfs>/proc`, copies `<rootfs>/data` into a
//! volume or extracts a `docker cp` archive into `<rootfs>/tmp`, any component of that path may be a symlink
//! (`etc -> /etc`, `tmp -> ../../../..`) or a `..` chain. Resolved naively, the host's own files are read,
//! overwritten or mounted over: the CVE-2024-21626 / CVE-2025-31133 family of container escapes. Checking
//! the path first and then opening it is racy too, since the container can swap a directory for a symlink in
//! between.
//!
//! # What this crate does
//! Every lookup goes through `openat2(2)` on an fd of the root with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`:
//! - `RESOLVE_IN_ROOT`: the kernel treats the root fd as `/` for this one lookup. Absolute symlinks resolve
//!   relative to it and `..` at the root stays at the root, atomically, however the tree changes meanwhile (a
//!   rename racing with a `..` step makes the kernel answer `EAGAIN`; we retry, bounded).
//! - `RESOLVE_NO_MAGICLINKS`: procfs "magic links" (`/proc/<pid>/root`, `/proc/self/fd/N`, `.../exe`) are
//!   refused with `ELOOP`: they are not symlinks with a text target but jumps to an arbitrary open file, which
//!   would leave the root.
//!
//! What comes back is an fd; callers keep working relative to fds (`openat` of one name with `O_NOFOLLOW`,
//! [`open_name`]) or hand the fd's `/proc/self/fd/N` path ([`fd_path`]) to mount(2), so nothing is resolved by
//! name a second time.
//!
//! # Kernels without openat2
//! `openat2` exists since Linux 5.6. There is deliberately no fallback: a userspace component-by-component
//! walk (securejoin's old approach) is racy against a container that renames directories while it runs. On a
//! kernel without it every function here fails with [`SafePathError::Unsupported`] and the operation (container
//! start, `docker cp`, volume copy-up) is refused with that message instead of being done unsafely.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

/// Errors of in-root path resolution.
#[derive(Debug, thiserror::Error)]
pub enum SafePathError {
    /// The kernel has no `openat2` (Linux < 5.6): refused, see the crate docs.
    #[error(
        "openat2(RESOLVE_IN_ROOT) is not supported by this kernel (Linux 5.6 or later is needed): \
         refusing to resolve a container path without it"
    )]
    Unsupported,
    /// A syscall failed (`EINVAL` for a path with a NUL byte, `ELOOP` for a magic link or too many symlinks).
    #[error("{0}")]
    Os(#[from] Errno),
}

impl SafePathError {
    /// The errno this error stands for (`ENOSYS` for [`SafePathError::Unsupported`]).
    pub fn errno(&self) -> Errno {
        match self {
            Self::Unsupported => Errno::ENOSYS,
            Self::Os(e) => *e,
        }
    }

    /// The raw errno, as [`io::Error::raw_os_error`] gives it (lets callers match on `ENOENT` and friends).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Unsupported => None,
            Self::Os(e) => Some(*e as i32),
        }
    }
}

impl From<SafePathError> for io::Error {
    fn from(e: SafePathError) -> Self {
        match e {
            SafePathError::Unsupported => io::Error::new(io::ErrorKind::Unsupported, e.to_string()),
            SafePathError::Os(errno) => io::Error::from_raw_os_error(errno as i32),
        }
    }
}

impl From<SafePathError> for Errno {
    fn from(e: SafePathError) -> Self {
        e.errno()
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, SafePathError>;

fn cstring(b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| SafePathError::Os(Errno::EINVAL))
}

/// `openat2` of `path` below `root` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` and the given open flags
/// (`O_CLOEXEC` always added; `mode` only matters with `O_CREAT`). A leading `/` is ignored: `/etc/passwd` and
/// `etc/passwd` are the same path in the root; an empty path is the root itself.
pub fn open_in_root(
    root: RawFd,
    path: impl AsRef<Path>,
    flags: libc::c_int,
    mode: u32,
) -> Result<OwnedFd> {
    open_in_root_resolve(root, path.as_ref(), flags, mode, 0)
}

/// [`open_in_root`] with more `RESOLVE_*` flags (e.g. `RESOLVE_NO_SYMLINKS`).
pub fn open_in_root_resolve(
    root: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
    extra_resolve: u64,
) -> Result<OwnedFd> {
    let bytes = path.as_os_str().as_bytes();
    let start = bytes.iter().position(|b| *b != b'/').unwrap_or(bytes.len());
    let rel = &bytes[start..];
    let c = cstring(if rel.is_empty() { b"." } else { rel })?;
    // SAFETY: open_how is a plain C struct for which all-zero is valid; the fields are set below.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 {
        u64::from(mode)
    } else {
        0
    };
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS | extra_resolve;
    let mut tries = 0;
    loop {
        tries += 1;
        // SAFETY: valid dirfd, NUL-terminated path and a correctly sized open_how that outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a new fd that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        match Errno::last() {
            Errno::ENOSYS => return Err(SafePathError::Unsupported),
            // The kernel asks for a retry (EAGAIN) when a rename or mount anywhere on the host raced with a `..`
            // step: retry, bounded, backing off a little on a busy host instead of spinning.
            Errno::EAGAIN | Errno::EINTR if tries <= 2000 => {
                if tries > 8 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            e => return Err(e.into()),
        }
    }
}

/// An `O_PATH` fd of `path` inside `root` (a final symlink is followed, inside the root).
pub fn open_path(root: RawFd, path: impl AsRef<Path>) -> Result<OwnedFd> {
    open_in_root(root, path, libc::O_PATH, 0)
}

/// Whether `path` inside `root` is reached without any symlink (runc refuses to mount procfs/sysfs through
/// one: a symlinked /proc could redirect the mount onto a path the masks do not cover).
pub fn has_no_symlinks(root: RawFd, path: &Path) -> bool {
    !matches!(
        open_in_root_resolve(root, path, libc::O_PATH, 0, libc::RESOLVE_NO_SYMLINKS),
        Err(SafePathError::Os(Errno::ELOOP))
    )
}

/// Creates `path` inside `root` (parents as directories 0755; the last component a directory or an empty file
/// 0644) and returns an `O_PATH` fd to it. Existing entries are reused; a dangling symlink (inside the root)
/// gets what it points to created, resolved inside the root, as securejoin's MkdirAll does.
pub fn create_in_root(root: RawFd, path: &Path, dir: bool) -> Result<OwnedFd> {
    create_in_root_depth(root, path, dir, 0)
}

fn create_in_root_depth(root: RawFd, path: &Path, dir: bool, depth: u32) -> Result<OwnedFd> {
    if depth > 40 {
        return Err(Errno::ELOOP.into());
    }
    let comps: Vec<_> = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut cur = open_in_root(root, "/", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let mut sofar = PathBuf::from("/");
    for (i, comp) in comps.iter().enumerate() {
        sofar.push(comp);
        let last = i + 1 == comps.len();
        match open_path(root, &sofar) {
            Ok(fd) => {
                cur = fd;
                continue;
            }
            Err(SafePathError::Os(Errno::ENOENT)) => {}
            Err(e) => return Err(e),
        }
        // Create the entry relative to its parent resolved inside the root (never following a symlink planted
        // as the last component: mkdirat and openat with O_EXCL do not follow).
        let name = cstring(comp.as_os_str().as_bytes())?;
        let parent = sofar.parent().unwrap_or(Path::new("/")).to_path_buf();
        let dirfd = open_in_root(root, &parent, libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
        if let Ok(target) = nix::fcntl::readlinkat(Some(dirfd.as_raw_fd()), name.as_c_str()) {
            let mut next = if Path::new(&target).is_absolute() {
                PathBuf::from(&target)
            } else {
                parent.join(&target)
            };
            for rest in &comps[i + 1..] {
                next.push(rest);
            }
            return create_in_root_depth(root, &next, dir, depth + 1);
        }
        if !last || dir {
            match nix::sys::stat::mkdirat(
                Some(dirfd.as_raw_fd()),
                name.as_c_str(),
                nix::sys::stat::Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            match open_name(
                dirfd.as_raw_fd(),
                &name,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                0o644,
            ) {
                Ok(_) | Err(SafePathError::Os(Errno::EEXIST)) => {}
                Err(e) => return Err(e),
            }
        }
        cur = open_path(root, &sofar)?;
    }
    Ok(cur)
}

/// `openat` of the single name `name` in the directory `dir` (`O_CLOEXEC` added): the step for walking below
/// a resolved fd. Pass `O_NOFOLLOW` unless following a final symlink by name is meant.
pub fn open_name(dir: RawFd, name: &CStr, flags: libc::c_int, mode: u32) -> Result<OwnedFd> {
    // SAFETY: valid dirfd and NUL-terminated name; the returned fd is new and ours.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(Errno::last().into());
    }
    // SAFETY: fd was just returned by openat and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `lstat` of the single name `name` in `dir` (`AT_SYMLINK_NOFOLLOW`: a symlink is described, not followed).
pub fn lstat_name(dir: RawFd, name: &CStr) -> Result<libc::stat> {
    // SAFETY: stat is plain data for which all-zero is valid; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd, NUL-terminated name and a writable stat for the duration of the call.
    let r = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if r < 0 {
        return Err(Errno::last().into());
    }
    Ok(st)
}

/// The magic-link path of an fd (`/proc/self/fd/N`), for mount(2) and other calls that only take a path.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests;
