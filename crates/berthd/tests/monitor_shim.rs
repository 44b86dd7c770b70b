//! The monitor's steady state in `berth-shim`: a running container's monitor is the small sealed shim (same
//! pid, the init's parent), its json-file log is what berthd reads (escaping, partial and long lines,
//! rotation), `-i` and `-t` go through it, and the shim records the exit itself while berthd cleans up after it
//! (runtime state, cgroup, rootfs), also for a `--rm` container that exits while berthd is down. A container on a
//! user network keeps the full monitor (its embedded DNS server is a thread of it). Run as root inside
//! `unshare -m --propagation private`.

mod common;

use std::fs;
use std::path::PathBuf;

use common::Daemon;

/// `berth-shim` next to the monitor binary the harness gives berthd, or None (then the test is skipped).
fn shim_binary() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_berthd")).with_file_name("berth-shim");
    p.is_file().then_some(p)
}

macro_rules! require_shim {
    () => {
        if shim_binary().is_none() {
            eprintln!(
                "SKIPPED: berth-shim not built next to berthd (cargo build --workspace --bins)"
            );
            return;
        }
    };
}

fn status_field(pid: i32, key: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn argv(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The monitor's argv once it runs the shim: the monitor pumps a new container's first moments itself and
/// hands over after them (a container that is over at once never costs the exec). Gives up after 10 s.
fn shim_argv(pid: i32) -> Vec<String> {
    for _ in 0..500 {
        let args = argv(pid);
        if args.first().is_some_and(|a| a.ends_with("berth-shim")) {
            return args;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    argv(pid)
}

fn monitor_pid(d: &Daemon, id: &str) -> i32 {
    let v: serde_json::Value = serde_json::from_slice(
        &fs::read(d.data.join("containers").join(id).join("config.v2.json")).unwrap(),
    )
    .unwrap();
    v["MonitorPid"].as_i64().unwrap_or(0) as i32
}

#[test]
fn running_container_is_watched_by_the_sealed_shim() {
    require!();
    require_shim!();
    let d = Daemon::start();
    d.import_busybox();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    d.wait_for_log(&id, "ready");
    let mon = monitor_pid(&d, &id);
    assert!(mon > 0);
    let args = shim_argv(mon);
    assert!(args[0].ends_with("berth-shim"), "monitor runs {args:?}");
    assert_eq!(args[1], "monitor");
    assert!(args.contains(&id), "{args:?}");
    assert_eq!(status_field(mon, "Threads"), "1");
    // Run from the sealed view berthd keeps, never from the host file (CVE-2019-5736).
    let exe = fs::read_link(format!("/proc/{mon}/exe")).unwrap();
    let host = fs::canonicalize(shim_binary().unwrap()).unwrap();
    assert_ne!(exe, host, "the shim runs from the host binary");
    // Same process: the container's init is still the monitor's child.
    let init: i32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", &id])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(status_field(init, "PPid"), mon.to_string());
    let rss_kb: u64 = status_field(mon, "VmRSS")
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    eprintln!("berth-shim VmRSS {rss_kb} kB (this build)");
    // The full monitor is ~5.6 MB in a release build (more in debug); the shim must be far below that.
    assert!(rss_kb < 3 * 1024, "shim RSS {rss_kb} kB");

    d.ok(&["stop", &id]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]).trim(),
        "7"
    );
    let st: serde_json::Value = serde_json::from_slice(
        &fs::read(d.data.join("containers").join(&id).join("monitor.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(st["exit_code"], 7, "{st}");
    assert_eq!(st["pid"], init, "{st}");
    assert!(
        st["started_at"].as_str().is_some_and(|s| s.len() == 30),
        "{st}"
    );
    // berthd cleaned up after the shim before it published the exit: the rootfs is unmounted, the runtime state
    // and the container's cgroups are gone, and a run with nothing to report made no monitor.log.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("{id}/merged")),
        "rootfs still mounted"
    );
    assert!(
        !mounts.lines().any(|l| l.contains(&id)),
        "mount of {id} left behind"
    );
    assert!(
        !d.exec.join("runtime").join(&id).exists(),
        "runtime state left behind"
    );
    for ctrl in ["memory", "pids", "cpu", "unified", ""] {
        let cg = PathBuf::from("/sys/fs/cgroup")
            .join(ctrl)
            .join("berth")
            .join(&id);
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }
    let dir = d.data.join("containers").join(&id);
    assert!(!dir.join("monitor.log").exists(), "monitor.log made");
    if std::env::var_os("BERTH_TEST_RUNTIME").is_none() {
        // The builtin runtime hands the pid back in-process; a runtime CLI needs its --pid-file.
        assert!(!dir.join("init.pid").exists(), "init.pid made");
    }
    // It runs again (the cleanup left nothing that makes the next create fail).
    d.ok(&["start", &id]);
    d.ok(&["rm", "-f", &id]);
    assert!(!dir.exists(), "container dir still there after rm");
}

#[test]
fn rm_container_that_exits_while_berthd_is_down_is_removed_at_start() {
    require!();
    require_shim!();
    let mut d = Daemon::start();
    d.import_busybox();
    let gate = d.root.path().join("gate");
    fs::create_dir_all(&gate).unwrap();
    // Waits for a file from the test, so it exits exactly while berthd is down.
    let id = d
        .ok(&[
            "run",
            "-d",
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{}:/gate", gate.display()),
            "busybox",
            "sh",
            "-c",
            "echo up; while [ ! -e /gate/go ]; do sleep 0.05; done; exit 3",
        ])
        .trim()
        .to_string();
    d.wait_for_log(&id, "up");
    let mon = monitor_pid(&d, &id);
    assert!(mon > 0);
    d.kill9();
    fs::write(gate.join("go"), "").unwrap();
    // The monitor (not a child of ours) records the exit and ends; wait for it before berthd comes back.
    let mut tries = 0;
    while fs::read_to_string(format!("/proc/{mon}/cmdline")).is_ok_and(|c| c.contains(&id)) {
        tries += 1;
        assert!(
            tries < 3000,
            "the monitor did not end after its container exited"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    d.spawn();
    let all = d.ok(&["ps", "-aq", "--no-trunc"]);
    assert!(!all.contains(&id), "--rm container still listed: {all}");
    assert!(!d.data.join("containers").join(&id).exists());
    assert!(!d.data.join("overlay2").join(&id).exists());
    assert!(
        !d.exec.join("runtime").join(&id).exists(),
        "runtime state left behind"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains(&id)),
        "mount of {id} left behind"
    );
    // A --rm container's runtime state and cgroups go right after its removal (which `run` waits for).
    d.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
    let runtime = d.exec.join("runtime");
    let left = |rt: &std::path::Path| {
        fs::read_dir(rt)
            .map(|r| {
                r.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    };
    let mut tries = 0;
    while left(&runtime) > 0 {
        tries += 1;
        assert!(tries < 500, "runtime state of a --rm container left behind");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn shim_logs_match_the_engine_format() {
    require!();
    require_shim!();
    let d = Daemon::start();
    d.import_busybox();
    // Quotes, backslashes, tabs, a control character, UTF-8, invalid UTF-8, stderr, a line without a newline
    // at exit and one longer than 16 KiB.
    let script = r#"printf 'a "q" \\ b\tc\001 é\n'; printf 'bad \377 x\n'; echo err >&2; head -c 20000 /dev/zero | tr '\0' x; echo; printf tail"#;
    let out = d.docker(&[
        "run",
        "--name",
        "logfmt",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = d
        .ok(&["inspect", "-f", "{{.Id}}", "logfmt"])
        .trim()
        .to_string();
    let logs = d.docker(&["logs", &id]);
    let stdout = String::from_utf8_lossy(&logs.stdout).into_owned();
    let mut lines = stdout.split_inclusive('\n');
    assert_eq!(lines.next(), Some("a \"q\" \\ b\tc\u{1} é\n"));
    assert_eq!(lines.next(), Some("bad \u{fffd} x\n"));
    // The long line comes back whole (written in 16 KiB pieces, docker joins nothing: pieces follow each other).
    let rest: String = lines.collect();
    assert_eq!(rest, format!("{}\ntail", "x".repeat(20000)));
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "err\n");
    // The raw file: the engine's field order and timestamp format.
    let raw = fs::read_to_string(
        d.data
            .join("containers")
            .join(&id)
            .join(format!("{id}-json.log")),
    )
    .unwrap();
    let first = raw.lines().next().unwrap();
    assert!(
        first.starts_with(r#"{"log":"a \"q\" \\ b\tc\u0001 é\n","stream":"stdout","time":""#),
        "{first}"
    );
    let time = first
        .rsplit_once("\"time\":\"")
        .unwrap()
        .1
        .trim_end_matches("\"}");
    assert_eq!(time.len(), 30, "{time}");
    assert!(time.ends_with('Z'));

    // Rotation: max-size 1k, two files.
    let id = d
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=2",
            "busybox",
            "sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; echo done",
        ])
        .trim()
        .to_string();
    d.ok(&["wait", &id]);
    let dir = d.data.join("containers").join(&id);
    let log = dir.join(format!("{id}-json.log"));
    assert!(fs::metadata(&log).unwrap().len() <= 1024);
    assert!(dir.join(format!("{id}-json.log.1")).exists());
    assert!(!dir.join(format!("{id}-json.log.2")).exists());
    let tail = d.ok(&["logs", "--tail", "1", &id]);
    assert_eq!(tail, "done\n");
}

#[test]
fn stdin_and_tty_through_the_shim() {
    require!();
    require_shim!();
    let d = Daemon::start();
    d.import_busybox();
    let out = d.docker_stdin(
        &[
            "run",
            "-i",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "cat; echo end",
        ],
        b"one\ntwo\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\nend\n");
    // A detached TTY container: its monitor is the shim, the pty output lands in the log.
    let id = d
        .ok(&[
            "run",
            "-dt",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "tty; echo ready; sleep 30",
        ])
        .trim()
        .to_string();
    d.wait_for_log(&id, "ready");
    assert!(shim_argv(monitor_pid(&d, &id))[0].ends_with("berth-shim"));
    let logs = d.ok(&["logs", &id]);
    assert!(logs.starts_with("/dev/pts/"), "{logs:?}");
    d.ok(&["rm", "-f", &id]);
}

#[test]
fn user_network_container_keeps_the_full_monitor_for_dns() {
    require!();
    require_shim!();
    let d = Daemon::start();
    d.import_busybox();
    d.ok(&["network", "create", "shimnet"]);
    let id = d
        .ok(&[
            "run",
            "-d",
            "--network",
            "shimnet",
            "--name",
            "dnsbox",
            "busybox",
            "sleep",
            "30",
        ])
        .trim()
        .to_string();
    let mon = monitor_pid(&d, &id);
    // Well past the moments a new container's monitor pumps before it would hand over.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let args = argv(mon);
    assert!(!args[0].ends_with("berth-shim"), "{args:?}");
    assert!(args.contains(&"monitor".to_string()));
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "shimnet",
        "busybox",
        "nslookup",
        "dnsbox",
    ]);
    assert!(out.contains("Address"), "{out}");
    d.ok(&["rm", "-f", "dnsbox"]);
    d.ok(&["network", "rm", "shimnet"]);
}
