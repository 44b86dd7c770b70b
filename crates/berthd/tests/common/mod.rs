//! Test harness: one berthd per test with its own temp data root, exec root and socket, driven with the real
//! docker CLI. The [`Daemon`] guard kills berthd, the monitors and containers it started (by pid), removes
//! runtime state and cgroups, unmounts and deletes everything, even when the test fails.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/local/bin/docker";

/// Returns a reason to skip, or None when everything the tests need is here.
pub fn missing_prereq() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    if !Path::new(DOCKER).exists() {
        return Some(format!("{DOCKER} not installed"));
    }
    if which("runc").is_none() {
        return Some(
            "runc not installed (the monitor's runtime until berth_runtime is wired in)".into(),
        );
    }
    // The tests mount overlays: they must run in a private mount namespace (unshare -m --propagation private).
    let own = fs::read_link("/proc/self/ns/mnt").ok();
    let init = fs::read_link("/proc/1/ns/mnt").ok();
    if own.is_some() && own == init {
        return Some(
            "not in a private mount namespace; run under `unshare -m --propagation private`".into(),
        );
    }
    None
}

/// Skips the calling test (returns from it) when a prerequisite is missing.
#[macro_export]
macro_rules! require {
    () => {
        if let Some(why) = common::missing_prereq() {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    ($tool:expr) => {
        if common::which($tool).is_none() {
            eprintln!("SKIPPED: {} not installed", $tool);
            return;
        }
    };
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The binary monitors run: `BERTH_MONITOR_BINARY`, else berthd itself (`berthd monitor` is the same code as
/// `berth monitor`, and does not depend on the CLI crate being built).
fn monitor_binary() -> PathBuf {
    std::env::var_os("BERTH_MONITOR_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_berthd").into())
}

/// Per-daemon network names: a test bridge, a /24 for it, a pool for user networks and an nft table, unique
/// per test process and daemon, so parallel tests never share kernel objects.
#[derive(Clone, Debug)]
pub struct TestNet {
    pub bridge: String,
    pub bip: String,
    pub subnet_prefix: String,
    pub pool: String,
    pub table: String,
}

impl TestNet {
    fn pick() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let routes = Command::new("ip")
            .args(["-4", "route", "show", "table", "all"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pid = std::process::id();
        loop {
            let n = N.fetch_add(1, Ordering::SeqCst);
            // 10.213.x.0/24 for the default bridge, 10.214.x.0/24 (four /26s) for user networks.
            let x = (pid.wrapping_mul(7).wrapping_add(n)) % 256;
            let (a, b) = (format!("10.213.{x}."), format!("10.214.{x}."));
            if routes.contains(&a) || routes.contains(&b) {
                assert!(n < 10_000, "no free 10.213.x.0/24 test subnet");
                continue;
            }
            return Self {
                bridge: format!("bt{}x{n}", pid % 1_000_000),
                bip: format!("{a}1/24"),
                subnet_prefix: a,
                pool: format!("base={b}0/24,size=26"),
                table: format!("berth_t{pid}_{n}"),
            };
        }
    }

    /// Removes every kernel object berth made for this daemon (bridges, veths, the nft table).
    pub fn cleanup(&self, data: &Path) {
        let cfg = berth_network::Config {
            bridge_name: self.bridge.clone(),
            nft_table: self.table.clone(),
            ..Default::default()
        };
        if let Ok(m) = berth_network::NetworkManager::open(data, cfg) {
            let _ = m.cleanup_all();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .stderr(Stdio::null())
            .status();
    }
}

pub struct Daemon {
    pub net: TestNet,
    pub root: tempfile::TempDir,
    pub data: PathBuf,
    pub exec: PathBuf,
    pub sock: PathBuf,
    pub docker_config: PathBuf,
    /// More berthd arguments and environment for the next [`Daemon::spawn`] (e.g. `--insecure-registry`).
    pub extra_args: Vec<String>,
    pub extra_env: Vec<(String, String)>,
    /// A command that execs berthd with its arguments appended (e.g. `systemd-socket-activate -l SOCK`); the
    /// pid it starts as must become berthd's.
    pub launcher: Vec<String>,
    child: Option<Child>,
}

impl Daemon {
    pub fn start() -> Self {
        let mut d = Self::prepare();
        d.spawn();
        d
    }

    /// A daemon's directories and names, not started yet: set `launcher`/`extra_args`, then [`Daemon::spawn`].
    pub fn prepare() -> Self {
        let root = tempfile::Builder::new()
            .prefix("berthd-test-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let data = root.path().join("data");
        let exec = root.path().join("exec");
        let sock = root.path().join("berth.sock");
        let docker_config = root.path().join("docker-config");
        fs::create_dir_all(&docker_config).unwrap();
        Daemon {
            net: TestNet::pick(),
            root,
            data,
            exec,
            sock,
            docker_config,
            extra_args: Vec::new(),
            extra_env: Vec::new(),
            launcher: Vec::new(),
            child: None,
        }
    }

    /// (Re)starts berthd on the same directories.
    pub fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("berthd.log"))
            .unwrap();
        let berthd = env!("CARGO_BIN_EXE_berthd");
        let mut cmd = match self.launcher.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(berthd);
                c
            }
            None => Command::new(berthd),
        };
        let child = cmd
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .arg("--data-root")
            .arg(&self.data)
            .arg("--exec-root")
            .arg(&self.exec)
            .arg("--group")
            .arg("root")
            .arg("--berth-binary")
            .arg(monitor_binary())
            .arg("--debug")
            .args(["--bridge-name", &self.net.bridge])
            .args(["--bip", &self.net.bip])
            .args(["--default-address-pool", &self.net.pool])
            .args(["--nft-table", &self.net.table])
            // BERTH_TEST_RUNTIME=runc runs the suite through a runc-compatible CLI instead of berth-runtime.
            .args(
                std::env::var("BERTH_TEST_RUNTIME")
                    .ok()
                    .map(|r| vec!["--runtime".to_string(), r])
                    .unwrap_or_default(),
            )
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        self.child = Some(child);
        // Readiness, not a timing assertion: the socket answers a ping.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = self.try_http("GET", "/_ping", None) {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("berthd exited: {st}\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not come up\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.root.path().join("berthd.log")).unwrap_or_default()
    }

    /// SIGKILLs berthd (containers and monitors keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs berthd and waits for it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("berthd running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        c.wait().unwrap()
    }

    /// The docker CLI on this daemon (under `timeout`, so a hang fails the test instead of blocking the suite),
    /// stdin from /dev/null: for a caller that spawns it and waits later.
    pub fn docker_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.args(["300", DOCKER])
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", &self.docker_config)
            .stdin(Stdio::null());
        c
    }

    /// Runs the docker CLI to the end.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_command(args).output().expect("run docker")
    }

    /// Runs docker with `input` on its stdin.
    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .docker_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// Runs docker, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed: {}\nstdout: {}\nstderr: {}\n--- berthd log ---\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A raw HTTP/1.1 request on the socket: (status, body).
    pub fn try_http(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        let mut s = UnixStream::connect(&self.sock)?;
        // A safety net against a hanging daemon, not a timing assertion.
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        self.try_http(method, path, body).expect("http request")
    }

    /// Imports examples/hello-world as `hello-world:latest` (through `POST /images/create?fromSrc=-`).
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
        self.ok(&[
            "import",
            "--change",
            "CMD [\"/hello\"]",
            out.join("rootfs.tar").to_str().unwrap(),
            "hello-world:latest",
        ]);
    }

    /// Imports a busybox rootfs as `busybox:latest`.
    pub fn import_busybox(&self) {
        let dir = self.root.path().join("busybox");
        let st = Command::new("bash")
            .arg(workspace().join("tests/fixtures/make-busybox-rootfs.sh"))
            .arg(&dir)
            .status()
            .expect("make busybox rootfs");
        assert!(st.success());
        let tar = self.root.path().join("busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        self.ok(&[
            "import",
            "--change",
            "CMD [\"sh\"]",
            tar.to_str().unwrap(),
            "busybox:latest",
        ]);
    }

    /// `docker run -d --name name` of a busybox loop that prints `up` first; returns its id once `up` is logged.
    pub fn run_looping(&self, name: &str) -> String {
        let id = self
            .ok(&[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "echo up; while true; do sleep 0.1; done",
            ])
            .trim()
            .to_string();
        self.wait_for_log(&id, "up");
        id
    }

    /// Waits until `docker logs id` contains `needle` (bounded; a readiness wait, not a timing assertion).
    pub fn wait_for_log(&self, id: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let o = self.docker(&["logs", id]);
            if String::from_utf8_lossy(&o.stdout).contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in logs of {id}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `docker inspect -f fmt name` until `pred` holds and returns that value (bounded: a readiness
    /// wait, not a timing assertion).
    pub fn wait_inspect(&self, name: &str, fmt: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let o = self.docker(&["inspect", "-f", fmt, name]);
            let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if o.status.success() && pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {fmt} never matched, last {s:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn container_pids(&self) -> (Vec<i32>, Vec<i32>, Vec<String>) {
        let (mut inits, mut monitors, mut ids) = (vec![], vec![], vec![]);
        let Ok(rd) = fs::read_dir(self.data.join("containers")) else {
            return (inits, monitors, ids);
        };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let read = |f: &str| -> serde_json::Value {
                fs::read(e.path().join(f))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default()
            };
            if let Some(p) = read("monitor.json")["pid"].as_i64().filter(|p| *p > 0) {
                inits.push(p as i32);
            }
            if let Some(p) = read("config.v2.json")["MonitorPid"]
                .as_i64()
                .filter(|p| *p > 0)
            {
                monitors.push(p as i32);
            }
            ids.push(id);
        }
        (inits, monitors, ids)
    }
}

fn alive_with(pid: i32, needle: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        let (inits, monitors, ids) = self.container_pids();
        // Containers first (only pids whose /proc entry still belongs to a process in one of our containers'
        // cgroups), so their monitors clean up; then the monitors themselves.
        for pid in &inits {
            let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if ids.iter().any(|id| cg.contains(id.as_str())) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        // A paused (frozen) container only dies once thawed.
        for id in &ids {
            let _ = fs::write(
                format!("/sys/fs/cgroup/freezer/berth/{id}/freezer.state"),
                "THAWED",
            );
            for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let _ = fs::write(format!("{base}/berth/{id}/cgroup.freeze"), "0");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while monitors.iter().any(|m| alive_with(*m, "monitor")) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for m in &monitors {
            if alive_with(*m, "monitor") {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*m),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if let Some(runc) = which("runc") {
            for id in &ids {
                let _ = Command::new(&runc)
                    .arg("--root")
                    .arg(self.exec.join("runtime"))
                    .args(["delete", "--force", id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for id in &ids {
            for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                if let Ok(rd) = fs::read_dir(base) {
                    for ctrl in rd.flatten() {
                        let _ = fs::remove_dir(ctrl.path().join("berth").join(id));
                    }
                    let _ = fs::remove_dir(Path::new(base).join("berth").join(id));
                }
            }
        }
        self.net.cleanup(&self.data);
        // Unmount everything under our root, deepest first.
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
    }
}

/// The workspace root (two levels above this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Debian's docker-registry on 127.0.0.1:<free port>, storage in a temp dir; killed by pid on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Self {
        Self::start_on("127.0.0.1", None)
    }

    /// A registry on `ip` (an address of this host), serving TLS with `(certificate, key)` when given.
    pub fn start_on(ip: &str, tls: Option<(&Path, &Path)>) -> Self {
        Self::start_tls(ip, tls, None)
    }

    /// Like [`Registry::start_on`]; with `client_ca`, TLS clients must present a certificate it signed.
    pub fn start_tls(ip: &str, tls: Option<(&Path, &Path)>, client_ca: Option<&Path>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berthd-registry-")
            .tempdir_in("/tmp")
            .unwrap();
        let port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tls = tls
            .map(|(c, k)| {
                let cas = client_ca
                    .map(|ca| format!("    clientcas:\n      - {}\n", ca.display()))
                    .unwrap_or_default();
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n{cas}",
                    c.display(),
                    k.display()
                )
            })
            .unwrap_or_default();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {ip}:{port}\n{tls}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect((ip, port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
