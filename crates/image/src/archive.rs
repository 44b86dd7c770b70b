//! `docker save` / `docker load`.
//!
//! `save` writes docker ≥25's layout, which is both a docker-archive (`manifest.json`) and an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/`), with uncompressed layers named by diff id.
//! `load` reads that, the older docker-archive layout (`<id>/layer.tar`, `<id>.json`), skopeo's
//! docker-archive output and plain OCI layout tarballs, optionally gzip/zstd compressed as a whole.

use crate::config::ImageConfig;
use crate::digest::{hex_part, sha256_bytes};
use crate::layer::{decompress, UnpackOptions};
use crate::manifest::{self, Descriptor, ImageIndex, ImageManifest, Manifest, Platform};
use crate::progress::{short_id, ProgressEvent};
use crate::reference::Reference;
use crate::store::{LayerSpec, Store};
use crate::{Image, LoadedImage, Progress, Result, StoreOptions};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

pub use crate::import::import;

/// Errors reading or writing image archives.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("invalid archive: {0}")]
    Invalid(String),
    #[error("archive: {0}")]
    Io(#[from] io::Error),
}

fn invalid(m: impl Into<String>) -> crate::Error {
    ArchiveError::Invalid(m.into()).into()
}

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn tar_header(path: &str, size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

fn add_bytes(b: &mut tar::Builder<&mut dyn Write>, path: &str, data: &[u8]) -> io::Result<()> {
    let h = tar_header(path, data.len() as u64, false);
    b.append_data(&mut h.clone(), path, data)
}

/// Tags of `img` that `reference` selects for `save`: the tag named, all tags of a repository named
/// without a tag, none for an id.
fn save_tags(store: &Store, reference: &str, img: &Image) -> Vec<String> {
    let by_id = reference.starts_with("sha256:")
        || img.id.trim_start_matches("sha256:").starts_with(reference);
    if by_id {
        return vec![];
    }
    match Reference::parse(reference) {
        Ok(r) if r.tag().is_some() => vec![r.familiar()],
        Ok(r) if r.digest().is_none() => {
            let name = r.familiar_name();
            img.repo_tags
                .iter()
                .filter(|t| t.rsplit_once(':').map(|(n, _)| n) == Some(name.as_str()))
                .cloned()
                .collect()
        }
        _ => {
            let _ = store;
            vec![]
        }
    }
}

pub fn save(store: &Store, references: &[&str], out: &mut dyn Write) -> Result<()> {
    let mut images: Vec<(Image, Vec<String>)> = Vec::new();
    for r in references {
        let img = store.resolve(r)?;
        let tags = save_tags(store, r, &img);
        match images.iter_mut().find(|(i, _)| i.id == img.id) {
            Some((_, t)) => t.extend(tags),
            None => images.push((img, tags)),
        }
    }
    let _pin = store.pin(images.iter().flat_map(|(i, _)| i.chain_ids.clone()));
    let mut b = tar::Builder::new(out);
    for d in ["blobs/", "blobs/sha256/"] {
        b.append(&tar_header(d, 0, true), io::empty())
            .map_err(ArchiveError::from)?;
    }
    let mut written: HashSet<String> = HashSet::new();
    let mut layer_sizes: HashMap<String, u64> = HashMap::new();
    let mut entries = Vec::new();
    let mut index = ImageIndex {
        schema_version: 2,
        media_type: Some(manifest::MEDIA_OCI_INDEX.into()),
        manifests: vec![],
        annotations: None,
    };
    for (img, tags) in &images {
        let cfg = store.read_blob(&img.id)?;
        let mut layers = Vec::new();
        for chain in &img.chain_ids {
            let meta = store.layer(chain)?;
            let path = format!(
                "blobs/sha256/{}",
                hex_part(&meta.diff_id).unwrap_or_default()
            );
            let size = match layer_sizes.get(&meta.diff_id) {
                Some(n) => *n,
                None => {
                    // The uncompressed tar's size is needed before its header: decompress into a temp file.
                    let tmp = store.temp_path("save");
                    let mut f = File::options()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&tmp.path)
                        .map_err(ArchiveError::from)?;
                    let n = store.layer_tar(&meta, &mut f)?;
                    f.rewind().map_err(ArchiveError::from)?;
                    b.append(&tar_header(&path, n, false), &mut f)
                        .map_err(ArchiveError::from)?;
                    written.insert(path.clone());
                    layer_sizes.insert(meta.diff_id.clone(), n);
                    n
                }
            };
            layers.push(Descriptor::new(
                manifest::MEDIA_OCI_LAYER,
                &meta.diff_id,
                size,
            ));
        }
        let cfg_path = format!("blobs/sha256/{}", hex_part(&img.id).unwrap_or_default());
        if written.insert(cfg_path.clone()) {
            add_bytes(&mut b, &cfg_path, &cfg).map_err(ArchiveError::from)?;
        }
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(manifest::MEDIA_OCI_MANIFEST.into()),
            config: Descriptor::new(manifest::MEDIA_OCI_CONFIG, &img.id, cfg.len() as u64),
            layers: layers.clone(),
            annotations: None,
        };
        let mb = serde_json::to_vec(&m).expect("serialisable");
        let md = sha256_bytes(&mb);
        let mpath = format!("blobs/sha256/{}", hex_part(&md).unwrap_or_default());
        if written.insert(mpath.clone()) {
            add_bytes(&mut b, &mpath, &mb).map_err(ArchiveError::from)?;
        }
        let mut desc = Descriptor::new(manifest::MEDIA_OCI_MANIFEST, &md, mb.len() as u64);
        if tags.is_empty() {
            index.manifests.push(desc);
        } else {
            for t in tags {
                let r = Reference::parse_with_default_tag(t)?;
                desc.annotations = Some(BTreeMap::from([
                    ("io.containerd.image.name".to_string(), r.to_string()),
                    (
                        "org.opencontainers.image.ref.name".to_string(),
                        r.tag().unwrap_or("latest").to_string(),
                    ),
                ]));
                index.manifests.push(desc.clone());
            }
        }
        entries.push(ArchiveManifestEntry {
            config: cfg_path,
            repo_tags: Some(tags.clone()),
            layers: layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", hex_part(&l.digest).unwrap_or_default()))
                .collect(),
        });
    }
    add_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(ArchiveError::from)?;
    add_bytes(
        &mut b,
        "index.json",
        &serde_json::to_vec(&index).expect("serialisable"),
    )
    .map_err(ArchiveError::from)?;
    add_bytes(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&entries).expect("serialisable"),
    )
    .map_err(ArchiveError::from)?;
    b.finish().map_err(ArchiveError::from)?;
    Ok(())
}

