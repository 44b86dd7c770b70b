//! berthd after the unexpected, driven by the real docker CLI: a container's monitor SIGKILLed while its
//! container runs, also in its first moments before it wrote monitor.json (berthd cleans up off its async
//! threads, keeps answering, and records a run with docker's unknown exit code 255), and berthd SIGKILLed in
//! the middle of a `run` (the restarted berthd finds the run's true state: running, then exited with its code).
//! Run as root inside `unshare -m --propagation private`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Daemon;

/// Waits for a file (bounded).
fn wait_file(p: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !p.exists() {
        assert!(
            Instant::now() < deadline,
            "{what}: {} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn monitor_pid(d: &Daemon, id: &str) -> i32 {
    let v: serde_json::Value = serde_json::from_slice(
        &fs::read(d.data.join("containers").join(id).join("config.v2.json")).unwrap(),
    )
    .unwrap();
    v["MonitorPid"].as_i64().unwrap_or(0) as i32
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

#[test]
fn monitor_killed_while_its_container_runs() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let id = d.run_looping("orphan");
    let mon = monitor_pid(&d, &id);
    let init: i32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", "orphan"])
        .trim()
        .parse()
        .unwrap();
    assert!(mon > 0 && init > 0 && alive(init));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // berthd answers while it deletes the orphaned container's runtime state (which kills what is left).
    let ps = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(ps.lines().any(|l| l == "orphan"), "{ps}");
    assert_eq!(
        d.ok(&["version", "--format", "{{.Server.Os}}"]).trim(),
        "linux"
    );
    d.wait_inspect("orphan", "{{.State.Status}}", |s| s == "exited");
    // Without the monitor's exit record the code is unknown: docker's 255 (no exit status).
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}",
            "orphan"
        ])
        .trim(),
        "false 0 255"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(init) {
        assert!(
            Instant::now() < deadline,
            "the container's init {init} outlived the cleanup"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !d.exec.join("runtime").join(&id).exists(),
        "runtime state left behind"
    );
    // Nothing left over makes the next start fail.
    d.ok(&["start", "orphan"]);
    d.wait_for_log(&id, "up");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "orphan"])
            .trim(),
        "running"
    );
    // A monitor killed in its first moments, before it recorded the start in monitor.json (a line without
    // its end holds it there for up to 2 s): the run berthd saw start still ends as a run, with docker's
    // unknown exit code and a die event.
    let early = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "early",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "printf partial; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor_pid(&d, &early)),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_inspect("early", "{{.State.Status}}", |s| s == "exited");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "early"])
            .trim(),
        "255"
    );
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let ev = d.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        &until,
        "--filter",
        "container=early",
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
    ]);
    assert_eq!(ev, "255\n");
    d.ok(&["rm", "early"]);
    // And it goes like any stopped container (prune removes off berthd's async threads).
    d.ok(&["stop", "-t", "0", "orphan"]);
    let pruned = d.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains(&id), "{pruned}");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert!(!d.data.join("containers").join(&id).exists());
}

/// SIGKILLs, when dropped, a monitor still running for `id`, its children (the gated runtime) and what is in
/// the container's cgroup, so a failed assertion leaves no processes behind.
struct MonitorReaper {
    pid: i32,
    id: String,
}

impl Drop for MonitorReaper {
    fn drop(&mut self) {
        let cmdline = fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        if !alive(self.pid) || !String::from_utf8_lossy(&cmdline).contains(&self.id) {
            return;
        }
        let kids = fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid))
            .unwrap_or_default();
        let procs = fs::read_to_string(format!(
            "/sys/fs/cgroup/pids/berth/{}/cgroup.procs",
            self.id
        ))
        .unwrap_or_default();
        let mut pids: Vec<i32> = kids
            .split_whitespace()
            .chain(procs.split_whitespace())
            .filter_map(|p| p.parse().ok())
            .collect();
        pids.push(self.pid);
        for p in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `berth` (whose `runtime` subcommand is a runc-compatible CLI) next to the berthd under test.
fn berth_cli() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_berthd")).with_file_name("berth");
    p.is_file().then_some(p)
}

