//! The per-container monitor: a small single-threaded process, exec'd by berthd, that creates and starts one
//! container, owns its stdio and logs, reaps it and records its exit status.
//!
//! `berth monitor --data-root D --exec-root E --id ID [--runtime builtin|CMD] [--sync-fd N]`
//!
//! With `--runtime builtin` (the default) the container is created and started in-process through
//! `berth_runtime::create`/`start`, so the monitor is the init's parent. With a command (`runc`, `berth runtime`)
//! the runc-compatible CLI is used in pass-through stdio mode. Either way the container's stdout/stderr are pipes
//! this process reads; it is a child subreaper, so a container init created by a CLI becomes its child too.
//!
//! Protocol with berthd (all a caller needs to start a container, e.g. again after an exit):
//!
//! 1. berthd writes the bundle (`config.json`, the network plan), removes `monitor.json` and spawns
//!    `berth monitor --data-root D --exec-root E --id ID --runtime R --sync-fd 3 [--shim-fd N]` in its own
//!    session with stdio on /dev/null ([`spawn::command`] runs it from a sealed view, [`spawn::pass_shim`] adds
//!    the shim fd), and watches the monitor's pid with a pidfd.
//! 2. Once the container runs (or failed to), the monitor writes `ok PID STARTED_AT\n` (older monitors: `ok\n`,
//!    and then `pid`/`started_at` are in `monitor.json`) or `error: MSG\n` to the sync fd and closes it. It
//!    writes `pid`/`started_at` to `monitor.json` once the container has run for a moment (a container that is
//!    over before that gets only the exit record, which has them too).
//! 3. The exit is recorded in `monitor.json` (see [`MonitorStatus`]) before the process exits, so berthd only
//!    needs to notice its death. The pid never changes, so a restarted berthd re-adopts it by pid (its command
//!    line always has `monitor` and the id).
//!
//! Steady state: with `--shim-fd`, once the container runs the monitor `execve`s the small `berth-shim` (std +
//! libc, statically linked; crates/shim) in the same process, which pumps output into the log, feeds stdin and
//! reaps, then `execve`s `berth monitor --finish CODE ...` for the cleanup ([`shim`] module). This keeps a
//! running container's monitor around 1 MB RSS instead of the full binary's 5-6 MB. A monitor whose
//! embedded DNS thread runs (user networks), or without a shim, stays in this binary and pumps itself.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

#[path = "monitor_spawn.rs"]
pub mod spawn;

#[path = "monitor_shim.rs"]
mod shim;

use crate::logs::Writer;
use crate::record::{now_rfc3339, write_json_sync, Container, Durability, MonitorStatus};

/// Errors of the monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Bad command line.
    #[error("usage: berth monitor --data-root D --exec-root E --id ID [--runtime BIN] [--sync-fd N]: {0}")]
    Usage(String),
    /// The container could not be created or started.
    #[error("{0}")]
    Start(String),
    /// I/O.
    #[error("{0}: {1}")]
    Io(String, io::Error),
    /// A syscall failed.
    #[error("{0}: {1}")]
    Sys(&'static str, nix::Error),
}

/// Parsed command line.
#[derive(Debug)]
pub(crate) struct Opts {
    pub(crate) data_root: PathBuf,
    pub(crate) exec_root: PathBuf,
    pub(crate) id: String,
    pub(crate) runtime: Vec<String>,
    sync_fd: Option<i32>,
    /// `--exec FILE`: run the OCI process in FILE inside the running container instead (see [`crate::exec`]).
    pub(crate) exec: Option<PathBuf>,
    /// `--shim-fd N`: a sealed view of `berth-shim` to hand the running container over to (module doc).
    shim_fd: Option<i32>,
    /// `--finish CODE`: the container exited with CODE; clean up and record it (the shim's last step).
    finish: Option<i32>,
}

