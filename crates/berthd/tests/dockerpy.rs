//! docker-py (`pip install docker`) against berthd, with a local registry for `images.pull`. Run as root inside
//! `unshare -m --propagation private`.

mod common;

use std::process::Command;

use common::{Daemon, Registry};

#[test]
fn docker_py_smoke() {
    require!();
    require!("docker-registry");
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
    let reg = Registry::start();
    let name = format!("127.0.0.1:{}/py/bb:v1", reg.port);
    d.ok(&["tag", "busybox", &name]);
    d.ok(&["push", &name]);
    d.ok(&["rmi", &name]);
    let script = common::workspace().join("crates/berthd/tests/py/dockerpy_smoke.py");
    let out = Command::new("timeout")
        .args(["300", "python3"])
        .arg(&script)
        .arg(&d.sock)
        .arg(&name)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "docker-py smoke failed\nstdout: {}\nstderr: {}\n--- berthd ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("docker-py OK"));
}
