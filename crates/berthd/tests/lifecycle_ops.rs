//! Container life beyond one run, driven by the real docker CLI against berthd: restart policies (counts,
//! back-off, `restarting` in ps/inspect, manual stop, berthd restarts), `logs -f` across restarts, `--rm` with a
//! policy, the event sequences of `run --rm` and of stop/kill/rename/update/restart, `--init` and healthchecks.
//! Run as root inside `unshare -m --propagation private`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, DOCKER};

fn docker_cmd(d: &Daemon, args: &[&str]) -> Command {
    let mut c = Command::new("timeout");
    c.args(["300", DOCKER])
        .args(args)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", &d.docker_config)
        .stdin(Stdio::null());
    c
}

#[test]
fn on_failure_restarts_exactly_n_times_and_logs_follow() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "flaky",
            "--restart",
            "on-failure:3",
            "busybox",
            "sh",
            "-c",
            "echo run; sleep 0.5; exit 1",
        ])
        .trim()
        .to_string();
    // logs -f keeps following while the policy restarts the container, and ends when it is down for good.
    let follow = docker_cmd(&d, &["logs", "-f", &id])
        .stdout(Stdio::piped())
        .output()
        .expect("logs -f");
    assert!(follow.status.success());
    let followed = String::from_utf8_lossy(&follow.stdout);
    assert_eq!(d.ok(&["wait", "flaky"]).trim(), "1");
    let st = d.ok(&[
        "inspect",
        "-f",
        "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}} {{.State.Restarting}} {{.HostConfig.RestartPolicy.Name}}",
        "flaky",
    ]);
    assert_eq!(st.trim(), "3 exited 1 false on-failure");
    assert_eq!(d.ok(&["logs", "flaky"]), "run\nrun\nrun\nrun\n");
    assert!(
        followed.matches("run").count() >= 2 && followed.ends_with("run\n"),
        "logs -f did not follow across restarts: {followed:?}"
    );
    let ps = d.ok(&[
        "ps",
        "-a",
        "--filter",
        "name=flaky",
        "--format",
        "{{.Status}}",
    ]);
    assert!(ps.starts_with("Exited (1)"), "{ps}");
    // A manual start begins a new count.
    d.ok(&["start", "flaky"]);
    assert_eq!(d.ok(&["wait", "flaky"]).trim(), "1");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.RestartCount}}", "flaky"])
            .trim(),
        "3"
    );
    // on-failure does not restart a clean exit.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "clean",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    assert_eq!(d.ok(&["wait", "clean"]).trim(), "0");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.RestartCount}}", "clean"])
            .trim(),
        "0"
    );
}

#[test]
fn always_shows_restarting_and_stop_ends_it() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 2",
    ]);
    // The back-off grows (100ms, 200ms, ... 1 minute): the container is soon seen waiting to restart.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        let s = d.ok(&[
            "ps",
            "-a",
            "--filter",
            "name=loop",
            "--format",
            "{{.Status}}",
        ]);
        if s.starts_with("Restarting (2)") {
            break s;
        }
        assert!(Instant::now() < deadline, "never Restarting: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.trim().ends_with("ago"), "{status}");
    d.wait_inspect("loop", "{{.State.Restarting}} {{.RestartCount}}", |s| {
        s.starts_with("true ") && s[5..].parse::<i64>().unwrap_or(0) >= 3
    });
    // Waiting for its restart counts as running, as in docker.
    d.wait_inspect("loop", "{{.State.Status}} {{.State.Running}}", |s| {
        s == "restarting true"
    });
    assert!(d
        .ok(&["ps", "--filter", "name=loop", "--format", "{{.Names}}"])
        .contains("loop"));
    let rm = d.docker(&["rm", "loop"]);
    assert!(!rm.status.success());
    d.ok(&["stop", "loop"]);
    let st = d.wait_inspect("loop", "{{.State.Status}} {{.State.Restarting}}", |s| {
        s == "exited false"
    });
    assert_eq!(st, "exited false");
    let count = d.ok(&["inspect", "-f", "{{.RestartCount}}", "loop"]);
    // A stopped container stays stopped: another exit never comes, and the count stays.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.ok(&["inspect", "-f", "{{.RestartCount}}", "loop"]), count);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "loop"]).trim(),
        "exited"
    );
    d.ok(&["rm", "loop"]);
}

