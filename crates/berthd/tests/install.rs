//! The install files (contrib/): the systemd unit and socket pass `systemd-analyze verify` with the built berthd,
//! the sysusers.d file creates the `berth` group, and berthd started the way `berth.socket` starts it (socket
//! activation, through systemd's own `systemd-socket-activate`) serves the docker CLI and runs containers, without
//! handing the API socket or the LISTEN_* variables down to monitors. This machine has no systemd as pid 1, so
//! `systemctl enable --now berth` itself cannot run here; these are the parts of it that can.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::{workspace, Daemon};

/// Runs a command, returning (success, stdout + stderr).
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("spawn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    if common::which("systemd-analyze").is_none() {
        eprintln!("SKIPPED: systemd-analyze not installed (Debian package systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let units = workspace().join("contrib/systemd");
    // The unit names /usr/bin/berthd; verify checks that ExecStart's binary exists, so point it at this build.
    let service = fs::read_to_string(units.join("berth.service")).unwrap();
    assert!(service.contains("ExecStart=/usr/bin/berthd "), "{service}");
    let service = service.replace("/usr/bin/berthd", env!("CARGO_BIN_EXE_berthd"));
    fs::write(dir.path().join("berth.service"), service).unwrap();
    fs::copy(units.join("berth.socket"), dir.path().join("berth.socket")).unwrap();

    let (ok, text) = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("berth.socket"))
        .arg(dir.path().join("berth.service")));
    assert!(ok, "systemd-analyze verify failed:\n{text}");
    // verify reports unknown keys and bad values as warnings with a zero exit: none may mention our units.
    assert!(
        !text.contains("berth.service") && !text.contains("berth.socket"),
        "systemd-analyze verify warned about the units:\n{text}"
    );
    // The socket is the one berthd and the docker CLI expect, with the docker.sock-like ownership.
    let socket = fs::read_to_string(units.join("berth.socket")).unwrap();
    for line in [
        "ListenStream=/run/berth/berth.sock",
        "SocketMode=0660",
        "SocketGroup=berth",
    ] {
        assert!(
            socket.lines().any(|l| l == line),
            "{line} missing:\n{socket}"
        );
    }
}

#[test]
fn sysusers_file_creates_the_berth_group() {
    if common::which("systemd-sysusers").is_none() {
        eprintln!("SKIPPED: systemd-sysusers not installed (Debian package systemd)");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("etc")).unwrap();
    let conf = workspace().join("contrib/sysusers.d/berth.conf");
    let (ok, text) = run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(&conf));
    assert!(ok, "systemd-sysusers failed:\n{text}");
    let group = fs::read_to_string(root.path().join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("berth:x:")),
        "no berth group in {group}"
    );
}

/// The `socket:[inode]` fds of a process.
fn socket_fds(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| fs::read_link(e.path()).ok())
                .map(|l| l.to_string_lossy().into_owned())
                .filter(|l| l.starts_with("socket:"))
                .collect()
        })
        .unwrap_or_default()
}

fn ppid(pid: u32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("PPid")
}

#[test]
fn socket_activated_berthd_serves_docker_and_keeps_the_socket_to_itself() {
    require!();
    require!("systemd-socket-activate");
    let mut d = Daemon::prepare();
    // systemd-socket-activate binds the socket, sets LISTEN_PID/LISTEN_FDS and execs berthd in the same pid,
    // as systemd does for berth.socket -> berth.service.
    d.launcher = vec![
        common::which("systemd-socket-activate")
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        "-l".into(),
        d.sock.to_string_lossy().into_owned(),
    ];
    d.spawn();
    let sock_ino = fs::metadata(&d.sock).unwrap().ino();

    d.import_hello_world();
    let out = d.ok(&["run", "--rm", "hello-world"]);
    assert!(out.contains("Hello from berth!"), "{out}");

    d.import_busybox();
    let id = d.ok(&["run", "-d", "busybox", "sleep", "60"]);
    let id = id.trim();
    let pid: u32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", id])
        .trim()
        .parse()
        .unwrap();
    let monitor = ppid(pid);
    // The listening socket is an fd of berthd only: neither the monitor nor the container holds one.
    for p in [monitor, pid] {
        let socks = socket_fds(p);
        assert!(
            socks.is_empty(),
            "pid {p} holds sockets {socks:?} (the API socket leaked?)"
        );
        let environ = fs::read(format!("/proc/{p}/environ")).unwrap();
        assert!(
            !String::from_utf8_lossy(&environ).contains("LISTEN_"),
            "pid {p} inherited LISTEN_* variables"
        );
    }
    d.ok(&["rm", "-f", id]);
    // berthd used the socket it was given: the file is the same inode, not one it bound again.
    assert_eq!(fs::metadata(&d.sock).unwrap().ino(), sock_ino);
}
