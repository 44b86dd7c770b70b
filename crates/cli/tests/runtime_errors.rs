//! `berth runtime` error cases: one-line errors, non-zero exits, nothing left behind; plus spec/features/version.

mod runtime_common;
use runtime_common::*;

fn one_line(err: &str) {
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err:?}");
}

#[test]
fn bad_bundles_and_ids() {
    if !privileged("bad_bundles_and_ids") {
        return;
    }
    let b = Bundle::new();
    let root = b.root.clone();
    let id = unique("err");
    // Missing config.json.
    let empty = tempfile::tempdir().unwrap();
    let log = b.dir.path().join("log.json");
    let o = b.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "-b",
        empty.path().to_str().unwrap(),
        &id,
    ]);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    one_line(&err);
    assert!(err.contains("config.json"), "{err}");
    assert!(!root.join(&id).exists());
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("config.json"));
    // Invalid config.json.
    std::fs::write(empty.path().join("config.json"), "{").unwrap();
    let o = b.rt(&["create", "-b", empty.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    one_line(&text(&o.stderr));
    assert!(text(&o.stderr).contains("invalid"));
    // Missing rootfs.
    std::fs::rename(b.rootfs(), b.dir.path().join("moved")).unwrap();
    let o = b.rt(&["create", "-b", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    one_line(&text(&o.stderr));
    assert!(text(&o.stderr).contains("rootfs"), "{}", text(&o.stderr));
    assert!(!root.join(&id).exists());
    std::fs::rename(b.dir.path().join("moved"), b.rootfs()).unwrap();
    // Unknown id.
    for cmd in [
        &["state", "nope-x"][..],
        &["start", "nope-x"],
        &["kill", "nope-x"],
        &["delete", "nope-x"],
        &["exec", "nope-x", "true"],
    ] {
        let o = b.rt(cmd);
        assert!(!o.status.success());
        one_line(&text(&o.stderr));
        assert!(
            text(&o.stderr).contains("container nope-x does not exist"),
            "{cmd:?}: {}",
            text(&o.stderr)
        );
    }
    // Invalid id.
    let o = b.rt(&["create", "-b", b.path().to_str().unwrap(), "../evil"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("invalid container id"));
    // Duplicate id.
    b.args(&["sleep", "1000"]);
    let o = b.rt(&["create", "-b", b.path().to_str().unwrap(), &id]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    let dirs = cgroup_dirs(&b, &id);
    let o = b.rt(&["create", "-b", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    one_line(&text(&o.stderr));
    assert!(text(&o.stderr).contains(&format!("container with id {id} already exists")));
    // The existing container is untouched; a created one is deletable without --force.
    assert_eq!(b.state(&id)["status"], "created");
    assert!(b.rt(&["delete", &id]).status.success());
    assert!(!root.join(&id).exists());
    assert!(dirs.iter().all(|d| !d.exists()));
}

#[test]
fn failed_create_leaves_nothing() {
    if !privileged("failed_create_leaves_nothing") {
        return;
    }
    let b = Bundle::new();
    // Fails in the child, after the cgroup exists: unknown binary.
    b.args(&["/does/not/exist"]);
    let id = unique("half");
    let o = b.rt(&["create", "-b", b.path().to_str().unwrap(), &id]);
    let _g = Container {
        bundle: &b,
        id: id.clone(),
    };
    assert!(!o.status.success());
    one_line(&text(&o.stderr));
    assert!(!b.root.join(&id).exists());
    let cg = std::path::Path::new("/sys/fs/cgroup/pids/berth").join(&id);
    assert!(!cg.exists(), "{cg:?} left");
    let cg = std::path::Path::new("/sys/fs/cgroup/unified/berth").join(&id);
    assert!(!cg.exists(), "{cg:?} left");
}

#[test]
fn spec_version_features() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(berth())
        .args(["runtime", "spec", "--bundle"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["root"]["path"], "rootfs");
    let o = std::process::Command::new(berth())
        .args(["runtime", "spec", "--bundle"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success(), "overwrote config.json");
    let o = std::process::Command::new(berth())
        .args(["runtime", "--version"])
        .output()
        .unwrap();
    assert_eq!(
        text(&o.stdout),
        format!(
            "berth runtime version {}\nspec: 1.2.0\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let o = std::process::Command::new(berth())
        .args(["runtime", "features"])
        .output()
        .unwrap();
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(f["ociVersionMax"], "1.2.0");
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("user")));
}
