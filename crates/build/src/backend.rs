//! The interface the engine implements for the builder: resolve images, run a command in a container made from
//! an image and commit it, write a COPY/ADD layer, commit a metadata-only image, mount an image's rootfs for
//! `COPY --from`, tag, and look up the cache. [`crate::apply::apply_copy`] does the file work of a COPY into a
//! directory so the engine only has to provide the rootfs to write into and commit it.

use crate::context::Source;
use berth_image::config::ContainerConfig;
use std::io::Write;
use std::path::PathBuf;

/// An error reported by the engine; shown to the user as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

impl BackendError {
    pub fn new(msg: impl Into<String>) -> Self {
        BackendError(msg.into())
    }
}

/// A resolved image: its id (`sha256:…`) and runtime config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageInfo {
    pub id: String,
    pub config: ContainerConfig,
}

/// What a RUN step's container runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Image to create the container from.
    pub image_id: String,
    /// Full argv (shell form already wrapped in the SHELL, e.g. `["/bin/sh", "-c", "make"]`); the image's
    /// ENTRYPOINT is not applied.
    pub argv: Vec<String>,
    /// Environment: the image's Env plus the build args in scope (ENV wins over ARG).
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// The classic builder runs steps with the default bridge network; berth builds offline, so `none` is
    /// expected, but the engine decides.
    pub network: String,
    /// The image's VOLUME paths: docker discards what a RUN writes under them, so the engine mounts a
    /// throw-away volume on each.
    pub volumes: Vec<String>,
}

/// How to commit a step's image.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitSpec {
    /// Parent image id (`""` for scratch).
    pub parent: String,
    /// The new image's runtime config.
    pub config: ContainerConfig,
    /// Image-level author (MAINTAINER).
    pub author: Option<String>,
    /// History `created_by`, docker style (`/bin/sh -c #(nop)  CMD ["sh"]`).
    pub created_by: String,
    /// Stored with the image so [`BuildBackend::find_cached`] can find it.
    pub cache_key: String,
    /// Metadata-only step (history `empty_layer`).
    pub empty_layer: bool,
    /// WORKDIR: [`BuildBackend::commit_config`] must make sure this directory exists in the new image
    /// (docker's classic builder creates it, root-owned, 0755, in a new layer when the parent lacks it).
    pub create_dir: Option<String>,
}

/// One COPY/ADD source with where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyOp {
    pub source: Source,
    /// Absolute destination inside the image. For a directory or an archive this is the directory the contents
    /// go into; for a file it is the file's path, unless `dest_is_dir` or the path is an existing directory
    /// in the image, in which case the file goes inside it under its own name.
    pub dest: String,
    pub dest_is_dir: bool,
    /// ADD of a local tar archive: extract it into `dest` instead of copying the file.
    pub extract: bool,
}

/// A whole COPY/ADD step.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyPlan {
    pub ops: Vec<CopyOp>,
    /// `--chown` as written after substitution (`user:group`, names resolved in the image's /etc/passwd and
    /// /etc/group); `None` means 0:0 like docker.
    pub chown: Option<String>,
    /// `--chmod` (octal).
    pub chmod: Option<u32>,
}

/// What the engine implements.
pub trait BuildBackend {
    /// Resolves an image reference, pulling it when absent, or always when `pull` is set (`--pull`).
    fn resolve_image(
        &mut self,
        reference: &str,
        platform: Option<&str>,
        pull: bool,
    ) -> Result<ImageInfo, BackendError>;
    /// An image previously committed on `parent` with `cache_key`, if any.
    fn find_cached(
        &mut self,
        parent: &str,
        cache_key: &str,
    ) -> Result<Option<String>, BackendError>;
    /// Creates (not starts) a container for a RUN step; returns its id.
    fn create_container(&mut self, spec: &RunSpec) -> Result<String, BackendError>;
    /// Runs the container to completion, streaming its stdout and stderr to `output`; returns the exit code.
    fn run_container(
        &mut self,
        container: &str,
        output: &mut dyn Write,
    ) -> Result<i64, BackendError>;
    /// Commits the container's file system changes as a new image.
    fn commit_container(
        &mut self,
        container: &str,
        spec: &CommitSpec,
    ) -> Result<String, BackendError>;
    /// Removes a step container.
    fn remove_container(&mut self, container: &str) -> Result<(), BackendError>;
    /// Writes `plan` into a new layer on `spec.parent` (see [`crate::apply::apply_copy`]) and commits it.
    fn copy(&mut self, plan: &CopyPlan, spec: &CommitSpec) -> Result<String, BackendError>;
    /// Commits a new image with `spec.config` and no new layer.
    fn commit_config(&mut self, spec: &CommitSpec) -> Result<String, BackendError>;
    /// A read-only view of an image's root file system for `COPY --from`; valid until the build ends.
    fn image_rootfs(&mut self, image_id: &str) -> Result<PathBuf, BackendError>;
    /// Tags an image (`name:tag`).
    fn tag(&mut self, image_id: &str, reference: &str) -> Result<(), BackendError>;
}
