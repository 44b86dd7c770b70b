//! `docker cp`, `stats`, `top`, `pause`/`unpause`, `update`, `commit` and `events` filters against berthd, with
//! the real docker CLI. Run as root inside `unshare -m --propagation private`.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::Daemon;

/// Compares two host trees: names, types, permission bits, file bytes and symlink targets.
fn same_tree(a: &Path, b: &Path) {
    let mut names_a: Vec<_> = fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut names_b: Vec<_> = fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b, "{} vs {}", a.display(), b.display());
    for n in names_a {
        let (pa, pb) = (a.join(&n), b.join(&n));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "{}", pa.display());
        if ma.file_type().is_symlink() {
            assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap());
            continue;
        }
        assert_eq!(
            ma.permissions().mode() & 0o7777,
            mb.permissions().mode() & 0o7777,
            "mode of {}",
            pb.display()
        );
        if ma.is_dir() {
            same_tree(&pa, &pb);
        } else {
            assert_eq!(
                fs::read(&pa).unwrap(),
                fs::read(&pb).unwrap(),
                "{}",
                pb.display()
            );
        }
    }
}

fn make_tree(dir: &Path) {
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    fs::write(dir.join("a file with spaces.txt"), b"hello, berth\n").unwrap();
    fs::set_permissions(
        dir.join("a file with spaces.txt"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    fs::write(dir.join("sub/run.sh"), b"#!/bin/sh\necho ran\n").unwrap();
    fs::set_permissions(dir.join("sub/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    fs::write(dir.join("sub/deeper/blob.bin"), &big).unwrap();
    fs::set_permissions(dir.join("sub/deeper"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("a file with spaces.txt", dir.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", dir.join("dangling")).unwrap();
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cp_round_trips_and_stays_inside() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    d.ok(&["run", "-d", "--name", "cpc", "busybox", "sleep", "1000"]);
    let work = d.root.path().join("cp");
    let src = work.join("src");
    make_tree(&src);

    // host -> container -> host, twice, byte for byte.
    d.ok(&["cp", src.to_str().unwrap(), "cpc:/data"]);
    let back1 = work.join("back1");
    d.ok(&["cp", "cpc:/data", back1.to_str().unwrap()]);
    same_tree(&src, &back1);
    d.ok(&["cp", back1.to_str().unwrap(), "cpc:/data2"]);
    let back2 = work.join("back2");
    d.ok(&["cp", "cpc:/data2", back2.to_str().unwrap()]);
    same_tree(&src, &back2);
    let inside = d.ok(&["exec", "cpc", "cat", "/data/link"]);
    assert_eq!(inside, "hello, berth\n");
    // Without -a the files belong to root in the container.
    let owner = d.ok(&["exec", "cpc", "stat", "-c", "%u:%g %a", "/data/sub/run.sh"]);
    assert_eq!(owner.trim(), "0:0 755");

    // A single file into an existing directory, and out to a new name.
    d.ok(&["cp", src.join("sub/run.sh").to_str().unwrap(), "cpc:/tmp/"]);
    let one = work.join("one.sh");
    d.ok(&["cp", "cpc:/tmp/run.sh", one.to_str().unwrap()]);
    assert_eq!(fs::read(&one).unwrap(), b"#!/bin/sh\necho ran\n");
    assert_eq!(fs::metadata(&one).unwrap().mode() & 0o777, 0o755);

    // Tar streams on stdout and stdin.
    let o = d.docker(&["cp", "cpc:/data", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tarfile = work.join("out.tar");
    fs::write(&tarfile, &o.stdout).unwrap();
    let list = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tarfile)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for want in [
        "data/",
        "data/a file with spaces.txt",
        "data/link",
        "data/sub/deeper/blob.bin",
    ] {
        assert!(list.lines().any(|l| l == want), "{want} not in:\n{list}");
    }
    let input = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["-cf", "-", "."])
        .output()
        .unwrap()
        .stdout;
    let o = d.docker_stdin(&["cp", "-", "cpc:/tmp"], &input);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        d.ok(&["exec", "cpc", "cat", "/tmp/a file with spaces.txt"]),
        "hello, berth\n"
    );

    // docker's errors.
    let o = d.docker(&["cp", "cpc:/nope", work.join("x").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o)
            .contains("Error response from daemon: Could not find the file /nope in container cpc"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["cp", src.to_str().unwrap(), "cpc:/no/such/dir/x"]);
    assert!(!o.status.success());

    // Symlinks planted in the container resolve inside it: reading and writing through them never reaches the
    // host.
    d.ok(&["exec", "cpc", "ln", "-s", "/../../../../../../etc", "/up"]);
    let passwd = work.join("passwd");
    d.ok(&["cp", "cpc:/up/passwd", passwd.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(&passwd).unwrap(),
        d.ok(&["exec", "cpc", "cat", "/etc/passwd"])
    );
    let marker = format!("berth-cp-escape-{}", std::process::id());
    let mfile = work.join(&marker);
    fs::write(&mfile, b"x").unwrap();
    d.ok(&["cp", mfile.to_str().unwrap(), "cpc:/up/"]);
    assert!(
        !Path::new("/etc").join(&marker).exists(),
        "wrote through to the host"
    );
    d.ok(&["exec", "cpc", "test", "-f", &format!("/etc/{marker}")]);

    // A stopped container: its rootfs is mounted for the copy only.
    d.ok(&["stop", "-t", "0", "cpc"]);
    let back3 = work.join("back3");
    d.ok(&["cp", "cpc:/data", back3.to_str().unwrap()]);
    same_tree(&src, &back3);
    d.ok(&[
        "cp",
        src.join("link").to_str().unwrap(),
        "cpc:/stopped-link",
    ]);
    let passwd2 = work.join("passwd2");
    d.ok(&["cp", "cpc:/up/passwd", passwd2.to_str().unwrap()]);
    assert_eq!(fs::read(&passwd).unwrap(), fs::read(&passwd2).unwrap());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/tmp/cp-"), "a cp mount was left behind");
    d.ok(&["start", "cpc"]);
    assert_eq!(
        d.ok(&["exec", "cpc", "readlink", "/stopped-link"]).trim(),
        "a file with spaces.txt"
    );
    let ev = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        &until_next_second(),
        "--filter",
        "container=cpc",
        "--format",
        "{{.Action}}",
    ]);
    assert!(ev.lines().any(|l| l == "archive-path"), "{ev}");
    assert!(ev.lines().any(|l| l == "extract-to-dir"), "{ev}");
    d.ok(&["rm", "-f", "cpc"]);
}

/// Parses docker's `1.5MiB` / `12kB` / `3B` into bytes.
fn bytes(s: &str) -> f64 {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (n, u) = s.split_at(split);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("not a size: {s}"));
    n * match u {
        "B" | "" => 1.0,
        "KiB" | "kB" => 1024.0,
        "MiB" | "MB" => 1024.0 * 1024.0,
        "GiB" | "GB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unit {other}"),
    }
}

#[test]
fn stats_top_pause_update_events() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let id = d.ok(&["run", "-d", "--name", "st", "busybox", "sleep", "1000"]);
    let id = id.trim();

    // stats: docker's table, and memory that tracks an allocation (a 40 MiB file in the /dev/shm tmpfs).
    let table = d.ok(&["stats", "--no-stream", "st"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|s| !s.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
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
        "{table}"
    );
    let row = table.lines().nth(1).unwrap();
    assert!(row.starts_with(&id[..12]) && row.contains(" st "), "{row}");
    let mem = |d: &Daemon| -> f64 {
        let m = d.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "st"]);
        bytes(m.split('/').next().unwrap())
    };
    let before = mem(&d);
    d.ok(&[
        "exec",
        "st",
        "sh",
        "-c",
        "head -c 41943040 /dev/zero > /dev/shm/fill",
    ]);
    let after = mem(&d);
    assert!(
        after > before + 30.0 * 1024.0 * 1024.0,
        "memory {before} -> {after}"
    );
    let pids = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.PIDs}} {{.CPUPerc}} {{.NetIO}}",
        "st",
    ]);
    assert!(
        pids.starts_with("1 ") && pids.contains('%') && pids.contains(" / "),
        "{pids}"
    );
    // A stream: the first two samples of `stats` (the API, one JSON object per line).
    let (code, body) = d.http("GET", "/containers/st/stats?stream=0", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert!(
        v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert!(
        v["precpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert!(v["memory_stats"]["limit"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["pids_stats"]["current"], 1, "{v}");

    // top: ps -ef's columns by default, ps args passed through.
    let top = d.ok(&["top", "st"]);
    let cols: Vec<&str> = top.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        cols,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{top}"
    );
    assert!(top.lines().any(|l| l.ends_with("sleep 1000")), "{top}");
    let aux = d.ok(&["top", "st", "aux"]);
    assert!(
        aux.lines().next().unwrap().contains("%MEM") && aux.contains("sleep 1000"),
        "{aux}"
    );
    assert_eq!(
        top.lines().count(),
        2,
        "only the container's process: {top}"
    );

    // pause / unpause: the freezer, `ps` status, processes frozen.
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "st"]);
    let pid = pid.trim();
    let freezer = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            if ctrl == "freezer" {
                Some(format!("/sys/fs/cgroup/freezer{path}/freezer.state"))
            } else if ctrl.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                Some(format!("/sys/fs/cgroup{path}/cgroup.freeze"))
            } else {
                None
            }
        })
        .expect("freezer cgroup");
    d.ok(&["pause", "st"]);
    let st = fs::read_to_string(&freezer).unwrap();
    assert!(st.trim() == "FROZEN" || st.trim() == "1", "{freezer}: {st}");
    let ps = d.ok(&["ps", "--filter", "name=st", "--format", "{{.Status}}"]);
    assert!(
        ps.trim().starts_with("Up ") && ps.trim().ends_with("(Paused)"),
        "{ps}"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "st"])
            .trim(),
        "paused true"
    );
    let o = d.docker(&["pause", "st"]);
    assert!(stderr(&o).contains("is already paused"), "{}", stderr(&o));
    d.ok(&["unpause", "st"]);
    let st = fs::read_to_string(&freezer).unwrap();
    assert!(st.trim() == "THAWED" || st.trim() == "0", "{st}");
    assert_eq!(d.ok(&["exec", "st", "echo", "alive"]), "alive\n");
    let o = d.docker(&["unpause", "st"]);
    assert!(stderr(&o).contains("is not paused"), "{}", stderr(&o));

    // update: HostConfig and the cgroup files change on the running container.
    d.ok(&[
        "update",
        "--memory",
        "200m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--cpu-shares",
        "512",
        "--restart",
        "on-failure:3",
        "st",
    ]);
    let hc = d.ok(&[
        "inspect", "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        "st",
    ]);
    assert_eq!(hc.trim(), "209715200 500000000 50 512 on-failure:3");
    let cg = |ctrl: &str, file: &str| -> String {
        let v2 = format!("/sys/fs/cgroup/berth/{id}/{file}");
        fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/berth/{id}/{file}"))
            .or_else(|_| fs::read_to_string(&v2))
            .unwrap_or_else(|e| panic!("{ctrl}/{file}: {e}"))
            .trim()
            .to_string()
    };
    if Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(cg("memory", "memory.limit_in_bytes"), "209715200");
        assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cg("cpu", "cpu.shares"), "512");
        assert_eq!(cg("pids", "pids.max"), "50");
    } else {
        assert_eq!(cg("", "memory.max"), "209715200");
        assert_eq!(cg("", "pids.max"), "50");
    }
    let limit = d.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "st"]);
    assert!(limit.trim().ends_with("/ 200MiB"), "{limit}");
    let o = d.docker(&["update", "--memory", "1m", "st"]);
    assert!(
        !o.status.success() && stderr(&o).contains("Minimum memory limit"),
        "{}",
        stderr(&o)
    );

    // events: every change above, filtered by container, event and type, within --since/--until.
    let ev = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        &until_next_second(),
        "--filter",
        "container=st",
        "--filter",
        "type=container",
        "--format",
        "{{.Action}}",
    ]);
    for want in ["create", "start", "pause", "unpause", "update", "top"] {
        assert!(ev.lines().any(|l| l == want), "no {want} in\n{ev}");
    }
    assert!(ev.lines().any(|l| l.starts_with("exec_create: ")), "{ev}");
    assert!(ev.lines().any(|l| l == "exec_die"), "{ev}");
    let only = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        &until_next_second(),
        "--filter",
        "event=pause",
        "--format",
        "{{.Actor.Attributes.name}} {{.Action}}",
    ]);
    assert_eq!(only.trim(), "st pause", "{only}");
    let none = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        &until_next_second(),
        "--filter",
        "image=nonexistent",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(none.trim(), "");
    // A window in the past that holds none of them (unix seconds, as the CLI sends them).
    let past = (chrono_now_secs() - 7200).to_string();
    let past_end = (chrono_now_secs() - 3600).to_string();
    let future = d.ok(&["events", "--since", &past, "--until", &past_end]);
    assert_eq!(future.trim(), "");

    // A paused container can still be removed by force (it is thawed for the SIGKILL).
    d.ok(&["pause", "st"]);
    d.ok(&["rm", "-f", "st"]);
    let o = d.docker(&["top", "st"]);
    assert!(!o.status.success());
}

