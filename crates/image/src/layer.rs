//! Layer unpacking into an overlay2 `diff` directory: gzip, zstd or plain tar (detected by magic bytes),
//! overlay whiteouts, hard links, symlinks, xattrs, device nodes, fifos, modes, owners and mtimes.
//!
//! Extraction is defensive: a layer is untrusted input. Entries whose path would leave the layer root
//! (`..`, absolute paths, a parent component that is a symlink, hard links to outside or through a
//! symlink) are refused, as are layers whose unpacked size exceeds a cap (tar bombs). On any error the
//! partial directory is removed. The compressed digest and the diff-id (sha256 of the uncompressed tar)
//! are computed in the same single pass.

use crate::digest::{HashReader, TeeReader};
use crate::direct_io::{AlignedBuf, DirectWriter};
#[cfg(test)]
use crate::layer_fs::cpath;
use crate::layer_fs::{
    create_file, create_replacing, fchown, fset_mtime, fset_xattr, inherits, invalid, lchown,
    mknod, owned_by_creator, remove_existing, set_mtime, set_xattr, start_writeback, umask_keeps,
    DirCache, ParentError,
};
use crate::pipe::{self, PumpError};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Default cap on a layer's unpacked size (64 GiB).
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;

/// Errors unpacking a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer: {0}")]
    Io(#[from] io::Error),
    #[error("layer: refusing entry {path:?}: {reason}")]
    UnsafeEntry { path: String, reason: &'static str },
    #[error("layer: unpacked size exceeds the limit of {limit} bytes (entry {path:?})")]
    TooLarge { path: String, limit: u64 },
    #[error("layer: {path}: {source}")]
    Entry { path: String, source: io::Error },
}

/// Compression of a layer stream, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Sniffs the magic bytes.
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The Docker/OCI media type a blob with this compression is pushed as.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => crate::manifest::MEDIA_OCI_LAYER,
            Compression::Gzip => crate::manifest::MEDIA_DOCKER_LAYER_GZIP,
            Compression::Zstd => crate::manifest::MEDIA_OCI_LAYER_ZSTD,
        }
    }
}

/// Wraps a possibly compressed stream in the matching decoder.
pub fn decompress<'a, R: BufRead + 'a>(mut r: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let c = Compression::detect(r.fill_buf()?);
    let d: Box<dyn Read + 'a> = match c {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::Decoder::with_buffer(r)?),
        Compression::None => Box::new(r),
    };
    Ok((c, d))
}

/// Files at least this large have their writeback started as soon as they are written (see
/// [`crate::layer_fs::start_writeback`]); for smaller ones the syscall costs more than it saves.
const WRITEBACK_MIN: u64 = 256 * 1024;
/// Files at least this large are written with `O_DIRECT` (see [`crate::direct_io`]): they are most of a
/// layer's bytes. For smaller ones a direct write's wait for the disk costs more than the copy it saves.
/// Their tails, and files that fall back to buffered writes, still get the early writeback.
const DIRECT_MIN: u64 = 256 * 1024;

/// Limits for [`unpack`].
#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    /// Refuse the layer when the sum of file sizes exceeds this.
    pub max_size: u64,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            max_size: DEFAULT_MAX_LAYER_SIZE,
        }
    }
}

/// What [`unpack`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// sha256 of the stream as given (compressed): the blob digest.
    pub digest: String,
    /// Bytes of the stream as given.
    pub compressed_size: u64,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Sum of the unpacked file sizes.
    pub size: u64,
    pub compression: Compression,
}

/// Unpacks the layer stream `input` into `dest` (created; must not exist or be empty), copying the raw
/// stream into `blob` when given. On error `dest` is removed.
pub fn unpack(
    input: &mut dyn Read,
    dest: &Path,
    blob: Option<&mut dyn Write>,
    opts: UnpackOptions,
) -> Result<Unpacked, LayerError> {
    fs::create_dir_all(dest)?;
    let r = unpack_inner(input, dest, blob, opts);
    if r.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    r
}

