//! `docker push`: upload missing layer blobs in parallel (HEAD check, cross-repository mount, or an
//! upload streamed from the store file in one PUT), the config, then a Docker v2 schema 2 manifest (OCI when a layer is zstd).

use super::client::{Body, Client};
use crate::digest::sha256_bytes;
use crate::manifest::{self, Descriptor, ImageManifest};
use crate::progress::{short_id, ProgressEvent};
use crate::reference::Reference;
use crate::store::{BlobRef, LayerMeta, LayerSource, Store, StoreError};
use crate::{AuthConfig, Error, Progress, PushResult, Result, StoreOptions};
use std::io::{self, BufReader};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Makes sure the layer has a compressed blob to push: an uncompressed one (from load/import) is gzipped
/// once and the result recorded, so a second push sends the same bytes.
fn ensure_compressed(store: &Store, meta: &LayerMeta) -> Result<BlobRef> {
    let io = |path: &str| {
        let path = path.to_string();
        move |e: io::Error| Error::Store(StoreError::Io { path, source: e })
    };
    let kept = meta.blob.clone().filter(|b| store.has_blob(&b.digest));
    match kept {
        Some(b) if b.media_type != manifest::MEDIA_OCI_LAYER => Ok(b),
        Some(b) => {
            // Uncompressed (from load/import): gzip it once and record the result.
            let mut w = store.blob_writer()?;
            {
                let mut src = BufReader::new(store.open_blob(&b.digest)?);
                let mut gz = flate2::write::GzEncoder::new(&mut w, flate2::Compression::default());
                io::copy(&mut src, &mut gz).map_err(io(&b.digest))?;
                gz.finish().map_err(io(&b.digest))?;
            }
            let (digest, size) = w.commit(None)?;
            let nb = BlobRef {
                digest,
                media_type: manifest::MEDIA_DOCKER_LAYER_GZIP.into(),
                size,
            };
            let _g = store.write_lock()?;
            store.set_layer_blob(&meta.chain_id, nb.clone())?;
            Ok(nb)
        }
        None => {
            // No blob kept: regenerate the tar from the unpacked dir. It must reproduce the diff id the
            // image config names, or the pushed image would not verify.
            let dir = store.layer_diff_dir(&meta.chain_id)?;
            let mut w = store.blob_writer()?;
            let diff_id = {
                let gz = flate2::write::GzEncoder::new(&mut w, flate2::Compression::default());
                let mut hw = crate::digest::HashWriter::new(gz);
                crate::pack::pack(&dir, &mut hw).map_err(io(&meta.chain_id))?;
                let (d, _, gz) = hw.finish();
                gz.finish().map_err(io(&meta.chain_id))?;
                d
            };
            if diff_id != meta.diff_id {
                return Err(StoreError::DigestMismatch {
                    expected: meta.diff_id.clone(),
                    actual: diff_id,
                }
                .into());
            }
            let (digest, size) = w.commit(None)?;
            let nb = BlobRef {
                digest,
                media_type: manifest::MEDIA_DOCKER_LAYER_GZIP.into(),
                size,
            };
            let _g = store.write_lock()?;
            store.set_layer_blob(&meta.chain_id, nb.clone())?;
            Ok(nb)
        }
    }
}

/// Uploads a blob from the store unless the registry has it.
fn upload(
    c: &Client,
    store: &Store,
    path: &str,
    digest: &str,
    size: u64,
    scope: &[String],
) -> Result<()> {
    let loc = c.start_upload(path, scope)?;
    let file = store.blob_path(digest)?;
    c.finish_upload(&loc, digest, Body::File(file, size), scope)?;
    Ok(())
}

/// Makes one layer blob present in the repository: already there, mounted from another repository of the
/// same registry (recorded at pull or push), or uploaded (streamed from the store, never held in memory).
#[allow(clippy::too_many_arguments)]
fn push_layer(
    c: &Client,
    store: &Store,
    path: &str,
    scope: &[String],
    r: &Reference,
    meta: &LayerMeta,
    blob: &BlobRef,
    here: &LayerSource,
    progress: &dyn Progress,
) -> Result<()> {
    let id = short_id(&meta.chain_id);
    if c.blob_exists(path, &blob.digest, scope)? {
        progress.event(ProgressEvent::status(Some(&id), "Layer already exists"));
        return Ok(());
    }
    // A copy in another repository of the same registry can be mounted instead of uploaded.
    let other = meta.sources.iter().find(|s| {
        s.digest == blob.digest
            && s.repository != here.repository
            && Reference::parse(&s.repository)
                .map(|x| x.domain() == r.domain())
                .unwrap_or(false)
    });
    if let Some(src) = other {
        let from = Reference::parse(&src.repository)?;
        let mscope = Client::push_scope(path, Some(from.path()));
        match c.mount_blob(path, &blob.digest, from.path(), &mscope) {
            Ok(None) => {
                progress.event(ProgressEvent::status(
                    Some(&id),
                    format!("Mounted from {}", from.path()),
                ));
                return Ok(());
            }
            Ok(Some(loc)) => {
                progress.event(ProgressEvent::bytes(&id, "Pushing", 0, Some(blob.size)));
                c.finish_upload(
                    &loc,
                    &blob.digest,
                    Body::File(store.blob_path(&blob.digest)?, blob.size),
                    &mscope,
                )?;
                progress.event(ProgressEvent::status(Some(&id), "Pushed"));
                return Ok(());
            }
            Err(e) => log::debug!("mount of {} from {} failed: {e}", blob.digest, from.path()),
        }
    }
    progress.event(ProgressEvent::bytes(&id, "Pushing", 0, Some(blob.size)));
    upload(c, store, path, &blob.digest, blob.size, scope)?;
    progress.event(ProgressEvent::bytes(
        &id,
        "Pushing",
        blob.size,
        Some(blob.size),
    ));
    progress.event(ProgressEvent::status(Some(&id), "Pushed"));
    Ok(())
}

