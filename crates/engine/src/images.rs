//! A minimal local image store, a stop-gap adapter until berth-image's `ImageStore` lands: `import` of a rootfs
//! tarball as a one-layer image, tags, lookup by name/id/prefix, layer dirs for overlay, removal.
//!
//! Layout: `<data-root>/image/engine-adapter/{images/<hex>.json, repositories.json}`; each layer is unpacked into
//! `<data-root>/overlay2/<diff-id hex>/diff`, the same place berth-image puts layers.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::record::{now_rfc3339, read_json, write_json, RecordError};

/// Errors from the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image matches the reference.
    #[error("No such image: {0}")]
    NotFound(String),
    /// An id prefix matches several images.
    #[error("ambiguous image reference {0:?}: matches several images")]
    Ambiguous(String),
    /// The reference is malformed.
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    /// A `changes` instruction is not understood.
    #[error("invalid change {0:?}: {1}")]
    InvalidChange(String, String),
    /// The tarball could not be unpacked.
    #[error("importing layer: {0}")]
    Unpack(io::Error),
    /// Filesystem error.
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    /// A record could not be read or written.
    #[error(transparent)]
    Record(#[from] RecordError),
}

type Result<T> = std::result::Result<T, ImageError>;

/// One image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:<hex of the config>`.
    pub id: String,
    /// `name:tag` references pointing at it.
    pub repo_tags: Vec<String>,
    /// `name@sha256:...` digests, when pulled.
    pub repo_digests: Vec<String>,
    /// Creation time from the config.
    pub created: String,
    /// Bytes of all layers.
    pub size: u64,
    /// The OCI/docker image config.
    pub config: Value,
    /// Layer diff ids (hex, bottom first).
    pub layers: Vec<String>,
}

impl ImageRecord {
    /// The container-config part (`config` key) of the image config.
    pub fn container_config(&self) -> &Value {
        &self.config["config"]
    }
}

/// The store.
#[derive(Debug, Clone)]
pub struct Images {
    data_root: PathBuf,
    dir: PathBuf,
}

/// Splits a reference into (familiar name, tag), with docker's normalisation: `docker.io/library/x` → `x`,
/// missing tag → `latest`.
pub fn normalize(reference: &str) -> Result<String> {
    let r = reference.trim();
    if r.is_empty() || r.contains(char::is_whitespace) || r.chars().any(|c| c.is_ascii_uppercase())
    {
        return Err(ImageError::InvalidReference(reference.to_string()));
    }
    let r = r
        .strip_prefix("docker.io/library/")
        .or_else(|| r.strip_prefix("docker.io/"))
        .unwrap_or(r);
    let r = r.strip_prefix("index.docker.io/library/").unwrap_or(r);
    let (name, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    if let Some(d) = digest {
        return Ok(format!("{name}@{d}"));
    }
    // A colon after the last slash is a tag (a colon before it is a registry port).
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        Ok(name.to_string())
    } else {
        Ok(format!("{name}:latest"))
    }
}

impl Images {
    /// Opens (creating) the store under `data_root`.
    pub fn open(data_root: &Path) -> Result<Self> {
        let dir = data_root.join("image").join("engine-adapter");
        for d in [dir.join("images"), data_root.join("overlay2")] {
            fs::create_dir_all(&d).map_err(|e| ImageError::Io(d.clone(), e))?;
        }
        Ok(Self {
            data_root: data_root.to_path_buf(),
            dir,
        })
    }

    fn repos_path(&self) -> PathBuf {
        self.dir.join("repositories.json")
    }

    fn repos(&self) -> BTreeMap<String, String> {
        read_json(&self.repos_path()).unwrap_or_default()
    }

    fn image_path(&self, id: &str) -> PathBuf {
        self.dir
            .join("images")
            .join(format!("{}.json", id.strip_prefix("sha256:").unwrap_or(id)))
    }

    fn load(&self, id: &str) -> Result<ImageRecord> {
        let mut img: ImageRecord = read_json(&self.image_path(id))?;
        img.repo_tags = self
            .repos()
            .into_iter()
            .filter(|(_, v)| v == &img.id)
            .map(|(k, _)| k)
            .collect();
        Ok(img)
    }

