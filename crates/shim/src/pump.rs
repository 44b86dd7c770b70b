//! The poll loop: container output into the log, the stdin fifo into the container, children reaped.
//!
//! The init's exit is noticed through a signalfd for SIGCHLD (blocked, so it queues), so the loop sleeps in
//! `poll` without a timeout while the container runs. After the exit the pipes are drained without blocking:
//! a process that escaped the container may hold them open forever.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::log::Writer;
use crate::{Opts, ShimError};

/// Runs until the init `o.pid` has exited and its output is drained; returns its exit code (128+signal).
pub fn run(o: &Opts) -> Result<i32, ShimError> {
    let mut writer = Writer::open(&o.log, o.max_size, o.max_file).map_err(ShimError::Log)?;
    let sigfd = sigchld_fd();
    let mut stdin = o.stdin_fifo.as_ref().map(|p| StdinFeed {
        fifo: o.stdin_fd,
        path: p.clone(),
        to_container: (o.stdin_to >= 0).then_some(o.stdin_to),
        once: o.stdin_once,
    });
    let mut open = [true, true];
    let fds = [o.out, o.err];
    let mut code = reap(o.pid);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(4);
        let mut which: Vec<u8> = Vec::with_capacity(4);
        for i in 0..2 {
            if open[i] {
                pfds.push(pollfd(fds[i]));
                which.push(i as u8);
            }
        }
        if pfds.is_empty() && code.is_some() {
            break;
        }
        if code.is_none() {
            if let Some(s) = stdin.as_ref().filter(|s| s.to_container.is_some()) {
                pfds.push(pollfd(s.fifo));
                which.push(2);
            }
            if let Some(fd) = sigfd {
                pfds.push(pollfd(fd));
                which.push(3);
            }
        }
        // Without a signalfd (should not happen) fall back to looking for the exit every 200 ms.
        let timeout = match (code, sigfd) {
            (Some(_), _) => 0,
            (None, Some(_)) => -1,
            (None, None) => 200,
        };
        // SAFETY: pfds is a valid array of pfds.len() pollfd structs for the duration of the call.
        let ready = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if ready < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            // Should not happen; do not spin.
            sleep_ms(100);
        }
        if code.is_some() && ready == 0 {
            break;
        }
        for (k, p) in pfds.iter().enumerate() {
            if p.revents == 0 {
                continue;
            }
            match which[k] {
                i @ 0..=1 => {
                    let i = usize::from(i);
                    match read(fds[i], &mut buf) {
                        Ok(0) => open[i] = false,
                        Ok(n) => {
                            if let Err(e) = writer.feed(i as u8 + 1, &buf[..n]) {
                                complain(o, &e.to_string());
                            }
                            if o.tty {
                                // Interactive output (prompts) has no newline to wait for.
                                let _ = writer.flush_partial();
                            }
                        }
                        Err(libc::EAGAIN) | Err(libc::EINTR) => {}
                        // EIO: the pty's other side is closed.
                        Err(_) => open[i] = false,
                    }
                }
                2 => {
                    if let Some(s) = stdin.as_mut() {
                        s.forward(&mut buf);
                    }
                }
                _ => {
                    if let Some(fd) = sigfd {
                        drain(fd);
                    }
                }
            }
        }
        if code.is_none() {
            code = reap(o.pid);
        }
    }
    let _ = writer.flush_partial();
    if let Some(s) = &stdin {
        let _ = std::fs::remove_file(&s.path);
    }
    Ok(code.unwrap_or(255))
}

/// Blocks until the init has exited (the log is unusable); returns its exit code.
pub fn wait_exit(pid: i32) -> i32 {
    loop {
        let mut st = 0;
        // SAFETY: waitpid writes the status through a valid pointer.
        let p = unsafe { libc::waitpid(-1, &mut st, 0) };
        if p == pid {
            if let Some(c) = exit_code(st) {
                return c;
            }
        } else if p < 0 && errno() != libc::EINTR {
            return 255;
        }
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn read(fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

fn complain(o: &Opts, msg: &str) {
    crate::diag(o, msg);
}

/// Blocks SIGCHLD and returns a non-blocking signalfd for it, or None when that fails.
fn sigchld_fd() -> Option<i32> {
    // SAFETY: sigset_t is plain data that sigemptyset initializes; sigprocmask and signalfd read it through
    // valid pointers. We are single-threaded, so the process mask is this thread's.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return None;
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        (fd >= 0).then_some(fd)
    }
}

fn drain(fd: i32) {
    let mut buf = [0u8; 128 * 4];
    while let Ok(n) = read(fd, &mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// Reaps every exited child (we are a subreaper, so orphans land here too); the init's exit code once it exited.
fn reap(pid: i32) -> Option<i32> {
    let mut code = None;
    loop {
        let mut st = 0;
        // SAFETY: waitpid writes the status through a valid pointer.
        let p = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if p > 0 {
            if p == pid {
                code = exit_code(st).or(code);
            }
            continue;
        }
        if p < 0 && errno() == libc::EINTR {
            continue;
        }
        if p < 0 && errno() == libc::ECHILD && code.is_none() {
            // No children at all: the init is gone without us seeing it (should not happen).
            return Some(255);
        }
        return code;
    }
}

fn exit_code(st: i32) -> Option<i32> {
    if libc::WIFEXITED(st) {
        Some(libc::WEXITSTATUS(st))
    } else if libc::WIFSIGNALED(st) {
        Some(128 + libc::WTERMSIG(st))
    } else {
        None
    }
}

/// Feeds what attach clients write into the stdin fifo to the container's stdin (a pipe, or the pty master).
struct StdinFeed {
    fifo: i32,
    path: PathBuf,
    to_container: Option<i32>,
    /// `StdinOnce`: the first client's EOF closes the container's stdin.
    once: bool,
}

impl StdinFeed {
    fn forward(&mut self, buf: &mut [u8]) {
        match read(self.fifo, buf) {
            Ok(0) => {
                // The writer went away: end of input for StdinOnce, otherwise wait for the next client (a fresh
                // open resets the fifo's hang-up state).
                if self.once {
                    self.close_container();
                } else if let Some(f) = open_fifo(&self.path) {
                    // SAFETY: closing the fd we owned and replace right away.
                    unsafe { libc::close(self.fifo) };
                    self.fifo = f;
                }
            }
            Ok(n) => {
                // A container that stopped reading gets EPIPE; drop its stdin then.
                if !self.write_all(&buf[..n]) {
                    self.close_container();
                }
            }
            Err(libc::EAGAIN) | Err(libc::EINTR) => {}
            Err(_) => self.close_container(),
        }
    }

    fn close_container(&mut self) {
        if let Some(fd) = self.to_container.take() {
            // SAFETY: the fd was handed to us for this purpose and is not used after this.
            unsafe { libc::close(fd) };
        }
    }

    fn write_all(&self, mut data: &[u8]) -> bool {
        let Some(fd) = self.to_container else {
            return false;
        };
        while !data.is_empty() {
            // SAFETY: data is valid for reads of data.len() bytes.
            let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
            if n > 0 {
                data = &data[n as usize..];
                continue;
            }
            match errno() {
                libc::EINTR => {}
                // The pty master shares the output side's non-blocking flag: wait until it takes more.
                libc::EAGAIN => {
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut p, 1, 1000) };
                }
                _ => return false,
            }
        }
        true
    }
}

fn open_fifo(path: &Path) -> Option<i32> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: c is a valid NUL-terminated path for the duration of the call.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    (fd >= 0).then_some(fd)
}
