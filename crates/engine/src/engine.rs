//! The daemon side of containers: the in-memory table of records, stop/kill/wait/remove/rename/prune; create is in
//! [`create`].
//! Starting, the monitor processes and their exits, and recovery after a berthd restart are in [`lifecycle`];
//! queries (list filters, status text) in [`crate::query`].

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::images::{ImageError, Images};
use crate::names;
use crate::record::Container;

mod adopt;
mod commit;
mod container_net;
mod create;
mod health;
mod late_dns;
mod lifecycle;
mod network;
mod ops;
mod restart;
mod volumes;
pub use commit::CommitRequest;
pub use lifecycle::container_resolv_conf;
pub use network::NetState;
pub use ops::container_cgroup;
pub use restart::{Policy as RestartPolicy, RestartError};

/// Errors of engine operations; [`EngineError::status`] maps them to docker's HTTP status codes.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// 404 for containers.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// 404 for images.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// 404 with the message as given (volumes: `get x: no such volume`).
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 400.
    #[error("{0}")]
    InvalidParameter(String),
    /// 304: nothing to do (start a running container, stop a stopped one).
    #[error("{0}")]
    NotModified(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    /// docker's HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoSuchContainer(_) | Self::NoSuchImage(_) | Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::InvalidParameter(_) => 400,
            Self::NotModified(_) => 304,
            Self::Internal(_) => 500,
        }
    }
}

impl From<ImageError> for EngineError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::NotFound(r) => Self::NoSuchImage(r),
            ImageError::Invalid(m) => Self::InvalidParameter(m),
            ImageError::Conflict(m) => Self::Conflict(m),
            ImageError::Other(m, _) => Self::Internal(m),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

type Result<T> = std::result::Result<T, EngineError>;

/// Where things live and which binaries to run.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `--data-root`.
    pub data_root: PathBuf,
    /// `--exec-root`.
    pub exec_root: PathBuf,
    /// The `berth` binary that runs monitors.
    pub berth_binary: PathBuf,
    /// The runc-compatible runtime command the monitor uses (`runc` or `<berth> runtime`).
    pub runtime: String,
    /// Bridge networking settings; `None` leaves "bridge" containers with only `lo`.
    pub network: Option<crate::net::NetSettings>,
    /// `--insecure-registry` hosts or CIDRs spoken to over plain HTTP, besides loopback (always).
    pub insecure_registries: Vec<String>,
}

/// The engine: shared by all API handlers.
#[derive(Debug)]
pub struct Engine {
    /// Configuration.
    pub cfg: EngineConfig,
    /// The image store.
    pub images: Images,
    containers: Mutex<HashMap<String, Container>>,
    /// Names (→ id) of containers whose files `create` is writing, outside the table lock (taken after it).
    creating: Mutex<HashMap<String, String>>,
    /// Last exit (code, error) of removed containers, so a `wait?condition=removed` that only sees the removal
    /// still reports the exit code.
    tombstones: Mutex<HashMap<String, (i32, Option<String>)>>,
    /// The event bus.
    pub events: crate::events::Events,
    /// Exec instances (in memory: they do not survive berthd).
    pub(crate) execs: crate::exec::Execs,
    changes: watch::Sender<u64>,
    /// Bridge networking, when enabled.
    net: Option<NetState>,
    /// Restart-policy back-offs (see [`restart`]).
    restarts: restart::Restarts,
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Engine {
    /// Opens the data root (creating its layout), loads the containers and re-attaches to running ones.
    pub fn new(cfg: EngineConfig) -> Result<Arc<Self>> {
        for d in [
            "containers",
            "image",
            "overlay2",
            "volumes",
            "network",
            "tmp",
        ] {
            fs::create_dir_all(cfg.data_root.join(d)).map_err(internal)?;
        }
        fs::create_dir_all(cfg.exec_root.join("runtime")).map_err(internal)?;
        crate::trash::empty_leftovers(&cfg.data_root);
        let images = Images::open(&cfg.data_root, &cfg.insecure_registries)?;
        let (changes, _) = watch::channel(0);
        let net = match &cfg.network {
            Some(s) => Some(NetState::open(&cfg.data_root, s.clone())?),
            None => None,
        };
        let engine = Arc::new(Self {
            net,
            cfg,
            images,
            containers: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashMap::new()),
            tombstones: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            events: Default::default(),
            changes,
            restarts: Default::default(),
        });
        engine.recover();
        engine.net_recover();
        engine.restart_on_boot();
        Ok(engine)
    }

