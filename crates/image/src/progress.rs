//! Progress reporting for pull/push/load, shaped like docker's JSON progress messages.

/// One progress message. `id` is the short layer id (12 hex chars) or `None` for whole-image status lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    pub id: Option<String>,
    /// Docker's status text: "Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum",
    /// "Download complete", "Extracting", "Pull complete", "Already exists", "Preparing", "Pushing",
    /// "Pushed", "Layer already exists", "Mounted from <repo>", or whole-image lines like
    /// "Pulling from library/busybox", "Digest: sha256:...", "Status: Downloaded newer image for busybox:latest".
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

impl ProgressEvent {
    pub fn status(id: Option<&str>, status: impl Into<String>) -> Self {
        ProgressEvent {
            id: id.map(str::to_string),
            status: status.into(),
            current: None,
            total: None,
        }
    }
    pub fn bytes(id: &str, status: &str, current: u64, total: Option<u64>) -> Self {
        ProgressEvent {
            id: Some(id.to_string()),
            status: status.to_string(),
            current: Some(current),
            total,
        }
    }
}

/// Receives progress events; called from several download threads at once.
pub trait Progress: Sync {
    fn event(&self, ev: ProgressEvent);
}

/// Discards progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _ev: ProgressEvent) {}
}

impl<F: Fn(ProgressEvent) + Sync> Progress for F {
    fn event(&self, ev: ProgressEvent) {
        self(ev)
    }
}

/// Docker's 12-character short form of a digest or id.
pub fn short_id(digest: &str) -> String {
    let h = digest.split_once(':').map(|(_, h)| h).unwrap_or(digest);
    h.chars().take(12).collect()
}
