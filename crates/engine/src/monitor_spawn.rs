//! How berthd starts monitors: from a sealed view of the `berth` binary (CVE-2019-5736, see
//! `berth_runtime::selfexe`) that the daemon opens once and keeps, so every monitor starts already sealed and its
//! `ensure_sealed_exe` skips the re-exec (one process image load and, on kernels without the overlayfs view, a
//! copy of the binary saved per container).
//!
//! The monitor is exec'd through `/proc/self/fd/<fd>` of the kept fd (resolved by the kernel in the forked
//! child before the close-on-exec fd goes away), with `argv[0]` set to the binary's path so `ps` stays readable.
//! When the binary on disk changes (an upgrade), a new sealed view is made; the old fd is deliberately kept open
//! (never closed), because another thread may be exec'ing through its number at that moment.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The sealed view of one binary and the identity of the file it was made from.
struct Sealed {
    path: PathBuf,
    identity: (u64, u64, i64, i64, u64),
    fd: OwnedFd,
}

static SEALED: Mutex<Option<Sealed>> = Mutex::new(None);

fn identity(md: &std::fs::Metadata) -> (u64, u64, i64, i64, u64) {
    (md.dev(), md.ino(), md.mtime(), md.mtime_nsec(), md.size())
}

/// A `Command` that runs `binary` from its sealed view when one can be made, else `binary` itself (the monitor
/// then seals itself).
pub fn command(binary: &Path) -> Command {
    match sealed_path(binary) {
        Some(p) => {
            let mut c = Command::new(p);
            c.arg0(binary);
            c
        }
        None => Command::new(binary),
    }
}

/// `/proc/self/fd/<fd>` of the sealed view of `binary`, made on first use or when the file changed.
fn sealed_path(binary: &Path) -> Option<PathBuf> {
    let md = std::fs::metadata(binary).ok()?;
    let id = identity(&md);
    let mut kept = SEALED.lock().unwrap_or_else(|e| e.into_inner());
    let fresh = kept
        .as_ref()
        .is_some_and(|s| s.path == binary && s.identity == id);
    if !fresh {
        match berth_runtime::sealed_fd_of(binary) {
            Ok(fd) => {
                let old = kept.replace(Sealed {
                    path: binary.to_path_buf(),
                    identity: id,
                    fd,
                });
                // Module doc: a concurrent spawn may be exec'ing through the old fd number right now.
                std::mem::forget(old);
            }
            Err(e) => {
                log::warn!(
                    "cannot seal {} for monitors (each monitor seals itself): {e}",
                    binary.display()
                );
                return None;
            }
        }
    }
    kept.as_ref()
        .map(|s| PathBuf::from(format!("/proc/self/fd/{}", s.fd.as_raw_fd())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_binary_runs_sealed() {
        // `cat /proc/self/...` cannot show its own exe: spawn `readlink`'s equivalent through the sealed view of
        // /bin/sh and ask the child what its exe is.
        let sh = Path::new("/bin/sh");
        let out = command(sh)
            .args(["-c", "readlink /proc/$$/exe"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let real = std::fs::canonicalize(sh).unwrap();
        assert_ne!(
            exe,
            real.to_string_lossy(),
            "the child runs the host binary, not a sealed view"
        );
        // The same view is reused while the file does not change.
        let a = sealed_path(sh).unwrap();
        let b = sealed_path(sh).unwrap();
        assert_eq!(a, b);
    }
}
