//! The build context: a directory (or a tar stream unpacked into one), filtered by `.dockerignore`, and the
//! resolution of COPY/ADD sources against it (or against another stage's / image's rootfs for `--from`):
//! wildcards, directory-contents semantics, symlinks resolved inside the root, and a content checksum per
//! source that feeds the cache key (file content + mode + kind, never mtime, like docker's tarsum).

use crate::dockerignore::{clean, Ignore, IgnoreError};
use crate::glob::{GlobError, Pattern};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors from the context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("unable to prepare context: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Ignore(#[from] IgnoreError),
    #[error("{0}")]
    Glob(#[from] GlobError),
    #[error("file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    NotFound(String),
    #[error("no source files were specified")]
    NoSources,
    #[error("forbidden path outside the build context: {0}")]
    Outside(String),
    #[error("too many levels of symbolic links resolving {0}")]
    SymlinkLoop(String),
}

/// A directory to copy from, with an optional ignore list (only the build context has one).
#[derive(Debug, Clone)]
pub struct SourceRoot {
    pub root: PathBuf,
    pub ignore: Ignore,
}

/// What a resolved source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    File,
    Dir,
    Symlink(String),
}

/// One file system entry to copy, expanded (directories are listed entry by entry, parents first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// Absolute host path to read.
    pub host: PathBuf,
    /// Path relative to the copy destination (`""` for the destination itself).
    pub rel: String,
    pub kind: SourceKind,
    pub mode: u32,
}

/// One matched source of a COPY/ADD (a file, a directory whose *contents* are copied, or a symlink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Path relative to the root, `/`-separated (`.` for the root).
    pub path: String,
    pub host: PathBuf,
    pub kind: SourceKind,
    /// Entries to copy, relative to the destination chosen for this source.
    pub entries: Vec<SourceEntry>,
    /// sha256 over every entry's path, kind, mode and content: the cache key's input.
    pub checksum: String,
}

impl SourceRoot {
    /// A context directory with its `.dockerignore` (if any).
    pub fn context(root: &Path) -> Result<Self, ContextError> {
        let ignore = match fs::read_to_string(root.join(".dockerignore")) {
            Ok(t) => Ignore::parse(&t)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ignore::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(SourceRoot {
            root: root.to_path_buf(),
            ignore,
        })
    }

    /// A stage's or image's root file system (`COPY --from`): nothing ignored.
    pub fn rootfs(root: &Path) -> Self {
        SourceRoot {
            root: root.to_path_buf(),
            ignore: Ignore::default(),
        }
    }

    /// Resolves `rel` inside the root, following symlinks as if the root were `/` (never escaping it).
    /// `follow_last` decides whether a final symlink is followed.
    pub fn resolve(&self, rel: &str, follow_last: bool) -> Result<PathBuf, ContextError> {
        let mut parts: Vec<String> = clean(&format!("/{rel}"))
            .split('/')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        parts.reverse();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(p) = parts.pop() {
            if p == ".." {
                cur.pop();
                continue;
            }
            let candidate = self.root.join(cur.join("/")).join(&p);
            let last = parts.is_empty();
            match fs::symlink_metadata(&candidate) {
                Ok(md) if md.file_type().is_symlink() && (!last || follow_last) => {
                    hops += 1;
                    if hops > 255 {
                        return Err(ContextError::SymlinkLoop(rel.to_string()));
                    }
                    let target = fs::read_link(&candidate)?;
                    let t = target.to_string_lossy().to_string();
                    if t.starts_with('/') {
                        cur.clear();
                    }
                    for q in t.split('/').rev().filter(|q| !q.is_empty() && *q != ".") {
                        parts.push(q.to_string());
                    }
                }
                _ => cur.push(p),
            }
        }
        Ok(self.root.join(cur.join("/")))
    }

    fn ignored(&self, rel: &str) -> bool {
        rel != "." && self.ignore.matches(rel)
    }

    /// Matches one COPY/ADD source pattern. Wildcards follow Go's `filepath.Match` against every path.
    pub fn sources(&self, pattern: &str) -> Result<Vec<Source>, ContextError> {
        let pat = clean(pattern.trim_start_matches('/'));
        let compiled = Pattern::new(&pat, false)?;
        if !compiled.has_wildcard() {
            let host = self.resolve(&pat, true)?;
            if self.ignored(&pat) || fs::symlink_metadata(&host).is_err() {
                return Err(ContextError::NotFound(pat));
            }
            return Ok(vec![self.source(&pat, host)?]);
        }
        // Walk from the longest wildcard-free directory prefix.
        let mut prefix = Vec::new();
        for comp in pat.split('/') {
            if Pattern::new(comp, false)?.has_wildcard() {
                break;
            }
            prefix.push(comp);
        }
        let base = prefix.join("/");
        let mut found = Vec::new();
        let start = self.resolve(&base, true)?;
        let mut stack = vec![(start, base.clone())];
        while let Some((dir, rel)) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            names.sort();
            for n in names.into_iter().rev() {
                let child = if rel.is_empty() || rel == "." {
                    n.clone()
                } else {
                    format!("{rel}/{n}")
                };
                if compiled.matches(&child) {
                    if !self.ignored(&child) {
                        found.push(child);
                    }
                } else if fs::symlink_metadata(dir.join(&n)).is_ok_and(|m| m.is_dir()) {
                    stack.push((dir.join(&n), child));
                }
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(ContextError::NoSources);
        }
        found
            .into_iter()
            .map(|p| {
                let h = self.resolve(&p, true)?;
                self.source(&p, h)
            })
            .collect()
    }

    fn source(&self, path: &str, host: PathBuf) -> Result<Source, ContextError> {
        let md = fs::symlink_metadata(&host)?;
        let mut entries = Vec::new();
        let kind = kind_of(&host, &md)?;
        if kind == SourceKind::Dir {
            self.walk(&host, path, "", &mut entries)?;
        } else {
            entries.push(SourceEntry {
                host: host.clone(),
                rel: String::new(),
                kind: kind.clone(),
                mode: md.mode() & 0o7777,
            });
        }
        let checksum = checksum(&entries)?;
        Ok(Source {
            path: path.to_string(),
            host,
            kind,
            entries,
            checksum,
        })
    }

    fn walk(
        &self,
        dir: &Path,
        ctx_rel: &str,
        rel: &str,
        out: &mut Vec<SourceEntry>,
    ) -> Result<(), ContextError> {
        let md = fs::symlink_metadata(dir)?;
        out.push(SourceEntry {
            host: dir.to_path_buf(),
            rel: rel.to_string(),
            kind: SourceKind::Dir,
            mode: md.mode() & 0o7777,
        });
        let mut names: Vec<_> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let n = n.to_string_lossy().to_string();
            let c_rel = if ctx_rel.is_empty() || ctx_rel == "." {
                n.clone()
            } else {
                format!("{ctx_rel}/{n}")
            };
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            let host = dir.join(&n);
            let md = fs::symlink_metadata(&host)?;
            let kind = kind_of(&host, &md)?;
            if kind == SourceKind::Dir {
                // An ignored directory may still hold `!`-excepted files.
                if self.ignored(&c_rel) && !self.ignore.has_exclusions() {
                    continue;
                }
                let before = out.len();
                self.walk(&host, &c_rel, &r, out)?;
                if self.ignored(&c_rel) && out.len() == before + 1 {
                    out.truncate(before);
                }
            } else if !self.ignored(&c_rel) {
                out.push(SourceEntry {
                    host,
                    rel: r,
                    kind,
                    mode: md.mode() & 0o7777,
                });
            }
        }
        Ok(())
    }
}

