//! `docker cp`: the archive API (`HEAD/GET/PUT /containers/{id}/archive?path=`).
//!
//! Paths are resolved inside the container's root with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! ([`berth_safepath`]), so a symlink (or `..`) in the container can never lead berthd to a host file; the
//! tree below a resolved path is walked one name at a time with `O_NOFOLLOW`. The root is the running container's own root
//! (`/proc/<pid>/root`, with its mounts: /dev/shm, volumes) or, for a stopped container, its overlay mounted
//! privately (under `<data-root>/tmp`) for the duration of the copy.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use serde::Serialize;
use serde_json::json;

use crate::engine::{Engine, EngineError};
use crate::record::Container;

mod extract;
#[cfg(test)]
use extract::entry_comps;
use extract::extract;
pub use extract::ExtractOptions;

/// Errors of the archive API.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The path does not exist in the container (404).
    #[error("Could not find the file {path} in container {container}")]
    NotFound {
        /// The path as asked.
        path: String,
        /// The container as named by the client.
        container: String,
    },
    /// PUT into something that is not a directory (400).
    #[error("extraction point is not a directory")]
    NotADirectory,
    /// Bad input: a tar entry escaping the destination, an overwrite that was refused (400).
    #[error("{0}")]
    Invalid(String),
    /// From the engine (its own status).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// I/O (500).
    #[error("{0}")]
    Io(String),
}

impl ArchiveError {
    /// docker's HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::NotADirectory | Self::Invalid(_) => 400,
            Self::Engine(e) => e.status(),
            Self::Io(_) => 500,
        }
    }
}

fn io_err(what: &str, e: io::Error) -> ArchiveError {
    ArchiveError::Io(format!("{what}: {e}"))
}

/// Writes the tar of a resolved path (blocking).
pub type TarWriter = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// docker's `X-Docker-Container-Path-Stat` (base64 of this JSON). `mode` is a Go `os.FileMode`.
#[derive(Debug, Clone, Serialize)]
pub struct PathStat {
    /// Base name of the path.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Go FileMode bits.
    pub mode: u32,
    /// RFC 3339.
    pub mtime: String,
    /// For a symlink: its target resolved inside the container.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// A Go `os.FileMode` from a unix `st_mode`.
pub fn go_file_mode(m: u32) -> u32 {
    let mut g = m & 0o777;
    match m & libc::S_IFMT {
        libc::S_IFDIR => g |= 1 << 31,
        libc::S_IFLNK => g |= 1 << 27,
        libc::S_IFIFO => g |= 1 << 25,
        libc::S_IFSOCK => g |= 1 << 24,
        libc::S_IFBLK => g |= 1 << 26,
        libc::S_IFCHR => g |= (1 << 26) | (1 << 21),
        _ => {}
    }
    if m & libc::S_ISUID != 0 {
        g |= 1 << 23;
    }
    if m & libc::S_ISGID != 0 {
        g |= 1 << 22;
    }
    if m & libc::S_ISVTX != 0 {
        g |= 1 << 20;
    }
    g
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `openat2` of `path` (components joined by `/`) inside `root`, never leaving it (see [`berth_safepath`]).
fn open_in_root(root: RawFd, path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    Ok(berth_safepath::open_in_root(root, path, flags, 0)?)
}

/// `openat` of one name in `dir` (no resolution beyond that name).
fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    Ok(berth_safepath::open_name(dir, name, flags, mode)?)
}

fn fstatat(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    Ok(berth_safepath::lstat_name(dir, name)?)
}

fn readlinkat(dir: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// A container path split into clean components, and whether its last component is to be followed (the path
/// ends in `/` or `/.`, docker's rule).
fn split(path: &str) -> (Vec<String>, bool) {
    let follow = path.ends_with('/') || path.ends_with("/.") || path == ".";
    let mut comps: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                comps.pop();
            }
            c => comps.push(c.to_string()),
        }
    }
    (comps, follow)
}

/// A path resolved inside the root: an O_PATH fd of its directory and the entry's name in it (`.` when the
/// path was followed to a directory), and the entry's lstat.
struct Resolved {
    dir: OwnedFd,
    name: CString,
    st: libc::stat,
}

