//! `docker diff` (`GET /containers/{id}/changes`): the changes in a container's upper dir relative to its lower
//! dirs, computed the way moby's overlay2 driver does (`archive.OverlayChanges`): a 0/0 character device is a
//! deletion, an opaque directory over a lower directory is a deletion (its content then shows as added), an
//! entry the lower dirs have is a modification (unless it is a directory with the same size, mode and mtime:
//! only there as the parent of a change), anything else an addition, and the parent of an addition or deletion
//! is reported modified once. The lower dirs include the image's init layer, so the runtime's mount points
//! (/etc/hosts, /proc, ...) never show, as in docker.

use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::engine::{Engine, EngineError};

/// docker's change kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `C`.
    Modified = 0,
    /// `A`.
    Added = 1,
    /// `D`.
    Deleted = 2,
}

/// One change: an absolute path in the container and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: Kind,
}

/// The changes in `upper` over `lower` (top-most first), in moby's order: a depth-first walk with the entries
/// of each directory sorted by name.
pub fn changes(upper: &Path, lower: &[PathBuf]) -> Vec<Change> {
    let mut out = Vec::new();
    let mut changed_dirs = HashSet::new();
    walk(upper, "", lower, &mut changed_dirs, &mut out);
    out
}

fn walk(
    dir: &Path,
    rel: &str,
    lower: &[PathBuf],
    changed_dirs: &mut HashSet<String>,
    out: &mut Vec<Change>,
) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = format!("{rel}/{}", name.to_string_lossy());
        let full = dir.join(&name);
        let Ok(md) = fs::symlink_metadata(&full) else {
            continue;
        };
        visit(&full, &path, &md, lower, changed_dirs, out);
        if md.is_dir() {
            walk(&full, &path, lower, changed_dirs, out);
        }
    }
}

fn visit(
    full: &Path,
    path: &str,
    md: &fs::Metadata,
    lower: &[PathBuf],
    changed_dirs: &mut HashSet<String>,
    out: &mut Vec<Change>,
) {
    let in_lower = |p: &str| {
        lower
            .iter()
            .find_map(|l| fs::metadata(l.join(&p[1..])).ok())
    };
    let deleted = if md.file_type().is_char_device() && md.rdev() == 0 {
        true
    } else {
        md.is_dir() && is_opaque(full) && in_lower(path).is_some_and(|m| m.is_dir())
    };
    let kind = if deleted {
        Kind::Deleted
    } else {
        match in_lower(path) {
            Some(old) => {
                if old.is_dir()
                    && md.is_dir()
                    && old.size() == md.size()
                    && old.mode() == md.mode()
                    && (old.mtime(), old.mtime_nsec()) == (md.mtime(), md.mtime_nsec())
                {
                    // Only there as the parent of a change: nothing to report for itself.
                    return;
                }
                Kind::Modified
            }
            None => Kind::Added,
        }
    };
    if md.is_dir() {
        changed_dirs.insert(path.to_string());
    }
    if kind != Kind::Modified {
        let parent = match path.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &path[..i],
        };
        if parent != "/" && changed_dirs.insert(parent.to_string()) {
            out.push(Change {
                path: parent.to_string(),
                kind: Kind::Modified,
            });
        }
    }
    out.push(Change {
        path: path.to_string(),
        kind,
    });
}

/// Whether overlayfs marked the upper directory opaque (it hides the lower directories' content).
fn is_opaque(p: &Path) -> bool {
    let (Ok(path), Ok(name)) = (
        std::ffi::CString::new(p.as_os_str().as_bytes()),
        std::ffi::CString::new("trusted.overlay.opaque"),
    ) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: both strings are NUL-terminated and `buf` is writable for its length; all outlive the call.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

impl Engine {
    /// `GET /containers/{id}/changes`: `[{"Path", "Kind"}]`, or `null` when nothing changed (as dockerd sends).
    pub fn changes(&self, key: &str) -> Result<Value, EngineError> {
        let c = self.get(key)?;
        let layer = berth_storage::RwLayer::open(&self.cfg.data_root, &c.id)
            .map_err(|e| EngineError::Internal(format!("layer of container {}: {e}", c.id)))?;
        let list = changes(&layer.diff(), &layer.lower);
        if list.is_empty() {
            return Ok(Value::Null);
        }
        Ok(Value::Array(
            list.into_iter()
                .map(|c| json!({"Path": c.path, "Kind": c.kind as u8}))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_modified_deleted_like_moby() {
        let tmp = tempfile::tempdir().unwrap();
        let (up, low) = (tmp.path().join("up"), tmp.path().join("low"));
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::write(low.join("etc/passwd"), "x").unwrap();
        fs::create_dir_all(low.join("tmp")).unwrap();
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::write(up.join("etc/passwd"), "y").unwrap();
        fs::write(up.join("etc/new"), "n").unwrap();
        fs::create_dir_all(up.join("newdir")).unwrap();
        fs::write(up.join("newdir/f"), "").unwrap();
        let got: Vec<(String, Kind)> = changes(&up, &[low])
            .into_iter()
            .map(|c| (c.path, c.kind))
            .collect();
        let want = vec![
            ("/etc".to_string(), Kind::Modified),
            ("/etc/new".to_string(), Kind::Added),
            ("/etc/passwd".to_string(), Kind::Modified),
            ("/newdir".to_string(), Kind::Added),
            ("/newdir/f".to_string(), Kind::Added),
        ];
        assert_eq!(got, want);
        assert!(changes(&tmp.path().join("missing"), &[]).is_empty());
    }
}
