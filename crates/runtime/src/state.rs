//! The container state directory `<root>/<id>/`: `state.json` (written atomically) and the exec fifo.
//!
//! The status is never stored: it is derived each time from the init process (alive, and with the start time we
//! recorded, so a reused pid is not mistaken for our init), the exec fifo (still there: created) and the
//! cgroup freezer (paused).

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the state file in the container directory.
pub(crate) const STATE_FILE: &str = "state.json";
/// Name of the exec fifo in the container directory.
pub(crate) const FIFO_FILE: &str = "exec.fifo";

/// Errors of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt state file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A container's lifecycle status (OCI runtime-spec "status").
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What `state.json` holds. [`ContainerState::oci_state`] gives the OCI state document.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ContainerState {
    pub id: String,
    /// Pid of the container's init in the runtime's pid namespace.
    pub pid: i32,
    /// Start time of the init (clock ticks since boot, /proc/<pid>/stat field 22): guards against pid reuse.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    /// Uid that created the container.
    pub owner: u32,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The container's cgroup as resolved at create time.
    pub cgroup: Option<berth_cgroups::Cgroup>,
    /// The config.json the container was created from (hooks and process defaults for `exec`).
    pub config: Spec,
    /// The state directory (not serialized: derived from root + id).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ContainerState {
    /// Reads `<root>/<id>/state.json`; `Ok(None)` when there is no such container.
    pub(crate) fn load(root: &Path, id: &str) -> Result<Option<ContainerState>, StateError> {
        let dir = root.join(id);
        let path = dir.join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let mut st: ContainerState =
            serde_json::from_slice(&data).map_err(|source| StateError::Parse { path, source })?;
        st.dir = dir;
        Ok(Some(st))
    }

    /// Writes `state.json` atomically (temp file + rename), so readers never see a partial file.
    pub(crate) fn save(&self) -> Result<(), StateError> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self
            .dir
            .join(format!(".{STATE_FILE}.{}", std::process::id()));
        let err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let data = serde_json::to_vec(self).expect("state serializes");
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&data).map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(err)
    }

    /// The current status, derived from the init process, the exec fifo and the freezer.
    pub fn status(&self) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.dir.join(FIFO_FILE).exists() {
            return Status::Created;
        }
        if let Some(cg) = &self.cgroup {
            if cg.is_frozen().unwrap_or(false) {
                return Status::Paused;
            }
        }
        Status::Running
    }

    /// Whether the init recorded at create time still runs (not a zombie, not a reused pid).
    pub fn init_alive(&self) -> bool {
        self.pid > 0
            && matches!(proc_stat(self.pid), Some((st, state)) if st == self.start_time && state != 'Z' && state != 'X')
    }

    /// The OCI state document (`runc state` output: the spec's fields plus rootfs, created, owner).
    pub fn oci_state(&self) -> serde_json::Value {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": crate::OCI_VERSION,
            "id": self.id,
            "pid": pid,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": owner_name(self.owner),
            "annotations": self.annotations,
        })
    }

    /// The OCI state document for hooks, with the status forced (hooks run at fixed lifecycle points).
    pub(crate) fn hook_state(&self, status: Status) -> serde_json::Value {
        let mut v = self.oci_state();
        v["status"] = serde_json::json!(status);
        v["pid"] = serde_json::json!(self.pid);
        v
    }
}

/// Start time (field 22) and state letter (field 3) of `/proc/<pid>/stat`.
pub(crate) fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may contain spaces and parens: fields after the last ')' are well-formed.
    let rest = &s[s.rfind(')')? + 2..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    // `rest` starts at field 3; field 22 is 19 further on.
    let start = it.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// User name of `uid` from /etc/passwd, or the number (runc's OWNER column).
fn owner_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Now as RFC 3339 UTC with nanoseconds, like Go's `time.RFC3339Nano`.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat() {
        let (start, state) = proc_stat(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(state != 'Z' && state != 'X');
    }

    #[test]
    fn rfc3339_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