fn parse(args: &[OsString]) -> Result<Opts, MonitorError> {
    let mut it = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let (mut data_root, mut exec_root, mut id, mut runtime, mut sync_fd, mut exec) =
        (None, None, None, None, None, None);
    let (mut shim_fd, mut finish) = (None, None);
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| MonitorError::Usage(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--data-root" => data_root = Some(PathBuf::from(val()?)),
            "--exec-root" => exec_root = Some(PathBuf::from(val()?)),
            "--id" => id = Some(val()?),
            "--exec" => exec = Some(PathBuf::from(val()?)),
            "--runtime" => runtime = Some(val()?),
            "--shim-fd" => {
                shim_fd = Some(
                    val()?
                        .parse()
                        .map_err(|_| MonitorError::Usage("bad --shim-fd".into()))?,
                )
            }
            "--finish" => {
                finish = Some(
                    val()?
                        .parse()
                        .map_err(|_| MonitorError::Usage("bad --finish".into()))?,
                )
            }
            "--sync-fd" => {
                sync_fd = Some(
                    val()?
                        .parse()
                        .map_err(|_| MonitorError::Usage("bad --sync-fd".into()))?,
                )
            }
            other => return Err(MonitorError::Usage(format!("unknown argument {other}"))),
        }
    }
    let id = id.ok_or_else(|| MonitorError::Usage("--id is required".into()))?;
    if id.len() != 64 || !id.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(MonitorError::Usage(format!("bad id {id}")));
    }
    Ok(Opts {
        data_root: data_root
            .ok_or_else(|| MonitorError::Usage("--data-root is required".into()))?,
        exec_root: exec_root
            .ok_or_else(|| MonitorError::Usage("--exec-root is required".into()))?,
        id,
        runtime: runtime
            .unwrap_or_else(|| "builtin".into())
            .split_whitespace()
            .map(String::from)
            .collect(),
        sync_fd,
        exec,
        shim_fd,
        finish,
    })
}

/// Entry point for `berth monitor ARGS...`; returns the process exit code.
pub fn main(args: &[OsString]) -> i32 {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("berth monitor: {e}");
            return 2;
        }
    };
    if let Some(fd) = opts.shim_fd {
        // Only this process may ever run it: keep it out of the runtime's and the container's processes.
        // SAFETY: F_SETFD on an fd number only changes its flags.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    if let Some(code) = opts.finish {
        return shim::finish_main(&opts, code);
    }
    if builtin(&opts) {
        // CVE-2019-5736: the process that creates the container runs from a sealed memfd copy of our binary.
        if let Err(e) = berth_runtime::ensure_sealed_exe() {
            eprintln!("berth monitor: {e}");
            return 1;
        }
    }
    if opts.exec.is_some() {
        return crate::exec::helper_main(&opts);
    }
    if let Some(fd) = opts.sync_fd {
        // Keep the sync pipe out of the runtime's and the container's processes.
        // SAFETY: F_SETFD on an fd number only changes its flags.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: the fd number comes from berthd, which passed this fd to us and nothing else in this process
    // owns it.
    let mut sync = opts.sync_fd.map(|fd| unsafe { File::from_raw_fd(fd) });
    match run(&opts, &mut sync) {
        Ok(()) => 0,
        Err(e) => {
            diag(&opts, &e);
            if let Some(mut s) = sync.take() {
                let _ = writeln!(s, "error: {e}");
            }
            let st = MonitorStatus {
                exit_code: Some(if matches!(e, MonitorError::Start(_)) {
                    127
                } else {
                    255
                }),
                finished_at: Some(now_rfc3339()),
                error: Some(e.to_string()),
                ..Default::default()
            };
            let _ = write_status(&opts, &st);
            1
        }
    }
}

/// Appends a line to the container's `monitor.log`, made on first use: berthd gives the monitor /dev/null for
/// stdio, and a run with nothing to report creates no file.
pub(crate) fn diag(o: &Opts, msg: &dyn std::fmt::Display) {
    let p = Container::dir(&o.data_root, &o.id).join("monitor.log");
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(p) {
        let _ = writeln!(f, "{} berth monitor {}: {msg}", now_rfc3339(), o.id);
    }
}

