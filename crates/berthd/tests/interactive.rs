//! Interactive containers and exec, driven through real terminals: tmux panes running `berth` and the real
//! docker CLI against berthd (`run -it`, window resizes, ctrl-p ctrl-q detach, `attach`, `exec -it`), the
//! hijacked API with detach keys, and exec's flags, stdin and exit codes. Run as root inside
//! `unshare -m --propagation private`.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;

/// A tmux server of our own (its socket in the test's temporary root), killed with its panes on drop.
struct Tmux {
    sock: PathBuf,
}

impl Tmux {
    /// A detached 80x24 session running `cmd` (through sh) with the daemon's socket in the environment.
    fn start(d: &Daemon, cmd: &str) -> Tmux {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let t = Tmux {
            sock: d
                .root
                .path()
                .join(format!("tmux-{}", N.fetch_add(1, Ordering::SeqCst))),
        };
        let host = format!("unix://{}", d.sock.display());
        t.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "24",
            "-e",
            &format!("DOCKER_HOST={host}"),
            "-e",
            &format!("BERTH_HOST={host}"),
            "-e",
            &format!("DOCKER_CONFIG={}", d.docker_config.display()),
            cmd,
        ]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux");
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Replaces the pane's program with `cmd`.
    fn respawn(&self, cmd: &str) {
        self.run(&["respawn-pane", "-k", cmd]);
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types a line.
    fn line(&self, text: &str) {
        self.run(&["send-keys", "-l", text]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-S", "-200"])
    }

    /// Polls the pane until it shows `needle` (bounded: a readiness wait, not a timing assertion).
    fn wait_for(&self, needle: &str, d: &Daemon) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if s.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} on the terminal:\n{s}\n--- berthd log ---\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `text` until `needle` shows up: for output that depends on something asynchronous, like a resize
    /// the CLI forwards while the shell already reads the next line (bounded retries).
    fn retype_until(&self, text: &str, needle: &str, d: &Daemon) {
        for _ in 0..20 {
            self.line(text);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if self.screen().contains(needle) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.wait_for(needle, d);
    }

    fn resize(&self, x: u16, y: u16) {
        self.run(&["resize-window", "-x", &x.to_string(), "-y", &y.to_string()]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Kills the panes' programs (SIGHUP) with the server; containers are the Daemon guard's.
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .arg("kill-server")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // tmux leaves its socket file behind.
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// TTY containers need the builtin runtime (the monitor refuses them with a runtime CLI).
fn tty_runtime() -> bool {
    if std::env::var_os("BERTH_TEST_RUNTIME").is_some() {
        eprintln!("SKIPPED: TTY containers need the builtin runtime (BERTH_TEST_RUNTIME is set)");
        return false;
    }
    true
}

/// The berth CLI next to berthd, if it was built.
fn berth_cli() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_berthd")).with_file_name("berth");
    p.is_file().then_some(p)
}

fn berth(d: &Daemon, cli: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut child = Command::new("timeout")
        .arg("300")
        .arg(cli)
        .args(args)
        .env("BERTH_HOST", format!("unix://{}", d.sock.display()))
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth");
    if let Some(i) = input {
        let mut w = child.stdin.take().unwrap();
        w.write_all(i).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn running(d: &Daemon, name: &str) -> bool {
    d.ok(&["inspect", "-f", "{{.State.Running}}", name]).trim() == "true"
}

/// One CLI through a whole interactive session: run -it, resize, detach, attach, detach, exec -it.
fn interactive_session(d: &Daemon, cli: &str, name: &str) {
    let t = Tmux::start(
        d,
        &format!("{cli} run -it --name {name} busybox sh; echo EXIT=$?; sleep 600"),
    );
    // Arithmetic in the commands: the echoed input never contains the expected output.
    t.line("echo size-$(stty size | tr ' ' x)-$((6*7))");
    t.wait_for("size-24x80-42", d);
    t.resize(100, 30);
    t.retype_until(
        "echo size-$(stty size | tr ' ' x)-$((6*8))",
        "size-30x100-48",
        d,
    );
    t.keys(&["C-p", "C-q"]);
    t.wait_for("EXIT=0", d);
    assert!(running(d, name), "{cli}: detaching stopped the container");

    t.respawn(&format!("{cli} attach {name}; echo EXIT=$?; sleep 600"));
    t.line("echo back-$((1+1))");
    t.wait_for("back-2", d);
    t.keys(&["C-p", "C-q"]);
    t.wait_for("read escape sequence", d);
    t.wait_for("EXIT=1", d);
    assert!(running(d, name), "{cli}: detaching from attach stopped it");

    t.resize(80, 24);
    t.respawn(&format!(
        "{cli} exec -it {name} sh; echo EXEC=$?; sleep 600"
    ));
    t.line("echo in-exec-$((3+4))-$(tty | cut -c1-8)");
    t.wait_for("in-exec-7-/dev/pts", d);
    t.line("echo esize-$(stty size | tr ' ' x)");
    t.wait_for("esize-24x80", d);
    t.resize(90, 20);
    t.retype_until(
        "echo esize-$(stty size | tr ' ' x)-again",
        "esize-20x90-again",
        d,
    );
    t.line("exit 3");
    t.wait_for("EXEC=3", d);
    assert!(running(d, name));
    d.ok(&["rm", "-f", name]);
}

#[test]
fn run_it_resize_detach_attach_exec_with_docker() {
    require!();
    require!("tmux");
    if !tty_runtime() {
        return;
    }
    let d = Daemon::start();
    d.import_busybox();
    interactive_session(&d, common::DOCKER, "itdocker");
}

#[test]
fn run_it_resize_detach_attach_exec_with_berth() {
    require!();
    require!("tmux");
    if !tty_runtime() {
        return;
    }
    let Some(cli) = berth_cli() else {
        eprintln!("SKIPPED: the berth CLI is not built (cargo build --workspace --bins)");
        return;
    };
    let d = Daemon::start();
    d.import_busybox();
    interactive_session(&d, cli.to_str().unwrap(), "itberth");
}

/// A hijacked request: returns the status line and the stream after the head.
fn hijack(d: &Daemon, path: &str, body: &str) -> (String, UnixStream) {
    let mut s = UnixStream::connect(&d.sock).unwrap();
    // A safety net against a hang, not a timing assertion.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "connection closed in the head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    (head.lines().next().unwrap_or("").to_string(), s)
}

/// Reads until `needle` shows up; then, with `to_eof`, on to the end of the stream. Returns what was read.
fn read_until(s: &mut UnixStream, needle: &str, to_eof: bool) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if !to_eof && String::from_utf8_lossy(&got).contains(needle) {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "reading the stream: {e}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.contains(needle), "no {needle:?} in {text:?}");
    text
}

#[test]
fn api_detach_keys_end_attach_and_exec_sessions() {
    require!();
    if !tty_runtime() {
        return;
    }
    let d = Daemon::start();
    d.import_busybox();
    d.ok(&["run", "-dit", "--name", "dk", "busybox", "sh"]);
    let (code, body) = d.http(
        "POST",
        "/containers/dk/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-",
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("Invalid detach keys (ctrl-) provided"),
        "{body}"
    );

    // Custom keys: ctrl-x then x. The daemon sees the keys (a raw client has no escape proxy of its own).
    let (status, mut s) = hijack(
        &d,
        "/containers/dk/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-x,x",
        "",
    );
    assert!(status.contains(" 101 "), "{status}");
    s.write_all(b"echo hi-$((2+3))\n").unwrap();
    read_until(&mut s, "hi-5", false);
    // A lone ctrl-x followed by something else is ordinary input; the full sequence ends the session.
    s.write_all(b"\x18echo still-$((4+4))\n").unwrap();
    read_until(&mut s, "still-8", false);
    s.write_all(b"\x18x").unwrap();
    read_until(&mut s, "", true);
    assert!(running(&d, "dk"));

    // Attaching again works: the TTY's stdin survived the detach.
    let (status, mut s) = hijack(&d, "/containers/dk/attach?stream=1&stdin=1&stdout=1", "");
    assert!(status.contains(" 101 "), "{status}");
    s.write_all(b"echo again-$((5+5))\n").unwrap();
    read_until(&mut s, "again-10", false);
    s.write_all(&[16, 17]).unwrap();
    read_until(&mut s, "", true);
    assert!(running(&d, "dk"));

    // A TTY exec session detached with the default keys keeps its process.
    let (code, body) = d.http(
        "POST",
        "/containers/dk/exec",
        Some(r#"{"Cmd":["sh"],"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":true,"ConsoleSize":[31,77]}"#),
    );
    assert_eq!(code, 201, "{body}");
    let exec_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, mut s) = hijack(
        &d,
        &format!("/exec/{exec_id}/start"),
        r#"{"Detach":false,"Tty":true}"#,
    );
    assert!(status.contains(" 101 "), "{status}");
    s.write_all(b"echo ex-$(stty size | tr ' ' x)\n").unwrap();
    read_until(&mut s, "ex-31x77", false);
    let (code, body) = d.http("POST", &format!("/exec/{exec_id}/resize?h=40&w=120"), None);
    assert_eq!(code, 200, "{body}");
    s.write_all(b"echo ex2-$(stty size | tr ' ' x)\n").unwrap();
    read_until(&mut s, "ex2-40x120", false);
    s.write_all(&[16, 17]).unwrap();
    read_until(&mut s, "", true);
    let (code, body) = d.http("GET", &format!("/exec/{exec_id}/json"), None);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Running"], true, "{v}");
    assert!(v["Pid"].as_i64().unwrap_or(0) > 0, "{v}");
    assert_eq!(v["ProcessConfig"]["tty"], true, "{v}");
    assert_eq!(v["OpenStdin"], true, "{v}");
    assert_eq!(v["ExitCode"], serde_json::Value::Null, "{v}");
    d.ok(&["rm", "-f", "dk"]);
}

#[test]
fn exec_flags_stdin_and_exit_codes() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    d.ok(&["run", "-d", "--name", "ex", "busybox", "sleep", "1000"]);
    // Exit codes, the docker CLI.
    let o = d.docker(&["exec", "ex", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    // stdin piped with -i.
    let o = d.docker_stdin(
        &["exec", "-i", "ex", "sh", "-c", "tr a-z A-Z; exit 4"],
        b"piped\n",
    );
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "PIPED\n");
    // Without -i the process' stdin is empty.
    let o = d.docker_stdin(&["exec", "ex", "cat"], b"ignored\n");
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    // --privileged: every capability berthd holds (its bounding set); without it, docker's default set.
    let bnd = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    let eff = |args: &[&str]| {
        let mut a = vec!["exec"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["ex", "grep", "CapEff", "/proc/self/status"]);
        d.ok(&a)
            .trim()
            .trim_start_matches("CapEff:")
            .trim()
            .to_string()
    };
    assert_eq!(eff(&["--privileged"]), bnd);
    assert_eq!(eff(&[]), "00000000a80425fb");
    // -d: runs in the background, the CLI returns at once.
    d.ok(&["exec", "-d", "ex", "sh", "-c", "echo bg > /tmp/bg"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.docker(&["exec", "ex", "cat", "/tmp/bg"]).stdout != b"bg\n" {
        assert!(Instant::now() < deadline, "exec -d never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    // -t without a terminal on our side: a pty all the same.
    if std::env::var_os("BERTH_TEST_RUNTIME").is_none() {
        assert_eq!(d.ok(&["exec", "-t", "ex", "tty"]), "/dev/pts/0\r\n");
    }
    // -it needs a terminal on stdin, like docker.
    let o = d.docker(&["exec", "-it", "ex", "true"]);
    assert_eq!(o.status.code(), Some(1));
    // Exec inspect after the end.
    let (code, body) = d.http(
        "POST",
        "/containers/ex/exec",
        Some(r#"{"Cmd":["sh","-c","exit 9"],"AttachStdout":true,"User":"nobody"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let exec_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = d.http("POST", &format!("/exec/{exec_id}/start"), Some("{}"));
    assert_eq!(code, 200);
    let (_, body) = d.http("GET", &format!("/exec/{exec_id}/json"), None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ExitCode"], 9, "{v}");
    assert_eq!(v["Running"], false, "{v}");
    assert_eq!(v["Pid"], 0, "{v}");
    assert_eq!(v["ProcessConfig"]["entrypoint"], "sh", "{v}");
    assert_eq!(v["ProcessConfig"]["user"], "nobody", "{v}");
    assert_eq!(v["OpenStdin"], false, "{v}");

    // The berth CLI: the same flags.
    let Some(cli) = berth_cli() else {
        eprintln!("SKIPPED (berth CLI part): not built");
        return;
    };
    let o = berth(&d, &cli, &["exec", "ex", "sh", "-c", "exit 7"], None);
    assert_eq!(o.status.code(), Some(7));
    let o = berth(
        &d,
        &cli,
        &["exec", "-i", "ex", "sh", "-c", "tr a-z A-Z; exit 4"],
        Some(b"piped\n"),
    );
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "PIPED\n");
    let o = berth(
        &d,
        &cli,
        &[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "X=1",
            "ex",
            "sh",
            "-c",
            "id -u; pwd; echo $X",
        ],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "65534\n/tmp\n1\n");
    // `-e KEY` takes the value from the CLI's environment.
    let o = Command::new(&cli)
        .args(["exec", "-e", "FROM_ENV", "ex", "sh", "-c", "echo $FROM_ENV"])
        .env("BERTH_HOST", format!("unix://{}", d.sock.display()))
        .env("FROM_ENV", "inherited")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "inherited\n");
    let o = berth(
        &d,
        &cli,
        &[
            "exec",
            "--privileged",
            "ex",
            "grep",
            "CapEff",
            "/proc/self/status",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains(&bnd));
    let o = berth(&d, &cli, &["exec", "-it", "ex", "true"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "the input device is not a TTY"
    );
    d.ok(&["rm", "-f", "ex"]);
}