    /// All images.
    pub fn list(&self) -> Vec<ImageRecord> {
        let Ok(rd) = fs::read_dir(self.dir.join("images")) else {
            return vec![];
        };
        let mut out: Vec<ImageRecord> = rd
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(String::from)
            })
            .filter_map(|hex| self.load(&format!("sha256:{hex}")).ok())
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created));
        out
    }

    /// Finds an image by `name[:tag]`, full id, `sha256:` id or unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord> {
        if let Ok(n) = normalize(reference) {
            if let Some(id) = self.repos().get(&n) {
                return self.load(id);
            }
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            let hits: Vec<ImageRecord> = self
                .list()
                .into_iter()
                .filter(|i| i.id["sha256:".len()..].starts_with(hex))
                .collect();
            match hits.len() {
                0 => {}
                1 => return Ok(hits.into_iter().next().expect("one hit")),
                _ => return Err(ImageError::Ambiguous(reference.to_string())),
            }
        }
        Err(ImageError::NotFound(reference.to_string()))
    }

    /// The overlay lower dirs of an image, top-most first.
    pub fn layer_dirs(&self, img: &ImageRecord) -> Vec<PathBuf> {
        img.layers
            .iter()
            .rev()
            .map(|l| self.data_root.join("overlay2").join(l).join("diff"))
            .collect()
    }

    /// Points `repo:tag` at `id`.
    pub fn tag(&self, id: &str, reference: &str) -> Result<()> {
        let n = normalize(reference)?;
        let mut repos = self.repos();
        repos.insert(n, id.to_string());
        write_json(&self.repos_path(), &repos)?;
        Ok(())
    }

    /// Removes a tag; returns whether it existed.
    pub fn untag(&self, reference: &str) -> Result<bool> {
        let n = normalize(reference)?;
        let mut repos = self.repos();
        let had = repos.remove(&n).is_some();
        write_json(&self.repos_path(), &repos)?;
        Ok(had)
    }

    /// Deletes an image record and the layers no other image uses.
    pub fn delete(&self, id: &str) -> Result<()> {
        let img = self.load(id)?;
        let mut repos = self.repos();
        repos.retain(|_, v| v != &img.id);
        write_json(&self.repos_path(), &repos)?;
        let _ = fs::remove_file(self.image_path(id));
        let used: Vec<String> = self.list().into_iter().flat_map(|i| i.layers).collect();
        for l in img.layers.iter().filter(|l| !used.contains(l)) {
            let d = self.data_root.join("overlay2").join(l);
            let _ = fs::remove_dir_all(&d);
        }
        Ok(())
    }

    /// Imports a (possibly gzipped) rootfs tarball as a one-layer image, applying docker `changes`
    /// (`CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`, `LABEL`, `EXPOSE`), tagging it as `reference` if given.
    pub fn import(
        &self,
        input: impl Read,
        reference: Option<&str>,
        changes: &[String],
        message: &str,
    ) -> Result<ImageRecord> {
        let reference = reference.map(normalize).transpose()?;
        let mut cfg = json!({});
        for c in changes {
            apply_change(&mut cfg, c)?;
        }
        let mut input = io::BufReader::new(input);
        let gz = {
            use io::BufRead;
            let head = input.fill_buf().map_err(ImageError::Unpack)?;
            head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
        };
        let tmp = self
            .data_root
            .join("overlay2")
            .join(format!("tmp-import-{}", crate::names::new_id()));
        let diff = tmp.join("diff");
        fs::create_dir_all(&diff).map_err(|e| ImageError::Io(diff.clone(), e))?;
        let result = (|| -> io::Result<String> {
            let raw: Box<dyn Read> = if gz {
                Box::new(flate2::read::GzDecoder::new(input))
            } else {
                Box::new(input)
            };
            let mut hashing = HashingReader {
                inner: raw,
                hash: Sha256::new(),
            };
            {
                let mut ar = tar::Archive::new(&mut hashing);
                ar.set_preserve_permissions(true);
                ar.set_preserve_ownerships(true);
                ar.set_unpack_xattrs(false);
                ar.set_overwrite(true);
                ar.unpack(&diff)?;
            }
            // Hash the tar's trailing padding too, so the digest is of the whole stream.
            io::copy(&mut hashing, &mut io::sink())?;
            Ok(hex::encode(hashing.hash.finalize()))
        })();
        let diff_hex = match result {
            Ok(h) => h,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(ImageError::Unpack(e));
            }
        };
        let layer_dir = self.data_root.join("overlay2").join(&diff_hex);
        if layer_dir.exists() {
            let _ = fs::remove_dir_all(&tmp);
        } else {
            fs::rename(&tmp, &layer_dir).map_err(|e| ImageError::Io(layer_dir.clone(), e))?;
        }
        let size = berth_storage::dir_size(&layer_dir.join("diff"));
        let created = now_rfc3339();
        let config = json!({
            "architecture": go_arch(),
            "os": "linux",
            "created": created,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_hex}")]},
            "history": [{"created": created, "comment": if message.is_empty() { "Imported from -" } else { message }}],
        });
        let bytes = serde_json::to_vec(&config).unwrap_or_default();
        let id = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let img = ImageRecord {
            id: id.clone(),
            repo_tags: vec![],
            repo_digests: vec![],
            created,
            size,
            config,
            layers: vec![diff_hex],
        };
        write_json(&self.image_path(&id), &img)?;
        if let Some(r) = reference {
            self.tag(&id, &r)?;
        }
        self.load(&id)
    }
}

