//! The container's init, on the child side of the single `clone`: namespaces, rootfs, hooks, pivot, process
//! security, then wait on the exec fifo and `execve`. Runs in a single-threaded process; every error is sent
//! to the parent as one line and the child exits.

use crate::mounts::MountCtx;
use crate::namespaces::{self, NsPlan};
use crate::sync::{Msg, SyncSocket};
use crate::{hooks, process, rootfs, terminal};
use oci_spec::runtime::Spec;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Everything the init needs, prepared by the parent before the clone.
pub(crate) struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub plan: &'a NsPlan,
    pub sock: SyncSocket,
    pub fifo: PathBuf,
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// `linux.seccomp`, compiled by the parent (cached on disk under the runtime root).
    pub seccomp: Option<&'a crate::security::seccomp::CompiledFilter>,
    pub cgroup: Option<&'a berth_cgroups::Cgroup>,
    /// The container state for createContainer/startContainer hooks.
    pub hook_state: serde_json::Value,
}

/// Runs the init; never returns.
pub(crate) fn run(args: InitArgs) -> ! {
    let err = match setup(&args) {
        Ok(e) => e,
        Err(e) => {
            let _ = args.sock.send(&Msg::Error(e));
            // SAFETY: _exit skips atexit handlers and stdio flushing that belong to the parent's copy.
            unsafe { libc::_exit(1) }
        }
    };
    // Only reached after the parent is gone (start released us) and execve failed: stderr is all we have.
    eprintln!("berth runtime: {err}");
    // SAFETY: see above.
    unsafe { libc::_exit(127) }
}