    fn table(&self) -> MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    /// Publishes a container event with docker's attributes (name, image, labels) plus `extra`.
    pub(crate) fn container_event(&self, c: &Container, action: &str, extra: Value) {
        let mut attrs = json!({"name": c.short_name(), "image": c.config["Image"]});
        if let Some(l) = c.config["Labels"].as_object() {
            for (k, v) in l {
                attrs[k] = v.clone();
            }
        }
        if let Some(e) = extra.as_object() {
            for (k, v) in e {
                attrs[k] = v.clone();
            }
        }
        self.events.emit("container", action, &c.id, attrs);
    }

    /// A receiver that changes whenever any container's state changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Updates a container in the table and on disk. The write happens under the table lock, so it cannot
    /// race with a removal (which takes the container out of the table first).
    fn update(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        self.update_as(id, true, f)
    }

    /// [`Engine::update`]; `persist: false` keeps a transition that recovery re-derives in memory only (see
    /// record.rs: how durable each write is). hostconfig.json is written only when the HostConfig changed, and
    /// nothing at all (no write, no wake-up) when `f` changed nothing.
    fn update_as(
        &self,
        id: &str,
        persist: bool,
        f: impl FnOnce(&mut Container),
    ) -> Result<Container> {
        let c = {
            let mut t = self.table();
            let c = t
                .get_mut(id)
                .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?;
            let before = c.clone();
            f(c);
            if *c == before {
                return Ok(before);
            }
            let c = c.clone();
            if c.host_config != before.host_config {
                c.save(&self.cfg.data_root, false).map_err(internal)?;
            } else if persist {
                c.save_state(&self.cfg.data_root).map_err(internal)?;
            }
            c
        };
        self.notify();
        Ok(c)
    }

    /// All containers (unsorted).
    pub fn all(&self) -> Vec<Container> {
        self.table().values().cloned().collect()
    }

    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Container> {
        let t = self.table();
        if let Some(c) = t.get(key) {
            return Ok(c.clone());
        }
        let name = format!("/{}", key.strip_prefix('/').unwrap_or(key));
        if let Some(c) = t.values().find(|c| c.name == name) {
            return Ok(c.clone());
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<&Container> = t.values().filter(|c| c.id.starts_with(key)).collect();
            match hits.len() {
                0 => {}
                1 => return Ok(hits[0].clone()),
                _ => {
                    return Err(EngineError::InvalidParameter(format!(
                        "multiple IDs found with provided prefix: {key}"
                    )))
                }
            }
        }
        Err(EngineError::NoSuchContainer(key.to_string()))
    }