#[test]
fn berthd_killed_during_a_start_finds_the_true_state() {
    require!();
    if std::env::var_os("BERTH_TEST_RUNTIME").is_some() {
        eprintln!("SKIPPED: this test picks its own runtime CLI (BERTH_TEST_RUNTIME is set)");
        return;
    }
    let Some(berth) = berth_cli() else {
        eprintln!("SKIPPED: berth not built next to berthd (cargo build --workspace --bins)");
        return;
    };
    let mut d = Daemon::prepare();
    let gate = d.root.path().join("gate");
    fs::create_dir_all(&gate).unwrap();
    // A runtime CLI that holds `start` until the test lets it go: berthd is SIGKILLed while the monitor waits
    // for the container to start, that is before the monitor could answer berthd or write monitor.json.
    let rt = d.root.path().join("gated-runtime");
    fs::write(
        &rt,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = start ]; then\n    : > {g}/at-start\n    \
             while [ ! -e {g}/go ]; do sleep 0.02; done\n  fi\ndone\nexec {b} runtime \"$@\"\n",
            g = gate.display(),
            b = berth.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&rt, fs::Permissions::from_mode(0o755)).unwrap();
    d.extra_args = vec!["--runtime".into(), rt.display().to_string()];
    d.spawn();
    d.import_busybox();
    let mut run = d
        .docker_command(&[
            "run",
            "-d",
            "--name",
            "cut",
            "--network",
            "none",
            "-v",
            &format!("{}:/gate", gate.display()),
            "busybox",
            "sh",
            "-c",
            "echo up; while [ ! -e /gate/exit ]; do sleep 0.05; done; exit 3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_file(&gate.join("at-start"), "the runtime's start");
    d.kill9();
    // The client loses its connection.
    assert!(!run.wait().unwrap().success());
    // berthd is back before the container starts: it finds a live monitor and no start recorded.
    d.spawn();
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "cut"]).trim(),
        "created"
    );
    fs::write(gate.join("go"), "").unwrap();
    d.wait_inspect("cut", "{{.State.Status}}", |s| s == "running");
    let pid: i32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", "cut"])
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 0 && alive(pid), "recorded pid {pid} is not running");
    assert_eq!(
        d.ok(&["ps", "--filter", "name=cut", "--format", "{{.Status}}"])
            .split(' ')
            .next(),
        Some("Up")
    );
    d.wait_for_log("cut", "up");
    // `docker wait` waits for the real exit and reports its code.
    let mut wait = d
        .docker_command(&["wait", "cut"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Whether the exit comes before or after the API has the waiter, the answer is the container's code.
    fs::write(gate.join("exit"), "").unwrap();
    let out = {
        use std::io::Read;
        let mut s = String::new();
        wait.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        assert!(wait.wait().unwrap().success());
        s
    };
    assert_eq!(out.trim(), "3");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "cut"
        ])
        .trim(),
        "exited 3"
    );
    d.ok(&["rm", "cut"]);

    // Once more, with berthd dead before it recorded the monitor's pid either (the record is what a crash
    // right after the spawn leaves): the restarted berthd finds the monitor by its command line.
    fs::remove_file(gate.join("at-start")).unwrap();
    fs::remove_file(gate.join("go")).unwrap();
    let mut run = d
        .docker_command(&[
            "run",
            "-d",
            "--name",
            "unrec",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo up; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_file(&gate.join("at-start"), "the runtime's start");
    let id = d
        .ok(&["inspect", "-f", "{{.Id}}", "unrec"])
        .trim()
        .to_string();
    let mon = monitor_pid(&d, &id);
    assert!(mon > 0 && alive(mon));
    // The harness finds monitors through the records; this one it would miss if the adoption failed.
    let _reaper = MonitorReaper {
        pid: mon,
        id: id.clone(),
    };
    d.kill9();
    assert!(!run.wait().unwrap().success());
    let rec = d.data.join("containers").join(&id).join("config.v2.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&rec).unwrap()).unwrap();
    v["MonitorPid"] = 0.into();
    let tmp = rec.with_extension("test-tmp");
    fs::write(&tmp, serde_json::to_vec(&v).unwrap()).unwrap();
    fs::rename(&tmp, &rec).unwrap();
    d.spawn();
    assert_eq!(monitor_pid(&d, &id), mon, "the monitor was not adopted");
    fs::write(gate.join("go"), "").unwrap();
    d.wait_inspect("unrec", "{{.State.Status}}", |s| s == "running");
    d.wait_for_log("unrec", "up");
    // Known again, it goes the normal way: the forced removal stops the container first.
    d.ok(&["rm", "-f", "unrec"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(mon) {
        assert!(Instant::now() < deadline, "monitor {mon} outlived rm -f");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!d.exec.join("runtime").join(&id).exists());
}
