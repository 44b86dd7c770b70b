//! Shared helpers of the `berth runtime` integration tests: busybox bundles, a private state root, containers
//! that are force-deleted on drop. Tests need root and a private mount namespace
//! (`unshare -m --propagation private cargo test`); without root they are skipped with a printed reason.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn berth() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// Returns false (after printing why) when the test cannot run here.
pub fn privileged(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("SKIP {test}: /bin/busybox missing (apt-get install busybox-static)");
        return false;
    }
    true
}

/// A unique container id for this test process.
pub fn unique(name: &str) -> String {
    format!("rt-{name}-{}", std::process::id())
}

/// A bundle with a busybox rootfs and berth's default (runc) config.json, plus a private state root.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Bundle {
    pub fn new() -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-rt-")
            .tempdir_in("/tmp")
            .unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/make-bundle.sh");
        let out = Command::new(&script)
            .arg(dir.path().join("b"))
            .arg(berth())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make-bundle: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let root = dir.path().join("state");
        let b = Bundle { dir, root };
        b.edit(|c| {
            c["process"]["terminal"] = json!(false);
            c["root"]["readonly"] = json!(false);
        });
        b
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("b")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    pub fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path().join("config.json")).unwrap()).unwrap()
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        f(&mut c);
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    }

    pub fn args(&self, args: &[&str]) {
        self.edit(|c| c["process"]["args"] = json!(args));
    }

    /// `berth runtime --root <state> ARGS` with captured output. Output goes through files, not pipes: a
    /// created container's init inherits the runtime's stdio and would keep a pipe open.
    pub fn rt(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let status = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: read_back(out),
            stderr: read_back(err),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth());
        c.arg("runtime")
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .current_dir(self.path());
        c
    }

    /// `run ID` in the foreground: (exit code, stdout, stderr).
    pub fn run(&self, id: &str) -> (i32, String, String) {
        let _g = Container {
            bundle: self,
            id: id.to_string(),
        };
        let o = self.rt(&["run", "--bundle", self.path().to_str().unwrap(), id]);
        (
            o.status.code().unwrap_or(-1),
            text(&o.stdout),
            text(&o.stderr),
        )
    }

    /// `run -d ID`, returning a guard that force-deletes it.
    pub fn run_detached(&self, id: &str) -> Container<'_> {
        let o = self.rt(&["run", "-d", "--bundle", self.path().to_str().unwrap(), id]);
        assert!(o.status.success(), "run -d failed: {}", text(&o.stderr));
        Container {
            bundle: self,
            id: id.to_string(),
        }
    }

    pub fn state(&self, id: &str) -> Value {
        let o = self.rt(&["state", id]);
        assert!(o.status.success(), "state: {}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    pub fn exec(&self, id: &str, args: &[&str]) -> (i32, String, String) {
        let mut a = vec!["exec", id];
        a.extend_from_slice(args);
        let o = self.rt(&a);
        (
            o.status.code().unwrap_or(-1),
            text(&o.stdout),
            text(&o.stderr),
        )
    }
}

/// Force-deletes the container on drop (even when the test panics).
pub struct Container<'a> {
    pub bundle: &'a Bundle,
    pub id: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.bundle.rt(&["delete", "--force", &self.id]);
    }
}

fn read_back(mut f: std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut v = Vec::new();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut v).unwrap();
    v
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The cgroup directories recorded in the container's state.json.
pub fn cgroup_dirs(b: &Bundle, id: &str) -> Vec<PathBuf> {
    let st: Value =
        serde_json::from_slice(&std::fs::read(b.root.join(id).join("state.json")).unwrap())
            .unwrap();
    st["cgroup"]["hierarchies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| PathBuf::from(h["dir"].as_str().unwrap()))
        .collect()
}
