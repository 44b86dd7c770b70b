//! The [`ImageStore`] facade the engine calls. Every method is safe to call from several daemon threads.

use crate::{
    AuthConfig, DiskUsage, GcReport, HistoryItem, Image, ImageInspect, ImageSummary, LoadedImage,
    Platform, Progress, PruneReport, PushResult, RemoveEvent, Result,
};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Options for [`ImageStore::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Registries (host[:port] or CIDR) spoken to over plain HTTP, as dockerd's `--insecure-registry`.
    pub insecure_registries: Vec<String>,
    /// Refuse layers whose unpacked size exceeds this many bytes.
    pub max_layer_size: u64,
    /// Parallel layer downloads.
    pub max_concurrent_downloads: usize,
    /// Parallel layer uploads (dockerd's `--max-concurrent-uploads`, default 5).
    pub max_concurrent_uploads: usize,
    /// `certs.d` directories holding per-registry CAs and client certificates.
    pub certs_dirs: Vec<PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            insecure_registries: Vec::new(),
            max_layer_size: crate::layer::DEFAULT_MAX_LAYER_SIZE,
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            certs_dirs: crate::registry::tls::default_certs_dirs(),
        }
    }
}

/// The image store rooted at a daemon's data root.
#[derive(Debug)]
pub struct ImageStore {
    store: crate::store::Store,
    opts: StoreOptions,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `data_root`, cleaning stray temp files.
    pub fn open(data_root: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(data_root, StoreOptions::default())
    }

    pub fn open_with(data_root: impl AsRef<Path>, opts: StoreOptions) -> Result<Self> {
        let store = crate::store::Store::open(data_root.as_ref())?;
        Ok(ImageStore { store, opts })
    }

    pub fn data_root(&self) -> &Path {
        self.store.root()
    }

    /// Finds an image by familiar or full reference, id, unique id prefix, or `name@digest`.
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        self.store.resolve(reference)
    }

    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        self.store.list()
    }

    pub fn inspect(&self, reference: &str) -> Result<ImageInspect> {
        self.store.inspect(reference)
    }

    pub fn history(&self, reference: &str) -> Result<Vec<HistoryItem>> {
        self.store.history(reference)
    }

    /// `docker tag SRC TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        self.store.tag(source, target)
    }

    /// `docker rmi`: untags, and deletes the image when no reference is left. The engine must have checked
    /// that no container uses the image (unless forcing).
    pub fn remove(&self, reference: &str, force: bool) -> Result<Vec<RemoveEvent>> {
        self.store.remove(reference, force)
    }

    /// The unpacked `diff` dirs of the image's layers, lowest first (overlay's lowerdir is the reverse).
    pub fn layer_dirs(&self, image: &str) -> Result<Vec<PathBuf>> {
        self.store.layer_dirs(image)
    }

    /// The image's shared init layer dir (the container mount points), created when missing; `None` for an
    /// image without layers. `layers` are its layer dirs, top-most first. See `store/initlayer.rs`.
    pub fn init_layer_dir(&self, image: &str, layers: &[PathBuf]) -> Result<Option<PathBuf>> {
        self.store.init_layer_dir(image, layers)
    }

    /// Pulls `reference` (tag `latest` by default) for `platform` (linux/amd64 when `None`).
    pub fn pull(
        &self,
        reference: &str,
        platform: Option<&Platform>,
        auth: Option<&AuthConfig>,
        progress: &dyn Progress,
    ) -> Result<Image> {
        crate::registry::pull::pull(&self.store, &self.opts, reference, platform, auth, progress)
    }

    /// Pushes a local tag to its registry; returns the manifest digest.
    pub fn push(
        &self,
        reference: &str,
        auth: Option<&AuthConfig>,
        progress: &dyn Progress,
    ) -> Result<PushResult> {
        crate::registry::push::push(&self.store, &self.opts, reference, auth, progress)
    }

    /// `docker save`: a docker ≥25 style archive (docker-archive + OCI layout) of the named images.
    pub fn save(&self, references: &[&str], out: &mut dyn Write) -> Result<()> {
        crate::archive::save(&self.store, references, out)
    }

    /// `docker load`: docker-archive (old and new layouts) or OCI layout tarballs, optionally compressed.
    pub fn load(&self, input: &mut dyn Read, progress: &dyn Progress) -> Result<Vec<LoadedImage>> {
        crate::archive::load(&self.store, &self.opts, input, progress)
    }

    /// `docker import`: a rootfs tarball (optionally compressed) becomes a one-layer image; `changes` are
    /// Dockerfile-style `--change` instructions; `message` becomes the history comment.
    pub fn import(
        &self,
        input: &mut dyn Read,
        reference: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<Image> {
        crate::archive::import(&self.store, &self.opts, input, reference, changes, message)
    }

    /// `docker commit` / a build step: packs `diff_dir` (a container's overlay upper dir, whiteouts as
    /// overlay char devices) into a new layer on top of `opts.parent`.
    pub fn commit(&self, diff_dir: &Path, opts: &crate::commit::CommitOptions) -> Result<Image> {
        crate::commit::commit(&self.store, &self.opts, diff_dir, opts)
    }

    /// `docker image prune`: removes dangling images (or, with `dangling_only == false`, every image not in
    /// `in_use`, a set of image ids the engine's containers use), then collects garbage.
    pub fn prune(&self, dangling_only: bool, in_use: &HashSet<String>) -> Result<PruneReport> {
        self.store.prune(dangling_only, in_use)
    }

    /// Removes blobs, layers and temp dirs no image references.
    pub fn gc(&self) -> Result<GcReport> {
        self.store.gc()
    }

    pub fn disk_usage(&self) -> Result<DiskUsage> {
        self.store.disk_usage()
    }

    /// Checks credentials against a registry (`docker login`); returns docker's "Login Succeeded" status text.
    pub fn login(&self, server: Option<&str>, auth: &AuthConfig) -> Result<String> {
        crate::registry::login(&self.opts, server, auth)
    }

    /// Direct access to the lower-level store.
    pub fn store(&self) -> &crate::store::Store {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_is_shareable_between_daemon_threads() {
        fn is<T: Send + Sync>() {}
        is::<super::ImageStore>();
    }
}
