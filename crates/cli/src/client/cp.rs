//! `berth cp`: copies files between a container and the host over docker's archive API
//! (`HEAD`/`GET`/`PUT /containers/{id}/archive?path=`), with docker/cli's cp.go semantics:
//! a destination directory receives the source inside it, a missing destination takes the source's
//! place under the new name, and `SRC/.` copies a directory's contents. `-` streams a tar.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use clap::Parser;

use super::http::{encode, Body, HttpError};
use super::{parse, CliError, CmdResult, Globals};

const USAGE: &str = "berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH";

#[derive(Parser)]
#[command(
    about = "Copy files/folders between a container and the local filesystem",
    allow_hyphen_values = true
)]
struct CpOpts {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached
    #[arg(short, long)]
    quiet: bool,
    #[arg(value_name = "SRC_PATH", allow_hyphen_values = true)]
    src: String,
    #[arg(value_name = "DEST_PATH", allow_hyphen_values = true)]
    dst: String,
}

/// Splits `container:path` (a leading `/` or `.` means a local path, like docker's splitCpArg).
fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => (Some(c), p),
        _ => (None, arg),
    }
}

fn msg(m: impl Into<String>) -> CliError {
    CliError::Msg(m.into())
}

/// `berth cp`.
pub fn cp(args: &[String], g: &Globals) -> CmdResult {
    let o: CpOpts = parse("cp", USAGE, args)?;
    let (sc, sp) = split_arg(&o.src);
    let (dc, dp) = split_arg(&o.dst);
    let quiet = o.quiet || !io::stderr().is_terminal();
    match (sc, dc) {
        (Some(_), Some(_)) => Err(msg("copying between containers is not supported")),
        (None, None) => Err(msg("must specify at least one container source")),
        (Some(c), None) => {
            if sp.is_empty() {
                return Err(msg("source can not be empty"));
            }
            if dp.is_empty() {
                return Err(msg("destination can not be empty"));
            }
            from_container(g, &o, c, sp, dp, quiet)
        }
        (None, Some(c)) => {
            if sp.is_empty() {
                return Err(msg("source can not be empty"));
            }
            if dp.is_empty() {
                return Err(msg("destination can not be empty"));
            }
            to_container(g, &o, sp, c, dp, quiet)
        }
    }
}

/// docker's container path stat (`X-Docker-Container-Path-Stat`).
struct Stat {
    is_dir: bool,
    is_link: bool,
    link_target: String,
}

const GO_MODE_DIR: u64 = 1 << 31;
const GO_MODE_SYMLINK: u64 = 1 << 27;

fn decode_stat(h: Option<&str>) -> Stat {
    let v: serde_json::Value = h
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mode = v["mode"].as_u64().unwrap_or(0);
    Stat {
        is_dir: mode & GO_MODE_DIR != 0,
        is_link: mode & GO_MODE_SYMLINK != 0,
        link_target: v["linkTarget"].as_str().unwrap_or("").to_string(),
    }
}

fn archive_path(c: &str, p: &str) -> String {
    format!("/containers/{}/archive?path={}", encode(c), encode(p))
}

