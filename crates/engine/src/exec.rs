//! `docker exec`: extra processes in a running container.
//!
//! berthd never forks into a container itself: an exec runs in a fresh helper process
//! (`berth monitor --exec PROCESS.json ...`, single-threaded) that calls `berth_runtime::exec` (or a runc-compatible
//! `exec --process`) with the helper's own stdout/stderr, which are pipes berthd reads. The helper waits for the
//! process and exits with its exit code, which berthd records for `GET /exec/{id}/json`.
//!
//! Exec records (and the events stream) live in berthd's memory only, as in dockerd: after a berthd restart
//! `GET /exec/{id}/json` of an earlier exec is a 404 ("No such exec instance") in both. An exec's process is
//! a child of its helper, which berthd reads through pipes; nothing about it needs to outlive berthd.
//!
//! `-i` feeds the client's input into the helper's stdin pipe. With `-t` the process gets a pty of its own (made
//! inside the container by the runtime) whose master the helper proxies to its stdio; the process' pid goes to
//! `exec-ID.pid` next to the process file, so `POST /exec/{id}/resize` can reach the terminal and inspect can
//! report the pid.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::engine::{Engine, EngineError};
use crate::monitor::{builtin, runtime_cmd, runtime_root, wait_for, Opts};
use crate::record::{read_json, write_json_sync, Container, Durability};

/// Errors of the exec helper.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The process file is unreadable.
    #[error("reading exec process {0}: {1}")]
    Process(PathBuf, String),
}

/// One exec instance.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    /// 64-hex id.
    pub id: String,
    /// The container it runs in.
    pub container_id: String,
    /// docker's ExecConfig (Cmd, Env, User, WorkingDir, Tty, Privileged, Attach*).
    pub config: Value,
    /// Whether it has been started.
    pub started: bool,
    /// Whether the process runs now.
    pub running: bool,
    /// Exit code once done.
    pub exit_code: Option<i32>,
    /// Helper pid while running.
    pub pid: i32,
    /// The process file while running (its pid is in the same path with a `.pid` extension).
    pub process_file: Option<PathBuf>,
}

