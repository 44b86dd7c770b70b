//! Image records (`image/images/<hex>.json`) and the name index (`image/repositories.json`): resolve, tag,
//! remove, list, inspect and history with docker's semantics.

use super::{fsync_dir, io_err, now_rfc3339, Store, StoreError};
use crate::config::ImageConfig;
use crate::digest::hex_part;
use crate::reference::Reference;
use crate::types::*;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::PathBuf;

/// What the store records about one image. Names are mirrored from `repositories.json`, which wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:<hex>` of the config blob.
    pub id: String,
    #[serde(default)]
    pub repo_tags: Vec<String>,
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// Manifest digest per full repository name the image was pulled from or pushed to.
    #[serde(default)]
    pub manifest_digests: BTreeMap<String, String>,
    /// Layer chain ids, lowest first.
    #[serde(default)]
    pub chain_ids: Vec<String>,
    /// Sum of the unpacked layer sizes.
    #[serde(default)]
    pub size: u64,
    /// When the record was created.
    #[serde(default)]
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tag_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// docker's `repositories.json`: familiar repository name → familiar reference → image id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoIndex {
    #[serde(rename = "Repositories", default)]
    pub repositories: BTreeMap<String, BTreeMap<String, String>>,
}

impl RepoIndex {
    fn set(&mut self, r: &Reference, id: &str) {
        self.repositories
            .entry(r.familiar_name())
            .or_default()
            .insert(index_key(r), id.into());
    }
    fn get(&self, r: &Reference) -> Option<&String> {
        self.repositories
            .get(&r.familiar_name())?
            .get(&index_key(r))
    }
    fn remove_key(&mut self, repo: &str, key: &str) {
        if let Some(m) = self.repositories.get_mut(repo) {
            m.remove(key);
            if m.is_empty() {
                self.repositories.remove(repo);
            }
        }
    }
    /// (repo, key) pairs pointing at `id`.
    fn refs_of(&self, id: &str) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for (repo, m) in &self.repositories {
            for (k, i) in m {
                if i == id {
                    v.push((repo.clone(), k.clone()));
                }
            }
        }
        v
    }
    /// Tags and digest references of `id`, familiar form, sorted.
    pub fn names_of(&self, id: &str) -> (Vec<String>, Vec<String>) {
        let (mut tags, mut digests) = (Vec::new(), Vec::new());
        for (_, k) in self.refs_of(id) {
            if k.contains('@') {
                digests.push(k);
            } else {
                tags.push(k);
            }
        }
        (tags, digests)
    }
}

/// `busybox:latest` or `busybox@sha256:...`.
fn index_key(r: &Reference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => format!("{}@{d}", r.familiar_name()),
        (None, Some(t)) => format!("{}:{t}", r.familiar_name()),
        (None, None) => format!("{}:latest", r.familiar_name()),
    }
}

/// How a user string matched an image.
enum Match {
    Ref { repo: String, key: String },
    Id,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn short(id: &str) -> String {
    crate::progress::short_id(id)
}

impl Store {
    fn index_path(&self) -> PathBuf {
        self.image_dir().join("repositories.json")
    }

    fn record_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        let h = hex_part(id).ok_or_else(|| StoreError::Corrupt {
            path: id.into(),
            msg: "not an image id".into(),
        })?;
        Ok(self.image_dir().join("images").join(format!("{h}.json")))
    }

