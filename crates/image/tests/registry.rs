//! Against a real `docker-registry` on 127.0.0.1: push/pull round trip, basic auth, digest verification,
//! skopeo/umoci interop, and a pull killed with SIGKILL half way.

mod common;

use berth_image::*;
use common::Registry;
use std::fs;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Mutex;

fn import_busybox(store: &ImageStore, name: &str) -> (Image, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    common::busybox_rootfs(root.path());
    let tar = common::tar_dir(root.path(), false);
    let img = store
        .import(
            &mut &tar[..],
            Some(name),
            &["CMD [\"sh\"]".to_string()],
            None,
        )
        .unwrap();
    (img, root)
}

fn events() -> (Mutex<Vec<ProgressEvent>>,) {
    (Mutex::new(Vec::new()),)
}

fn needs_registry() -> bool {
    common::skip_without(&["docker-registry", "/bin/busybox", "tar"])
        || (!common::is_root() && {
            eprintln!("SKIPPED: needs root to unpack layers with their owners");
            true
        })
}

#[test]
fn push_delete_pull_roundtrip() {
    if needs_registry() {
        return;
    }
    let reg = Registry::start();
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let (img, rootfs) = import_busybox(&store, "bb:1");
    let name = format!("{}/test/busybox:1", reg.addr());
    store.tag("bb:1", &name).unwrap();

    let (ev,) = events();
    let pushed = store
        .push(&name, None, &|e: ProgressEvent| ev.lock().unwrap().push(e))
        .unwrap();
    assert!(pushed.digest.starts_with("sha256:"));
    assert!(ev.lock().unwrap().iter().any(|e| e.status == "Pushed"));
    let ins = store.inspect(&name).unwrap();
    assert!(
        ins.repo_digests
            .contains(&format!("{}/test/busybox@{}", reg.addr(), pushed.digest)),
        "{:?}",
        ins.repo_digests
    );

    // A second push uploads nothing and yields the same manifest.
    let (ev2,) = events();
    let again = store
        .push(&name, None, &|e: ProgressEvent| ev2.lock().unwrap().push(e))
        .unwrap();
    assert_eq!(again.digest, pushed.digest);
    let ev2 = ev2.into_inner().unwrap();
    assert!(ev2.iter().any(|e| e.status == "Layer already exists"));
    assert!(!ev2.iter().any(|e| e.status == "Pushed"));

    // Delete locally (everything), pull back: same id, same digest, identical files.
    store.remove("bb:1", false).unwrap();
    let ev = store.remove(&name, false).unwrap();
    assert!(ev.contains(&RemoveEvent::Deleted(img.id.clone())), "{ev:?}");
    store.gc().unwrap();
    assert!(store.list().unwrap().is_empty());
    let (ev3,) = events();
    let pulled = store
        .pull(&name, None, None, &|e: ProgressEvent| {
            ev3.lock().unwrap().push(e)
        })
        .unwrap();
    assert_eq!(pulled.id, img.id);
    let ev3 = ev3.into_inner().unwrap();
    assert!(
        ev3.iter()
            .any(|e| e.status == format!("Digest: {}", pushed.digest)),
        "{ev3:?}"
    );
    assert!(ev3.iter().any(|e| e.status == "Pull complete"));
    let dirs = store.layer_dirs(&name).unwrap();
    common::assert_same_tree(rootfs.path(), &dirs[0]);
    let by_digest = format!("{}/test/busybox@{}", reg.addr(), pushed.digest);
    assert_eq!(store.resolve(&by_digest).unwrap().id, img.id);

    // Pulling again is a no-op.
    let (ev4,) = events();
    store
        .pull(&name, None, None, &|e: ProgressEvent| {
            ev4.lock().unwrap().push(e)
        })
        .unwrap();
    let ev4 = ev4.into_inner().unwrap();
    assert!(ev4.iter().any(|e| e.status == "Already exists"));
    assert!(
        ev4.iter()
            .any(|e| e.status.starts_with("Status: Image is up to date")),
        "{ev4:?}"
    );

    // Pull by digest into a fresh store: no tag, one digest reference.
    let dr2 = tempfile::tempdir().unwrap();
    let s2 = ImageStore::open(dr2.path()).unwrap();
    let p2 = s2.pull(&by_digest, None, None, &NoProgress).unwrap();
    assert!(p2.repo_tags.is_empty());
    assert_eq!(p2.repo_digests, std::slice::from_ref(&by_digest));

    // Cross-repository push within the same registry mounts the layer.
    let other = format!("{}/elsewhere/bb:2", reg.addr());
    store.tag(&name, &other).unwrap();
    let (ev5,) = events();
    store
        .push(&other, None, &|e: ProgressEvent| {
            ev5.lock().unwrap().push(e)
        })
        .unwrap();
    let ev5 = ev5.into_inner().unwrap();
    assert!(
        ev5.iter().any(|e| e.status == "Mounted from test/busybox"),
        "{ev5:?}"
    );

    // Missing tag and unreachable registry: clear one-line errors.
    let e = store
        .pull(
            &format!("{}/test/busybox:nope", reg.addr()),
            None,
            None,
            &NoProgress,
        )
        .unwrap_err();
    assert_eq!(e.http_status(), 404, "{e}");
    assert!(e.to_string().contains("manifest for"), "{e}");
    let e = store
        .pull("127.0.0.1:1/x/y:z", None, None, &NoProgress)
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot reach registry 127.0.0.1:1: "),
        "{e}"
    );
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn push_regenerates_missing_blob() {
    if needs_registry() {
        return;
    }
    let reg = Registry::start();
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    common::busybox_rootfs(rootfs.path());
    // A layer berth packed itself (commit) can be rebuilt bit for bit from its unpacked dir.
    let opts = berth_image::commit::CommitOptions {
        reference: Some("bb:1".into()),
        ..Default::default()
    };
    let img = store.commit(rootfs.path(), &opts).unwrap();
    let drop_blob = |img: &Image| {
        let meta = store.store().layer(&img.chain_ids[0]).unwrap();
        fs::remove_file(store.store().blob_path(&meta.blob.unwrap().digest).unwrap()).unwrap();
    };
    drop_blob(&img);
    let name = format!("{}/regen/bb:1", reg.addr());
    store.tag("bb:1", &name).unwrap();
    let pushed = store.push(&name, None, &NoProgress).unwrap();
    assert_eq!(
        store.push(&name, None, &NoProgress).unwrap().digest,
        pushed.digest,
        "second push is a no-op"
    );
    let dr2 = tempfile::tempdir().unwrap();
    let s2 = ImageStore::open(dr2.path()).unwrap();
    let p = s2.pull(&name, None, None, &NoProgress).unwrap();
    assert_eq!(p.id, img.id);
    common::assert_same_tree(rootfs.path(), &s2.layer_dirs(&name).unwrap()[0]);

    // A layer from someone else's tar cannot be reproduced: refused with a clear error, not pushed wrong.
    let (other, _r) = import_busybox(&store, "other:1");
    drop_blob(&other);
    let oname = format!("{}/regen/other:1", reg.addr());
    store.tag("other:1", &oname).unwrap();
    let e = store.push(&oname, None, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
}

#[test]
fn corrupted_blob_is_refused() {
    if needs_registry() {
        return;
    }
    let reg = Registry::start();
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    store
        .load(
            &mut &common::multi_layer_archive("m:1", 3, 1 << 20, 9)[..],
            &NoProgress,
        )
        .unwrap();
    let name = format!("{}/test/corrupt:1", reg.addr());
    store.tag("m:1", &name).unwrap();
    store.push(&name, None, &NoProgress).unwrap();
    // Flip a byte of the first layer blob in the registry's storage: same size, different digest.
    let img = store.resolve(&name).unwrap();
    let blob = store
        .store()
        .layer(&img.chain_ids[0])
        .unwrap()
        .blob
        .unwrap();
    let data = reg.blob_data(&blob.digest);
    let mut b = fs::read(&data).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    fs::write(&data, &b).unwrap();

    let dr2 = tempfile::tempdir().unwrap();
    let s2 = ImageStore::open(dr2.path()).unwrap();
    let e = s2.pull(&name, None, None, &NoProgress).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("digest mismatch") || msg.contains("layer"),
        "{msg}"
    );
    assert!(s2.list().unwrap().is_empty());
    s2.gc().unwrap();
    assert_eq!(
        fs::read_dir(dr2.path().join("overlay2")).unwrap().count(),
        0,
        "no partial layer kept"
    );
}

