//! Manifests: Docker v2 schema 2 manifest and manifest list, OCI manifest and index; platform selection.

use serde::{Deserialize, Serialize};

/// Errors reading manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("invalid manifest: {0}")]
    Invalid(String),
    #[error("no matching manifest for {0} in the manifest list entries")]
    NoMatchingPlatform(String),
}

/// A target platform (`linux/amd64`, `linux/arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}
