//! The `berth` client against a real berthd: one daemon per test on a temp data-root/exec-root/socket,
//! images imported from examples/hello-world and a busybox rootfs, and the real docker CLI as a reference
//! for output formats. Skips (with a printed reason) when not root, not in a private mount namespace, or
//! when berthd has not been built next to `berth` (`cargo build -p berthd`).

#[macro_use]
mod client_support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use client_support::*;

#[test]
fn hello_world_run_ps_images_info_df() {
    let d = daemon_or_skip!();
    d.import_hello_world();
    let o = d.berth(&["run", "hello-world"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}\n{}",
        stderr(&o),
        d.log()
    );
    assert!(
        stdout(&o).contains("Hello from"),
        "no greeting: {}",
        stdout(&o)
    );

    let ps = d.ok(&["ps", "-a"]);
    let mut lines = ps.lines();
    let header = lines.next().expect("header");
    assert!(
        header.starts_with("CONTAINER ID   IMAGE         COMMAND    CREATED")
            && header.contains("   STATUS")
            && header.contains("   PORTS")
            && header.ends_with("   NAMES"),
        "{header:?}"
    );
    let row = lines.next().expect("row");
    assert!(
        row.contains("hello-world   \"/hello\"") && row.contains("Exited (0)"),
        "{row:?}"
    );
    let name = row.split_whitespace().last().expect("name");
    let (a, b) = name
        .split_once('_')
        .expect("generated name has an underscore");
    assert!(
        !a.is_empty()
            && !b.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
        "{name}"
    );

    let images = d.ok(&["images"]);
    assert!(images
        .lines()
        .next()
        .expect("header")
        .starts_with("REPOSITORY    TAG       IMAGE ID       CREATED"));
    let row = images.lines().nth(1).expect("image row");
    assert!(row.starts_with("hello-world   latest    "), "{row:?}");
    assert!(
        row.split_whitespace()
            .nth(2)
            .is_some_and(|id| id.len() == 12),
        "{row:?}"
    );

    let root = d.ok(&["info", "--format", "{{.DockerRootDir}}"]);
    assert_eq!(root.trim(), d.data.display().to_string());
    let info = d.ok(&["info"]);
    assert!(
        info.contains(
            "Server:\n Containers: 1\n  Running: 0\n  Paused: 0\n  Stopped: 1\n Images: 1\n"
        ),
        "{info}"
    );

    let df = d.ok(&["system", "df"]);
    let mut lines = df.lines();
    assert_eq!(
        lines.next(),
        Some("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE")
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("Images          1         1         ")),
        "{df}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("Containers      1         0         ")),
        "{df}"
    );

    let v = d.ok(&["version", "--format", "{{.Server.Version}}"]);
    assert!(!v.trim().is_empty());
    let inspect = d.ok(&["inspect", "--type", "image", "hello-world"]);
    let parsed: serde_json::Value = serde_json::from_str(&inspect).expect("inspect is JSON");
    assert_eq!(parsed.as_array().map(Vec::len), Some(1));
    assert!(
        inspect.starts_with("[\n    {\n        \""),
        "4-space indent like docker: {inspect}"
    );
}

#[test]
fn output_matches_the_docker_cli() {
    if !Path::new(DOCKER).exists() {
        eprintln!("SKIPPED: {DOCKER} not installed");
        return;
    }
    let d = daemon_or_skip!();
    d.import_hello_world();
    d.ok(&["run", "--name", "first", "hello-world"]);
    d.ok(&["tag", "hello-world", "hw:v2"]);
    // Formats without relative times, so both clients render the same instant-independent text.
    for args in [
        vec![
            "ps",
            "-a",
            "--format",
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Ports}}\t{{.Names}}",
        ],
        vec![
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Names}} {{.Labels}}",
        ],
        vec![
            "images",
            "--format",
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}",
        ],
        vec!["images", "-q"],
        vec![
            "images",
            "--digests",
            "--format",
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}",
        ],
        vec!["inspect", "first"],
        vec![
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{json .Config.Cmd}} {{.Config.Image}}",
            "first",
        ],
        vec![
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Config.Cmd}}",
            "hw:v2",
        ],
        vec![
            "history",
            "--format",
            "table {{.ID}}\t{{.Size}}\t{{.Comment}}",
            "hello-world",
        ],
        vec!["system", "df"],
        vec!["system", "df", "--format", "json"],
        vec![
            "ps",
            "-a",
            "-s",
            "--format",
            "table {{.Names}}\t{{.Size}}\t{{.Ports}}\t{{.Labels}}\t{{.State}}",
        ],
        vec![
            "version",
            "--format",
            "{{.Server.Version}} {{.Server.APIVersion}}",
        ],
        vec![
            "info",
            "--format",
            "{{.Containers}} {{.Images}} {{.Driver}} {{json .Plugins.Log}}",
        ],
    ] {
        let ours = d.berth(&args);
        let theirs = d.cmd(Path::new(DOCKER), &args, None);
        // docker lists the repositories of one image in Go map order (random): compare image rows as a set.
        let norm = |o: &Output| {
            let text = stdout(o);
            if args[0] != "images" {
                return text;
            }
            let mut lines: Vec<&str> = text.lines().collect();
            let skip = usize::from(args.iter().any(|a| a.starts_with("table")));
            lines[skip..].sort_unstable();
            lines.join("\n")
        };
        assert_eq!(
            norm(&ours),
            norm(&theirs),
            "berth {args:?} differs from docker\nstderr: {}",
            stderr(&ours)
        );
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "exit code of {args:?}"
        );
    }
}