/// Writes `monitor.json`. Without an fsync: it describes one run, which a power loss ends (record.rs).
pub(crate) fn write_status(o: &Opts, st: &MonitorStatus) -> Result<(), MonitorError> {
    write_json_sync(
        &MonitorStatus::path(&o.data_root, &o.id),
        st,
        Durability::None,
    )
    .map_err(|e| MonitorError::Start(e.to_string()))
}

/// Whether the container runs through berth-runtime in this process rather than a runtime CLI.
pub(crate) fn builtin(o: &Opts) -> bool {
    o.runtime.first().is_none_or(|r| r == "builtin")
}

pub(crate) fn runtime_root(o: &Opts) -> PathBuf {
    o.exec_root.join("runtime")
}

/// Forcibly deletes the runtime's container (its state and cgroup); absent is fine.
fn rt_delete(o: &Opts) {
    if builtin(o) {
        let _ = berth_runtime::delete(&runtime_root(o), &o.id, true);
    } else {
        let _ = runtime_cmd(o)
            .args(["delete", "--force", &o.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Creates the container with `out_w`/`err_w` as its stdout/stderr; returns the init's pid, or a message
/// (empty: look at what the runtime printed into the pipes).
fn rt_create(
    o: &Opts,
    bundle: &Path,
    in_r: Option<OwnedFd>,
    out_w: OwnedFd,
    err_w: OwnedFd,
) -> Result<(i32, Option<OwnedFd>), String> {
    if builtin(o) {
        // berth_runtime::create gives the init our stdio: point fds 1 and 2 at the pipes for the call, then
        // back, so that only the container holds the write ends afterwards.
        let saved: Vec<Option<OwnedFd>> = [0, 1, 2]
            .iter()
            .map(|fd| {
                // SAFETY: F_DUPFD_CLOEXEC returns a new fd or -1; we own the result.
                let n = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10) };
                // SAFETY: n is a fresh fd nothing else owns.
                (n >= 0).then(|| unsafe { OwnedFd::from_raw_fd(n) })
            })
            .collect();
        if let Some(r) = &in_r {
            let _ = nix::unistd::dup2(r.as_raw_fd(), 0);
        }
        let _ = nix::unistd::dup2(out_w.as_raw_fd(), 1);
        let _ = nix::unistd::dup2(err_w.as_raw_fd(), 2);
        drop((in_r, out_w, err_w));
        // A terminal container gets a pty instead of our pipes; its master comes back to us.
        let res = berth_runtime::create_with_console(&berth_runtime::CreateOptions {
            root: runtime_root(o),
            id: o.id.clone(),
            bundle: bundle.to_path_buf(),
            // The pid comes back from the call: no pid file to create.
            pid_file: None,
            console_socket: None,
            preserve_fds: 0,
            no_pivot: false,
        });
        for (fd, s) in [0, 1, 2].into_iter().zip(saved) {
            match s {
                Some(s) => {
                    let _ = nix::unistd::dup2(s.as_raw_fd(), fd);
                }
                None => {
                    let _ = nix::unistd::close(fd);
                }
            }
        }
        return res
            .map(|(st, master)| (st.pid, master))
            .map_err(|e| e.to_string());
    }
    let pid_file = bundle.join("init.pid");
    let _ = fs::remove_file(&pid_file);
    let status = {
        let mut cmd = runtime_cmd(o);
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&o.id);
        cmd.stdin(in_r.map(Stdio::from).unwrap_or_else(Stdio::null))
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w));
        cmd.status()
            .map_err(|e| format!("running {}: {e}", o.runtime[0]))?
        // cmd (and with it our copies of the pipes' write ends) is dropped here: only the container keeps them.
    };
    if !status.success() {
        return Err(String::new());
    }
    fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(|pid| (pid, None))
        .ok_or_else(|| "runtime wrote no pid file".to_string())
}