/// An absolute `--until` just past the current second. The docker CLI turns a relative `--until 0s` into whole
/// unix seconds, which would cut off the events of the current second (those of the commands just run).
fn until_next_second() -> String {
    (chrono_now_secs() + 1).to_string()
}

fn chrono_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `docker commit` of a running container: its changes (a new file, a deleted one) become a layer on its image,
/// `--change`, `-m` and `-a` land in the image, the container is paused only meanwhile, and the events are
/// moby's (pause, commit with imageID/imageRef/comment, unpause).
#[test]
fn commit_running_container() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let since = chrono_now_secs().saturating_sub(1).to_string();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "cm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo hi > /greeting; rm /etc/group; echo up; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    d.wait_for_log(&id, "up");
    let img = d
        .ok(&[
            "commit",
            "-c",
            "CMD [\"cat\", \"/greeting\"]",
            "-c",
            "ENV COMMITTED=yes",
            "-m",
            "a message",
            "-a",
            "someone",
            "cm",
            "snap:v1",
        ])
        .trim()
        .to_string();
    assert!(img.starts_with("sha256:"), "{img}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "cm"])
            .trim(),
        "running false"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.Id}}|{{.Comment}}|{{.Author}}|{{json .Config.Cmd}}",
            "snap:v1"
        ])
        .trim(),
        format!("{img}|a message|someone|[\"cat\",\"/greeting\"]")
    );
    assert_eq!(
        d.ok(&["run", "--rm", "--network", "none", "snap:v1"]),
        "hi\n"
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "snap:v1",
        "sh",
        "-c",
        "echo $COMMITTED; test -e /etc/group && echo group || echo no-group; test -e /etc/passwd && echo passwd",
    ]);
    assert_eq!(out, "yes\nno-group\npasswd\n");
    // Without -c the container's own config; pause=false leaves the container alone.
    let img2 = d.ok(&["commit", "--pause=false", "cm"]).trim().to_string();
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{json .Config.Cmd}} {{len .RootFS.Layers}}",
            &img2
        ])
        .trim(),
        d.ok(&["inspect", "-f", "{{json .Config.Cmd}}", "cm"])
            .trim()
            .to_string()
            + " 2"
    );
    let ev = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until_next_second(),
        "--filter",
        "container=cm",
        "--format",
        "{{.Action}} {{json .Actor.Attributes}}",
    ]);
    let tail: Vec<(String, serde_json::Value)> = ev
        .lines()
        .skip_while(|l| !l.starts_with("pause "))
        .map(|l| {
            let (a, j) = l.split_once(' ').unwrap();
            (a.to_string(), serde_json::from_str(j).unwrap())
        })
        .collect();
    let actions: Vec<&str> = tail.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["pause", "commit", "unpause", "commit"], "{ev}");
    assert_eq!(tail[1].1["imageID"], img.as_str(), "{ev}");
    assert_eq!(tail[1].1["imageRef"], "snap:v1", "{ev}");
    assert_eq!(tail[1].1["comment"], "a message", "{ev}");
    assert_eq!(tail[3].1["imageRef"], "", "{ev}");
    let bad = d.docker(&["commit", "nosuch"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("No such container"),
        "{bad:?}"
    );
    d.ok(&["rm", "-f", "cm"]);
    d.ok(&["rmi", "snap:v1", &img2]);
}