fn kind_of(host: &Path, md: &fs::Metadata) -> Result<SourceKind, ContextError> {
    Ok(if md.is_dir() {
        SourceKind::Dir
    } else if md.file_type().is_symlink() {
        SourceKind::Symlink(fs::read_link(host)?.to_string_lossy().to_string())
    } else {
        SourceKind::File
    })
}

/// sha256 over entries (relative path, kind, permission bits, content / link target).
pub fn checksum(entries: &[SourceEntry]) -> Result<String, ContextError> {
    let mut h = Sha256::new();
    for e in entries {
        h.update(e.rel.as_bytes());
        h.update([0]);
        h.update(format!("{:o}", e.mode).as_bytes());
        match &e.kind {
            SourceKind::Dir => h.update(b"d"),
            SourceKind::Symlink(t) => {
                h.update(b"l");
                h.update(t.as_bytes());
            }
            SourceKind::File => {
                h.update(b"f");
                h.update(file_sha256(&e.host)?.as_bytes());
            }
        }
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}

/// sha256 of a file's content, hex.
pub fn file_sha256(p: &Path) -> Result<String, ContextError> {
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Unpacks a context tar stream (`docker build -` with a tarball, the body of `POST /build`) into `dest`.
/// The tar crate refuses entries escaping `dest` (`..`, absolute paths).
pub fn unpack_context<R: Read + Send + 'static>(r: R, dest: &Path) -> Result<(), ContextError> {
    fs::create_dir_all(dest)?;
    let mut ar = tar::Archive::new(crate::archive::decompress(r)?);
    ar.set_preserve_permissions(true);
    ar.set_overwrite(true);
    ar.unpack(dest)?;
    Ok(())
}

/// What `berth build -` (or a raw request body) received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A (possibly compressed) tar: unpacked as the context.
    Tar,
    /// Anything else: the Dockerfile itself, in an otherwise empty context.
    Dockerfile,
}

/// Materialises a context from a stream into `dest` (docker's `DetectContextFromRemoteURL`/stdin logic): a
/// tar (any compression) is unpacked, anything else becomes `dest/Dockerfile`.
pub fn context_from_stream<R: Read + Send + 'static>(
    r: R,
    dest: &Path,
) -> Result<StreamKind, ContextError> {
    let mut d = crate::archive::decompress(r)?;
    let mut head = Vec::with_capacity(512);
    (&mut d).take(512).read_to_end(&mut head)?;
    if crate::archive::looks_like_tar(&head) {
        fs::create_dir_all(dest)?;
        let mut ar = tar::Archive::new(io::Cursor::new(head).chain(d));
        ar.set_preserve_permissions(true);
        ar.set_overwrite(true);
        ar.unpack(dest)?;
        return Ok(StreamKind::Tar);
    }
    let mut all = head;
    d.read_to_end(&mut all)?;
    dockerfile_only_context(&all, dest)?;
    Ok(StreamKind::Dockerfile)
}

/// Makes `dest` a context holding only a Dockerfile (the `docker build - < Dockerfile` case).
pub fn dockerfile_only_context(dockerfile: &[u8], dest: &Path) -> Result<(), ContextError> {
    fs::create_dir_all(dest)?;
    fs::write(dest.join("Dockerfile"), dockerfile)?;
    fs::set_permissions(dest.join("Dockerfile"), fs::Permissions::from_mode(0o644))?;
    Ok(())
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
