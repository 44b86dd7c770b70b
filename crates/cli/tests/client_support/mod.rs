//! Shared harness for the client integration tests: a real berthd per test on a temp data-root, exec-root
//! and socket (found next to the `berth` binary; skipped with a printed reason when absent or when not root
//! in a private mount namespace), image fixtures, and a [`Daemon`] guard that removes containers through the
//! API, stops berthd and unmounts whatever is left, even when a test fails.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/local/bin/docker";

pub fn berth_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth"))
}

pub fn berthd_bin() -> PathBuf {
    berth_bin().with_file_name("berthd")
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace")
        .to_path_buf()
}

pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    if !berthd_bin().is_file() {
        return Some(format!(
            "{} not built (cargo build -p berthd)",
            berthd_bin().display()
        ));
    }
    let own = fs::read_link("/proc/self/ns/mnt").ok();
    if own.is_some() && own == fs::read_link("/proc/1/ns/mnt").ok() {
        return Some(
            "not in a private mount namespace; run under `unshare -m --propagation private`".into(),
        );
    }
    None
}

#[macro_export]
macro_rules! daemon_or_skip {
    () => {
        match Daemon::start() {
            Ok(d) => d,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        }
    };
}

pub struct Daemon {
    pub root: tempfile::TempDir,
    pub data: PathBuf,
    pub exec: PathBuf,
    pub sock: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    pub fn start() -> Result<Daemon, String> {
        if let Some(why) = skip_reason() {
            return Err(why);
        }
        let root = tempfile::Builder::new()
            .prefix("berth-client-test-")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        let data = root.path().join("data");
        let exec = root.path().join("exec");
        let sock = root.path().join("berth.sock");
        fs::create_dir_all(root.path().join("docker-config")).map_err(|e| e.to_string())?;
        let log = fs::File::create(root.path().join("berthd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(berthd_bin())
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(&data)
            .arg("--exec-root")
            .arg(&exec)
            // No bridge: these tests are about the client, and a per-test daemon must not share or leave behind
            // the default `berth0` bridge and nft table (the network tests in crates/berthd make their own).
            .args([
                "--group",
                "root",
                "--debug",
                "--no-bridge",
                "--berth-binary",
            ])
            .arg(berth_bin())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start berthd: {e}"))?;
        let mut d = Daemon {
            root,
            data,
            exec,
            sock,
            child: Some(child),
        };
        // Readiness, not a timing assertion: wait until the socket answers `berth version`.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if d.sock.exists()
                && d.berth(&["version", "--format", "{{.Server.Version}}"])
                    .status
                    .success()
            {
                return Ok(d);
            }
            if let Some(Ok(Some(st))) = d.child.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "berthd exited ({st}) and cannot run here:\n{}",
                    d.log()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("berthd did not come up:\n{}", d.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.root.path().join("berthd.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn cmd(&self, prog: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = Command::new(prog);
        c.args(args)
            .env("BERTH_HOST", self.host())
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.root.path().join("docker-config"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let Some(input) = stdin else {
            return c.stdin(Stdio::null()).output().expect("spawn");
        };
        let mut child = c.stdin(Stdio::piped()).spawn().expect("spawn");
        let mut w = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        let t = std::thread::spawn(move || {
            use std::io::Write;
            let _ = w.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait");
        let _ = t.join();
        out
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.cmd(&berth_bin(), args, None)
    }

    /// Runs berth, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(
            o.status.success(),
            "berth {args:?} failed: {}\nstdout: {}\nstderr: {}\n--- berthd log ---\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn import_hello_world(&self) {
        let out = self.root.path().join("hello-world");
        let st = Command::new("bash")
            .arg(workspace().join("examples/hello-world/build.sh"))
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("build hello-world");
        assert!(
            st.success(),
            "examples/hello-world/build.sh failed (needs gcc and static libc)"
        );
        let tar = out.join("rootfs.tar");
        let id = self.ok(&[
            "import",
            "-c",
            "CMD [\"/hello\"]",
            tar.to_str().expect("utf8"),
            "hello-world:latest",
        ]);
        assert!(id.trim().starts_with("sha256:"), "import printed {id:?}");
    }

    /// Imports a busybox rootfs as `busybox:latest`; false when busybox-static is missing.
    pub fn import_busybox(&self) -> bool {
        let dir = self.root.path().join("busybox");
        let st = Command::new("bash")
            .arg(workspace().join("tests/fixtures/make-busybox-rootfs.sh"))
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("make busybox rootfs");
        if !st.success() {
            return false;
        }
        let tar = self.root.path().join("busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success());
        self.ok(&[
            "import",
            "--change",
            "CMD [\"sh\"]",
            tar.to_str().expect("utf8"),
            "busybox:latest",
        ]);
        true
    }

    pub fn container_ids(&self) -> Vec<String> {
        fs::read_dir(self.data.join("containers"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Stop every container through the API first so monitors tear down their mounts and cgroups.
        for id in self.container_ids() {
            let _ = self.berth(&["rm", "-f", &id]);
        }
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Whatever is still mounted under our root (overlays of containers that did not go away).
        let root = self.root.path().display().to_string();
        let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = &self.exec;
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
