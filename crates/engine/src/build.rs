//! The engine's [`BuildBackend`] for the classic builder (`POST /build`): RUN steps are ordinary containers
//! (created, started through the monitor, waited for, their overlay upper dir committed as a layer, removed);
//! COPY/ADD and WORKDIR write into a scratch overlay over the parent's layers whose upper dir becomes the
//! layer; `COPY --from` reads a mounted view of the source image. The build cache is an index under
//! `<data-root>/builder/cache/`: one file per cache key (which already covers the parent id, the instruction
//! and the checksums of copied files) holding the id of the image committed for it.
//!
//! The backend is synchronous (the builder runs on a blocking thread) and drives the async engine through a
//! tokio [`Handle`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_build::backend::{BackendError, BuildBackend, CommitSpec, CopyPlan, ImageInfo, RunSpec};
use berth_image::commit::CommitOptions;
use berth_storage::RwLayer;
use serde_json::{json, Value};
use tokio::runtime::Handle;

use crate::engine::{Engine, EngineError};
use crate::images::ImageError;

/// Errors of the build backend's own bookkeeping (the builder sees them as [`BackendError`]s).
#[derive(Debug, thiserror::Error)]
pub enum BuildBackendError {
    /// A file system operation on the scratch layers or the cache index failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

fn be(e: impl std::fmt::Display) -> BackendError {
    BackendError::new(e.to_string())
}

/// Files and directories the runtime creates in a container's rootfs to mount over (docker keeps them in its
/// `-init` layer, never in a committed layer); removed from a RUN step's upper dir when the image lacked them.
const MOUNT_POINTS: &[&str] = &[
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    ".dockerenv",
    "dev/console",
    "dev/pts",
    "dev/shm",
    "dev/mqueue",
    "proc",
    "sys",
    "dev",
    "etc",
];

/// The backend for one build. Everything it mounted or created is cleaned up on drop.
pub struct EngineBackend {
    engine: Arc<Engine>,
    rt: Handle,
    /// Scratch overlays (views for `COPY --from`) to unmount and delete at the end.
    scratch: Vec<RwLayer>,
    /// Step containers whose step has not finished (a failed start, a cancelled build): removed on drop.
    containers: Vec<String>,
    /// `--rm=false`: a failed step's container stays for inspection, like docker.
    pub keep_failed: bool,
}

impl EngineBackend {
    /// A backend over `engine`; `rt` is the daemon's runtime (the builder runs on one of its blocking threads).
    pub fn new(engine: Arc<Engine>, rt: Handle) -> Self {
        EngineBackend {
            engine,
            rt,
            scratch: Vec::new(),
            containers: Vec::new(),
            keep_failed: false,
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.engine.cfg.data_root.join("builder").join("cache")
    }

    fn cache_file(&self, key: &str) -> PathBuf {
        self.cache_dir()
            .join(key.strip_prefix("sha256:").unwrap_or(key))
    }

    fn remember(&self, key: &str, image_id: &str) -> Result<(), BackendError> {
        let dir = self.cache_dir();
        fs::create_dir_all(&dir)
            .map_err(|e| be(BuildBackendError::Io(dir.display().to_string(), e)))?;
        let f = self.cache_file(key);
        let tmp = f.with_extension("tmp");
        fs::write(&tmp, image_id)
            .and_then(|_| fs::rename(&tmp, &f))
            .map_err(|e| be(BuildBackendError::Io(f.display().to_string(), e)))
    }

    /// A fresh overlay over `parent`'s layers (scratch: none) for writing a layer; the caller commits its
    /// `diff()` and removes it.
    fn scratch_layer(&self, parent: &str) -> Result<RwLayer, BackendError> {
        let lower = if parent.is_empty() {
            Vec::new()
        } else {
            let img = self.engine.images.resolve(parent).map_err(be)?;
            self.engine.images.layer_dirs(&img).map_err(be)?
        };
        let id = format!("build-{}", crate::names::new_id());
        let layer = RwLayer::new(&self.engine.cfg.data_root, &id, lower).map_err(be)?;
        layer.create().map_err(be)?;
        if let Err(e) = layer.mount() {
            let _ = layer.remove();
            return Err(be(e));
        }
        Ok(layer)
    }

    fn commit_dir(
        &self,
        diff: &Path,
        spec: &CommitSpec,
        empty: bool,
    ) -> Result<String, BackendError> {
        let opts = CommitOptions {
            parent: (!spec.parent.is_empty()).then(|| spec.parent.clone()),
            config: Some(spec.config.clone()),
            reference: None,
            comment: None,
            author: spec.author.clone(),
            created_by: Some(spec.created_by.clone()),
            empty_layer: empty,
        };
        let img = self.engine.images.store().commit(diff, &opts).map_err(be)?;
        self.remember(&spec.cache_key, &img.id)?;
        Ok(img.id)
    }

    /// Removes a step container with its anonymous volumes (an image VOLUME gets one per RUN), like docker's
    /// builder.
    fn remove_step_container(&self, id: &str) -> Result<(), EngineError> {
        let mounts = self.engine.get(id)?.mount_points;
        let engine = self.engine.clone();
        let key = id.to_string();
        self.rt
            .block_on(async move { engine.remove(&key, true).await })?;
        self.engine.remove_anonymous_volumes(&mounts, None);
        Ok(())
    }

    fn image_info(&self, reference: &str) -> Result<ImageInfo, ImageError> {
        let rec = self.engine.images.resolve(reference)?;
        let config = serde_json::from_value(rec.container_config().clone()).unwrap_or_default();
        Ok(ImageInfo { id: rec.id, config })
    }
}

impl Drop for EngineBackend {
    fn drop(&mut self) {
        let leftover = std::mem::take(&mut self.containers);
        for id in leftover.into_iter().filter(|_| !self.keep_failed) {
            let _ = self.remove_step_container(&id);
        }
        for l in self.scratch.drain(..) {
            if let Err(e) = l.remove() {
                log::warn!("build: removing scratch layer {}: {e}", l.dir.display());
            }
        }
    }
}

/// Removes the runtime's mount points from a RUN step's upper dir when no lower layer has them (empty files and
/// directories only: anything the step really wrote there stays).
fn strip_mount_points(diff: &Path, lower: &[PathBuf]) {
    for rel in MOUNT_POINTS {
        let p = diff.join(rel);
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if lower
            .iter()
            .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
            && !m.is_dir()
        {
            continue;
        }
        if m.is_file() && m.len() == 0 {
            let _ = fs::remove_file(&p);
        } else if m.is_dir() {
            let opaque = xattr_present(&p, "trusted.overlay.opaque");
            // An empty directory left over from copy-up of a mount point's parent, or a mount point itself.
            if !opaque && fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none()) {
                let _ = fs::remove_dir(&p);
            }
        }
    }
}

fn xattr_present(p: &Path, name: &str) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (Ok(path), Ok(name)) = (CString::new(p.as_os_str().as_bytes()), CString::new(name)) else {
        return false;
    };
    // SAFETY: both pointers are valid NUL-terminated strings; a null buffer of size 0 only asks for the size.
    let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    n >= 0
}

