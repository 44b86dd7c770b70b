//! Interop with the real docker engine: berth's `save` output loads in dockerd, and `docker save` output
//! loads in berth. dockerd runs on a private socket and data root, without iptables or a bridge, and must
//! be in a private mount namespace (`unshare -m --propagation private`), as `.ci/run` provides.

mod common;

use berth_image::*;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    fn sock(&self) -> String {
        format!("unix://{}", self.dir.path().join("d.sock").display())
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.sock())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn start() -> Dockerd {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        let log = fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args([
                "--data-root",
                &p("data"),
                "--exec-root",
                &p("exec"),
                "--pidfile",
                &p("pid"),
            ])
            .args(["-H", &format!("unix://{}", p("d.sock"))])
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=overlay2",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut d = Dockerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new("docker")
                .args(["-H", &d.sock(), "version"])
                .output()
                .map(|o| o.status.success());
            if ok.unwrap_or(false) {
                break;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!(
                    "dockerd exited with {st}: {}",
                    fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "dockerd did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Anything dockerd left mounted under its dirs (we are in a private mount namespace).
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(self.dir.path().join("data"))
            .status();
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(self.dir.path().join("exec"))
            .status();
    }
}

/// In a mount namespace of our own whose root is not shared back to the host (so dockerd's overlay
/// mounts cannot leak out).
fn private_mount_ns() -> bool {
    if let (Ok(a), Ok(b)) = (
        fs::read_link("/proc/self/ns/mnt"),
        fs::read_link("/proc/1/ns/mnt"),
    ) {
        if a == b {
            return false;
        }
    }
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mi.lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .is_some_and(|l| !l.split(" - ").next().unwrap_or("").contains("shared:"))
}

#[test]
fn save_loads_in_docker_and_docker_save_loads_in_berth() {
    if common::skip_without(&["dockerd", "docker", "/bin/busybox"]) {
        return;
    }
    if !common::is_root() || !private_mount_ns() {
        eprintln!(
            "SKIPPED: needs root in a private mount namespace (unshare -m --propagation private)"
        );
        return;
    }
    let d = Dockerd::start();
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    common::busybox_rootfs(rootfs.path());
    let tar = common::tar_dir(rootfs.path(), true);
    let bb = store
        .import(
            &mut &tar[..],
            Some("berth-bb:1"),
            &["CMD [\"sh\"]".into()],
            None,
        )
        .unwrap();
    store
        .load(
            &mut &common::multi_layer_archive("berth-multi:2", 3, 4096, 21)[..],
            &NoProgress,
        )
        .unwrap();
    let multi = store.resolve("berth-multi:2").unwrap();

    let saved = d.dir.path().join("berth-save.tar");
    let mut f = fs::File::create(&saved).unwrap();
    store
        .save(&["berth-bb:1", "berth-multi:2"], &mut f)
        .unwrap();
    drop(f);
    let out = d.docker(&["load", "-i", saved.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Loaded image: berth-bb:1") && text.contains("Loaded image: berth-multi:2"),
        "{text}"
    );
    let id = |r: &str| {
        String::from_utf8(
            d.docker(&["image", "inspect", "--format", "{{.Id}}", r])
                .stdout,
        )
        .unwrap()
    };
    assert_eq!(id("berth-bb:1").trim(), bb.id);
    assert_eq!(id("berth-multi:2").trim(), multi.id);

    // And back: docker's own save (docker ≥25 layout) loads in a fresh berth store, files intact.
    d.docker(&["tag", "berth-bb:1", "from-docker:3"]);
    let dsaved = d.dir.path().join("docker-save.tar");
    d.docker(&["save", "-o", dsaved.to_str().unwrap(), "from-docker:3"]);
    let dr2 = tempfile::tempdir().unwrap();
    let s2 = ImageStore::open(dr2.path()).unwrap();
    let loaded = s2
        .load(&mut fs::File::open(&dsaved).unwrap(), &NoProgress)
        .unwrap();
    assert_eq!(loaded, [LoadedImage::Tag("from-docker:3".into())]);
    assert_eq!(s2.resolve("from-docker:3").unwrap().id, bb.id);
    common::assert_same_tree(rootfs.path(), &s2.layer_dirs("from-docker:3").unwrap()[0]);
}

#[test]
fn docker_pulls_what_berth_pushed_and_back() {
    if common::skip_without(&["dockerd", "docker", "docker-registry", "/bin/busybox"]) {
        return;
    }
    if !common::is_root() || !private_mount_ns() {
        eprintln!(
            "SKIPPED: needs root in a private mount namespace (unshare -m --propagation private)"
        );
        return;
    }
    let reg = common::Registry::start();
    let d = Dockerd::start();
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    common::busybox_rootfs(rootfs.path());
    let tar = common::tar_dir(rootfs.path(), false);
    let bb = store
        .import(&mut &tar[..], Some("bb:1"), &[], None)
        .unwrap();
    let name = format!("{}/berth/bb:1", reg.addr());
    store.tag("bb:1", &name).unwrap();
    let pushed = store.push(&name, None, &NoProgress).unwrap();

    // dockerd verifies every digest and diff id on pull.
    let out = d.docker(&["pull", &name]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&pushed.digest));
    let id = String::from_utf8(
        d.docker(&["image", "inspect", "--format", "{{.Id}}", &name])
            .stdout,
    )
    .unwrap();
    assert_eq!(id.trim(), bb.id);

    let back = format!("{}/fromdocker/bb:2", reg.addr());
    d.docker(&["tag", &name, &back]);
    d.docker(&["push", &back]);
    let dr2 = tempfile::tempdir().unwrap();
    let s2 = ImageStore::open(dr2.path()).unwrap();
    let img = s2.pull(&back, None, None, &NoProgress).unwrap();
    assert_eq!(img.id, bb.id);
    common::assert_same_tree(rootfs.path(), &s2.layer_dirs(&back).unwrap()[0]);
}