/// Releases the created container into its process.
fn rt_start(o: &Opts) -> Result<(), String> {
    if builtin(o) {
        return berth_runtime::start(&runtime_root(o), &o.id).map_err(|e| e.to_string());
    }
    let out = runtime_cmd(o)
        .args(["start", &o.id])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", o.runtime[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(runtime_message(&String::from_utf8_lossy(&out.stderr)))
    }
}

pub(crate) fn runtime_cmd(o: &Opts) -> Command {
    let mut c = Command::new(&o.runtime[0]);
    c.args(&o.runtime[1..])
        .arg("--root")
        .arg(o.exec_root.join("runtime"));
    c
}

/// Pulls a readable message out of the runtime's stderr (runc logs `level=error msg="..."`).
fn runtime_message(raw: &str) -> String {
    let line = raw
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if let Some(i) = line.find("msg=") {
        let m = &line[i + 4..];
        if let Some(stripped) = m.strip_prefix('"') {
            return stripped.trim_end_matches('"').replace("\\\"", "\"");
        }
        return m.to_string();
    }
    line.to_string()
}

fn read_nonblocking(fd: &OwnedFd, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 16384];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => return true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

/// Reads the OOM-kill counter of the container's cgroup (v1 memory.oom_control or v2 memory.events).
fn oom_killed(id: &str) -> bool {
    let candidates = [
        format!("/sys/fs/cgroup/memory/berth/{id}/memory.oom_control"),
        format!("/sys/fs/cgroup/berth/{id}/memory.events"),
    ];
    candidates.iter().any(|p| {
        fs::read_to_string(p).ok().is_some_and(|s| {
            s.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    > 0
            })
        })
    })
}

