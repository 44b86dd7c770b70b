//! The shared per-image "init" layer: `<data-root>/overlay2/<top-chain-hex>-init/diff`, a read-only lower dir
//! stacked between an image's layers and each container's upper dir, holding the empty mount points the runtime
//! mounts over (/proc, /sys, /dev, /etc/hosts, ...), as docker's `<id>-init` layer does.
//!
//! Why: without it every container creates those targets in its own upper dir, and on ext4 every new inode is
//! expensive (a no-journal ext4 even rescans recently freed inodes on each allocation). Docker makes one init
//! layer per container; one per layer stack is enough, because its content depends only on the image's layers.
//!
//! Like docker's, the init layer's entries hide the image's: an image whose `/etc/resolv.conf` is a symlink (or
//! a directory) gets a plain empty file there, so the runtime mounts on a regular file, never through a
//! symlink. Directories the image already has keep its mode, owner and times (overlayfs shows a merged
//! directory with the attributes of its top-most copy, so a bare 0755 root dir would change the image's).
//!
//! It is created once, atomically (built under the store's temp dir, fsynced, renamed into place) and removed
//! with the top layer it is keyed by (layer deletion and gc). Containers never write to it: it is a lower dir.
//! The runtime keeps creating any target that is still missing (and its symlink checks), so a partial or
//! absent init layer only costs inodes, never correctness.

use super::{fsync_dir, io_err, remove_any, Store};
use crate::digest::hex_part;
use crate::Result;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What the init layer holds at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink(&'static str),
}

/// The init layer's content: moby's `daemon/initlayer` list plus /dev/mqueue, which berth mounts too. Parents
/// come before children.
const ENTRIES: &[(&str, Kind)] = &[
    ("dev", Kind::Dir),
    ("dev/pts", Kind::Dir),
    ("dev/shm", Kind::Dir),
    ("dev/mqueue", Kind::Dir),
    ("dev/console", Kind::File),
    ("proc", Kind::Dir),
    ("sys", Kind::Dir),
    ("etc", Kind::Dir),
    ("etc/hosts", Kind::File),
    ("etc/hostname", Kind::File),
    ("etc/resolv.conf", Kind::File),
    ("etc/mtab", Kind::Symlink("/proc/mounts")),
    (".dockerenv", Kind::File),
];

/// The paths the init layer creates, relative to the rootfs (for `docker diff`, build commits and tests).
pub fn init_layer_paths() -> impl Iterator<Item = &'static str> {
    ENTRIES.iter().map(|(p, _)| *p)
}

impl Store {
    /// `<data-root>/overlay2/<hex>-init`, the init layer of the layer stack whose top is `top_chain`.
    fn init_layer_path(&self, top_chain: &str) -> Option<PathBuf> {
        hex_part(top_chain).map(|h| self.root.join("overlay2").join(format!("{h}-init")))
    }

    /// The `diff` dir of the init layer for `image`, created when missing; `None` for an image without layers
    /// (its containers create their mount points themselves). `layers` are the image's layer dirs, top-most
    /// first, which the init layer copies directory attributes from.
    pub fn init_layer_dir(&self, image: &str, layers: &[PathBuf]) -> Result<Option<PathBuf>> {
        let img = self.resolve(image)?;
        let Some(top) = img.chain_ids.last() else {
            return Ok(None);
        };
        let Some(dir) = self.init_layer_path(top) else {
            return Ok(None);
        };
        let diff = dir.join("diff");
        if diff.is_dir() {
            return Ok(Some(diff));
        }
        let tmp = self.temp_path("init");
        fs::create_dir_all(tmp.path.join("diff")).map_err(io_err(&tmp.path))?;
        populate(&tmp.path.join("diff"), layers).map_err(io_err(&tmp.path))?;
        // The init layer is what every later container's mount targets rely on: make it durable before it
        // becomes visible (a handful of fsyncs, once per image).
        for d in ["diff", "diff/etc", "diff/dev", ""] {
            fsync_dir(&tmp.path.join(d))?;
        }
        // Under the write lock: gc (which removes init layers whose top layer is gone) and layer deletion take it.
        let _g = self.write_lock()?;
        if !self.has_layer(top) {
            return Err(super::StoreError::Corrupt {
                path: top.clone(),
                msg: "layer removed while creating its init layer".into(),
            }
            .into());
        }
        match fs::rename(&tmp.path, &dir) {
            Ok(()) => fsync_dir(&self.root.join("overlay2"))?,
            // Another container made it first (ENOTEMPTY/EEXIST): use theirs; ours goes with `tmp`.
            Err(_) if diff.is_dir() => {}
            Err(e) => return Err(io_err(&dir)(e).into()),
        }
        Ok(Some(diff))
    }

    /// Removes the init layer keyed by `chain` (when its layer goes).
    pub(crate) fn delete_init_layer(&self, chain: &str) -> io::Result<()> {
        match self.init_layer_path(chain) {
            Some(p) => self.discard(&p),
            None => Ok(()),
        }
    }

