//! `exec`: runs another process in a running container. The parent joins the init's pid namespace (for its
//! next child) and forks; the child joins the init's other namespaces (user first, mount last), the parent puts
//! it in the container's cgroup, and the child applies the process settings and `execve`s. A successful
//! `execve` closes the sync socket (it is close-on-exec), so EOF after `Ready` means the process runs.

use crate::namespaces::{self, clone_fork};
use crate::state::{ContainerState, Status};
use crate::sync::{self, Msg, SyncError};
use crate::{process, terminal, Result, RuntimeError};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Options of [`exec`].
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The process to run (runc's `--process` JSON, or built from args + the container's process defaults).
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// The started process. The caller is its parent and waits for it.
#[derive(Debug)]
pub struct ExecHandle {
    pub pid: i32,
    /// The pty master when the process has a terminal and no console socket was given.
    pub pty_master: Option<OwnedFd>,
}

/// Starts `opts.process` inside container `id`.
pub fn exec(root: &Path, id: &str, opts: &ExecOptions) -> Result<ExecHandle> {
    crate::spec::validate_id(id)?;
    let st =
        ContainerState::load(root, id)?.ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
    let status = st.status();
    if !matches!(status, Status::Created | Status::Running) {
        return Err(RuntimeError::BadStatus {
            id: id.to_string(),
            status,
            what: "cannot exec in a container that is not running",
        });
    }
    let pid = st.pid;
    let linux = st.config.linux().as_ref();
    let types: Vec<LinuxNamespaceType> = linux
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .map(|n| n.typ())
        .collect();
    let mut join: Vec<(LinuxNamespaceType, PathBuf)> = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Time,
        LinuxNamespaceType::Mount,
    ]
    .into_iter()
    .filter(|t| types.contains(t) && namespaces::differs(pid, namespaces::proc_name(*t)))
    .map(|t| {
        (
            t,
            PathBuf::from(format!("/proc/{pid}/ns/{}", namespaces::proc_name(t))),
        )
    })
    .collect();
    // Open them all now (before the init could exit and its pid be reused).
    let fds: Vec<(LinuxNamespaceType, OwnedFd)> = join
        .drain(..)
        .map(|(t, p)| namespaces::open_ns(&p).map(|fd| (t, fd)))
        .collect::<Result<_, _>>()
        .map_err(|e| RuntimeError::Child(e.to_string()))?;
    let in_userns = fds.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(
            crate::security::seccomp_cache::compile_cached(s, root)
                .map_err(|e| RuntimeError::Child(format!("seccomp: {e}")))?,
        ),
        None => None,
    };
    let console = match &opts.console_socket {
        Some(p) => Some(OwnedFd::from(
            std::os::unix::net::UnixStream::connect(p).map_err(|e| {
                RuntimeError::io(format!("connect to console socket {}", p.display()), e)
            })?,
        )),
        None => None,
    };
    let saved_pidns = if namespaces::differs(pid, "pid") {
        let own = namespaces::open_ns(Path::new("/proc/self/ns/pid_for_children"))
            .map_err(|e| RuntimeError::Child(e.to_string()))?;
        namespaces::join(
            Path::new(&format!("/proc/{pid}/ns/pid")),
            Some(LinuxNamespaceType::Pid),
        )
        .map_err(|e| RuntimeError::Child(e.to_string()))?;
        Some(own)
    } else {
        None
    };
    let (parent_sock, child_sock) = sync::pair()?;
    // SAFETY: single-threaded caller (CLI or monitor); the child never returns from `child`.
    let child_pid = unsafe { clone_fork(CloneFlags::empty()) };
    if child_pid == Ok(0) {
        drop(parent_sock);
        let err = child(
            &child_sock,
            &fds,
            in_userns,
            &opts.process,
            seccomp.as_ref(),
            console.as_ref(),
            opts.preserve_fds,
        );
        let _ = child_sock.send(&Msg::Error(err));
        // SAFETY: _exit in the forked child, skipping the parent's atexit handlers.
        unsafe { libc::_exit(127) }
    }
    if let Some(own) = saved_pidns {
        let _ = nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWPID);
    }
    let child_pid = child_pid.map_err(|e| RuntimeError::sys("fork", e))?;
    drop(child_sock);
    drop(console);
    let fail = |e: RuntimeError| {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child_pid), None);
        e
    };
    if let Some(cg) = &st.cgroup {
        cg.add_process(child_pid)
            .map_err(|e| fail(RuntimeError::Cgroup(e.into())))?;
    }
    parent_sock.send(&Msg::Go).map_err(|e| fail(e.into()))?;
    let mut master = None;
    let mut ready = false;
    loop {
        match parent_sock.recv() {
            Ok((Msg::Pty, fd)) => master = fd,
            Ok((Msg::Ready, _)) => ready = true,
            Ok((Msg::Error(e), _)) => return Err(fail(RuntimeError::Child(e))),
            Ok((m, _)) => return Err(fail(SyncError::Unexpected(format!("{m:?}")).into())),
            Err(SyncError::Eof) if ready => break,
            Err(e) => return Err(fail(e.into())),
        }
    }
    if let Some(pf) = &opts.pid_file {
        crate::create::write_pid_file(pf, child_pid)?;
    }
    Ok(ExecHandle {
        pid: child_pid,
        pty_master: master,
    })
}

fn child(
    sock: &sync::SyncSocket,
    fds: &[(LinuxNamespaceType, OwnedFd)],
    in_userns: bool,
    p: &Process,
    seccomp: Option<&crate::security::seccomp::CompiledFilter>,
    console: Option<&OwnedFd>,
    preserve_fds: u32,
) -> String {
    // SAFETY: prctl(PR_SET_DUMPABLE) only changes a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    process::reset_signals();
    if let Err(e) = sock.expect(Msg::Go) {
        return e.to_string();
    }
    for (t, fd) in fds {
        if let Err(e) = nix::sched::setns(fd.as_fd(), namespaces::flag(*t)) {
            return format!(
                "join {} namespace of the container: {e}",
                namespaces::proc_name(*t)
            );
        }
    }
    if in_userns {
        let _ = nix::unistd::setresgid(0.into(), 0.into(), 0.into());
        let _ = nix::unistd::setresuid(0.into(), 0.into(), 0.into());
    }
    if p.terminal().unwrap_or(false) {
        let size = p
            .console_size()
            .map(|b| (b.height() as u32, b.width() as u32));
        let master = match terminal::setup_pty(size) {
            Ok(m) => m,
            Err(e) => return e.to_string(),
        };
        let r = match console {
            Some(c) => terminal::send_console(c.as_raw_fd(), &master).map_err(|e| e.to_string()),
            None => sock
                .send_with_fd(&Msg::Pty, Some(master.as_raw_fd()))
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = r {
            return e;
        }
    }
    let prepared = match process::apply(p, seccomp, preserve_fds) {
        Ok(p) => p,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = sock.send(&Msg::Ready) {
        return e.to_string();
    }
    process::exec(&prepared).to_string()
}