#[test]
fn rm_with_restart_policy_is_refused() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let o = d.docker(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(err.contains("conflicting options"), "{err}");
    let (code, body) = d.http(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("restart policy"), "{body}");
    let (code, body) = d.http(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid restart policy"), "{body}");
    // A `--rm` container whose start fails is removed, as by dockerd: the CLI waits for that removal.
    let o = Command::new("timeout")
        .args(["60", DOCKER, "run", "--rm", "busybox", "/no/such/binary"])
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", &d.docker_config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127), "{o:?}");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

fn monitor_done(d: &Daemon, id: &str) {
    let f = d.data.join("containers").join(id).join("monitor.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: serde_json::Value = std::fs::read(&f)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if !v["exit_code"].is_null() {
            let mp = std::fs::read(d.data.join("containers").join(id).join("config.v2.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["MonitorPid"].as_i64())
                .unwrap_or(0);
            if mp == 0
                || !std::path::Path::new(&format!("/proc/{mp}/cmdline")).exists()
                || std::fs::read_to_string(format!("/proc/{mp}/stat")).is_ok_and(|s| {
                    s.rsplit_once(')')
                        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                })
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "monitor of {id} did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill_init(d: &Daemon, name: &str) -> String {
    let id = d.ok(&["inspect", "-f", "{{.Id}}", name]).trim().to_string();
    let pid: i32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", name])
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 0);
    id
}

#[test]
fn policies_across_berthd_restarts() {
    require!();
    let mut d = Daemon::start();
    d.import_busybox();
    let forever = "trap 'exit 0' TERM; echo up; while true; do sleep 0.1; done";
    for (name, policy) in [("alw", "always"), ("uls", "unless-stopped"), ("nop", "no")] {
        d.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "busybox",
            "sh",
            "-c",
            forever,
        ]);
        d.wait_for_log(name, "up");
    }
    // berthd SIGKILLed; the containers die while it is away; the new berthd applies their policies.
    let pids: Vec<(String, i32)> = ["alw", "uls", "nop"]
        .iter()
        .map(|n| {
            let id = kill_init(&d, n);
            let pid = d
                .ok(&["inspect", "-f", "{{.State.Pid}}", n])
                .trim()
                .parse()
                .unwrap();
            (id, pid)
        })
        .collect();
    d.kill9();
    for (id, pid) in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        monitor_done(&d, id);
    }
    d.spawn();
    for n in ["alw", "uls"] {
        d.wait_inspect(n, "{{.State.Status}} {{.RestartCount}}", |s| {
            s == "running 1"
        });
    }
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "nop"
        ])
        .trim(),
        "exited 137"
    );
    // A user stop, then berthd stopped with SIGTERM and started again: `always` comes back, `unless-stopped`
    // stays down.
    d.ok(&["stop", "alw", "uls"]);
    let st = d.terminate();
    assert!(st.success(), "{st}");
    d.spawn();
    d.wait_inspect("alw", "{{.State.Status}}", |s| s == "running");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "uls"]).trim(),
        "exited",
        "{}",
        d.log()
    );
    // And a running `always` container survives a SIGTERMed berthd as it is.
    d.wait_for_log("alw", "up");
    let st = d.terminate();
    assert!(st.success(), "{st}");
    d.spawn();
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "alw"]).trim(),
        "running"
    );
    d.ok(&["stop", "alw"]);
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn run_rm_event_sequence() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let since = format!("{:.3}", unix_now() - 1.0);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--name",
            "ephemeral",
            "busybox",
            "echo",
            "hi"
        ]),
        "hi\n"
    );
    let until = format!("{:.3}", unix_now() + 1.0);
    let out = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let lines: Vec<&str> = out.lines().filter(|l| l.ends_with(" ephemeral")).collect();
    let mut it = lines.iter();
    for w in ["create", "start", "die", "destroy"] {
        assert!(
            it.any(|l| l.split(' ').next() == Some(w)),
            "{w} missing or out of order in {lines:?}"
        );
    }
}

#[test]
fn init_reaps_zombies_and_forwards_signals() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    // The orphaned `sleep 0.1` is re-parented to PID 1, which must reap it.
    let out = d.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "(sleep 0.1 &) ; sleep 1; ps -o stat,pid,ppid,comm; echo end",
    ]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.get(1) == Some(&"1") && r.get(3) == Some(&"docker-init")),
        "PID 1 is not the init:\n{out}"
    );
    assert!(
        rows.iter()
            .any(|r| r.get(2) == Some(&"1") && r.get(3) == Some(&"sh")),
        "the command is not the init's child:\n{out}"
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.first().is_some_and(|s| s.starts_with('Z'))),
        "zombies left:\n{out}"
    );
    // The init exits with the command's status...
    let o = d.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    // ...and forwards the stop signal to it (without forwarding, stop would SIGKILL after its timeout: 137).
    d.ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        "sig",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    d.wait_for_log("sig", "ready");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.Init}} {{.Path}}", "sig"])
            .trim(),
        "true sh"
    );
    d.ok(&["stop", "-t", "60", "sig"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "sig"])
            .trim(),
        "7"
    );
    // The init is read-only inside the container.
    let o = d.docker(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "echo x > /sbin/docker-init || echo x > /proc/1/exe || exit 0; exit 1",
    ]);
    assert_eq!(o.status.code(), Some(0), "docker-init is writable");
}

