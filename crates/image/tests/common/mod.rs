//! Shared helpers for the integration tests: a real `docker-registry` on 127.0.0.1 (killed by PID on
//! drop), a busybox rootfs, and tree comparison.
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Prints why a test is skipped and returns true when a tool is missing.
pub fn skip_without(tools: &[&str]) -> bool {
    for t in tools {
        let found = if t.starts_with('/') {
            Path::new(t).exists()
        } else {
            have(t)
        };
        if !found {
            eprintln!("SKIPPED: {t} is not installed");
            return true;
        }
    }
    false
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running docker-registry; killed (by its PID) and its storage removed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with_auth(None)
    }

    /// With `Some((user, pass))` the registry requires htpasswd basic auth.
    pub fn start_with_auth(creds: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut auth = String::new();
        if let Some((u, p)) = creds {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .unwrap();
            assert!(out.status.success(), "htpasswd failed");
            let hp = dir.path().join("htpasswd");
            fs::write(&hp, &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                hp.display()
            );
        }
        let cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.path().join("data").display()
        );
        let cp = dir.path().join("config.yml");
        fs::write(&cp, cfg).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", cp.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut reg = Registry { child, port, dir };
        // Wait until it accepts connections (bounded; only failure to start at all fails the test).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(st)) = reg.child.try_wait() {
                let mut l = String::new();
                let _ = fs::File::open(reg.dir.path().join("registry.log"))
                    .and_then(|mut f| f.read_to_string(&mut l));
                panic!("docker-registry exited with {st}: {l}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Path of a blob's data file in the registry's filesystem storage.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let h = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{h}/data",
            &h[..2]
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the busybox rootfs with the repository's fixture script.
pub fn busybox_rootfs(dir: &Path) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/make-busybox-rootfs.sh");
    let st = Command::new("bash").arg(script).arg(dir).status().unwrap();
    assert!(st.success(), "make-busybox-rootfs.sh failed");
}

/// `tar -C dir -c .` (optionally gzipped) as bytes.
pub fn tar_dir(dir: &Path, gzip: bool) -> Vec<u8> {
    let mut args = vec!["-C", dir.to_str().unwrap(), "--numeric-owner"];
    if gzip {
        args.push("-z");
    }
    args.extend(["-cf", "-", "."]);
    let out = Command::new("tar").args(&args).output().unwrap();
    assert!(out.status.success(), "tar failed");
    out.stdout
}

/// Asserts two trees have the same entries, kinds, modes, symlink targets and file contents.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let mut stack = vec![PathBuf::new()];
    let mut n = 0;
    while let Some(rel) = stack.pop() {
        let (pa, pb) = (a.join(&rel), b.join(&rel));
        let mut ea: Vec<_> = fs::read_dir(&pa)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut eb: Vec<_> = fs::read_dir(&pb)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        ea.sort();
        eb.sort();
        assert_eq!(ea, eb, "entries of {}", rel.display());
        for name in ea {
            n += 1;
            let r = rel.join(&name);
            let (ma, mb) = (
                fs::symlink_metadata(a.join(&r)).unwrap(),
                fs::symlink_metadata(b.join(&r)).unwrap(),
            );
            assert_eq!(ma.file_type(), mb.file_type(), "{}", r.display());
            if !ma.file_type().is_symlink() {
                assert_eq!(
                    ma.permissions().mode() & 0o7777,
                    mb.permissions().mode() & 0o7777,
                    "mode of {}",
                    r.display()
                );
            }
            if ma.is_dir() {
                stack.push(r);
            } else if ma.file_type().is_symlink() {
                assert_eq!(
                    fs::read_link(a.join(&r)).unwrap(),
                    fs::read_link(b.join(&r)).unwrap(),
                    "{}",
                    r.display()
                );
            } else if ma.is_file() {
                assert_eq!(ma.size(), mb.size(), "{}", r.display());
                assert_eq!(
                    fs::read(a.join(&r)).unwrap(),
                    fs::read(b.join(&r)).unwrap(),
                    "{}",
                    r.display()
                );
            }
        }
    }
    assert!(n > 10, "trees unexpectedly small");
}

/// A docker-archive (old layout: `<n>/layer.tar`) with `layers` layers of `size` pseudo-random bytes each.
pub fn multi_layer_archive(tag: &str, layers: usize, size: usize, seed: u64) -> Vec<u8> {
    use sha2::Digest;
    let mut diff_ids = Vec::new();
    let mut layer_tars = Vec::new();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in 0..layers {
        let mut data = vec![0u8; size];
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut tb = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        tb.append_data(&mut h, format!("layer{i}/data.bin"), &data[..])
            .unwrap();
        let t = tb.into_inner().unwrap();
        diff_ids.push(format!("sha256:{}", hex::encode(sha2::Sha256::digest(&t))));
        layer_tars.push(t);
    }
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": (0..layers).map(|i| serde_json::json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("layer {i}")})).collect::<Vec<_>>(),
    });
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let cfg_hex = hex::encode(sha2::Sha256::digest(&cfg_bytes));
    let manifest = serde_json::json!([{
        "Config": format!("{cfg_hex}.json"),
        "RepoTags": [tag],
        "Layers": (0..layers).map(|i| format!("{i}/layer.tar")).collect::<Vec<_>>(),
    }]);
    let mut ar = tar::Builder::new(Vec::new());
    let mut add = |p: &str, d: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        ar.append_data(&mut h, p, d).unwrap();
    };
    add(&format!("{cfg_hex}.json"), &cfg_bytes);
    for (i, t) in layer_tars.iter().enumerate() {
        add(&format!("{i}/layer.tar"), t);
    }
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    ar.into_inner().unwrap()
}