fn run(o: &Opts, sync: &mut Option<File>) -> Result<(), MonitorError> {
    let dir = Container::dir(&o.data_root, &o.id);
    let c = Container::load(&o.data_root, &o.id).map_err(|e| MonitorError::Start(e.to_string()))?;
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r != 0 {
        return Err(MonitorError::Sys(
            "prctl(PR_SET_CHILD_SUBREAPER)",
            nix::Error::last(),
        ));
    }
    let layer = berth_storage::RwLayer::open(&o.data_root, &o.id)
        .map_err(|e| MonitorError::Start(e.to_string()))?;
    layer
        .mount()
        .map_err(|e| MonitorError::Start(e.to_string()))?;

    let log_cfg = &c.host_config["LogConfig"]["Config"];
    let max_size = log_cfg["max-size"]
        .as_str()
        .and_then(crate::spec::parse_size);
    let max_file = log_cfg["max-file"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut writer = Writer::open(Path::new(&c.log_path), max_size, max_file)
        .map_err(|e| MonitorError::Start(e.to_string()))?;

    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| MonitorError::Sys("pipe", e))?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| MonitorError::Sys("pipe", e))?;
    // `-i`: the container reads a pipe we feed from `stdin.fifo`, which berthd writes what attach clients send.
    let mut stdin = None;
    let mut in_r = None;
    if c.config["OpenStdin"].as_bool().unwrap_or(false) {
        let fifo = dir.join(STDIN_FIFO);
        let _ = fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| MonitorError::Sys("mkfifo stdin", e))?;
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| MonitorError::Sys("pipe", e))?;
        in_r = Some(r);
        stdin = Some(StdinFeed {
            fifo: open_fifo(&fifo)?,
            path: fifo,
            to_container: Some(w),
            // Like dockerd, a TTY container's stdin survives its clients (detach, then attach again).
            once: c.config["StdinOnce"].as_bool().unwrap_or(false)
                && !c.config["Tty"].as_bool().unwrap_or(false),
        });
    }
    // Stale runtime state from a crashed earlier run would make create fail with "already exists".
    rt_delete(o);
    let tty = c.config["Tty"].as_bool().unwrap_or(false);
    if tty && !builtin(o) {
        let _ = layer.unmount();
        return Err(MonitorError::Start(
            "a TTY container needs the builtin runtime (--runtime builtin)".into(),
        ));
    }
    let (pid, master) = match rt_create(o, &dir, in_r, out_w, err_w) {
        Ok(v) => v,
        Err(msg) => {
            let mut raw = Vec::new();
            set_nonblocking(&err_r);
            set_nonblocking(&out_r);
            read_nonblocking(&err_r, &mut raw);
            read_nonblocking(&out_r, &mut raw);
            rt_delete(o);
            let _ = layer.unmount();
            let msg = if msg.is_empty() {
                runtime_message(&String::from_utf8_lossy(&raw))
            } else {
                msg
            };
            return Err(MonitorError::Start(format!(
                "OCI runtime create failed: {msg}"
            )));
        }
    };
    // With a TTY the container's output (stdout and stderr alike) is what the pty master reads, and its
    // input is what we write to the master.
    let out_r = match master {
        Some(m) => {
            if let Some(s) = stdin.as_mut() {
                s.to_container = m.try_clone().ok();
            }
            m
        }
        None => out_r,
    };
    set_nonblocking(&out_r);
    set_nonblocking(&err_r);
    // Networking: the namespace exists and the process has not started yet.
    if let Err(e) = crate::net::monitor_attach(&o.data_root, &o.id, pid) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = wait_for(pid, true);
        rt_delete(o);
        let _ = layer.unmount();
        return Err(MonitorError::Start(format!("network setup failed: {e}")));
    }
    if let Err(msg) = rt_start(o) {
        crate::net::monitor_detach(&o.data_root, &o.id);
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = wait_for(pid, true);
        rt_delete(o);
        let _ = layer.unmount();
        return Err(MonitorError::Start(format!(
            "OCI runtime start failed: {msg}"
        )));
    }
    let started = MonitorStatus {
        pid,
        started_at: now_rfc3339(),
        ..Default::default()
    };
    // berthd learns the pid and start time through the pipe; monitor.json gets them below, once the
    // container outlived its first moments (a container that is over by then gets one write, with its exit).
    if let Some(mut s) = sync.take() {
        let _ = writeln!(s, "ok {pid} {}", started.started_at);
    }

    // The steady state in the small berth-shim; `hand_over` returns only when that is not possible, and then
    // this process carries on. Not worth an exec for a container that is over at once (`hello-world`,
    // `true`): the first moments are pumped here, and only a container still running after them is handed
    // over (the memory a long-running container's monitor holds is what the shim is for).
    let mut exited = None;
    if o.shim_fd.is_some() {
        let begun = std::time::Instant::now();
        loop {
            let until = std::time::Instant::now() + HANDOVER_AFTER;
            exited = pump(
                pid,
                Some(until),
                &out_r,
                &err_r,
                &mut writer,
                &mut stdin,
                tty,
            );
            // The shim starts with an empty line buffer: hand over between lines, so a line is not split
            // into two log entries (unless it never ends).
            if exited.is_some() || !writer.has_partial() || begun.elapsed() >= HANDOVER_LATEST {
                break;
            }
        }
        let _ = writer.flush_partial();
    }
    if exited.is_none() {
        // From here on a berthd that restarts finds the run in monitor.json (it re-adopts a live monitor by it),
        // and the shim takes the pid and start time from it.
        if let Err(e) = write_status(o, &started) {
            diag(o, &e);
        }
    }
    if let (Some(shim_fd), None) = (o.shim_fd, exited) {
        let h = shim::Handover {
            pid,
            out: out_r.as_raw_fd(),
            err: err_r.as_raw_fd(),
            log: Path::new(&c.log_path),
            max_size,
            max_file,
            tty,
            stdin: stdin.as_ref().map(|s| shim::StdinHandover {
                fifo: s.fifo.as_raw_fd(),
                path: &s.path,
                to_container: s.to_container.as_ref().map(|w| w.as_raw_fd()),
                once: s.once,
            }),
        };
        let e = shim::hand_over(o, shim_fd, &h);
        diag(o, &format_args!("staying in berth: {e}"));
    }
    let exit_code = match exited {
        Some(code) => code,
        None => pump(pid, None, &out_r, &err_r, &mut writer, &mut stdin, tty).unwrap_or(255),
    };
    if let Some(s) = &stdin {
        let _ = fs::remove_file(&s.path);
    }
    let _ = writer.flush_partial();
    finish(o, exit_code, started, Some(&layer))
}