    /// Renames `p` into the temp area, then deletes it: a crash halfway never leaves a partial init layer
    /// where a later container of a re-pulled image would take it for a complete one.
    fn discard(&self, p: &Path) -> io::Result<()> {
        let tmp = self.temp_path("rminit");
        match fs::rename(p, &tmp.path) {
            // Dropping `tmp` deletes it.
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(_) => remove_any(p),
        }
    }

    /// Init layers whose top layer no longer exists (a crash between the layer's removal and its init
    /// layer's): called by gc under the write lock. Returns how many were removed.
    pub(crate) fn gc_init_layers(&self, chains: &std::collections::HashSet<String>) -> usize {
        let ov = self.root.join("overlay2");
        let Ok(rd) = fs::read_dir(&ov) else { return 0 };
        let mut n = 0;
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(h) = name.to_str().and_then(|n| n.strip_suffix("-init")) else {
                continue;
            };
            if h.len() != 64 || chains.contains(&format!("sha256:{h}")) {
                continue;
            }
            if self.discard(&e.path()).is_ok() {
                n += 1;
            }
        }
        n
    }
}

/// What the image shows at `rel`: the top-most layer with an entry there decides (a whiteout, the 0/0
/// character device overlayfs uses, means the image has nothing there).
fn image_entry(layers: &[PathBuf], rel: &str) -> Option<fs::Metadata> {
    use std::os::unix::fs::FileTypeExt;
    let m = layers
        .iter()
        .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())?;
    (!(m.file_type().is_char_device() && m.rdev() == 0)).then_some(m)
}

/// Creates the init layer's entries in `diff`.
fn populate(diff: &Path, layers: &[PathBuf]) -> io::Result<()> {
    for (rel, kind) in ENTRIES {
        let p = diff.join(rel);
        match kind {
            Kind::Dir => {
                fs::DirBuilder::new().mode(0o755).create(&p)?;
                // Keep the image's attributes on a directory it has (see the module doc).
                if let Some(m) = image_entry(layers, rel).filter(|m| m.is_dir()) {
                    copy_attrs(&p, &m)?;
                }
            }
            Kind::File => {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&p)?;
            }
            Kind::Symlink(target) => std::os::unix::fs::symlink(target, &p)?,
        }
    }
    // The parents' times last: creating their children changed them.
    for (rel, kind) in ENTRIES.iter().rev() {
        if *kind == Kind::Dir {
            if let Some(m) = image_entry(layers, rel).filter(|m| m.is_dir()) {
                set_times(&diff.join(rel), &m)?;
            }
        }
    }
    Ok(())
}

fn copy_attrs(p: &Path, m: &fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::lchown(p, Some(m.uid()), Some(m.gid()))?;
    fs::set_permissions(p, fs::Permissions::from_mode(m.mode() & 0o7777))
}

fn set_times(p: &Path, m: &fs::Metadata) -> io::Result<()> {
    let t = |s: i64, ns: i64| libc::timespec {
        tv_sec: s as libc::time_t,
        tv_nsec: ns as _,
    };
    let times = [t(m.atime(), m.atime_nsec()), t(m.mtime(), m.mtime_nsec())];
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is NUL-terminated and `times` holds the two timespecs utimensat reads; both outlive the call.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn populate_hides_image_entries_and_keeps_dir_attributes() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        fs::create_dir_all(layer.join("etc")).unwrap();
        fs::set_permissions(layer.join("etc"), fs::Permissions::from_mode(0o711)).unwrap();
        symlink("../run/resolv.conf", layer.join("etc/resolv.conf")).unwrap();
        fs::create_dir(layer.join("etc/hosts")).unwrap();
        let t = filetime_of(&layer.join("etc"));
        let diff = tmp.path().join("diff");
        fs::create_dir(&diff).unwrap();
        populate(&diff, std::slice::from_ref(&layer)).unwrap();
        for rel in init_layer_paths() {
            assert!(fs::symlink_metadata(diff.join(rel)).is_ok(), "{rel}");
        }
        let etc = fs::metadata(diff.join("etc")).unwrap();
        assert_eq!(etc.mode() & 0o7777, 0o711);
        assert_eq!(filetime_of(&diff.join("etc")), t);
        assert!(fs::symlink_metadata(diff.join("etc/resolv.conf"))
            .unwrap()
            .is_file());
        assert!(fs::symlink_metadata(diff.join("etc/hosts"))
            .unwrap()
            .is_file());
        assert_eq!(
            fs::read_link(diff.join("etc/mtab")).unwrap(),
            Path::new("/proc/mounts")
        );
        // A dir the image lacks gets 0755.
        assert_eq!(
            fs::metadata(diff.join("proc")).unwrap().mode() & 0o7777,
            0o755
        );
    }

    fn filetime_of(p: &Path) -> (i64, i64) {
        let m = fs::metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec())
    }
}
