//! Loading and validating a bundle's `config.json`, and container id rules.

use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

/// Errors about the bundle and its configuration.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid {path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("rootfs {0} does not exist or is not a directory")]
    MissingRootfs(PathBuf),
}

/// Checks a container id the way runc does.
pub fn validate_id(id: &str) -> Result<(), crate::RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(crate::RuntimeError::InvalidId(id.to_string()))
    }
}

/// Loads `<bundle>/config.json` and checks what the runtime relies on: `process`, `root`, `linux`, a readable
/// rootfs directory. Returns the spec and the absolute rootfs path.
pub fn load_spec(bundle: &Path) -> Result<(Spec, PathBuf), SpecError> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    let spec: Spec = serde_json::from_slice(&data).map_err(|source| SpecError::Parse {
        path: path.clone(),
        source,
    })?;
    let invalid = |what: &str| SpecError::Invalid {
        path: path.clone(),
        what: what.to_string(),
    };
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("missing \"root\""))?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid("empty \"root.path\""));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("missing \"process\""))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid("\"process.args\" must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid("\"process.cwd\" must be an absolute path"));
    }
    if spec.linux().is_none() {
        return Err(invalid("missing \"linux\""));
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(invalid(&format!(
                "mount destination {:?} is not absolute",
                m.destination()
            )));
        }
    }
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    if !rootfs.is_dir() {
        return Err(SpecError::MissingRootfs(rootfs));
    }
    let rootfs = rootfs
        .canonicalize()
        .map_err(|_| SpecError::MissingRootfs(rootfs.clone()))?;
    Ok((spec, rootfs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1_2.3+4").is_ok());
        for bad in ["", "..", "-a", "a/b", "a b", "a\n"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_config_and_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_spec(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        std::fs::write(dir.path().join("config.json"), "{nope").unwrap();
        assert!(load_spec(dir.path())
            .unwrap_err()
            .to_string()
            .starts_with("invalid "));
        let spec = Spec::default();
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let err = load_spec(dir.path()).unwrap_err().to_string();
        assert!(err.contains("rootfs"), "{err}");
    }
}
