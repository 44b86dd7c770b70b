//! Terminals: a pty opened inside the container (from its own /dev/pts), the slave made the controlling tty
//! and stdio of the container process, the master handed out over a `--console-socket` with SCM_RIGHTS (as
//! runc does), or proxied to the caller's stdio for a foreground `run`/`exec` without a console socket.

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, Winsize};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// Errors of terminal handling.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: nix::Error,
    },
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> TerminalError {
    move |source| TerminalError::Sys { what, source }
}

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, Winsize);
nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, Winsize);

/// Opens a pty (in the current mount namespace's /dev/pts), makes its slave our controlling terminal and
/// stdio, and returns the master.
pub(crate) fn setup_pty(size: Option<(u32, u32)>) -> Result<OwnedFd, TerminalError> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("open /dev/ptmx"))?;
    grantpt(&master).map_err(sys("grantpt"))?;
    unlockpt(&master).map_err(sys("unlockpt"))?;
    let name = ptsname_r(&master).map_err(sys("ptsname"))?;
    if let Some((h, w)) = size {
        let ws = Winsize {
            ws_row: h as u16,
            ws_col: w as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ with a valid winsize on the pty master.
        unsafe { set_winsize(master.as_raw_fd(), &ws) }.map_err(sys("set console size"))?;
    }
    nix::unistd::setsid().map_err(sys("setsid"))?;
    let slave = nix::fcntl::open(name.as_str(), OFlag::O_RDWR, nix::sys::stat::Mode::empty())
        .map_err(sys("open pty slave"))?;
    // SAFETY: TIOCSCTTY on the slave we just opened, as session leader.
    if unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) } < 0 {
        return Err(sys("make the pty the controlling terminal")(
            nix::Error::last(),
        ));
    }
    for fd in 0..3 {
        // SAFETY: dup2 of a valid fd onto stdio.
        if unsafe { libc::dup2(slave, fd) } < 0 {
            return Err(sys("dup2 pty slave")(nix::Error::last()));
        }
    }
    if slave > 2 {
        let _ = nix::unistd::close(slave);
    }
    // SAFETY: master came from posix_openpt and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) })
}

/// Sends `master` over a connected console socket, with the pty name as payload (runc's `utils.SendFile`).
pub(crate) fn send_console(socket: RawFd, master: &OwnedFd) -> Result<(), TerminalError> {
    let name = b"/dev/ptmx";
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket,
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(sys("send the pty master over the console socket"))?;
    Ok(())
}

/// Signals forwarded by a foreground `run`/`exec` to the container process.
pub fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
        Signal::SIGCONT,
        Signal::SIGPIPE,
    ] {
        set.add(s);
    }
    set
}

/// Blocks the forwarded signals (do it before creating the process, so none is lost; the child resets its mask).
pub fn block_signals() -> Result<(), TerminalError> {
    forwarded_signals()
        .thread_block()
        .map_err(sys("block signals"))
}

/// Exit status of a wait status the shell way: the code, or 128 + signal.
pub fn exit_code(ws: WaitStatus) -> Option<i32> {
    match ws {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// Waits for `pid` (our child) while forwarding signals to it and, with `master`, proxying the pty to our
/// stdio (stdin in raw mode when it is a terminal). Signals must have been blocked with [`block_signals`].
/// Returns the exit code (128 + signal when killed).
pub fn forward_and_wait(pid: i32, master: Option<OwnedFd>) -> Result<i32, TerminalError> {
    let sfd = SignalFd::with_flags(&forwarded_signals(), SfdFlags::SFD_CLOEXEC)
        .map_err(sys("signalfd"))?;
    // SAFETY: fd 0 and 1 stay open for the life of the process.
    let (stdin, stdout) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
    let raw = master.as_ref().and_then(|_| RawMode::enter(stdin));
    if let Some(m) = &master {
        copy_winsize(stdin, m.as_fd());
    }
    let mut stdin_open = master.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    let target = Pid::from_raw(pid);
    let code = loop {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(sys("poll")(e)),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if let (Some(m), Some(true)) = (&master, ready.get(1)) {
            match nix::unistd::read(m.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => write_all(stdout, &buf[..n]),
                _ => {}
            }
        }
        if let (Some(m), Some(true)) = (&master, ready.get(2)) {
            match nix::unistd::read(0, &mut buf) {
                Ok(n) if n > 0 => write_all(m.as_fd(), &buf[..n]),
                _ => stdin_open = false,
            }
        }
        if ready[0] {
            let Ok(Some(info)) = sfd.read_signal() else {
                continue;
            };
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGCHLD {
                match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(nix::Error::EINTR) => continue,
                    Ok(ws) => match exit_code(ws) {
                        Some(c) => break c,
                        None => continue,
                    },
                    Err(e) => return Err(sys("waitpid")(e)),
                }
            } else if sig == libc::SIGWINCH {
                if let Some(m) = &master {
                    copy_winsize(stdin, m.as_fd());
                }
            } else if let Ok(s) = Signal::try_from(sig) {
                let _ = kill(target, s);
            }
        }
    };
    // Drain what the process wrote before it exited.
    if let Some(m) = &master {
        let _ = nix::fcntl::fcntl(
            m.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
        );
        while let Ok(n) = nix::unistd::read(m.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            write_all(stdout, &buf[..n]);
        }
    }
    drop(raw);
    Ok(code)
}

fn write_all(fd: BorrowedFd, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(_) => return,
        }
    }
}

fn copy_winsize(from: BorrowedFd, to: BorrowedFd) {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid winsize; errors (not a tty) are ignored.
    unsafe {
        if get_winsize(from.as_raw_fd(), &mut ws).is_ok() {
            let _ = set_winsize(to.as_raw_fd(), &ws);
        }
    }
}

/// Restores the terminal attributes on drop.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: nix::sys::termios::Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> Option<RawMode<'a>> {
        let saved = tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}
