//! The parent/child sync protocol over a `SOCK_SEQPACKET` socketpair: one message per packet, so no framing.
//! Used between `create` and the container's init, and between `exec` and the exec'd process.

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Errors of the sync socket.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync socket: {0}")]
    Sys(#[from] nix::Error),
    #[error("container init exited before it was ready")]
    Eof,
    #[error("sync socket: unexpected message {0:?}")]
    Unexpected(String),
}

/// A protocol message.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) enum Msg {
    /// child -> parent: joined and unshared its namespaces (only when some are joined by path).
    NsReady,
    /// parent -> child: id maps written; carry on.
    Go,
    /// parent -> child: the child is in the container's cgroup (resources applied).
    CgroupJoined,
    /// child -> parent: namespaces and mounts exist; run createRuntime/prestart hooks.
    RunHooks,
    /// parent -> child: hooks done.
    HooksDone,
    /// child -> parent: the pty master follows as SCM_RIGHTS on this message.
    Pty,
    /// child -> parent: everything is set up; about to wait on the exec fifo (or execve for exec).
    Ready,
    /// either way: a one-line error; the sender gives up.
    Error(String),
}

/// One end of the socketpair.
#[derive(Debug)]
pub(crate) struct SyncSocket(pub(crate) OwnedFd);

/// A connected pair (parent end, child end), both close-on-exec.
pub(crate) fn pair() -> Result<(SyncSocket, SyncSocket), SyncError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((SyncSocket(a), SyncSocket(b)))
}

impl SyncSocket {
    pub(crate) fn send(&self, msg: &Msg) -> Result<(), SyncError> {
        self.send_with_fd(msg, None)
    }

    pub(crate) fn send_with_fd(&self, msg: &Msg, fd: Option<RawFd>) -> Result<(), SyncError> {
        let data = serde_json::to_vec(msg).expect("message serializes");
        let fds = fd.map(|f| [f]);
        let cmsgs: Vec<ControlMessage> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
        loop {
            match sendmsg::<()>(
                self.0.as_raw_fd(),
                &[IoSlice::new(&data)],
                &cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EPIPE) | Err(nix::Error::ECONNRESET) => return Err(SyncError::Eof),
                r => return r.map(|_| ()).map_err(SyncError::from),
            }
        }
    }

    /// Receives one message and the fd passed with it, if any.
    pub(crate) fn recv(&self) -> Result<(Msg, Option<OwnedFd>), SyncError> {
        let mut buf = vec![0u8; 8192];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut reset_seen = false;
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let r = recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            );
            let r = match r {
                Err(nix::Error::EINTR) => continue,
                // A peer that exits with our messages unread leaves ECONNRESET pending on this socket, reported
                // (and cleared) before the messages it sent us, such as its error: read on to get them.
                Err(nix::Error::ECONNRESET) if !reset_seen => {
                    reset_seen = true;
                    continue;
                }
                Err(nix::Error::ECONNRESET) => return Err(SyncError::Eof),
                r => r?,
            };
            let mut fd = None;
            for c in r.cmsgs()? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for f in fds {
                        // SAFETY: the kernel just installed this fd for us; nobody else owns it.
                        let owned = unsafe { OwnedFd::from_raw_fd(f) };
                        fd.get_or_insert(owned);
                    }
                }
            }
            let n = r.bytes;
            if n == 0 {
                return Err(SyncError::Eof);
            }
            let msg = serde_json::from_slice(&buf[..n]).map_err(|_| {
                SyncError::Unexpected(String::from_utf8_lossy(&buf[..n]).into_owned())
            })?;
            return Ok((msg, fd));
        }
    }

    /// Receives a message that must be `want`; an `Error` message becomes the error.
    pub(crate) fn expect(&self, want: Msg) -> Result<(), crate::RuntimeError> {
        match self.recv()?.0 {
            m if m == want => Ok(()),
            Msg::Error(e) => Err(crate::RuntimeError::Child(e)),
            m => Err(SyncError::Unexpected(format!("{m:?}")).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race behind "container init exited before it was ready": the child fails and exits while a message
    /// from the parent sits unread in its queue. The parent must still get the child's error.
    #[test]
    fn error_of_a_peer_that_left_our_message_unread_is_received() {
        let (parent, child) = pair().unwrap();
        child
            .send(&Msg::Error("refusing to mount proc".into()))
            .unwrap();
        parent.send(&Msg::CgroupJoined).unwrap();
        drop(child);
        match parent.recv() {
            Ok((Msg::Error(m), _)) => assert_eq!(m, "refusing to mount proc"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parent.recv(), Err(SyncError::Eof)));
    }
}