fn setup(a: &InitArgs) -> Result<String, String> {
    // Not dumpable until execve: the container cannot ptrace or open /proc/<pid>/* of this process while it
    // still holds host fds and runs the runtime's code.
    // SAFETY: prctl(PR_SET_DUMPABLE) only changes a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    process::reset_signals();
    let s = |e: &dyn std::fmt::Display| e.to_string();
    let plan = a.plan;
    if !plan.join.is_empty() {
        for (t, p) in &plan.join {
            namespaces::join(p, Some(*t)).map_err(|e| s(&e))?;
        }
        if !plan.unshare.is_empty() {
            nix::sched::unshare(plan.unshare).map_err(|e| format!("unshare namespaces: {e}"))?;
        }
        a.sock.send(&Msg::NsReady).map_err(|e| s(&e))?;
    } else if !plan.unshare.is_empty() {
        nix::sched::unshare(plan.unshare).map_err(|e| format!("unshare namespaces: {e}"))?;
    }
    // Id maps written. The parent now moves us into the cgroup while we build the rootfs: the move waits for
    // an RCU grace period in the kernel, so doing both at once hides most of it.
    a.sock.expect(Msg::Go).map_err(|e| s(&e))?;
    if plan.any_user {
        // Become root of the user namespace (we are "nobody" there until we do).
        let _ = nix::unistd::setresgid(0.into(), 0.into(), 0.into());
        let _ = nix::unistd::setresuid(0.into(), 0.into(), 0.into());
    }
    // A fresh cgroup2 mount (pure v2 host) needs our cgroup namespace already: wait for the cgroup first.
    let v2_mount = a
        .cgroup
        .is_some_and(|c| c.layout == berth_cgroups::Layout::V2);
    let early = plan.new_cgroup && v2_mount;
    if early {
        join_cgroup(a, plan)?;
    }
    rootfs::set_names(a.spec).map_err(|e| s(&e))?;
    let root = rootfs::prepare_root(a.spec, a.rootfs).map_err(|e| s(&e))?;
    let ctx = MountCtx {
        root_fd: root.as_raw_fd(),
        bundle: a.bundle,
        in_userns: plan.any_user,
        new_cgroupns: plan.new_cgroup,
        cgroup: a.cgroup,
    };
    rootfs::setup_mounts(&ctx, a.spec).map_err(|e| s(&e))?;
    drop(root);
    // Keep a path-only handle on the fifo: after pivot_root its host path is gone.
    let fifo = nix::fcntl::open(
        &a.fifo,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open exec fifo: {e}"))?;
    let hooks = a.spec.hooks().as_ref();
    #[allow(deprecated)]
    let runtime_hooks =
        hooks.is_some_and(|h| h.prestart().is_some() || h.create_runtime().is_some());
    let container_hooks = hooks.and_then(|h| h.create_container().as_ref());
    // Hooks see a container that is in its cgroup; without hooks, the join can wait until the last moment
    // that still has CAP_SYS_ADMIN for the cgroup namespace (before the process settings).
    let mut joined = early;
    if !joined && (runtime_hooks || container_hooks.is_some()) {
        join_cgroup(a, plan)?;
        joined = true;
    }
    if runtime_hooks {
        a.sock.send(&Msg::RunHooks).map_err(|e| s(&e))?;
        a.sock.expect(Msg::HooksDone).map_err(|e| s(&e))?;
    }
    if let Some(h) = container_hooks {
        hooks::run("createContainer", h, &a.hook_state).map_err(|e| s(&e))?;
    }
    rootfs::pivot(a.rootfs, a.no_pivot).map_err(|e| s(&e))?;
    rootfs::apply_root_propagation(a.spec).map_err(|e| s(&e))?;
    rootfs::finish(a.spec, plan.any_user).map_err(|e| s(&e))?;
    let proc = a
        .spec
        .process()
        .as_ref()
        .ok_or("config.json has no process")?;
    if proc.terminal().unwrap_or(false) {
        let size = proc
            .console_size()
            .map(|b| (b.height() as u32, b.width() as u32));
        let master = terminal::setup_pty(size).map_err(|e| s(&e))?;
        match &a.console {
            Some(sock) => terminal::send_console(sock.as_raw_fd(), &master).map_err(|e| s(&e))?,
            None => a
                .sock
                .send_with_fd(&Msg::Pty, Some(master.as_raw_fd()))
                .map_err(|e| s(&e))?,
        }
    }
    if !joined {
        join_cgroup(a, plan)?;
    }
    let prepared = process::apply(proc, a.seccomp, a.preserve_fds).map_err(|e| s(&e))?;
    a.sock.send(&Msg::Ready).map_err(|e| s(&e))?;
    // Block until `start` opens the fifo for reading.
    let fifo_path = format!("/proc/self/fd/{}", fifo);
    let w = loop {
        match nix::fcntl::open(
            fifo_path.as_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Err(nix::Error::EINTR) => continue,
            r => break r.map_err(|e| format!("open exec fifo for writing: {e}"))?,
        }
    };
    // startContainer hooks run before we tell `start`, and the fifo stays open (close-on-exec) so `start` sees
    // EOF only once execve succeeded: poststart hooks then really run after the process started.
    if let Some(h) = hooks.and_then(|h| h.start_container().as_ref()) {
        let mut st = a.hook_state.clone();
        st["status"] = serde_json::json!("running");
        if let Err(e) = hooks::run("startContainer", h, &st) {
            return Ok(e.to_string());
        }
    }
    let _ = nix::unistd::write(unsafe_borrow(w), b"0");
    let _ = nix::unistd::close(fifo);
    Ok(process::exec(&prepared).to_string())
}

/// Waits until the parent put us in the container's cgroup, then unshares the cgroup namespace (its root is
/// then that cgroup). Mknod before this point is fine: the device rules allow mknod of any node.
fn join_cgroup(a: &InitArgs, plan: &NsPlan) -> Result<(), String> {
    a.sock
        .expect(Msg::CgroupJoined)
        .map_err(|e| e.to_string())?;
    if plan.new_cgroup {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| format!("unshare cgroup namespace: {e}"))?;
    }
    Ok(())
}

fn unsafe_borrow(fd: std::os::fd::RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the caller keeps `fd` open for as long as the borrow is used (the next statement).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
