//! The PUT side of the archive API: extracting a tar stream below a directory of the container, every entry
//! created relative to a parent resolved inside the root, with `O_NOFOLLOW`/`O_EXCL` on the name itself.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::{check, cstring, fstatat, io_err, open_in_root, openat, ArchiveError};

/// The parent directory `comps` inside the root, created (0755) where missing; an O_PATH fd.
fn ensure_dir(root: RawFd, comps: &[String]) -> io::Result<OwnedFd> {
    match open_in_root(root, &comps.join("/"), libc::O_PATH | libc::O_DIRECTORY) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        r => return r,
    }
    let mut cur = open_in_root(root, "", libc::O_PATH | libc::O_DIRECTORY)?;
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        match open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let n = cstring(comps[i].as_bytes())?;
                // SAFETY: valid dirfd and NUL-terminated name.
                let r = unsafe { libc::mkdirat(cur.as_raw_fd(), n.as_ptr(), 0o755) };
                if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                    return Err(io::Error::last_os_error());
                }
                cur = open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

fn timespec(secs: u64) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    [t, t]
}

/// Options of a PUT.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory or the reverse (the CLI always asks for it).
    pub no_overwrite_dir_non_dir: bool,
    /// Keep the archive's uid/gid (`cp -a`); otherwise everything belongs to root.
    pub copy_uid_gid: bool,
}

/// Clean components of a tar entry name below the destination; `None` when it climbs out of it.
pub(super) fn entry_comps(raw: &[u8]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(String::from_utf8_lossy(c).into_owned()),
        }
    }
    Some(out)
}

