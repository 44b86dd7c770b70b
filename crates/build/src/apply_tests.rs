use super::*;
use crate::backend::CopyOp;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

struct Env {
    _d: tempfile::TempDir,
    ctx: SourceRoot,
    rootfs: PathBuf,
    outside: PathBuf,
}

fn env() -> Env {
    let d = tempfile::tempdir().unwrap();
    let ctx = d.path().join("ctx");
    fs::create_dir_all(ctx.join("dir/sub")).unwrap();
    fs::write(ctx.join("dir/a"), "a").unwrap();
    fs::write(ctx.join("dir/sub/b"), "b").unwrap();
    fs::write(ctx.join("file.txt"), "file").unwrap();
    let rootfs = d.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::create_dir_all(rootfs.join("existing")).unwrap();
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
    let outside = d.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    symlink(&outside, rootfs.join("evil")).unwrap();
    Env {
        ctx: SourceRoot::context(&ctx).unwrap(),
        rootfs,
        outside,
        _d: d,
    }
}

fn plan(e: &Env, src: &str, dest: &str, chown: Option<&str>, chmod: Option<u32>) -> CopyPlan {
    let ops = e
        .ctx
        .sources(src)
        .unwrap()
        .into_iter()
        .map(|s| CopyOp {
            source: s,
            dest: dest.trim_end_matches('/').to_string(),
            dest_is_dir: dest.ends_with('/'),
            extract: false,
        })
        .collect();
    CopyPlan {
        ops,
        chown: chown.map(String::from),
        chmod,
    }
}

#[test]
fn files_dirs_and_destinations() {
    let e = env();
    apply_copy(&plan(&e, "file.txt", "/new/name", None, None), &e.rootfs).unwrap();
    assert_eq!(
        fs::read_to_string(e.rootfs.join("new/name")).unwrap(),
        "file"
    );
    apply_copy(&plan(&e, "file.txt", "/into/", None, None), &e.rootfs).unwrap();
    assert_eq!(
        fs::read_to_string(e.rootfs.join("into/file.txt")).unwrap(),
        "file"
    );
    // An existing directory receives the file under its own name.
    apply_copy(&plan(&e, "file.txt", "/existing", None, None), &e.rootfs).unwrap();
    assert!(e.rootfs.join("existing/file.txt").is_file());
    // A directory's contents, not the directory itself.
    apply_copy(&plan(&e, "dir", "/app", None, None), &e.rootfs).unwrap();
    assert_eq!(fs::read_to_string(e.rootfs.join("app/a")).unwrap(), "a");
    assert_eq!(fs::read_to_string(e.rootfs.join("app/sub/b")).unwrap(), "b");
    assert!(!e.rootfs.join("app/dir").exists());
}

#[test]
fn chown_and_chmod() {
    let e = env();
    apply_copy(&plan(&e, "dir", "/o", Some("app"), Some(0o640)), &e.rootfs).unwrap();
    let m = fs::metadata(e.rootfs.join("o/sub/b")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o640));
    apply_copy(
        &plan(&e, "file.txt", "/p", Some("app:staff"), None),
        &e.rootfs,
    )
    .unwrap();
    let m = fs::metadata(e.rootfs.join("p")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 50));
    apply_copy(&plan(&e, "file.txt", "/q", Some("7"), None), &e.rootfs).unwrap();
    let m = fs::metadata(e.rootfs.join("q")).unwrap();
    assert_eq!((m.uid(), m.gid()), (7, 7));
    assert!(matches!(
        apply_copy(&plan(&e, "file.txt", "/r", Some("nobody"), None), &e.rootfs),
        Err(ApplyError::NoUser(_))
    ));
    assert!(matches!(
        apply_copy(
            &plan(&e, "file.txt", "/r", Some("app:nogroup"), None),
            &e.rootfs
        ),
        Err(ApplyError::NoGroup(_))
    ));
}

#[test]
fn symlinks_in_the_image_never_reach_the_host() {
    let e = env();
    apply_copy(&plan(&e, "file.txt", "/evil/x", None, None), &e.rootfs).unwrap();
    assert!(
        !e.outside.join("x").exists(),
        "wrote through an absolute symlink to the host"
    );
    // The absolute link is followed as if the rootfs were `/`.
    assert!(e
        .rootfs
        .join(e.outside.strip_prefix("/").unwrap())
        .join("x")
        .is_file());
}

#[test]
fn add_extracts_archives() {
    let e = env();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o600);
    h.set_cksum();
    b.append_data(&mut h, "inner/x", &b"xx"[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    let archive = e.ctx.root.join("a.tar.gz");
    fs::write(&archive, gz.finish().unwrap()).unwrap();
    assert!(crate::archive::is_archive(&archive).unwrap());
    assert!(!crate::archive::is_archive(&e.ctx.root.join("file.txt")).unwrap());
    let mut p = plan(&e, "a.tar.gz", "/x/", None, None);
    p.ops[0].extract = true;
    apply_copy(&p, &e.rootfs).unwrap();
    assert_eq!(
        fs::read_to_string(e.rootfs.join("x/inner/x")).unwrap(),
        "xx"
    );
}