fn resolve(root: RawFd, path: &str) -> io::Result<Resolved> {
    let (comps, follow) = split(path);
    if comps.is_empty() || follow {
        let dir = open_in_root(root, &comps.join("/"), libc::O_PATH | libc::O_DIRECTORY)?;
        let name = cstring(b".")?;
        let st = fstatat(dir.as_raw_fd(), &name)?;
        return Ok(Resolved { dir, name, st });
    }
    let (last, parent) = comps.split_last().unwrap_or((&comps[0], &[]));
    let dir = open_in_root(root, &parent.join("/"), libc::O_PATH | libc::O_DIRECTORY)?;
    let name = cstring(last.as_bytes())?;
    let st = fstatat(dir.as_raw_fd(), &name)?;
    Ok(Resolved { dir, name, st })
}

/// Where a symlink at `path` leads, resolved inside the root (for `linkTarget`).
fn scoped_target(root: RawFd, path: &str) -> String {
    let (comps, _) = split(path);
    let mut todo: std::collections::VecDeque<String> = comps.into();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let parent = cur.join("/");
        let target = open_in_root(root, &parent, libc::O_PATH | libc::O_DIRECTORY)
            .and_then(|d| readlinkat(d.as_raw_fd(), &cstring(c.as_bytes())?));
        match target {
            Ok(t) if links < 40 => {
                links += 1;
                let t = String::from_utf8_lossy(&t).into_owned();
                if t.starts_with('/') {
                    cur.clear();
                }
                for (i, p) in t.split('/').enumerate() {
                    todo.insert(i, p.to_string());
                }
            }
            _ => cur.push(c),
        }
    }
    format!("/{}", cur.join("/"))
}

fn base_name(path: &str) -> String {
    if path.ends_with("/.") || path == "." {
        return ".".into();
    }
    let (comps, _) = split(path);
    comps.last().cloned().unwrap_or_else(|| "/".into())
}

