//! `berth runtime` lifecycle: create/start/state/kill/delete, run exit codes, exec, pause/resume, hooks, list,
//! and that delete leaves nothing behind.

mod runtime_common;
use runtime_common::*;
use serde_json::json;

#[test]
fn create_start_state_kill_delete() {
    if !privileged("create_start_state_kill_delete") {
        return;
    }
    let b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = unique("life");
    let o = b.rt(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        "pid",
        &id,
    ]);
    assert!(o.status.success(), "create: {}", text(&o.stderr));
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    let st = b.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"], "1.2.0");
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(b.path().join("pid")).unwrap(),
        pid.to_string()
    );
    let dirs = cgroup_dirs(&b, &id);
    assert!(!dirs.is_empty() && dirs.iter().all(|d| d.is_dir()));
    // The list shows it.
    let o = b.rt(&["list", "-q"]);
    assert!(text(&o.stdout).lines().any(|l| l == id));
    let o = b.rt(&["start", &id]);
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    assert_eq!(b.state(&id)["status"], "running");
    // The init is `sleep` now.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    let o = b.rt(&["start", &id]);
    assert!(!o.status.success());
    let o = b.rt(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pids, vec![pid]);
    // delete without --force refuses a running container.
    let o = b.rt(&["delete", &id]);
    assert!(!o.status.success());
    let o = b.rt(&["pause", &id]);
    assert!(o.status.success(), "pause: {}", text(&o.stderr));
    assert_eq!(b.state(&id)["status"], "paused");
    let o = b.rt(&["resume", &id]);
    assert!(o.status.success(), "resume: {}", text(&o.stderr));
    assert_eq!(b.state(&id)["status"], "running");
    let o = b.rt(&["kill", &id, "KILL"]);
    assert!(o.status.success(), "kill: {}", text(&o.stderr));
    // Stopped once the (reparented) init is reaped; poll the state, no timing assertion.
    for _ in 0..200 {
        if b.state(&id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(b.state(&id)["status"], "stopped");
    let o = b.rt(&["delete", &id]);
    assert!(o.status.success(), "delete: {}", text(&o.stderr));
    assert!(!b.root.join(&id).exists());
    assert!(
        dirs.iter().all(|d| !d.exists()),
        "cgroup dirs left: {dirs:?}"
    );
    // Gone, or a zombie waiting for its reaper (the init was reparented when `create` exited).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z "), "{stat}");
    let o = b.rt(&["state", &id]);
    assert!(text(&o.stderr).contains("does not exist"));
}

#[test]
fn run_returns_exit_status_and_cleans_up() {
    if !privileged("run_returns_exit_status_and_cleans_up") {
        return;
    }
    let b = Bundle::new();
    b.args(&["sh", "-c", "echo pid=$$; exit 3"]);
    let id = unique("exit");
    let (code, out, err) = b.run(&id);
    assert_eq!(code, 3, "stderr: {err}");
    assert_eq!(out.trim(), "pid=1");
    assert!(!b.root.join(&id).exists(), "state dir left after run");
    // The container's mounts lived in its own mount namespace: none is visible here.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(b.rootfs().to_str().unwrap()), "{mounts}");
    // Killed from outside (pid 1 ignores SIGKILL from inside its namespace): 128 + 9.
    b.args(&["sleep", "1000"]);
    let id = unique("sig");
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    let mut child = b
        .cmd(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .spawn()
        .unwrap();
    let mut running = false;
    for _ in 0..500 {
        let o = b.rt(&["state", &id]);
        if o.status.success()
            && serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["status"]
                == "running"
        {
            running = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(running, "container never reached running");
    assert!(b.rt(&["kill", &id, "9"]).status.success());
    assert_eq!(child.wait().unwrap().code(), Some(137));
}

#[test]
fn exec_sees_container_processes() {
    if !privileged("exec_sees_container_processes") {
        return;
    }
    let b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = unique("exec");
    let _c = b.run_detached(&id);
    let (code, out, err) = b.exec(&id, &["ps", "-o", "pid,comm"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "sleep"]),
        "{out}"
    );
    // Only the container's processes: sleep and ps.
    assert_eq!(out.lines().count(), 3, "{out}");
    let (code, _, _) = b.exec(&id, &["sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    let o = b.rt(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u)",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "bar /tmp 0");
    let o = b.rt(&["exec", "-u", "1000:1000", &id, "id", "-u"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "1000");
    // --process JSON.
    let mut p = b.config()["process"].clone();
    p["args"] = json!(["sh", "-c", "echo from-process-json"]);
    std::fs::write(b.dir.path().join("p.json"), p.to_string()).unwrap();
    let o = b.rt(&[
        "exec",
        "--process",
        b.dir.path().join("p.json").to_str().unwrap(),
        &id,
    ]);
    assert_eq!(
        text(&o.stdout).trim(),
        "from-process-json",
        "{}",
        text(&o.stderr)
    );
    let (code, _, err) = b.exec(&id, &["nonexistent-binary"]);
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn hooks_run_in_order() {
    if !privileged("hooks_run_in_order") {
        return;
    }
    let b = Bundle::new();
    let log = b.rootfs().join("hooks.log");
    let host = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > /dev/null; echo {name} >> {}", log.display())]});
    b.edit(|c| {
        c["process"]["args"] = json!(["sh", "-c", "echo process >> /hooks.log"]);
        c["hooks"] = json!({
            "prestart": [host("prestart")],
            "createRuntime": [host("createRuntime")],
            "createContainer": [host("createContainer")],
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /hooks.log"]}],
            "poststart": [host("poststart")],
            "poststop": [host("poststop"), {"path": "/bin/sh", "args": ["sh", "-c", format!("grep -q '\"status\": *\"stopped\"' && echo state-ok >> {}", log.display())]}],
        });
    });
    let (code, _, err) = b.run(&unique("hooks"));
    assert_eq!(code, 0, "{err}");
    let got = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = got.lines().collect();
    // poststart runs after start returns, concurrently with the process: check relative orders only.
    let pos = |s: &str| {
        lines
            .iter()
            .position(|l| *l == s)
            .unwrap_or_else(|| panic!("{s} missing in {lines:?}"))
    };
    assert!(pos("prestart") < pos("createRuntime"));
    assert!(pos("createRuntime") < pos("createContainer"));
    assert!(pos("createContainer") < pos("startContainer"));
    assert!(pos("startContainer") < pos("process"));
    assert!(pos("startContainer") < pos("poststart"));
    assert!(pos("process") < pos("poststop") && pos("poststart") < pos("poststop"));
    assert!(pos("poststop") < pos("state-ok"));
}

#[test]
fn failing_hook_fails_create_and_cleans_up() {
    if !privileged("failing_hook_fails_create_and_cleans_up") {
        return;
    }
    let b = Bundle::new();
    b.edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]}));
    let id = unique("badhook");
    let o = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("createRuntime hook /bin/false failed"),
        "{err}"
    );
    assert!(!b.root.join(&id).exists());
}

#[test]
fn foreground_run_forwards_signals() {
    if !privileged("foreground_run_forwards_signals") {
        return;
    }
    let b = Bundle::new();
    b.args(&["sh", "-c", "trap 'exit 42' TERM; sleep 1000 & wait"]);
    let id = unique("fwd");
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    let mut child = b
        .cmd(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the shell runs its `wait` (two processes in the container), then SIGTERM the runtime.
    let mut ready = false;
    for _ in 0..500 {
        let o = b.rt(&["ps", "--format", "json", &id]);
        if serde_json::from_slice::<Vec<i64>>(&o.stdout).is_ok_and(|p| p.len() == 2) {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(ready, "container never started its sleep");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(42));
    assert!(!b.root.join(&id).exists());
}
