//! OCI lifecycle hooks: each gets the container state JSON on stdin; `path`, `args`, `env` and `timeout` are
//! honoured. A failing hook is an error for the caller to act on (fail create, or just report for poststop).

use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

/// Errors of running hooks.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}: cannot start: {source}")]
    Spawn {
        kind: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{kind} hook {path} failed: {status}")]
    Failed {
        kind: &'static str,
        path: String,
        status: String,
    },
    #[error("{kind} hook {path} timed out after {secs}s")]
    Timeout {
        kind: &'static str,
        path: String,
        secs: i64,
    },
}

/// Runs `hooks` in order, stopping at the first failure.
pub(crate) fn run(
    kind: &'static str,
    hooks: &[Hook],
    state: &serde_json::Value,
) -> Result<(), HookError> {
    let json = serde_json::to_vec(state).expect("state serializes");
    for h in hooks {
        run_one(kind, h, &json)?;
    }
    Ok(())
}

fn run_one(kind: &'static str, h: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = h.path().display().to_string();
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        kind,
        path: path.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state);
    }
    let failed = |status: String| HookError::Failed {
        kind,
        path: path.clone(),
        status,
    };
    if let Some(secs) = h.timeout().filter(|t| *t > 0) {
        // SAFETY: pidfd_open on our own unreaped child.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
        if fd >= 0 {
            // SAFETY: fd was just returned by pidfd_open.
            let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            let mut pfd = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&pidfd),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = u16::try_from(secs.saturating_mul(1000)).unwrap_or(u16::MAX);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs as u64);
            loop {
                match nix::poll::poll(&mut pfd, ms) {
                    Ok(0) if std::time::Instant::now() < deadline => continue,
                    Ok(0) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(HookError::Timeout { kind, path, secs });
                    }
                    Err(nix::Error::EINTR) => continue,
                    _ => break,
                }
            }
        }
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    if status.success() {
        Ok(())
    } else if let Some(sig) = status.signal() {
        Err(failed(format!("killed by signal {sig}")))
    } else {
        Err(failed(format!(
            "exit status {}",
            status.code().unwrap_or(-1)
        )))
    }
}
