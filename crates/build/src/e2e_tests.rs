//! The driver against a backend made of real directories and real processes: images are rootfs directories
//! (copied per layer), RUN steps execute in a `chroot` into a busybox-static rootfs, COPY/ADD go through
//! [`crate::apply::apply_copy`]. It is the recipe the engine follows with overlay mounts and real containers.

use crate::apply::apply_copy;
use crate::backend::{BackendError, BuildBackend, CommitSpec, CopyPlan, ImageInfo, RunSpec};
use crate::cache::step_key;
use crate::driver::{BuildOptions, Builder};
use berth_image::config::ContainerConfig;
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct DirBackend {
    root: PathBuf,
    images: HashMap<String, (PathBuf, ContainerConfig)>,
    cache: HashMap<(String, String), String>,
    containers: HashMap<String, (PathBuf, RunSpec)>,
    tags: HashMap<String, String>,
    n: u64,
}

fn be(e: impl std::fmt::Display) -> BackendError {
    BackendError::new(e.to_string())
}

fn cp_a(from: &Path, to: &Path) -> Result<(), BackendError> {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(be)?;
    if !st.success() {
        return Err(be(format!(
            "cp -a {} {} failed",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}

impl DirBackend {
    fn new(root: &Path) -> Self {
        DirBackend {
            root: root.to_path_buf(),
            images: HashMap::new(),
            cache: HashMap::new(),
            containers: HashMap::new(),
            tags: HashMap::new(),
            n: 0,
        }
    }
    fn fresh_id(&mut self, seed: &str) -> String {
        self.n += 1;
        step_key(seed, &self.n.to_string(), &[])
    }
    fn new_image(&mut self, spec: &CommitSpec, rootfs: PathBuf) -> String {
        let id = self.fresh_id(&spec.cache_key);
        self.images
            .insert(id.clone(), (rootfs, spec.config.clone()));
        self.cache
            .insert((spec.parent.clone(), spec.cache_key.clone()), id.clone());
        id
    }
    fn rootfs_of(&self, id: &str) -> Result<PathBuf, BackendError> {
        if id.is_empty() {
            let empty = self.root.join("scratch");
            fs::create_dir_all(&empty).map_err(be)?;
            return Ok(empty);
        }
        self.images
            .get(id)
            .map(|i| i.0.clone())
            .ok_or_else(|| be(format!("no such image {id}")))
    }
    fn busybox(&mut self) -> Result<ImageInfo, BackendError> {
        if let Some(id) = self.tags.get("busybox").cloned() {
            return Ok(ImageInfo {
                config: self.images[&id].1.clone(),
                id,
            });
        }
        let rootfs = self.root.join("busybox");
        for d in ["bin", "etc", "tmp"] {
            fs::create_dir_all(rootfs.join(d)).map_err(be)?;
        }
        fs::set_permissions(
            rootfs.join("tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .map_err(be)?;
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).map_err(be)?;
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .map_err(be)?;
        fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").map_err(be)?;
        // The binary was just written: a thread of another test forking at that moment holds the write fd until
        // its child execs, and our exec then fails with ETXTBSY. That is transient, so try a few times.
        let mut st = None;
        for _ in 0..10 {
            let s = Command::new("chroot")
                .arg(&rootfs)
                .args(["/bin/busybox", "--install", "-s", "/bin"])
                .status()
                .map_err(be)?;
            if s.success() {
                st = Some(s);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if st.is_none() {
            return Err(be("busybox --install failed"));
        }
        let config = ContainerConfig {
            env: Some(vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()]),
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let id = self.fresh_id("busybox");
        self.images.insert(id.clone(), (rootfs, config.clone()));
        self.tags.insert("busybox".into(), id.clone());
        Ok(ImageInfo { id, config })
    }
}

impl BuildBackend for DirBackend {
    fn resolve_image(
        &mut self,
        reference: &str,
        _platform: Option<&str>,
        _pull: bool,
    ) -> Result<ImageInfo, BackendError> {
        match reference {
            "busybox" | "busybox:latest" => self.busybox(),
            other => match self.tags.get(other) {
                Some(id) => Ok(ImageInfo {
                    id: id.clone(),
                    config: self.images[id].1.clone(),
                }),
                None => Err(be(format!(
                    "pull access denied for {other}, repository does not exist"
                ))),
            },
        }
    }
    fn find_cached(&mut self, parent: &str, key: &str) -> Result<Option<String>, BackendError> {
        Ok(self
            .cache
            .get(&(parent.to_string(), key.to_string()))
            .cloned())
    }
    fn create_container(&mut self, spec: &RunSpec) -> Result<String, BackendError> {
        let id = self
            .fresh_id("container")
            .trim_start_matches("sha256:")
            .to_string();
        let dir = self.root.join("containers").join(&id);
        fs::create_dir_all(dir.parent().unwrap_or(&self.root)).map_err(be)?;
        cp_a(&self.rootfs_of(&spec.image_id)?, &dir)?;
        self.containers.insert(id.clone(), (dir, spec.clone()));
        Ok(id)
    }
    fn run_container(
        &mut self,
        container: &str,
        output: &mut dyn Write,
    ) -> Result<i64, BackendError> {
        let (dir, spec) = self
            .containers
            .get(container)
            .cloned()
            .ok_or_else(|| be("no such container"))?;
        let workdir = spec.workdir.clone().unwrap_or_else(|| "/".into());
        fs::create_dir_all(dir.join(workdir.trim_start_matches('/'))).map_err(be)?;
        let mut cmd = Command::new("chroot");
        if let Some(u) = &spec.user {
            let u = if u.contains(':') {
                u.clone()
            } else {
                format!("{u}:{u}")
            };
            cmd.arg(format!("--userspec={u}"));
        }
        cmd.arg(&dir)
            .args(["/bin/busybox", "env", "-i"])
            .args(&spec.env);
        cmd.args(["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", &workdir])
            .args(&spec.argv);
        let out = cmd.output().map_err(be)?;
        output.write_all(&out.stdout).map_err(be)?;
        output.write_all(&out.stderr).map_err(be)?;
        Ok(i64::from(out.status.code().unwrap_or(255)))
    }
    fn commit_container(
        &mut self,
        container: &str,
        spec: &CommitSpec,
    ) -> Result<String, BackendError> {
        let (dir, _) = self
            .containers
            .get(container)
            .cloned()
            .ok_or_else(|| be("no such container"))?;
        let n = self.n;
        let img = self.root.join(format!("img-{n}"));
        cp_a(&dir, &img)?;
        Ok(self.new_image(spec, img))
    }
    fn remove_container(&mut self, container: &str) -> Result<(), BackendError> {
        if let Some((dir, _)) = self.containers.remove(container) {
            fs::remove_dir_all(dir).map_err(be)?;
        }
        Ok(())
    }
    fn copy(&mut self, plan: &CopyPlan, spec: &CommitSpec) -> Result<String, BackendError> {
        let n = self.n;
        let img = self.root.join(format!("img-{n}-copy"));
        cp_a(&self.rootfs_of(&spec.parent)?, &img)?;
        apply_copy(plan, &img).map_err(be)?;
        Ok(self.new_image(spec, img))
    }
    fn commit_config(&mut self, spec: &CommitSpec) -> Result<String, BackendError> {
        let mut rootfs = self.rootfs_of(&spec.parent)?;
        if let Some(dir) = &spec.create_dir {
            if !rootfs.join(dir.trim_start_matches('/')).is_dir() {
                let n = self.n;
                let img = self.root.join(format!("img-{n}-workdir"));
                cp_a(&rootfs, &img)?;
                fs::create_dir_all(img.join(dir.trim_start_matches('/'))).map_err(be)?;
                rootfs = img;
            }
        }
        Ok(self.new_image(spec, rootfs))
    }
    fn image_rootfs(&mut self, image_id: &str) -> Result<PathBuf, BackendError> {
        self.rootfs_of(image_id)
    }
    fn tag(&mut self, image_id: &str, reference: &str) -> Result<(), BackendError> {
        self.tags
            .insert(reference.to_string(), image_id.to_string());
        Ok(())
    }
}

fn prerequisites() -> Option<&'static str> {
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox missing (Debian busybox-static)");
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref() != Some("0") {
        return Some("chroot needs root");
    }
    None
}

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
FROM busybox AS build
WORKDIR /src
COPY app/ ./
RUN cat main.txt > /out.txt && echo built >> /out.txt

FROM busybox AS unused
RUN exit 99

FROM busybox
ARG GREETING=hello
ENV WHO=world
COPY --from=build --chown=app /out.txt /final/
ADD data.tar.gz /data/
RUN echo "$GREETING $WHO" > /greeting && id -u > /uid0
USER app
RUN id -u > /tmp/uid && pwd > /tmp/pwd
WORKDIR /made/by/workdir
CMD ["cat", "/final/out.txt"]
"#;

fn context(dir: &Path) {
    fs::create_dir_all(dir.join("app")).unwrap();
    fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    fs::write(dir.join("app/main.txt"), "v1\n").unwrap();
    fs::write(dir.join(".dockerignore"), "app/*.tmp\n").unwrap();
    fs::write(dir.join("app/junk.tmp"), "ignored").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "d/x", &b"tar"[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    fs::write(dir.join("data.tar.gz"), gz.finish().unwrap()).unwrap();
}

#[test]
fn multi_stage_build_with_real_processes() {
    if let Some(why) = prerequisites() {
        eprintln!("skipping multi_stage_build_with_real_processes: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(&ctx);
    let mut backend = DirBackend::new(&tmp.path().join("store"));
    let opts = BuildOptions {
        context_dir: ctx.clone(),
        tags: vec!["app:1".into()],
        ..Default::default()
    };
    let mut out = Vec::new();
    let r = Builder::build(&opts, &mut backend, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("exit 99"), "unused stage ran:\n{text}");
    assert!(text.contains("Successfully tagged app:1"), "{text}");
    let rootfs = backend.rootfs_of(&r.image_id).unwrap();
    assert_eq!(
        fs::read_to_string(rootfs.join("final/out.txt")).unwrap(),
        "v1\nbuilt\n"
    );
    assert_eq!(
        fs::metadata(rootfs.join("final/out.txt")).unwrap().uid(),
        1000
    );
    assert_eq!(fs::read_to_string(rootfs.join("data/d/x")).unwrap(), "tar");
    assert_eq!(
        fs::read_to_string(rootfs.join("greeting")).unwrap(),
        "hello world\n"
    );
    assert_eq!(fs::read_to_string(rootfs.join("uid0")).unwrap(), "0\n");
    assert_eq!(
        fs::read_to_string(rootfs.join("tmp/uid")).unwrap(),
        "1000\n"
    );
    assert_eq!(fs::read_to_string(rootfs.join("tmp/pwd")).unwrap(), "/\n");
    assert!(
        rootfs.join("made/by/workdir").is_dir(),
        "WORKDIR creates its directory"
    );
    let cfg = &backend.images[&r.image_id].1;
    assert_eq!(
        cfg.cmd.as_deref(),
        Some(&["cat".to_string(), "/final/out.txt".to_string()][..])
    );
    assert_eq!(cfg.user.as_deref(), Some("app"));

    // Unchanged: everything cached, same image.
    let mut out = Vec::new();
    let r2 = Builder::build(&opts, &mut backend, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(r2.image_id, r.image_id);
    assert!(!text.contains("Running in"), "{text}");

    // An ignored file changing changes nothing; the copied one reruns its COPY and everything after.
    fs::write(ctx.join("app/junk.tmp"), "still ignored").unwrap();
    let mut out = Vec::new();
    assert_eq!(
        Builder::build(&opts, &mut backend, &mut out)
            .unwrap()
            .image_id,
        r.image_id
    );
    fs::write(ctx.join("app/main.txt"), "v2\n").unwrap();
    let mut out = Vec::new();
    let r3 = Builder::build(&opts, &mut backend, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_ne!(r3.image_id, r.image_id);
    assert_eq!(
        text.matches("Using cache").count(),
        3,
        "WORKDIR, ARG, ENV stay cached:\n{text}"
    );
    let rootfs = backend.rootfs_of(&r3.image_id).unwrap();
    assert_eq!(
        fs::read_to_string(rootfs.join("final/out.txt")).unwrap(),
        "v2\nbuilt\n"
    );
}

#[test]
fn failing_run_reports_the_real_exit_code() {
    if let Some(why) = prerequisites() {
        eprintln!("skipping failing_run_reports_the_real_exit_code: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let mut backend = DirBackend::new(&tmp.path().join("store"));
    let opts = BuildOptions {
        context_dir: ctx,
        dockerfile_text: Some("FROM busybox\nRUN echo before; exit 7\nRUN echo after\n".into()),
        ..Default::default()
    };
    let mut out = Vec::new();
    let e = Builder::build(&opts, &mut backend, &mut out).unwrap_err();
    assert_eq!(
        e.to_string(),
        "The command '/bin/sh -c echo before; exit 7' returned a non-zero code: 7"
    );
    assert_eq!(e.exit_code(), 7);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("before\n") && !text.contains("after\n"),
        "{text}"
    );
}
