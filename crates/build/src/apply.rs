//! The file work of a COPY/ADD step, for the engine's [`crate::backend::BuildBackend::copy`]: given the
//! directory that becomes the new layer's view of the image (an overlay mount over the parent, say), copy every
//! source into it with docker's semantics. Destinations are resolved inside the rootfs (a symlink in the image
//! never sends a write to the host), `--chown` names come from the image's /etc/passwd and /etc/group, files
//! default to 0:0, `--chmod` applies to everything copied, and ADD archives are extracted.

use crate::archive::decompress;
use crate::backend::{CopyOp, CopyPlan};
use crate::context::{ContextError, SourceKind, SourceRoot};
use std::fs;
use std::io;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors applying a copy.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("copying {path}: {err}")]
    Io { path: String, err: io::Error },
    #[error("{0}")]
    Resolve(#[from] ContextError),
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ApplyError + '_ {
    move |err| ApplyError::Io {
        path: path.display().to_string(),
        err,
    }
}

fn lookup(file: &Path, name: &str, field: usize) -> Option<(u32, Option<u32>)> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name) && f.len() > field).then(|| {
            let id = f[field].parse().ok()?;
            let gid = f.get(field + 1).and_then(|g| g.parse().ok());
            Some((id, gid))
        })?
    })
}

/// Resolves a `--chown` spec (`user`, `user:group`, names or numbers) against the image's passwd/group files.
/// A lone numeric user gets the same gid, a lone user name gets its primary group, like docker.
pub fn resolve_chown(rootfs: &Path, spec: Option<&str>) -> Result<(u32, u32), ApplyError> {
    let Some(spec) = spec.filter(|s| !s.is_empty()) else {
        return Ok((0, 0));
    };
    let root = SourceRoot::rootfs(rootfs);
    let passwd = root.resolve("/etc/passwd", true)?;
    let group = root.resolve("/etc/group", true)?;
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, Some(n)),
        Err(_) => lookup(&passwd, user, 2).ok_or_else(|| ApplyError::NoUser(user.to_string()))?,
    };
    let gid = match grp {
        None => primary.unwrap_or(uid),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                lookup(&group, g, 2)
                    .ok_or_else(|| ApplyError::NoGroup(g.to_string()))?
                    .0
            }
        },
    };
    Ok((uid, gid))
}

/// Creates the directories of `rel` (inside `root`) that are missing, owned by root, mode 0755.
fn mkdir_all(root: &SourceRoot, rel: &str) -> Result<PathBuf, ApplyError> {
    let mut cur = String::new();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        cur.push('/');
        cur.push_str(part);
        let host = root.resolve(&cur, true)?;
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ApplyError::Io {
                    path: cur.clone(),
                    err: io::Error::new(io::ErrorKind::AlreadyExists, "not a directory"),
                })
            }
            Err(_) => {
                // A symlink may point at a path whose directories do not exist yet: create them all (the
                // resolved path is inside the rootfs and its missing parts cannot be symlinks).
                fs::create_dir_all(&host).map_err(io_err(&host))?;
                fs::set_permissions(&host, fs::Permissions::from_mode(0o755))
                    .map_err(io_err(&host))?;
            }
        }
    }
    Ok(root.resolve(rel, true)?)
}

fn parent_and_name(p: &str) -> (String, String) {
    match p.rsplit_once('/') {
        Some((a, b)) => (if a.is_empty() { "/".into() } else { a.into() }, b.into()),
        None => ("/".into(), p.into()),
    }
}

/// Copies `plan` into `rootfs`.
pub fn apply_copy(plan: &CopyPlan, rootfs: &Path) -> Result<(), ApplyError> {
    let (uid, gid) = resolve_chown(rootfs, plan.chown.as_deref())?;
    let root = SourceRoot::rootfs(rootfs);
    for op in &plan.ops {
        apply_op(&root, op, uid, gid, plan.chmod)?;
    }
    Ok(())
}

fn apply_op(
    root: &SourceRoot,
    op: &CopyOp,
    uid: u32,
    gid: u32,
    chmod: Option<u32>,
) -> Result<(), ApplyError> {
    if op.extract {
        let dir = mkdir_all(root, &op.dest)?;
        let f = fs::File::open(&op.source.host).map_err(io_err(&op.source.host))?;
        let mut ar = tar::Archive::new(decompress(f).map_err(io_err(&op.source.host))?);
        ar.set_preserve_permissions(true);
        ar.set_overwrite(true);
        // tar's unpack refuses `..` and, by canonicalizing each parent, any path a symlink sends outside `dir`.
        ar.unpack(&dir).map_err(io_err(&op.source.host))?;
        return Ok(());
    }
    // Where the source's top entry lands (in-image path).
    let base = if op.source.kind == SourceKind::Dir {
        op.dest.clone()
    } else {
        let existing_dir = root
            .resolve(&op.dest, true)
            .ok()
            .and_then(|p| fs::metadata(p).ok())
            .is_some_and(|m| m.is_dir());
        if op.dest_is_dir || existing_dir {
            let name = op.source.path.rsplit('/').next().unwrap_or(&op.source.path);
            format!("{}/{name}", op.dest.trim_end_matches('/'))
        } else {
            op.dest.clone()
        }
    };
    for e in &op.source.entries {
        let target_rel = if e.rel.is_empty() {
            base.clone()
        } else {
            format!("{}/{}", base.trim_end_matches('/'), e.rel)
        };
        let (parent, name) = parent_and_name(&target_rel);
        let parent_host = mkdir_all(root, &parent)?;
        let target = if name.is_empty() {
            parent_host.clone()
        } else {
            parent_host.join(&name)
        };
        let mode = chmod.unwrap_or(e.mode);
        match &e.kind {
            SourceKind::Dir => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        fs::remove_file(&target).map_err(io_err(&target))?;
                        fs::create_dir(&target).map_err(io_err(&target))?;
                    }
                    Err(_) => fs::create_dir(&target).map_err(io_err(&target))?,
                }
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(io_err(&target))?;
            }
            SourceKind::File => {
                if let Ok(m) = fs::symlink_metadata(&target) {
                    if m.is_dir() {
                        fs::remove_dir_all(&target).map_err(io_err(&target))?;
                    } else {
                        fs::remove_file(&target).map_err(io_err(&target))?;
                    }
                }
                fs::copy(&e.host, &target).map_err(io_err(&e.host))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(io_err(&target))?;
                if let Ok(t) = fs::metadata(&e.host).and_then(|m| m.modified()) {
                    let _ = fs::File::options()
                        .write(true)
                        .open(&target)
                        .and_then(|f| f.set_modified(t));
                }
            }
            SourceKind::Symlink(t) => {
                if fs::symlink_metadata(&target).is_ok() {
                    fs::remove_file(&target).map_err(io_err(&target))?;
                }
                symlink(t, &target).map_err(io_err(&target))?;
            }
        }
        lchown(&target, Some(uid), Some(gid)).map_err(io_err(&target))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
