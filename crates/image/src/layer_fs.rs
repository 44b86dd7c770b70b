//! File-system primitives for [`crate::layer`]'s extraction, chosen to keep the syscalls per tar entry few:
//! a cache of the directories already created or checked in the layer being unpacked (so a parent path is
//! walked with `lstat` once per layer, not once per entry), create-first-then-handle-`EEXIST` instead of a
//! `lstat` before every create, metadata applied through the open fd (`fchown`/`fchmod`/`fsetxattr`/
//! `futimens`, no path walk), and `chown`/`chmod` skipped when the kernel already gave the new inode the
//! owner and mode the entry asks for.
//!
//! Escape safety is unchanged: only directories this extraction created or `lstat`ed as real directories
//! (not symlinks) are cached, nothing else writes into the layer's private temp dir meanwhile, and the cache
//! is dropped whenever an entry replaces one of its directories (which also removes everything below it).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Why a parent path cannot be used.
pub(crate) enum ParentError {
    Unsafe(&'static str),
    Io(io::Error),
}

/// Directories known to be real directories in the layer being unpacked, relative to its root, with whether
/// a new inode inside may not get the plain owner and mode: the directory is setgid (the inode takes its
/// group) or may have a default ACL (the ACL, not the umask, sets the mode). Then nothing is skipped.
pub(crate) struct DirCache {
    root: PathBuf,
    root_inherits: bool,
    known: HashMap<PathBuf, bool>,
}

/// Whether a directory with `mode` and extended attributes named `xattrs` passes anything on to new inodes.
pub(crate) fn inherits<'a>(mode: u32, mut xattrs: impl Iterator<Item = &'a str>) -> bool {
    mode & libc::S_ISGID != 0 || xattrs.any(|n| n.starts_with("system.posix_acl_default"))
}

impl DirCache {
    pub(crate) fn new(root: &Path) -> io::Result<Self> {
        let m = fs::symlink_metadata(root)?;
        let c = cpath(root)?;
        // SAFETY: `c` is NUL-terminated; a NULL buffer of size 0 only asks for the value's size.
        let acl = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                c"system.posix_acl_default".as_ptr(),
                std::ptr::null_mut(),
                0,
            )
        } >= 0;
        Ok(DirCache {
            root: root.to_path_buf(),
            root_inherits: acl || inherits(m.mode(), std::iter::empty()),
            known: HashMap::new(),
        })
    }

    /// Whether `rel` is a directory this extraction created or checked.
    pub(crate) fn is_dir(&self, rel: &Path) -> bool {
        rel.as_os_str().is_empty() || self.known.contains_key(rel)
    }

    /// Whether new inodes in the directory `rel` may not get the plain owner and mode (see [`DirCache`]);
    /// `true` when unknown, which only costs a `chown` and a `chmod`.
    pub(crate) fn inherits(&self, rel: &Path) -> bool {
        if rel.as_os_str().is_empty() {
            return self.root_inherits;
        }
        self.known.get(rel).copied().unwrap_or(true)
    }

    /// Records that `rel` is now a real directory, passing something on to new inodes or not.
    pub(crate) fn insert(&mut self, rel: &Path, inherits: bool) {
        self.known.insert(rel.to_path_buf(), inherits);
    }

    /// Called before an entry replaces whatever is at `rel`: when that is a cached directory it is about to
    /// be removed with everything below it, so the whole cache goes (rare: a layer replacing its own dir).
    pub(crate) fn replacing(&mut self, rel: &Path) {
        if self.known.contains_key(rel) {
            self.known.clear();
        }
    }

    /// Walks `rel` under the root component by component, refusing symlinks and non-directories; missing
    /// directories are created (0755, root-owned, as docker does) when `create`. Returns the absolute path.
    pub(crate) fn parents(&mut self, rel: &Path, create: bool) -> Result<PathBuf, ParentError> {
        let full = self.root.join(rel);
        if self.is_dir(rel) {
            return Ok(full);
        }
        let mut cur = PathBuf::new();
        for c in rel.components() {
            let parent_inherits = self.inherits(&cur);
            cur.push(c);
            if self.known.contains_key(&cur) {
                continue;
            }
            let abs = self.root.join(&cur);
            match fs::symlink_metadata(&abs) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ParentError::Unsafe("a parent component is a symlink"))
                }
                // Made by an earlier entry whose xattrs are not known here: assume the worst.
                Ok(m) if m.is_dir() => self.insert(&cur, true),
                Ok(_) => return Err(ParentError::Unsafe("a parent component is not a directory")),
                Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&abs)
                        .map_err(ParentError::Io)?;
                    // A setgid parent passes its setgid bit on, a default ACL its own; the umask may
                    // have cleared bits.
                    if parent_inherits || !umask_keeps(0o755) {
                        fs::set_permissions(&abs, fs::Permissions::from_mode(0o755))
                            .map_err(ParentError::Io)?;
                    }
                    // A default ACL is inherited as the new directory's default ACL too.
                    self.insert(&cur, parent_inherits);
                }
                Err(e) => return Err(ParentError::Io(e)),
            }
        }
        Ok(full)
    }
}

