//! berth-storage: the per-container overlayfs rootfs, and the local volume store ([`volumes`], filled from the
//! image by [`copyup`]).
//!
//! Each container gets `<data-root>/overlay2/<layer-id>/{diff,work,merged}`: `diff` is the writable upper dir,
//! `work` overlayfs' scratch dir and `merged` the mount point the runtime pivots into. The lower dirs are the
//! image's layer dirs, given top-most first, which is the order overlayfs' `lowerdir=` option wants.

pub mod copyup;
pub mod volumes;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// mount(2)/umount(2) failed.
    #[error("{op} {path}: {source}")]
    Mount {
        /// What we were doing.
        op: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// The layer id is not a plain file name.
    #[error("invalid layer id {0:?}")]
    InvalidId(String),
    /// The overlay option string would not fit in one page (too many lower layers).
    #[error("overlay mount options too long ({0} bytes) for {1} lower layers")]
    OptionsTooLong(usize, usize),
}

type Result<T> = std::result::Result<T, StorageError>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One container's read-write layer on top of an image's read-only layers.
#[derive(Debug, Clone)]
pub struct RwLayer {
    /// `<data-root>/overlay2/<id>`.
    pub dir: PathBuf,
    /// Read-only layers, top-most first.
    pub lower: Vec<PathBuf>,
}

impl RwLayer {
    /// Describes (without touching the disk) the layer `id` under `data_root` over `lower` (top-most first).
    pub fn new(data_root: &Path, id: &str, lower: Vec<PathBuf>) -> Result<Self> {
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(StorageError::InvalidId(id.to_string()));
        }
        Ok(Self {
            dir: data_root.join("overlay2").join(id),
            lower,
        })
    }

    /// The writable upper dir.
    pub fn diff(&self) -> PathBuf {
        self.dir.join("diff")
    }

    /// The mount point of the merged view.
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Creates the diff, work and merged dirs (idempotent), and records the lower dirs in `lower` so a later
    /// process (the monitor) can mount the layer from the id alone.
    pub fn create(&self) -> Result<()> {
        for d in [self.diff(), self.work(), self.merged()] {
            fs::create_dir_all(&d).map_err(io_err("create", &d))?;
        }
        let lower_file = self.dir.join("lower");
        let text: Vec<String> = self.lower.iter().map(|p| p.display().to_string()).collect();
        fs::write(&lower_file, text.join("\n")).map_err(io_err("write", &lower_file))?;
        Ok(())
    }

    /// Re-reads a layer created by [`RwLayer::create`].
    pub fn open(data_root: &Path, id: &str) -> Result<Self> {
        let mut layer = Self::new(data_root, id, Vec::new())?;
        let lower_file = layer.dir.join("lower");
        let text = fs::read_to_string(&lower_file).map_err(io_err("read", &lower_file))?;
        layer.lower = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(layer)
    }

    /// The overlay mount options: `lowerdir=top:...:bottom,upperdir=..,workdir=..`.
    pub fn mount_options(&self) -> Result<String> {
        let lower: Vec<String> = self.lower.iter().map(|p| p.display().to_string()).collect();
        let opts = if lower.is_empty() {
            // overlayfs needs at least one lower dir; an image with no layers (scratch import of nothing)
            // gets an empty one.
            let empty = self.dir.join("empty");
            fs::create_dir_all(&empty).map_err(io_err("create", &empty))?;
            format!(
                "lowerdir={},upperdir={},workdir={}",
                empty.display(),
                self.diff().display(),
                self.work().display()
            )
        } else {
            format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                self.diff().display(),
                self.work().display()
            )
        };
        // The kernel copies mount data into one page.
        if opts.len() >= 4096 {
            return Err(StorageError::OptionsTooLong(opts.len(), self.lower.len()));
        }
        Ok(opts)
    }

    /// Whether `merged` is a mount point right now.
    pub fn is_mounted(&self) -> bool {
        is_mount_point(&self.merged())
    }

    /// Mounts the overlay on `merged` unless it already is mounted.
    pub fn mount(&self) -> Result<PathBuf> {
        let merged = self.merged();
        if self.is_mounted() {
            return Ok(merged);
        }
        let opts = self.mount_options()?;
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(|source| StorageError::Mount {
            op: "mount overlay on",
            path: merged.clone(),
            source,
        })?;
        Ok(merged)
    }

    /// Unmounts `merged` (lazily, so a straggling process cannot pin it); not mounted is fine.
    pub fn unmount(&self) -> Result<()> {
        let merged = self.merged();
        while self.is_mounted() {
            umount2(&merged, MntFlags::MNT_DETACH).map_err(|source| StorageError::Mount {
                op: "unmount",
                path: merged.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Unmounts and deletes the whole layer dir.
    pub fn remove(&self) -> Result<()> {
        self.unmount()?;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &self.dir)(e)),
        }
    }

    /// Bytes used by the writable layer (what `docker ps -s` calls SIZE).
    pub fn size(&self) -> u64 {
        dir_size(&self.diff())
    }
}

