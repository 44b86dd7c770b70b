//! Restart policies (`no`, `always`, `on-failure[:N]`, `unless-stopped`), enforced by berthd rather than by the
//! monitor, so a policy changed with `update --restart` applies at the next exit. When a monitor's exit is
//! recorded, [`should_restart`] (docker's restart manager) decides whether and after which back-off the
//! container runs again: 100ms, doubling up to one minute, back to 100ms after a run of 10s or more. A tokio
//! timer then starts a new monitor. `stop` (or a kill with the stop signal) cancels restarts until the next
//! manual start; when berthd starts, `always` containers, `unless-stopped` ones the user did not stop, and those
//! caught between two restarts are started again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::{Engine, EngineError, Result};
use crate::record::Container;

/// The first back-off.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest back-off.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
const RESET_AFTER: Duration = Duration::from_secs(10);

/// Errors of restart policy validation.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// Unknown policy, bad retry count, or a policy combined with `--rm`.
    #[error("{0}")]
    Invalid(String),
}

/// Per-container restart bookkeeping that lives only as long as berthd (like docker's restart manager).
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    /// The last back-off used (zero: none yet).
    delay: Duration,
    /// Set by a manual stop: no restarts until the next manual start.
    canceled: bool,
    /// Bumped by every schedule and cancel; a timer only fires for its own generation.
    generation: u64,
    /// A timer is waiting.
    pending: bool,
}

/// The engine's back-offs, by container id.
#[derive(Debug, Default)]
pub(crate) struct Restarts {
    map: Mutex<HashMap<String, Backoff>>,
    /// Set once berthd's recovery (containers, then networks) is done: restarts decided during recovery wait
    /// for it, or they would start containers on networks not yet restored.
    booted: AtomicBool,
}

/// A parsed `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `no`, `always`, `on-failure` or `unless-stopped`.
    pub name: String,
    /// `on-failure`'s limit (0: unlimited).
    pub max_retries: i64,
}

impl Policy {
    /// The policy in a HostConfig (`no` when absent).
    pub fn of(hc: &Value) -> Self {
        let name = hc["RestartPolicy"]["Name"].as_str().unwrap_or("");
        Self {
            name: if name.is_empty() { "no" } else { name }.to_string(),
            max_retries: hc["RestartPolicy"]["MaximumRetryCount"]
                .as_i64()
                .unwrap_or(0),
        }
    }
}

