//! Container records on disk: `<data-root>/containers/<id>/config.v2.json` (the container, docker's shape),
//! `hostconfig.json` (the HostConfig as the client sent it, with defaults filled) and `monitor.json` (written by
//! the monitor only: pid, start and exit).
//!
//! Every write is atomic: a temp file renamed over the old one, so a crash of the writing process leaves the
//! old or the new content, never a mix. What differs is how much survives a power loss ([`Durability`]), because
//! every fsync costs a journal commit (milliseconds of wall time on the critical path of `run`):
//!
//! - The creation of a container and changes of its HostConfig (`update`) are [`Durability::Full`]: once the
//!   API answers, they survive a power loss. `hostconfig.json` is written only then, not at every transition.
//!   A `--rm` container is created with [`Durability::Data`]: never torn, but a power loss within the few
//!   seconds before the journal commits may forget it; it was to be removed at its exit anyway, like any `--rm`
//!   container berthd finds stopped at its next start.
//! - Other changes of `config.v2.json` (state transitions, rename, exec ids) are [`Durability::Data`]: never
//!   torn, but a power loss may bring back the previous version. For the state that is harmless: after a power
//!   loss no monitor lives, and berthd's recovery derives the state from the monitor's liveness and
//!   `monitor.json` (a record that still says running with a dead monitor is recorded as exited). A `--rm`
//!   container's are [`Durability::None`]: it is removed when it exits (or at the next start of berthd), so
//!   nothing of its state needs to outlive the machine.
//! - The exit of a `--rm` container is not written at all: its removal follows at once, or, if berthd dies
//!   first, at its next start (the record on disk still has the monitor's pid, so recovery finds the monitor
//!   gone, reads its exit from `monitor.json` and removes the container). The record on disk always has the
//!   monitor's pid while a monitor may run, which is what recovery needs to re-adopt it. "running" is
//!   written for other containers (after a power loss it is what tells an exited container from one that
//!   never started); a `--rm` container is removed once its monitor is gone, whatever its state says.
//! - Files re-made at every start or written for one run only (the OCI bundle's `config.json`, the network
//!   plan, `monitor.json`) are [`Durability::None`]: after a power loss the run they describe is over.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors from reading and writing records.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// I/O on a record file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A record file is not valid JSON of the expected shape.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

/// docker's "zero" timestamp, used for times that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 with nanoseconds in UTC, the format docker uses everywhere.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// How much of an atomic write must survive a power loss (module doc: which record uses which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The new content is on disk when the call returns: the temp file is fsync'd before the rename and the
    /// directory after it.
    Full,
    /// The temp file's data is fsync'd before the rename, the directory is not: a power loss leaves the old or
    /// the new content, never a torn file, but may forget the rename (or a new file) for a few seconds.
    Data,
    /// No fsync: atomic against a crash of the process only. After a power loss the file may hold the old or
    /// the new content, or (on a filesystem that does not order a replacing rename after its data, unlike ext4's
    /// default `auto_da_alloc`) be empty. Only for files that nothing needs after a power loss.
    None,
}

/// Writes `data` to `path` atomically with full durability: a crash or power loss leaves either the old or
/// the new content, and the new one once this returns.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<(), RecordError> {
    write_file(path, data, Durability::Full)
}

/// Writes `data` to `path` atomically (temp file, rename), fsync'ing as `sync` says.
pub fn write_file(path: &Path, data: &[u8], sync: Durability) -> Result<(), RecordError> {
    let err = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        std::process::id()
    ));
    let mut f = fs::File::create(&tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    if sync != Durability::None {
        f.sync_data().map_err(err)?;
    }
    drop(f);
    fs::rename(&tmp, path).map_err(err)?;
    if sync == Durability::Full {
        // The rename itself must reach the disk too.
        sync_dir(dir);
    }
    Ok(())
}

