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

#[test]
fn foreground_run_proxies_the_pty() {
    if !privileged("foreground_run_proxies_the_pty") {
        return;
    }
    let b = Bundle::new();
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!(["sh", "-c", "tty; echo proxied; exit 5"]);
    });
    // No console socket: the runtime keeps the master and copies it to its own stdout.
    let (code, out, err) = b.run(&unique("fg"));
    assert_eq!(code, 5, "{err}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["/dev/pts/0", "proxied"], "{out:?}");
    // A detached terminal container needs a console socket.
    let o = b.rt(&[
        "run",
        "-d",
        "-b",
        b.path().to_str().unwrap(),
        &unique("fg2"),
    ]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("console socket"));
}

#[test]
fn no_pivot_and_list_json() {
    if !privileged("no_pivot_and_list_json") {
        return;
    }
    let b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = unique("nopivot");
    let o = b.rt(&[
        "run",
        "-d",
        "--no-pivot",
        "-b",
        b.path().to_str().unwrap(),
        &id,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    let o = b.rt(&["list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .expect("listed");
    assert_eq!(me["status"], "running");
    let o = b.rt(&["list"]);
    let table = text(&o.stdout);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("running")),
        "{table}"
    );
    let (code, out, _) = b.exec(&id, &["cat", "/etc/passwd"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("root:x:0:0"));
}