#[test]
fn basic_auth() {
    if needs_registry() || common::skip_without(&["htpasswd"]) {
        return;
    }
    let reg = Registry::start_with_auth(Some(("berth", "s3cret")));
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    store
        .load(
            &mut &common::multi_layer_archive("a:1", 1, 4096, 7)[..],
            &NoProgress,
        )
        .unwrap();
    let name = format!("{}/private/a:1", reg.addr());
    store.tag("a:1", &name).unwrap();

    let e = store.push(&name, None, &NoProgress).unwrap_err();
    assert_eq!(e.http_status(), 401, "{e}");
    assert!(e.to_string().starts_with("unauthorized"), "{e}");
    let bad = AuthConfig::basic("berth", "wrong");
    let e = store.push(&name, Some(&bad), &NoProgress).unwrap_err();
    assert_eq!(e.http_status(), 401, "{e}");
    assert!(store.login(Some(&reg.addr()), &bad).is_err());

    let good = AuthConfig::basic("berth", "s3cret");
    assert_eq!(
        store.login(Some(&reg.addr()), &good).unwrap(),
        "Login Succeeded"
    );
    let pushed = store.push(&name, Some(&good), &NoProgress).unwrap();
    let dr2 = tempfile::tempdir().unwrap();
    let s2 = ImageStore::open(dr2.path()).unwrap();
    let e = s2.pull(&name, None, None, &NoProgress).unwrap_err();
    assert_eq!(e.http_status(), 401, "{e}");
    let img = s2.pull(&name, None, Some(&good), &NoProgress).unwrap();
    assert_eq!(
        img.repo_digests,
        [format!("{}/private/a@{}", reg.addr(), pushed.digest)]
    );
}