/// The archive unpacked into a temp dir: regular files only, with symlinks kept as aliases.
struct Extracted {
    dir: PathBuf,
    aliases: HashMap<PathBuf, PathBuf>,
}

impl Extracted {
    fn resolve(&self, rel: &str) -> Result<PathBuf> {
        let mut p = clean(rel).ok_or_else(|| invalid(format!("bad path {rel:?} in archive")))?;
        for _ in 0..16 {
            match self.aliases.get(&p) {
                Some(t) => p = t.clone(),
                None => return Ok(self.dir.join(p)),
            }
        }
        Err(invalid(format!("symlink loop at {rel:?}")))
    }
    fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let p = self.resolve(rel)?;
        fs::read(&p).map_err(|e| invalid(format!("{rel}: {e}")))
    }
    fn exists(&self, rel: &str) -> bool {
        self.resolve(rel).map(|p| p.is_file()).unwrap_or(false)
    }
}

fn clean(rel: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn extract(input: &mut dyn Read, dir: &Path) -> Result<Extracted> {
    let (_, dec) = decompress(BufReader::new(input)).map_err(ArchiveError::from)?;
    let mut ar = tar::Archive::new(dec);
    let mut aliases = HashMap::new();
    for e in ar.entries().map_err(ArchiveError::from)? {
        let mut e = e.map_err(ArchiveError::from)?;
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let Some(rel) = clean(&raw) else { continue };
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let p = dir.join(&rel);
                fs::create_dir_all(p.parent().expect("joined")).map_err(ArchiveError::from)?;
                let mut f = File::create(&p).map_err(ArchiveError::from)?;
                io::copy(&mut e, &mut f).map_err(ArchiveError::from)?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                let base = if e.header().entry_type() == tar::EntryType::Symlink {
                    rel.parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                if let Some(t) = clean(format!("{base}/{target}").trim_start_matches('/')) {
                    aliases.insert(rel, t);
                }
            }
            _ => {}
        }
    }
    Ok(Extracted {
        dir: dir.to_path_buf(),
        aliases,
    })
}