    /// Sends a signal to the container's init.
    pub fn kill(&self, key: &str, signal: Option<&str>) -> Result<()> {
        let c = self.get(key)?;
        let sig = parse_signal(signal.unwrap_or("KILL"))?;
        if !c.state.running || c.state.pid <= 0 {
            return Err(EngineError::Conflict(format!(
                "cannot kill container: {key}: container {} is not running",
                c.id
            )));
        }
        let stop_sig = c.config["StopSignal"].as_str().unwrap_or("SIGTERM");
        if parse_signal(stop_sig).unwrap_or(nix::sys::signal::Signal::SIGTERM) == sig {
            // docker: the stop signal means "stop", so no restart policy brings it back.
            self.cancel_restarts(&c.id);
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.state.pid), sig).map_err(internal)?;
        if c.state.paused && sig == nix::sys::signal::Signal::SIGKILL {
            self.thaw_for_kill(&c.id);
        }
        self.container_event(&c, "kill", json!({"signal": (sig as i32).to_string()}));
        Ok(())
    }

    /// `POST /containers/{id}/resize`: sets a TTY container's window size. The pty is reached through the
    /// init's `/proc/<pid>/fd/0` (a magic link to the open file, so no container-controlled path is resolved)
    /// and must still be a terminal.
    pub fn resize(&self, key: &str, height: u16, width: u16) -> Result<()> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let c = self.get(key)?;
        if !c.state.running || c.state.pid <= 0 {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        if !c.config["Tty"].as_bool().unwrap_or(false) {
            return Ok(());
        }
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(format!("/proc/{}/fd/0", c.state.pid))
            .map_err(|e| internal(format!("opening the container's terminal: {e}")))?;
        // SAFETY: isatty only inspects the fd.
        if unsafe { libc::isatty(f.as_raw_fd()) } != 1 {
            return Err(EngineError::Conflict(
                "the container's stdin is no longer a terminal".into(),
            ));
        }
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is valid for the call.
        if unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(internal(format!(
                "resizing the terminal: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    /// Waits until the container is not running (or the receiver closes).
    async fn wait_not_running(&self, id: &str, timeout: Option<Duration>) -> bool {
        let mut rx = self.subscribe();
        let fut = async {
            loop {
                match self.get(id) {
                    Ok(c) if c.state.running || c.monitor_pid != 0 => {}
                    _ => return,
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.is_ok(),
            None => {
                fut.await;
                true
            }
        }
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after `timeout` seconds (-1: wait forever).
    pub async fn stop(&self, key: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let mut c = self.get(key)?;
        if !c.state.running && c.state.restarting {
            if self.stop_restarting(&c.id).await {
                self.container_event(&c, "stop", json!({}));
                return Ok(());
            }
            c = self.get(key)?;
        }
        if !c.state.running {
            return Err(EngineError::NotModified("container already stopped".into()));
        }
        self.cancel_restarts(&c.id);
        let sig = signal
            .filter(|s| !s.is_empty())
            .map(String::from)
            .or_else(|| c.config["StopSignal"].as_str().map(String::from))
            .unwrap_or_else(|| "SIGTERM".into());
        let t = timeout
            .or_else(|| c.config["StopTimeout"].as_i64())
            .unwrap_or(10);
        let _ = self.kill(&c.id, Some(&sig));
        let wait = if t < 0 {
            None
        } else {
            Some(Duration::from_secs(t as u64))
        };
        if !self.wait_not_running(&c.id, wait).await {
            let _ = self.kill(&c.id, Some("KILL"));
            self.wait_not_running(&c.id, None).await;
        }
        self.container_event(&c, "stop", json!({}));
        Ok(())
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        match self.stop(key, timeout, signal).await {
            Ok(()) | Err(EngineError::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start(key).await?;
        if let Ok(c) = self.get(key) {
            self.container_event(&c, "restart", json!({}));
        }
        Ok(())
    }

    /// `POST /containers/{id}/wait`: resolves with the exit code. `condition`: not-running (default), next-exit,
    /// removed. The baseline is taken before this returns the future's first poll, so call it before starting.
    pub fn wait(
        self: &Arc<Self>,
        key: &str,
        condition: &str,
    ) -> Result<impl std::future::Future<Output = (i32, Option<String>)> + Send + 'static> {
        let c = self.get(key)?;
        if !matches!(condition, "" | "not-running" | "next-exit" | "removed") {
            return Err(EngineError::InvalidParameter(format!(
                "invalid condition: {condition:?}"
            )));
        }
        let engine = Arc::clone(self);
        let mut rx = self.subscribe();
        let condition = condition.to_string();
        let base_exits = c.exits;
        let id = c.id.clone();
        Ok(async move {
            let mut last = (c.state.exit_code, None);
            loop {
                match engine.get(&id) {
                    Err(_) => {
                        let t = engine.tombstones.lock().unwrap_or_else(|p| p.into_inner());
                        return t.get(&id).cloned().unwrap_or(last);
                    }
                    Ok(c) => {
                        let err = (!c.state.error.is_empty()).then(|| c.state.error.clone());
                        last = (c.state.exit_code, err);
                        let done = match condition.as_str() {
                            "next-exit" => c.exits > base_exits && !c.state.running,
                            "removed" => false,
                            _ => !c.state.running && c.monitor_pid == 0 && !c.state.restarting,
                        };
                        if done {
                            return last;
                        }
                    }
                }
                if rx.changed().await.is_err() {
                    return last;
                }
            }
        })
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove(self: &Arc<Self>, key: &str, force: bool) -> Result<()> {
        let c = self.get(key)?;
        if c.state.running {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "cannot remove container \"{}\": container is running: stop the container before removing or force remove",
                    c.name
                )));
            }
            let _ = self.kill(&c.id, Some("KILL"));
            self.wait_not_running(&c.id, None).await;
        }
        if c.state.restarting {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "cannot remove container \"{}\": container is restarting: stop the container before removing or force remove",
                    c.name
                )));
            }
            self.cancel_restarts(&c.id);
            self.wait_not_running(&c.id, None).await;
        }
        let c = self.get(&c.id)?;
        // The rootfs unmount syncs the overlay's upper layer (seconds with much unwritten data): off the async
        // threads.
        let engine = Arc::clone(self);
        tokio::task::spawn_blocking(move || engine.remove_now(&c))
            .await
            .map_err(internal)?
    }

    fn remove_now(&self, c: &Container) -> Result<()> {
        // The tombstone before the table removal: a waiter that finds the container gone must find its exit
        // (`run --rm` gets its exit code this way); the other order let it answer a stale 0.
        {
            let mut t = self.tombstones.lock().unwrap_or_else(|p| p.into_inner());
            // Only waiters racing with the removal need these; keep the map small.
            if t.len() > 1000 {
                t.clear();
            }
            let err = (!c.state.error.is_empty()).then(|| c.state.error.clone());
            t.insert(c.id.clone(), (c.state.exit_code, err));
        }
        // Out of the table next: from then on no update can write into the directory we delete.
        if self.table().remove(&c.id).is_none() {
            return Err(EngineError::NoSuchContainer(c.id.clone()));
        }
        self.backoffs().remove(&c.id);
        self.notify();
        self.container_event(c, "destroy", json!({}));
        let mut result = Ok(());
        // Unmounted here; the files go through the trash (deleted in the background, see trash.rs).
        if let Ok(layer) = berth_storage::RwLayer::open(&self.cfg.data_root, &c.id) {
            match layer.unmount() {
                Ok(()) => {
                    if let Err(e) = crate::trash::discard(&self.cfg.data_root, &layer.dir) {
                        result = Err(internal(e));
                    }
                }
                Err(e) => result = Err(internal(e)),
            }
        }
        let dir = Container::dir(&self.cfg.data_root, &c.id);
        if let Err(e) = crate::trash::discard(&self.cfg.data_root, &dir) {
            result = Err(internal(e));
        }
        if let Err(e) = &result {
            log::error!("removing container {}: {e}", c.id);
        }
        result
    }

    /// `POST /containers/{id}/rename`.
    pub fn rename(&self, key: &str, new_name: &str) -> Result<()> {
        let n =
            names::validate(new_name).map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        let c = self.get(key)?;
        let other = {
            let t = self.table();
            let creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
            t.values()
                .find(|o| o.short_name() == n && o.id != c.id)
                .map(|o| o.id.clone())
                .or_else(|| creating.get(&n).cloned())
        };
        if let Some(other) = other {
            return Err(EngineError::Conflict(format!(
                "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        let c2 = self.update(&c.id, |c| c.name = format!("/{n}"))?;
        self.container_event(&c2, "rename", json!({"oldName": c.name}));
        Ok(())
    }

    /// `POST /containers/prune`: removes stopped containers; returns their ids and the bytes reclaimed.
    pub fn prune(&self, keep: impl Fn(&Container) -> bool) -> (Vec<String>, u64) {
        let mut ids = Vec::new();
        let mut space = 0;
        for c in self.all() {
            if c.state.running || c.monitor_pid != 0 || c.state.restarting || keep(&c) {
                continue;
            }
            let size = self.rw_size(&c.id);
            if self.remove_now(&c).is_ok() {
                ids.push(c.id);
                space += size;
            }
        }
        (ids, space)
    }

    /// Bytes in the container's writable layer.
    pub fn rw_size(&self, id: &str) -> u64 {
        berth_storage::RwLayer::new(&self.cfg.data_root, id, vec![])
            .map(|l| l.size())
            .unwrap_or(0)
    }

    /// The overlay dirs of a container (for inspect's GraphDriver).
    pub fn layer_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_root.join("overlay2").join(id)
    }
}

/// Parses `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    let bad = || EngineError::InvalidParameter(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    nix::sys::signal::Signal::from_str(&name).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(
            parse_signal("TERM").unwrap(),
            nix::sys::signal::Signal::SIGTERM
        );
        assert_eq!(
            parse_signal("sigkill").unwrap(),
            nix::sys::signal::Signal::SIGKILL
        );
        assert_eq!(parse_signal("1").unwrap(), nix::sys::signal::Signal::SIGHUP);
        assert!(parse_signal("NOPE").is_err());
    }
}
