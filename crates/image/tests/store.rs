//! Store-level integration tests on a temporary data root: import, names, removal, save/load, gc.

mod common;

use berth_image::*;
use std::collections::HashSet;
use std::fs;

fn import_busybox(store: &ImageStore, name: &str) -> (Image, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    common::busybox_rootfs(root.path());
    let tar = common::tar_dir(root.path(), true);
    let changes = vec![
        "CMD [\"/bin/sh\"]".to_string(),
        "ENV PATH=/bin:/sbin".to_string(),
        "LABEL t=1".to_string(),
    ];
    let img = store
        .import(&mut &tar[..], Some(name), &changes, None)
        .unwrap();
    (img, root)
}

#[test]
fn import_resolve_tag_remove() {
    if common::skip_without(&["/bin/busybox", "tar"]) || !common::is_root() {
        eprintln!("SKIPPED unless root with busybox-static");
        return;
    }
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let (img, rootfs) = import_busybox(&store, "bb:1");
    assert_eq!(img.repo_tags, ["bb:1"]);
    assert_eq!(img.container_config().cmd.unwrap(), ["/bin/sh"]);
    let dirs = store.layer_dirs("bb:1").unwrap();
    assert_eq!(dirs.len(), 1);
    common::assert_same_tree(rootfs.path(), &dirs[0]);

    // Resolution by every form docker accepts.
    let hex = img.id.strip_prefix("sha256:").unwrap();
    for s in [
        "bb:1",
        "docker.io/library/bb:1",
        &img.id,
        &hex[..12],
        &hex[..1],
    ] {
        assert_eq!(store.resolve(s).unwrap().id, img.id, "{s}");
    }
    // Not "bb": a short name made of hex digits also matches an id prefix, as in docker.
    let e = store.resolve("nosuch").unwrap_err();
    assert_eq!(e.to_string(), "No such image: nosuch:latest");
    assert_eq!(e.http_status(), 404);
    assert_eq!(
        store.resolve("BB").unwrap_err().to_string(),
        "invalid reference format: repository name must be lowercase"
    );

    store.tag("bb:1", "other/bb:2").unwrap();
    store.tag(&img.id, "bb").unwrap();
    let s = store.list().unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].repo_tags, ["bb:1", "bb:latest", "other/bb:2"]);
    assert_eq!(s[0].labels.get("t").map(String::as_str), Some("1"));
    assert!(s[0].size > 500_000);
    let ins = store.inspect("bb").unwrap();
    assert_eq!(ins.id, img.id);
    assert_eq!(ins.graph_driver.name, "overlay2");
    assert_eq!(ins.root_fs.layers.len(), 1);
    let js = serde_json::to_value(&ins).unwrap();
    assert!(
        js.get("RootFS").is_some()
            && js.get("RepoTags").is_some()
            && js.get("GraphDriver").is_some()
    );
    let h = store.history("bb:1").unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].id, img.id);
    assert_eq!(h[0].comment, "Imported from -");

    // By id with tags in two repositories: docker refuses without force.
    let e = store.remove(&img.id, false).unwrap_err();
    assert_eq!(e.http_status(), 409, "{e}");
    assert!(e.to_string().contains("must be forced"), "{e}");
    assert_eq!(
        store.remove("bb:1", false).unwrap(),
        [RemoveEvent::Untagged("bb:1".into())]
    );
    assert_eq!(
        store.remove("other/bb:2", false).unwrap(),
        [RemoveEvent::Untagged("other/bb:2".into())]
    );
    let ev = store.remove("bb", false).unwrap();
    assert_eq!(ev[0], RemoveEvent::Untagged("bb:latest".into()));
    assert_eq!(ev[1], RemoveEvent::Deleted(img.id.clone()));
    assert_eq!(ev.len(), 3, "image and its layer deleted: {ev:?}");
    assert!(store.list().unwrap().is_empty());
    assert!(!dirs[0].exists(), "layer dir removed");
    let gc = store.gc().unwrap();
    assert_eq!(gc.layers_removed, 0);
    assert_eq!(fs::read_dir(dr.path().join("overlay2")).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(dr.path().join("image/blobs/sha256"))
            .unwrap()
            .count(),
        0,
        "blobs collected"
    );
}

