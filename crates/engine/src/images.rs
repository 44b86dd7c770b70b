//! The engine's view of images: a thin, cloneable wrapper over berth-image's [`ImageStore`] with what the
//! container side needs (resolve to a config as JSON, overlay lower dirs top-most first), plus docker's
//! reference normalisation for messages.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_image::ImageStore;
use serde_json::Value;

/// Errors from the image store, classified the way the API answers them.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// 404.
    #[error("No such image: {0}")]
    NotFound(String),
    /// 400: a malformed reference or argument.
    #[error("{0}")]
    Invalid(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// Anything else (500, or the registry's status).
    #[error("{0}")]
    Other(String, u16),
}

impl From<berth_image::Error> for ImageError {
    fn from(e: berth_image::Error) -> Self {
        match e {
            berth_image::Error::NotFound(r) => Self::NotFound(r),
            other => match other.http_status() {
                400 => Self::Invalid(other.to_string()),
                404 => Self::NotFound(other.to_string()),
                409 => Self::Conflict(other.to_string()),
                code => Self::Other(other.to_string(), code),
            },
        }
    }
}

impl ImageError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::Invalid(_) => 400,
            Self::Conflict(_) => 409,
            Self::Other(_, c) => *c,
        }
    }
}

type Result<T> = std::result::Result<T, ImageError>;

/// What the container side needs of an image.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    /// `sha256:<hex>` of the config.
    pub id: String,
    /// `name:tag` references.
    pub repo_tags: Vec<String>,
    /// Unpacked size of all layers.
    pub size: u64,
    /// The whole image config as JSON.
    pub config: Value,
}

impl ImageRecord {
    /// The container-config part (`config` key) of the image config.
    pub fn container_config(&self) -> &Value {
        &self.config["config"]
    }
}

/// The store, shared between handlers and blocking tasks.
#[derive(Debug, Clone)]
pub struct Images {
    store: Arc<ImageStore>,
}

impl Images {
    /// Opens (creating) berth-image's store under `data_root`; registries on loopback (like dockerd's default
    /// insecure 127.0.0.0/8) and those in `insecure` (`--insecure-registry`) are insecure (HTTPS without
    /// certificate checks, then plain HTTP).
    pub fn open(data_root: &Path, insecure: &[String]) -> Result<Self> {
        let mut insecure_registries: Vec<String> =
            vec!["127.0.0.0/8".into(), "localhost".into(), "::1/128".into()];
        insecure_registries.extend(insecure.iter().cloned());
        let opts = berth_image::StoreOptions {
            insecure_registries,
            ..Default::default()
        };
        Ok(Self {
            store: Arc::new(ImageStore::open_with(data_root, opts)?),
        })
    }

    /// berth-image's facade, for the image endpoints.
    pub fn store(&self) -> &Arc<ImageStore> {
        &self.store
    }

    /// Finds an image by reference, id or unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord> {
        let img = self.store.resolve(reference)?;
        Ok(ImageRecord {
            id: img.id,
            repo_tags: img.repo_tags,
            size: img.size,
            config: serde_json::to_value(&img.config).unwrap_or(Value::Null),
        })
    }

    /// The overlay lower dirs of an image, top-most first (the order `lowerdir=` wants).
    pub fn layer_dirs(&self, img: &ImageRecord) -> Result<Vec<PathBuf>> {
        let mut dirs = self.store.layer_dirs(&img.id)?;
        dirs.reverse();
        Ok(dirs)
    }

    /// A container's overlay lower dirs, top-most first: the image's shared init layer (the mount points the
    /// runtime mounts over, see berth-image's `store/initlayer.rs`) over the image's layers.
    pub fn container_lower_dirs(&self, img: &ImageRecord) -> Result<Vec<PathBuf>> {
        let mut dirs = self.layer_dirs(img)?;
        if let Some(init) = self.store.init_layer_dir(&img.id, &dirs)? {
            dirs.insert(0, init);
        }
        Ok(dirs)
    }

    /// Number of images.
    pub fn count(&self) -> usize {
        self.store.list().map(|l| l.len()).unwrap_or(0)
    }
}

/// docker's normalisation for messages: `docker.io/library/x` → `x`, missing tag → `:latest`.
pub fn normalize(reference: &str) -> std::result::Result<String, ImageError> {
    let r = berth_image::Reference::parse_with_default_tag(reference)
        .map_err(|e| ImageError::Invalid(e.to_string()))?;
    Ok(r.familiar())
}

/// GOARCH spelling of the host architecture, what docker reports.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_refs() {
        assert_eq!(normalize("hello-world").unwrap(), "hello-world:latest");
        assert_eq!(
            normalize("docker.io/library/busybox:1.36").unwrap(),
            "busybox:1.36"
        );
        assert_eq!(
            normalize("localhost:5000/x").unwrap(),
            "localhost:5000/x:latest"
        );
        assert!(normalize("Bad Ref").is_err());
    }

    #[test]
    fn import_resolve_layer_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("hello"), b"#!hi").unwrap();
        let mut tarball = Vec::new();
        {
            let mut b = tar::Builder::new(&mut tarball);
            b.append_dir_all(".", &src).unwrap();
            b.finish().unwrap();
        }
        let images = Images::open(&tmp.path().join("root"), &[]).unwrap();
        images
            .store()
            .import(
                &mut &tarball[..],
                Some("hello-world"),
                &["CMD [\"/hello\"]".into()],
                None,
            )
            .unwrap();
        let img = images.resolve("hello-world").unwrap();
        assert_eq!(img.container_config()["Cmd"], serde_json::json!(["/hello"]));
        let dirs = images.layer_dirs(&img).unwrap();
        assert_eq!(std::fs::read(dirs[0].join("hello")).unwrap(), b"#!hi");
        assert!(matches!(
            images.resolve("nope"),
            Err(ImageError::NotFound(_))
        ));
    }
}