fn mtime_rfc3339(st: &libc::stat) -> String {
    chrono::DateTime::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A reader that yields exactly `left` bytes: the file's, then zeros if it shrank while being read (a tar
/// header already promised the size).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left as usize);
        let n = match self.inner.read(&mut buf[..max])? {
            0 => {
                buf[..max].fill(0);
                max
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

fn add_entry<W: Write>(
    b: &mut tar::Builder<W>,
    dir: RawFd,
    name: &CStr,
    st: &libc::stat,
    tar_name: &str,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, format!("{tar_name}/"), io::empty())?;
            let fd = openat(
                dir,
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            let d = nix::dir::Dir::from_fd(fd.into_raw_fd()).map_err(io::Error::from)?;
            let dfd = d.as_raw_fd();
            let mut d = d;
            let mut names: Vec<CString> = d
                .iter()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_owned())
                .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
                .collect();
            names.sort();
            for n in names {
                let Ok(cst) = fstatat(dfd, &n) else { continue };
                let child = format!("{tar_name}/{}", String::from_utf8_lossy(n.as_bytes()));
                add_entry(b, dfd, &n, &cst, &child)?;
            }
        }
        libc::S_IFREG => {
            let f = File::from(openat(dir, name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?);
            let size = f.metadata()?.len();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            b.append_data(
                &mut h,
                tar_name,
                Exact {
                    inner: f,
                    left: size,
                },
            )?;
        }
        libc::S_IFLNK => {
            let target = readlinkat(dir, name)?;
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(
                &mut h,
                tar_name,
                std::path::Path::new(std::ffi::OsStr::from_bytes(&target)),
            )?;
        }
        t @ (libc::S_IFIFO | libc::S_IFCHR | libc::S_IFBLK) => {
            h.set_entry_type(match t {
                libc::S_IFIFO => tar::EntryType::Fifo,
                libc::S_IFCHR => tar::EntryType::Char,
                _ => tar::EntryType::Block,
            });
            h.set_device_major(libc::major(st.st_rdev))?;
            h.set_device_minor(libc::minor(st.st_rdev))?;
            b.append_data(&mut h, tar_name, io::empty())?;
        }
        _ => {} // sockets are not archived (docker skips them too)
    }
    Ok(())
}

/// The container's root directory, open; for a stopped container, also the private mount to drop after.
struct Root {
    fd: OwnedFd,
    mount: Option<std::path::PathBuf>,
}

impl Root {
    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if let Some(dir) = self.mount.take() {
            // Lazily: the fd above is closed right after this; nothing else uses the mount.
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// Opens the container's root: see the module docs. (The private mount stays attached while in use: `..`
/// steps of `openat2(RESOLVE_IN_ROOT)` inside a detached mount never settle.)
fn open_root(engine: &Engine, c: &Container) -> Result<Root, ArchiveError> {
    if c.state.running && c.state.pid > 0 {
        let p = cstring(format!("/proc/{}/root", c.state.pid).as_bytes())
            .map_err(|e| io_err("root", e))?;
        // SAFETY: NUL-terminated path; the fd returned is ours.
        let fd = check(unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })
        .map_err(|e| io_err("opening the container's root", e))?;
        // SAFETY: fd was just returned by open.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        return Ok(Root { fd, mount: None });
    }
    let layer = berth_storage::RwLayer::open(&engine.cfg.data_root, &c.id)
        .map_err(|e| ArchiveError::Io(format!("container storage: {e}")))?;
    let opts = layer
        .mount_options()
        .map_err(|e| ArchiveError::Io(format!("container storage: {e}")))?;
    let dir = engine.cfg.data_root.join("tmp").join(format!(
        "cp-{}-{}-{}",
        &c.id[..12.min(c.id.len())],
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    ));
    std::fs::create_dir(&dir).map_err(|e| io_err("temporary mount point", e))?;
    let mounted = nix::mount::mount(
        Some("overlay"),
        &dir,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    );
    if let Err(e) = mounted {
        let _ = std::fs::remove_dir(&dir);
        return Err(ArchiveError::Io(format!(
            "mounting the container's rootfs: {e}"
        )));
    }
    match File::open(&dir) {
        Ok(f) => Ok(Root {
            fd: OwnedFd::from(f),
            mount: Some(dir),
        }),
        Err(e) => {
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&dir);
            Err(io_err("opening the container's rootfs", e))
        }
    }
}

impl Engine {
    fn not_found(key: &str, path: &str) -> ArchiveError {
        ArchiveError::NotFound {
            path: path.to_string(),
            container: key.to_string(),
        }
    }

    fn resolve_for(
        &self,
        key: &str,
        path: &str,
    ) -> Result<(Container, Root, Resolved), ArchiveError> {
        let c = self.get(key)?;
        let root = open_root(self, &c)?;
        let r = resolve(root.raw(), path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => Self::not_found(key, path),
            _ => io_err(path, e),
        })?;
        Ok((c, root, r))
    }

    fn stat_of(root: RawFd, path: &str, r: &Resolved) -> PathStat {
        let is_link = r.st.st_mode & libc::S_IFMT == libc::S_IFLNK;
        PathStat {
            name: base_name(path),
            size: r.st.st_size,
            mode: go_file_mode(r.st.st_mode),
            mtime: mtime_rfc3339(&r.st),
            link_target: if is_link {
                scoped_target(root, path)
            } else {
                String::new()
            },
        }
    }

    /// `HEAD /containers/{id}/archive?path=`.
    pub fn archive_stat(&self, key: &str, path: &str) -> Result<PathStat, ArchiveError> {
        let (_, root, r) = self.resolve_for(key, path)?;
        Ok(Self::stat_of(root.raw(), path, &r))
    }

    /// `GET /containers/{id}/archive?path=`: the stat first, then `write` is called with the tar writer
    /// function; blocking (run it off the async runtime).
    pub fn archive_get(
        &self,
        key: &str,
        path: &str,
    ) -> Result<(PathStat, TarWriter), ArchiveError> {
        let (c, root, r) = self.resolve_for(key, path)?;
        let stat = Self::stat_of(root.raw(), path, &r);
        self.container_event(&c, "archive-path", json!({}));
        let base = base_name(path);
        let writer = move |w: &mut dyn Write| -> io::Result<()> {
            let _root = root;
            let mut b = tar::Builder::new(w);
            let tar_name = if base == "/" { ".".to_string() } else { base };
            add_entry(&mut b, r.dir.as_raw_fd(), &r.name, &r.st, &tar_name)?;
            b.finish()
        };
        Ok((stat, Box::new(writer)))
    }

    /// `PUT /containers/{id}/archive?path=`: extracts a tar stream into the directory `path`; blocking.
    pub fn archive_put(
        &self,
        key: &str,
        path: &str,
        mut input: impl Read,
        opts: ExtractOptions,
    ) -> Result<(), ArchiveError> {
        let res = self.archive_put_inner(key, path, &mut input, opts);
        // Read the request to its end whatever happened (tar readers stop at the first zero block): a client
        // still writing when the answer comes would see a broken pipe instead of the answer.
        let _ = io::copy(&mut input, &mut io::sink());
        res
    }

    fn archive_put_inner(
        &self,
        key: &str,
        path: &str,
        input: impl Read,
        opts: ExtractOptions,
    ) -> Result<(), ArchiveError> {
        let c = self.get(key)?;
        if c.host_config["ReadonlyRootfs"].as_bool().unwrap_or(false) {
            return Err(ArchiveError::Invalid(
                "container rootfs is marked read-only".into(),
            ));
        }
        let root = open_root(self, &c)?;
        let (comps, _) = split(path);
        let fd = open_in_root(root.raw(), &comps.join("/"), libc::O_PATH).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR) => Self::not_found(key, path),
                _ => io_err(path, e),
            }
        })?;
        if !File::from(fd)
            .metadata()
            .map_err(|e| io_err(path, e))?
            .is_dir()
        {
            return Err(ArchiveError::NotADirectory);
        }
        extract(root.raw(), &comps, input, opts)?;
        self.container_event(&c, "extract-to-dir", json!({}));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_paths() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(split("/a/b/"), (vec!["a".into(), "b".into()], true));
        assert_eq!(split("/a/../../b"), (vec!["b".into()], false));
        assert_eq!(base_name("/a/b/."), ".");
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(entry_comps(b"./x/../y"), Some(vec!["y".into()]));
        assert_eq!(entry_comps(b"../y"), None);
    }

    #[test]
    fn tar_round_trip_inside_a_root() {
        let src = tempfile::tempdir().unwrap();
        let p = src.path();
        std::fs::create_dir_all(p.join("d/sub")).unwrap();
        std::fs::write(p.join("d/a file"), b"hello").unwrap();
        std::fs::write(p.join("d/sub/x"), vec![7u8; 70000]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join("d/link")).unwrap();
        std::os::unix::fs::symlink("../../../../..", p.join("escape")).unwrap();
        let root = File::open(p).map(OwnedFd::from).unwrap();
        let fd = root.as_raw_fd();
        // A symlink climbing out resolves inside the root.
        assert_eq!(scoped_target(fd, "/escape"), "/");
        let r = resolve(fd, "/d").unwrap();
        let mut buf = Vec::new();
        {
            let mut b = tar::Builder::new(&mut buf);
            add_entry(&mut b, r.dir.as_raw_fd(), &r.name, &r.st, "d").unwrap();
            b.finish().unwrap();
        }
        let dst = tempfile::tempdir().unwrap();
        std::fs::create_dir(dst.path().join("in")).unwrap();
        let droot = File::open(dst.path()).map(OwnedFd::from).unwrap();
        extract(
            droot.as_raw_fd(),
            &["in".into()],
            &buf[..],
            ExtractOptions {
                no_overwrite_dir_non_dir: true,
                copy_uid_gid: true,
            },
        )
        .unwrap();
        let q = dst.path().join("in/d");
        assert_eq!(std::fs::read(q.join("a file")).unwrap(), b"hello");
        assert_eq!(std::fs::read(q.join("sub/x")).unwrap().len(), 70000);
        assert_eq!(
            std::fs::read_link(q.join("link")).unwrap(),
            std::path::Path::new("/etc/passwd")
        );
        // An entry escaping the destination is refused.
        let mut evil = Vec::new();
        {
            let mut b = tar::Builder::new(&mut evil);
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            let name = b"../../x";
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
            b.finish().unwrap();
        }
        assert!(extract(
            droot.as_raw_fd(),
            &["in".into()],
            &evil[..],
            ExtractOptions::default()
        )
        .is_err());
    }
}