#[test]
fn exit_codes_and_streams_pass_through() {
    let d = daemon_or_skip!();
    if !d.import_busybox() {
        eprintln!(
            "SKIPPED: busybox-static not installed (tests/fixtures/make-busybox-rootfs.sh failed)"
        );
        return;
    }
    let o = d.berth(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");

    let o = d.berth(&["run", "--rm", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));

    let o = d.berth(&["run", "busybox", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(127), "stderr: {}", stderr(&o));
    assert!(stderr(&o).starts_with("berth: "), "{}", stderr(&o));

    // create + start -a passes the status through too; wait prints it.
    let id = d.ok(&[
        "create",
        "--name",
        "c1",
        "-e",
        "X=42",
        "busybox",
        "sh",
        "-c",
        "echo $X; exit 4",
    ]);
    assert_eq!(id.trim().len(), 64, "create prints the full id: {id:?}");
    let o = d.berth(&["start", "-a", "c1"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(4), "42\n"),
        "stderr: {}",
        stderr(&o)
    );
    assert_eq!(d.ok(&["wait", "c1"]), "4\n");
    assert_eq!(d.ok(&["logs", "c1"]), "42\n");
    d.ok(&["rename", "c1", "c2"]);
    assert!(d
        .ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .any(|l| l == "c2"));
    assert_eq!(d.ok(&["rm", "c2"]), "c2\n");

    // Detached: the full id, then stop.
    let id = d.ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "1000"]);
    assert_eq!(id.trim().len(), 64);
    assert!(d
        .ok(&["ps", "--format", "{{.Names}} {{.State}}"])
        .contains("sleeper running"));
    assert_eq!(d.ok(&["stop", "-t", "1", "sleeper"]), "sleeper\n");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "sleeper"]),
        "false\n"
    );
    assert_eq!(d.ok(&["rm", "-f", "sleeper"]), "sleeper\n");

    let o = d.berth(&["rm", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "Error response from daemon: No such container: nosuch\n"
    );
}

#[test]
fn missing_image_fails_in_one_clear_line() {
    let d = daemon_or_skip!();
    let o = d.berth(&["run", "nosuch-image-for-berth-tests"]);
    assert_eq!(o.status.code(), Some(125), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("Unable to find image 'nosuch-image-for-berth-tests:latest' locally"),
        "{err}"
    );
    // Pull status lines may come first; the failure itself is one `berth: ...` line, and the last.
    let failures: Vec<&&str> = lines.iter().filter(|l| l.starts_with("berth: ")).collect();
    assert_eq!(failures.len(), 1, "{err}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("berth: ") && l.len() > "berth: ".len()),
        "{err}"
    );
}