fn unpack_inner(
    input: &mut dyn Read,
    dest: &Path,
    blob: Option<&mut dyn Write>,
    opts: UnpackOptions,
) -> Result<Unpacked, LayerError> {
    let mut raw = HashReader::new(TeeReader::new(input, blob));
    let (compression, diff_id, size) = {
        let (compression, mut dec) = decompress(BufReader::with_capacity(256 * 1024, &mut raw))?;
        // Two stages on two threads: this one hashes and keeps the compressed stream and decompresses it;
        // the other hashes the tar and writes the files.
        let (tx, rx) = pipe::pipe();
        let (pumped, untarred) = std::thread::scope(|s| {
            let h = s.spawn(move || untar(rx, dest, opts));
            let pumped = pipe::pump(&mut dec, &tx);
            drop(tx); // End of stream for the unpacking thread.
            let untarred = h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the unpacking thread panicked").into()));
            (pumped, untarred)
        });
        match (pumped, untarred) {
            // The input or its decompression failed: the root cause, whatever the unpacker made of it.
            (Err(PumpError::Read(e)), _) => return Err(e.into()),
            (_, Err(e)) => return Err(e),
            (Ok(_), Ok((size, diff_id))) => (compression, diff_id, size),
            // The unpacker only succeeds after reading to the end of the stream, which the pump ends.
            (Err(PumpError::Closed), Ok(_)) => {
                return Err(io::Error::other("layer: unpacking stopped early").into())
            }
        }
    };
    raw.drain()?;
    let (digest, compressed_size, _) = raw.finish();
    Ok(Unpacked {
        digest,
        compressed_size,
        diff_id,
        size,
        compression,
    })
}

/// The unpacking stage: extracts the tar arriving on `rx` into `dest`; returns the unpacked size and the
/// diff-id.
fn untar(
    rx: pipe::ChunkReader,
    dest: &Path,
    opts: UnpackOptions,
) -> Result<(u64, String), LayerError> {
    let mut tarstream = HashReader::new(rx);
    let size = {
        let mut ar = tar::Archive::new(&mut tarstream);
        extract(&mut ar, dest, opts)?
    };
    // Hash what follows the end-of-archive marker too: the diff-id covers the whole stream. Bounded,
    // because trailing garbage is as good a bomb as file data.
    let trailing = io::copy(
        &mut (&mut tarstream).take(opts.max_size + 1),
        &mut io::sink(),
    )?;
    if trailing > opts.max_size {
        return Err(LayerError::TooLarge {
            path: "<trailing data>".into(),
            limit: opts.max_size,
        });
    }
    let (diff_id, _, _) = tarstream.finish();
    Ok((size, diff_id))
}

/// A directory's metadata, applied after its children so their creation does not bump its mtime.
struct DirMeta {
    path: PathBuf,
    mtime: u64,
}