/// GOARCH spelling of the host architecture, what docker reports.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// `["a","b"]` JSON form, or shell form wrapped in `/bin/sh -c`.
fn parse_cmd(arg: &str) -> Value {
    match serde_json::from_str::<Vec<String>>(arg) {
        Ok(v) => json!(v),
        Err(_) => json!(["/bin/sh", "-c", arg]),
    }
}

fn apply_change(cfg: &mut Value, change: &str) -> Result<()> {
    let (instr, arg) = change
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((change.trim(), ""));
    let arg = arg.trim();
    let bad = |why: &str| ImageError::InvalidChange(change.to_string(), why.to_string());
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => cfg["Cmd"] = parse_cmd(arg),
        "ENTRYPOINT" => cfg["Entrypoint"] = parse_cmd(arg),
        "WORKDIR" => cfg["WorkingDir"] = json!(arg),
        "USER" => cfg["User"] = json!(arg),
        "ENV" => {
            let kv = match arg.split_once('=') {
                Some((k, v)) => format!("{k}={v}"),
                None => match arg.split_once(char::is_whitespace) {
                    Some((k, v)) => format!("{k}={}", v.trim()),
                    None => return Err(bad("ENV needs KEY=VALUE")),
                },
            };
            let key = kv.split('=').next().unwrap_or("").to_string();
            let env = cfg["Env"].as_array().cloned().unwrap_or_default();
            let mut env: Vec<Value> = env
                .into_iter()
                .filter(|e| e.as_str().and_then(|s| s.split('=').next()) != Some(&key))
                .collect();
            env.push(json!(kv));
            cfg["Env"] = json!(env);
        }
        "LABEL" => {
            let (k, v) = arg
                .split_once('=')
                .ok_or_else(|| bad("LABEL needs key=value"))?;
            if !cfg["Labels"].is_object() {
                cfg["Labels"] = json!({});
            }
            cfg["Labels"][k.trim()] = json!(v.trim().trim_matches('"'));
        }
        "EXPOSE" => {
            if !cfg["ExposedPorts"].is_object() {
                cfg["ExposedPorts"] = json!({});
            }
            for p in arg.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                cfg["ExposedPorts"][p] = json!({});
            }
        }
        "STOPSIGNAL" => cfg["StopSignal"] = json!(arg),
        _ => return Err(bad("unsupported instruction")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_refs() {
        assert_eq!(normalize("hello-world").unwrap(), "hello-world:latest");
        assert_eq!(
            normalize("docker.io/library/busybox:1.36").unwrap(),
            "busybox:1.36"
        );
        assert_eq!(
            normalize("localhost:5000/x").unwrap(),
            "localhost:5000/x:latest"
        );
        assert!(normalize("Bad").is_err());
    }

    #[test]
    fn import_tag_resolve_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("hello"), b"#!hi").unwrap();
        let mut tarball = Vec::new();
        {
            let mut b = tar::Builder::new(&mut tarball);
            b.append_dir_all(".", &src).unwrap();
            b.finish().unwrap();
        }
        let store = Images::open(&tmp.path().join("root")).unwrap();
        let img = store
            .import(
                &tarball[..],
                Some("hello-world"),
                &["CMD [\"/hello\"]".into(), "ENV A=1".into()],
                "",
            )
            .unwrap();
        assert_eq!(img.repo_tags, vec!["hello-world:latest".to_string()]);
        assert_eq!(img.container_config()["Cmd"], json!(["/hello"]));
        assert_eq!(store.resolve("hello-world:latest").unwrap().id, img.id);
        assert_eq!(store.resolve(&img.id[7..19]).unwrap().id, img.id);
        assert!(matches!(
            store.resolve("nope"),
            Err(ImageError::NotFound(_))
        ));
        let dirs = store.layer_dirs(&img);
        assert_eq!(fs::read(dirs[0].join("hello")).unwrap(), b"#!hi");
        store.delete(&img.id).unwrap();
        assert!(store.list().is_empty());
        assert!(!dirs[0].exists());
        assert!(store
            .import(&b"not a tar"[..], None, &["BOGUS x".into()], "")
            .is_err());
    }
}