/// fsyncs a directory, so the entries made or renamed in it survive a power loss (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Serializes `v` as JSON and writes it atomically with full durability.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), RecordError> {
    write_json_sync(path, v, Durability::Full)
}

/// Serializes `v` as JSON and writes it atomically, fsync'ing as `sync` says.
pub fn write_json_sync<T: Serialize>(
    path: &Path,
    v: &T,
    sync: Durability,
) -> Result<(), RecordError> {
    let data = serde_json::to_vec(v).map_err(|source| RecordError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_file(path, &data, sync)
}

/// Reads a JSON file.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, RecordError> {
    let data = fs::read(path).map_err(|source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&data).map_err(|source| RecordError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// A container's state, docker's `State` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    /// created, running, paused, restarting, removing, exited or dead.
    pub status: String,
    /// Whether the container process is alive.
    pub running: bool,
    /// Frozen.
    pub paused: bool,
    /// Being restarted by a restart policy.
    pub restarting: bool,
    /// Killed by the OOM killer.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Failed removal left it dead.
    pub dead: bool,
    /// Host pid of the container's init, 0 when not running.
    pub pid: i32,
    /// Exit code of the last run.
    pub exit_code: i32,
    /// Error of the last start, if any.
    pub error: String,
    /// When the last run started.
    pub started_at: String,
    /// When the last run finished.
    pub finished_at: String,
    /// docker's `Health` (Status, FailingStreak, Log), present when the container has a healthcheck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Value>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            status: "created".into(),
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            health: None,
        }
    }
}

/// One container: what `config.v2.json` holds (docker's field names, plus berth's bookkeeping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    /// 64-hex id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Creation time.
    pub created: String,
    /// The executable (first word of entrypoint + cmd).
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// docker's Config object, as merged from the image and the request.
    pub config: Value,
    /// Current state.
    pub state: State,
    /// Image id, `sha256:...`.
    pub image: String,
    /// `/name`.
    pub name: String,
    /// Restarts done by a restart policy.
    pub restart_count: i64,
    /// Stopped by the user (`stop`): restart policies leave it alone until the next manual start.
    #[serde(default)]
    pub has_been_manually_stopped: bool,
    /// Storage driver.
    pub driver: String,
    /// Platform (os).
    pub platform: String,
    /// json-file log path.
    pub log_path: String,
    /// Generated /etc/hostname.
    pub hostname_path: String,
    /// Generated /etc/hosts.
    pub hosts_path: String,
    /// Generated /etc/resolv.conf.
    pub resolv_conf_path: String,
    /// Execs of this container.
    #[serde(rename = "ExecIDs", default)]
    pub exec_ids: Vec<String>,
    /// berth: pid of the monitor while one runs (0 otherwise).
    #[serde(default)]
    pub monitor_pid: i32,
    /// berth: how many runs have finished; `wait?condition=next-exit` waits for it to grow.
    #[serde(default)]
    pub exits: u64,
    /// berth: the networks joined besides NetworkMode's (network name → docker EndpointSettings: Aliases,
    /// IPAMConfig), from `NetworkingConfig.EndpointsConfig` and `network connect`.
    #[serde(default)]
    pub networks: std::collections::BTreeMap<String, Value>,
    /// The mounts (binds, volumes, tmpfs) planned at create time, docker's `MountPoints`.
    #[serde(default)]
    pub mount_points: Vec<crate::mounts::MountPoint>,
    /// berth: the HostConfig; stored separately in hostconfig.json.
    #[serde(skip)]
    pub host_config: Value,
}

impl Container {
    /// The container's directory.
    pub fn dir(data_root: &Path, id: &str) -> PathBuf {
        data_root.join("containers").join(id)
    }

    /// Name without the leading slash.
    pub fn short_name(&self) -> &str {
        self.name.strip_prefix('/').unwrap_or(&self.name)
    }

    /// Whether the container is removed when it exits (`--rm`): its state need not outlive a power loss.
    pub fn auto_remove(&self) -> bool {
        self.host_config["AutoRemove"].as_bool().unwrap_or(false)
    }

