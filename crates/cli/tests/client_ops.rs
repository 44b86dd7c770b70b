//! `berth top`, `pause`, `unpause`, `update`, `diff` and `commit` against a real berthd (see client_berthd.rs for the
//! harness).

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
        &until_next_second(),
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
        &until_next_second(),
        "--filter",
        "event=pause",
    ]);
    assert!(
        line.contains(" container pause ") && line.contains("name=topc"),
        "{line}"
    );
    d.ok(&["rm", "-f", "topc"]);
}

/// Asserts two host trees hold the same names, bytes, modes and symlink targets.
fn same_tree(a: &std::path::Path, b: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut names: Vec<_> = std::fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut other: Vec<_> = std::fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    other.sort();
    assert_eq!(names, other, "{} vs {}", a.display(), b.display());
    for n in names {
        let (x, y) = (a.join(&n), b.join(&n));
        let (mx, my) = (
            std::fs::symlink_metadata(&x).unwrap(),
            std::fs::symlink_metadata(&y).unwrap(),
        );
        assert_eq!(
            mx.permissions().mode(),
            my.permissions().mode(),
            "mode of {}",
            y.display()
        );
        if mx.file_type().is_symlink() {
            assert!(my.file_type().is_symlink(), "{}", y.display());
            assert_eq!(
                std::fs::read_link(&x).unwrap(),
                std::fs::read_link(&y).unwrap()
            );
        } else if mx.is_dir() {
            same_tree(&x, &y);
        } else {
            assert_eq!(std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
        }
    }
}

#[test]
fn cp_round_trip() {
    use std::os::unix::fs::PermissionsExt;
    let d = daemon_or_skip!();
    if !d.import_busybox() {
        eprintln!("SKIPPED: no busybox rootfs (busybox-static)");
        return;
    }
    d.ok(&["run", "-d", "--name", "cpc", "busybox", "sleep", "1000"]);
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("tree");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a file.txt"), b"hello world\n").unwrap();
    std::fs::set_permissions(
        src.join("a file.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::write(src.join("sub/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        src.join("sub/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("a file.txt", src.join("link")).unwrap();
    let s = src.to_str().unwrap();

    // Host → container: a missing destination takes the directory's place under the new name.
    d.ok(&["cp", s, "cpc:/copied"]);
    let ls = d.ok(&[
        "exec",
        "cpc",
        "ls",
        "-l",
        "/copied/sub/run.sh",
        "/copied/a file.txt",
    ]);
    assert!(ls.contains("-rwxr-xr-x"), "{ls}");
    assert!(ls.contains("-rw-r-----"), "{ls}");
    assert_eq!(
        d.ok(&["exec", "cpc", "readlink", "/copied/link"]),
        "a file.txt\n"
    );
    // An existing directory destination receives the source inside it.
    d.ok(&["cp", s, "cpc:/tmp"]);
    assert_eq!(
        d.ok(&["exec", "cpc", "cat", "/tmp/tree/a file.txt"]),
        "hello world\n"
    );

    // Container → host: to a missing path (renamed), and the contents (`/.`) into an existing dir.
    let back = host.path().join("back");
    d.ok(&["cp", "cpc:/copied", back.to_str().unwrap()]);
    same_tree(&src, &back);
    let into = host.path().join("into");
    std::fs::create_dir(&into).unwrap();
    d.ok(&["cp", "cpc:/tmp/tree/.", into.to_str().unwrap()]);
    same_tree(&src, &into);
    // A file onto an existing file path replaces it under that name.
    let f = host.path().join("f.txt");
    std::fs::write(&f, b"old").unwrap();
    d.ok(&["cp", "cpc:/copied/a file.txt", f.to_str().unwrap()]);
    assert_eq!(std::fs::read(&f).unwrap(), b"hello world\n");

    // `-` streams a tar on stdout...
    let o = d.berth(&["cp", "cpc:/copied/a file.txt", "-"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut body).unwrap();
        entries.push((e.path().unwrap().display().to_string(), body));
    }
    assert_eq!(
        entries,
        vec![("a file.txt".to_string(), b"hello world\n".to_vec())]
    );
    // ...and reads one from stdin into a container directory.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o600);
    h.set_cksum();
    b.append_data(&mut h, "from-stdin", &b"data"[..]).unwrap();
    let tarball = b.into_inner().unwrap();
    let o = d.cmd(&berth_bin(), &["cp", "-", "cpc:/tmp"], Some(&tarball));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.ok(&["exec", "cpc", "cat", "/tmp/from-stdin"]), "data");

    // Errors, docker's words and exit codes.
    let o = d.berth(&["cp", "cpc:/nope", host.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: Could not find the file /nope in container cpc"
    );
    let o = d.berth(&["cp", s, host.path().join("x").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "must specify at least one container source"
    );
    let o = d.berth(&["cp", "-", "cpc:/copied/a file.txt"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("must be a directory"), "{}", stderr(&o));
    d.ok(&["rm", "-f", "cpc"]);
}

/// Unmounts a bind mount made by a test, even when an assertion failed.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `berth cp` host → container streams its tar (made by a thread while the request sends it): a file many
/// upload chunks big and a tree round-trip byte for byte; a source that fails halfway through ends the command
/// with a clear error and exit 1, and the daemon carries on.
#[test]
fn cp_upload_streams() {
    let d = daemon_or_skip!();
    if !d.import_busybox() {
        eprintln!("SKIPPED: no busybox rootfs (busybox-static)");
        return;
    }
    d.ok(&["run", "-d", "--name", "cps", "busybox", "sleep", "1000"]);
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("big");
    std::fs::create_dir_all(src.join("deep/er")).unwrap();
    // 3 MiB + 17 bytes that do not repeat with the chunk size: many 256 KiB pieces and a partial last one.
    let blob: Vec<u8> = (0..3 * 1024 * 1024 + 17u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("blob"), &blob).unwrap();
    std::fs::write(src.join("deep/er/small"), b"small\n").unwrap();
    std::fs::write(src.join("deep/empty"), b"").unwrap();
    std::os::unix::fs::symlink("er/small", src.join("deep/link")).unwrap();
    // A socket is skipped, as docker's archiver does.
    let _sock = std::os::unix::net::UnixListener::bind(src.join("deep/sock")).unwrap();

    // One big file.
    let file = src.join("blob");
    d.ok(&["cp", file.to_str().unwrap(), "cps:/blob1"]);
    assert_eq!(
        d.ok(&["exec", "cps", "stat", "-c", "%s", "/blob1"]).trim(),
        blob.len().to_string()
    );
    let back = host.path().join("blob1");
    d.ok(&["cp", "cps:/blob1", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == blob, "the file changed");

    // A tree.
    d.ok(&["cp", src.to_str().unwrap(), "cps:/tree"]);
    assert_eq!(
        d.ok(&["exec", "cps", "ls", "/tree/deep"]),
        "empty\ner\nlink\n"
    );
    let back = host.path().join("tree-back");
    d.ok(&["cp", "cps:/tree", back.to_str().unwrap()]);
    std::fs::remove_file(src.join("deep/sock")).unwrap();
    same_tree(&src, &back);

    // A missing source: docker's one-line error before anything is sent.
    let o = d.berth(&["cp", host.path().join("nope").to_str().unwrap(), "cps:/x"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "lstat {}: no such file or directory",
            host.path().join("nope").display()
        )
    );

    // A file that cannot be read, after megabytes already went out: /proc/<pid>/mem bound over a file
    // (offset 0 is never mapped, so reading it fails with EIO even for root).
    let bad = host.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("a-first"), &blob).unwrap();
    std::fs::write(bad.join("b-unreadable"), b"").unwrap();
    let target = bad.join("b-unreadable");
    let bound = nix::mount::mount(
        Some("/proc/self/mem"),
        &target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    );
    if let Err(e) = bound {
        eprintln!("SKIPPED: the mid-stream failure part: cannot bind /proc/self/mem: {e}");
    } else {
        let _guard = Unmount(target.clone());
        let o = d.berth(&["cp", bad.to_str().unwrap(), "cps:/bad"]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.trim().starts_with("copying ")
                && err.contains("b-unreadable")
                && err.trim().lines().count() == 1,
            "{err}"
        );
        // The daemon is fine and the container usable.
        assert_eq!(
            d.ok(&["exec", "cps", "cat", "/tree/deep/er/small"]),
            "small\n"
        );
        d.ok(&["cp", file.to_str().unwrap(), "cps:/blob2"]);
    }
    d.ok(&["rm", "-f", "cps"]);
}

/// An absolute `--until` just past the current second: a relative `--until 0s` becomes whole unix seconds (as in
/// docker), which would cut off the events of the current second (those of the commands just run).
fn until_next_second() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now + 1).to_string()
}

#[test]
fn diff_lists_changes_not_mount_points() {
    let d = daemon_or_skip!();
    if !d.import_busybox() {
        eprintln!("SKIPPED: no busybox rootfs (busybox-static)");
        return;
    }
    d.ok(&[
        "run",
        "--name",
        "fresh",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    // The runtime's mount points (/etc/hosts, /proc, ...) live in the image's init layer: nothing to show.
    assert_eq!(d.ok(&["diff", "fresh"]), "");
    d.ok(&[
        "run",
        "--name",
        "changed",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /root/x && rm /etc/group",
    ]);
    assert_eq!(
        d.ok(&["container", "diff", "changed"]),
        "C /etc\nD /etc/group\nC /root\nA /root/x\n"
    );
    let o = d.berth(&["diff", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("No such container"), "{}", stderr(&o));
    let o = d.berth(&["diff"]);
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn commit_makes_images_of_containers() {
    let d = daemon_or_skip!();
    if !d.import_busybox() {
        eprintln!("SKIPPED: no busybox rootfs (busybox-static)");
        return;
    }
    // A container that never ran has no changes: an empty layer on its image.
    d.ok(&[
        "create",
        "--name",
        "never",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let id = d.ok(&["commit", "never", "nv:1"]).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Id}} {{len .RootFS.Layers}}", "nv:1"])
            .trim(),
        format!("{id} 2")
    );
    d.ok(&[
        "run",
        "--name",
        "wrote",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo x > /f",
    ]);
    d.ok(&[
        "container",
        "commit",
        "-c",
        "CMD [\"cat\", \"/f\"]",
        "-m",
        "msg",
        "-a",
        "me",
        "--pause=false",
        "wrote",
        "wr",
    ]);
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", "wr"]), "x\n");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Comment}} {{.Author}}", "wr"])
            .trim(),
        "msg me"
    );
    let o = d.berth(&["commit", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("No such container"), "{}", stderr(&o));
    let o = d.berth(&["commit", "-c", "BOGUS x", "wrote"]);
    assert_eq!(o.status.code(), Some(1));
    let o = d.berth(&["commit", "wrote", "Bad_Name"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid reference format"),
        "{}",
        stderr(&o)
    );
    // Neither failure left an image behind.
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 3);
    d.ok(&["rm", "never", "wrote"]);
    d.ok(&["rmi", "nv:1", "wr"]);
}
