//! Shared helpers for the real-cgroup tests: unique names, a guard that kills and destroys on
//! drop, and children that wait on stdin until they have been moved into the cgroup.
#![allow(dead_code)]

use berth_cgroups::Cgroup;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BUSYBOX: &str = "/bin/busybox";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `/berth-test-<pid>-<n>`: unique per test so tests can run in parallel.
pub fn unique_path() -> String {
    format!(
        "/berth-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Returns false (after printing why) when the test cannot run here.
pub fn prerequisites(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root for real cgroups");
        return false;
    }
    if !Path::new(BUSYBOX).exists() {
        eprintln!("SKIP {test}: {BUSYBOX} missing (apt-get install busybox-static)");
        return false;
    }
    true
}

/// Owns a created cgroup and the children spawned into it; on drop (also on panic) thaws, kills
/// every child and every process left in the cgroup, and destroys the directories.
pub struct Guard {
    pub cg: Cgroup,
    children: Vec<Child>,
}

impl Guard {
    pub fn create(cg: Cgroup) -> Guard {
        let g = Guard {
            cg,
            children: Vec::new(),
        };
        g.cg.create().expect("create cgroup");
        g
    }

    /// Spawns `busybox sh -c 'read _; <script>'` and moves it into the cgroup; the script runs
    /// only after [`Guard::go`], so everything it allocates or forks is accounted to the cgroup.
    pub fn spawn(&mut self, script: &str) -> usize {
        let child = Command::new(BUSYBOX)
            .args(["sh", "-c", &format!("read _ ; B={BUSYBOX}; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn busybox");
        let pid = child.id() as i32;
        self.children.push(child);
        self.cg.add_process(pid).expect("add_process");
        self.children.len() - 1
    }

    pub fn pid(&self, i: usize) -> i32 {
        self.children[i].id() as i32
    }

    /// Lets child `i` run its script.
    pub fn go(&mut self, i: usize) {
        let stdin = self.children[i].stdin.as_mut().expect("stdin");
        stdin.write_all(b"\n").expect("release child");
        stdin.flush().unwrap();
    }

    /// Reads one line of child `i`'s stdout (byte by byte, so nothing is buffered away from
    /// [`Guard::wait`]).
    pub fn read_line(&mut self, i: usize) -> String {
        let out = self.children[i].stdout.as_mut().expect("stdout");
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while out.read(&mut b).expect("read child stdout") == 1 && b[0] != b'\n' {
            line.push(b[0]);
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    /// Waits for child `i` and returns its status, stdout and stderr.
    pub fn wait(&mut self, i: usize) -> (ExitStatus, String, String) {
        let c = &mut self.children[i];
        drop(c.stdin.take());
        let mut out = String::new();
        let mut err = String::new();
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (c.wait().expect("wait"), out, err)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.cg.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.cg.kill_all(libc::SIGKILL);
        // Leftover grandchildren are not our children: wait for the cgroup to empty instead.
        wait_until(Duration::from_secs(10), || {
            self.cg.pids().map(|p| p.is_empty()).unwrap_or(true)
        });
        if let Err(e) = self.cg.destroy() {
            eprintln!("cleanup: destroy failed: {e}");
        }
    }
}

/// Polls `cond` until it holds or `limit` passes (a safety net, not a timing assertion).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// /proc/<pid>/cmdline with NULs as spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Reads a cgroup file as a trimmed string.
pub fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}
