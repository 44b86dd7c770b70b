//! Healthchecks (`Config.Healthcheck` from the image or `--health-*`): while a run lasts, berthd runs the probe
//! through the ordinary exec path every Interval (StartInterval during StartPeriod) and keeps docker's
//! `State.Health` {Status: starting|healthy|unhealthy, FailingStreak, Log: the last 5 results}. A status change
//! is a `health_status: <status>` event; ps shows it in STATUS and filters on it (see [`crate::query`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{Engine, EngineError, Result};
use crate::record::now_rfc3339;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// docker keeps this many results in `Health.Log`...
const MAX_LOG: usize = 5;
/// ...and this much of each probe's output.
const MAX_OUTPUT: usize = 4096;

/// A container's effective healthcheck.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The probe's argv (CMD-SHELL already wrapped in `/bin/sh -c`).
    pub argv: Vec<String>,
    /// Between probes.
    pub interval: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// Failures in this window after the start do not count.
    pub start_period: Duration,
    /// Between probes during the start period.
    pub start_interval: Duration,
    /// Consecutive failures that make it unhealthy.
    pub retries: i64,
}

fn dur(v: &Value, default: Duration) -> Duration {
    match v.as_i64() {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

impl Check {
    /// The healthcheck of a container Config; None without one or with `NONE`.
    pub fn of(config: &Value) -> Option<Self> {
        let hc = &config["Healthcheck"];
        let test: Vec<String> = hc["Test"]
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let argv = match test.first().map(String::as_str) {
            Some("CMD") if test.len() > 1 => test[1..].to_vec(),
            Some("CMD-SHELL") if test.len() > 1 => {
                vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]
            }
            _ => return None,
        };
        Some(Self {
            argv,
            interval: dur(&hc["Interval"], DEFAULT_INTERVAL),
            timeout: dur(&hc["Timeout"], DEFAULT_TIMEOUT),
            start_period: dur(&hc["StartPeriod"], Duration::ZERO),
            start_interval: dur(&hc["StartInterval"], DEFAULT_START_INTERVAL),
            retries: match hc["Retries"].as_i64() {
                Some(n) if n > 0 => n,
                _ => DEFAULT_RETRIES,
            },
        })
    }
}

/// docker's create-time merge: the image's healthcheck fills what the request leaves out.
pub fn merge(config: &mut Value, image: &Value) {
    let img = &image["Healthcheck"];
    if !img.is_object() {
        return;
    }
    if !config["Healthcheck"].is_object() {
        config["Healthcheck"] = img.clone();
        return;
    }
    let hc = &mut config["Healthcheck"];
    if hc["Test"].as_array().is_none_or(|t| t.is_empty()) {
        hc["Test"] = img["Test"].clone();
    }
    for k in [
        "Interval",
        "Timeout",
        "StartPeriod",
        "StartInterval",
        "Retries",
    ] {
        if hc[k].as_i64().unwrap_or(0) == 0 && !img[k].is_null() {
            hc[k] = img[k].clone();
        }
    }
}

/// dockerd's checks of a Healthcheck at create (400 on failure).
pub fn validate(config: &Value) -> Result<()> {
    let hc = &config["Healthcheck"];
    if !hc.is_object() {
        return Ok(());
    }
    let bad = |m: &str| Err(EngineError::InvalidParameter(m.into()));
    for (k, name) in [
        ("Interval", "Interval"),
        ("Timeout", "Timeout"),
        ("StartPeriod", "StartPeriod"),
        ("StartInterval", "StartInterval"),
    ] {
        let n = hc[k].as_i64().unwrap_or(0);
        if n != 0 && n < 1_000_000 {
            return bad(&format!("{name} in Healthcheck cannot be less than 1ms"));
        }
    }
    if hc["Retries"].as_i64().unwrap_or(0) < 0 {
        return bad("Retries in Healthcheck cannot be negative");
    }
    Ok(())
}

/// One probe's result, a `Health.Log` entry.
fn log_entry(start: &str, exit_code: i64, output: &str) -> Value {
    json!({"Start": start, "End": now_rfc3339(), "ExitCode": exit_code, "Output": output})
}

/// docker's `handleProbeResult`: the new Health after `entry`, given the container's start time.
pub fn apply_result(health: &mut Value, entry: Value, check: &Check, since_start: Duration) {
    let old = health["Status"].as_str().unwrap_or("starting").to_string();
    let mut log: Vec<Value> = health["Log"].as_array().cloned().unwrap_or_default();
    let ok = entry["ExitCode"].as_i64() == Some(0);
    log.push(entry);
    if log.len() > MAX_LOG {
        log.drain(..log.len() - MAX_LOG);
    }
    health["Log"] = json!(log);
    let streak = health["FailingStreak"].as_i64().unwrap_or(0);
    if ok {
        health["FailingStreak"] = json!(0);
        health["Status"] = json!("healthy");
    } else if !(old == "starting" && since_start < check.start_period) {
        // Failures during the start period do not count until a probe has succeeded.
        health["FailingStreak"] = json!(streak + 1);
        if streak + 1 >= check.retries {
            health["Status"] = json!("unhealthy");
        }
    }
}

/// Kills an exec helper that ran past its timeout, and what it started (the probe itself).
fn kill_tree(pid: i32) {
    if pid <= 0 {
        return;
    }
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for c in children
        .split_whitespace()
        .filter_map(|c| c.parse::<i32>().ok())
    {
        kill_tree(c);
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

impl Engine {
    /// Starts the healthcheck loop for the container's current run (status `starting`).
    pub(super) fn health_begin(self: &Arc<Self>, id: &str) {
        self.health_loop(id, true);
    }

    /// After a berthd restart: resumes the loop of a running container, keeping its status.
    pub(super) fn health_resume(self: &Arc<Self>, id: &str) {
        self.health_loop(id, false);
    }

    fn health_loop(self: &Arc<Self>, id: &str, reset: bool) {
        let Ok(c) = self.get(id) else {
            return;
        };
        let Some(check) = Check::of(&c.config) else {
            return;
        };
        if !c.state.running {
            return;
        }
        let run = c.exits;
        if reset || c.state.health.is_none() {
            let _ = self.update(id, |c| {
                let log = c
                    .state
                    .health
                    .as_ref()
                    .map(|h| h["Log"].clone())
                    .filter(|l| l.is_array())
                    .unwrap_or_else(|| json!([]));
                c.state.health =
                    Some(json!({"Status": "starting", "FailingStreak": 0, "Log": log}));
            });
        }
        let engine = Arc::clone(self);
        let id = id.to_string();
        let started = Instant::now();
        tokio::spawn(async move {
            loop {
                let starting = engine
                    .get(&id)
                    .ok()
                    .and_then(|c| c.state.health.map(|h| h["Status"] == "starting"))
                    .unwrap_or(false);
                let wait = if starting
                    && !check.start_period.is_zero()
                    && started.elapsed() < check.start_period
                {
                    check.start_interval
                } else {
                    check.interval
                };
                tokio::time::sleep(wait).await;
                match engine.get(&id) {
                    Ok(c) if c.state.running && c.exits == run => {}
                    _ => return,
                }
                let entry = engine.probe(&id, &check).await;
                let mut changed = None;
                let res = engine.update(&id, |c| {
                    if !c.state.running || c.exits != run {
                        return;
                    }
                    let since_start = chrono::DateTime::parse_from_rfc3339(&c.state.started_at)
                        .ok()
                        .and_then(|t| {
                            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                                .to_std()
                                .ok()
                        })
                        .unwrap_or_default();
                    let h = c.state.health.get_or_insert_with(
                        || json!({"Status": "starting", "FailingStreak": 0, "Log": []}),
                    );
                    let old = h["Status"].clone();
                    apply_result(h, entry, &check, since_start);
                    if h["Status"] != old {
                        changed = h["Status"].as_str().map(String::from);
                    }
                });
                match res {
                    Ok(c) => {
                        if let Some(s) = changed {
                            engine.container_event(&c, &format!("health_status: {s}"), json!({}));
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    }

    /// Runs the probe once through the exec path; returns its `Health.Log` entry.
    async fn probe(self: &Arc<Self>, id: &str, check: &Check) -> Value {
        let start = now_rfc3339();
        let exec_id = match self.exec_create(
            id,
            json!({"Cmd": check.argv, "AttachStdout": true, "AttachStderr": true, "Tty": false}),
        ) {
            Ok(e) => e,
            Err(e) => return log_entry(&start, -1, &e.to_string()),
        };
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
        let collect = tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some(frame) = rx.recv().await {
                // Each message is one multiplexed frame: an 8-byte header, then the data.
                if out.len() < MAX_OUTPUT && frame.len() > 8 {
                    out.extend_from_slice(&frame[8..]);
                }
            }
            out.truncate(MAX_OUTPUT);
            String::from_utf8_lossy(&out).into_owned()
        });
        let run = tokio::time::timeout(
            check.timeout,
            self.exec_start(&exec_id, None, Some(tx), None),
        )
        .await;
        let entry = match run {
            Ok(Ok(())) => {
                let output = collect.await.unwrap_or_default();
                let code = self
                    .exec_inspect(&exec_id)
                    .ok()
                    .and_then(|r| r.exit_code)
                    .unwrap_or(-1);
                log_entry(&start, code as i64, &output)
            }
            Ok(Err(e)) => log_entry(&start, -1, &e.to_string()),
            Err(_) => {
                if let Ok(r) = self.exec_inspect(&exec_id) {
                    kill_tree(r.pid);
                }
                log_entry(
                    &start,
                    -1,
                    &format!(
                        "Health check exceeded timeout ({}s)",
                        check.timeout.as_secs_f64()
                    ),
                )
            }
        };
        // Probes are not user execs: do not let them pile up in the exec table.
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&exec_id);
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_defaults() {
        let c = Check::of(&json!({"Healthcheck": {"Test": ["CMD-SHELL", "curl -f x"], "Interval": 2_000_000_000i64}})).unwrap();
        assert_eq!(c.argv, ["/bin/sh", "-c", "curl -f x"]);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.retries, 3);
        assert!(Check::of(&json!({"Healthcheck": {"Test": ["NONE"]}})).is_none());
        assert!(Check::of(&json!({})).is_none());
        assert_eq!(
            Check::of(&json!({"Healthcheck": {"Test": ["CMD", "true", "x"]}}))
                .unwrap()
                .argv,
            ["true", "x"]
        );
    }

    #[test]
    fn merge_and_validate() {
        let img = json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5, "Retries": 4}});
        let mut c = json!({});
        merge(&mut c, &img);
        assert_eq!(c["Healthcheck"]["Test"], json!(["CMD", "true"]));
        let mut c = json!({"Healthcheck": {"Interval": 9}});
        merge(&mut c, &img);
        assert_eq!(c["Healthcheck"]["Test"], json!(["CMD", "true"]));
        assert_eq!(c["Healthcheck"]["Interval"], 9);
        assert_eq!(c["Healthcheck"]["Retries"], 4);
        assert!(validate(&json!({"Healthcheck": {"Interval": 5}})).is_err());
        assert!(validate(&json!({"Healthcheck": {"Retries": -1}})).is_err());
        assert!(validate(&json!({"Healthcheck": {"Interval": 1_000_000}})).is_ok());
    }

    #[test]
    fn results() {
        let check = Check::of(&json!({"Healthcheck": {"Test": ["CMD", "x"], "Retries": 2, "StartPeriod": 10_000_000_000i64}})).unwrap();
        let mut h = json!({"Status": "starting", "FailingStreak": 0, "Log": []});
        let fail = || log_entry("t", 1, "no");
        // In the start period failures do not count.
        apply_result(&mut h, fail(), &check, Duration::from_secs(1));
        assert_eq!(
            (h["Status"].as_str(), h["FailingStreak"].as_i64()),
            (Some("starting"), Some(0))
        );
        apply_result(&mut h, fail(), &check, Duration::from_secs(11));
        assert_eq!(h["Status"], "starting");
        apply_result(&mut h, fail(), &check, Duration::from_secs(12));
        assert_eq!(
            (h["Status"].as_str(), h["FailingStreak"].as_i64()),
            (Some("unhealthy"), Some(2))
        );
        apply_result(
            &mut h,
            log_entry("t", 0, "ok"),
            &check,
            Duration::from_secs(13),
        );
        assert_eq!(
            (h["Status"].as_str(), h["FailingStreak"].as_i64()),
            (Some("healthy"), Some(0))
        );
        for _ in 0..10 {
            apply_result(&mut h, fail(), &check, Duration::from_secs(20));
        }
        assert_eq!(h["Log"].as_array().unwrap().len(), MAX_LOG);
    }
}
