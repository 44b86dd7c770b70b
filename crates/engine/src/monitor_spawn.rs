//! How berthd starts monitors: from a sealed view of the `berth` binary (CVE-2019-5736, see
//! `berth_runtime::selfexe`) that the daemon opens once and keeps, so every monitor starts already sealed and its
//! `ensure_sealed_exe` skips the re-exec (one process image load and, on kernels without the overlayfs view, a
//! copy of the binary saved per container).
//!
//! The monitor is exec'd through `/proc/self/fd/<fd>` of the kept fd (resolved by the kernel in the forked
//! child before the close-on-exec fd goes away), with `argv[0]` set to the binary's path so `ps` stays readable.
//! When the binary on disk changes (an upgrade), a new sealed view is made; the old fd is deliberately kept open
//! (never closed), because another thread may be exec'ing through its number at that moment.
//!
//! The monitor's steady-state half, `berth-shim` (installed next to `berth`), is sealed the same way: berthd
//! keeps a sealed view of it too and hands the monitor that fd (`--shim-fd N`, see [`pass_shim`]); the monitor
//! `execveat`s it once the container runs. A monitor without the fd keeps running the whole `berth` binary.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

/// The sealed views, one per binary (`berth` and `berth-shim`).
static SEALED: Mutex<Vec<Sealed>> = Mutex::new(Vec::new());

/// Name of the monitor's steady-state binary, looked up next to the `berth` binary.
pub const SHIM_NAME: &str = "berth-shim";

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

/// Adds `--shim-fd N` to a monitor's command line, N being an fd of the sealed view of `berth-shim` next to
/// `berth_binary` that the monitor inherits (close-on-exec is cleared in the child only). Without a shim (not
/// installed, cannot be sealed) nothing is added and the monitor does all the work itself.
pub fn pass_shim(cmd: &mut Command, berth_binary: &Path) {
    let shim = berth_binary.with_file_name(SHIM_NAME);
    if !shim.is_file() {
        return;
    }
    let Some(fd) = sealed_fd(&shim) else {
        return;
    };
    cmd.arg("--shim-fd").arg(fd.to_string());
    // SAFETY: fcntl(F_SETFD) is async-signal-safe, and `fd` is kept open by SEALED for the process' lifetime
    // (never closed, module doc).
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `/proc/self/fd/<fd>` of the sealed view of `binary`, made on first use or when the file changed.
fn sealed_path(binary: &Path) -> Option<PathBuf> {
    sealed_fd(binary).map(|fd| PathBuf::from(format!("/proc/self/fd/{fd}")))
}

/// The fd number of the sealed view of `binary`, made on first use or when the file changed. The number is at
/// least 10, so a spawn's `dup2` onto a low fixed number (the sync fd 3) can never replace it in the child.
fn sealed_fd(binary: &Path) -> Option<i32> {
    let md = std::fs::metadata(binary).ok()?;
    let id = identity(&md);
    let mut kept = SEALED.lock().unwrap_or_else(|e| e.into_inner());
    let pos = kept.iter().position(|s| s.path == binary);
    if let Some(s) = pos.map(|i| &kept[i]).filter(|s| s.identity == id) {
        return Some(s.fd.as_raw_fd());
    }
    let fd = match berth_runtime::sealed_fd_of(binary).map(high_fd) {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!(
                "cannot seal {} for monitors (each monitor seals itself): {e}",
                binary.display()
            );
            return None;
        }
    };
    let raw = fd.as_raw_fd();
    let new = Sealed {
        path: binary.to_path_buf(),
        identity: id,
        fd,
    };
    match pos {
        Some(i) => {
            let old = std::mem::replace(&mut kept[i], new);
            // Module doc: a concurrent spawn may be exec'ing through the old fd number right now.
            std::mem::forget(old);
        }
        None => kept.push(new),
    }
    Some(raw)
}

/// Moves `fd` to a number >= 10 (close-on-exec) when it is lower; the original is closed then.
fn high_fd(fd: OwnedFd) -> OwnedFd {
    if fd.as_raw_fd() >= 10 {
        return fd;
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd or -1; on success we own the result.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return fd;
    }
    // SAFETY: n is a fresh fd nothing else owns.
    unsafe { OwnedFd::from_raw_fd(n) }
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
        assert!(sealed_fd(sh).unwrap() >= 10);
    }
}
