//! `berth top`, `pause`, `unpause` and `update` against a real berthd (see client_berthd.rs for the harness).

#[macro_use]
mod client_support;

use client_support::*;

#[test]
fn top_pause_unpause() {
    let d = daemon_or_skip!();
    if !d.import_busybox() {
        eprintln!("SKIPPED: no busybox rootfs (busybox-static)");
        return;
    }
    d.ok(&["run", "-d", "--name", "topc", "busybox", "sleep", "1000"]);
    let top = d.ok(&["top", "topc"]);
    let cols: Vec<&str> = top.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        cols,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{top}"
    );
    assert!(top.lines().nth(1).unwrap().ends_with("sleep 1000"), "{top}");
    assert!(d.ok(&["top", "topc", "aux"]).contains("%CPU"));
    assert_eq!(d.ok(&["pause", "topc"]), "topc\n");
    let st = d.ok(&["inspect", "-f", "{{.State.Status}}", "topc"]);
    assert_eq!(st.trim(), "paused");
    let o = d.berth(&["pause", "topc"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is already paused"), "{}", stderr(&o));
    assert_eq!(d.ok(&["container", "unpause", "topc"]), "topc\n");
    let st = d.ok(&["inspect", "-f", "{{.State.Status}}", "topc"]);
    assert_eq!(st.trim(), "running");
    assert_eq!(
        d.ok(&[
            "update",
            "--memory",
            "64m",
            "--pids-limit",
            "20",
            "--restart",
            "always",
            "topc"
        ]),
        "topc\n"
    );
    let hc = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}",
        "topc",
    ]);
    assert_eq!(hc.trim(), "67108864 20 always");
    let o = d.berth(&["update", "--memory", "1m", "topc"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Minimum memory limit"),
        "{}",
        stderr(&o)
    );
    let st = d.ok(&["stats", "--no-stream", "topc"]);
    let head: Vec<&str> = st
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        head,
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ],
        "{st}"
    );
    assert!(st.lines().nth(1).unwrap().contains(" topc "), "{st}");
    let mu = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}}",
        "topc",
    ]);
    assert!(
        mu.starts_with("topc ") && mu.trim().ends_with("/ 64MiB 1"),
        "{mu}"
    );
    let ev = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "container=topc",
        "--format",
        "{{.Action}}",
    ]);
    for want in ["create", "start", "pause", "unpause", "update", "top"] {
        assert!(ev.lines().any(|l| l == want), "no {want} in\n{ev}");
    }
    let line = d.ok(&[
        "system",
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "event=pause",
    ]);
    assert!(
        line.contains(" container pause ") && line.contains("name=topc"),
        "{line}"
    );
    d.ok(&["rm", "-f", "topc"]);
}