/// `HEAD` stat of a container path; `None` when it does not exist.
fn stat_in(g: &Globals, c: &str, p: &str) -> Result<Option<Stat>, CliError> {
    let mut client = g.client()?;
    match client.request("HEAD", &archive_path(c, p), &[], Body::None) {
        Ok(r) => Ok(Some(decode_stat(r.header("X-Docker-Container-Path-Stat")))),
        Err(HttpError::Api { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The last element of a path as docker's SplitPathDirEntry sees it (`a/b/.` → `.`).
fn split_dir_entry(p: &str) -> (String, String) {
    let trimmed = if p.len() > 1 {
        p.trim_end_matches('/')
    } else {
        p
    };
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    match trimmed.rsplit_once('/') {
        Some(("", b)) => ("/".into(), b.into()),
        Some((d, b)) => (d.into(), b.into()),
        None => (".".into(), trimmed.into()),
    }
}

/// Counts bytes passing through a reader (for "Successfully copied").
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

fn from_container(
    g: &Globals,
    o: &CpOpts,
    c: &str,
    src: &str,
    dst: &str,
    quiet: bool,
) -> CmdResult {
    let mut src_path = src.to_string();
    let mut rebase = None;
    if o.follow_link {
        if let Some(st) = stat_in(g, c, src)? {
            if st.is_link && !st.link_target.is_empty() {
                let t = if st.link_target.starts_with('/') {
                    st.link_target.clone()
                } else {
                    format!("{}/{}", split_dir_entry(src).0, st.link_target)
                };
                rebase = Some(split_dir_entry(src).1);
                src_path = t;
            }
        }
    }
    let resp = g
        .client()?
        .request("GET", &archive_path(c, &src_path), &[], Body::None)?;
    let stat = decode_stat(resp.header("X-Docker-Container-Path-Stat"));
    let mut resp = Counting { inner: resp, n: 0 };
    if dst == "-" {
        let mut stdout = io::stdout().lock();
        io::copy(&mut resp, &mut stdout)?;
        stdout.flush()?;
        return Ok(0);
    }
    // Decide where the archive lands and what its top entry is renamed to (PrepareArchiveCopy).
    let dst_meta = fs::metadata(dst).ok();
    let (dst_dir, dst_base) = split_dir_entry(dst);
    let (dir, new_root): (PathBuf, Option<String>) = match dst_meta {
        Some(m) if m.is_dir() => (PathBuf::from(dst), rebase),
        Some(_) if stat.is_dir => return Err(msg("cannot copy directory")),
        Some(_) => (PathBuf::from(&dst_dir), Some(dst_base)),
        None if !stat.is_dir && (dst.ends_with('/') || dst.ends_with("/.")) => {
            return Err(msg(format!(
                "destination \"{dst}\" must be a directory: no such directory"
            )))
        }
        None => {
            if !Path::new(&dst_dir).is_dir() {
                return Err(msg(format!("lstat {dst_dir}: no such file or directory")));
            }
            (PathBuf::from(&dst_dir), Some(dst_base))
        }
    };
    extract(&mut resp, &dir, new_root.as_deref())?;
    if !quiet {
        eprintln!(
            "Successfully copied {} to {dst}",
            super::units::human_size(resp.n as f64)
        );
    }
    Ok(0)
}

/// Rebases a tar entry name: its first component is replaced by `new_root` (when given).
/// Returns `None` for the archive's `.` root itself when it maps onto `dir`.
fn rebased(name: &Path, new_root: Option<&str>) -> Result<Option<PathBuf>, CliError> {
    let mut comps = name
        .components()
        .filter(|c| !matches!(c, Component::CurDir));
    let mut out = PathBuf::new();
    let first_is_dot = name.components().next() == Some(Component::CurDir);
    let rest_start = if first_is_dot {
        // "." / "./x": the root is ".".
        if let Some(r) = new_root {
            out.push(r);
        }
        None
    } else {
        match comps.next() {
            Some(Component::Normal(f)) => {
                match new_root {
                    Some(r) => out.push(r),
                    None => out.push(f),
                }
                None
            }
            None => return Ok(None),
            Some(_) => Some(()),
        }
    };
    if rest_start.is_some() {
        return Err(msg(format!(
            "refusing to extract {}: path escapes the destination",
            name.display()
        )));
    }
    for c in comps {
        match c {
            Component::Normal(p) => out.push(p),
            _ => {
                return Err(msg(format!(
                    "refusing to extract {}: path escapes the destination",
                    name.display()
                )))
            }
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Creates the parents of `rel` under `root`, refusing any that resolve outside `root`
/// (a symlink from an earlier entry must not redirect later ones).
fn safe_parent(root: &Path, rel: &Path) -> Result<PathBuf, CliError> {
    let root_c = fs::canonicalize(root)?;
    let mut cur = root_c.clone();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(_) => {
                    let real = fs::canonicalize(&cur)?;
                    if !real.starts_with(&root_c) || !real.is_dir() {
                        return Err(msg(format!(
                            "refusing to extract {}: parent is outside the destination",
                            rel.display()
                        )));
                    }
                    cur = real;
                }
                Err(_) => fs::create_dir(&cur)?,
            }
        }
    }
    Ok(cur.join(rel.file_name().unwrap_or_default()))
}

/// Unpacks a tar under `dir`, keeping modes, mtimes, symlinks and (as root) ownership.
fn extract(r: &mut dyn Read, dir: &Path, new_root: Option<&str>) -> Result<(), CliError> {
    let mut ar = tar::Archive::new(r);
    let is_root = nix::unistd::geteuid().is_root();
    for e in ar.entries()? {
        let mut e = e?;
        let name = e.path()?.into_owned();
        let Some(rel) = rebased(&name, new_root)? else {
            continue;
        };
        let target = safe_parent(dir, &rel)?;
        let kind = e.header().entry_type();
        if kind.is_hard_link() {
            let link = e.link_name()?.unwrap_or_default().into_owned();
            let Some(lrel) = rebased(&link, new_root)? else {
                continue;
            };
            let _ = fs::remove_file(&target);
            fs::hard_link(dir.join(lrel), &target)?;
            continue;
        }
        if !kind.is_dir() {
            if let Ok(m) = fs::symlink_metadata(&target) {
                if !m.is_dir() {
                    fs::remove_file(&target)?;
                }
            }
        }
        e.set_preserve_permissions(true);
        e.set_preserve_mtime(true);
        e.set_unpack_xattrs(false);
        e.unpack(&target)?;
        if is_root {
            let h = e.header();
            let (uid, gid) = (h.uid()? as u32, h.gid()? as u32);
            std::os::unix::fs::lchown(&target, Some(uid), Some(gid))?;
            // chown drops setuid/setgid bits: restore the archived mode.
            if !kind.is_symlink() {
                fs::set_permissions(&target, fs::Permissions::from_mode(h.mode()? & 0o7777))?;
            }
        }
    }
    Ok(())
}

/// Packs a local path into a tar written to `w`, whose top entry is named `root` (empty: the contents only).
/// Sockets are skipped, as docker's archiver does.
fn pack<W: Write>(src: &Path, root: &str, follow: bool, w: W) -> Result<W, CliError> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut stack = vec![(src.to_path_buf(), PathBuf::from(root))];
    let mut first = true;
    while let Some((p, name)) = stack.pop() {
        let m = if first && follow {
            fs::metadata(&p)
        } else {
            fs::symlink_metadata(&p)
        }
        .map_err(|e| msg(format!("lstat {}: {e}", p.display())))?;
        if !name.as_os_str().is_empty() && !m.file_type().is_socket() {
            let added = if first && follow && !m.is_dir() {
                let mut h = tar::Header::new_gnu();
                h.set_metadata(&m);
                fs::File::open(&p).and_then(|mut f| b.append_data(&mut h, &name, &mut f))
            } else if first && follow {
                let mut h = tar::Header::new_gnu();
                h.set_metadata(&m);
                h.set_size(0);
                b.append_data(&mut h, &name, io::empty())
            } else {
                b.append_path_with_name(&p, &name)
            };
            added.map_err(|e| msg(format!("copying {}: {e}", p.display())))?;
        }
        first = false;
        if m.is_dir() {
            let mut kids: Vec<_> = fs::read_dir(&p)
                .and_then(|d| d.collect::<Result<Vec<_>, _>>())
                .map_err(|e| msg(format!("reading {}: {e}", p.display())))?;
            kids.sort_by_key(|k| std::cmp::Reverse(k.file_name()));
            for k in kids {
                stack.push((k.path(), name.join(k.file_name())));
            }
        }
    }
    Ok(b.into_inner()?)
}

/// How much tar the packing thread hands over at a time, and how many such chunks may wait for the socket:
/// an upload holds at most about `CHUNK * (QUEUE + 2)` bytes in memory, whatever the size of the source.
const CHUNK: usize = 256 * 1024;
const QUEUE: usize = 4;

/// What the packing thread sends through the pipe.
enum Piece {
    Data(Vec<u8>),
    Done,
    Failed(String),
}

/// The writing end of the pipe: the tar builder's output, cut into [`CHUNK`]-sized pieces.
struct PipeWriter {
    tx: std::sync::mpsc::SyncSender<Piece>,
    buf: Vec<u8>,
}

impl PipeWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(Piece::Data(full))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The reading end: what the HTTP request body reads (sent with chunked transfer encoding). A failure of the
/// packing thread becomes a read error (never a clean end of the tar), so the request is cut off and the
/// daemon sees a truncated body instead of a shorter archive; the message is kept for the CLI's error.
struct PipeReader {
    rx: std::sync::mpsc::Receiver<Piece>,
    cur: io::Cursor<Vec<u8>>,
    done: bool,
    failure: Option<String>,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.cur.read(out)?;
            if n > 0 || self.done || out.is_empty() {
                return Ok(n);
            }
            if let Some(f) = &self.failure {
                return Err(io::Error::other(f.clone()));
            }
            match self.rx.recv() {
                Ok(Piece::Data(d)) => self.cur = io::Cursor::new(d),
                Ok(Piece::Done) => self.done = true,
                Ok(Piece::Failed(m)) => self.failure = Some(m),
                Err(_) => self.failure = Some("the archive writer stopped unexpectedly".into()),
            }
        }
    }
}

/// Starts packing `src` on a thread; the returned reader streams the tar as it is made.
fn pack_stream(src: &Path, root: &str, follow: bool) -> (PipeReader, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let (src, root) = (src.to_path_buf(), root.to_string());
    let handle = std::thread::spawn(move || {
        let w = PipeWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let end = match pack(&src, &root, follow, w) {
            Ok(mut w) => match w.send() {
                Ok(()) => Piece::Done,
                Err(e) => Piece::Failed(e.to_string()),
            },
            Err(e) => Piece::Failed(e.to_string()),
        };
        // The reader may be gone already (the request failed): nothing left to tell.
        let _ = tx.send(end);
    });
    let reader = PipeReader {
        rx,
        cur: io::Cursor::new(Vec::new()),
        done: false,
        failure: None,
    };
    (reader, handle)
}

fn to_container(g: &Globals, o: &CpOpts, src: &str, c: &str, dst: &str, quiet: bool) -> CmdResult {
    let mut query = format!(
        "{}&noOverwriteDirNonDir=true&copyUIDGID={}",
        archive_path(c, dst),
        o.archive
    );
    let mut dst_stat = stat_in(g, c, dst)?;
    if src == "-" {
        match dst_stat {
            Some(s) if s.is_dir => {}
            _ => {
                return Err(msg(format!(
                    "destination \"{c}:{dst}\" must be a directory"
                )))
            }
        }
        let mut stdin = io::stdin().lock();
        g.client()?.request(
            "PUT",
            &query,
            &[],
            Body::Stream(&mut stdin, "application/x-tar"),
        )?;
        return Ok(0);
    }
    if o.follow_link {
        if let Some(s) = &dst_stat {
            if s.is_link && !s.link_target.is_empty() {
                dst_stat = stat_in(g, c, &s.link_target.clone())?;
            }
        }
    }
    let meta = if o.follow_link {
        fs::metadata(src)
    } else {
        fs::symlink_metadata(src)
    }
    .map_err(|_| msg(format!("lstat {src}: no such file or directory")))?;
    let src_is_dir = meta.is_dir();
    let (_, src_base) = split_dir_entry(src);
    let (dst_dir, dst_base) = split_dir_entry(dst);
    // PrepareArchiveCopy: where to extract, and under which top name.
    let (put_dir, root) = match &dst_stat {
        Some(s) if s.is_dir => (
            dst.to_string(),
            if src_base == "." {
                String::new()
            } else {
                src_base
            },
        ),
        Some(_) if src_is_dir => return Err(msg("cannot copy directory")),
        Some(_) => (dst_dir, dst_base),
        None if !src_is_dir && (dst.ends_with('/') || dst.ends_with("/.")) => {
            return Err(msg(format!(
                "destination \"{c}:{dst}\" must be a directory: no such directory"
            )))
        }
        None => (dst_dir, dst_base),
    };
    query = format!(
        "{}&noOverwriteDirNonDir=true&copyUIDGID={}",
        archive_path(c, &put_dir),
        o.archive
    );
    // The tar is made by a thread while the request sends it: memory stays bounded whatever the source's size.
    let (pipe, packer) = pack_stream(Path::new(src), &root, o.follow_link);
    let mut body = Counting { inner: pipe, n: 0 };
    let sent = g.client().and_then(|mut client| {
        client
            .request(
                "PUT",
                &query,
                &[],
                Body::Stream(&mut body, "application/x-tar"),
            )
            .map_err(CliError::from)
    });
    let failure = body.inner.failure.take();
    // Dropping the reader ends a packing thread still writing (its next send fails).
    drop(body.inner.rx);
    let _ = packer.join();
    match (sent, failure) {
        (Ok(_), None) => {}
        // The archive could not be made: that is the error to report, not the cut-off request.
        (_, Some(f)) => return Err(msg(f)),
        (Err(e), None) => return Err(e),
    }
    let size: u64 = if meta.is_dir() { body.n } else { meta.size() };
    if !quiet {
        eprintln!(
            "Successfully copied {} to {c}:{dst}",
            super::units::human_size(size as f64)
        );
    }
    Ok(0)
}