impl BuildBackend for EngineBackend {
    fn resolve_image(
        &mut self,
        reference: &str,
        platform: Option<&str>,
        pull: bool,
    ) -> Result<ImageInfo, BackendError> {
        if !pull {
            match self.image_info(reference) {
                Ok(i) => return Ok(i),
                Err(ImageError::NotFound(_)) => {}
                Err(e) => return Err(be(e)),
            }
        }
        let platform = platform
            .map(berth_image::Platform::parse)
            .transpose()
            .map_err(be)?;
        let img = self
            .engine
            .images
            .store()
            .pull(reference, platform.as_ref(), None, &berth_image::NoProgress)
            .map_err(be)?;
        self.image_info(&img.id).map_err(be)
    }

    fn find_cached(
        &mut self,
        _parent: &str,
        cache_key: &str,
    ) -> Result<Option<String>, BackendError> {
        let f = self.cache_file(cache_key);
        let Ok(id) = fs::read_to_string(&f) else {
            return Ok(None);
        };
        // The key covers the parent; the image must still exist (it may have been removed or pruned).
        match self.engine.images.resolve(id.trim()) {
            Ok(img) => Ok(Some(img.id)),
            Err(_) => {
                let _ = fs::remove_file(&f);
                Ok(None)
            }
        }
    }

    fn create_container(&mut self, spec: &RunSpec) -> Result<String, BackendError> {
        if spec.image_id.is_empty() {
            return Err(be(format!(
                "cannot run {:?} on an empty image (FROM scratch has no files)",
                spec.argv.join(" ")
            )));
        }
        let mut config = json!({
            "Image": spec.image_id,
            "Entrypoint": spec.argv,
            "Env": spec.env,
            "Labels": {},
            "AttachStdout": true,
            "AttachStderr": true,
        });
        if let Some(u) = &spec.user {
            config["User"] = json!(u);
        }
        if let Some(w) = &spec.workdir {
            config["WorkingDir"] = json!(w);
        }
        let hc = json!({"NetworkMode": spec.network});
        let (id, _) = self
            .engine
            .create(None, config, hc, Value::Null)
            .map_err(be)?;
        self.containers.push(id.clone());
        Ok(id)
    }

