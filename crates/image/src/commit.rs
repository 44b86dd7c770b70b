//! `docker commit` / build steps: a directory of changes (a container's overlay upper dir) becomes a new
//! layer on top of a parent image, with a new runtime config.

use crate::config::{ContainerConfig, HistoryEntry, ImageConfig, RootFs};
use crate::layer::UnpackOptions;
use crate::manifest::Platform;
use crate::reference::Reference;
use crate::store::{now_rfc3339_pub, LayerSpec, Store, StoreError};
use crate::{Image, Result, StoreOptions};
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

/// What a commit records besides the layer.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Parent image (any form `resolve` accepts); `None` for a base image.
    pub parent: Option<String>,
    /// The new image's runtime config (Cmd, Env, ...), replacing the parent's.
    pub config: Option<ContainerConfig>,
    /// Tag to give the result.
    pub reference: Option<String>,
    pub comment: Option<String>,
    pub author: Option<String>,
    /// History line, e.g. `/bin/sh -c #(nop) CMD ["sh"]` or the committed container's command.
    pub created_by: Option<String>,
    /// Record only a history entry and config change, no layer (`diff_dir` is ignored).
    pub empty_layer: bool,
}

pub fn commit(
    store: &Store,
    opts: &StoreOptions,
    diff_dir: &Path,
    c: &CommitOptions,
) -> Result<Image> {
    let name = c
        .reference
        .as_deref()
        .map(Reference::parse_with_default_tag)
        .transpose()?;
    let parent = c.parent.as_deref().map(|p| store.resolve(p)).transpose()?;
    let _pin = store.pin(parent.iter().flat_map(|p| p.chain_ids.clone()));
    let mut cfg = match &parent {
        Some(p) => p.config.clone(),
        None => {
            let host = Platform::host();
            ImageConfig {
                architecture: Some(host.architecture),
                os: Some(host.os),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: vec![],
                },
                ..Default::default()
            }
        }
    };
    let mut layer_pin = None;
    if !c.empty_layer {
        let tmp = store.temp_path("commit");
        let mut f = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp.path)
            .map_err(|e| StoreError::Io {
                path: tmp.path.display().to_string(),
                source: e,
            })?;
        let io = |e: std::io::Error| StoreError::Io {
            path: diff_dir.display().to_string(),
            source: e,
        };
        {
            let mut gz = flate2::write::GzEncoder::new(
                BufWriter::new(&mut f),
                flate2::Compression::default(),
            );
            crate::pack::pack(diff_dir, &mut gz).map_err(io)?;
            gz.finish().map_err(io)?.flush().map_err(io)?;
        }
        f.rewind().map_err(io)?;
        let top = parent.as_ref().and_then(|p| p.chain_ids.last().cloned());
        let (meta, lp) = store.create_layer_pinned(
            &mut f,
            LayerSpec {
                parent: top.as_deref(),
                ..Default::default()
            },
            UnpackOptions {
                max_size: opts.max_layer_size,
            },
        )?;
        layer_pin = Some(lp);
        cfg.rootfs.kind = "layers".into();
        cfg.rootfs.diff_ids.push(meta.diff_id);
    }
    let now = now_rfc3339_pub();
    cfg.created = Some(now.clone());
    cfg.parent = parent.as_ref().map(|p| p.id.clone());
    if let Some(cc) = &c.config {
        cfg.config = Some(cc.clone());
    }
    if c.author.is_some() {
        cfg.author = c.author.clone();
    }
    cfg.comment = c.comment.clone();
    cfg.history.push(HistoryEntry {
        created: Some(now),
        created_by: c.created_by.clone(),
        author: c.author.clone(),
        comment: c.comment.clone(),
        empty_layer: c.empty_layer,
    });
    let bytes = serde_json::to_vec(&cfg).expect("serialisable");
    let img = store.put_image(&bytes, name.as_slice(), None);
    drop(layer_pin);
    img
}