/// Sum of the apparent sizes of the regular files under `dir` (symlinks not followed, other filesystems too).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    for entry in rd.flatten() {
        let Ok(md) = entry.metadata() else { continue };
        if md.is_dir() {
            total += dir_size(&entry.path());
        } else if md.is_file() {
            total += md.len();
        }
    }
    total
}

/// Whether `path` is a mount point: the root of a mount (`STATX_ATTR_MOUNT_ROOT`), or, on kernels older than
/// 5.8 that do not report that attribute, listed as one in /proc/self/mountinfo.
pub fn is_mount_point(path: &Path) -> bool {
    // One statx instead of having the kernel print the whole mount table (which grows with every running
    // container) and scanning it: this is asked at every container start, stop and removal.
    if let Some(root) = statx_mount_root(path) {
        return root;
    }
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4).map(unescape_mountinfo).as_deref() == Some(want.as_str()))
}

/// Whether `path` is the root of a mount, from `statx`'s `STATX_ATTR_MOUNT_ROOT`; `None` when the kernel does
/// not report that attribute (before 5.8) or the path cannot be examined for another reason than not existing.
fn statx_mount_root(path: &Path) -> Option<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `c` is NUL-terminated and `st` is a writable statx buffer; both outlive the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            libc::STATX_TYPE,
            st.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Some(false),
            _ => None,
        };
    }
    // SAFETY: statx succeeded, so it filled the buffer (which started zeroed anyway).
    let st = unsafe { st.assume_init() };
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (st.stx_attributes_mask & bit != 0).then_some(st.stx_attributes & bit != 0)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running_as_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn mount_points_from_statx_match_mountinfo() {
        let tmp = tempfile::tempdir().unwrap();
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let listed = |p: &str| {
            info.lines()
                .any(|l| l.split(' ').nth(4).map(unescape_mountinfo).as_deref() == Some(p))
        };
        for p in ["/", "/proc", "/sys"] {
            assert_eq!(is_mount_point(Path::new(p)), listed(p), "{p}");
        }
        assert!(listed("/proc"), "/proc is mounted where tests run");
        assert!(is_mount_point(Path::new("/proc")));
        assert!(!is_mount_point(tmp.path()));
        assert!(!is_mount_point(&tmp.path().join("missing")));
        assert!(!is_mount_point(&tmp.path().join("missing/deeper")));
    }

    #[test]
    fn options_put_top_layer_first() {
        let tmp = tempfile::tempdir().unwrap();
        let l = RwLayer::new(tmp.path(), "c1", vec!["/a/top".into(), "/a/bottom".into()]).unwrap();
        let o = l.mount_options().unwrap();
        assert!(o.starts_with("lowerdir=/a/top:/a/bottom,upperdir="), "{o}");
        assert!(RwLayer::new(tmp.path(), "../x", vec![]).is_err());
    }

    #[test]
    fn mount_write_unmount_remove() {
        if !running_as_root() {
            eprintln!("skipping: overlay mounts need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        fs::create_dir_all(&lower).unwrap();
        fs::write(lower.join("hello"), "from image").unwrap();
        let layer = RwLayer::new(
            tmp.path(),
            &format!("t{}", std::process::id()),
            vec![lower.clone()],
        )
        .unwrap();
        layer.create().unwrap();
        let reopened = RwLayer::open(tmp.path(), &format!("t{}", std::process::id())).unwrap();
        assert_eq!(reopened.lower, vec![lower.clone()]);
        let merged = match reopened.mount() {
            Ok(m) => m,
            Err(e) => {
                eprintln!("skipping: overlay mount failed here: {e}");
                return;
            }
        };
        struct Guard(RwLayer);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = self.0.unmount();
            }
        }
        let guard = Guard(reopened.clone());
        assert!(reopened.is_mounted());
        assert_eq!(
            fs::read_to_string(merged.join("hello")).unwrap(),
            "from image"
        );
        fs::write(merged.join("new"), "12345").unwrap();
        assert_eq!(
            fs::read_to_string(layer.diff().join("new")).unwrap(),
            "12345"
        );
        assert!(!lower.join("new").exists());
        assert_eq!(reopened.size(), 5);
        // Idempotent mount.
        reopened.mount().unwrap();
        reopened.remove().unwrap();
        assert!(!reopened.is_mounted());
        assert!(!reopened.dir.exists());
        drop(guard);
    }
}
