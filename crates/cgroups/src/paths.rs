//! `linux.cgroupsPath` resolution (runc's cgroupfs rules).
//!
//! * `""` → `/berth/<container id>`.
//! * absolute → relative to each hierarchy's root.
//! * relative → relative to this process's own cgroup in each hierarchy.
//! * `slice:prefix:name` (the systemd driver's syntax) → the path systemd would create,
//!   `/<expanded slice>/<prefix>-<name>.scope`, managed directly through cgroupfs like runc's
//!   cgroupfs driver would, since berth does not talk to systemd.
//!
//! Paths are cleaned lexically and `..` never climbs above a hierarchy's root, so a hostile
//! config cannot point the runtime at a directory outside the cgroup tree.

/// Bad cgroups paths.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("invalid systemd cgroups path {path:?}: {reason} (expected slice:prefix:name, e.g. system.slice:berth:<id>)")]
    Systemd { path: String, reason: &'static str },
    #[error("invalid cgroups path {0:?}: contains a NUL byte")]
    Nul(String),
}

/// Normalises a `linux.cgroupsPath`: returns a cleaned absolute (`/...`) or relative path.
pub fn resolve_cgroups_path(cgroups_path: &str, container_id: &str) -> Result<String, PathError> {
    if cgroups_path.contains('\0') {
        return Err(PathError::Nul(cgroups_path.to_string()));
    }
    if cgroups_path.is_empty() {
        return Ok(clean(&format!("/berth/{container_id}")));
    }
    if cgroups_path.matches(':').count() == 2 && !cgroups_path.contains('/') {
        return systemd_to_path(cgroups_path);
    }
    if cgroups_path.starts_with('/') {
        Ok(clean(cgroups_path))
    } else {
        // Keep it relative; it is joined with the own cgroup per hierarchy later.
        let c = clean(&format!("/{cgroups_path}"));
        Ok(c.trim_start_matches('/').to_string())
    }
}

/// The path inside a hierarchy: absolute paths as is, relative ones under `own` (this process's
/// cgroup in that hierarchy).
pub fn in_hierarchy(path: &str, own: &str) -> String {
    if path.starts_with('/') {
        clean(path)
    } else {
        clean(&format!("{own}/{path}"))
    }
}

/// Lexically cleans an absolute path: collapses `//` and `.`, resolves `..` without ever going
/// above `/`.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Maps systemd's `slice:prefix:name` to a cgroupfs path.
pub fn systemd_to_path(spec: &str) -> Result<String, PathError> {
    let err = |reason| PathError::Systemd {
        path: spec.to_string(),
        reason,
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(err("expected exactly three colon-separated parts"));
    };
    if name.is_empty() {
        return Err(err("empty unit name"));
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let base = expand_slice(slice)
        .ok_or_else(|| err("the slice must be a name ending in .slice without '/' or '--'"))?;
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    if unit.contains('/') || unit == "." || unit == ".." {
        return Err(err("the unit name must not contain '/'"));
    }
    Ok(clean(&format!("{base}/{unit}")))
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root (systemd's rules).
fn expand_slice(slice: &str) -> Option<String> {
    let stem = slice.strip_suffix(".slice")?;
    if slice.contains('/') {
        return None;
    }
    if stem == "-" {
        return Some("/".into());
    }
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return None;
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for comp in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(comp);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Some(path)
}

/// The directory of cgroup `path` in a hierarchy mounted at `mount_point` whose mount root is
/// `root` (non-`/` when only a subtree is mounted, as inside a container).
pub fn dir_in_mount(mount_point: &std::path::Path, root: &str, path: &str) -> std::path::PathBuf {
    let rel = if root != "/" && (path == root || path.starts_with(&format!("{root}/"))) {
        &path[root.len()..]
    } else {
        path
    };
    mount_point.join(rel.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn empty_absolute_relative() {
        assert_eq!(resolve_cgroups_path("", "abc").unwrap(), "/berth/abc");
        assert_eq!(resolve_cgroups_path("/a//b/./c/", "x").unwrap(), "/a/b/c");
        assert_eq!(resolve_cgroups_path("/../../etc", "x").unwrap(), "/etc");
        assert_eq!(resolve_cgroups_path("foo/bar", "x").unwrap(), "foo/bar");
        assert_eq!(resolve_cgroups_path("../../foo", "x").unwrap(), "foo");
        assert!(resolve_cgroups_path("a\0b", "x").is_err());
        assert_eq!(in_hierarchy("/berth/x", "/process_api/1"), "/berth/x");
        assert_eq!(
            in_hierarchy("berth/x", "/process_api/1"),
            "/process_api/1/berth/x"
        );
        assert_eq!(in_hierarchy("berth/x", "/"), "/berth/x");
    }

    #[test]
    fn systemd_paths() {
        assert_eq!(
            resolve_cgroups_path("system.slice:docker:abc", "x").unwrap(),
            "/system.slice/docker-abc.scope"
        );
        assert_eq!(
            resolve_cgroups_path("user-1000.slice:b:c", "x").unwrap(),
            "/user.slice/user-1000.slice/b-c.scope"
        );
        assert_eq!(
            resolve_cgroups_path(":berth:c", "x").unwrap(),
            "/system.slice/berth-c.scope"
        );
        assert_eq!(resolve_cgroups_path("-.slice::c", "x").unwrap(), "/c.scope");
        assert_eq!(
            resolve_cgroups_path("machine.slice:x:y.slice", "x").unwrap(),
            "/machine.slice/y.slice"
        );
        assert!(resolve_cgroups_path("notaslice:a:b", "x").is_err());
        assert!(resolve_cgroups_path("a--b.slice:a:b", "x").is_err());
        assert!(resolve_cgroups_path("system.slice:a:", "x").is_err());
    }

    #[test]
    fn dirs_in_mounts() {
        let m = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            dir_in_mount(m, "/", "/berth/x"),
            PathBuf::from("/sys/fs/cgroup/memory/berth/x")
        );
        assert_eq!(
            dir_in_mount(m, "/docker/c", "/docker/c/berth"),
            PathBuf::from("/sys/fs/cgroup/memory/berth")
        );
        assert_eq!(
            dir_in_mount(m, "/docker/c", "/other"),
            PathBuf::from("/sys/fs/cgroup/memory/other")
        );
        assert_eq!(
            dir_in_mount(m, "/", "/"),
            PathBuf::from("/sys/fs/cgroup/memory")
        );
    }
}
