//! Wake-ups for followers of a container's json-file log (`logs -f`, attach): an inotify watch on the container
//! directory, so that a line the monitor appends reaches the client at once instead of at the next poll.
//!
//! The directory is watched rather than the file: rotation (`max-size`) renames the log and the monitor creates a
//! new one, and `--rm` deletes the directory. Any change in it wakes the follower, which then reads from its
//! offset; a spurious wake-up (a record written beside the log) costs one empty read. When inotify is unavailable
//! (no instances left, an odd filesystem) the follower falls back to polling.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// How often a follower looks at the file when no watch could be set up, and at most how long it sleeps
/// even with one (a safety net should an event be missed).
pub const POLL: Duration = Duration::from_millis(100);
const SAFETY_NET: Duration = Duration::from_secs(1);

/// An inotify instance watching one directory for writes, creations, renames and deletion.
pub struct LogWatch {
    fd: AsyncFd<OwnedFd>,
}

impl LogWatch {
    /// Watches `dir`; `None` when inotify cannot be used (the caller then polls).
    pub fn new(dir: &Path) -> Option<Self> {
        let cdir = CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: inotify_init1 takes flags only and returns a new fd or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mask = libc::IN_MODIFY
            | libc::IN_CREATE
            | libc::IN_MOVED_TO
            | libc::IN_MOVED_FROM
            | libc::IN_DELETE
            | libc::IN_DELETE_SELF
            | libc::IN_CLOSE_WRITE;
        // SAFETY: `fd` is an inotify instance and `cdir` a NUL-terminated path that outlives the call.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), cdir.as_ptr(), mask) } < 0 {
            return None;
        }
        // SAFETY: the OwnedFd moves into the AsyncFd, which owns it from here on; nothing replaces or closes the
        // fd while it is registered.
        let fd = unsafe { AsyncFd::register(fd) }.ok()?;
        Some(Self { fd })
    }

    /// Waits for a change in the directory (or [`SAFETY_NET`]), then drains the queued events. True when
    /// woken by an event.
    pub async fn changed(&self) -> bool {
        let mut seen = false;
        if let Ok(Ok(mut guard)) = tokio::time::timeout(SAFETY_NET, self.fd.readable()).await {
            let mut buf = [0u8; 4096];
            loop {
                // SAFETY: reads into a stack buffer of the given length from an fd this struct owns.
                let n = unsafe {
                    libc::read(
                        self.fd.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                };
                if n <= 0 {
                    break;
                }
                seen = true;
            }
            guard.clear_ready();
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_and_rotation_wake_the_watch_and_quiet_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x-json.log");
        std::fs::write(&log, b"").unwrap();
        let w = LogWatch::new(dir.path()).expect("inotify");
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"line\n").unwrap();
        assert!(w.changed().await, "an append was not seen");
        std::fs::rename(&log, dir.path().join("x-json.log.1")).unwrap();
        assert!(w.changed().await, "a rotation was not seen");
        // Nothing happens: woken by the safety net only.
        assert!(!w.changed().await);
    }

    #[test]
    fn no_watch_on_a_missing_dir() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(LogWatch::new(Path::new("/nonexistent/berth-logwatch")).is_none());
        });
    }
}
