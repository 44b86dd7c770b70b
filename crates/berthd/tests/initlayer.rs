//! The shared per-image init layer (`<data-root>/overlay2/<top-chain>-init`): containers of images without
//! /etc, with /etc/resolv.conf a symlink out to /run, or an /etc/hostname directory, still get docker's
//! /etc/hosts, /etc/hostname and /etc/resolv.conf; their upper dirs stay empty (no mount point is created per
//! container); `docker diff` shows none of the init layer; `rmi` removes it. Real docker CLI against berthd.
//! Run as root inside `unshare -m --propagation private`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{workspace, Daemon};

/// Builds a busybox rootfs, lets `tweak` change it, and imports it as `tag` (CMD sh).
fn import_variant(d: &Daemon, tag: &str, tweak: impl FnOnce(&Path)) {
    let dir = d.root.path().join(format!("rootfs-{tag}"));
    let st = Command::new("bash")
        .arg(workspace().join("tests/fixtures/make-busybox-rootfs.sh"))
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .expect("make busybox rootfs");
    assert!(st.success(), "make-busybox-rootfs.sh failed");
    tweak(&dir);
    let tar = d.root.path().join(format!("{tag}.tar"));
    let st = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    d.ok(&[
        "import",
        "--change",
        "CMD [\"sh\"]",
        tar.to_str().unwrap(),
        &format!("{tag}:latest"),
    ]);
}

fn inspect(d: &Daemon, what: &str, fmt: &str) -> String {
    d.ok(&["inspect", "-f", fmt, what]).trim().to_string()
}

/// The init layer dir of a one-layer (imported) image: keyed by its only layer's chain id, its diff id.
fn init_dir_of(d: &Daemon, image: &str) -> PathBuf {
    let layer = inspect(d, image, "{{index .RootFS.Layers 0}}");
    let hex = layer.strip_prefix("sha256:").expect("sha256 layer");
    d.data.join("overlay2").join(format!("{hex}-init"))
}

/// Runs `name` from `image` printing its /etc files, then checks them against the files berthd generated
/// (inspect's HostsPath, HostnamePath, ResolvConfPath) and that the container's upper dir stayed empty.
fn check_etc_files(d: &Daemon, image: &str, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "--name", name, "--hostname", "box1"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        image,
        "sh",
        "-c",
        "cat /etc/hosts; echo ---; cat /etc/hostname; echo ---; cat /etc/resolv.conf; echo ---; \
         test -L /etc/resolv.conf && echo link || echo file",
    ]);
    let out = d.ok(&args);
    let host = |f: &str| fs::read_to_string(inspect(d, name, f)).unwrap();
    let want = format!(
        "{}---\n{}---\n{}---\nfile\n",
        host("{{.HostsPath}}"),
        host("{{.HostnamePath}}"),
        host("{{.ResolvConfPath}}")
    );
    assert_eq!(out, want, "{image}: the container's /etc files");
    assert!(out.contains("box1"), "{out}");
    let id = inspect(d, name, "{{.Id}}");
    let upper = d.data.join("overlay2").join(&id).join("diff");
    let left: Vec<_> = fs::read_dir(&upper)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "{image}: mount points created in the upper dir: {left:?}"
    );
    // docker diff of the untouched container: nothing (the init layer is a lower dir).
    assert_eq!(d.ok(&["diff", name]), "", "{image}: docker diff");
    let lower = inspect(d, name, "{{.GraphDriver.Data.LowerDir}}");
    let init = init_dir_of(d, image).join("diff");
    assert!(
        lower.starts_with(&format!("{}:", init.display())),
        "{image}: LowerDir {lower} starts with the init layer {}",
        init.display()
    );
}

#[test]
fn init_layer_mount_points_diff_and_rmi() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    import_variant(&d, "noetc", |root| {
        fs::remove_dir_all(root.join("etc")).unwrap();
    });
    import_variant(&d, "linked", |root| {
        // /etc/resolv.conf points out of /etc (as with systemd-resolved), /etc/hostname is a directory.
        fs::create_dir_all(root.join("run/resolvconf")).unwrap();
        fs::write(
            root.join("run/resolvconf/resolv.conf"),
            "nameserver 192.0.2.53\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "../run/resolvconf/resolv.conf",
            root.join("etc/resolv.conf"),
        )
        .unwrap();
        fs::remove_file(root.join("etc/hostname")).unwrap();
        fs::create_dir(root.join("etc/hostname")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
    });

    check_etc_files(
        &d,
        "busybox",
        "normal",
        &["--add-host", "db.example:192.0.2.7"],
    );
    check_etc_files(&d, "noetc", "noetc1", &["--network", "none"]);
    check_etc_files(&d, "linked", "linked1", &["--network", "none"]);

    // The image's own files stay what they were: nothing was mounted through the symlink.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "linked",
        "cat",
        "/run/resolvconf/resolv.conf",
    ]);
    assert_eq!(out, "nameserver 192.0.2.53\n");
    // An image directory keeps its attributes under the init layer's copy of it.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "linked",
            "stat",
            "-c",
            "%a",
            "/etc"
        ])
        .trim(),
        "750"
    );

    // Real changes show, as docker reports them.
    d.ok(&[
        "run",
        "--name",
        "changed",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "mkdir /newdir && echo x > /newdir/f && echo y >> /etc/passwd && rm /etc/group",
    ]);
    assert_eq!(
        d.ok(&["diff", "changed"]),
        "C /etc\nD /etc/group\nC /etc/passwd\nA /newdir\nA /newdir/f\n"
    );
    let o = d.docker(&["diff", "nosuchcontainer"]);
    assert!(!o.status.success());

    // One init layer per image, shared by its containers; removed with the image's last layer.
    let init = init_dir_of(&d, "noetc");
    assert!(init.join("diff/etc/hosts").is_file());
    d.ok(&["run", "--rm", "--network", "none", "noetc", "true"]);
    let inits = fs::read_dir(d.data.join("overlay2"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-init")
        })
        .count();
    assert_eq!(inits, 3, "one init layer per image");
    let o = d.docker(&["rmi", "noetc"]);
    assert!(!o.status.success(), "rmi of an image in use must fail");
    assert!(init.is_dir());
    d.ok(&["rm", "noetc1"]);
    d.ok(&["rmi", "noetc"]);
    assert!(
        !init.exists(),
        "init layer {} left after rmi",
        init.display()
    );
    // The other images' init layers stay.
    assert!(init_dir_of(&d, "busybox").is_dir());
}
