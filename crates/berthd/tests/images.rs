//! Image endpoints through the real docker CLI: push to and pull from a local `docker-registry`, save/load,
//! tag, rmi conflicts. Run as root inside `unshare -m --propagation private`.

mod common;

use common::{Daemon, Registry};

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
