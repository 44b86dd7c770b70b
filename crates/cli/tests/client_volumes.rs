//! `berth volume create|ls|inspect|rm|prune` and the run flags `-v`, `--mount`, `--tmpfs`, `--volumes-from`,
//! `rm -v`, against a real berthd. Skips (with a printed reason) when not root or not in a private mount
//! namespace.

#[macro_use]
mod client_support;

use std::fs;

use client_support::*;

#[test]
fn volume_commands_and_run_flags() {
    let d = daemon_or_skip!();
    if !d.import_busybox() {
        eprintln!("SKIPPED: busybox-static not installed");
        return;
    }
    assert_eq!(
        d.ok(&["volume", "create", "--label", "team=a", "v1"])
            .trim(),
        "v1"
    );
    let ls = d.ok(&["volume", "ls"]);
    assert_eq!(ls, "DRIVER    VOLUME NAME\nlocal     v1\n");
    assert_eq!(
        d.ok(&["volume", "ls", "--format", "{{.Name}}:{{.Labels}}"])
            .trim(),
        "v1:team=a"
    );
    let mp = d.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "v1"]);
    assert_eq!(
        mp.trim(),
        d.data.join("volumes/v1/_data").display().to_string()
    );
    let o = d.berth(&["volume", "inspect", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Error response from daemon: get nope: no such volume"),
        "{}",
        stderr(&o)
    );

    // Data survives the container; ro refuses writes; --volumes-from shares; --mount and --tmpfs work.
    d.ok(&[
        "run",
        "--name",
        "w1",
        "-v",
        "v1:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "w1:ro",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--mount",
        "source=v1,target=/data,readonly",
        "busybox",
        "touch",
        "/data/x",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770",
        "busybox",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts; stat -c %a /t",
    ]);
    assert!(
        out.contains("tmpfs /t tmpfs") && out.contains("size=1024k") && out.ends_with("1770\n"),
        "{out}"
    );
    let host = d.root.path().join("h");
    fs::create_dir(&host).unwrap();
    let spec = format!("{}:/h", host.display());
    d.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "echo hi > /h/x",
    ]);
    assert_eq!(fs::read_to_string(host.join("x")).unwrap(), "hi\n");
    let o = d.berth(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,dst=/x,bogus=1",
        "busybox",
        "true",
    ]);
    // docker run exits 125 for its own errors.
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("unexpected key 'bogus'"),
        "{}",
        stderr(&o)
    );

    // In use: refused; after rm it goes.
    let o = d.berth(&["volume", "rm", "v1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("remove v1: volume is in use - ["),
        "{}",
        stderr(&o)
    );
    d.ok(&["rm", "w1"]);

    // rm -v takes anonymous volumes only; prune takes anonymous ones, prune -a the rest.
    d.ok(&[
        "run", "--name", "a1", "-v", "/anon", "-v", "v1:/data", "busybox", "true",
    ]);
    let names = d.ok(&["volume", "ls", "-q"]);
    assert_eq!(names.lines().count(), 2, "{names}");
    d.ok(&["rm", "-v", "a1"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "v1\n");
    d.ok(&["run", "--name", "b1", "-v", "/anon", "busybox", "true"]);
    d.ok(&["rm", "b1"]);
    let out = d.ok(&["volume", "prune", "-f"]);
    assert!(
        out.starts_with("Deleted Volumes:\n") && out.contains("Total reclaimed space:"),
        "{out}"
    );
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "v1\n");
    let df = d.ok(&["system", "df", "-v"]);
    assert!(
        df.contains("Local Volumes space usage:") && df.lines().any(|l| l.starts_with("v1 ")),
        "{df}"
    );
    let out = d.ok(&["volume", "prune", "-a", "-f"]);
    assert!(out.contains("v1"), "{out}");
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
}