impl ExecRecord {
    /// The pid of the exec'd process while it runs (docker's `Pid`), 0 when unknown.
    pub fn process_pid(&self) -> i32 {
        self.process_file
            .as_ref()
            .filter(|_| self.running)
            .and_then(|f| std::fs::read_to_string(f.with_extension("pid")).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// The exec table.
pub type Execs = std::sync::Mutex<HashMap<String, ExecRecord>>;

/// Entry of the helper (`berth monitor --exec FILE`): returns the process' exit code.
pub(crate) fn helper_main(o: &Opts) -> i32 {
    let file = o.exec.clone().unwrap_or_default();
    let process: oci_spec::runtime::Process = match std::fs::read(&file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}", ExecError::Process(file, e));
            return 126;
        }
    };
    let pid_file = file.with_extension("pid");
    if !builtin(o) {
        let st = runtime_cmd(o)
            .arg("exec")
            .arg("--process")
            .arg(&file)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&o.id)
            .status();
        return match st {
            Ok(s) => s.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + s.signal().unwrap_or(0)
            }),
            Err(e) => {
                eprintln!("running {}: {e}", o.runtime[0]);
                126
            }
        };
    }
    let opts = berth_runtime::ExecOptions {
        process,
        console_socket: None,
        pid_file: Some(pid_file),
        preserve_fds: 0,
    };
    // Blocked before the process exists, so no signal for it is lost; the helper forwards them (berthd's kill of
    // the helper reaches the process) and, with a TTY, proxies the pty master to its stdio.
    if let Err(e) = berth_runtime::terminal::block_signals() {
        eprintln!("OCI runtime exec failed: {e}");
        return 126;
    }
    match berth_runtime::exec(&runtime_root(o), &o.id, &opts) {
        Ok(h) => {
            berth_runtime::terminal::forward_and_wait(h.pid, h.pty_master).unwrap_or_else(|e| {
                eprintln!("exec: {e}");
                wait_for(h.pid, true).unwrap_or(255)
            })
        }
        Err(e) => {
            let msg = e.to_string();
            eprintln!("OCI runtime exec failed: {msg}");
            let lower = msg.to_ascii_lowercase();
            if lower.contains("not found") || lower.contains("no such file") {
                127
            } else {
                126
            }
        }
    }
}

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, key: &str, config: Value) -> Result<String, EngineError> {
        let c = self.get(key)?;
        if !c.state.running {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        if config["Cmd"].as_array().is_none_or(|a| a.is_empty()) {
            return Err(EngineError::InvalidParameter(
                "No exec command specified".into(),
            ));
        }
        let id = crate::names::new_id();
        let rec = ExecRecord {
            id: id.clone(),
            container_id: c.id.clone(),
            config,
            started: false,
            running: false,
            exit_code: None,
            pid: 0,
            process_file: None,
        };
        let cmd = rec.config["Cmd"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), rec);
        self.container_event(&c, &format!("exec_create: {cmd}"), json!({"execID": id}));
        Ok(id)
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<ExecRecord, EngineError> {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::NoSuchContainer(format!("exec instance {id}")))
    }

    fn exec_update(&self, id: &str, f: impl FnOnce(&mut ExecRecord)) {
        if let Some(r) = self
            .execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
        {
            f(r);
        }
    }

    /// The OCI process for an exec: the container's own process settings with the exec's overrides.
    fn exec_process(&self, c: &Container, cfg: &Value) -> Result<Value, EngineError> {
        let spec: Value =
            read_json(&Container::dir(&self.cfg.data_root, &c.id).join("config.json"))
                .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut p = spec["process"].clone();
        p["args"] = cfg["Cmd"].clone();
        let tty = cfg["Tty"].as_bool().unwrap_or(false);
        p["terminal"] = json!(tty);
        // docker sends the client's window as ConsoleSize [height, width], so the first prompt fits.
        let size = |i: usize| cfg["ConsoleSize"][i].as_u64().filter(|n| *n > 0);
        match (tty, size(0), size(1)) {
            (true, Some(h), Some(w)) => p["consoleSize"] = json!({"height": h, "width": w}),
            _ => {
                if let Some(o) = p.as_object_mut() {
                    o.remove("consoleSize");
                }
            }
        }
        let mut env: Vec<String> = p["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        for e in cfg["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
        {
            let key = e.split('=').next().unwrap_or(e);
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.to_string());
        }
        p["env"] = json!(env);
        if let Some(w) = cfg["WorkingDir"].as_str().filter(|w| !w.is_empty()) {
            p["cwd"] = json!(w);
        }
        if let Some(u) = cfg["User"].as_str().filter(|u| !u.is_empty()) {
            let rootfs = PathBuf::from(spec["root"]["path"].as_str().unwrap_or("/nonexistent"));
            let (uid, gid, extra) = crate::spec::resolve_user(&rootfs, u)
                .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
            p["user"] = json!({"uid": uid, "gid": gid, "additionalGids": extra});
        }
        if cfg["Privileged"].as_bool().unwrap_or(false) {
            let caps = crate::spec::capabilities(&json!({"Privileged": true}))
                .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
            p["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
        }
        Ok(p)
    }

    /// `POST /exec/{id}/start`: runs the exec, sending docker's multiplexed frames (or raw bytes for a TTY
    /// exec) to `out`, feeding `stdin` (when the exec attaches stdin) to the process, and records the exit code
    /// before returning. `console_size` (`[h, w]` from the start request) overrides the create-time size.
    pub async fn exec_start(
        self: &Arc<Self>,
        id: &str,
        console_size: Option<Value>,
        out: Option<mpsc::Sender<Vec<u8>>>,
        stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    ) -> Result<(), EngineError> {
        if let Some(size) = console_size.filter(|v| v.is_array()) {
            self.exec_update(id, |r| r.config["ConsoleSize"] = size);
        }
        let rec = self.exec_inspect(id)?;
        if rec.started {
            return Err(EngineError::Conflict(format!(
                "exec {id} has already been started"
            )));
        }
        let c = self.get(&rec.container_id)?;
        if !c.state.running {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        let process = self.exec_process(&c, &rec.config)?;
        let file = Container::dir(&self.cfg.data_root, &c.id).join(format!("exec-{id}.json"));
        // Read once by the exec helper spawned below: nothing needs it after a power loss (record.rs).
        write_json_sync(&file, &process, Durability::None)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let tty = rec.config["Tty"].as_bool().unwrap_or(false);
        let stdin = stdin.filter(|_| rec.config["AttachStdin"].as_bool().unwrap_or(false));
        let mut child = tokio::process::Command::new(&self.cfg.berth_binary)
            .arg("monitor")
            .arg("--data-root")
            .arg(&self.cfg.data_root)
            .arg("--exec-root")
            .arg(&self.cfg.exec_root)
            .arg("--id")
            .arg(&c.id)
            .arg("--runtime")
            .arg(&self.cfg.runtime)
            .arg("--exec")
            .arg(&file)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EngineError::Internal(format!("starting exec helper: {e}")))?;
        if let (Some(mut from), Some(mut to)) = (stdin, child.stdin.take()) {
            // The client's EOF (or detach) closes the process' stdin.
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from, &mut to).await;
                let _ = to.shutdown().await;
            });
        }
        let pid = child.id().unwrap_or(0) as i32;
        let cmd = rec.config["Cmd"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        self.container_event(&c, &format!("exec_start: {cmd}"), json!({"execID": id}));
        self.exec_update(id, |r| {
            r.started = true;
            r.running = true;
            r.pid = pid;
            r.process_file = Some(file.clone());
        });
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let (mut buf_o, mut buf_e) = (vec![0u8; 32768], vec![0u8; 32768]);
        let frame = |stream: u8, data: &[u8]| {
            if tty {
                data.to_vec()
            } else {
                crate::logs::frame(stream, data)
            }
        };
        while stdout.is_some() || stderr.is_some() {
            let (stream, n) = tokio::select! {
                r = async { stdout.as_mut().expect("checked").read(&mut buf_o).await }, if stdout.is_some() => (1u8, r.unwrap_or(0)),
                r = async { stderr.as_mut().expect("checked").read(&mut buf_e).await }, if stderr.is_some() => (2u8, r.unwrap_or(0)),
            };
            if n == 0 {
                if stream == 1 {
                    stdout = None;
                } else {
                    stderr = None;
                }
                continue;
            }
            let data = if stream == 1 {
                &buf_o[..n]
            } else {
                &buf_e[..n]
            };
            if let Some(tx) = &out {
                // A client that went away does not stop the process; keep draining.
                let _ = tx.send(frame(stream, data)).await;
            }
        }
        let code = match child.wait().await {
            Ok(s) => s.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + s.signal().unwrap_or(0)
            }),
            Err(_) => 255,
        };
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(file.with_extension("pid"));
        self.exec_update(id, |r| {
            r.running = false;
            r.exit_code = Some(code);
            r.pid = 0;
            r.process_file = None;
        });
        self.container_event(
            &c,
            "exec_die",
            json!({"execID": id, "exitCode": code.to_string()}),
        );
        Ok(())
    }
}

impl Engine {
    /// `POST /exec/{id}/resize`: sets a TTY exec's window size (a no-op for an exec without a TTY).
    pub fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<(), EngineError> {
        let rec = self.exec_inspect(id)?;
        if !rec.running {
            return Err(EngineError::Conflict(format!("exec {id} is not running")));
        }
        if !rec.config["Tty"].as_bool().unwrap_or(false) {
            return Ok(());
        }
        let pid = rec.process_pid();
        if pid <= 0 {
            // Started but the runtime has not written the pid yet: docker's CLI retries a failed first resize.
            return Err(EngineError::Conflict(format!(
                "exec {id} has no process yet"
            )));
        }
        crate::tty::resize_process_tty(pid, height, width)
            .map_err(|e| EngineError::Conflict(e.to_string()))
    }
}
