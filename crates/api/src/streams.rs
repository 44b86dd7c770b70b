//! Output streams: `GET /containers/{id}/logs` and the hijacked `POST /containers/{id}/attach`.
//!
//! Both read the container's json-file log: attach follows it from where it ends at attach time, until the run
//! that was (or is about to be) started ends. Stdin goes to the monitor's fifo; with a TTY the input is watched
//! for the detach keys (`detachKeys`, default ctrl-p ctrl-q), which end the attach and leave the container running.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_engine::logs::{self, Entry};
use berth_engine::Engine;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::logwatch::{self, LogWatch};
use crate::{qbool, AppState};

/// What to emit from each log entry.
#[derive(Debug, Clone, Copy)]
struct Fmt {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    tty: bool,
}

impl Fmt {
    fn encode(&self, e: &Entry) -> Option<Bytes> {
        let stream = if e.stream == "stderr" { 2 } else { 1 };
        if (stream == 1 && !self.stdout) || (stream == 2 && !self.stderr) {
            return None;
        }
        let payload = if self.timestamps {
            format!("{} {}", e.time, e.log)
        } else {
            e.log.clone()
        };
        Some(if self.tty {
            Bytes::from(payload)
        } else {
            Bytes::from(logs::frame(stream, payload.as_bytes()))
        })
    }
}

fn body_from(rx: mpsc::Receiver<Bytes>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }))
}

/// Follows the log file from `offset`, sending entries until the container has finished more than
/// `base_exits` runs (or is removed) and the file is drained; with `across_restarts` (`logs -f`), until it is
/// down for good (not running, not waiting for a restart policy). Returns when the receiver goes away too.
#[allow(clippy::too_many_arguments)]
async fn follow(
    engine: Arc<Engine>,
    id: String,
    path: PathBuf,
    mut offset: u64,
    base_exits: u64,
    fmt: Fmt,
    tx: mpsc::Sender<Bytes>,
    across_restarts: bool,
) {
    let mut rx = engine.subscribe();
    // Set up before the first read, so that no write between that read and the wait goes unseen.
    let mut watch = path.parent().and_then(LogWatch::new);
    // `--rm` deletes the container directory right after the exit; an open fd keeps the log readable through
    // /proc/self/fd, so the last lines still reach the client.
    // The monitor opens the log at start, which may come after this attach: create it here (the monitor appends
    // to the same file), so that a container that runs and is removed between two polls is still read in full.
    let mut held: Option<std::fs::File> = if path.parent().is_some_and(|d| d.is_dir()) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .ok()
    } else {
        None
    };
    loop {
        if held.is_none() {
            held = std::fs::File::open(&path).ok();
        }
        let finished = match engine.get(&id) {
            Ok(c) if across_restarts => {
                !c.state.running && !c.state.restarting && c.monitor_pid == 0
            }
            Ok(c) => c.exits > base_exits && !c.state.running,
            Err(_) => true,
        };
        let fd_path = held.as_ref().map(|f| {
            PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(f)
            ))
        });
        let read_path = match &fd_path {
            Some(p) if !path.exists() => p,
            _ => &path,
        };
        let (entries, next) = logs::read_from(read_path, offset);
        offset = next;
        for e in &entries {
            if let Some(b) = fmt.encode(e) {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        if finished {
            // End the stream first: closing an inotify instance waits for an RCU grace period (several ms),
            // which would hold back the client's EOF (`run` returns on it) and block this worker thread.
            drop(tx);
            if let Some(w) = watch.take() {
                tokio::task::spawn_blocking(move || drop(w));
            }
            return;
        }
        if tx.is_closed() {
            return;
        }
        // Wake on a state change or on a write to the log (inotify), else poll the file for new output.
        if watch.is_none() {
            watch = path.parent().and_then(LogWatch::new);
        }
        match &watch {
            Some(w) => {
                tokio::select! {
                    _ = rx.changed() => {}
                    _ = w.changed() => {}
                }
            }
            None => {
                let _ = tokio::time::timeout(logwatch::POLL, rx.changed()).await;
            }
        }
    }
}

fn parse_since(v: Option<&String>) -> Result<Option<f64>, ApiError> {
    match v.filter(|s| !s.is_empty() && *s != "0") {
        None => Ok(None),
        Some(s) => s
            .parse::<f64>()
            .map(Some)
            .map_err(|_| ApiError::bad(format!("invalid value for since: {s}"))),
    }
}

