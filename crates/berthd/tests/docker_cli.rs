//! berthd driven by the real docker CLI: the seed session, bad input, detached containers and logs, and
//! recovery after berthd is SIGKILLed. Run as root inside `unshare -m --propagation private`.

mod common;

use common::Daemon;

fn is_generated_name(n: &str) -> bool {
    let mut parts = n.split('_');
    let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !a.is_empty()
        && !b.is_empty()
        && a.chars().all(|c| c.is_ascii_lowercase())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

#[test]
fn seed_session() {
    require!();
    require!("gcc");
    let d = Daemon::start();
    let v = d.ok(&["version"]);
    assert!(
        v.contains("Server: berth") && v.contains("API version:       1.47"),
        "{v}"
    );
    let info = d.ok(&["info"]);
    assert!(
        info.contains("Storage Driver: overlay2") && info.contains("Cgroup Driver: cgroupfs"),
        "{info}"
    );
    assert_eq!(
        d.ok(&["info", "--format", "{{.DockerRootDir}}"]).trim(),
        d.data.display().to_string()
    );
    for sub in [
        "containers",
        "image",
        "overlay2",
        "volumes",
        "network",
        "tmp",
    ] {
        assert!(d.data.join(sub).is_dir(), "{sub} missing");
    }

    d.import_hello_world();
    let out = d.ok(&["run", "hello-world"]);
    assert!(out.contains("Hello from berth!"), "{out}");

    for args in [&["images"][..], &["image", "ls"]] {
        let imgs = d.ok(args);
        let line = imgs
            .lines()
            .find(|l| l.starts_with("hello-world"))
            .unwrap_or_else(|| panic!("{imgs}"));
        assert!(line.split_whitespace().nth(1) == Some("latest"), "{line}");
    }
    for args in [&["ps", "-a"][..], &["container", "ls", "-a"]] {
        let ps = d.ok(args);
        let line = ps
            .lines()
            .find(|l| l.contains("hello-world"))
            .unwrap_or_else(|| panic!("{ps}"));
        assert!(
            line.contains("Exited (0)") && line.contains("\"/hello\""),
            "{line}"
        );
        let name = line.split_whitespace().last().unwrap();
        assert!(is_generated_name(name), "not a generated name: {name}");
    }
    let df = d.ok(&["system", "df"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("Images") && l.split_whitespace().nth(1) == Some("1")),
        "{df}"
    );
    assert!(
        df.lines()
            .any(|l| l.starts_with("Containers") && l.split_whitespace().nth(1) == Some("1")),
        "{df}"
    );
    let dfv = d.ok(&["system", "df", "-v"]);
    assert!(
        dfv.contains("Images space usage") && dfv.contains("hello-world"),
        "{dfv}"
    );

    // A clean shutdown removes the socket.
    let mut d = d;
    assert!(d.terminate().success());
    assert!(!d.sock.exists());
}

#[test]
fn bad_input_is_rejected_without_changing_state() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    d.ok(&["create", "--name", "taken", "busybox", "true"]);
    let before = d.ok(&["ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);

    let (code, body) = d.http("POST", "/v1.47/containers/create", Some("{not json"));
    assert_eq!(code, 400, "{body}");
    let msg: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(!msg["message"].as_str().unwrap().is_empty());

    let (code, body) = d.http("GET", "/v1.47/containers/doesnotexist/json", None);
    assert_eq!(code, 404);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["message"],
        "No such container: doesnotexist"
    );
    let o = d.docker(&["rm", "doesnotexist"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such container: doesnotexist"));

    let o = d.docker(&["create", "--name", "taken", "busybox", "true"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Conflict. The container name \"/taken\" is already in use by container"),
        "{err}"
    );
    let (code, _) = d.http(
        "POST",
        "/containers/create?name=taken",
        Some(r#"{"Image":"busybox","Cmd":["true"]}"#),
    );
    assert_eq!(code, 409);

    let (code, _) = d.http(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"nosuchimage","Cmd":["true"]}"#),
    );
    assert_eq!(code, 404);
    let (code, _) = d.http("GET", "/v1.12/version", None);
    assert_eq!(code, 400);
    let o = d.docker(&["kill", "taken"]);
    assert!(!o.status.success(), "killing a created container must fail");

    // A missing executable: docker's exit code 127, the container stays as docker leaves it.
    let o = d.docker(&["run", "--name", "noexec", "busybox", "/nonexistent"]);
    assert_eq!(
        o.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    d.ok(&["rm", "noexec"]);

    let after = d.ok(&["ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert_eq!(before, after);
}

#[test]
fn detached_logs_stop_rm_inspect() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "printer",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; echo three",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    assert_eq!(d.ok(&["wait", "printer"]).trim(), "0");
    assert_eq!(d.ok(&["logs", "printer"]), "one\nthree\n");
    let o = d.docker(&["logs", "printer"]);
    assert_eq!(String::from_utf8_lossy(&o.stderr), "two\n");
    // Output order across the two pipes is not defined, so only count what --tail 1 returns.
    let o = d.docker(&["logs", "--tail", "1", &id[..12]]);
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(both.lines().count(), 1, "{both}");
    let insp: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", "printer"])).unwrap();
    let c = &insp[0];
    assert_eq!(c["Id"], id);
    assert_eq!(c["Name"], "/printer");
    assert_eq!(c["State"]["Status"], "exited");
    assert_eq!(c["State"]["ExitCode"], 0);
    assert_eq!(c["Path"], "sh");
    assert_eq!(c["GraphDriver"]["Name"], "overlay2");
    assert_eq!(c["HostConfig"]["LogConfig"]["Type"], "json-file");

    let o = d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));

    d.ok(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    d.wait_for_log("sleeper", "ready");
    let ps = d.ok(&["ps", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(ps.lines().any(|l| l.starts_with("sleeper|Up ")), "{ps}");
    let o = d.docker(&["rm", "sleeper"]);
    assert!(!o.status.success(), "removing a running container needs -f");
    assert_eq!(d.ok(&["stop", "sleeper"]).trim(), "sleeper");
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.ExitCode}}", "sleeper"])
            .trim(),
        "7"
    );
    d.ok(&["rm", "sleeper"]);

    d.ok(&["run", "-d", "--name", "forced", "busybox", "sleep", "1000"]);
    d.ok(&["rm", "-f", "forced"]);
    let all = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(all.trim(), "printer");
    d.ok(&["rm", "printer"]);
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
    assert_eq!(
        std::fs::read_dir(d.data.join("containers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn containers_survive_berthd_kill9() {
    require!();
    let mut d = Daemon::start();
    d.import_busybox();
    let names = ["crash1", "crash2", "crash3"];
    for n in names {
        d.ok(&[
            "run",
            "-d",
            "--name",
            n,
            "busybox",
            "sh",
            "-c",
            &format!("trap 'exit 0' TERM; echo hello {n}; while true; do sleep 0.1; done"),
        ]);
    }
    for n in names {
        d.wait_for_log(n, &format!("hello {n}"));
    }
    d.kill9();
    d.spawn();
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    for n in names {
        assert!(
            ps.lines().any(|l| l == format!("{n} running")),
            "{n} not running after restart:\n{ps}"
        );
        assert_eq!(d.ok(&["logs", n]), format!("hello {n}\n"));
    }
    let stopped = d.ok(&["stop", "crash1", "crash2", "crash3"]);
    assert_eq!(stopped.lines().count(), 3);
    let ps = d.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert_eq!(
        ps.lines().filter(|l| l.contains("Exited (0)")).count(),
        3,
        "{ps}"
    );
}

#[test]
fn docker_security_defaults_apply() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let status = d.ok(&["run", "--rm", "busybox", "cat", "/proc/self/status"]);
    let field = |s: &str, k: &str| -> String {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("")
            .to_string()
    };
    // Docker's 14 default capabilities.
    assert_eq!(field(&status, "CapBnd:"), "00000000a80425fb", "{status}");
    assert_eq!(field(&status, "Seccomp:"), "2", "{status}");
    assert_eq!(field(&status, "NoNewPrivs:"), "0");
    let unconfined = d.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(field(&unconfined, "Seccomp:"), "0");
    assert_eq!(field(&unconfined, "NoNewPrivs:"), "1");
    let dropped = d.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CHOWN",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(field(&dropped, "CapBnd:"), "0000000000000001");
    // Masked and read-only /proc paths, our own hostname and resolv.conf.
    // /proc/timer_list is masked with /dev/null (it has content on the host).
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "wc -c < /proc/timer_list"
        ])
        .trim(),
        "0"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/domainname",
    ]);
    assert!(!o.status.success(), "/proc/sys must be read-only");
    let id = d.ok(&["create", "busybox", "hostname"]);
    d.ok(&["start", id.trim()]);
    assert_eq!(d.ok(&["wait", id.trim()]).trim(), "0");
    assert_eq!(d.ok(&["logs", id.trim()]).trim(), &id.trim()[..12]);
    let resolv = d.ok(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains("nameserver") && !resolv.contains("nameserver 127."),
        "{resolv}"
    );
    let nofile = d.ok(&["run", "--rm", "busybox", "sh", "-c", "ulimit -n"]);
    let hard: u64 = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    assert_eq!(nofile.trim().parse::<u64>().unwrap(), hard.min(1048576));
    // The default bridge gives eth0; `--network none` only loopback.
    let links = d.ok(&["run", "--rm", "busybox", "ls", "/sys/class/net"]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    let links = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);
}

#[test]
fn exec_and_events() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let since = d.ok(&["version", "--format", "{{.Server.Version}}"]);
    assert!(!since.is_empty());
    d.ok(&[
        "run", "-d", "--name", "exechost", "busybox", "sleep", "1000",
    ]);
    let o = d.docker(&[
        "exec",
        "exechost",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    assert_eq!(
        d.ok(&[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "X=1",
            "exechost",
            "sh",
            "-c",
            "id -u; pwd; echo $X"
        ]),
        "65534\n/tmp\n1\n"
    );
    let o = d.docker(&["exec", "exechost", "/nonexistent"]);
    if std::env::var_os("BERTH_TEST_RUNTIME").is_none() {
        assert_eq!(o.status.code(), Some(127));
    } else {
        // A runtime CLI reports its own failure code (runc: 255).
        assert!(!o.status.success());
    }
    let o = d.docker(&["exec", "nosuch", "true"]);
    assert!(!o.status.success());
    d.ok(&["create", "--name", "stopped", "busybox", "true"]);
    let o = d.docker(&["exec", "stopped", "true"]);
    assert!(
        !o.status.success(),
        "exec in a container that is not running must fail"
    );
    d.ok(&["rm", "-f", "exechost"]);
    // The history has the whole life cycle, in order. `until` a second from now ends the stream.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let (code, body) = d.http(
        "GET",
        &format!(
            "/events?since=0&until={until}&filters=%7B%22container%22%3A%5B%22exechost%22%5D%7D"
        ),
        None,
    );
    assert_eq!(code, 200);
    let actions: Vec<String> = body
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["Action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let expect = [
        "create",
        "start",
        "exec_create: sh -c echo out; echo err >&2; exit 5",
        "exec_start: sh -c echo out; echo err >&2; exit 5",
        "exec_die",
    ];
    for (i, e) in expect.iter().enumerate() {
        assert_eq!(actions.get(i).map(String::as_str), Some(*e), "{actions:?}");
    }
    assert!(
        actions.iter().any(|a| a == "kill") && actions.iter().any(|a| a == "die"),
        "{actions:?}"
    );
    assert_eq!(
        actions.last().map(String::as_str),
        Some("destroy"),
        "{actions:?}"
    );
    let until = until.to_string();
    let o = d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "type=image",
        "--filter",
        "event=import",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("image import"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn stdin_and_tty() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let o = d.docker_stdin(&["run", "-i", "--rm", "busybox", "wc", "-l"], b"a\nb\nc\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "3");
    let o = d.docker_stdin(
        &[
            "run",
            "-i",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "read x; echo got-$x; exit 6",
        ],
        b"line\n",
    );
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got-line\n");
    // Without -i the container's stdin is empty.
    assert_eq!(d.ok(&["run", "--rm", "busybox", "cat"]), "");

    // -t: a pty, raw output (the terminal's \r\n), exit code passed through, logs kept.
    let out = d.ok(&[
        "run",
        "-t",
        "--name",
        "tty1",
        "busybox",
        "sh",
        "-c",
        "tty; echo tty-out",
    ]);
    assert_eq!(out, "/dev/pts/0\r\ntty-out\r\n");
    assert_eq!(d.ok(&["logs", "tty1"]), "/dev/pts/0\r\ntty-out\r\n");
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.Config.Tty}}", "tty1"])
            .trim(),
        "true"
    );
    let o = d.docker(&["run", "-t", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    // Window size through the API.
    let id = d.ok(&[
        "run",
        "-d",
        "-t",
        "busybox",
        "sh",
        "-c",
        "echo ready; sleep 1000",
    ]);
    let id = id.trim();
    d.wait_for_log(id, "ready");
    let (code, body) = d.http("POST", &format!("/containers/{id}/resize?h=33&w=101"), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        d.ok(&["exec", id, "stty", "-F", "/dev/pts/0", "size"])
            .trim(),
        "33 101"
    );
    let (code, _) = d.http("POST", &format!("/containers/{id}/resize?h=x&w=1"), None);
    assert_eq!(code, 400);
    d.ok(&["rm", "-f", id]);
}