/// After the container exited: OOM check and the exit in `monitor.json` (keeping `started`'s pid and start
/// time). With a runtime CLI also its delete, the network detach and the rootfs unmount; with the builtin
/// runtime berthd does those when it sees the monitor gone (`cleanup_run` in engine/lifecycle.rs), which
/// spares this process the work and berth-shim the exec of the full binary.
fn finish(
    o: &Opts,
    exit_code: i32,
    started: MonitorStatus,
    layer: Option<&berth_storage::RwLayer>,
) -> Result<(), MonitorError> {
    let oom = oom_killed(&o.id);
    if !builtin(o) {
        rt_delete(o);
        crate::net::monitor_detach(&o.data_root, &o.id);
        if let Some(Err(e)) = layer.map(|l| l.unmount()) {
            diag(o, &format_args!("unmount rootfs: {e}"));
        }
    }
    let done = MonitorStatus {
        exit_code: Some(exit_code),
        finished_at: Some(now_rfc3339()),
        oom_killed: oom,
        ..started
    };
    write_status(o, &done)
}

/// How long a freshly started container's output is pumped by the full monitor before the shim takes over.
const HANDOVER_AFTER: std::time::Duration = std::time::Duration::from_millis(20);
/// The latest the hand-over waits for a line to end.
const HANDOVER_LATEST: std::time::Duration = std::time::Duration::from_secs(2);

/// Copies the container's output into the log until it exits; returns its exit code (128+signal if killed),
/// or None when `until` came first (the container still runs; nothing read is lost).
fn pump(
    pid: i32,
    until: Option<std::time::Instant>,
    out_r: &OwnedFd,
    err_r: &OwnedFd,
    writer: &mut Writer,
    stdin: &mut Option<StdinFeed>,
    tty: bool,
) -> Option<i32> {
    let mut open = [true, true];
    let mut code: Option<i32> = None;
    let mut buf = [0u8; 32768];
    // Time left before `until` (None: no limit); Some(ZERO) once it has passed.
    let left = || until.map(|u| u.saturating_duration_since(std::time::Instant::now()));
    loop {
        if code.is_none() && left().is_some_and(|l| l.is_zero()) {
            return None;
        }
        if open.iter().any(|o| *o) {
            let mut fds = Vec::new();
            let mut which = Vec::new();
            for (i, fd) in [out_r, err_r].into_iter().enumerate() {
                if open[i] {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    which.push(i);
                }
            }
            let feeding =
                stdin.as_ref().is_some_and(|s| s.to_container.is_some()) && code.is_none();
            if let Some(s) = stdin.as_ref().filter(|_| feeding) {
                fds.push(PollFd::new(s.fifo.as_fd(), PollFlags::POLLIN));
                which.push(2);
            }
            // A timeout, so we notice the init's exit even while a leftover process holds the pipes.
            let timeout = if code.is_some() {
                PollTimeout::ZERO
            } else {
                let ms = left().map_or(200, |l| l.as_millis().clamp(1, 200) as u16);
                PollTimeout::from(ms)
            };
            let ready = poll(&mut fds, timeout).unwrap_or(0);
            let revents: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            for (k, i) in which.into_iter().enumerate() {
                if !revents[k] {
                    continue;
                }
                if i == 2 {
                    if let Some(s) = stdin.as_mut() {
                        s.forward(&mut buf);
                    }
                    continue;
                }
                let fd = if i == 0 { out_r } else { err_r };
                match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                    Ok(0) => open[i] = false,
                    Ok(n) => {
                        let _ = writer.feed(i as u8 + 1, &buf[..n]);
                        if tty {
                            // Interactive output (prompts) has no newline to wait for.
                            let _ = writer.flush_partial();
                        }
                    }
                    Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {}
                    Err(_) => open[i] = false,
                }
            }
            if code.is_some() && ready == 0 {
                // Exited and nothing more to read right now: done (a process that escaped the pid namespace
                // may hold the pipes forever).
                break;
            }
        } else if code.is_none() {
            // Both pipes closed: nothing more to log, block until the init exits (or look again until `until`).
            match left() {
                None => code = wait_for(pid, true),
                Some(l) => {
                    code = wait_for(pid, false);
                    if code.is_none() {
                        std::thread::sleep(l.min(std::time::Duration::from_millis(2)));
                    }
                }
            }
            continue;
        } else {
            break;
        }
        if code.is_none() {
            code = wait_for(pid, false);
        }
    }
    Some(code.unwrap_or(255))
}

