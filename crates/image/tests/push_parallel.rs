//! Parallel push against a real `docker-registry` on 127.0.0.1: a many-layer image goes up with its layers
//! uploaded concurrently, and the round trip keeps every digest (the registry's blobs hash to their names,
//! skopeo reads the manifest, a fresh store pulls the same image id back).

mod common;

use berth_image::*;
use common::Registry;
use sha2::Digest;
use std::process::Command;
use std::sync::Mutex;

#[test]
fn parallel_push_round_trip() {
    if common::skip_without(&["docker-registry", "skopeo"]) {
        return;
    }
    if !common::is_root() {
        eprintln!("SKIPPED: needs root to unpack layers with their owners");
        return;
    }
    let reg = Registry::start();
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    // Seven layers: more than the five upload slots, so some wait for a free one.
    let ar = common::multi_layer_archive("many:1", 7, 300 * 1024, 42);
    let loaded = store.load(&mut &ar[..], &NoProgress).unwrap();
    assert!(!loaded.is_empty());
    let name = format!("{}/par/many:1", reg.addr());
    store.tag("many:1", &name).unwrap();
    let img = store.resolve(&name).unwrap();

    let ev = Mutex::new(Vec::new());
    let pushed = store
        .push(&name, None, &|e: ProgressEvent| ev.lock().unwrap().push(e))
        .unwrap();
    let ev = ev.into_inner().unwrap();
    let pushed_ids = ev.iter().filter(|e| e.status == "Pushed").count();
    assert_eq!(pushed_ids, 7, "{ev:?}");
    assert_eq!(
        ev.iter().filter(|e| e.status == "Waiting").count(),
        2,
        "{ev:?}"
    );

    // The registry's manifest is the one berth reports, and skopeo reads it.
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = out.stdout;
    assert_eq!(
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&raw))),
        pushed.digest
    );
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 7);
    assert_eq!(m["config"]["digest"], img.id.as_str());
    // Every uploaded blob is whole: its content hashes to its digest and has the manifest's size.
    for l in layers {
        let d = l["digest"].as_str().unwrap();
        let data = std::fs::read(reg.blob_data(d)).unwrap();
        assert_eq!(data.len() as u64, l["size"].as_u64().unwrap(), "{d}");
        assert_eq!(
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data))),
            d
        );
    }
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{name}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Digest"], pushed.digest.as_str());
    assert_eq!(info["Layers"].as_array().unwrap().len(), 7);

    // A fresh store pulls the same image back, layer for layer.
    let dr2 = tempfile::tempdir().unwrap();
    let s2 = ImageStore::open(dr2.path()).unwrap();
    let pulled = s2.pull(&name, None, None, &NoProgress).unwrap();
    assert_eq!(pulled.id, img.id);
    let ins = s2.inspect(&name).unwrap();
    assert!(ins
        .repo_digests
        .contains(&format!("{}/par/many@{}", reg.addr(), pushed.digest)));
    for (i, dir) in s2.layer_dirs(&name).unwrap().iter().enumerate() {
        assert!(
            dir.join(format!("layer{i}/data.bin")).is_file(),
            "{}",
            dir.display()
        );
    }

    // Pushing again uploads nothing.
    let ev = Mutex::new(Vec::new());
    let again = store
        .push(&name, None, &|e: ProgressEvent| ev.lock().unwrap().push(e))
        .unwrap();
    assert_eq!(again.digest, pushed.digest);
    let ev = ev.into_inner().unwrap();
    assert_eq!(
        ev.iter()
            .filter(|e| e.status == "Layer already exists")
            .count(),
        7
    );
    assert!(!ev.iter().any(|e| e.status == "Pushed"));
}
