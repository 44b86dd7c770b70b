//! A terminal container through `--console-socket`: the pty master arrives over SCM_RIGHTS, as with runc.

mod runtime_common;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use runtime_common::*;
use serde_json::json;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;

#[test]
fn console_socket_receives_pty_master() {
    if !privileged("console_socket_receives_pty_master") {
        return;
    }
    let b = Bundle::new();
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!(["sh", "-c", "tty; echo hello-from-tty; sleep 1000"]);
    });
    let sock = b.dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = unique("tty");
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    let mut create = b
        .cmd(&[
            "create",
            "-b",
            b.path().to_str().unwrap(),
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(f) => f.first().copied(),
            _ => None,
        })
        .expect("no fd received");
    // SAFETY: the fd was just received and is owned here.
    let mut master = unsafe { std::fs::File::from_raw_fd(fd) };
    assert!(create.wait().unwrap().success());
    assert!(b.rt(&["start", &id]).status.success());
    let mut got = String::new();
    let mut chunk = [0u8; 1024];
    while !got.contains("hello-from-tty") {
        let n = master.read(&mut chunk).unwrap();
        assert!(n > 0, "pty closed early: {got:?}");
        got.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(got.contains("/dev/pts/0"), "{got:?}");
}
