//! Public result shapes, serialised the way the Docker Engine API returns them.

use crate::config::{ContainerConfig, ImageConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One row of `GET /images/json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    pub size: i64,
    /// Bytes of this image's layers that other images share; -1 when not computed.
    pub shared_size: i64,
    pub virtual_size: i64,
    pub labels: BTreeMap<String, String>,
    /// Containers using the image; -1 = unknown (the engine fills it in).
    pub containers: i64,
}

/// `GraphDriver` of `ImageInspect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

/// `RootFS` of `ImageInspect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectRootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

/// `Metadata` of `ImageInspect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMetadata {
    pub last_tag_time: String,
}

/// `GET /images/{name}/json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    /// RFC 3339 with nanoseconds, as docker prints it.
    pub created: String,
    pub docker_version: String,
    pub author: String,
    pub config: Option<ContainerConfig>,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    pub size: i64,
    pub virtual_size: i64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: InspectRootFs,
    pub metadata: InspectMetadata,
}

/// One row of `GET /images/{name}/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    /// Image id for the top entry (and tagged ancestors), `<missing>` otherwise.
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: i64,
    pub comment: String,
}

/// One entry of `DELETE /images/{name}`'s response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoveEvent {
    /// A tag or digest reference removed (familiar form).
    Untagged(String),
    /// An image (id) or layer deleted.
    Deleted(String),
}

/// What `load` reported for each image: docker prints "Loaded image: x:y" or "Loaded image ID: sha256:...".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadedImage {
    Tag(String),
    Id(String),
}

/// Result of `prune`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PruneReport {
    pub deleted: Vec<RemoveEvent>,
    pub space_reclaimed: u64,
}

/// Result of `gc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub layers_removed: usize,
    pub temp_removed: usize,
    pub bytes_freed: u64,
}

/// For `system df`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskUsage {
    pub images: Vec<ImageSummary>,
    /// Sum of all unpacked layer sizes (each shared layer counted once).
    pub layers_size: i64,
}

/// Result of `push`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResult {
    pub tag: String,
    pub digest: String,
    pub size: u64,
}

/// A resolved image: id, names and parsed config.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `sha256:<hex>` of the config blob.
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub config: ImageConfig,
    /// Chain ids of the layers, lowest first.
    pub chain_ids: Vec<String>,
    /// Sum of unpacked layer sizes.
    pub size: u64,
}

impl Image {
    /// The runtime defaults (`Env`, `Cmd`, `Entrypoint`, ...); empty when the image has none.
    pub fn container_config(&self) -> ContainerConfig {
        self.config.config.clone().unwrap_or_default()
    }
}
