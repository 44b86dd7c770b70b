//! Resolving paths inside a container rootfs without ever leaving it (CVE-2025-31133 and kin).
//!
//! Everything goes through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: symlinks in the rootfs are
//! resolved as if the rootfs were `/`, and `..` cannot climb out. Mounts then target the opened O_PATH fd via
//! `/proc/self/fd/N`, so a symlink swapped in between resolution and mount cannot redirect them.

use nix::errno::Errno;
use nix::sys::stat::Mode;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// `openat2` below `root` with the given open flags (O_CLOEXEC always added).
pub(crate) fn open_in_root(
    root: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
) -> nix::Result<OwnedFd> {
    open_in_root_resolve(root, path, flags, mode, 0)
}

/// Whether `path` inside `root` is reached without any symlink (runc refuses to mount procfs/sysfs through
/// one: a symlinked /proc could redirect the mount onto a path the masks do not cover).
pub(crate) fn has_no_symlinks(root: RawFd, path: &Path) -> bool {
    !matches!(
        open_in_root_resolve(root, path, libc::O_PATH, 0, libc::RESOLVE_NO_SYMLINKS),
        Err(Errno::ELOOP)
    )
}

fn open_in_root_resolve(
    root: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
    extra: u64,
) -> nix::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = CString::new(rel.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open_how is a plain C struct; zeroed is a valid value before we set fields.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 {
        u64::from(mode)
    } else {
        0
    };
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS | extra;
    loop {
        // SAFETY: valid dirfd, NUL-terminated path and a correctly sized open_how.
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
            // SAFETY: the kernel returned a new fd that we now own.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        match Errno::last() {
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// An O_PATH fd for `path` inside `root` (no following of a final symlink out of the root: it is resolved
/// inside).
pub(crate) fn open_path(root: RawFd, path: &Path) -> nix::Result<OwnedFd> {
    open_in_root(root, path, libc::O_PATH, 0)
}

/// Creates `path` inside `root` (parents as directories; the last component a directory or an empty file),
/// and returns an O_PATH fd to it. Existing entries are reused.
pub(crate) fn create_in_root(root: RawFd, path: &Path, dir: bool) -> nix::Result<OwnedFd> {
    create_in_root_depth(root, path, dir, 0)
}

fn create_in_root_depth(root: RawFd, path: &Path, dir: bool, depth: u32) -> nix::Result<OwnedFd> {
    if depth > 40 {
        return Err(Errno::ELOOP);
    }
    let comps: Vec<_> = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut cur = open_in_root(root, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let mut sofar = std::path::PathBuf::from("/");
    for (i, comp) in comps.iter().enumerate() {
        sofar.push(comp);
        let last = i + 1 == comps.len();
        match open_path(root, &sofar) {
            Ok(fd) => {
                cur = fd;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        // `cur` is a directory resolved inside the root; create the entry relative to it (never following a
        // symlink planted as the last component: mkdirat/openat with O_EXCL do not follow).
        let name = CString::new(comp.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
        let parent = sofar.parent().unwrap_or(Path::new("/")).to_path_buf();
        let dirfd = open_in_root(root, &parent, libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
        // A dangling symlink (inside the root): create what it points to, resolved inside the root, as
        // securejoin's MkdirAll does.
        if let Ok(target) = nix::fcntl::readlinkat(Some(dirfd.as_raw_fd()), name.as_c_str()) {
            let mut next = if Path::new(&target).is_absolute() {
                std::path::PathBuf::from(&target)
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
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
        } else {
            // SAFETY: openat with a valid dirfd and NUL-terminated name; the fd is closed right away.
            let fd = unsafe {
                libc::openat(
                    dirfd.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW,
                    0o644,
                )
            };
            if fd >= 0 {
                // SAFETY: fd was just returned by openat.
                unsafe { libc::close(fd) };
            } else if Errno::last() != Errno::EEXIST {
                return Err(Errno::last());
            }
        }
        cur = open_path(root, &sofar)?;
    }
    Ok(cur)
}

/// The magic-link path of an fd, for mount(2) and friends.
pub(crate) fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::File::open(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("evil")).unwrap();
        std::os::unix::fs::symlink("../../../../tmp", dir.path().join("up")).unwrap();
        let fd = create_in_root(root.as_raw_fd(), Path::new("/evil/passwd"), false).unwrap();
        // The file was created inside the root, under the in-root "/etc".
        assert!(dir.path().join("etc/passwd").exists());
        let target = std::fs::read_link(fd_path(&fd)).unwrap();
        assert!(target.starts_with(dir.path()), "{target:?}");
        let fd = create_in_root(root.as_raw_fd(), Path::new("/up/x/y"), true).unwrap();
        let target = std::fs::read_link(fd_path(&fd)).unwrap();
        // `..` cannot climb out: the link resolves to the in-root /tmp, which is created.
        assert_eq!(target, dir.path().join("tmp/x/y"));
    }
}
