//! `POST /build`: the classic builder (what `DOCKER_BUILDKIT=0 docker build` and `berth build` use). The body is
//! the build context as a (possibly compressed) tar, or a bare Dockerfile; it is unpacked under
//! `<data-root>/tmp/`, and the build runs on a blocking thread over the engine's
//! [`berth_engine::build::EngineBackend`], streaming docker's JSON lines: `{"stream":"Step 1/3 : ...\n"}`, then
//! `{"aux":{"ID":"sha256:..."}}`; a failure is `{"errorDetail":{"code":N,"message":...},"error":...}` (N = the
//! failing RUN's exit code). A failure before any output (a malformed Dockerfile, bad parameters) is an HTTP
//! error instead, like dockerd: the CLI prints `Error response from daemon: ...`.

use std::convert::Infallible;
use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_build::driver::{BuildError, Builder};
use berth_engine::build::EngineBackend;
use serde_json::json;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::AppState;

/// One message from the build thread: a JSON line, or the failure (HTTP status, message, exit code).
type Msg = Result<Bytes, (StatusCode, String, Option<i64>)>;

fn line(v: serde_json::Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
}

/// Turns the builder's text output into `{"stream": ...}` lines, never splitting a UTF-8 sequence.
struct StreamWriter {
    tx: mpsc::Sender<Msg>,
    pending: Vec<u8>,
}

impl Write for StreamWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            // An incomplete sequence at the end waits for the next write; invalid bytes go out replaced.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        if valid > 0 {
            let chunk: Vec<u8> = self.pending.drain(..valid).collect();
            let text = String::from_utf8_lossy(&chunk).into_owned();
            self.tx
                .blocking_send(Ok(line(json!({ "stream": text }))))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn status_of(e: &BuildError) -> StatusCode {
    match e {
        BuildError::Parse(_)
        | BuildError::Instruction(_)
        | BuildError::Step { .. }
        | BuildError::NoDockerfile(_)
        | BuildError::NoTarget(_)
        | BuildError::Context(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `POST /build`.
pub async fn build(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some((_, r)) = q.iter().find(|(k, v)| k == "remote" && !v.is_empty()) {
        return Err(ApiError::bad(format!(
            "remote build contexts ({r}) are not supported: berth builds offline; send the context instead"
        )));
    }
    let data = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let work = state
        .cfg
        .data_root
        .join("tmp")
        .join(format!("build-{}", berth_engine::names::new_id()));
    let ctx = work.join("context");
    // Parameters are checked before anything is unpacked.
    let mut opts =
        berth_build::options::from_query(&q, &ctx).map_err(|e| ApiError::bad(e.to_string()))?;
    // `Successfully tagged busybox-app:latest`, as docker prints it.
    for t in &mut opts.tags {
        *t = berth_engine::images::normalize(t)
            .map_err(|_| ApiError::bad(format!("invalid reference format: {t}")))?;
    }
    let (tx, mut rx) = mpsc::channel::<Msg>(256);
    let engine = state.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let unpacked = berth_build::context::context_from_stream(io::Cursor::new(data), &ctx);
        let result = match unpacked {
            Err(e) => Err((
                StatusCode::BAD_REQUEST,
                format!("failed to read the build context: {e}"),
                None,
            )),
            Ok(_) => {
                let mut backend = EngineBackend::new(engine, rt);
                backend.keep_failed = !opts.rm && !opts.force_rm;
                let mut out = StreamWriter {
                    tx: tx.clone(),
                    pending: Vec::new(),
                };
                let r = Builder::build(&opts, &mut backend, &mut out);
                drop(backend);
                match r {
                    Ok(res) => Ok(res.image_id),
                    Err(e) => {
                        let code = match &e {
                            BuildError::NonZero { code, .. } => Some(*code),
                            _ => None,
                        };
                        Err((status_of(&e), e.to_string(), code))
                    }
                }
            }
        };
        if let Err(e) = std::fs::remove_dir_all(&work) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("build: removing {}: {e}", work.display());
            }
        }
        let _ = match result {
            Ok(id) => tx.blocking_send(Ok(line(json!({"aux": {"ID": id}})))),
            Err(e) => tx.blocking_send(Err(e)),
        };
    });
    // A failure before the first line is an HTTP error; after it, an error line in the stream.
    let first = match rx.recv().await {
        Some(Ok(b)) => b,
        Some(Err((status, message, _))) => return Err(ApiError { status, message }),
        None => return Err(ApiError::internal("build ended without output")),
    };
    let stream = futures_util::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        if let Some(b) = first {
            return Some((Ok::<_, Infallible>(b), (None, rx)));
        }
        let b = match rx.recv().await? {
            Ok(b) => b,
            Err((_, msg, code)) => {
                let mut detail = json!({ "message": msg });
                if let Some(c) = code {
                    detail["code"] = json!(c);
                }
                line(json!({"errorDetail": detail, "error": msg}))
            }
        };
        Some((Ok(b), (None, rx)))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}
