//! `create`: the parent side. Validates the bundle, makes the state dir and cgroup, clones the init with its
//! namespaces, writes id maps, puts it in the cgroup, runs runtime hooks when asked, and records the state once
//! the init reports ready. Anything that fails half-way is undone (process, cgroup, state dir).

use crate::namespaces::{self, NsPlan};
use crate::state::{now_rfc3339, proc_stat, ContainerState, Status, FIFO_FILE};
use crate::sync::{self, Msg};
use crate::{cgroup, hooks, init, spec, Result, RuntimeError};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Options of [`create`]. Stdio is inherited from the caller.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// State root (runc's `--root`), e.g. `/run/berth/runtime`.
    pub root: PathBuf,
    pub id: String,
    /// Bundle directory holding `config.json`.
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (SCM_RIGHTS) when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// Fds 3..3+N are passed to the container process.
    pub preserve_fds: u32,
    /// MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
}

/// Creates the container: on success its init waits on the exec fifo for [`crate::start`].
pub fn create(opts: &CreateOptions) -> Result<ContainerState> {
    create_with_console(opts).map(|(st, _)| st)
}

/// Like [`create`], but a terminal container without a console socket hands its pty master to the caller
/// (foreground `run`, or a monitor that owns the container's stdio).
pub fn create_with_console(opts: &CreateOptions) -> Result<(ContainerState, Option<OwnedFd>)> {
    spec::validate_id(&opts.id)?;
    let bundle =
        std::path::absolute(&opts.bundle).map_err(|e| RuntimeError::io("bundle path", e))?;
    let (spec, rootfs) = spec::load_spec(&bundle)?;
    let linux = spec.linux().as_ref().expect("validated");
    let plan = NsPlan::new(linux.namespaces().as_deref().unwrap_or_default())
        .map_err(|e| RuntimeError::Child(e.to_string()))?;
    check_plan(&spec, &plan)?;
    std::fs::create_dir_all(&opts.root)
        .map_err(|e| RuntimeError::io(format!("create state root {}", opts.root.display()), e))?;
    let dir = opts.root.join(&opts.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::AlreadyExists(opts.id.clone()))
        }
        Err(e) => return Err(RuntimeError::io(format!("create {}", dir.display()), e)),
    }
    let mut guard = Cleanup {
        dir: Some(dir.clone()),
        cgroup: None,
        pid: None,
    };
    let fifo = dir.join(FIFO_FILE);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(|e| RuntimeError::sys("create exec fifo", e))?;
    // mkfifo applied our umask; the init may write it as a non-root user.
    nix::sys::stat::fchmodat(
        None,
        &fifo,
        nix::sys::stat::Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| RuntimeError::sys("chmod exec fifo", e))?;
    let cg = cgroup::for_spec(&spec, &opts.id)?;
    cg.create().map_err(cgroup::CgroupAdapterError::from)?;
    guard.cgroup = Some(cg.clone());
    let console = match &opts.console_socket {
        Some(p) => Some(OwnedFd::from(
            std::os::unix::net::UnixStream::connect(p).map_err(|e| {
                RuntimeError::io(format!("connect to console socket {}", p.display()), e)
            })?,
        )),
        None => None,
    };
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut state = ContainerState {
        id: opts.id.clone(),
        pid: 0,
        start_time: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: now_rfc3339(),
        owner: nix::unistd::geteuid().as_raw(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup: Some(cg.clone()),
        config: spec.clone(),
        dir: dir.clone(),
    };
    // Compiled here, not in the child: the cache lives under the state root, which the child cannot see after
    // pivot_root, and a profile error is reported before anything was cloned.
    let seccomp = compile_seccomp(&spec, &opts.root)?;
    let (parent_sock, child_sock) = sync::pair()?;
    // A pid namespace given by path is joined by us: it applies to our next child only.
    let saved_pidns = match &plan.pid_path {
        Some(p) => {
            let own = namespaces::open_ns(Path::new("/proc/self/ns/pid_for_children"))
                .map_err(|e| RuntimeError::Child(e.to_string()))?;
            namespaces::join(p, Some(LinuxNamespaceType::Pid))
                .map_err(|e| RuntimeError::Child(e.to_string()))?;
            Some(own)
        }
        None => None,
    };
    let hook_state = state.hook_state(Status::Creating);
    // SAFETY: the runtime is single-threaded when it creates containers (the CLI and the monitor are); the child
    // only runs `init::run`, which never returns.
    let pid = unsafe { namespaces::clone_fork(plan.clone_flags) };
    if pid == Ok(0) {
        drop(parent_sock);
        init::run(init::InitArgs {
            spec: &spec,
            rootfs: &rootfs,
            bundle: &bundle,
            plan: &plan,
            sock: child_sock,
            fifo,
            console,
            no_pivot: opts.no_pivot,
            preserve_fds: opts.preserve_fds,
            seccomp: seccomp.as_ref(),
            cgroup: Some(&cg),
            hook_state,
        });
    }
    if let Some(own) = saved_pidns {
        let _ = nix::sched::setns(own.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID);
    }
    let pid = pid.map_err(|e| RuntimeError::sys(format!("clone ({:?})", plan.clone_flags), e))?;
    guard.pid = Some(pid);
    drop(child_sock);
    drop(console);
    state.pid = pid;
    state.start_time = proc_stat(pid).map(|s| s.0).unwrap_or(0);
    if !plan.join.is_empty() {
        parent_sock.expect(Msg::NsReady)?;
    }
    if plan.new_user {
        write_id_maps(
            pid,
            linux.uid_mappings().as_deref().unwrap_or_default(),
            linux.gid_mappings().as_deref().unwrap_or_default(),
        )?;
    }
    parent_sock.send(&Msg::Go)?;
    // The child builds its rootfs meanwhile (see init.rs); it waits for CgroupJoined before anything that needs
    // the cgroup (cgroup namespace, hooks, execve).
    cgroup::setup(&cg, &spec, pid)?;
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .map_err(|e| RuntimeError::io("write oom_score_adj", e))?;
    }
    if let Err(e) = parent_sock.send(&Msg::CgroupJoined) {
        // The child may have failed meanwhile: its error message is still queued.
        return match parent_sock.recv() {
            Ok((Msg::Error(m), _)) => Err(RuntimeError::Child(m)),
            _ => Err(e.into()),
        };
    }
    let mut master = None;
    loop {
        match parent_sock.recv() {
            Ok((Msg::RunHooks, _)) => {
                let r = run_runtime_hooks(&spec, &state);
                if let Err(e) = r {
                    let _ = parent_sock.send(&Msg::Error(e.to_string()));
                    return Err(e);
                }
                parent_sock.send(&Msg::HooksDone)?;
            }
            Ok((Msg::Pty, fd)) => master = fd,
            Ok((Msg::Ready, _)) => break,
            Ok((Msg::Error(e), _)) => return Err(RuntimeError::Child(e)),
            Ok((m, _)) => return Err(sync::SyncError::Unexpected(format!("{m:?}")).into()),
            Err(e) => return Err(e.into()),
        }
    }
    if terminal && opts.console_socket.is_none() && master.is_none() {
        return Err(RuntimeError::Child(
            "terminal requested but no pty was received".into(),
        ));
    }
    state.save()?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    guard.disarm();
    Ok((state, master))
}