/// The process umask, read once from /proc (umask(2) can only read it by changing it, which would race with
/// other threads creating files). `None` when unknown: then every mode is set explicitly.
fn umask() -> Option<u32> {
    static UMASK: OnceLock<Option<u32>> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let s = fs::read_to_string("/proc/self/status").ok()?;
        let v = s.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(v.trim(), 8).ok()
    })
}

/// Whether creating an inode with permission bits `mode` (no special bits) leaves exactly `mode` after the
/// umask.
pub(crate) fn umask_keeps(mode: u32) -> bool {
    mode & !0o777 == 0 && umask().is_some_and(|u| mode & u == 0)
}

/// Whether an inode this process creates in a directory that is not setgid is already owned by `uid:gid`.
pub(crate) fn owned_by_creator(uid: u64, gid: u64) -> bool {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    // SAFETY: geteuid/getegid have no preconditions. (The fs ids equal these unless setfsuid was used,
    // which berth never does; nor does it change its ids while running.)
    let (eu, eg) = *IDS.get_or_init(|| unsafe { (libc::geteuid(), libc::getegid()) });
    uid == u64::from(eu) && gid == u64::from(eg)
}

/// Opens a new regular file for writing, never following a symlink at `p` and failing with `EEXIST` if
/// anything is there.
pub(crate) fn create_file(p: &Path, mode: u32) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(p)
}

/// Removes whatever is at `p` so a new entry can take its place; a directory is kept when the new entry is
/// one too (tar semantics: later entries update earlier ones).
pub(crate) fn remove_existing(p: &Path, new_is_dir: bool) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() && new_is_dir => Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs `create`; when something is already at `p` (an earlier entry of the same path), removes it and
/// tries once more. Saves the `lstat` before every create that a fresh layer never needs.
pub(crate) fn create_replacing<T>(
    p: &Path,
    mut create: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_existing(p, false)?;
            create()
        }
        r => r,
    }
}

pub(crate) fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

pub(crate) fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| invalid("NUL in path"))
}

fn ids(uid: u64, gid: u64) -> io::Result<(u32, u32)> {
    let uid = u32::try_from(uid).map_err(|_| invalid("uid out of range"))?;
    let gid = u32::try_from(gid).map_err(|_| invalid("gid out of range"))?;
    Ok((uid, gid))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn mknod(p: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: `c` is a valid NUL-terminated path; mknod does not retain the pointer.
    check(unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) })
}

pub(crate) fn lchown(p: &Path, uid: u64, gid: u64) -> io::Result<()> {
    let (uid, gid) = ids(uid, gid)?;
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
}

pub(crate) fn fchown(f: &fs::File, uid: u64, gid: u64) -> io::Result<()> {
    let (uid, gid) = ids(uid, gid)?;
    std::os::unix::fs::fchown(f, Some(uid), Some(gid))
}

pub(crate) fn set_xattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(p)?;
    let n = CString::new(name).map_err(|_| invalid("NUL in xattr name"))?;
    // SAFETY: all pointers are valid for the given lengths for the duration of the call.
    check(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

pub(crate) fn fset_xattr(f: &fs::File, name: &str, value: &[u8]) -> io::Result<()> {
    let n = CString::new(name).map_err(|_| invalid("NUL in xattr name"))?;
    // SAFETY: the fd is open and the pointers are valid for the given lengths during the call.
    check(unsafe {
        libc::fsetxattr(
            f.as_raw_fd(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

fn times(mtime: u64) -> [libc::timespec; 2] {
    let secs = i64::try_from(mtime).unwrap_or(i64::MAX);
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    [t, t]
}

pub(crate) fn set_mtime(p: &Path, mtime: u64) -> io::Result<()> {
    let c = cpath(p)?;
    let ts = times(mtime);
    // SAFETY: `c` is NUL-terminated and `ts` points at two timespecs, as utimensat requires.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub(crate) fn fset_mtime(f: &fs::File, mtime: u64) -> io::Result<()> {
    let ts = times(mtime);
    // SAFETY: the fd is open and `ts` points at two timespecs, as futimens requires.
    check(unsafe { libc::futimens(f.as_raw_fd(), ts.as_ptr()) })
}

/// Starts writeback of `len` bytes of `f` from `off` without waiting for it (`SYNC_FILE_RANGE_WRITE`), so
/// the disk writes a layer's data while the pull is still decompressing the rest, and the `syncfs` that
/// makes the layer durable before it is committed finds little left to write. Advisory: errors are
/// ignored (the `syncfs` reports real ones).
pub(crate) fn start_writeback(f: &impl AsRawFd, off: u64, len: u64) {
    let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else {
        return;
    };
    // SAFETY: plain syscall on an open fd; no memory is passed.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}