pub fn push(
    store: &Store,
    opts: &StoreOptions,
    reference: &str,
    auth: Option<&AuthConfig>,
    progress: &dyn Progress,
) -> Result<PushResult> {
    let r = Reference::parse_with_default_tag(reference)?;
    if r.digest().is_some() {
        return Err(Error::InvalidArgument(
            "cannot push a digest reference".into(),
        ));
    }
    let img = store.resolve(&r.familiar()).map_err(|_| {
        Error::NotFound(format!(
            "An image does not exist locally with the tag: {}",
            r.familiar_name()
        ))
    })?;
    let _pin = store.pin(img.chain_ids.iter().cloned().chain([img.id.clone()]));
    progress.event(ProgressEvent::status(
        None,
        format!("The push refers to repository [{}]", r.familiar_name()),
    ));
    let path = r.path().to_string();
    let c = Client::new(r.domain(), opts, auth)?;
    let scope = Client::push_scope(&path, None);
    let mut zstd = false;
    for chain in img.chain_ids.iter().rev() {
        progress.event(ProgressEvent::status(Some(&short_id(chain)), "Preparing"));
    }
    // Blobs first (sequential: an uncompressed layer is gzipped and recorded once), then the uploads in
    // parallel, as dockerd does (--max-concurrent-uploads, 5): the registry assembles layers independently.
    let mut layers = Vec::with_capacity(img.chain_ids.len());
    for chain in &img.chain_ids {
        let meta = store.layer(chain)?;
        let blob = ensure_compressed(store, &meta)?;
        zstd |= blob.media_type == manifest::MEDIA_OCI_LAYER_ZSTD;
        layers.push((meta, blob));
    }
    let here = |blob: &BlobRef| LayerSource {
        repository: r.name(),
        digest: blob.digest.clone(),
    };
    let slots = opts.max_concurrent_uploads.max(1);
    for (meta, _) in layers.iter().skip(slots) {
        progress.event(ProgressEvent::status(
            Some(&short_id(&meta.chain_id)),
            "Waiting",
        ));
    }
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..slots.min(layers.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= layers.len() || cancel.load(Ordering::Relaxed) {
                    break;
                }
                let (meta, blob) = &layers[i];
                let res = push_layer(
                    &c,
                    store,
                    &path,
                    &scope,
                    &r,
                    meta,
                    blob,
                    &here(blob),
                    progress,
                );
                if let Err(e) = res {
                    cancel.store(true, Ordering::Relaxed);
                    let mut fe = first_err.lock().unwrap_or_else(|e| e.into_inner());
                    if fe.is_none() {
                        *fe = Some(e);
                    }
                    break;
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut descs = Vec::with_capacity(layers.len());
    for (meta, blob) in &layers {
        store.add_layer_source(&meta.chain_id, here(blob))?;
        let mt = if zstd {
            blob.media_type.clone()
        } else {
            docker_media_type(&blob.media_type)
        };
        descs.push(Descriptor::new(&mt, &blob.digest, blob.size));
    }
    let cfg = store.read_blob(&img.id)?;
    if !c.blob_exists(&path, &img.id, &scope)? {
        let loc = c.start_upload(&path, &scope)?;
        c.finish_upload(
            &loc,
            &img.id,
            Body::Bytes(&cfg, "application/octet-stream"),
            &scope,
        )?;
    }
    let (mt, cfg_mt) = if zstd {
        for d in &mut descs {
            d.media_type = oci_media_type(&d.media_type);
        }
        (manifest::MEDIA_OCI_MANIFEST, manifest::MEDIA_OCI_CONFIG)
    } else {
        (
            manifest::MEDIA_DOCKER_MANIFEST,
            manifest::MEDIA_DOCKER_CONFIG,
        )
    };
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(mt.into()),
        config: Descriptor::new(cfg_mt, &img.id, cfg.len() as u64),
        layers: descs,
        annotations: None,
    };
    let body = serde_json::to_vec_pretty(&m).expect("serialisable");
    let digest = sha256_bytes(&body);
    let tag = r.tag().unwrap_or("latest").to_string();
    c.put_manifest(&path, &tag, mt, &body, &scope)?;
    store.set_manifest_digest(&img.id, &r, &digest)?;
    progress.event(ProgressEvent::status(
        None,
        format!("{tag}: digest: {digest} size: {}", body.len()),
    ));
    Ok(PushResult {
        tag,
        digest,
        size: body.len() as u64,
    })
}

fn docker_media_type(mt: &str) -> String {
    match mt {
        manifest::MEDIA_OCI_LAYER_GZIP => manifest::MEDIA_DOCKER_LAYER_GZIP.into(),
        other => other.into(),
    }
}

fn oci_media_type(mt: &str) -> String {
    match mt {
        manifest::MEDIA_DOCKER_LAYER_GZIP => manifest::MEDIA_OCI_LAYER_GZIP.into(),
        other => other.into(),
    }
}
