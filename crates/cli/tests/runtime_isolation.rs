//! Isolation of `berth runtime` containers: namespaces, cgroup limits, user namespaces.

mod runtime_common;
use runtime_common::*;
use serde_json::json;

#[test]
fn namespaces_pid_uts_net() {
    if !privileged("namespaces_pid_uts_net") {
        return;
    }
    let b = Bundle::new();
    b.edit(|c| {
        c["hostname"] = json!("berth-test-host");
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "echo pid=$$; hostname; ls /sys/class/net; ls /proc > /tmp/procs; grep -c '^[0-9]' /tmp/procs"
        ]);
    });
    let (code, out, err) = b.run(&unique("ns"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    // Only sh and ls existed while ls listed /proc: no host process is visible.
    assert_eq!(lines, ["pid=1", "berth-test-host", "lo", "2"], "{out}");
}

#[test]
fn memory_limit_oom_kills() {
    if !privileged("memory_limit_oom_kills") {
        return;
    }
    let b = Bundle::new();
    b.edit(|c| {
        // tail of an endless line buffers it all: grows until the OOM killer stops it.
        c["process"]["args"] = json!(["tail", "/dev/zero"]);
        c["linux"]["resources"] =
            json!({"memory": {"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}});
    });
    let (code, _, err) = b.run(&unique("oom"));
    assert_eq!(code, 137, "{err}");
}

#[test]
fn pids_limit_stops_fork_bomb() {
    if !privileged("pids_limit_stops_fork_bomb") {
        return;
    }
    let b = Bundle::new();
    b.edit(|c| {
        c["process"]["args"] = json!(["sleep", "1000"]);
        c["linux"]["resources"] = json!({"pids": {"limit": 10}});
    });
    let id = unique("pids");
    let _c = b.run_detached(&id);
    // A fork bomb in the container: the shell dies with "can't fork" once the cgroup is full.
    let (code, _, err) = b.exec(&id, &["sh", "-c", "while true; do sleep 1000 & done"]);
    assert_ne!(code, 0);
    assert!(err.contains("fork"), "{err}");
    let o = b.rt(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        pids.len() >= 2 && pids.len() <= 10,
        "{} processes with pids.limit 10",
        pids.len()
    );
}

#[test]
fn user_namespace_maps_root_to_unprivileged_uid() {
    if !privileged("user_namespace_maps_root_to_unprivileged_uid") {
        return;
    }
    let b = Bundle::new();
    b.edit(|c| {
        c["process"]["args"] = json!(["sleep", "1000"]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    });
    let id = unique("userns");
    let _c = b.run_detached(&id);
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().nth(1), Some("200000"), "{uid}");
    let (code, out, err) = b.exec(&id, &["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    assert_eq!(code, 0, "{err}");
    let mut l = out.lines();
    assert_eq!(l.next(), Some("0"));
    assert_eq!(
        l.next().map(|s| s.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["0", "200000", "65536"])
    );
}
