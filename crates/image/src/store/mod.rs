//! The content-addressed store under `<data-root>/image/`:
//!
//! ```text
//! image/blobs/sha256/<hex>               configs and compressed layer blobs, verified while written
//! image/images/<hex>.json                one record per image (id = config digest)
//! image/repositories.json                tag/digest index, docker's format; authoritative for names
//! image/layers/<chainid-hex>/            diff-id, cache-id, size, parent, blob.json, sources.json
//! overlay2/<cache-id>/diff               the unpacked layer
//! tmp/berth-image/<pid>/                 everything in flight; dead processes' dirs removed on open
//! ```
//!
//! Every file is written to a temp file, fsynced and renamed into place (then the directory fsynced), and
//! multi-file objects (layers) become visible by one rename of their metadata dir, so a SIGKILL at any moment
//! leaves a store that opens cleanly; leftovers are unreferenced and `gc` removes them.

mod blobs;
mod gc;
mod images;
mod initlayer;
mod layers;

pub use blobs::BlobWriter;
pub use images::ImageRecord;
pub use initlayer::init_layer_paths;
pub use layers::{chain_id, chain_ids, BlobRef, LayerMeta, LayerSource, LayerSpec, StagedLayer};

/// A [`LayerSpec`] with nothing to verify.
pub fn layers_spec_none() -> LayerSpec<'static> {
    LayerSpec::default()
}

/// Current time, RFC 3339 with nanoseconds (docker's format for `created`).
pub fn now_rfc3339_pub() -> String {
    now_rfc3339()
}

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("corrupt store file {path}: {msg}")]
    Corrupt { path: String, msg: String },
    #[error("layer {0} is not in the store")]
    MissingLayer(String),
    #[error("blob {0} is not in the store")]
    MissingBlob(String),
}

/// Wraps an io error with the path it concerns.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The on-disk store. Readers read the files directly; writers serialise on an in-process mutex plus an
/// exclusive `flock` on `image/.lock`, so another process using the same data root cannot interleave.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    lock_file: File,
    write_mutex: Mutex<()>,
}

/// Chain ids, digests and temp paths an operation in progress relies on; gc leaves them alone. Process-wide,
/// so two `Store`s opened on the same data root in one daemon still see each other's work in flight.
static PINS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

fn pins() -> std::sync::MutexGuard<'static, Option<HashMap<String, usize>>> {
    PINS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Held while writing; releases the flock on drop.
pub struct WriteGuard<'a> {
    _m: MutexGuard<'a, ()>,
    fd: i32,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: fd is the store's lock file, open for the store's lifetime.
        unsafe { libc::flock(self.fd, libc::LOCK_UN) };
    }
}

/// Keeps keys pinned against gc until dropped.
pub struct Pins<'a> {
    _store: &'a Store,
    keys: Vec<String>,
}

impl Drop for Pins<'_> {
    fn drop(&mut self) {
        let mut g = pins();
        let p = g.get_or_insert_with(HashMap::new);
        for k in &self.keys {
            if let Some(n) = p.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    p.remove(k);
                }
            }
        }
    }
}

/// A path under the store's temp dir, removed on drop unless it was renamed away.
pub struct TempPath<'a> {
    pub path: PathBuf,
    _pin: Pins<'a>,
}

impl Drop for TempPath<'_> {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir_all(&self.path);
            }
            Ok(_) => {
                let _ = fs::remove_file(&self.path);
            }
            Err(_) => {}
        }
    }
}

impl Store {
    /// Opens the store under `data_root`, creating directories and removing stray temp files.
    pub fn open(data_root: &Path) -> Result<Self, StoreError> {
        let root = data_root.to_path_buf();
        for d in [
            "image/blobs/sha256",
            "image/images",
            "image/layers",
            "overlay2",
            "tmp/berth-image",
        ] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let lp = root.join("image/.lock");
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lp)
            .map_err(io_err(&lp))?;
        let s = Store {
            root,
            lock_file,
            write_mutex: Mutex::new(()),
        };
        {
            // Temp files live in a per-process dir; those of dead processes (a SIGKILLed daemon or pull)
            // are removed. Live processes' dirs, including our own, are left alone: they may be in use.
            let _g = s.write_lock()?;
            let base = s.root.join("tmp/berth-image");
            for e in fs::read_dir(&base).map_err(io_err(&base))?.flatten() {
                let alive = e
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                if !alive {
                    let _ = remove_any(&e.path());
                }
            }
            let mine = s.tmp_root();
            fs::create_dir_all(&mine).map_err(io_err(&mine))?;
        }
        Ok(s)
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn image_dir(&self) -> PathBuf {
        self.root.join("image")
    }

    /// This process's temp dir.
    pub(crate) fn tmp_root(&self) -> PathBuf {
        self.root
            .join("tmp/berth-image")
            .join(std::process::id().to_string())
    }

    /// Takes the store-wide write lock.
    pub fn write_lock(&self) -> Result<WriteGuard<'_>, StoreError> {
        let m = self.write_mutex.lock().unwrap_or_else(|e| e.into_inner());
        let fd = self.lock_file.as_raw_fd();
        loop {
            // SAFETY: fd is a valid open file for the store's lifetime.
            let rc = unsafe { libc::flock(fd, libc::LOCK_EX) };
            if rc == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(io_err(&self.image_dir().join(".lock"))(e));
            }
        }
        Ok(WriteGuard { _m: m, fd })
    }

    /// Pins keys (chain ids, digests) so gc keeps them while an operation is in flight.
    pub fn pin<I: IntoIterator<Item = String>>(&self, keys: I) -> Pins<'_> {
        // Scoped by data root: the same layer in another store (another data root) is not this store's business.
        let keys: Vec<String> = keys.into_iter().map(|k| self.pin_key(&k)).collect();
        let mut g = pins();
        let p = g.get_or_insert_with(HashMap::new);
        for k in &keys {
            *p.entry(k.clone()).or_insert(0) += 1;
        }
        Pins { _store: self, keys }
    }

    pub(crate) fn pinned(&self) -> HashSet<String> {
        let prefix = self.pin_key("");
        pins()
            .as_ref()
            .map(|p| {
                p.keys()
                    .filter_map(|k| k.strip_prefix(&prefix).map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `key` is pinned right now (not in a snapshot taken earlier).
    pub(crate) fn is_pinned(&self, key: &str) -> bool {
        pins()
            .as_ref()
            .is_some_and(|p| p.contains_key(&self.pin_key(key)))
    }

    fn pin_key(&self, key: &str) -> String {
        format!("{}\0{key}", self.root.display())
    }

    /// A fresh temp path (not created) under the store's temp dir, pinned against gc.
    pub fn temp_path(&self, prefix: &str) -> TempPath<'_> {
        let path = self.tmp_root().join(format!("{prefix}-{}", random_hex(12)));
        let pin = self.pin([path.display().to_string()]);
        TempPath { path, _pin: pin }
    }

    /// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.temp_path("file");
        let mut f = File::create(&tmp.path).map_err(io_err(&tmp.path))?;
        f.write_all(bytes).map_err(io_err(&tmp.path))?;
        f.sync_all().map_err(io_err(&tmp.path))?;
        drop(f);
        fs::rename(&tmp.path, path).map_err(io_err(path))?;
        fsync_dir(path.parent().expect("store paths have parents"))
    }
}

/// fsyncs a directory so a rename into it is durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

pub(crate) fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Current time in docker's RFC 3339 nanosecond format.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Recursive size of a directory tree (regular files' lengths), not following symlinks.
pub(crate) fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.len();
            }
        }
    }
    total
}
