//! The local volume store: `<data-root>/volumes/<name>/_data` holds a volume's content and
//! `<data-root>/volumes/<name>/volume.json` its metadata (driver, labels, options, creation time), written
//! atomically. Reference counting is not kept here: the engine derives it from the container records, so a crash
//! can never leave a stale count behind.
//!
//! Only docker's `local` driver exists. Its options (`type`, `device`, `o`) are validated and recorded; the
//! engine turns a volume with `type=tmpfs` or `o=bind` into the matching mount instead of binding `_data`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// docker's label on anonymous volumes (docker 23+): `volume prune` without `--all` removes only these.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// Errors of the volume store; the messages are docker's.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No volume by that name.
    #[error("get {0}: no such volume")]
    NotFound(String),
    /// A name docker would refuse.
    #[error("create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    InvalidName(String),
    /// Bad driver or driver options.
    #[error("create {0}: {1}")]
    Invalid(String, String),
    /// Filesystem trouble.
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
    /// Unreadable metadata.
    #[error("volume {0}: bad metadata: {1}")]
    Corrupt(String, String),
}

type Result<T> = std::result::Result<T, VolumeError>;

/// One volume's metadata (the fields of docker's `Volume` object that are not derived).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    /// The volume's name (64 hex digits for anonymous volumes).
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// User labels (plus [`ANONYMOUS_LABEL`] on anonymous volumes).
    pub labels: BTreeMap<String, String>,
    /// The local driver's options (`type`, `device`, `o`).
    pub options: BTreeMap<String, String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

impl Volume {
    /// Whether this is an anonymous volume.
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }

    /// Whether the local driver mounts something other than `_data` (tmpfs, a device or a bind).
    pub fn has_mount_options(&self) -> bool {
        self.options
            .get("type")
            .or(self.options.get("device"))
            .is_some_and(|s| !s.is_empty())
    }
}

/// docker's local volume name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// The store under `<data-root>/volumes`.
#[derive(Debug, Clone)]
pub struct Volumes {
    root: PathBuf,
}

impl Volumes {
    /// The store of `data_root` (created if missing).
    pub fn open(data_root: &Path) -> Result<Self> {
        let root = data_root.join("volumes");
        fs::create_dir_all(&root).map_err(|e| VolumeError::Io(root.display().to_string(), e))?;
        Ok(Self { root })
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `<data-root>/volumes/<name>/_data`, the volume's `Mountpoint`.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir(name).join("_data")
    }

    /// Creates a volume, or returns the existing one of that name (as docker does; labels and options of an
    /// existing volume are not changed).
    pub fn create(
        &self,
        name: &str,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        created_at: &str,
    ) -> Result<Volume> {
        if !valid_name(name) {
            return Err(VolumeError::InvalidName(name.to_string()));
        }
        validate(name, driver, &options)?;
        if let Ok(v) = self.get(name) {
            return Ok(v);
        }
        let v = Volume {
            name: name.to_string(),
            driver: "local".into(),
            labels,
            options,
            created_at: created_at.to_string(),
        };
        let data = self.mountpoint(name);
        fs::create_dir_all(&data).map_err(|e| VolumeError::Io(data.display().to_string(), e))?;
        write_atomic(&self.dir(name).join("volume.json"), &v)?;
        Ok(v)
    }

    /// One volume's metadata.
    pub fn get(&self, name: &str) -> Result<Volume> {
        if !valid_name(name) {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let path = self.dir(name).join("volume.json");
        let raw = match fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => return Err(VolumeError::Io(path.display().to_string(), e)),
        };
        serde_json::from_slice(&raw).map_err(|e| VolumeError::Corrupt(name.into(), e.to_string()))
    }

