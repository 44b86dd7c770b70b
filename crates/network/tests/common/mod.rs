//! Shared fixtures for the kernel tests.
//!
//! Every test body runs on a thread that unshared its own network namespace ([`in_private_netns`]): that
//! namespace plays the host. Bridges, the nftables table, `ip_forward` and `route_localnet` all live there, so
//! the real host's networking is never touched (a DNAT for a published port on the real host would capture
//! its traffic), and the kernel drops everything when the thread and its children end. Stand-in containers
//! are `unshare -n sleep` children with their own namespaces. Guards still delete everything explicitly and
//! the tests assert that nothing is left, so the library's own cleanup is what is being checked.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use berth_network::{Config, Ipv4Net, NetnsRef, NetworkManager};

/// Why the kernel tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    for tool in ["ip", "nft", "unshare", "nsenter", "busybox"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} not installed"));
        }
    }
    None
}

/// Prints a skip message and returns true when the prerequisites are missing.
pub fn skip(test: &str) -> bool {
    match skip_reason() {
        Some(r) => {
            eprintln!("SKIP {test}: {r}");
            true
        }
        None => false,
    }
}

/// Runs `f` on a thread inside a fresh network namespace with `lo` up.
pub fn in_private_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET)");
            run_ok("ip", &["link", "set", "lo", "up"]);
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Runs a command, returning its output.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// Runs a command that must succeed; returns stdout.
pub fn run_ok(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A unique short tag for names: the pid's low digits plus a per-test letter.
pub fn tag(letter: char) -> String {
    format!("{}{letter}", std::process::id() % 100_000)
}

/// Test configuration: bridge `bt<tag>`, table `berth_t<tag>`, default bridge at `10.213.<n>.1/24`.
pub fn config(letter: char, third_octet: u8) -> Config {
    let t = tag(letter);
    Config {
        bridge_name: format!("bt{t}"),
        default_network: "bridge".into(),
        bip: Some(
            format!("10.213.{third_octet}.1/24")
                .parse::<Ipv4Net>()
                .unwrap(),
        ),
        pools: vec![berth_network::AddressPool::parse("base=10.213.128.0/17,size=24").unwrap()],
        nft_table: format!("berth_t{t}"),
        mtu: None,
        ip_forward: true,
    }
}

/// A stand-in container: a process in its own network namespace.
pub struct FakeContainer {
    pub child: Child,
    pub id: String,
}

impl FakeContainer {
    /// Starts `unshare -n sleep` and waits until it is in its new namespace.
    pub fn start(id: &str) -> Self {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "3600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare -n sleep");
        let me = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let ns = format!("/proc/{}/ns/net", child.id());
        // The child unshares right after it starts; wait for that so the path names its own namespace.
        for _ in 0..10_000 {
            if std::fs::read_link(&ns).is_ok_and(|l| l != me) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_ne!(
            std::fs::read_link(&ns).unwrap(),
            me,
            "child never entered its own netns"
        );
        Self {
            child,
            id: id.to_string(),
        }
    }

    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.child.id()))
    }

    pub fn netns(&self) -> NetnsRef {
        NetnsRef::Path(self.netns_path())
    }

    /// Runs a command inside the container's network namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let net = format!("--net={}", self.netns_path().display());
        let mut a = vec![net.as_str(), "--"];
        a.extend_from_slice(args);
        run("nsenter", &a)
    }

    /// Whether `busybox ping -c1 -W2 ip` succeeds from inside.
    pub fn ping(&self, ip: &str) -> bool {
        self.exec(&["busybox", "ping", "-c1", "-W2", ip])
            .status
            .success()
    }

    /// Spawns a long-running command inside the namespace.
    pub fn spawn(&self, args: &[&str]) -> Child {
        let net = format!("--net={}", self.netns_path().display());
        Command::new("nsenter")
            .arg(net)
            .arg("--")
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn nsenter")
    }
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Cleans up a manager's kernel objects on drop, so a failing test leaves nothing behind.
pub struct Cleanup<'a>(pub &'a NetworkManager);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.cleanup_all() {
            eprintln!("cleanup_all: {e}");
        }
    }
}

/// Asserts that no link whose name starts with one of `prefixes`, and no table `table`, exists.
pub fn assert_clean(prefixes: &[&str], table: &str) {
    let links = run_ok("ip", &["-o", "link", "show"]);
    for l in links.lines() {
        let name = l.split(": ").nth(1).unwrap_or("");
        assert!(
            !prefixes.iter().any(|p| name.starts_with(p)),
            "leftover link {name}"
        );
    }
    let tables = run_ok("nft", &["list", "tables"]);
    assert!(
        !tables
            .lines()
            .any(|l| l.trim() == format!("table ip {table}")),
        "leftover table: {tables}"
    );
}

/// Waits until a process (whose netns we read through /proc) listens on TCP `port`.
pub fn wait_listen(pid: u32, port: u16) {
    // busybox httpd listens on a dual-stack IPv6 socket, so look in tcp6 as well.
    let needle = format!(":{port:04X} ");
    let listening = |f: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(&needle[..5]))
                    && l.split_whitespace().nth(3) == Some("0A")
            })
        })
    };
    for _ in 0..10_000 {
        if listening("tcp") || listening("tcp6") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("nothing listens on {port} in the namespace of {pid}");
}

/// Creates a directory with an index.html containing `body`.
pub fn web_root(dir: &Path, body: &str) -> PathBuf {
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), body).unwrap();
    root
}