    fn run_container(
        &mut self,
        container: &str,
        output: &mut dyn Write,
    ) -> Result<i64, BackendError> {
        let engine = self.engine.clone();
        let c = engine.get(container).map_err(be)?;
        let log = PathBuf::from(&c.log_path);
        let e2 = engine.clone();
        self.rt
            .block_on(async move { e2.start(container).await })
            .map_err(be)?;
        let mut wait = Box::pin(engine.wait(container, "not-running").map_err(be)?);
        let mut offset = 0;
        // The output is written outside the runtime: the API's writer blocks on its channel.
        loop {
            let done = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(100), &mut wait)
                    .await
                    .ok()
            });
            let (entries, next) = crate::logs::read_from(&log, offset);
            offset = next;
            for e in entries {
                output
                    .write_all(e.log.as_bytes())
                    .map_err(|e| be(format!("writing build output: {e}")))?;
            }
            let _ = output.flush();
            if let Some((code, _)) = done {
                return Ok(i64::from(code));
            }
        }
    }

    fn commit_container(
        &mut self,
        container: &str,
        spec: &CommitSpec,
    ) -> Result<String, BackendError> {
        // From here the builder decides (`--rm`): a committed step's container is no longer ours to clean up.
        self.containers.retain(|c| c != container);
        let layer = RwLayer::open(&self.engine.cfg.data_root, container).map_err(be)?;
        layer.unmount().map_err(be)?;
        // What the image itself has decides: the init layer (`<chain>-init/diff`) only holds mount points.
        let image_lower: Vec<PathBuf> = layer
            .lower
            .iter()
            .filter(|l| {
                !l.parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n.to_string_lossy().ends_with("-init"))
            })
            .cloned()
            .collect();
        strip_mount_points(&layer.diff(), &image_lower);
        self.commit_dir(&layer.diff(), spec, false)
    }

    fn remove_container(&mut self, container: &str) -> Result<(), BackendError> {
        self.containers.retain(|c| c != container);
        match self.remove_step_container(container) {
            Ok(()) | Err(EngineError::NoSuchContainer(_)) => Ok(()),
            Err(e) => Err(be(e)),
        }
    }

    fn copy(&mut self, plan: &CopyPlan, spec: &CommitSpec) -> Result<String, BackendError> {
        let layer = self.scratch_layer(&spec.parent)?;
        let res = berth_build::apply::apply_copy(plan, &layer.merged())
            .map_err(be)
            .and_then(|()| layer.unmount().map_err(be))
            .and_then(|()| self.commit_dir(&layer.diff(), spec, false));
        if let Err(e) = layer.remove() {
            log::warn!("build: removing scratch layer {}: {e}", layer.dir.display());
        }
        res
    }

    fn commit_config(&mut self, spec: &CommitSpec) -> Result<String, BackendError> {
        let Some(dir) = spec.create_dir.as_deref().filter(|d| *d != "/") else {
            return self.commit_dir(Path::new("/nonexistent"), spec, true);
        };
        // WORKDIR: make the directory when the image lacks it, in a layer of its own like docker.
        let layer = self.scratch_layer(&spec.parent)?;
        let root = berth_build::context::SourceRoot::rootfs(&layer.merged());
        let res = (|| {
            let host = root.resolve(dir, true).map_err(be)?;
            let created = !host.is_dir();
            if created {
                fs::create_dir_all(&host)
                    .map_err(|e| be(BuildBackendError::Io(dir.to_string(), e)))?;
            }
            layer.unmount().map_err(be)?;
            self.commit_dir(&layer.diff(), spec, !created)
        })();
        if let Err(e) = layer.remove() {
            log::warn!("build: removing scratch layer {}: {e}", layer.dir.display());
        }
        res
    }

    fn image_rootfs(&mut self, image_id: &str) -> Result<PathBuf, BackendError> {
        let layer = self.scratch_layer(image_id)?;
        let merged = layer.merged();
        self.scratch.push(layer);
        Ok(merged)
    }

    fn tag(&mut self, image_id: &str, reference: &str) -> Result<(), BackendError> {
        self.engine
            .images
            .store()
            .tag(image_id, reference)
            .map_err(be)?;
        self.engine
            .events
            .emit("image", "tag", image_id, json!({"name": reference}));
        Ok(())
    }
}
