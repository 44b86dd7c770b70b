//! `docker pull`: resolve the tag to a manifest (choosing the platform from an index), fetch the config,
//! then stream the missing layers in parallel straight through digest verification, decompression and
//! unpacking into the temp area, commit them in order in batches (one syncfs each), and record the image.

use super::client::Client;
use super::RegistryError;
use crate::config::ImageConfig;
use crate::digest::sha256_bytes;
use crate::layer::UnpackOptions;
use crate::manifest::{self, Manifest, Platform};
use crate::progress::{short_id, ProgressEvent};
use crate::reference::Reference;
use crate::store::{chain_ids, LayerSource, LayerSpec, Pins, StagedLayer, Store, StoreError};
use crate::{AuthConfig, Error, Image, Progress, Result, StoreOptions};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Reports bytes read and stops early when another download failed.
struct ProgressReader<'a, R> {
    inner: R,
    id: &'a str,
    total: Option<u64>,
    done: u64,
    last: u64,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            // Not ErrorKind::Interrupted: io::copy and read_exact retry those forever.
            return Err(io::Error::other("cancelled: another layer failed"));
        }
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.last >= 512 * 1024 || (n == 0 && self.done != self.last) {
            self.last = self.done;
            self.progress.event(ProgressEvent::bytes(
                self.id,
                "Downloading",
                self.done,
                self.total,
            ));
        }
        Ok(n)
    }
}

/// Reads a blob's body on a thread of its own while the caller's thread verifies, decompresses and unpacks:
/// they overlap on 2+ cores, and the HTTP client's 8 KiB socket reads are gathered into 1 MiB chunks, so
/// the decoder and the file writes downstream work on large buffers (an 8 KiB read fed straight in made
/// every inflate call, and every file write, small).
fn download_thread<'s, R: Read + Send + 's>(
    s: &'s std::thread::Scope<'s, '_>,
    mut body: R,
) -> crate::pipe::ChunkReader {
    let (tx, rx) = crate::pipe::pipe();
    // Errors travel down the pipe; a closed pipe means the unpacking side gave up with its own error.
    s.spawn(move || crate::pipe::pump(&mut body, &tx).ok());
    rx
}

/// Staged layers waiting for their turn to be committed.
/// A layer's state in a pull.
enum Slot<'a> {
    /// Downloading or waiting.
    Pending,
    Staged(Box<StagedLayer<'a>>),
    /// In the store (committed, or there before the pull).
    Done,
}

struct Commits<'a> {
    staged: Vec<Slot<'a>>,
    /// Index of the first layer not yet committed.
    next: usize,
    /// A worker is committing a batch; others leave theirs for it to pick up when done.
    busy: bool,
    pins: Vec<Pins<'a>>,
}

fn lock<'m, T>(m: &'m Mutex<T>) -> std::sync::MutexGuard<'m, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Commits the staged layers that continue the committed prefix, repeating while more become ready. Only
/// one thread commits at a time, so layers enter the store in order (a layer's parent is always there).
fn commit_ready<'a>(
    store: &'a Store,
    commits: &Mutex<Commits<'a>>,
    layers: &[crate::manifest::Descriptor],
    progress: &dyn Progress,
) -> Result<()> {
    loop {
        let (idx, batch) = {
            let mut c = lock(commits);
            if c.busy {
                return Ok(());
            }
            let mut idx = Vec::new();
            let mut batch = Vec::new();
            while c.next < c.staged.len() {
                let n = c.next;
                match std::mem::replace(&mut c.staged[n], Slot::Done) {
                    Slot::Staged(st) => {
                        idx.push(n);
                        batch.push(*st);
                    }
                    Slot::Done => {}
                    Slot::Pending => {
                        c.staged[n] = Slot::Pending;
                        break;
                    }
                }
                c.next += 1;
            }
            if batch.is_empty() {
                return Ok(());
            }
            c.busy = true;
            (idx, batch)
        };
        let res = store.commit_layers(batch);
        {
            // After a failed commit `busy` stays set: nothing above a missing layer may be committed.
            let (_, pins) = res?;
            let mut c = lock(commits);
            c.busy = false;
            c.pins.extend(pins);
        }
        for i in idx {
            progress.event(ProgressEvent::status(
                Some(&short_id(&layers[i].digest)),
                "Pull complete",
            ));
        }
    }
}

