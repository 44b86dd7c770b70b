//! Image endpoints through the real docker CLI: push to and pull from a local `docker-registry`, save/load,
//! tag, rmi conflicts. Run as root inside `unshare -m --propagation private`.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;

/// Debian's docker-registry on 127.0.0.1:<free port>, storage in a temp dir; killed by pid on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berthd-registry-")
            .tempdir_in("/tmp")
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn push_pull_save_load_rmi() {
    require!();
    require!("docker-registry");
    let d = Daemon::start();
    d.import_busybox();
    let reg = Registry::start();
    let name = format!("127.0.0.1:{}/berth/bb:v1", reg.port);

    d.ok(&["tag", "busybox", &name]);
    let push = d.ok(&["push", &name]);
    assert!(push.contains("v1: digest: sha256:"), "{push}");
    let untag = d.ok(&["rmi", &name]);
    assert!(untag.contains("Untagged: "), "{untag}");
    // The image is still there under busybox; remove it completely so the pull downloads.
    d.ok(&["rmi", "busybox"]);
    assert!(d.ok(&["images", "-q"]).trim().is_empty());
    let pull = d.ok(&["pull", &name]);
    assert!(
        pull.contains("Digest: sha256:") && pull.contains("Status: Downloaded newer image"),
        "{pull}"
    );
    assert_eq!(d.ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled\n");

    let o = d.docker(&["pull", &format!("127.0.0.1:{}/berth/nothere:v1", reg.port)]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "pulling a missing image must fail"
    );

    // save / rmi / load round trip.
    let tar = d.root.path().join("saved.tar");
    d.ok(&["save", "-o", tar.to_str().unwrap(), &name]);
    assert!(std::fs::metadata(&tar).unwrap().len() > 0);
    d.ok(&["rmi", &name]);
    let load = d.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(load.contains(&format!("Loaded image: {name}")), "{load}");

    // An image a container uses cannot be removed without force.
    d.ok(&["create", "--name", "user", &name, "true"]);
    let o = d.docker(&["rmi", &name]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("conflict: unable to"), "{err}");
    assert!(d
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .contains(&name));
}
