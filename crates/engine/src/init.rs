//! `--init` (`HostConfig.Init`): a tiny PID 1 (like docker-init/tini) that runs the command as its child,
//! forwards signals to it, reaps zombies and exits with the child's status. The program is
//! `init/docker-init.rs`, built static by build.rs and embedded here; berthd writes it once under the exec root
//! (root-owned, mode 0555) and each container gets it through a read-only bind mount at `/sbin/docker-init`, as
//! docker does. Read-only matters (CVE-2019-5736): a container cannot write through the mount to the one file
//! every `--init` container executes, even by opening `/proc/1/exe`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The static init program.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/docker-init"));

/// Where containers see it.
pub const PATH_IN_CONTAINER: &str = "/sbin/docker-init";

/// Errors of `--init`.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// berth was built where no static libc was available.
    #[error("--init is not available: berth was built without a static docker-init")]
    Unavailable,
    /// Writing the binary failed.
    #[error("installing docker-init at {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Writes the init to `<exec_root>/docker-init` unless an identical copy is there; returns its path.
pub fn install(exec_root: &Path) -> Result<PathBuf, InitError> {
    if BINARY.is_empty() {
        return Err(InitError::Unavailable);
    }
    let path = exec_root.join("docker-init");
    if fs::read(&path).is_ok_and(|b| b == BINARY) {
        return Ok(path);
    }
    let err = |e| InitError::Io(path.clone(), e);
    // A fresh file renamed into place: a running container keeps the inode it has mounted.
    let tmp = exec_root.join(format!(".docker-init.{}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(err)?;
    f.write_all(BINARY).map_err(err)?;
    f.set_permissions(fs::Permissions::from_mode(0o555))
        .map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    fs::rename(&tmp, &path).map_err(err)?;
    Ok(path)
}

/// Makes the init the spec's process (`docker-init -- ARGS...`) and adds its read-only bind mount.
pub fn apply(spec: &mut Value, host_path: &Path) {
    let mut args = vec![json!(PATH_IN_CONTAINER), json!("--")];
    args.extend(
        spec["process"]["args"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    spec["process"]["args"] = json!(args);
    if let Some(m) = spec["mounts"].as_array_mut() {
        m.push(json!({
            "destination": PATH_IN_CONTAINER,
            "type": "bind",
            "source": host_path,
            "options": ["bind", "ro", "nosuid", "nodev"],
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_args_and_mounts_read_only() {
        let mut spec = json!({"process": {"args": ["sleep", "1"]}, "mounts": []});
        apply(&mut spec, Path::new("/run/berth/docker-init"));
        assert_eq!(
            spec["process"]["args"],
            json!(["/sbin/docker-init", "--", "sleep", "1"])
        );
        assert_eq!(spec["mounts"][0]["destination"], PATH_IN_CONTAINER);
        assert!(spec["mounts"][0]["options"]
            .as_array()
            .unwrap()
            .contains(&json!("ro")));
    }

    #[test]
    fn installs_once() {
        if BINARY.is_empty() {
            eprintln!("SKIPPED: built without a static docker-init");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let p = install(tmp.path()).unwrap();
        assert_eq!(fs::read(&p).unwrap(), BINARY);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o555
        );
        assert_eq!(install(tmp.path()).unwrap(), p);
    }
}