fn entry_time(e: &Entry) -> f64 {
    chrono::DateTime::parse_from_rfc3339(&e.time)
        .map(|t| t.timestamp() as f64 + t.timestamp_subsec_nanos() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// `GET /containers/{id}/logs`.
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let c = state.get(&id)?;
    let fmt = Fmt {
        stdout: qbool(q.get("stdout")),
        stderr: qbool(q.get("stderr")),
        timestamps: qbool(q.get("timestamps")),
        tty: c.config["Tty"].as_bool().unwrap_or(false),
    };
    if !fmt.stdout && !fmt.stderr {
        return Err(ApiError::bad(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let since = parse_since(q.get("since"))?;
    let until = parse_since(q.get("until"))?;
    let tail: Option<usize> = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| ApiError::bad(format!("invalid value for tail: {t}")))?
                .max(0) as usize,
        ),
    };
    let path = PathBuf::from(&c.log_path);
    // Where following picks up: the end of what we read now.
    let offset = logs::current_offset(&path);
    let mut entries: Vec<Entry> = logs::read_all(&path)
        .into_iter()
        .filter(|e| (e.stream == "stderr" && fmt.stderr) || (e.stream != "stderr" && fmt.stdout))
        .filter(|e| {
            since.is_none_or(|s| entry_time(e) >= s) && until.is_none_or(|u| entry_time(e) <= u)
        })
        .collect();
    if let Some(n) = tail {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    let (tx, rx) = mpsc::channel(64);
    let follow_on =
        qbool(q.get("follow")) && (c.state.running || c.monitor_pid != 0 || c.state.restarting);
    let engine = state.clone();
    tokio::spawn(async move {
        for e in &entries {
            if let Some(b) = fmt.encode(e) {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        if follow_on {
            follow(engine, c.id.clone(), path, offset, c.exits, fmt, tx, true).await;
        }
    });
    let ct = if fmt.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(([(header::CONTENT_TYPE, ct)], body_from(rx)).into_response())
}

/// Copies the client's input to `to`, through `escape` when given (a TTY attach); returns true when the client
/// typed the detach keys, false at its EOF or on an error.
pub(crate) async fn pump_input(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    mut escape: Option<berth_engine::tty::EscapeProxy>,
) -> bool {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let (data, detached) = match escape.as_mut() {
            Some(e) => e.feed(&buf[..n]),
            None => (buf[..n].to_vec(), false),
        };
        if !data.is_empty() && (to.write_all(&data).await.is_err() || to.flush().await.is_err()) {
            return false;
        }
        if detached {
            return true;
        }
    }
}

/// The detach keys of an attach request (`detachKeys`), or docker's 400 for a bad spec.
pub(crate) fn detach_keys(spec: Option<&String>) -> Result<Vec<u8>, ApiError> {
    berth_engine::tty::parse_detach_keys(spec.map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad(e.to_string()))
}

/// Copies what the client sends into the container's stdin fifo (the monitor feeds it to the container). The
/// fifo exists once the monitor runs, so opening is retried until then, or until that run is over. A detach
/// (with a TTY) is reported on `detached`.
async fn feed_stdin(
    engine: Arc<Engine>,
    id: String,
    base_exits: u64,
    fifo: PathBuf,
    rd: impl tokio::io::AsyncRead + Unpin,
    escape: Option<berth_engine::tty::EscapeProxy>,
    detached: oneshot::Sender<()>,
) {
    let mut rx = engine.subscribe();
    let sender = loop {
        match tokio::net::unix::pipe::OpenOptions::new().open_sender(&fifo) {
            Ok(s) => break s,
            Err(_) => {
                let over = engine
                    .get(&id)
                    .map(|c| c.exits > base_exits && !c.state.running)
                    .unwrap_or(true);
                if over {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await;
            }
        }
    };
    // EOF from the client (its half-close) drops the sender, which the monitor sees as end of input.
    if pump_input(rd, sender, escape).await {
        let _ = detached.send(());
    }
}

/// `POST /containers/{id}/attach?stream=1&stdout=1&stderr=1`: upgrades the connection (`Upgrade: tcp`) and
/// streams the output of the current or next run.
pub async fn attach(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let c = state.get(&id)?;
    let tty = c.config["Tty"].as_bool().unwrap_or(false);
    let keys = detach_keys(q.get("detachKeys"))?;
    let fmt = Fmt {
        stdout: qbool(q.get("stdout")),
        stderr: qbool(q.get("stderr")),
        timestamps: false,
        tty,
    };
    let stream = qbool(q.get("stream"));
    let path = PathBuf::from(&c.log_path);
    let offset = logs::current_offset(&path);
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    if stream {
        let engine = state.clone();
        let (cid, exits) = (c.id.clone(), c.exits);
        tokio::spawn(follow(engine, cid, path, offset, exits, fmt, tx, false));
    } else {
        drop(tx);
    }
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    let on_upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let stdin_fifo = (qbool(q.get("stdin")) && c.config["OpenStdin"].as_bool().unwrap_or(false))
        .then(|| {
            berth_engine::record::Container::dir(&state.cfg.data_root, &c.id)
                .join(berth_engine::monitor::STDIN_FIFO)
        });
    match (wants_upgrade, on_upgrade) {
        (true, Some(on_upgrade)) => {
            let engine = state.clone();
            let (cid, exits) = (c.id.clone(), c.exits);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let (rd, mut io) = tokio::io::split(TokioIo::new(upgraded));
                let (detach_tx, mut detached) = oneshot::channel();
                if let Some(fifo) = stdin_fifo {
                    // Like dockerd, only a TTY attach watches for the detach keys.
                    let escape = tty.then(|| berth_engine::tty::EscapeProxy::new(keys));
                    tokio::spawn(feed_stdin(engine, cid, exits, fifo, rd, escape, detach_tx));
                }
                let mut input_over = false;
                loop {
                    let b = tokio::select! {
                        b = rx.recv() => b,
                        r = &mut detached, if !input_over => {
                            input_over = true;
                            // Detached: end the attach now, the container keeps running.
                            if r.is_ok() { None } else { continue }
                        }
                    };
                    let Some(b) = b else { break };
                    if io.write_all(&b).await.is_err() {
                        return;
                    }
                    let _ = io.flush().await;
                }
                let _ = io.shutdown().await;
            });
            Ok(Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "tcp")
                .header(header::CONTENT_TYPE, ct)
                .body(Body::empty())
                .map_err(ApiError::internal)?)
        }
        _ => Ok(([(header::CONTENT_TYPE, ct)], body_from(rx)).into_response()),
    }
}