    /// All volumes, sorted by name (unreadable entries are skipped with a warning).
    pub fn list(&self) -> Vec<Volume> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root).into_iter().flatten().flatten() {
            let Some(name) = e.file_name().to_str().map(String::from) else {
                continue;
            };
            match self.get(&name) {
                Ok(v) => out.push(v),
                Err(VolumeError::NotFound(_)) => {}
                Err(err) => log::warn!("skipping volume {name}: {err}"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Deletes a volume and its content (the caller checked that no container uses it). The metadata goes
    /// first, so a half-finished removal leaves no volume behind, only bytes.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        let dir = self.dir(name);
        let meta = dir.join("volume.json");
        fs::remove_file(&meta).map_err(|e| VolumeError::Io(meta.display().to_string(), e))?;
        // A volume's content is plain files; never follow into another filesystem (a stray mount under it).
        let st = std::process::Command::new("rm")
            .args(["-rf", "--one-file-system", "--"])
            .arg(&dir)
            .status()
            .map_err(|e| VolumeError::Io(dir.display().to_string(), e))?;
        if !st.success() {
            return Err(VolumeError::Io(
                dir.display().to_string(),
                io::Error::other("rm -rf failed"),
            ));
        }
        Ok(())
    }

    /// Bytes used by the volume's content (0 for tmpfs/bind-option volumes, as docker reports them).
    pub fn size(&self, v: &Volume) -> u64 {
        if v.has_mount_options() {
            return 0;
        }
        crate::dir_size(&self.mountpoint(&v.name))
    }

    /// Whether the volume's `_data` is empty (copy-up happens only then).
    pub fn is_empty(&self, name: &str) -> bool {
        fs::read_dir(self.mountpoint(name))
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
    }
}

/// Checks a volume's driver options (docker's local driver: `type`, `device`, `o`).
pub fn validate(name: &str, driver: &str, o: &BTreeMap<String, String>) -> Result<()> {
    if !driver.is_empty() && driver != "local" {
        return Err(VolumeError::Invalid(
            name.to_string(),
            format!("error looking up volume plugin {driver}: plugin \"{driver}\" not found"),
        ));
    }
    validate_options(name, o)
}

fn validate_options(name: &str, o: &BTreeMap<String, String>) -> Result<()> {
    for k in o.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
            return Err(VolumeError::Invalid(
                name.into(),
                format!("invalid option key: {k:?}"),
            ));
        }
    }
    let typ = o.get("type").map(String::as_str).unwrap_or("");
    let dev = o.get("device").map(String::as_str).unwrap_or("");
    let opts = o.get("o").map(String::as_str).unwrap_or("");
    let bind = opts.split(',').any(|x| x == "bind" || x == "rbind");
    if !typ.is_empty() && dev.is_empty() {
        return Err(VolumeError::Invalid(
            name.into(),
            "missing required option: \"device\"".into(),
        ));
    }
    if !dev.is_empty() && typ.is_empty() {
        return Err(VolumeError::Invalid(
            name.into(),
            "missing required option: \"type\"".into(),
        ));
    }
    if bind && !Path::new(dev).is_absolute() {
        return Err(VolumeError::Invalid(
            name.into(),
            format!("invalid bind device {dev:?}: must be an absolute path"),
        ));
    }
    if !typ.is_empty() && !bind && !matches!(typ, "tmpfs") {
        return Err(VolumeError::Invalid(
            name.into(),
            format!(
                "volume type {typ:?} is not supported (only tmpfs, or o=bind with a host path)"
            ),
        ));
    }
    Ok(())
}

fn write_atomic(path: &Path, v: &Volume) -> Result<()> {
    let err = |e| VolumeError::Io(path.display().to_string(), e);
    let data = serde_json::to_vec_pretty(v).map_err(|e| err(io::Error::other(e)))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(err)?;
    f.write_all(&data).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(err)?;
    if let Some(d) = path.parent().and_then(|d| fs::File::open(d).ok()) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("data"));
        assert!(valid_name("a1_b.c-d"));
        assert!(!valid_name("a"));
        assert!(!valid_name("_x"));
        assert!(!valid_name("x/y"));
        assert!(!valid_name("x!"));
    }

    #[test]
    fn create_get_list_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Volumes::open(tmp.path()).unwrap();
        let labels = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let v = s
            .create(
                "data",
                "",
                labels.clone(),
                BTreeMap::new(),
                "2026-01-01T00:00:00Z",
            )
            .unwrap();
        assert_eq!(v.driver, "local");
        assert!(s.mountpoint("data").is_dir());
        // Creating again returns the existing volume unchanged.
        let again = s
            .create("data", "local", BTreeMap::new(), BTreeMap::new(), "x")
            .unwrap();
        assert_eq!(again, v);
        assert!(s.is_empty("data"));
        fs::write(s.mountpoint("data").join("f"), b"12345").unwrap();
        assert!(!s.is_empty("data"));
        assert!(s.size(&v) >= 5);
        assert_eq!(s.list().len(), 1);
        s.remove("data").unwrap();
        assert!(matches!(s.get("data"), Err(VolumeError::NotFound(_))));
        assert!(!tmp.path().join("volumes/data").exists());
        assert!(matches!(s.remove("data"), Err(VolumeError::NotFound(_))));
    }

    #[test]
    fn bad_input() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Volumes::open(tmp.path()).unwrap();
        let none = BTreeMap::new;
        let e = s.create("x!", "", none(), none(), "").unwrap_err();
        assert!(e.to_string().contains("invalid characters"), "{e}");
        let e = s.create("vv", "nfs", none(), none(), "").unwrap_err();
        assert!(e.to_string().contains("plugin"), "{e}");
        let opts = BTreeMap::from([("bogus".to_string(), "1".to_string())]);
        let e = s.create("vv", "", none(), opts, "").unwrap_err();
        assert!(e.to_string().contains("invalid option key"), "{e}");
        let opts = BTreeMap::from([
            ("type".to_string(), "none".to_string()),
            ("o".to_string(), "bind".to_string()),
            ("device".to_string(), "rel".to_string()),
        ]);
        assert!(s.create("vv", "", none(), opts, "").is_err());
        let opts = BTreeMap::from([
            ("type".to_string(), "tmpfs".to_string()),
            ("device".to_string(), "tmpfs".to_string()),
            ("o".to_string(), "size=1m".to_string()),
        ]);
        let v = s.create("tv", "", none(), opts, "").unwrap();
        assert!(v.has_mount_options());
        assert!(s.list().iter().all(|v| v.name == "tv"));
    }
}