#[test]
fn save_load_roundtrip_and_multilayer_archive() {
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let ar = common::multi_layer_archive("multi:v1", 3, 64 * 1024, 1);
    let loaded = store.load(&mut &ar[..], &NoProgress).unwrap();
    assert_eq!(loaded, [LoadedImage::Tag("multi:v1".into())]);
    let img = store.resolve("multi:v1").unwrap();
    assert_eq!(img.chain_ids.len(), 3);
    assert_eq!(store.history("multi:v1").unwrap().len(), 3);
    let dirs = store.layer_dirs("multi:v1").unwrap();
    assert_eq!(
        fs::read(dirs[2].join("layer2/data.bin")).unwrap().len(),
        64 * 1024
    );

    let mut saved = Vec::new();
    store.save(&["multi:v1"], &mut saved).unwrap();
    let dr2 = tempfile::tempdir().unwrap();
    let store2 = ImageStore::open(dr2.path()).unwrap();
    let loaded = store2.load(&mut &saved[..], &NoProgress).unwrap();
    assert_eq!(loaded, [LoadedImage::Tag("multi:v1".into())]);
    assert_eq!(
        store2.resolve("multi:v1").unwrap().id,
        img.id,
        "same config, same id"
    );

    // The saved archive is also an OCI layout; index.json alone must load too.
    let mut a = tar::Archive::new(&saved[..]);
    let mut names = HashSet::new();
    let mut oci_only = tar::Builder::new(Vec::new());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().display().to_string();
        names.insert(p.clone());
        if p == "manifest.json" {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        oci_only.append_data(&mut h, &p, &data[..]).unwrap();
    }
    assert!(
        names.contains("oci-layout")
            && names.contains("index.json")
            && names.contains("manifest.json")
    );
    let dr3 = tempfile::tempdir().unwrap();
    let store3 = ImageStore::open(dr3.path()).unwrap();
    let oci = oci_only.into_inner().unwrap();
    let loaded = store3.load(&mut &oci[..], &NoProgress).unwrap();
    assert_eq!(loaded, [LoadedImage::Tag("multi:v1".into())]);

    // Untagged save by id loads as an id.
    let mut by_id = Vec::new();
    store.save(&[&img.id], &mut by_id).unwrap();
    let dr4 = tempfile::tempdir().unwrap();
    let store4 = ImageStore::open(dr4.path()).unwrap();
    assert_eq!(
        store4.load(&mut &by_id[..], &NoProgress).unwrap(),
        [LoadedImage::Id(img.id.clone())]
    );
}

#[test]
fn blob_digest_mismatch_is_refused() {
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let e = store
        .store()
        .put_blob(&mut &b"hello"[..], Some(&wrong))
        .unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert_eq!(
        fs::read_dir(dr.path().join("image/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    let my_tmp = dr
        .path()
        .join(format!("tmp/berth-image/{}", std::process::id()));
    assert_eq!(
        fs::read_dir(my_tmp).unwrap().count(),
        0,
        "temp file removed"
    );
    // A layer whose diff id does not match the config is refused by load and leaves nothing.
    let mut ar = common::multi_layer_archive("bad:1", 2, 1024, 2);
    let pos = ar.windows(8).position(|w| w == b"layer1/d").unwrap();
    let data_at = pos + 1024; // into that layer's data
    ar[data_at + 10] ^= 0xff;
    let e = store.load(&mut &ar[..], &NoProgress).unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(store.list().unwrap().is_empty());
    store.gc().unwrap();
    assert_eq!(fs::read_dir(dr.path().join("overlay2")).unwrap().count(), 0);
}

#[test]
fn concurrent_writers() {
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let ar = common::multi_layer_archive("c:0", 2, 4096, 3);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (store, ar) = (&store, &ar);
            s.spawn(move || {
                store.load(&mut &ar[..], &NoProgress).unwrap();
                store.tag("c:0", &format!("c:{}", i + 1)).unwrap();
                store.gc().unwrap();
            });
        }
    });
    let l = store.list().unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].repo_tags.len(), 5);
    assert_eq!(store.layer_dirs("c:3").unwrap().len(), 2);
    let again = ImageStore::open(dr.path()).unwrap();
    assert_eq!(again.list().unwrap(), l);
}

#[test]
fn prune_dangling() {
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    store
        .load(
            &mut &common::multi_layer_archive("p:1", 1, 1024, 4)[..],
            &NoProgress,
        )
        .unwrap();
    store
        .load(
            &mut &common::multi_layer_archive("p:1", 1, 1024, 5)[..],
            &NoProgress,
        )
        .unwrap();
    assert_eq!(
        store.list().unwrap().len(),
        2,
        "the tag moved; the old image is dangling"
    );
    let r = store.prune(true, &HashSet::new()).unwrap();
    assert_eq!(
        r.deleted
            .iter()
            .filter(|e| matches!(e, RemoveEvent::Deleted(_)))
            .count(),
        2,
        "{r:?}"
    );
    let l = store.list().unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].repo_tags, ["p:1"]);
    let du = store.disk_usage().unwrap();
    assert_eq!(du.images.len(), 1);
    assert!(du.layers_size >= 1024);
}