/// Name of the fifo berthd writes a `-i` container's stdin into.
pub const STDIN_FIFO: &str = "stdin.fifo";

fn open_fifo(path: &Path) -> Result<OwnedFd, MonitorError> {
    use nix::fcntl::OFlag;
    // Non-blocking: there is no writer until an attach client sends something.
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| MonitorError::Sys("open stdin fifo", e))?;
    // SAFETY: open returned a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Feeds what attach clients write into `stdin.fifo` to the container's stdin pipe.
struct StdinFeed {
    fifo: OwnedFd,
    path: PathBuf,
    to_container: Option<OwnedFd>,
    /// `StdinOnce`: the first client's EOF closes the container's stdin.
    once: bool,
}

impl StdinFeed {
    fn forward(&mut self, buf: &mut [u8]) {
        match nix::unistd::read(self.fifo.as_raw_fd(), buf) {
            Ok(0) => {
                // The writer went away: end of input for StdinOnce, otherwise wait for the next client (a fresh
                // open resets the fifo's hang-up state).
                if self.once {
                    self.to_container = None;
                } else if let Ok(f) = open_fifo(&self.path) {
                    self.fifo = f;
                }
            }
            Ok(n) => {
                // A container that stopped reading gets EPIPE; drop its stdin then.
                let ok = self
                    .to_container
                    .as_ref()
                    .and_then(|w| w.try_clone().ok())
                    .is_some_and(|w| File::from(w).write_all(&buf[..n]).is_ok());
                if !ok {
                    self.to_container = None;
                }
            }
            Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {}
            Err(_) => self.to_container = None,
        }
    }
}

/// Reaps children (we are a subreaper, so orphans land here too); returns the init's exit code once it exited.
pub(crate) fn wait_for(pid: i32, block: bool) -> Option<i32> {
    loop {
        let flags = if block {
            None
        } else {
            Some(WaitPidFlag::WNOHANG)
        };
        match waitpid(Pid::from_raw(-1), flags) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == pid => return Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => return Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            // No children at all: the init is gone without us seeing it (should not happen).
            Err(_) => return Some(255),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_args_and_messages() {
        let id = "a".repeat(64);
        let args: Vec<OsString> = [
            "monitor",
            "--data-root",
            "/d",
            "--exec-root",
            "/e",
            "--id",
            &id,
            "--runtime",
            "berth runtime",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let o = parse(&args).unwrap();
        assert_eq!(o.runtime, vec!["berth", "runtime"]);
        assert!(parse(&args[..5]).is_err());
        let m = runtime_message(
            "time=\"x\" level=error msg=\"runc create failed: exec: \\\"nope\\\": not found\"\n",
        );
        assert_eq!(m, "runc create failed: exec: \"nope\": not found");
    }
}
