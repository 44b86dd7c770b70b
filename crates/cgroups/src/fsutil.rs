//! Small file helpers for cgroupfs: every error names the file (and the value written), because
//! "Invalid argument" alone is useless when a limit is rejected.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// A failed cgroupfs file operation.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create cgroup directory {}: {source}", path.display())]
    Mkdir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove cgroup directory {}: {source}", path.display())]
    Rmdir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unexpected content in {}: {content:?}", path.display())]
    Parse { path: PathBuf, content: String },
}

impl FsError {
    /// The underlying errno, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FsError::Write { source, .. }
            | FsError::Read { source, .. }
            | FsError::Mkdir { source, .. }
            | FsError::Rmdir { source, .. } => source.raw_os_error(),
            FsError::Parse { .. } => None,
        }
    }

    /// Whether the file did not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            FsError::Write { source, .. }
            | FsError::Read { source, .. }
            | FsError::Mkdir { source, .. }
            | FsError::Rmdir { source, .. } => source.kind() == ErrorKind::NotFound,
            FsError::Parse { .. } => false,
        }
    }
}

/// Writes `value` to `dir/file` in one write(2) (cgroupfs parses each write separately), without
/// creating the file: a missing file means a missing controller, not something to create.
pub fn write(dir: &Path, file: &str, value: &str) -> Result<(), FsError> {
    let path = dir.join(file);
    let res = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|source| FsError::Write {
        path,
        value: value.to_string(),
        source,
    })
}

/// Like [`write`] but a missing file is not an error (returns `false`).
pub fn write_if_exists(dir: &Path, file: &str, value: &str) -> Result<bool, FsError> {
    match write(dir, file, value) {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads `dir/file` as a string.
pub fn read(dir: &Path, file: &str) -> Result<String, FsError> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|source| FsError::Read { path, source })
}

/// Reads `dir/file`, `None` when it does not exist.
pub fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, FsError> {
    match read(dir, file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a single unsigned number; `max` (v2) reads as `u64::MAX`.
pub fn read_u64(dir: &Path, file: &str) -> Result<u64, FsError> {
    let s = read(dir, file)?;
    parse_u64(s.trim()).ok_or_else(|| FsError::Parse {
        path: dir.join(file),
        content: s,
    })
}

/// Like [`read_u64`] but `None` when the file is absent.
pub fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, FsError> {
    match read_u64(dir, file) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a cgroup number, where `max` means unlimited.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        Some(u64::MAX)
    } else {
        s.parse().ok()
    }
}

/// Parses `key value` lines (memory.stat, cpu.stat, memory.events...) into pairs.
pub fn parse_flat_keyed(s: &str) -> Vec<(String, u64)> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = parse_u64(it.next()?)?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// Looks up `key` in flat-keyed content.
pub fn flat_get(s: &str, key: &str) -> Option<u64> {
    parse_flat_keyed(s)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Reads a `cgroup.procs`-style list of pids.
pub fn read_pids(dir: &Path, file: &str) -> Result<Vec<i32>, FsError> {
    let s = read(dir, file)?;
    Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Creates `path` and missing parents. EEXIST is fine (idempotent create).
pub fn mkdir_all(path: &Path) -> Result<(), FsError> {
    std::fs::create_dir_all(path).map_err(|source| FsError::Mkdir {
        path: path.to_path_buf(),
        source,
    })
}
