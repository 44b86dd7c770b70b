//! Copy-up: filling an empty volume from the image's content at the mount destination, as docker does on a
//! volume's first use. Owners, modes, times, xattrs, symlinks, device nodes and fifos are preserved.
//!
//! The source is inside a container rootfs the image controls, so it is opened with
//! `openat2(RESOLVE_IN_ROOT)` through [`berth_safepath`] (symlinks resolve as if the rootfs were `/`) and walked only through fds with
//! `O_NOFOLLOW`: a symlink in the image is copied as a symlink, never followed onto the host.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Errors of copy-up.
#[derive(Debug, thiserror::Error)]
pub enum CopyUpError {
    /// A syscall on an entry failed.
    #[error("copying {what} into the volume: {source}")]
    Io {
        /// The entry (relative to the mount destination).
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, CopyUpError>;

fn err(what: &str) -> impl FnOnce(io::Error) -> CopyUpError + '_ {
    move |source| CopyUpError::Io {
        what: what.to_string(),
        source,
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `openat` of one name in `dir` (walking below a resolved fd; callers pass `O_NOFOLLOW`).
fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    Ok(berth_safepath::open_name(dir, name, flags, mode)?)
}

/// Copies the image's directory at `dest_in_root` (resolved inside `rootfs`) into the directory `volume`,
/// including the directory's own owner and mode. Returns false when the image has no directory there (nothing
/// to copy). The caller checks that `volume` is empty.
pub fn copy_up(rootfs: &Path, dest_in_root: &Path, volume: &Path) -> Result<bool> {
    let root = File::open(rootfs).map_err(err("the rootfs"))?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY;
    let src = match berth_safepath::open_in_root(root.as_raw_fd(), dest_in_root, flags, 0) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Ok(false)
        }
        Err(e) => return Err(err("the image directory")(e.into())),
    };
    let vc = CString::new(volume.as_os_str().as_bytes())
        .map_err(|e| err("volume")(io::Error::other(e)))?;
    let dst = openat(
        libc::AT_FDCWD,
        &vc,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .map_err(err("the volume"))?;
    copy_dir(src.as_raw_fd(), dst.as_raw_fd(), "")?;
    let st = fstat(src.as_raw_fd()).map_err(err("/"))?;
    copy_meta(src.as_raw_fd(), dst.as_raw_fd(), &st).map_err(err("/"))?;
    Ok(true)
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data; fstat fills it for a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and a pointer to a stat the call may write.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

fn lstatat(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    Ok(berth_safepath::lstat_name(dir, name)?)
}

/// The names in the directory `fd` (without `.` and `..`).
fn entries(fd: RawFd) -> io::Result<Vec<CString>> {
    // SAFETY: dup of a valid fd; the new fd is handed to Dir, which owns and closes it.
    let dup = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(io::Error::from)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(io::Error::from)?;
        let n = e.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

fn copy_dir(src: RawFd, dst: RawFd, rel: &str) -> Result<()> {
    for name in entries(src).map_err(err(rel))? {
        let what = format!("{rel}/{}", name.to_string_lossy());
        let st = lstatat(src, &name).map_err(err(&what))?;
        let fmt = st.st_mode & libc::S_IFMT;
        match fmt {
            libc::S_IFDIR => {
                // SAFETY: valid dirfd and NUL-terminated name.
                cvt(unsafe { libc::mkdirat(dst, name.as_ptr(), 0o700) }).map_err(err(&what))?;
                let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                let s = openat(src, &name, flags, 0).map_err(err(&what))?;
                let d = openat(dst, &name, flags, 0).map_err(err(&what))?;
                copy_dir(s.as_raw_fd(), d.as_raw_fd(), &what)?;
                copy_meta(s.as_raw_fd(), d.as_raw_fd(), &st).map_err(err(&what))?;
            }
            libc::S_IFREG => {
                let s =
                    openat(src, &name, libc::O_RDONLY | libc::O_NOFOLLOW, 0).map_err(err(&what))?;
                let d = openat(
                    dst,
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(err(&what))?;
                let mut sf = File::from(s);
                let mut df = File::from(d);
                io::copy(&mut sf, &mut df).map_err(err(&what))?;
                copy_meta(sf.as_raw_fd(), df.as_raw_fd(), &st).map_err(err(&what))?;
            }
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(src), name.as_c_str())
                    .map_err(|e| err(&what)(e.into()))?;
                let t =
                    CString::new(target.as_bytes()).map_err(|e| err(&what)(io::Error::other(e)))?;
                // SAFETY: NUL-terminated target and name, valid dirfd.
                cvt(unsafe { libc::symlinkat(t.as_ptr(), dst, name.as_ptr()) })
                    .map_err(err(&what))?;
                // SAFETY: valid dirfd and name; AT_SYMLINK_NOFOLLOW changes the link itself.
                cvt(unsafe {
                    libc::fchownat(
                        dst,
                        name.as_ptr(),
                        st.st_uid,
                        st.st_gid,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                })
                .map_err(err(&what))?;
                set_times_at(dst, &name, &st).map_err(err(&what))?;
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                // SAFETY: valid dirfd and name; mknodat creates the node without following anything.
                cvt(unsafe { libc::mknodat(dst, name.as_ptr(), st.st_mode, st.st_rdev) })
                    .map_err(err(&what))?;
                // SAFETY: as above; the new node is changed, not followed.
                cvt(unsafe {
                    libc::fchownat(
                        dst,
                        name.as_ptr(),
                        st.st_uid,
                        st.st_gid,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                })
                .map_err(err(&what))?;
                // SAFETY: as above (fchmodat never follows a node that is not a symlink).
                cvt(unsafe { libc::fchmodat(dst, name.as_ptr(), st.st_mode & 0o7777, 0) })
                    .map_err(err(&what))?;
                set_times_at(dst, &name, &st).map_err(err(&what))?;
            }
            // Sockets are not content.
            _ => {}
        }
    }
    Ok(())
}

/// Owner, then xattrs (chown clears `security.capability`), then mode (chown clears setuid bits), then times.
fn copy_meta(src: RawFd, dst: RawFd, st: &libc::stat) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::fchown(dst, st.st_uid, st.st_gid) })?;
    copy_xattrs(src, dst);
    // SAFETY: valid fd.
    cvt(unsafe { libc::fchmod(dst, st.st_mode & 0o7777) })?;
    let ts = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    // SAFETY: valid fd and a two-element timespec array.
    cvt(unsafe { libc::futimens(dst, ts.as_ptr()) })?;
    Ok(())
}

fn set_times_at(dir: RawFd, name: &CStr, st: &libc::stat) -> io::Result<()> {
    let ts = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    // SAFETY: valid dirfd, name and timespec array; AT_SYMLINK_NOFOLLOW never follows.
    cvt(unsafe { libc::utimensat(dir, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(())
}

/// Copies every xattr the kernel lets us read and write (overlayfs' private `trusted.overlay.*` ones are not
/// visible through the merged view; a filesystem without xattr support just gets none).
fn copy_xattrs(src: RawFd, dst: RawFd) {
    // SAFETY: a null buffer with size 0 asks for the needed size.
    let n = unsafe { libc::flistxattr(src, std::ptr::null_mut(), 0) };
    if n <= 0 {
        return;
    }
    let mut names = vec![0u8; n as usize];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::flistxattr(src, names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return;
    }
    names.truncate(n as usize);
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        // SAFETY: size query with a null buffer.
        let len = unsafe { libc::fgetxattr(src, cname.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            continue;
        }
        let mut val = vec![0u8; len as usize];
        // SAFETY: the buffer is valid for its length.
        let len =
            unsafe { libc::fgetxattr(src, cname.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if len < 0 {
            continue;
        }
        // SAFETY: name and value buffers are valid for the given length.
        let r =
            unsafe { libc::fsetxattr(dst, cname.as_ptr(), val.as_ptr().cast(), len as usize, 0) };
        if r < 0 {
            log::debug!(
                "copy-up: xattr {} not copied: {}",
                cname.to_string_lossy(),
                io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn copies_tree_and_stays_in_root() {
        let root = tempfile::tempdir().unwrap();
        let vol = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"host").unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/f"), b"hello").unwrap();
        std::fs::set_permissions(data.join("sub/f"), std::fs::Permissions::from_mode(0o4751))
            .unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::os::unix::fs::symlink(outside.path(), data.join("escape")).unwrap();
        // The image's /link -> /data resolves inside the root.
        std::os::unix::fs::symlink("/data", root.path().join("link")).unwrap();
        assert!(copy_up(root.path(), Path::new("/link"), vol.path()).unwrap());
        assert_eq!(std::fs::read(vol.path().join("sub/f")).unwrap(), b"hello");
        let m = std::fs::metadata(vol.path().join("sub/f")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4751);
        assert_eq!(
            std::fs::metadata(vol.path()).unwrap().mode() & 0o7777,
            0o1777
        );
        // The symlink was copied as a link, not followed.
        let l = std::fs::symlink_metadata(vol.path().join("escape")).unwrap();
        assert!(l.file_type().is_symlink());
        assert!(!copy_up(root.path(), Path::new("/missing"), vol.path()).unwrap());
        // A symlink pointing out of the root is resolved inside it: nothing there, nothing copied.
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        let vol2 = tempfile::tempdir().unwrap();
        assert!(!copy_up(root.path(), Path::new("/out"), vol2.path()).unwrap());
        assert!(std::fs::read_dir(vol2.path()).unwrap().next().is_none());
    }
}
