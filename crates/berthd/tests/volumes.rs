//! Volumes and mounts driven by the real docker CLI against berthd: named volumes surviving their container,
//! read-only mounts, in-use refusal, bind mounts (missing `-v` sources created, `--mount` ones refused), tmpfs,
//! the local driver's tmpfs/bind options, anonymous volumes from the image's VOLUME with copy-up,
//! `--volumes-from`, `rm -v`, `volume prune`, `system df -v` and bad input. Run as root inside
//! `unshare -m --propagation private`.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use common::Daemon;

fn fails(d: &Daemon, args: &[&str]) -> String {
    let o = d.docker(args);
    assert!(
        !o.status.success(),
        "docker {args:?} should fail: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn named_volumes_binds_and_tmpfs() {
    require!();
    require!("busybox");
    let d = Daemon::start();
    d.import_busybox();

    assert_eq!(
        d.ok(&["volume", "create", "--label", "k=v", "data1"])
            .trim(),
        "data1"
    );
    let ls = d.ok(&["volume", "ls"]);
    assert!(ls.starts_with("DRIVER    VOLUME NAME"), "{ls}");
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["local", "data1"]),
        "{ls}"
    );
    assert_eq!(
        d.ok(&["volume", "ls", "-q", "--filter", "label=k=v"])
            .trim(),
        "data1"
    );
    assert_eq!(
        d.ok(&["volume", "ls", "-q", "--filter", "label=k=other"])
            .trim(),
        ""
    );
    assert_eq!(
        d.ok(&["volume", "ls", "-q", "--filter", "dangling=true"])
            .trim(),
        "data1"
    );
    let mp = d.ok(&[
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}} {{.Driver}} {{.Labels}}",
        "data1",
    ]);
    assert_eq!(
        mp.trim(),
        format!(
            "{} local map[k:v]",
            d.data.join("volumes/data1/_data").display()
        )
    );

    // Data written to a named volume survives the container and is seen by the next one.
    d.ok(&[
        "run",
        "--name",
        "w1",
        "-v",
        "data1:/data",
        "busybox",
        "sh",
        "-c",
        "echo hello > /data/f",
    ]);
    d.ok(&["rm", "w1"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "data1:/data",
        "busybox",
        "cat",
        "/data/f",
    ]);
    assert_eq!(out.trim(), "hello");

    // A read-only mount refuses writes.
    let e = fails(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "data1:/data:ro",
            "busybox",
            "sh",
            "-c",
            "echo x > /data/g",
        ],
    );
    assert!(e.contains("Read-only file system"), "{e}");

    // A read-only rootfs still gets its volume (the mount point is made before the root turns read-only).
    let out = d.ok(&[
        "run",
        "--rm",
        "--read-only",
        "-v",
        "data1:/newdir",
        "busybox",
        "cat",
        "/newdir/f",
    ]);
    assert_eq!(out.trim(), "hello");

    // In use: refused with docker's message, and not dangling.
    let id = d.ok(&[
        "create",
        "--name",
        "holder",
        "-v",
        "data1:/data",
        "busybox",
        "true",
    ]);
    let id = id.trim();
    let e = fails(&d, &["volume", "rm", "data1"]);
    assert!(
        e.contains(&format!("remove data1: volume is in use - [{id}]")),
        "{e}"
    );
    assert_eq!(
        d.ok(&["volume", "ls", "-q", "--filter", "dangling=true"])
            .trim(),
        ""
    );
    let mounts = d.ok(&["inspect", "--format", "{{json .Mounts}}", "holder"]);
    let mounts: serde_json::Value = serde_json::from_str(&mounts).unwrap();
    assert_eq!(mounts[0]["Type"], "volume", "{mounts}");
    assert_eq!(mounts[0]["Name"], "data1");
    assert_eq!(mounts[0]["Destination"], "/data");
    assert_eq!(mounts[0]["Driver"], "local");
    assert_eq!(mounts[0]["RW"], true);
    let ps = d.ok(&[
        "ps",
        "-a",
        "--filter",
        "name=holder",
        "--format",
        "{{.Mounts}}",
    ]);
    assert_eq!(ps.trim(), "data1");
    let by_vol = d.ok(&["ps", "-aq", "--no-trunc", "--filter", "volume=data1"]);
    assert_eq!(by_vol.trim(), id);
    let by_dest = d.ok(&["ps", "-aq", "--no-trunc", "--filter", "volume=/data"]);
    assert_eq!(by_dest.trim(), id);
    assert_eq!(d.ok(&["ps", "-aq", "--filter", "volume=other"]).trim(), "");

    // Bind mounts of a host dir: ro refuses writes, rw writes reach the host.
    let host = d.root.path().join("hostdir");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("file"), "from host").unwrap();
    let h = host.display().to_string();
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{h}:/h:ro"),
        "busybox",
        "cat",
        "/h/file",
    ]);
    assert_eq!(out, "from host");
    let e = fails(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            &format!("{h}:/h:ro"),
            "busybox",
            "touch",
            "/h/new",
        ],
    );
    assert!(e.contains("Read-only file system"), "{e}");
    d.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={h},dst=/h"),
        "busybox",
        "sh",
        "-c",
        "echo w > /h/new",
    ]);
    assert_eq!(fs::read_to_string(host.join("new")).unwrap(), "w\n");
    // A missing -v source is created as a directory; a missing --mount source is an error.
    let missing = d.root.path().join("missing/sub");
    let m = missing.display().to_string();
    d.ok(&["run", "--rm", "-v", &format!("{m}:/m"), "busybox", "true"]);
    assert!(missing.is_dir());
    let gone = d.root.path().join("gone").display().to_string();
    let e = fails(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={gone},dst=/x"),
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("bind source path does not exist"), "{e}");

    // --tmpfs and --mount type=tmpfs are tmpfs mounts.
    let out = d.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=1m",
        "busybox",
        "grep",
        " /scratch ",
        "/proc/mounts",
    ]);
    assert!(
        out.starts_with("tmpfs /scratch tmpfs") && out.contains("size=1024k"),
        "{out}"
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=2097152",
        "busybox",
        "grep",
        " /t ",
        "/proc/mounts",
    ]);
    assert!(
        out.contains("tmpfs /t tmpfs") && out.contains("size=2048k"),
        "{out}"
    );

    // The local driver's options: a tmpfs volume and a bind volume.
    d.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "tv",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "tv:/tv",
        "busybox",
        "grep",
        " /tv ",
        "/proc/mounts",
    ]);
    assert!(out.starts_with("tmpfs /tv tmpfs"), "{out}");
    d.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &format!("device={h}"),
        "bv",
    ]);
    let out = d.ok(&["run", "--rm", "-v", "bv:/bv", "busybox", "cat", "/bv/file"]);
    assert_eq!(out, "from host");

    // Bad input.
    let e = fails(&d, &["volume", "inspect", "nope"]);
    assert!(
        e.contains("Error response from daemon: get nope: no such volume"),
        "{e}"
    );
    assert_eq!(
        d.docker(&["volume", "inspect", "nope"]).status.code(),
        Some(1)
    );
    fails(&d, &["run", "--rm", "-v", "/a:/b:bogus", "busybox", "true"]);
    let e = fails(&d, &["volume", "create", "-o", "bogus=1", "badopt"]);
    assert!(e.contains("invalid option key"), "{e}");
    let e = fails(&d, &["volume", "create", "x!"]);
    assert!(e.contains("invalid characters"), "{e}");
    // State is intact after all that.
    assert_eq!(
        d.ok(&["volume", "ls", "-q"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["bv", "data1", "tv"]
    );

    d.ok(&["rm", "holder"]);
    d.ok(&["volume", "rm", "data1", "tv", "bv"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "");
    assert!(!d.data.join("volumes/data1").exists());
    // The bind volume's device is the user's: removing the volume leaves it alone.
    assert!(host.join("file").exists());
    // Force-removing a missing volume is not an error.
    d.ok(&["volume", "rm", "-f", "data1"]);
}

/// An image whose /data (a VOLUME) holds a file with a particular owner and mode.
fn import_volume_image(d: &Daemon) {
    let dir = d.root.path().join("volimg");
    let st = Command::new("bash")
        .arg(common::workspace().join("tests/fixtures/make-busybox-rootfs.sh"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    fs::create_dir_all(dir.join("data/sub")).unwrap();
    fs::write(dir.join("data/seed"), "seeded\n").unwrap();
    fs::set_permissions(dir.join("data/seed"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(dir.join("data/seed"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::symlink("seed", dir.join("data/link")).unwrap();
    let tar = d.root.path().join("volimg.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    d.ok(&[
        "import",
        "--change",
        "VOLUME /data",
        "--change",
        "CMD [\"sh\"]",
        tar.to_str().unwrap(),
        "volimg:latest",
    ]);
}

#[test]
fn anonymous_volumes_copy_up_volumes_from_and_prune() {
    require!();
    require!("busybox");
    let d = Daemon::start();
    d.import_busybox();
    import_volume_image(&d);

    // The image's VOLUME becomes an anonymous volume filled with the image's content (owner, mode, symlink).
    let out = d.ok(&[
        "run",
        "--name",
        "a1",
        "volimg",
        "sh",
        "-c",
        "stat -c '%u:%g %a' /data/seed; readlink /data/link; echo more > /data/more",
    ]);
    assert_eq!(out, "1234:5678 640\nseed\n");
    let name = d.ok(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Name}}{{end}}",
        "a1",
    ]);
    let name = name.trim().to_string();
    assert_eq!(name.len(), 64, "{name}");
    let data = d.data.join("volumes").join(&name).join("_data");
    let meta = fs::metadata(data.join("seed")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (1234, 5678, 0o640)
    );
    let cv = d.ok(&["inspect", "--format", "{{json .Config.Volumes}}", "a1"]);
    assert_eq!(cv.trim(), r#"{"/data":{}}"#);
    let labels = d.ok(&["volume", "inspect", "--format", "{{json .Labels}}", &name]);
    assert!(labels.contains("com.docker.volume.anonymous"), "{labels}");

    // --volumes-from sees the same data; :ro makes it read-only.
    let out = d.ok(&[
        "run",
        "--name",
        "a2",
        "--volumes-from",
        "a1",
        "busybox",
        "cat",
        "/data/seed",
        "/data/more",
    ]);
    assert_eq!(out, "seeded\nmore\n");
    let e = fails(
        &d,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "a1:ro",
            "busybox",
            "touch",
            "/data/x",
        ],
    );
    assert!(e.contains("Read-only file system"), "{e}");
    // `:rw` cannot lift a mount that is read-only in the source container.
    d.ok(&[
        "create",
        "--name",
        "ro1",
        "--volumes-from",
        "a1:ro",
        "busybox",
        "true",
    ]);
    let e = fails(
        &d,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "ro1:rw",
            "busybox",
            "touch",
            "/data/x",
        ],
    );
    assert!(e.contains("Read-only file system"), "{e}");
    d.ok(&["rm", "ro1"]);
    // (docker's CLI takes the 404 for a missing image and tries a pull, as it does against dockerd.)
    fails(
        &d,
        &["create", "--volumes-from", "nosuchctr", "busybox", "true"],
    );
    let (status, body) = d.http(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "HostConfig": {"VolumesFrom": ["nosuchctr"]}}"#),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("No such container: nosuchctr"), "{body}");

    // A second start of the same container does not copy again (the volume is not empty).
    fs::remove_file(data.join("seed")).unwrap();
    d.ok(&["start", "-a", "a1"]);
    assert!(!data.join("seed").exists());

    // system df -v lists volumes with their number of links.
    d.ok(&[
        "run",
        "--name",
        "a3",
        "-v",
        "keep:/k",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /k/one",
    ]);
    let df = d.ok(&["system", "df", "-v"]);
    let section = df
        .split("Local Volumes space usage:")
        .nth(1)
        .unwrap_or_else(|| panic!("{df}"));
    assert!(
        section.contains("VOLUME NAME") && section.contains("LINKS"),
        "{df}"
    );
    let line = section
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{df}"));
    assert_eq!(line.split_whitespace().nth(1), Some("2"), "{line}");
    let line = section
        .lines()
        .find(|l| l.starts_with("keep"))
        .unwrap_or_else(|| panic!("{df}"));
    assert_eq!(line.split_whitespace().nth(1), Some("1"), "{line}");

    // rm -v removes the anonymous volume once no container uses it; named volumes stay.
    d.ok(&["rm", "-v", "a2"]);
    assert!(data.exists(), "still used by a1");
    d.ok(&["rm", "-v", "a1", "a3"]);
    assert!(!d.data.join("volumes").join(&name).exists());
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "keep");

    // prune: anonymous unused volumes only; -a takes named ones too; in-use ones never.
    d.ok(&["run", "--name", "p1", "-v", "/anon", "busybox", "true"]);
    d.ok(&["create", "--name", "p2", "-v", "used:/u", "busybox", "true"]);
    let anon = d.ok(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Name}}{{end}}",
        "p1",
    ]);
    let anon = anon.trim().to_string();
    d.ok(&["rm", "p1"]);
    let out = d.ok(&["volume", "prune", "-f"]);
    assert!(out.contains(&anon) && !out.contains("keep"), "{out}");
    let mut left: Vec<String> = d
        .ok(&["volume", "ls", "-q"])
        .split_whitespace()
        .map(String::from)
        .collect();
    left.sort();
    assert_eq!(left, ["keep", "used"]);
    let out = d.ok(&["volume", "prune", "-a", "-f"]);
    assert!(out.contains("keep") && !out.contains("used"), "{out}");
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "used");

    // run --rm takes its anonymous volumes along.
    d.ok(&["run", "--rm", "volimg", "true"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "used");
}

#[test]
fn docker_py_volumes() {
    require!();
    require!("busybox");
    let has_py = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_py {
        eprintln!("SKIPPED: python3 with the docker module not installed (pip install docker)");
        return;
    }
    let d = Daemon::start();
    d.import_busybox();
    let script = common::workspace().join("crates/berthd/tests/py/dockerpy_volumes.py");
    let out = Command::new("timeout")
        .args(["300", "python3"])
        .arg(&script)
        .arg(&d.sock)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "docker-py volumes failed\nstdout: {}\nstderr: {}\n--- berthd ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("docker-py volumes OK"));
}