/// Checks a HostConfig's restart policy the way dockerd does at create (400 on failure).
pub fn validate(hc: &Value) -> std::result::Result<(), RestartError> {
    let p = Policy::of(hc);
    let bad = |m: String| {
        Err(RestartError::Invalid(format!(
            "invalid restart policy: {m}"
        )))
    };
    match p.name.as_str() {
        "no" | "always" | "unless-stopped" => {
            if p.max_retries != 0 {
                return bad("maximum retry count can only be used with 'on-failure'".into());
            }
        }
        "on-failure" => {
            if p.max_retries < 0 {
                return bad("maximum retry count can't be negative".into());
            }
        }
        other => {
            return bad(format!(
                "unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            ))
        }
    }
    if p.name != "no" && hc["AutoRemove"].as_bool().unwrap_or(false) {
        return Err(RestartError::Invalid(
            "can't create 'AutoRemove' container with restart policy".into(),
        ));
    }
    Ok(())
}

/// docker's `RestartManager.ShouldRestart`: whether a run that ended with `exit_code` after `ran` is followed by
/// another, updating the back-off in `delay` (the wait before that next run).
pub fn should_restart(
    p: &Policy,
    exit_code: i32,
    manually_stopped: bool,
    restart_count: i64,
    ran: Duration,
    delay: &mut Duration,
) -> bool {
    if p.name == "no" {
        return false;
    }
    if ran >= RESET_AFTER {
        *delay = Duration::ZERO;
    }
    *delay = if delay.is_zero() {
        FIRST_DELAY
    } else {
        (*delay * 2).min(MAX_DELAY)
    };
    match p.name.as_str() {
        "always" => true,
        "unless-stopped" => !manually_stopped,
        "on-failure" => (p.max_retries == 0 || restart_count < p.max_retries) && exit_code != 0,
        _ => false,
    }
}

pub(super) fn secs_between(from: &str, to: &str) -> Duration {
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    match (t(from), t(to)) {
        (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

impl Engine {
    /// `POST /containers/{id}/start`: a manual start clears a user stop, the restart count and the back-off,
    /// and cancels a pending restart (it starts now instead).
    pub async fn start(self: &Arc<Self>, key: &str) -> Result<()> {
        let c = self.get(key)?;
        if c.state.running {
            return Err(EngineError::NotModified("container already started".into()));
        }
        self.backoffs().remove(&c.id);
        self.update(&c.id, |c| {
            c.has_been_manually_stopped = false;
            c.restart_count = 0;
            if c.state.restarting {
                c.state.restarting = false;
                c.state.status = "exited".into();
            }
        })?;
        let started = self.run_once(&c.id).await;
        if started.is_err() && c.host_config["AutoRemove"].as_bool().unwrap_or(false) {
            // As dockerd: a `--rm` container whose start failed is removed, or a client waiting for
            // `condition=removed` (the docker CLI's `run --rm`) would wait forever.
            // (Blocking: it unmounts and moves files to the trash.)
            let (engine, id) = (Arc::clone(self), c.id.clone());
            let _ = tokio::task::spawn_blocking(move || engine.auto_remove(id)).await;
        }
        started
    }

    /// One run: the monitor, then the healthcheck.
    async fn run_once(self: &Arc<Self>, id: &str) -> Result<()> {
        self.start_run(id).await?;
        self.health_begin(id);
        Ok(())
    }

    pub(super) fn backoffs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Backoff>> {
        self.restarts.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// For `stop` of a container a restart policy is bringing back: cancels the restart. True when that
    /// stopped it (it was waiting for its back-off); otherwise a policy start is under way, and this waits for it
    /// to settle so that the caller stops the new run.
    pub(super) async fn stop_restarting(&self, id: &str) -> bool {
        if self.cancel_restarts(id) {
            return true;
        }
        let mut rx = self.subscribe();
        loop {
            match self.get(id) {
                Ok(c) if c.state.restarting => {}
                _ => return false,
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    }

    /// A user stop (or a kill with the stop signal): no restart after this exit, and `unless-stopped` stays
    /// down across berthd restarts. A container waiting to restart is stopped right here; returns whether it
    /// was.
    pub(super) fn cancel_restarts(&self, id: &str) -> bool {
        {
            let mut b = self.backoffs();
            let e = b.entry(id.to_string()).or_default();
            e.canceled = true;
            e.generation += 1;
            e.pending = false;
        }
        let mut was_waiting = false;
        let _ = self.update(id, |c| {
            c.has_been_manually_stopped = true;
            if c.state.restarting && c.monitor_pid == 0 {
                was_waiting = true;
                c.state.restarting = false;
                c.state.status = "exited".into();
            }
        });
        was_waiting
    }

    /// Called under the table lock as an exit is recorded: applies the policy to `c` (restarting state and
    /// count) and returns the back-off and timer generation when it is to run again.
    pub(super) fn decide_restart(&self, c: &mut Container) -> Option<(Duration, u64)> {
        let policy = Policy::of(&c.host_config);
        if let Some(h) = c.state.health.as_mut() {
            // docker: a healthcheck whose monitor stopped reports unhealthy.
            h["Status"] = json!("unhealthy");
        }
        if policy.name == "no" || c.host_config["AutoRemove"].as_bool().unwrap_or(false) {
            return None;
        }
        let ran = secs_between(&c.state.started_at, &c.state.finished_at);
        let mut b = self.backoffs();
        let e = b.entry(c.id.clone()).or_default();
        if e.canceled {
            return None;
        }
        let mut delay = e.delay;
        let again = should_restart(
            &policy,
            c.state.exit_code,
            c.has_been_manually_stopped,
            c.restart_count,
            ran,
            &mut delay,
        );
        e.delay = delay;
        if !again {
            return None;
        }
        e.generation += 1;
        e.pending = true;
        c.restart_count += 1;
        c.state.restarting = true;
        c.state.status = "restarting".into();
        Some((delay, e.generation))
    }

    /// Starts the container again after `delay`, unless a stop, start or removal came first.
    pub(super) fn schedule_restart(self: &Arc<Self>, id: String, delay: Duration, generation: u64) {
        if !self.restarts.booted.load(Ordering::SeqCst) {
            // Still recovering: [`Self::restart_on_boot`] starts every container left `restarting`.
            return;
        }
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            {
                let mut b = engine.backoffs();
                match b.get_mut(&id) {
                    Some(e) if e.generation == generation && e.pending => e.pending = false,
                    _ => return,
                }
            }
            match engine.get(&id) {
                Ok(c) if c.state.restarting && c.monitor_pid == 0 && !c.state.running => {}
                _ => return,
            }
            if let Err(e) = engine.run_once(&id).await {
                log::warn!("restarting container {id}: {e}");
                let _ = engine.update(&id, |c| {
                    if c.monitor_pid == 0 {
                        c.state.restarting = false;
                        c.state.status = "exited".into();
                    }
                });
            }
        });
    }

    /// At berthd start: runs the containers their policy wants up (docker's `ShouldRestart` at daemon
    /// restore), and those that were waiting for a restart when the previous berthd went away.
    pub(super) fn restart_on_boot(self: &Arc<Self>) {
        // First, so that an exit recorded concurrently from here on schedules its own timer; a container seen
        // by both gets two timers of which only the later generation fires.
        self.restarts.booted.store(true, Ordering::SeqCst);
        for c in self.all() {
            if c.state.running {
                self.health_resume(&c.id);
                continue;
            }
            if c.monitor_pid != 0 {
                continue;
            }
            let p = Policy::of(&c.host_config);
            let ran_before =
                !c.state.started_at.starts_with("0001") && !c.state.started_at.is_empty();
            let wanted = c.state.restarting
                || (ran_before
                    && match p.name.as_str() {
                        "always" => true,
                        "unless-stopped" => !c.has_been_manually_stopped,
                        "on-failure" => {
                            c.state.exit_code != 0
                                && (p.max_retries == 0 || c.restart_count < p.max_retries)
                        }
                        _ => false,
                    });
            if !wanted {
                continue;
            }
            let generation = {
                let mut b = self.backoffs();
                let e = b.entry(c.id.clone()).or_default();
                e.generation += 1;
                e.pending = true;
                e.generation
            };
            let _ = self.update(&c.id, |c| {
                c.state.restarting = true;
                c.state.status = "restarting".into();
            });
            self.schedule_restart(c.id.clone(), Duration::ZERO, generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, max: i64) -> Policy {
        Policy {
            name: name.into(),
            max_retries: max,
        }
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let p = policy("always", 0);
        let mut d = Duration::ZERO;
        let mut seen = vec![];
        for _ in 0..12 {
            assert!(should_restart(&p, 0, false, 0, Duration::ZERO, &mut d));
            seen.push(d);
        }
        assert_eq!(seen[0], Duration::from_millis(100));
        assert_eq!(seen[1], Duration::from_millis(200));
        assert_eq!(seen[9], Duration::from_millis(51200));
        assert_eq!(seen[10], MAX_DELAY);
        assert_eq!(seen[11], MAX_DELAY);
        should_restart(&p, 0, false, 0, Duration::from_secs(10), &mut d);
        assert_eq!(d, FIRST_DELAY);
    }

    #[test]
    fn policies() {
        let mut d = Duration::ZERO;
        let z = Duration::ZERO;
        assert!(!should_restart(&policy("no", 0), 1, false, 0, z, &mut d));
        assert!(should_restart(
            &policy("on-failure", 3),
            1,
            false,
            2,
            z,
            &mut d
        ));
        assert!(!should_restart(
            &policy("on-failure", 3),
            1,
            false,
            3,
            z,
            &mut d
        ));
        assert!(!should_restart(
            &policy("on-failure", 0),
            0,
            false,
            0,
            z,
            &mut d
        ));
        assert!(should_restart(
            &policy("on-failure", 0),
            2,
            false,
            99,
            z,
            &mut d
        ));
        assert!(should_restart(&policy("always", 0), 0, true, 0, z, &mut d));
        assert!(!should_restart(
            &policy("unless-stopped", 0),
            0,
            true,
            0,
            z,
            &mut d
        ));
        assert!(should_restart(
            &policy("unless-stopped", 0),
            0,
            false,
            0,
            z,
            &mut d
        ));
    }

    #[test]
    fn validation() {
        let hc = |v: Value| v;
        assert!(validate(&hc(json!({}))).is_ok());
        assert!(validate(&hc(
            json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})
        ))
        .is_ok());
        let e = validate(&hc(json!({"RestartPolicy": {"Name": "sometimes"}}))).unwrap_err();
        assert!(e.to_string().contains("unknown policy 'sometimes'"), "{e}");
        assert!(validate(&hc(
            json!({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}})
        ))
        .is_err());
        assert!(validate(&hc(
            json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}})
        ))
        .is_err());
        let e = validate(&hc(
            json!({"RestartPolicy": {"Name": "always"}, "AutoRemove": true}),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("'AutoRemove'"), "{e}");
    }
}