pub(super) fn extract<R: Read>(
    root: RawFd,
    dest: &[String],
    input: R,
    opts: ExtractOptions,
) -> Result<(), ArchiveError> {
    let ioe = |e: io::Error| io_err("extracting", e);
    let mut ar = tar::Archive::new(input);
    let mut dir_times: Vec<(String, u64)> = Vec::new();
    for entry in ar.entries().map_err(ioe)? {
        let mut e = entry.map_err(ioe)?;
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = entry_comps(&raw).ok_or_else(|| {
            ArchiveError::Invalid(format!("{shown:?} is outside of \"/{}\"", dest.join("/")))
        })?;
        let Some((last, parents)) = rel.split_last() else {
            continue;
        };
        let kind = e.header().entry_type();
        if !(kind.is_dir()
            || kind.is_file()
            || kind.is_symlink()
            || kind.is_hard_link()
            || matches!(
                kind,
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
            ))
        {
            continue;
        }
        let mut parent_comps: Vec<String> = dest.to_vec();
        parent_comps.extend(parents.iter().cloned());
        let full = format!("/{}/{last}", parent_comps.join("/")).replace("//", "/");
        let parent = ensure_dir(root, &parent_comps).map_err(ioe)?;
        let pfd = parent.as_raw_fd();
        let name = cstring(last.as_bytes()).map_err(ioe)?;
        let h = e.header();
        let mode = h.mode().map_err(ioe)? & 0o7777;
        let (uid, gid) = if opts.copy_uid_gid {
            (h.uid().map_err(ioe)? as u32, h.gid().map_err(ioe)? as u32)
        } else {
            (0, 0)
        };
        let mtime = h.mtime().unwrap_or(0);
        let mut keep_dir = false;
        if let Ok(st) = fstatat(pfd, &name) {
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if is_dir && kind.is_dir() {
                keep_dir = true;
            } else if is_dir {
                return Err(ArchiveError::Invalid(format!(
                    "cannot overwrite directory {full:?} with non-directory {shown:?}"
                )));
            } else if kind.is_dir() && opts.no_overwrite_dir_non_dir {
                return Err(ArchiveError::Invalid(format!(
                    "cannot overwrite non-directory {full:?} with directory {shown:?}"
                )));
            } else {
                // SAFETY: valid dirfd and name; unlinkat never follows the name.
                check(unsafe { libc::unlinkat(pfd, name.as_ptr(), 0) }).map_err(ioe)?;
            }
        }
        let set_owner_mode = |fd: RawFd| -> io::Result<()> {
            // SAFETY: fd is a valid open file; chown before chmod, since chown clears set-id bits.
            check(unsafe { libc::fchown(fd, uid, gid) })?;
            // SAFETY: as above.
            check(unsafe { libc::fchmod(fd, mode) })?;
            Ok(())
        };
        if kind.is_dir() {
            if !keep_dir {
                // SAFETY: valid dirfd and name.
                check(unsafe { libc::mkdirat(pfd, name.as_ptr(), 0o700) }).map_err(ioe)?;
            }
            let fd = openat(
                pfd,
                &name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(ioe)?;
            set_owner_mode(fd.as_raw_fd()).map_err(ioe)?;
            dir_times.push((full, mtime));
        } else if kind.is_file() {
            let fd = openat(
                pfd,
                &name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                0o600,
            )
            .map_err(ioe)?;
            let mut f = File::from(fd);
            io::copy(&mut e, &mut f).map_err(ioe)?;
            set_owner_mode(f.as_raw_fd()).map_err(ioe)?;
            let ts = timespec(mtime);
            // SAFETY: valid fd and a two-element timespec array.
            check(unsafe { libc::futimens(f.as_raw_fd(), ts.as_ptr()) }).map_err(ioe)?;
        } else if kind.is_symlink() {
            let target = e
                .link_name_bytes()
                .ok_or_else(|| ArchiveError::Invalid(format!("symlink {shown:?} has no target")))?;
            let t = cstring(&target).map_err(ioe)?;
            // SAFETY: valid strings and dirfd.
            check(unsafe { libc::symlinkat(t.as_ptr(), pfd, name.as_ptr()) }).map_err(ioe)?;
            // SAFETY: AT_SYMLINK_NOFOLLOW: the link itself, never its target.
            check(unsafe {
                libc::fchownat(pfd, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
            })
            .map_err(ioe)?;
            let ts = timespec(mtime);
            // SAFETY: as above, on the link itself.
            check(unsafe {
                libc::utimensat(pfd, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
            })
            .map_err(ioe)?;
        } else if kind.is_hard_link() {
            let target = e.link_name_bytes().unwrap_or_default();
            let tc = entry_comps(&target).ok_or_else(|| {
                ArchiveError::Invalid(format!("hard link {shown:?} points outside"))
            })?;
            let Some((tlast, tparents)) = tc.split_last() else {
                return Err(ArchiveError::Invalid(format!(
                    "hard link {shown:?} has no target"
                )));
            };
            let mut tp: Vec<String> = dest.to_vec();
            tp.extend(tparents.iter().cloned());
            let tdir =
                open_in_root(root, &tp.join("/"), libc::O_PATH | libc::O_DIRECTORY).map_err(ioe)?;
            let tn = cstring(tlast.as_bytes()).map_err(ioe)?;
            // SAFETY: valid dirfds and names; flags 0 does not follow a symlink source.
            check(unsafe { libc::linkat(tdir.as_raw_fd(), tn.as_ptr(), pfd, name.as_ptr(), 0) })
                .map_err(ioe)?;
        } else {
            let (ty, dev) = match kind {
                tar::EntryType::Fifo => (libc::S_IFIFO, 0),
                t => (
                    if t == tar::EntryType::Char {
                        libc::S_IFCHR
                    } else {
                        libc::S_IFBLK
                    },
                    libc::makedev(
                        e.header().device_major().ok().flatten().unwrap_or(0),
                        e.header().device_minor().ok().flatten().unwrap_or(0),
                    ),
                ),
            };
            // SAFETY: valid dirfd and name.
            check(unsafe { libc::mknodat(pfd, name.as_ptr(), ty | mode, dev) }).map_err(ioe)?;
            let fd = openat(pfd, &name, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(ioe)?;
            let proc =
                cstring(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes()).map_err(ioe)?;
            // SAFETY: the magic link names exactly the node just created (never a symlink: O_NOFOLLOW).
            check(unsafe { libc::chown(proc.as_ptr(), uid, gid) }).map_err(ioe)?;
            // SAFETY: as above.
            check(unsafe { libc::chmod(proc.as_ptr(), mode) }).map_err(ioe)?;
        }
    }
    // Directory times last (writing their entries changed them), deepest first.
    for (path, mtime) in dir_times.iter().rev() {
        if let Ok(fd) = open_in_root(root, path, libc::O_RDONLY | libc::O_DIRECTORY) {
            let ts = timespec(*mtime);
            // SAFETY: valid fd and timespec array.
            unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) };
        }
    }
    Ok(())
}
