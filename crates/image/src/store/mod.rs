//! The content-addressed store under `<data-root>/image/`.

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

use crate::{
    DiskUsage, GcReport, HistoryItem, Image, ImageInspect, ImageSummary, PruneReport, RemoveEvent,
    Result,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The on-disk store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
}

fn todo_err() -> crate::Error {
    crate::Error::InvalidArgument("not implemented yet".into())
}

impl Store {
    pub fn open(root: &Path) -> Result<Self> {
        Ok(Store {
            root: root.to_path_buf(),
        })
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn resolve(&self, _r: &str) -> Result<Image> {
        Err(todo_err())
    }
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        Ok(vec![])
    }
    pub fn inspect(&self, _r: &str) -> Result<ImageInspect> {
        Err(todo_err())
    }
    pub fn history(&self, _r: &str) -> Result<Vec<HistoryItem>> {
        Err(todo_err())
    }
    pub fn tag(&self, _s: &str, _t: &str) -> Result<()> {
        Err(todo_err())
    }
    pub fn remove(&self, _r: &str, _f: bool) -> Result<Vec<RemoveEvent>> {
        Err(todo_err())
    }
    pub fn layer_dirs(&self, _r: &str) -> Result<Vec<PathBuf>> {
        Err(todo_err())
    }
    pub fn prune(&self, _d: bool, _u: &HashSet<String>) -> Result<PruneReport> {
        Err(todo_err())
    }
    pub fn gc(&self) -> Result<GcReport> {
        Err(todo_err())
    }
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        Err(todo_err())
    }
}
