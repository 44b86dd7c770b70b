//! Manifests: Docker v2 schema 2 manifest and manifest list, OCI manifest and index, and platform selection.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MEDIA_DOCKER_LAYER_FOREIGN: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The `Accept` header for manifest requests: all four kinds.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json";

/// Errors reading manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("invalid manifest: {0}")]
    Invalid(String),
    #[error("no matching manifest for {0} in the manifest list entries")]
    NoMatchingPlatform(String),
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    InvalidPlatform(String),
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: &str, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest: digest.into(),
            size: size as i64,
            urls: None,
            annotations: None,
            platform: None,
        }
    }
}

/// An image manifest (Docker v2 schema 2 or OCI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest list / OCI index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// Parses a manifest, trusting the `Content-Type` when given, else the document's `mediaType`, else its shape.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Manifest, ManifestError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ManifestError::Invalid(e.to_string()))?;
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        return Err(ManifestError::UnsupportedMediaType(
            "application/vnd.docker.distribution.manifest.v1+json (schema 1)".into(),
        ));
    }
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| {
            [
                MEDIA_DOCKER_MANIFEST,
                MEDIA_DOCKER_LIST,
                MEDIA_OCI_MANIFEST,
                MEDIA_OCI_INDEX,
            ]
            .contains(c)
        });
    let mt = ct.map(str::to_string).or_else(|| {
        v.get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string)
    });
    let is_index = match mt.as_deref() {
        Some(MEDIA_DOCKER_LIST) | Some(MEDIA_OCI_INDEX) => true,
        Some(MEDIA_DOCKER_MANIFEST) | Some(MEDIA_OCI_MANIFEST) => false,
        Some(other) if !other.is_empty() => {
            return Err(ManifestError::UnsupportedMediaType(other.into()))
        }
        _ => v.get("manifests").is_some(),
    };
    let inv = |e: serde_json::Error| ManifestError::Invalid(e.to_string());
    if is_index {
        Ok(Manifest::Index(serde_json::from_value(v).map_err(inv)?))
    } else {
        Ok(Manifest::Image(serde_json::from_value(v).map_err(inv)?))
    }
}

/// A target platform (`linux/amd64`, `linux/arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// The host's platform (docker's default).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
            os_version: None,
        }
    }

    /// Parses `os[/arch[/variant]]` as `--platform` does.
    pub fn parse(s: &str) -> Result<Self, ManifestError> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || parts.is_empty() || parts.len() > 3 {
            return Err(ManifestError::InvalidPlatform(s.into()));
        }
        let os = parts[0].to_ascii_lowercase();
        let mut arch = parts
            .get(1)
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_else(|| Self::host().architecture);
        let mut variant = parts.get(2).map(|v| v.to_ascii_lowercase());
        // Normalise the aliases containerd's platforms package knows.
        match arch.as_str() {
            "x86_64" | "x86-64" => arch = "amd64".into(),
            "aarch64" => arch = "arm64".into(),
            "armhf" => {
                arch = "arm".into();
                variant.get_or_insert("v7".into());
            }
            _ => {}
        }
        if arch == "arm64" && variant.as_deref() == Some("v8") {
            variant = None;
        }
        Ok(Platform {
            os,
            architecture: arch,
            variant,
            os_version: None,
        })
    }

    /// Whether an index entry's platform satisfies this request.
    pub fn matches(&self, other: &Platform) -> bool {
        let norm = |p: &Platform| -> Option<String> {
            match (p.architecture.as_str(), p.variant.as_deref()) {
                ("arm64", Some("v8")) => None,
                (_, v) => v.map(str::to_string),
            }
        };
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        match norm(self) {
            None => true,
            Some(v) => {
                norm(other).as_deref() == Some(v.as_str())
                    || (self.architecture == "arm" && v == "v7" && other.variant.is_none())
            }
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the manifest for `want` from an index; entries without a platform and attestation manifests
/// (`unknown/unknown`) are never chosen. Among matches, one without a variant or with the exact variant wins.
pub fn select<'a>(index: &'a ImageIndex, want: &Platform) -> Result<&'a Descriptor, ManifestError> {
    let mut best: Option<&Descriptor> = None;
    for d in &index.manifests {
        let Some(p) = &d.platform else { continue };
        if !want.matches(p) {
            continue;
        }
        let exact = p.variant == want.variant;
        if best.is_none() || exact {
            best = Some(d);
            if exact {
                break;
            }
        }
    }
    best.ok_or_else(|| ManifestError::NoMatchingPlatform(want.to_string()))
}

/// Whether a layer media type is one we can unpack (foreign layers with URLs are refused by the caller).
pub fn is_layer_media_type(mt: &str) -> bool {
    mt.starts_with("application/vnd.docker.image.rootfs.")
        || mt.starts_with("application/vnd.oci.image.layer.")
        || mt.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(p: &str) -> Descriptor {
        let plat = Platform::parse(p).unwrap();
        let mut d = Descriptor::new(
            MEDIA_OCI_MANIFEST,
            &format!("sha256:{}", p.replace('/', "")),
            1,
        );
        d.platform = Some(plat);
        d
    }

    #[test]
    fn platform_parse_and_display() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert!(Platform::parse("linux//x").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }

    #[test]
    fn select_platform() {
        let idx = ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_INDEX.into()),
            manifests: vec![
                d("linux/arm/v6"),
                d("linux/arm/v7"),
                d("linux/amd64"),
                d("linux/arm64/v8"),
            ],
            annotations: None,
        };
        let pick = |p: &str| select(&idx, &Platform::parse(p).unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64").unwrap(), "sha256:linuxamd64");
        assert_eq!(pick("linux/arm/v7").unwrap(), "sha256:linuxarmv7");
        assert_eq!(pick("linux/arm64").unwrap(), "sha256:linuxarm64v8");
        let e = pick("linux/s390x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
    }

    #[test]
    fn parse_kinds() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:aa","size":1},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:bb","size":2}]}"#;
        match parse(None, m).unwrap() {
            Manifest::Image(i) => assert_eq!(i.layers[0].digest, "sha256:bb"),
            other => panic!("{other:?}"),
        }
        let oci_index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse(None, oci_index).unwrap(),
            Manifest::Index(_)
        ));
        assert!(matches!(
            parse(Some(MEDIA_OCI_INDEX), oci_index).unwrap(),
            Manifest::Index(_)
        ));
        let v1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(matches!(
            parse(None, v1),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        let weird = br#"{"schemaVersion":2,"mediaType":"text/plain"}"#;
        assert!(matches!(
            parse(None, weird),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(is_layer_media_type(MEDIA_OCI_LAYER_ZSTD));
        assert!(!is_layer_media_type("application/vnd.in-toto+json"));
    }
}