#[test]
fn image_verbs() {
    let d = daemon_or_skip!();
    d.import_hello_world();
    d.ok(&["tag", "hello-world", "hw:2"]);
    assert!(d
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .any(|l| l == "hw:2"));
    assert_eq!(d.ok(&["rmi", "hw:2"]), "Untagged: hw:2\n");
    let h = d.ok(&["history", "hello-world"]);
    assert!(h.starts_with("IMAGE          CREATED"), "{h}");
    assert!(
        h.lines()
            .next()
            .is_some_and(|l| l.contains("   CREATED BY   ") && l.ends_with("COMMENT")),
        "{h}"
    );
    let json = d.ok(&["images", "--format", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(json.lines().next().expect("line")).expect("json line");
    assert_eq!(v["Repository"], "hello-world");
    // save → rmi → load round trip (when this berthd serves them).
    let tar = d.root.path().join("hw.tar");
    let save = d.berth(&["save", "-o", tar.to_str().expect("utf8"), "hello-world"]);
    if save.status.success() {
        assert!(
            fs::metadata(&tar).map(|m| m.len()).unwrap_or(0) > 0,
            "save wrote nothing"
        );
        d.ok(&["rmi", "hello-world"]);
        let load = d.ok(&["load", "-i", tar.to_str().expect("utf8")]);
        assert_eq!(load, "Loaded image: hello-world:latest\n");
        assert!(d
            .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .contains("hello-world:latest"));
    } else {
        eprintln!("save not served by this berthd: {}", stderr(&save));
    }
    let o = d.berth(&["rmi", "nosuch:1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("Error response from daemon: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn logout_edits_the_docker_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.json");
    fs::write(
        &cfg,
        r#"{"auths":{"127.0.0.1:5000":{"auth":"YTpi"},"other:1":{"auth":"eDp5"}},"psFormat":"x"}"#,
    )
    .expect("write");
    let run = |args: &[&str]| {
        Command::new(berth_bin())
            .args(args)
            .env("DOCKER_CONFIG", dir.path())
            .env("BERTH_HOST", "unix:///nonexistent")
            .output()
            .expect("berth")
    };
    let o = run(&["logout", "127.0.0.1:5000"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "Removing login credentials for 127.0.0.1:5000\n"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(&cfg).expect("read")).expect("json");
    assert!(v["auths"].get("127.0.0.1:5000").is_none());
    assert_eq!(
        v["auths"]["other:1"]["auth"], "eDp5",
        "other credentials kept"
    );
    assert_eq!(v["psFormat"], "x", "other settings kept");
    let o = run(&["logout", "127.0.0.1:5000"]);
    assert_eq!(stdout(&o), "Not logged in to 127.0.0.1:5000\n");
}

#[test]
fn client_errors_without_a_daemon() {
    let run = |args: &[&str], host: &str| {
        Command::new(berth_bin())
            .args(args)
            .env("BERTH_HOST", host)
            .env_remove("DOCKER_HOST")
            .output()
            .expect("berth")
    };
    let o = run(&["run", "--bogus", "x"], "unix:///nonexistent/berth.sock");
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(
        stderr(&o),
        "unknown flag: --bogus\nSee 'berth run --help'.\n"
    );
    let o = run(&["ps"], "unix:///nonexistent/berth.sock");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?\n"
    );
    let o = run(&["--version"], "unix:///nonexistent");
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).starts_with("Berth version 0.1.0, build "),
        "{}",
        stdout(&o)
    );
    let o = run(&["run", "--help"], "unix:///nonexistent");
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("--memory-swap"), "{}", stdout(&o));
    let o = run(&["rm"], "unix:///nonexistent");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("berth: 'berth rm' requires at least 1 argument"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn signals_are_proxied_and_prunes_report() {
    let d = daemon_or_skip!();
    if !d.import_busybox() {
        eprintln!(
            "SKIPPED: busybox-static not installed (tests/fixtures/make-busybox-rootfs.sh failed)"
        );
        return;
    }
    let out_path = d.root.path().join("trap.out");
    let out_file = fs::File::create(&out_path).expect("out file");
    let script = "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done";
    let mut child = Command::new(berth_bin())
        .args(["run", "--name", "trap", "busybox", "sh", "-c", script])
        .env("BERTH_HOST", d.host())
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(Stdio::null())
        .spawn()
        .expect("berth run");
    // Readiness wait (bounded), not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(&out_path)
        .unwrap_or_default()
        .contains("ready")
    {
        if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "container never got ready: {}\n{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let st = child.wait().expect("wait");
    assert_eq!(
        st.code(),
        Some(7),
        "berth run exits with the container's status after the proxied SIGTERM"
    );
    assert_eq!(
        fs::read_to_string(&out_path).expect("out"),
        "ready\ngot-term\n"
    );
    assert_eq!(d.ok(&["logs", "-f", "trap"]), "ready\ngot-term\n");

    let prune = d.ok(&["container", "prune", "-f"]);
    assert!(prune.starts_with("Deleted Containers:\n"), "{prune}");
    assert!(prune.ends_with("\nTotal reclaimed space: 0B\n"), "{prune}");
    assert_eq!(d.ok(&["ps", "-a", "-q"]), "");
    let prune = d.ok(&["image", "prune", "-a", "-f"]);
    assert!(prune.contains("untagged: busybox:latest\n"), "{prune}");
    assert_eq!(d.ok(&["images", "-q"]), "");
}