#[test]
fn healthchecks_become_healthy_or_unhealthy() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let since = format!("{:.3}", unix_now() - 1.0);
    for args in [
        &[
            "--name",
            "good",
            "--health-cmd",
            "echo fine",
            "--health-interval",
            "200ms",
        ][..],
        &[
            "--name",
            "bad",
            "--health-cmd",
            "echo nope; exit 1",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
        ],
        &["--name", "plain"],
    ] {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "sleep", "300"]);
        d.ok(&a);
    }
    d.wait_inspect("good", "{{.State.Health.Status}}", |s| s == "healthy");
    d.wait_inspect("bad", "{{.State.Health.Status}}", |s| s == "unhealthy");
    let good = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Health.FailingStreak}} {{(index .State.Health.Log 0).ExitCode}} {{json (index .State.Health.Log 0).Output}}",
        "good",
    ]);
    assert_eq!(good.trim(), r#"0 0 "fine\n""#);
    let bad = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Health.FailingStreak}} {{(index .State.Health.Log 0).ExitCode}} {{json (index .State.Health.Log 0).Output}}",
        "bad",
    ]);
    let streak: i64 = bad.split_whitespace().next().unwrap().parse().unwrap();
    assert!(streak >= 2, "{bad}");
    assert!(bad.trim().ends_with(r#" 1 "nope\n""#), "{bad}");
    let names = |f: &str| {
        d.ok(&["ps", "--filter", f, "--format", "{{.Names}}"])
            .trim()
            .to_string()
    };
    assert_eq!(names("health=healthy"), "good");
    assert_eq!(names("health=unhealthy"), "bad");
    assert_eq!(names("health=none"), "plain");
    let st = d.ok(&["ps", "--filter", "name=good", "--format", "{{.Status}}"]);
    assert!(
        st.starts_with("Up ") && st.trim().ends_with("(healthy)"),
        "{st}"
    );
    let st = d.ok(&["ps", "--filter", "name=bad", "--format", "{{.Status}}"]);
    assert!(st.trim().ends_with("(unhealthy)"), "{st}");
    assert!(d
        .ok(&["inspect", "-f", "{{json .State.Health}}", "plain"])
        .starts_with("null"));
    let until = format!("{:.3}", unix_now() + 1.0);
    let ev = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert!(
        ev.lines().any(|l| l == "health_status: healthy good"),
        "{ev}"
    );
    assert!(
        ev.lines().any(|l| l == "health_status: unhealthy bad"),
        "{ev}"
    );
    d.ok(&["rm", "-f", "good", "bad", "plain"]);
}

/// The events of stop (past its timeout), kill -s, rename, update and restart, in moby's order and with its
/// attributes: kill carries the signal number, die the exit code and execDuration, rename the old name.
#[test]
fn lifecycle_event_sequence() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let since = format!("{:.3}", unix_now() - 1.0);
    // PID 1 without handlers ignores TERM and HUP: stop has to fall back to SIGKILL.
    let id = d.run_looping("evx");
    d.ok(&["stop", "-t", "1", "evx"]);
    d.ok(&["start", "evx"]);
    d.ok(&["kill", "-s", "HUP", "evx"]);
    d.ok(&["rename", "evx", "evy"]);
    d.ok(&["update", "--cpu-shares", "512", "evy"]);
    d.ok(&["restart", "-t", "1", "evy"]);
    let until = format!("{:.3}", unix_now() + 1.0);
    let out = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Action}} {{json .Actor.Attributes}}",
    ]);
    let evs: Vec<(String, serde_json::Value)> = out
        .lines()
        .map(|l| {
            let (a, j) = l.split_once(' ').unwrap();
            (a.to_string(), serde_json::from_str(j).unwrap())
        })
        .collect();
    let actions: Vec<&str> = evs.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "create", "start", "kill", "kill", "die", "stop", "start", "kill", "rename", "update",
            "kill", "kill", "die", "stop", "start", "restart"
        ],
        "{out}"
    );
    let signals: Vec<&str> = evs
        .iter()
        .filter(|(a, _)| a == "kill")
        .map(|(_, v)| v["signal"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(signals, ["15", "9", "1", "15", "9"], "{out}");
    for (a, v) in &evs {
        if a == "die" {
            assert_eq!(v["exitCode"], "137", "{out}");
            assert!(
                v["execDuration"]
                    .as_str()
                    .is_some_and(|s| s.parse::<u64>().is_ok()),
                "{out}"
            );
        }
        assert_eq!(v["image"], "busybox", "{out}");
    }
    let (_, rename) = &evs[8];
    assert_eq!(rename["oldName"], "/evx", "{out}");
    assert_eq!(rename["name"], "evy", "{out}");
    assert_eq!(evs[9].1["name"], "evy", "{out}");
    d.ok(&["rm", "-f", "evy"]);
}
