//! Lifecycle operations on an existing container: start, state, kill, delete, list, ps, pause, resume.

use crate::state::{ContainerState, Status, FIFO_FILE};
use crate::{hooks, Result, RuntimeError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill as sys_kill, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;

fn load(root: &Path, id: &str) -> Result<ContainerState> {
    crate::spec::validate_id(id)?;
    ContainerState::load(root, id)?.ok_or_else(|| RuntimeError::NotFound(id.to_string()))
}

/// The container's state (with its live status).
pub fn state(root: &Path, id: &str) -> Result<ContainerState> {
    load(root, id)
}

/// Releases a created container's init into `execve`, then runs poststart hooks.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let st = load(root, id)?;
    let status = st.status();
    if status != Status::Created {
        let what = match status {
            Status::Stopped => "cannot start a container that has stopped",
            _ => "cannot start an already running container",
        };
        return Err(RuntimeError::BadStatus {
            id: id.to_string(),
            status,
            what,
        });
    }
    let fifo = st.dir.join(FIFO_FILE);
    // Non-blocking open: a blocking one would hang forever if the init died meanwhile.
    let fd = nix::fcntl::open(
        &fifo,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open exec fifo", e))?;
    // SAFETY: fd was just opened and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The init writes one byte once released, and its end of the fifo closes at execve (close-on-exec): wait
    // for both, so that poststart hooks run after the container process really started.
    let died = || RuntimeError::Child(format!("container {id} init exited before start"));
    let mut buf = [0u8; 1];
    let mut released = false;
    loop {
        let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut pfd, PollTimeout::from(100u16)) {
            Ok(n) if n > 0 => {
                match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut buf) {
                    Ok(1) => released = true,
                    Ok(_) if released => break,
                    // The writer went away without writing: the init died.
                    Ok(_) => return Err(died()),
                    Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {}
                    Err(e) => return Err(RuntimeError::sys("read exec fifo", e)),
                }
            }
            Err(nix::Error::EINTR) | Ok(_) => {}
            Err(e) => return Err(RuntimeError::sys("poll exec fifo", e)),
        }
        if !st.init_alive() {
            if released {
                break;
            }
            return Err(died());
        }
    }
    let _ = std::fs::remove_file(&fifo);
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().as_ref())
    {
        // runc: a failing poststart hook is reported, the container keeps running.
        if let Err(e) = hooks::run("poststart", h, &st.hook_state(Status::Running)) {
            log::warn!("{e}");
            eprintln!("berth runtime: warning: {e}");
        }
    }
    Ok(())
}

/// Parses a signal name (`KILL`, `SIGKILL`, `kill`) or number.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>().ok().map(|s| s as i32)
}

/// Sends `signal` to the init, or with `all` to every process in the container's cgroup.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let st = load(root, id)?;
    if all {
        if let Some(cg) = &st.cgroup {
            return cg
                .kill_all(signal)
                .map_err(|e| RuntimeError::Cgroup(e.into()));
        }
    }
    let status = st.status();
    if status == Status::Stopped {
        return Err(RuntimeError::BadStatus {
            id: id.to_string(),
            status,
            what: "container not running",
        });
    }
    signal_pid(st.pid, signal)
}

fn signal_pid(pid: i32, signal: i32) -> Result<()> {
    // SAFETY: kill(2) with any pid/signal is memory-safe.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(RuntimeError::sys(format!("kill {pid}"), nix::Error::last()));
    }
    Ok(())
}

/// Deletes the container: refuses a running one unless `force` (then kills it), runs poststop hooks, removes
/// its cgroup and state dir.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let st = load(root, id)?;
    let status = st.status();
    match status {
        Status::Stopped => {}
        Status::Created | Status::Creating => kill_and_wait(&st),
        Status::Running | Status::Paused if force => kill_and_wait(&st),
        _ => {
            return Err(RuntimeError::BadStatus {
                id: id.to_string(),
                status,
                what: "cannot delete a container that is not stopped (use --force)",
            })
        }
    }
    destroy(&st)
}