    /// Writes config.v2.json and hostconfig.json: at create and when the HostConfig changes (module doc).
    /// `new`: the container's directory was just made, so its entry in `containers/` is synced too.
    pub fn save(&self, data_root: &Path, new: bool) -> Result<(), RecordError> {
        let dir = Self::dir(data_root, &self.id);
        let sync = if self.auto_remove() {
            Durability::Data
        } else {
            Durability::Full
        };
        // One directory fsync for both files (and the parent's for a new directory), not one per file.
        write_json_sync(
            &dir.join("hostconfig.json"),
            &self.host_config,
            Durability::Data,
        )?;
        write_json_sync(&dir.join("config.v2.json"), self, Durability::Data)?;
        if sync == Durability::Full {
            sync_dir(&dir);
            if new {
                sync_dir(dir.parent().unwrap_or(&dir));
            }
        }
        Ok(())
    }

    /// Writes config.v2.json alone, for a state transition (module doc: how durable).
    pub fn save_state(&self, data_root: &Path) -> Result<(), RecordError> {
        let sync = if self.auto_remove() {
            Durability::None
        } else {
            Durability::Data
        };
        write_json_sync(
            &Self::dir(data_root, &self.id).join("config.v2.json"),
            self,
            sync,
        )
    }

    /// Reads a container back.
    pub fn load(data_root: &Path, id: &str) -> Result<Self, RecordError> {
        let dir = Self::dir(data_root, id);
        let mut c: Container = read_json(&dir.join("config.v2.json"))?;
        c.host_config =
            read_json(&dir.join("hostconfig.json")).unwrap_or(Value::Object(Default::default()));
        Ok(c)
    }
}

/// What the monitor reports in `monitor.json`: it writes `pid`/`started_at` once the container runs, and the
/// exit fields when it is gone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MonitorStatus {
    /// The container init's host pid.
    pub pid: i32,
    /// When it started.
    pub started_at: String,
    /// Exit code (128+signal for a signal), once exited.
    pub exit_code: Option<i32>,
    /// When it exited.
    pub finished_at: Option<String>,
    /// Whether the cgroup saw an OOM kill.
    pub oom_killed: bool,
    /// A start error, if the container never ran.
    pub error: Option<String>,
}

impl MonitorStatus {
    /// `<container dir>/monitor.json`.
    pub fn path(data_root: &Path, id: &str) -> PathBuf {
        Container::dir(data_root, id).join("monitor.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let tmp = tempfile::tempdir().unwrap();
        let id = crate::names::new_id();
        fs::create_dir_all(Container::dir(tmp.path(), &id)).unwrap();
        let c = Container {
            id: id.clone(),
            created: now_rfc3339(),
            path: "/hello".into(),
            args: vec![],
            config: serde_json::json!({"Image": "hello-world"}),
            state: State::default(),
            image: "sha256:00".into(),
            name: "/x".into(),
            restart_count: 0,
            has_been_manually_stopped: false,
            driver: "overlay2".into(),
            platform: "linux".into(),
            log_path: String::new(),
            hostname_path: String::new(),
            hosts_path: String::new(),
            resolv_conf_path: String::new(),
            exec_ids: vec![],
            monitor_pid: 0,
            exits: 0,
            networks: Default::default(),
            mount_points: vec![],
            host_config: serde_json::json!({"AutoRemove": false}),
        };
        c.save(tmp.path(), true).unwrap();
        let back = Container::load(tmp.path(), &id).unwrap();
        assert_eq!(back.name, "/x");
        assert_eq!(back.host_config["AutoRemove"], false);
        let raw: Value =
            read_json(&Container::dir(tmp.path(), &id).join("config.v2.json")).unwrap();
        assert_eq!(raw["State"]["OOMKilled"], false);
        assert_eq!(raw["ID"], id);
    }
}