    /// Reads the name index (empty when missing).
    pub fn load_index(&self) -> Result<RepoIndex, StoreError> {
        let p = self.index_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt {
                path: p.display().to_string(),
                msg: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RepoIndex::default()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    fn save_index(&self, idx: &RepoIndex) -> Result<(), StoreError> {
        self.write_atomic(
            &self.index_path(),
            &serde_json::to_vec_pretty(idx).expect("serialisable"),
        )
    }

    pub fn load_record(&self, id: &str) -> Result<Option<ImageRecord>, StoreError> {
        let p = self.record_path(id)?;
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    path: p.display().to_string(),
                    msg: e.to_string(),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    fn save_record(&self, r: &ImageRecord) -> Result<(), StoreError> {
        self.write_atomic(
            &self.record_path(&r.id)?,
            &serde_json::to_vec_pretty(r).expect("serialisable"),
        )
    }

    /// All image records (unreadable ones are skipped with a warning rather than failing every listing).
    pub fn records(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let d = self.image_dir().join("images");
        let mut out = Vec::new();
        for e in fs::read_dir(&d).map_err(io_err(&d))?.flatten() {
            let name = e.file_name();
            let Some(h) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            match self.load_record(&format!("sha256:{h}")) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(err) => log::warn!("image store: skipping {}: {err}", e.path().display()),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Keeps each record's name mirror in step with the index.
    fn sync_names(&self, idx: &RepoIndex, ids: &BTreeSet<String>) -> Result<(), StoreError> {
        for id in ids {
            if let Some(mut r) = self.load_record(id)? {
                let (t, d) = idx.names_of(id);
                if r.repo_tags != t || r.repo_digests != d {
                    r.repo_tags = t;
                    r.repo_digests = d;
                    self.save_record(&r)?;
                }
            }
        }
        Ok(())
    }

    fn find(&self, s: &str) -> Result<(String, Match)> {
        let not_found = || {
            let shown = Reference::parse_with_default_tag(s)
                .map(|r| r.familiar())
                .unwrap_or_else(|_| s.to_string());
            Error::NotFound(shown)
        };
        let id_prefix = s.strip_prefix("sha256:");
        if id_prefix.is_none() {
            match Reference::parse(s) {
                Ok(r) => {
                    let idx = self.load_index()?;
                    let r = if r.tag().is_none() && r.digest().is_none() {
                        r.with_tag("latest")
                    } else {
                        r
                    };
                    if let Some(id) = idx.get(&r) {
                        return Ok((
                            id.clone(),
                            Match::Ref {
                                repo: r.familiar_name(),
                                key: index_key(&r),
                            },
                        ));
                    }
                    if let (Some(d), Some(_)) = (r.digest(), r.tag()) {
                        let rd = r.with_digest(d);
                        if let Some(id) = idx.get(&rd) {
                            return Ok((
                                id.clone(),
                                Match::Ref {
                                    repo: rd.familiar_name(),
                                    key: index_key(&rd),
                                },
                            ));
                        }
                    }
                    if let Some(d) = r.digest() {
                        for rec in self.records()? {
                            if rec.manifest_digests.get(&r.name()).map(String::as_str) == Some(d) {
                                return Ok((rec.id, Match::Id));
                            }
                        }
                    }
                    if !is_hex(s) {
                        return Err(not_found());
                    }
                }
                Err(e) if !is_hex(s) => return Err(e.into()),
                Err(_) => {}
            }
        }
        let prefix = id_prefix.unwrap_or(s);
        if !is_hex(prefix) {
            return Err(not_found());
        }
        let d = self.image_dir().join("images");
        let mut hits = Vec::new();
        for e in fs::read_dir(&d)
            .map_err(io_err(&d))
            .map_err(Error::from)?
            .flatten()
        {
            if let Some(h) = e.file_name().to_str().and_then(|n| n.strip_suffix(".json")) {
                if h.starts_with(prefix) {
                    hits.push(format!("sha256:{h}"));
                }
            }
        }
        match hits.len() {
            0 => Err(not_found()),
            1 => Ok((hits.pop().expect("one hit"), Match::Id)),
            _ => Err(Error::InvalidArgument(format!(
                "multiple IDs found with provided prefix: {prefix}"
            ))),
        }
    }

    /// The image id a user string names.
    pub fn resolve_id(&self, s: &str) -> Result<String> {
        self.find(s).map(|(id, _)| id)
    }

    /// Builds the [`Image`] for an id.
    pub fn image(&self, id: &str) -> Result<Image> {
        let rec = self
            .load_record(id)?
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        let cfg_bytes = self.read_blob(id)?;
        let config = ImageConfig::from_slice(&cfg_bytes).map_err(|e| StoreError::Corrupt {
            path: id.into(),
            msg: e.to_string(),
        })?;
        let (repo_tags, repo_digests) = self.load_index()?.names_of(id);
        Ok(Image {
            id: rec.id,
            repo_tags,
            repo_digests,
            config,
            chain_ids: rec.chain_ids,
            size: rec.size,
        })
    }

    pub fn resolve(&self, s: &str) -> Result<Image> {
        let id = self.resolve_id(s)?;
        self.image(&id)
    }

    /// Records an image whose layers and config blob are in the store, and points `names` at it
    /// (tags move from other images). `manifest` is (full repository name, manifest digest) when pulled.
    pub fn put_image(
        &self,
        config: &[u8],
        names: &[Reference],
        manifest: Option<(&str, &str)>,
    ) -> Result<Image> {
        let cfg = ImageConfig::from_slice(config)
            .map_err(|e| Error::InvalidArgument(format!("invalid image config: {e}")))?;
        let chain_ids = super::layers::chain_ids(&cfg.rootfs.diff_ids);
        let _g = self.write_lock()?;
        let mut size = 0;
        for c in &chain_ids {
            size += self.layer(c)?.size;
        }
        let id = self.put_blob_bytes(config)?;
        let mut rec = self.load_record(&id)?.unwrap_or_else(|| ImageRecord {
            id: id.clone(),
            created: now_rfc3339(),
            parent: cfg.parent.clone().filter(|p| !p.is_empty()),
            ..Default::default()
        });
        rec.chain_ids = chain_ids;
        rec.size = size;
        if let Some((repo, d)) = manifest {
            rec.manifest_digests.insert(repo.to_string(), d.to_string());
        }
        if !names.is_empty() {
            rec.last_tag_time = Some(now_rfc3339());
        }
        self.save_record(&rec)?;
        let mut idx = self.load_index()?;
        let mut touched: BTreeSet<String> = [id.clone()].into();
        for n in names {
            if let Some(old) = idx.get(n) {
                touched.insert(old.clone());
            }
            idx.set(n, &id);
        }
        if !names.is_empty() {
            self.save_index(&idx)?;
        }
        self.sync_names(&idx, &touched)?;
        drop(_g);
        self.image(&id)
    }

    /// Records the manifest digest an image has in a repository (after push).
    pub fn set_manifest_digest(&self, id: &str, repo: &Reference, digest: &str) -> Result<()> {
        let _g = self.write_lock()?;
        let mut rec = self
            .load_record(id)?
            .ok_or_else(|| Error::NotFound(id.into()))?;
        rec.manifest_digests.insert(repo.name(), digest.into());
        self.save_record(&rec)?;
        let mut idx = self.load_index()?;
        idx.set(&repo.with_digest(digest), id);
        self.save_index(&idx)?;
        self.sync_names(&idx, &[id.to_string()].into())?;
        Ok(())
    }

    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let id = self.resolve_id(source)?;
        let t = Reference::parse_with_default_tag(target)?;
        if t.digest().is_some() {
            return Err(Error::InvalidArgument(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        let _g = self.write_lock()?;
        let mut idx = self.load_index()?;
        let mut touched: BTreeSet<String> = [id.clone()].into();
        if let Some(old) = idx.get(&t) {
            touched.insert(old.clone());
        }
        idx.set(&t, &id);
        self.save_index(&idx)?;
        if let Some(mut rec) = self.load_record(&id)? {
            rec.last_tag_time = Some(now_rfc3339());
            self.save_record(&rec)?;
        }
        self.sync_names(&idx, &touched)?;
        Ok(())
    }

    /// `docker rmi`.
    pub fn remove(&self, s: &str, force: bool) -> Result<Vec<RemoveEvent>> {
        let _g = self.write_lock()?;
        let (id, how) = self.find(s)?;
        let mut idx = self.load_index()?;
        let mut events = Vec::new();
        let records = self.records()?;
        let has_children = records
            .iter()
            .any(|r| r.parent.as_deref() == Some(id.as_str()));
        match how {
            Match::Ref { repo, key } => {
                idx.remove_key(&repo, &key);
                events.push(RemoveEvent::Untagged(key.clone()));
                if !key.contains('@') {
                    // Docker drops a repository's digest references together with its last tag there.
                    let refs = idx.refs_of(&id);
                    if !refs.iter().any(|(r, k)| r == &repo && !k.contains('@')) {
                        for (r, k) in refs
                            .into_iter()
                            .filter(|(r, k)| r == &repo && k.contains('@'))
                        {
                            idx.remove_key(&r, &k);
                            events.push(RemoveEvent::Untagged(k));
                        }
                    }
                }
                if !idx.refs_of(&id).is_empty() || has_children {
                    self.save_index(&idx)?;
                    self.sync_names(&idx, &[id].into())?;
                    return Ok(events);
                }
            }
            Match::Id => {
                if has_children {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                        short(&id)
                    )));
                }
                let refs = idx.refs_of(&id);
                let repos: BTreeSet<&String> = refs.iter().map(|(r, _)| r).collect();
                if repos.len() > 1 && !force {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        short(&id)
                    )));
                }
                for (r, k) in refs {
                    idx.remove_key(&r, &k);
                    events.push(RemoveEvent::Untagged(k));
                }
            }
        }
        self.save_index(&idx)?;
        let rec = self.load_record(&id)?;
        let rp = self.record_path(&id)?;
        fs::remove_file(&rp).map_err(io_err(&rp))?;
        fsync_dir(rp.parent().expect("images dir"))?;
        events.push(RemoveEvent::Deleted(id.clone()));
        // Release layers nobody else uses, top first, as docker reports them.
        let used: HashSet<String> = records
            .iter()
            .filter(|r| r.id != id)
            .flat_map(|r| r.chain_ids.iter().cloned())
            .collect();
        let pinned = self.pinned();
        if let Some(rec) = rec {
            for c in rec.chain_ids.iter().rev() {
                if !used.contains(c) && !pinned.contains(c) && self.has_layer(c) {
                    self.delete_layer(c)?;
                    events.push(RemoveEvent::Deleted(c.clone()));
                }
            }
        }
        if !pinned.contains(&id) {
            let _ = fs::remove_file(self.blob_path(&id)?);
        }
        Ok(events)
    }

    pub fn layer_dirs(&self, s: &str) -> Result<Vec<PathBuf>> {
        let img = self.resolve(s)?;
        img.chain_ids
            .iter()
            .map(|c| self.layer_diff_dir(c).map_err(Error::from))
            .collect()
    }

    fn summary(&self, rec: &ImageRecord, idx: &RepoIndex) -> Result<ImageSummary> {
        let cfg = ImageConfig::from_slice(&self.read_blob(&rec.id)?).map_err(|e| {
            StoreError::Corrupt {
                path: rec.id.clone(),
                msg: e.to_string(),
            }
        })?;
        let (repo_tags, repo_digests) = idx.names_of(&rec.id);
        Ok(ImageSummary {
            id: rec.id.clone(),
            parent_id: rec.parent.clone().unwrap_or_default(),
            repo_tags,
            repo_digests,
            created: cfg.created_unix(),
            size: rec.size as i64,
            shared_size: -1,
            virtual_size: rec.size as i64,
            labels: cfg.labels(),
            containers: -1,
        })
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let idx = self.load_index()?;
        let mut v = Vec::new();
        for rec in self.records()? {
            match self.summary(&rec, &idx) {
                Ok(s) => v.push(s),
                Err(e) => log::warn!("image store: skipping {}: {e}", rec.id),
            }
        }
        v.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    pub fn inspect(&self, s: &str) -> Result<ImageInspect> {
        let img = self.resolve(s)?;
        let rec = self.load_record(&img.id)?.unwrap_or_default();
        let c = &img.config;
        let mut dirs: Vec<PathBuf> = Vec::new();
        for ch in &img.chain_ids {
            dirs.push(self.layer_diff_dir(ch)?);
        }
        let mut data = BTreeMap::new();
        if let Some(top) = dirs.last() {
            let base = top.parent().expect("layer dir");
            data.insert("UpperDir".into(), top.display().to_string());
            data.insert(
                "MergedDir".into(),
                base.join("merged").display().to_string(),
            );
            data.insert("WorkDir".into(), base.join("work").display().to_string());
            let lower: Vec<String> = dirs[..dirs.len() - 1]
                .iter()
                .rev()
                .map(|d| d.display().to_string())
                .collect();
            if !lower.is_empty() {
                data.insert("LowerDir".into(), lower.join(":"));
            }
        }
        Ok(ImageInspect {
            id: img.id.clone(),
            repo_tags: img.repo_tags.clone(),
            repo_digests: img.repo_digests.clone(),
            parent: rec.parent.clone().unwrap_or_default(),
            comment: c.comment.clone().unwrap_or_default(),
            created: c.created.clone().unwrap_or_default(),
            docker_version: c.docker_version.clone().unwrap_or_default(),
            author: c.author.clone().unwrap_or_default(),
            config: c.config.clone(),
            architecture: c.architecture.clone().unwrap_or_default(),
            variant: c.variant.clone(),
            os: c.os.clone().unwrap_or_default(),
            os_version: c.os_version.clone(),
            size: img.size as i64,
            virtual_size: img.size as i64,
            graph_driver: GraphDriver {
                name: "overlay2".into(),
                data,
            },
            root_fs: InspectRootFs {
                kind: "layers".into(),
                layers: c.rootfs.diff_ids.clone(),
            },
            metadata: InspectMetadata {
                last_tag_time: rec
                    .last_tag_time
                    .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            },
        })
    }

    pub fn history(&self, s: &str) -> Result<Vec<HistoryItem>> {
        let img = self.resolve(s)?;
        let mut sizes = Vec::new();
        for ch in &img.chain_ids {
            sizes.push(self.layer(ch)?.size as i64);
        }
        let mut out = Vec::new();
        let ts = |c: &Option<String>| {
            c.as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .map(|t| t.timestamp())
                .unwrap_or(0)
        };
        if img.config.history.is_empty() {
            for s in &sizes {
                out.push(HistoryItem {
                    id: "<missing>".into(),
                    created: img.config.created_unix(),
                    created_by: String::new(),
                    tags: vec![],
                    size: *s,
                    comment: String::new(),
                });
            }
        } else {
            let mut layer = 0;
            for h in &img.config.history {
                let size = if h.empty_layer {
                    0
                } else {
                    layer += 1;
                    sizes.get(layer - 1).copied().unwrap_or(0)
                };
                out.push(HistoryItem {
                    id: "<missing>".into(),
                    created: ts(&h.created),
                    created_by: h.created_by.clone().unwrap_or_default(),
                    tags: vec![],
                    size,
                    comment: h.comment.clone().unwrap_or_default(),
                });
            }
        }
        out.reverse();
        if let Some(top) = out.first_mut() {
            top.id = img.id.clone();
            top.tags = img.repo_tags.clone();
        }
        Ok(out)
    }

    /// Removes dangling images (or all unused ones), then collects garbage.
    pub fn prune(&self, dangling_only: bool, in_use: &HashSet<String>) -> Result<PruneReport> {
        let idx = self.load_index()?;
        let records = self.records()?;
        let parents: HashSet<String> = records.iter().filter_map(|r| r.parent.clone()).collect();
        let mut report = PruneReport::default();
        for rec in &records {
            let (tags, _) = idx.names_of(&rec.id);
            let candidate = if dangling_only { tags.is_empty() } else { true };
            if !candidate || in_use.contains(&rec.id) || parents.contains(&rec.id) {
                continue;
            }
            match self.remove(&rec.id, true) {
                Ok(ev) => {
                    report.space_reclaimed += rec.size;
                    report.deleted.extend(ev);
                }
                Err(e) => log::warn!("image prune: {}: {e}", rec.id),
            }
        }
        let gc = self.gc()?;
        report.space_reclaimed = report.space_reclaimed.max(gc.bytes_freed);
        Ok(report)
    }
}