fn skopeo(args: &[&str]) -> std::process::Output {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn skopeo_interop() {
    if needs_registry() || common::skip_without(&["skopeo"]) {
        return;
    }
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let (img, rootfs) = import_busybox(&store, "bb:1");
    let name = format!("{}/interop/bb:1", reg.addr());
    store.tag("bb:1", &name).unwrap();
    let pushed = store.push(&name, None, &NoProgress).unwrap();

    // skopeo reads what berth pushed.
    let out = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{name}")]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], pushed.digest);
    let dir_dst = work.path().join("dircopy");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("dir:{}", dir_dst.display()),
    ]);
    assert!(dir_dst.join("manifest.json").is_file());
    let cfg_file = dir_dst.join(img.id.strip_prefix("sha256:").unwrap());
    assert!(cfg_file.is_file(), "config blob copied whole");

    // berth's save output is readable by skopeo, and a skopeo docker-archive loads in berth.
    let saved = work.path().join("saved.tar");
    let mut f = fs::File::create(&saved).unwrap();
    store.save(&["bb:1"], &mut f).unwrap();
    drop(f);
    let from_save = work.path().join("fromsave");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", saved.display()),
        &format!("dir:{}", from_save.display()),
    ]);
    assert!(from_save.join("manifest.json").is_file());
    let sk_ar = work.path().join("skopeo.tar");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("docker-archive:{}:sk/bb:9", sk_ar.display()),
    ]);
    let dr2 = tempfile::tempdir().unwrap();
    let s2 = ImageStore::open(dr2.path()).unwrap();
    let loaded = s2
        .load(&mut fs::File::open(&sk_ar).unwrap(), &NoProgress)
        .unwrap();
    assert_eq!(loaded, [LoadedImage::Tag("sk/bb:9".into())]);
    common::assert_same_tree(rootfs.path(), &s2.layer_dirs("sk/bb:9").unwrap()[0]);

    // An OCI layout made by skopeo, tarred, loads too; and skopeo pushes it for berth to pull.
    let oci = work.path().join("oci");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:v1", oci.display()),
    ]);
    let oci_tar = Command::new("tar")
        .args(["-C", oci.to_str().unwrap(), "-cf", "-", "."])
        .output()
        .unwrap()
        .stdout;
    let dr3 = tempfile::tempdir().unwrap();
    let s3 = ImageStore::open(dr3.path()).unwrap();
    let loaded = s3.load(&mut &oci_tar[..], &NoProgress).unwrap();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    let skopeo_pushed = format!("{}/fromskopeo/bb:oci", reg.addr());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", oci.display()),
        &format!("docker://{skopeo_pushed}"),
    ]);
    let p = s3.pull(&skopeo_pushed, None, None, &NoProgress).unwrap();
    common::assert_same_tree(rootfs.path(), &s3.layer_dirs(&p.id).unwrap()[0]);

    // zstd layers (OCI): recompressed through skopeo's dir: transport, pushed, pulled by berth, and pushed
    // on by berth with an OCI manifest.
    let plain = work.path().join("plain");
    let zdir = work.path().join("zstd-oci");
    skopeo(&[
        "copy",
        "--dest-decompress",
        &format!("oci:{}:v1", oci.display()),
        &format!("dir:{}", plain.display()),
    ]);
    skopeo(&[
        "copy",
        "--dest-compress",
        "--dest-compress-format=zstd",
        &format!("dir:{}", plain.display()),
        &format!("oci:{}:v1", zdir.display()),
    ]);
    // A registry skopeo has never seen, so its blob cache cannot substitute the gzip blob it knows.
    let reg2 = Registry::start();
    let zst = format!("{}/zstd/bb:1", reg2.addr());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", zdir.display()),
        &format!("docker://{zst}"),
    ]);
    let dr4 = tempfile::tempdir().unwrap();
    let s4 = ImageStore::open(dr4.path()).unwrap();
    let z = s4.pull(&zst, None, None, &NoProgress).unwrap();
    // (skopeo --format=oci rewrites the config, so the id differs; the files may not.)
    let blob = s4.store().layer(&z.chain_ids[0]).unwrap().blob.unwrap();
    assert_eq!(blob.media_type, berth_image::manifest::MEDIA_OCI_LAYER_ZSTD);
    common::assert_same_tree(rootfs.path(), &s4.layer_dirs(&zst).unwrap()[0]);
    let zst2 = format!("{}/zstd2/bb:1", reg2.addr());
    s4.tag(&zst, &zst2).unwrap();
    s4.push(&zst2, None, &NoProgress).unwrap();
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{zst2}"),
    ]);
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["mediaType"], berth_image::manifest::MEDIA_OCI_MANIFEST);
    assert_eq!(
        m["layers"][0]["mediaType"],
        berth_image::manifest::MEDIA_OCI_LAYER_ZSTD
    );
}

