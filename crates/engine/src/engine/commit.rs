//! `POST /commit` (`docker commit`): a container's filesystem changes (its overlay upper dir) as a new layer on
//! its image, with the container's config, the request's config over it and `--change` instructions on top.
//! A running container is paused meanwhile unless `pause=0` (like moby, with its `pause`/`unpause` events), and
//! the container logs moby's `commit` event (comment, imageID, imageRef).

use serde_json::{json, Value};

use super::{internal, Engine, EngineError, Result};
use crate::record::Container;

/// What `POST /commit` asks for.
#[derive(Debug, Default, Clone)]
pub struct CommitRequest {
    /// The container (id, name or id prefix).
    pub container: String,
    /// `repo[:tag]` to tag the image with.
    pub reference: Option<String>,
    pub comment: Option<String>,
    pub author: Option<String>,
    /// Pause a running container while its changes are read (docker's default).
    pub pause: bool,
    /// Dockerfile instructions applied to the config (`--change`).
    pub changes: Vec<String>,
    /// The request body: a container config whose fields replace the container's.
    pub config: Option<Value>,
}

impl Engine {
    /// Commits the container; returns the new image's id. Blocking (reads the whole diff): call it from a
    /// blocking thread.
    pub fn commit(&self, req: &CommitRequest) -> Result<String> {
        let c = self.get(&req.container)?;
        let config = commit_config(&c, req)?;
        let pause = req.pause && c.state.running && !c.state.paused;
        if pause {
            self.pause(&c.id)?;
        }
        let res = self.commit_layer(&c, req, config);
        if pause {
            if let Err(e) = self.unpause(&c.id) {
                log::warn!("container {}: unpausing after the commit: {e}", c.id);
            }
        }
        res
    }

    fn commit_layer(
        &self,
        c: &Container,
        req: &CommitRequest,
        config: berth_image::ContainerConfig,
    ) -> Result<String> {
        let diff = berth_storage::RwLayer::open(&self.cfg.data_root, &c.id)
            .ok()
            .map(|l| l.diff())
            .filter(|d| d.is_dir());
        // A container that never ran has no upper dir yet: its commit is an empty layer, like docker's.
        let empty = match diff {
            Some(_) => None,
            None => {
                let p = self
                    .cfg
                    .data_root
                    .join(format!(".commit-empty-{}", crate::names::new_id()));
                std::fs::create_dir(&p).map_err(internal)?;
                Some(p)
            }
        };
        let dir = diff
            .or_else(|| empty.clone())
            .expect("one of the two is set");
        let created_by = c.config["Cmd"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let opts = berth_image::commit::CommitOptions {
            parent: Some(c.image.clone()),
            config: Some(config),
            reference: req.reference.clone(),
            comment: req.comment.clone().filter(|s| !s.is_empty()),
            author: req.author.clone().filter(|s| !s.is_empty()),
            created_by: Some(created_by),
            empty_layer: false,
        };
        let res = self.images.store().commit(&dir, &opts);
        if let Some(p) = empty {
            let _ = std::fs::remove_dir(p);
        }
        let img = res.map_err(|e| match e.http_status() {
            400 => EngineError::InvalidParameter(e.to_string()),
            404 => EngineError::NoSuchImage(e.to_string()),
            _ => internal(format!("committing {}: {e}", c.id)),
        })?;
        let image_ref = req
            .reference
            .as_deref()
            .and_then(|r| berth_image::Reference::parse_with_default_tag(r).ok())
            .map(|r| r.familiar())
            .unwrap_or_default();
        if !image_ref.is_empty() {
            self.events
                .emit("image", "tag", &img.id, json!({"name": image_ref}));
        }
        self.container_event(
            c,
            "commit",
            json!({
                "comment": req.comment.clone().unwrap_or_default(),
                "imageID": img.id,
                "imageRef": image_ref,
            }),
        );
        Ok(img.id)
    }
}

/// The new image's config: the container's, the request's non-null fields over it, then the `--change`s.
fn commit_config(c: &Container, req: &CommitRequest) -> Result<berth_image::ContainerConfig> {
    let mut merged = c.config.clone();
    if let (Some(Value::Object(over)), Some(base)) = (&req.config, merged.as_object_mut()) {
        for (k, v) in over {
            if !v.is_null() {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    let mut cc: berth_image::ContainerConfig = serde_json::from_value(merged)
        .map_err(|e| EngineError::InvalidParameter(format!("invalid config: {e}")))?;
    for ch in &req.changes {
        berth_image::import::apply_change(&mut cc, ch)
            .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
    }
    Ok(cc)
}
