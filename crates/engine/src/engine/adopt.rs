//! Catching up with a start that a crash of berthd cut short. berthd records a run as started when the monitor
//! answers on its sync pipe; a berthd SIGKILLed between spawning the monitor and reading that answer leaves the
//! record at `created` (or `restarting`) with the monitor's pid. The monitor carries on without it, and writes
//! the container's pid and start time to `monitor.json` once the container outlived its first moments (20 ms,
//! up to 2 s to finish a line: monitor.rs). A berthd that restarts before that finds a live monitor and no
//! pid yet; it follows `monitor.json` until the pid is there, then records the run as started (with the
//! `start` event the crashed berthd never sent). The exit itself is the monitor watcher's (lifecycle.rs).
//! A berthd that died even before it recorded the monitor's pid finds the monitor by its command line.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::Engine;
use crate::record::{read_json, MonitorStatus};

/// How often `monitor.json` is looked at: often at first (the monitor writes it within 20 ms of the start
/// normally), rarely once a start takes long (a slow runtime CLI), as it may for the monitor's whole life.
const FIRST_POLLS: u32 = 100;
const EARLY: Duration = Duration::from_millis(20);
const LATE: Duration = Duration::from_millis(500);

impl Engine {
    /// Live monitors of containers whose record names no monitor: berthd died between spawning one and
    /// recording its pid (start_run persists the pid right after the spawn). Such a monitor runs its container
    /// regardless; unknown, its container would show `created`, and a `rm` would pull the rootfs from under
    /// it. Found by command line (`... monitor --data-root D ... --id ID`, also after the hand-over to
    /// berth-shim: same pid, same arguments), recorded, and returned to be watched like any other.
    pub(super) fn adopt_unrecorded_monitors(&self) -> Vec<(String, i32)> {
        let candidates: std::collections::HashSet<String> = self
            .all()
            .into_iter()
            .filter(|c| c.monitor_pid == 0)
            .map(|c| c.id)
            .collect();
        if candidates.is_empty() {
            return Vec::new();
        }
        let data_root = self.cfg.data_root.as_os_str().as_encoded_bytes();
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.get(1) != Some(&&b"monitor"[..]) {
                continue;
            }
            let value = |key: &[u8]| {
                args.windows(2)
                    .find(|w| w[0] == key)
                    .and_then(|w| std::str::from_utf8(w[1]).ok())
            };
            if value(b"--data-root").map(str::as_bytes) != Some(data_root) {
                continue;
            }
            if let Some(id) = value(b"--id").filter(|id| candidates.contains(*id)) {
                if super::lifecycle::monitor_alive(pid, id) {
                    found.push((id.to_string(), pid));
                }
            }
        }
        found.retain(|(id, pid)| {
            let mut adopted = false;
            let _ = self.update(id, |c| {
                if c.monitor_pid == 0 {
                    c.monitor_pid = *pid;
                    adopted = true;
                }
            });
            if adopted {
                log::info!("container {id}: adopting its monitor {pid}, unrecorded before a crash");
            }
            adopted
        });
        found
    }

    /// Follows the start of a run whose monitor `pid` berthd found alive at its start, with no pid recorded
    /// (see the module doc). Ends when the run is recorded as started, or when it is no longer the current
    /// run (the monitor exited and its watcher recorded that, or the container was removed).
    pub(super) fn follow_start(self: &Arc<Self>, id: String, pid: i32) {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let mut polls = 0u32;
            loop {
                // A --rm container's "running" stays in memory, as at a normal start (lifecycle.rs).
                let persist = match engine.get(&id) {
                    Ok(c) if c.monitor_pid == pid && !c.state.running => !c.auto_remove(),
                    _ => return,
                };
                let st: MonitorStatus =
                    read_json(&MonitorStatus::path(&engine.cfg.data_root, &id)).unwrap_or_default();
                if st.exit_code.is_some() {
                    // Over already: the monitor is about to exit, and its watcher records the run.
                    return;
                }
                if st.pid != 0 {
                    let mut started = false;
                    let res = engine.update_as(&id, persist, |c| {
                        if c.monitor_pid == pid && !c.state.running {
                            started = true;
                            c.state.restarting = false;
                            c.state.running = true;
                            c.state.status = "running".into();
                            c.state.pid = st.pid;
                            c.state.started_at = st.started_at.clone();
                        }
                    });
                    if let (Ok(c), true) = (res, started) {
                        log::info!("container {id}: its start finished while berthd was away");
                        engine.container_event(&c, "start", json!({}));
                    }
                    return;
                }
                polls += 1;
                let wait = if polls < FIRST_POLLS { EARLY } else { LATE };
                tokio::time::sleep(wait).await;
            }
        });
    }
}