#[test]
fn umoci_image_pulls() {
    if needs_registry() || common::skip_without(&["skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let bundle = work.path().join("bundle");
    let l = layout.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("umoci").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["init", "--layout", l]);
    run(&["new", "--image", &format!("{l}:latest")]);
    run(&[
        "unpack",
        "--image",
        &format!("{l}:latest"),
        bundle.to_str().unwrap(),
    ]);
    common::busybox_rootfs(&bundle.join("rootfs"));
    run(&[
        "repack",
        "--image",
        &format!("{l}:latest"),
        bundle.to_str().unwrap(),
    ]);
    // A bundle repacks against the manifest it was unpacked from: unpack again for the second layer.
    let bundle2 = work.path().join("bundle2");
    run(&[
        "unpack",
        "--image",
        &format!("{l}:latest"),
        bundle2.to_str().unwrap(),
    ]);
    fs::write(bundle2.join("rootfs/etc/motd"), "second layer\n").unwrap();
    fs::remove_file(bundle2.join("rootfs/etc/hostname")).unwrap();
    run(&[
        "repack",
        "--image",
        &format!("{l}:latest"),
        bundle2.to_str().unwrap(),
    ]);
    run(&[
        "config",
        "--image",
        &format!("{l}:latest"),
        "--config.cmd",
        "/bin/sh",
    ]);
    let name = format!("{}/umoci/bb:latest", reg.addr());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{l}:latest"),
        &format!("docker://{name}"),
    ]);

    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let img = store.pull(&name, None, None, &NoProgress).unwrap();
    assert_eq!(img.container_config().cmd.unwrap(), ["/bin/sh"]);
    let dirs = store.layer_dirs(&name).unwrap();
    assert_eq!(dirs.len(), 2);
    assert!(dirs[0].join("bin/busybox").is_file());
    assert_eq!(
        fs::read_to_string(dirs[1].join("etc/motd")).unwrap(),
        "second layer\n"
    );
    // umoci records the deletion as a whiteout; overlay2 needs a 0:0 char device.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let wh = fs::symlink_metadata(dirs[1].join("etc/hostname")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
}