#[test]
fn commit_layer_on_parent() {
    if common::skip_without(&["/bin/busybox", "tar"]) || !common::is_root() {
        eprintln!("SKIPPED unless root with busybox-static");
        return;
    }
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let (base, _rootfs) = import_busybox(&store, "base:1");
    let upper = tempfile::tempdir().unwrap();
    fs::create_dir(upper.path().join("etc")).unwrap();
    fs::write(upper.path().join("etc/motd"), "hi\n").unwrap();
    let c = std::ffi::CString::new(upper.path().join("etc/hostname").to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) };
    assert_eq!(rc, 0, "whiteout");
    // An old mtime on the whiteout: the unpacked layer must keep it for the layer to pack to the same diff id
    // (save below, without the kept blob). It once got the unpack time, which failed when the second changed.
    let ts = [libc::timespec {
        tv_sec: 1_000_000_000,
        tv_nsec: 0,
    }; 2];
    // SAFETY: valid NUL-terminated path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "whiteout mtime");
    let mut cc = base.container_config();
    cc.cmd = Some(vec!["cat".into(), "/etc/motd".into()]);
    let img = store
        .commit(
            upper.path(),
            &berth_image::commit::CommitOptions {
                parent: Some("base:1".into()),
                config: Some(cc),
                reference: Some("child:1".into()),
                created_by: Some("berth commit".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(img.chain_ids.len(), 2);
    assert_eq!(img.chain_ids[0], base.chain_ids[0], "parent layer shared");
    let dirs = store.layer_dirs("child:1").unwrap();
    assert_eq!(
        fs::read_to_string(dirs[1].join("etc/motd")).unwrap(),
        "hi\n"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(dirs[1].join("etc/hostname"))
        .unwrap()
        .file_type()
        .is_char_device());
    let h = store.history("child:1").unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].created_by, "berth commit");
    assert_eq!(store.inspect("child:1").unwrap().parent, base.id);

    // Save works without the kept blob of a layer berth packed itself (rebuilt from the unpacked dir).
    let top = store.store().layer(&img.chain_ids[1]).unwrap();
    fs::remove_file(store.store().blob_path(&top.blob.unwrap().digest).unwrap()).unwrap();
    let mut saved = Vec::new();
    store.save(&["child:1"], &mut saved).unwrap();
    let dr2 = tempfile::tempdir().unwrap();
    let s2 = ImageStore::open(dr2.path()).unwrap();
    assert_eq!(
        s2.load(&mut &saved[..], &NoProgress).unwrap(),
        [LoadedImage::Tag("child:1".into())]
    );
    assert_eq!(s2.resolve("child:1").unwrap().id, img.id);
    // The parent cannot be deleted by id while a child exists; untagging it keeps it.
    let e = store.remove(&base.id, true).unwrap_err();
    assert!(e.to_string().contains("dependent child images"), "{e}");
    assert_eq!(
        store.remove("base:1", false).unwrap(),
        [RemoveEvent::Untagged("base:1".into())]
    );
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn init_layer_created_once_and_collected_with_its_layer() {
    use std::os::unix::fs::MetadataExt;
    if common::skip_without(&["/bin/busybox", "tar"]) || !common::is_root() {
        eprintln!("SKIPPED unless root with busybox-static");
        return;
    }
    let dr = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dr.path()).unwrap();
    let (img, _rootfs) = import_busybox(&store, "bb:1");
    let mut layers = store.layer_dirs("bb:1").unwrap();
    layers.reverse();
    // Several first containers at once: one init layer wins the rename, all get it.
    let made: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| sc.spawn(|| store.init_layer_dir("bb:1", &layers).unwrap().unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let init = made[0].clone();
    assert!(made.iter().all(|m| *m == init), "{made:?}");
    let hex = img
        .chain_ids
        .last()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    assert_eq!(
        init,
        dr.path().join("overlay2").join(format!("{hex}-init/diff"))
    );
    for p in berth_image::store::init_layer_paths() {
        assert!(fs::symlink_metadata(init.join(p)).is_ok(), "{p}");
    }
    // The image's /etc keeps its mode in the init layer's copy.
    assert_eq!(
        fs::metadata(init.join("etc")).unwrap().mode(),
        fs::metadata(layers[0].join("etc")).unwrap().mode()
    );
    // Shared: a second container of the image reuses the same directory.
    let ino = fs::metadata(&init).unwrap().ino();
    let again = store.init_layer_dir(&img.id, &layers).unwrap().unwrap();
    assert_eq!(fs::metadata(&again).unwrap().ino(), ino);
    assert!(
        fs::read_dir(dr.path().join("tmp/berth-image"))
            .map(|d| d
                .flatten()
                .all(|e| fs::read_dir(e.path()).unwrap().count() == 0))
            .unwrap_or(true),
        "no temp dir left"
    );

    // gc takes an init layer whose layer is gone (a crash between the two removals), not a live one.
    let orphan = dr
        .path()
        .join("overlay2")
        .join(format!("{}-init", "a".repeat(64)));
    fs::create_dir_all(orphan.join("diff/etc")).unwrap();
    store.gc().unwrap();
    assert!(!orphan.exists(), "orphan init layer collected");
    assert!(init.is_dir(), "live init layer kept");

    // Removing the image removes its layer and, with it, the init layer.
    store.remove("bb:1", false).unwrap();
    assert!(
        !init.parent().unwrap().exists(),
        "init layer left after rmi"
    );
    assert_eq!(fs::read_dir(dr.path().join("overlay2")).unwrap().count(), 0);
}