/// Tears down a stopped container: remaining cgroup processes, poststop hooks, cgroup, state dir.
pub(crate) fn destroy(st: &ContainerState) -> Result<()> {
    if let Some(cg) = &st.cgroup {
        if cg.pids().is_ok_and(|p| !p.is_empty()) {
            let _ = cg.thaw();
            let _ = cg.kill_all(libc::SIGKILL);
        }
    }
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststop().as_ref())
    {
        if let Err(e) = hooks::run("poststop", h, &st.hook_state(Status::Stopped)) {
            log::warn!("{e}");
            eprintln!("berth runtime: warning: {e}");
        }
    }
    if let Some(cg) = &st.cgroup {
        cg.destroy().map_err(|e| RuntimeError::Cgroup(e.into()))?;
    }
    std::fs::remove_dir_all(&st.dir)
        .map_err(|e| RuntimeError::io(format!("remove {}", st.dir.display()), e))
}

/// SIGKILLs the init (thawing a frozen cgroup first) and waits until it is gone.
fn kill_and_wait(st: &ContainerState) {
    if let Some(cg) = &st.cgroup {
        let _ = cg.thaw();
    }
    if !st.init_alive() {
        return;
    }
    // SAFETY: pidfd_open of a pid we just checked (start time matched); the fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, st.pid, 0) };
    let _ = sys_kill(Pid::from_raw(st.pid), Signal::SIGKILL);
    if let Some(cg) = &st.cgroup {
        let _ = cg.kill_all(libc::SIGKILL);
    }
    if fd >= 0 {
        // SAFETY: fd came from pidfd_open.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // Readable once the process exited (also for our own zombie child).
        for _ in 0..100 {
            let mut pfd = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut pfd, PollTimeout::from(100u16)) {
                Ok(n) if n > 0 => break,
                _ if !st.init_alive() => break,
                _ => {}
            }
        }
    }
    // Deliberately no waitpid: when the caller is the init's parent (monitor, `run`) it reaps it itself and
    // wants the exit status.
}

/// All containers under `root`, sorted by id.
pub fn list(root: &Path) -> Result<Vec<ContainerState>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(RuntimeError::io(format!("read {}", root.display()), e)),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(Some(st)) = ContainerState::load(root, &name) {
            out.push(st);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Host pids of every process in the container's cgroup.
pub fn processes(root: &Path, id: &str) -> Result<Vec<i32>> {
    let st = load(root, id)?;
    match &st.cgroup {
        Some(cg) => cg.pids().map_err(|e| RuntimeError::Cgroup(e.into())),
        None => Ok(if st.init_alive() {
            vec![st.pid]
        } else {
            vec![]
        }),
    }
}

/// Freezes a running container.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let st = load(root, id)?;
    let status = st.status();
    if status != Status::Running {
        return Err(RuntimeError::BadStatus {
            id: id.to_string(),
            status,
            what: "container not running",
        });
    }
    let cg = st
        .cgroup
        .as_ref()
        .ok_or_else(|| RuntimeError::Child("container has no cgroup".into()))?;
    cg.freeze().map_err(|e| RuntimeError::Cgroup(e.into()))
}

/// Thaws a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let st = load(root, id)?;
    let status = st.status();
    if status != Status::Paused {
        return Err(RuntimeError::BadStatus {
            id: id.to_string(),
            status,
            what: "container not paused",
        });
    }
    let cg = st
        .cgroup
        .as_ref()
        .ok_or_else(|| RuntimeError::Child("container has no cgroup".into()))?;
    cg.thaw().map_err(|e| RuntimeError::Cgroup(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL"), Some(9));
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("hup"), Some(1));
        assert_eq!(parse_signal("10"), Some(10));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("0"), None);
    }
}