const KILL_ENV: &str = "BERTH_IMAGE_KILL_CHILD";

/// Child side of the kill test: pulls and, once a layer is complete and another is streaming, reports
/// "HALF" and stalls so the parent can SIGKILL it mid-layer.
#[test]
fn kill_child_pull() {
    let Ok(spec) = std::env::var(KILL_ENV) else {
        return;
    };
    let (root, name) = spec.split_once('|').unwrap();
    // One layer at a time: layer 0 is committed ("Pull complete") before layer 1's first bytes arrive, so the
    // stall below always comes mid-layer after a complete one. With parallel downloads the later layers could
    // finish downloading before the first commit, and the child would never stall.
    let opts = berth_image::StoreOptions {
        max_concurrent_downloads: 1,
        ..Default::default()
    };
    let store = ImageStore::open_with(root, opts).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let announced = std::sync::atomic::AtomicBool::new(false);
    let cb = |e: ProgressEvent| {
        use std::sync::atomic::Ordering::SeqCst;
        if e.status == "Pull complete" {
            done.store(true, SeqCst);
        }
        if e.status == "Downloading" && done.load(SeqCst) && e.current.unwrap_or(0) > 0 {
            if !announced.swap(true, SeqCst) {
                println!("HALF");
                use std::io::Write;
                std::io::stdout().flush().unwrap();
            }
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    };
    let _ = store.pull(name, None, None, &cb);
    println!("FINISHED");
}

#[test]
fn sigkill_during_pull_leaves_consistent_store() {
    if needs_registry() {
        return;
    }
    let reg = Registry::start();
    let src = tempfile::tempdir().unwrap();
    let s0 = ImageStore::open(src.path()).unwrap();
    s0.load(
        &mut &common::multi_layer_archive("k:1", 5, 2 << 20, 11)[..],
        &NoProgress,
    )
    .unwrap();
    let name = format!("{}/kill/k:1", reg.addr());
    s0.tag("k:1", &name).unwrap();
    s0.push(&name, None, &NoProgress).unwrap();

    let dr = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_child_pull",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_ENV, format!("{}|{name}", dr.path().display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = Reap(child);
    let mut saw_half = false;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.contains("HALF") {
            saw_half = true;
            break;
        }
        assert!(
            !line.contains("FINISHED"),
            "child finished before it could be killed"
        );
    }
    assert!(saw_half, "child never reached the middle of the pull");
    // SAFETY: kill(2) on our own child's PID.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGKILL) };
    let st = child.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));

    // It died mid-layer: its temp dir holds a partial layer.
    let child_tmp = dr.path().join(format!("tmp/berth-image/{}", child.0.id()));
    assert!(
        fs::read_dir(&child_tmp).unwrap().count() > 0,
        "partial state left by the killed pull"
    );

    // The store opens, lists without error (nothing half-recorded), and the next pull completes.
    let store = ImageStore::open(dr.path()).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(
        !child_tmp.exists(),
        "the dead process's temp files are removed on open"
    );
    let (ev,) = events();
    let img = store
        .pull(&name, None, None, &|e: ProgressEvent| {
            ev.lock().unwrap().push(e)
        })
        .unwrap();
    let ev = ev.into_inner().unwrap();
    assert!(
        ev.iter().any(|e| e.status == "Already exists"),
        "layers finished before the kill are reused"
    );
    assert_eq!(img.id, s0.resolve("k:1").unwrap().id);
    let dirs = store.layer_dirs(&name).unwrap();
    for (i, d) in dirs.iter().enumerate() {
        assert_eq!(
            fs::metadata(d.join(format!("layer{i}/data.bin")))
                .unwrap()
                .len(),
            2 << 20
        );
    }
    store.gc().unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}