fn extract<R: Read>(
    ar: &mut tar::Archive<R>,
    root: &Path,
    opts: UnpackOptions,
) -> Result<u64, LayerError> {
    // One large buffer for all files: io::copy's 8 KiB stack buffer costs a syscall per 8 KiB.
    let mut buf = vec![0u8; 256 * 1024];
    // The aligned buffer of direct writes, allocated at the first large file and reused.
    let mut direct_buf: Option<AlignedBuf> = None;
    let mut total: u64 = 0;
    let mut dirs: Vec<DirMeta> = Vec::new();
    let mut cache = DirCache::new(root)?;
    for entry in ar.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw_path).into_owned();
        let rel = match clean_path(&raw_path) {
            Ok(Some(p)) => p,
            Ok(None) => continue, // "./" itself: the layer root already exists.
            Err(reason) => {
                return Err(LayerError::UnsafeEntry {
                    path: display,
                    reason,
                })
            }
        };
        let size = entry.size();
        if size > opts.max_size.saturating_sub(total) {
            return Err(LayerError::TooLarge {
                path: display,
                limit: opts.max_size,
            });
        }
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let parent = cache
            .parents(&parent_rel, true)
            .map_err(|reason| match reason {
                ParentError::Unsafe(reason) => LayerError::UnsafeEntry {
                    path: display.clone(),
                    reason,
                },
                ParentError::Io(source) => LayerError::Entry {
                    path: display.clone(),
                    source,
                },
            })?;
        let name = rel
            .file_name()
            .expect("clean_path yields a final component")
            .to_owned();
        let name_bytes = name.as_bytes();

        // Whiteouts: overlay2 represents a deleted file as a 0:0 char device and an opaque dir by an xattr.
        if let Some(wh) = name_bytes.strip_prefix(b".wh.") {
            let res = if wh == b".wh..opq" {
                set_xattr(&parent, "trusted.overlay.opaque", b"y")
            } else if wh.starts_with(b".wh.") {
                Ok(()) // Other aufs metadata (.wh..wh.plnk, ...) has no overlay meaning.
            } else {
                let target = parent.join(OsStr::from_bytes(wh));
                cache.replacing(&parent_rel.join(OsStr::from_bytes(wh)));
                remove_existing(&target, false)
                    .and_then(|_| mknod(&target, libc::S_IFCHR, 0, 0))
                    .and_then(|_| {
                        lchown(
                            &target,
                            entry.header().uid().unwrap_or(0),
                            entry.header().gid().unwrap_or(0),
                        )
                    })
                    // The device keeps the entry's mtime, as every other entry does: packing the layer
                    // again (save or push without the kept blob) must give the same diff id.
                    .and_then(|_| set_mtime(&target, entry.header().mtime().unwrap_or(0)))
            };
            res.map_err(|source| LayerError::Entry {
                path: display,
                source,
            })?;
            continue;
        }

        let target = parent.join(&name);
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Directory {
            cache.replacing(&rel);
        }
        let res = (|| -> Result<(), EntryErr> {
            let xattrs = collect_xattrs(&mut entry)?;
            let hdr = entry.header().clone();
            // Empty numeric fields read as 0, as Go's archive/tar (which wrote most layers) does.
            let mode = hdr.mode().unwrap_or(0o644) & 0o7777;
            let (uid, gid) = (hdr.uid().unwrap_or(0), hdr.gid().unwrap_or(0));
            let mtime = hdr.mtime().unwrap_or(0);
            // A new inode in a directory that is not setgid belongs to this process's ids and has the mode
            // it was created with less the umask: chown/chmod are needed only when those differ.
            let fresh_ok = !cache.inherits(&parent_rel);
            let chown_needed = !(fresh_ok && owned_by_creator(uid, gid));
            let chmod_needed = !(fresh_ok && umask_keeps(mode));
            match kind {
                tar::EntryType::Directory => {
                    let fresh = if cache.is_dir(&rel) {
                        false
                    } else {
                        let r = fs::DirBuilder::new().mode(mode & 0o777).create(&target);
                        match r {
                            Ok(()) => true,
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                                remove_existing(&target, true)?;
                                if fs::symlink_metadata(&target).is_err() {
                                    fs::create_dir(&target)?;
                                }
                                false
                            }
                            Err(e) => return Err(e.into()),
                        }
                    };
                    if !fresh || chown_needed {
                        lchown(&target, uid, gid)?;
                    }
                    if !fresh || chown_needed || chmod_needed {
                        fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
                    }
                    for (k, v) in &xattrs {
                        set_xattr(&target, k, v)?;
                    }
                    // A fresh directory in an inheriting one may have inherited a default ACL.
                    // An existing one keeps what it had (xattrs are only ever added).
                    let inh = !fresh_ok
                        || (!fresh && cache.inherits(&rel))
                        || inherits(mode, xattrs.iter().map(|(k, _)| k.as_str()));
                    cache.insert(&rel, inh);
                    dirs.push(DirMeta {
                        path: target.clone(),
                        mtime,
                    });
                    return Ok(());
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {
                    let f = create_replacing(&target, || create_file(&target, mode & 0o777))?;
                    let data = &mut (&mut entry).take(size);
                    let n = if size >= DIRECT_MIN {
                        let abuf = direct_buf.take().unwrap_or_else(AlignedBuf::new);
                        let mut w = DirectWriter::new(&f, abuf);
                        let n = w.copy_from(data)?;
                        direct_buf = Some(w.finish()?.1);
                        n
                    } else {
                        copy_big(data, &mut &f, &mut buf)?
                    };
                    if n != size {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "truncated file data",
                        )
                        .into());
                    }
                    if size >= WRITEBACK_MIN {
                        start_writeback(&f, 0, size);
                    }
                    // Order matters: chown clears setuid bits and file capabilities, so mode and xattrs
                    // come after.
                    if chown_needed {
                        fchown(&f, uid, gid)?;
                    }
                    if chown_needed || chmod_needed {
                        f.set_permissions(fs::Permissions::from_mode(mode))?;
                    }
                    for (k, v) in &xattrs {
                        fset_xattr(&f, k, v)?;
                    }
                    fset_mtime(&f, mtime)?;
                    return Ok(());
                }
                tar::EntryType::Symlink => {
                    let link = entry
                        .link_name_bytes()
                        .ok_or_else(|| invalid("symlink without target"))?
                        .into_owned();
                    create_replacing(&target, || {
                        std::os::unix::fs::symlink(OsStr::from_bytes(&link), &target)
                    })?;
                    if chown_needed {
                        lchown(&target, uid, gid)?;
                    }
                    for (k, v) in &xattrs {
                        set_xattr(&target, k, v)?;
                    }
                    set_mtime(&target, mtime)?;
                    return Ok(());
                }
                tar::EntryType::Link => {
                    let link = entry
                        .link_name_bytes()
                        .ok_or_else(|| invalid("hard link without target"))?
                        .into_owned();
                    let src_rel = match clean_path(&link) {
                        Ok(Some(p)) => p,
                        _ => return Err(EntryErr::Unsafe("hard link target outside the layer")),
                    };
                    // The link target must resolve inside the layer without passing through a symlink.
                    let src_parent = cache
                        .parents(src_rel.parent().unwrap_or(Path::new("")), false)
                        .map_err(|_| {
                            EntryErr::Unsafe("hard link target through a symlink or missing")
                        })?;
                    let src = src_parent.join(src_rel.file_name().expect("non-empty"));
                    if src == target {
                        return Ok(());
                    }
                    create_replacing(&target, || fs::hard_link(&src, &target))?;
                    return Ok(()); // A hard link shares the target's inode metadata.
                }
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    remove_existing(&target, false)?;
                    let (fmt, major, minor) = match kind {
                        tar::EntryType::Char => {
                            (libc::S_IFCHR, hdr.device_major()?, hdr.device_minor()?)
                        }
                        tar::EntryType::Block => {
                            (libc::S_IFBLK, hdr.device_major()?, hdr.device_minor()?)
                        }
                        _ => (libc::S_IFIFO, None, None),
                    };
                    mknod(&target, fmt | 0o600, major.unwrap_or(0), minor.unwrap_or(0))?;
                }
                other => {
                    log::warn!("layer: skipping {display:?}: unsupported tar entry type {other:?}");
                    return Ok(());
                }
            }
            // Device nodes and fifos: order matters as above.
            lchown(&target, uid, gid)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
            for (k, v) in &xattrs {
                set_xattr(&target, k, v)?;
            }
            set_mtime(&target, mtime)?;
            Ok(())
        })();
        match res {
            Ok(()) => {}
            Err(EntryErr::Unsafe(reason)) => {
                return Err(LayerError::UnsafeEntry {
                    path: display,
                    reason,
                })
            }
            Err(EntryErr::Io(source)) => {
                return Err(LayerError::Entry {
                    path: display,
                    source,
                })
            }
        }
        if matches!(
            kind,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse
        ) {
            total += size;
        }
    }
    // Deepest first, so setting a child's mtime does not disturb its parent's.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
    for d in dirs {
        set_mtime(&d.path, d.mtime).map_err(|source| LayerError::Entry {
            path: d.path.display().to_string(),
            source,
        })?;
    }
    Ok(total)
}

/// Copies with the caller's buffer; returns the bytes copied.
fn copy_big(r: &mut dyn Read, w: &mut dyn Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Failure of one entry: an I/O error or a refusal for safety.
enum EntryErr {
    Io(io::Error),
    Unsafe(&'static str),
}

impl From<io::Error> for EntryErr {
    fn from(e: io::Error) -> Self {
        EntryErr::Io(e)
    }
}

/// Normalises a tar path to a relative path of normal components. `Ok(None)` is the root itself.
fn clean_path(raw: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path");
    }
    if raw.contains(&0) {
        return Err("NUL in path");
    }
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// `SCHILY.xattr.<name>` PAX records of an entry.
fn collect_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Ok(key) = ext.key() {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "layer_tests.rs"]
mod tests;
