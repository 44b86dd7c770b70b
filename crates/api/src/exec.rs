//! `/containers/{id}/exec`, `/exec/{id}/start` (hijacked like attach: the client's input goes to the process'
//! stdin, watched for the detach keys with a TTY), `/exec/{id}/resize` and `/exec/{id}/json`.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::error::{parse_json, ApiError};
use crate::AppState;

/// `POST /containers/{id}/exec`.
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cfg = parse_json(&body)?;
    if !cfg.is_object() {
        return Err(ApiError::bad("exec config must be a JSON object"));
    }
    crate::streams::detach_keys(cfg["DetachKeys"].as_str().map(String::from).as_ref())?;
    let exec_id = state.exec_create(&id, cfg)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

/// `GET /exec/{id}/json`.
pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = state.exec_inspect(&id)?;
    let cmd: Vec<Value> = r.config["Cmd"].as_array().cloned().unwrap_or_default();
    Ok(Json(json!({
        "ID": r.id,
        "Running": r.running,
        "ExitCode": r.exit_code,
        "ProcessConfig": {
            "tty": r.config["Tty"].as_bool().unwrap_or(false),
            "entrypoint": cmd.first(),
            "arguments": cmd.iter().skip(1).collect::<Vec<_>>(),
            "privileged": r.config["Privileged"].as_bool().unwrap_or(false),
            "user": r.config["User"].as_str().unwrap_or(""),
        },
        "OpenStdin": r.config["AttachStdin"].as_bool().unwrap_or(false),
        "OpenStderr": r.config["AttachStderr"].as_bool().unwrap_or(false),
        "OpenStdout": r.config["AttachStdout"].as_bool().unwrap_or(false),
        "CanRemove": false,
        "ContainerID": r.container_id,
        "DetachKeys": r.config["DetachKeys"].as_str().unwrap_or(""),
        "Pid": r.process_pid(),
    })))
}

/// `POST /exec/{id}/start` with `{"Detach": bool, "Tty": bool}`.
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    let on_upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let opts = parse_json(&body)?;
    let rec = state.exec_inspect(&id)?;
    if rec.started {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("exec {id} has already been started"),
        });
    }
    let c = state.get(&rec.container_id)?;
    if !c.state.running {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("container {} is not running", c.id),
        });
    }
    let console_size = opts.get("ConsoleSize").cloned();
    if opts["Detach"].as_bool().unwrap_or(false) {
        let engine = state.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.exec_start(&id, console_size, None, None).await {
                log::warn!("exec {id}: {e}");
            }
        });
        return Ok(StatusCode::OK.into_response());
    }
    let tty = rec.config["Tty"].as_bool().unwrap_or(false);
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let engine = state.clone();
    let exec_id = id.clone();
    match (wants_upgrade, on_upgrade) {
        (true, Some(on_upgrade)) => {
            let keys = crate::streams::detach_keys(
                rec.config["DetachKeys"].as_str().map(String::from).as_ref(),
            )?;
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let (rd, mut io) = tokio::io::split(TokioIo::new(upgraded));
                // The process reads a pipe fed from the connection; only a TTY exec watches for detach keys.
                let (stdin_w, stdin_r) = tokio::io::duplex(64 * 1024);
                let escape = tty.then(|| berth_engine::tty::EscapeProxy::new(keys));
                let (detach_tx, mut detached) = oneshot::channel::<()>();
                tokio::spawn(async move {
                    if crate::streams::pump_input(rd, stdin_w, escape).await {
                        let _ = detach_tx.send(());
                    }
                });
                tokio::spawn(async move {
                    let stdin: Box<dyn tokio::io::AsyncRead + Send + Unpin> = Box::new(stdin_r);
                    if let Err(e) = engine
                        .exec_start(&exec_id, console_size, Some(tx), Some(stdin))
                        .await
                    {
                        log::warn!("exec {exec_id}: {e}");
                    }
                });
                let mut input_over = false;
                loop {
                    let b = tokio::select! {
                        b = rx.recv() => b,
                        r = &mut detached, if !input_over => {
                            input_over = true;
                            // Detached: end the session, the process keeps running.
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
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "tcp")
                .header(header::CONTENT_TYPE, ct)
                .body(Body::empty())
                .map_err(ApiError::internal)
        }
        _ => {
            tokio::spawn(async move {
                if let Err(e) = engine
                    .exec_start(&exec_id, console_size, Some(tx), None)
                    .await
                {
                    log::warn!("exec {exec_id}: {e}");
                }
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, std::convert::Infallible>(Bytes::from(b)), rx))
            });
            Ok(([(header::CONTENT_TYPE, ct)], Body::from_stream(stream)).into_response())
        }
    }
}

/// `POST /exec/{id}/resize?h=&w=`: sets a TTY exec's window size.
pub async fn resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let dim = |k: &str| -> Result<u16, ApiError> {
        let v = q.get(k).map(String::as_str).unwrap_or("0");
        v.parse::<u16>()
            .map_err(|_| ApiError::bad(format!("invalid value for {k}: {v}")))
    };
    state.exec_resize(&id, dim("h")?, dim("w")?)?;
    Ok(StatusCode::OK)
}
