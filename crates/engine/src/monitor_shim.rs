//! The monitor's hand-over to `berth-shim` (its steady state) and the way back (`berth monitor --finish`).
//!
//! Once the container runs, the monitor `execveat`s the sealed `berth-shim` fd berthd gave it (`--shim-fd`),
//! passing the container's output fds (or pty master), the stdin fifo and the fd it feeds, the log settings and an
//! fd of its own executable. The process (and pid) stays the same: the init stays its child, the subreaper flag
//! and berthd's pidfd stay valid. When the init has exited, with the builtin runtime the shim records the exit
//! in `monitor.json` itself and exits (berthd deletes the runtime state, detaches and unmounts when it sees
//! the monitor gone); with a runtime CLI it `execveat`s that executable as `berth monitor --finish CODE ...`,
//! which does what needs runtime code ([`finish_main`]).
//!
//! A monitor with other threads (the embedded DNS server of a container on user networks, see
//! [`crate::net`]) does not hand over: an exec would end them. It keeps running the full binary.

use std::ffi::{CString, OsString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{diag, finish, Opts};
use crate::record::{read_json, MonitorStatus};

/// Why the monitor could not hand over to the shim (it then carries on itself).
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// Other threads run in the monitor.
    #[error("{0} threads run (embedded DNS); an exec would end them")]
    Threads(usize),
    /// A syscall failed.
    #[error("{0}: {1}")]
    Sys(&'static str, std::io::Error),
}

/// What the shim takes over.
#[derive(Debug)]
pub(super) struct Handover<'a> {
    pub pid: i32,
    pub out: i32,
    pub err: i32,
    pub log: &'a Path,
    pub max_size: Option<u64>,
    pub max_file: u32,
    pub tty: bool,
    pub stdin: Option<StdinHandover<'a>>,
}

/// The stdin feed of a `-i` container.
#[derive(Debug)]
pub(super) struct StdinHandover<'a> {
    pub fifo: i32,
    pub path: &'a Path,
    pub to_container: Option<i32>,
    pub once: bool,
}

fn set_cloexec(fd: i32, on: bool) {
    // SAFETY: F_SETFD on an fd number only changes its flags.
    unsafe { libc::fcntl(fd, libc::F_SETFD, if on { libc::FD_CLOEXEC } else { 0 }) };
}

/// Replaces this process with the shim; returns only when that failed (and then everything is as before).
pub(super) fn hand_over(o: &Opts, shim_fd: i32, h: &Handover) -> HandoverError {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0);
    if threads != 1 {
        return HandoverError::Threads(threads);
    }
    // Our own executable (berthd started us from its sealed view, so this is that view) for `--finish`.
    // SAFETY: open takes a valid NUL-terminated path; we own the returned fd.
    let exe = unsafe { libc::open(c"/proc/self/exe".as_ptr(), libc::O_RDONLY) };
    if exe < 0 {
        return HandoverError::Sys("open /proc/self/exe", std::io::Error::last_os_error());
    }
    // SAFETY: exe is a fresh fd nothing else owns; it closes again if the exec fails.
    let exe = unsafe { OwnedFd::from_raw_fd(exe) };
    let exe_fd = std::os::fd::AsRawFd::as_raw_fd(&exe);
    let argv0 = std::env::args_os().next().unwrap_or_else(|| "berth".into());
    let shim_argv0 = PathBuf::from(&argv0).with_file_name(super::spawn::SHIM_NAME);
    let mut args: Vec<OsString> = vec![shim_argv0.into(), "monitor".into()];
    let mut add = |k: &str, v: OsString| {
        args.push(k.into());
        args.push(v);
    };
    add("--data-root", o.data_root.clone().into());
    add("--exec-root", o.exec_root.clone().into());
    add("--id", o.id.clone().into());
    add("--runtime", o.runtime.join(" ").into());
    add("--pid", h.pid.to_string().into());
    add("--out", h.out.to_string().into());
    add("--err", h.err.to_string().into());
    add("--log", h.log.into());
    if let Some(m) = h.max_size {
        add("--max-size", m.to_string().into());
    }
    add("--max-file", h.max_file.to_string().into());
    let mut passed = vec![h.out, h.err, exe_fd];
    if let Some(s) = &h.stdin {
        add("--stdin-fifo", s.path.into());
        add("--stdin-fd", s.fifo.to_string().into());
        passed.push(s.fifo);
        if let Some(w) = s.to_container {
            add("--stdin-to", w.to_string().into());
            passed.push(w);
        }
    }
    add("--finish-fd", exe_fd.to_string().into());
    add("--finish-argv0", argv0);
    if h.tty {
        args.push("--tty".into());
    }
    if h.stdin.as_ref().is_some_and(|s| s.once) {
        args.push("--stdin-once".into());
    }
    let args: Vec<CString> = args
        .iter()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    for fd in &passed {
        set_cloexec(*fd, false);
    }
    // SAFETY: argv/envp are NULL-terminated arrays of valid C strings that outlive the call; on success the call
    // does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            shim_fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    let err = std::io::Error::last_os_error();
    for fd in &passed {
        set_cloexec(*fd, true);
    }
    drop(exe);
    HandoverError::Sys("execveat berth-shim", err)
}

/// `berth monitor --finish CODE`: the shim's last step, after the container exited with CODE.
pub(super) fn finish_main(o: &Opts, code: i32) -> i32 {
    let started: MonitorStatus =
        read_json(&MonitorStatus::path(&o.data_root, &o.id)).unwrap_or_default();
    let layer = berth_storage::RwLayer::open(&o.data_root, &o.id);
    if let Err(e) = &layer {
        diag(o, &format_args!("rootfs: {e}"));
    }
    match finish(o, code, started, layer.as_ref().ok()) {
        Ok(()) => 0,
        Err(e) => {
            diag(o, &e);
            1
        }
    }
}