/// Fetches and verifies a manifest by tag or digest.
fn fetch_manifest(
    c: &Client,
    path: &str,
    reference: &str,
    scope: &[String],
) -> Result<(Vec<u8>, Option<String>, String)> {
    let (body, ct, _hdr) = c.get_manifest(path, reference, scope)?;
    let digest = sha256_bytes(&body);
    if reference.starts_with("sha256:") && reference != digest {
        return Err(StoreError::DigestMismatch {
            expected: reference.into(),
            actual: digest,
        }
        .into());
    }
    Ok((body, ct, digest))
}

pub fn pull(
    store: &Store,
    opts: &StoreOptions,
    reference: &str,
    platform: Option<&Platform>,
    auth: Option<&AuthConfig>,
    progress: &dyn Progress,
) -> Result<Image> {
    let r = Reference::parse_with_default_tag(reference)?;
    let want = platform.cloned().unwrap_or_else(Platform::host);
    let c = Client::new(r.domain(), opts, auth)?;
    let path = r.path().to_string();
    let scope = Client::pull_scope(&path);
    let shown_ref = r.reference_for_registry();
    progress.event(ProgressEvent::status(
        Some(r.tag().unwrap_or(&shown_ref)),
        format!("Pulling from {path}"),
    ));

    let (body, ct, top_digest) = match fetch_manifest(&c, &path, &shown_ref, &scope) {
        Err(Error::Registry(RegistryError::NotFound { msg, .. })) => {
            return Err(Error::Registry(RegistryError::NotFound {
                what: format!("manifest for {}", r.familiar()),
                msg,
            }))
        }
        other => other?,
    };
    let m = match manifest::parse(ct.as_deref(), &body)? {
        Manifest::Image(m) => m,
        Manifest::Index(idx) => {
            let d = manifest::select(&idx, &want)?.clone();
            let (b, ct, _) = fetch_manifest(&c, &path, &d.digest, &scope)?;
            match manifest::parse(ct.as_deref(), &b)? {
                Manifest::Image(m) => m,
                Manifest::Index(_) => {
                    return Err(manifest::ManifestError::Invalid("nested index".into()).into())
                }
            }
        }
    };
    let cfg_bytes = c.get_blob_bytes(&path, &m.config.digest, &scope)?;
    let cfg_digest = sha256_bytes(&cfg_bytes);
    if cfg_digest != m.config.digest {
        return Err(StoreError::DigestMismatch {
            expected: m.config.digest.clone(),
            actual: cfg_digest,
        }
        .into());
    }
    let cfg = ImageConfig::from_slice(&cfg_bytes)
        .map_err(|e| manifest::ManifestError::Invalid(format!("image config: {e}")))?;
    if cfg.rootfs.diff_ids.len() != m.layers.len() {
        return Err(manifest::ManifestError::Invalid(format!(
            "manifest has {} layers but the config {} diff ids",
            m.layers.len(),
            cfg.rootfs.diff_ids.len()
        ))
        .into());
    }
    for l in &m.layers {
        if !manifest::is_layer_media_type(&l.media_type) {
            return Err(manifest::ManifestError::UnsupportedMediaType(l.media_type.clone()).into());
        }
    }
    let existed = store.resolve_id(&r.familiar()).ok();
    let chains = chain_ids(&cfg.rootfs.diff_ids);
    let _pin = store.pin(chains.clone());

    // Queue the missing layers; announce all as docker does.
    let mut queue = VecDeque::new();
    for (i, l) in m.layers.iter().enumerate() {
        let id = short_id(&l.digest);
        if store.has_layer(&chains[i]) {
            progress.event(ProgressEvent::status(Some(&id), "Already exists"));
        } else {
            progress.event(ProgressEvent::status(Some(&id), "Pulling fs layer"));
            queue.push_back(i);
        }
    }
    // Layers beyond the download slots wait, as docker reports them.
    for &i in queue.iter().skip(opts.max_concurrent_downloads.max(1)) {
        progress.event(ProgressEvent::status(
            Some(&short_id(&m.layers[i].digest)),
            "Waiting",
        ));
    }
    // Layers are staged as they arrive and committed in order, in batches: each batch costs one syncfs
    // (see commit_layers), and a layer committed before a crash or failure is reused by the next pull.
    let commits = Mutex::new(Commits {
        // Layers already in the store count as committed.
        staged: (0..m.layers.len())
            .map(|i| {
                if queue.contains(&i) {
                    Slot::Pending
                } else {
                    Slot::Done
                }
            })
            .collect(),
        next: 0,
        busy: false,
        pins: Vec::new(),
    });
    let queue = Mutex::new(queue);
    let cancel = AtomicBool::new(false);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    let uopts = UnpackOptions {
        max_size: opts.max_layer_size,
    };
    let workers = opts
        .max_concurrent_downloads
        .max(1)
        .min(queue.lock().map(|q| q.len()).unwrap_or(1).max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some(i) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                    break;
                };
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                let l = &m.layers[i];
                let id = short_id(&l.digest);
                let res = std::thread::scope(|ds| -> Result<()> {
                    let resp = c.get_blob(&path, &l.digest, &scope)?;
                    let pr = ProgressReader {
                        inner: resp.body,
                        id: &id,
                        total: u64::try_from(l.size).ok(),
                        done: 0,
                        last: 0,
                        progress,
                        cancel: &cancel,
                    };
                    let parent = (i > 0).then(|| chains[i - 1].as_str());
                    let spec = LayerSpec {
                        parent,
                        digest: Some(&l.digest),
                        diff_id: Some(&cfg.rootfs.diff_ids[i]),
                        source: Some(LayerSource {
                            repository: r.name(),
                            digest: l.digest.clone(),
                        }),
                    };
                    let mut body = download_thread(ds, pr);
                    let st = store.stage_layer(&mut body, spec, uopts)?;
                    progress.event(ProgressEvent::status(Some(&id), "Verifying Checksum"));
                    progress.event(ProgressEvent::status(Some(&id), "Download complete"));
                    lock(&commits).staged[i] = Slot::Staged(Box::new(st));
                    commit_ready(store, &commits, &m.layers, progress)
                });
                if let Err(e) = res {
                    cancel.store(true, Ordering::Relaxed);
                    let mut fe = first_err.lock().unwrap_or_else(|e| e.into_inner());
                    // Keep the root cause, not the "cancelled" echo from other threads.
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
    // Every layer was committed by the worker that completed the prefix; this only catches a straggler.
    commit_ready(store, &commits, &m.layers, progress)?;
    let _layer_pins = commits.into_inner().unwrap_or_else(|e| e.into_inner()).pins;
    let mut names = vec![r.with_digest(&top_digest)];
    if r.digest().is_none() {
        names.insert(0, r.clone());
    }
    let img = store.put_image(&cfg_bytes, &names, Some((&r.name(), &top_digest)))?;
    progress.event(ProgressEvent::status(None, format!("Digest: {top_digest}")));
    let status = if existed.as_deref() == Some(img.id.as_str()) {
        format!("Status: Image is up to date for {}", r.familiar())
    } else {
        format!("Status: Downloaded newer image for {}", r.familiar())
    };
    progress.event(ProgressEvent::status(None, status));
    Ok(img)
}
