//! docker-init: berth's `--init`, a tiny PID 1 like tini. It runs the command as its child, forwards the
//! signals it receives to that child, reaps every zombie re-parented to it, and exits with the child's status
//! (128+signal for a signal). Built by crates/engine/build.rs as a static, dependency-free binary; berthd
//! bind-mounts it read-only at /sbin/docker-init. No std runtime entry (`no_main`): std's start-up would set
//! SIGPIPE to ignored, which the command would inherit.
#![no_main]

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

/// glibc's sigset_t (1024 bits).
#[repr(C)]
struct SigSet([u64; 16]);

/// glibc's siginfo_t (128 bytes, si_signo first).
#[repr(C)]
struct SigInfo([c_int; 32]);

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigdelset(set: *mut SigSet, sig: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigtimedwait(set: *const SigSet, info: *mut SigInfo, timeout: *const Timespec) -> c_int;
    fn fork() -> c_int;
    fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn setpgid(pid: c_int, pgid: c_int) -> c_int;
    fn getpid() -> c_int;
    fn isatty(fd: c_int) -> c_int;
    fn tcsetpgrp(fd: c_int, pgrp: c_int) -> c_int;
    fn _exit(code: c_int) -> !;
    fn __errno_location() -> *mut c_int;
}

const SIG_BLOCK: c_int = 0;
const SIG_SETMASK: c_int = 2;
const WNOHANG: c_int = 1;
const SIGCHLD: c_int = 17;
const ENOENT: c_int = 2;
const EAGAIN: c_int = 11;
const EINTR: c_int = 4;
/// Signals that report a fault of this very process: never block or forward them.
const SYNCHRONOUS: [c_int; 6] = [4, 5, 6, 7, 8, 11];

fn status_code(st: c_int) -> c_int {
    if st & 0x7f == 0 {
        (st >> 8) & 0xff
    } else {
        128 + (st & 0x7f)
    }
}

/// # Safety
/// Called by the C runtime with the process' argc/argv.
#[no_mangle]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let mut args: Vec<*const c_char> = (1..argc as isize).map(|i| *argv.offset(i)).collect();
    if args
        .first()
        .is_some_and(|a| CStr::from_ptr(*a).to_bytes() == b"--")
    {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("usage: docker-init [--] COMMAND [ARG...]");
        return 1;
    }
    args.push(std::ptr::null());
    let mut all = SigSet([0; 16]);
    let mut old = SigSet([0; 16]);
    sigfillset(&mut all);
    for s in SYNCHRONOUS {
        sigdelset(&mut all, s);
    }
    // Blocked signals are queued for sigtimedwait below; a namespace's PID 1 would otherwise drop every signal
    // it has no handler for.
    sigprocmask(SIG_BLOCK, &all, &mut old);
    let child = fork();
    if child < 0 {
        eprintln!("docker-init: fork: {}", std::io::Error::last_os_error());
        return 1;
    }
    if child == 0 {
        // The command gets its own process group and, on a terminal, the foreground (as tini does), then the
        // signal mask the init started with.
        setpgid(0, 0);
        if isatty(0) == 1 {
            tcsetpgrp(0, getpid());
        }
        sigprocmask(SIG_SETMASK, &old, std::ptr::null_mut());
        execvp(args[0], args.as_ptr());
        let errno = *__errno_location();
        eprintln!(
            "docker-init: exec {}: {}",
            CStr::from_ptr(args[0]).to_string_lossy(),
            std::io::Error::from_raw_os_error(errno)
        );
        _exit(if errno == ENOENT { 127 } else { 126 });
    }
    let mut info = SigInfo([0; 32]);
    let tick = Timespec { sec: 1, nsec: 0 };
    loop {
        let sig = sigtimedwait(&all, &mut info, &tick);
        if sig < 0 {
            let e = *__errno_location();
            if e != EAGAIN && e != EINTR {
                eprintln!("docker-init: sigtimedwait: {}", std::io::Error::last_os_error());
                return 1;
            }
        } else if sig != SIGCHLD {
            kill(child, sig);
        }
        // Reap on every wake-up (SIGCHLDs coalesce, and the tick catches any missed one).
        loop {
            let mut st: c_int = 0;
            let pid = waitpid(-1, &mut st, WNOHANG);
            if pid <= 0 {
                break;
            }
            if pid == child {
                // Collect whatever else has already exited, then leave with the command's status.
                let code = status_code(st);
                let mut other: c_int = 0;
                while waitpid(-1, &mut other, WNOHANG) > 0 {}
                return code;
            }
        }
    }
}