pub fn load(
    store: &Store,
    opts: &StoreOptions,
    input: &mut dyn Read,
    progress: &dyn Progress,
) -> Result<Vec<LoadedImage>> {
    let tmp = store.temp_path("load");
    fs::create_dir(&tmp.path).map_err(ArchiveError::from)?;
    let x = extract(input, &tmp.path)?;
    let uopts = UnpackOptions {
        max_size: opts.max_layer_size,
    };
    let mut out = Vec::new();
    if x.exists("manifest.json") {
        let entries: Vec<ArchiveManifestEntry> = serde_json::from_slice(&x.read("manifest.json")?)
            .map_err(|e| invalid(format!("manifest.json: {e}")))?;
        for ent in entries {
            let cfg = x.read(&ent.config)?;
            let tags = ent.repo_tags.clone().unwrap_or_default();
            let img = load_one(store, uopts, &cfg, &tags, progress, |i| {
                let p = x.resolve(
                    ent.layers
                        .get(i)
                        .ok_or_else(|| invalid("fewer layers than diff_ids"))?,
                )?;
                Ok((File::open(&p).map_err(ArchiveError::from)?, None))
            })?;
            report(&mut out, &img, &tags);
        }
    } else if x.exists("index.json") {
        let idx: ImageIndex = serde_json::from_slice(&x.read("index.json")?)
            .map_err(|e| invalid(format!("index.json: {e}")))?;
        let mut todo: Vec<(Descriptor, Option<String>)> =
            idx.manifests.into_iter().map(|d| (d, None)).collect();
        while let Some((d, inherited)) = todo.pop() {
            let blob = |dg: &str| -> Result<PathBuf> {
                x.resolve(&format!(
                    "blobs/sha256/{}",
                    hex_part(dg).ok_or_else(|| invalid("bad digest"))?
                ))
            };
            let body = fs::read(blob(&d.digest)?).map_err(ArchiveError::from)?;
            if sha256_bytes(&body) != d.digest {
                return Err(crate::store::StoreError::DigestMismatch {
                    expected: d.digest.clone(),
                    actual: sha256_bytes(&body),
                }
                .into());
            }
            let name = oci_name(&d).or(inherited);
            match manifest::parse(Some(&d.media_type), &body)? {
                Manifest::Index(sub) => {
                    let sel = manifest::select(&sub, &Platform::host())
                        .cloned()
                        .or_else(|_| {
                            sub.manifests
                                .first()
                                .cloned()
                                .ok_or_else(|| invalid("empty index"))
                        })?;
                    todo.push((sel, name));
                }
                Manifest::Image(m) => {
                    let cfg = fs::read(blob(&m.config.digest)?).map_err(ArchiveError::from)?;
                    let tags: Vec<String> = name.into_iter().collect();
                    let img = load_one(store, uopts, &cfg, &tags, progress, |i| {
                        let l = m
                            .layers
                            .get(i)
                            .ok_or_else(|| invalid("fewer layers than diff_ids"))?;
                        Ok((
                            File::open(blob(&l.digest)?).map_err(ArchiveError::from)?,
                            Some(l.digest.clone()),
                        ))
                    })?;
                    report(&mut out, &img, &tags);
                }
            }
        }
    } else {
        return Err(invalid(
            "no manifest.json or index.json: not a docker-archive or OCI layout",
        ));
    }
    Ok(out)
}

fn report(out: &mut Vec<LoadedImage>, img: &Image, tags: &[String]) {
    if tags.is_empty() {
        out.push(LoadedImage::Id(img.id.clone()));
    }
    for t in tags {
        let shown = Reference::parse_with_default_tag(t)
            .map(|r| r.familiar())
            .unwrap_or_else(|_| t.clone());
        out.push(LoadedImage::Tag(shown));
    }
}

/// The image name an OCI index entry carries.
fn oci_name(d: &Descriptor) -> Option<String> {
    let a = d.annotations.as_ref()?;
    if let Some(n) = a.get("io.containerd.image.name") {
        return Some(n.clone());
    }
    let r = a.get("org.opencontainers.image.ref.name")?;
    // A bare tag ("latest") names no repository; only full references are usable.
    (r.contains('/') || r.contains(':'))
        .then(|| r.clone())
        .filter(|r| Reference::parse(r).is_ok())
}

/// Loads one image given its config and a way to open its i-th layer (with the expected blob digest).
fn load_one(
    store: &Store,
    uopts: UnpackOptions,
    cfg_bytes: &[u8],
    tags: &[String],
    progress: &dyn Progress,
    open_layer: impl Fn(usize) -> Result<(File, Option<String>)>,
) -> Result<Image> {
    let cfg =
        ImageConfig::from_slice(cfg_bytes).map_err(|e| invalid(format!("image config: {e}")))?;
    let chains = crate::store::chain_ids(&cfg.rootfs.diff_ids);
    let _pin = store.pin(chains.clone());
    let mut parent: Option<&str> = None;
    for (i, (diff, chain)) in cfg.rootfs.diff_ids.iter().zip(&chains).enumerate() {
        let id = short_id(diff);
        if store.has_layer(chain) {
            progress.event(ProgressEvent::status(Some(&id), "Already exists"));
        } else {
            progress.event(ProgressEvent::status(Some(&id), "Loading layer"));
            let (mut f, digest) = open_layer(i)?;
            store.create_layer(
                &mut f,
                LayerSpec {
                    parent,
                    digest: digest.as_deref(),
                    diff_id: Some(diff),
                    source: None,
                },
                uopts,
            )?;
        }
        parent = Some(chain);
    }
    let names: Vec<Reference> = tags
        .iter()
        .map(|t| Reference::parse_with_default_tag(t))
        .collect::<Result<_, _>>()?;
    store.put_image(cfg_bytes, &names, None)
}