fn check_plan(spec: &Spec, plan: &NsPlan) -> Result<()> {
    let invalid = |what: &str| RuntimeError::Child(format!("invalid config.json: {what}"));
    let linux = spec.linux().as_ref().expect("validated");
    let has = |t: LinuxNamespaceType| linux.namespaces().iter().flatten().any(|n| n.typ() == t);
    if !has(LinuxNamespaceType::Mount) {
        return Err(invalid("a mount namespace is required"));
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(invalid(
            "unable to set hostname without a private UTS namespace",
        ));
    }
    if plan.new_user
        && (linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty())
            || linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()))
    {
        return Err(invalid(
            "a user namespace needs uidMappings and gidMappings",
        ));
    }
    Ok(())
}

fn run_runtime_hooks(spec: &Spec, state: &ContainerState) -> Result<()> {
    let st = state.hook_state(Status::Creating);
    if let Some(h) = spec.hooks() {
        #[allow(deprecated)]
        if let Some(p) = h.prestart() {
            hooks::run("prestart", p, &st)?;
        }
        if let Some(c) = h.create_runtime() {
            hooks::run("createRuntime", c, &st)?;
        }
    }
    Ok(())
}

fn write_id_maps(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    let fmt = |m: &[LinuxIdMapping]| {
        m.iter()
            .map(|x| format!("{} {} {}\n", x.container_id(), x.host_id(), x.size()))
            .collect::<String>()
    };
    std::fs::write(format!("/proc/{pid}/uid_map"), fmt(uids))
        .map_err(|e| RuntimeError::io("write uid_map", e))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), fmt(gids))
        .map_err(|e| RuntimeError::io("write gid_map", e))?;
    Ok(())
}

/// Writes the pid file atomically (runc: the pid, no newline).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| RuntimeError::io(format!("write pid file {}", path.display()), e))
}

/// Undoes a half-done create: kills and reaps the init, removes the cgroup and the state dir.
struct Cleanup {
    dir: Option<PathBuf>,
    cgroup: Option<berth_cgroups::Cgroup>,
    pid: Option<i32>,
}

impl Cleanup {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.pid = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.destroy();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `linux.seccomp` of `spec` compiled to BPF, through the cache under the state root `root`.
pub(crate) fn compile_seccomp(
    spec: &Spec,
    root: &Path,
) -> Result<Option<crate::security::seccomp::CompiledFilter>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| crate::security::seccomp_cache::compile_cached(s, root))
        .transpose()
        .map_err(|e| RuntimeError::Child(format!("seccomp: {e}")))
}
