//! `HEAD/GET/PUT /containers/{id}/archive?path=`: `docker cp` both ways. The engine's blocking tar walker and
//! extractor run on the blocking pool; bytes cross to and from the async body through bounded channels.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use berth_engine::archive::{ArchiveError, ExtractOptions, PathStat};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::{qbool, AppState};

type Q = Query<HashMap<String, String>>;

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> Self {
        Self {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: e.to_string(),
        }
    }
}

fn stat_header(s: &PathStat) -> HeaderValue {
    let json = serde_json::to_vec(s).unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&b64).unwrap_or(HeaderValue::from_static(""))
}

fn path_param(q: &HashMap<String, String>) -> Result<String, ApiError> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad("path is required"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

/// `HEAD /containers/{id}/archive`.
pub async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let stat = blocking(move || state.archive_stat(&id, &path)).await?;
    Ok((
        [("X-Docker-Container-Path-Stat", stat_header(&stat))],
        StatusCode::OK,
    )
        .into_response())
}

/// Sends what the tar writer produces to the response body.
struct ChanWriter(mpsc::Sender<Bytes>);

impl Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `GET /containers/{id}/archive`: a tar of the path, with its stat in the header.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let (stat, writer) = blocking(move || state.archive_get(&id, &path)).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::task::spawn_blocking(move || {
        let mut w = io::BufWriter::with_capacity(64 * 1024, ChanWriter(tx));
        if let Err(e) = writer(&mut w).and_then(|_| w.flush()) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                log::warn!("archive: {e}");
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            ),
            (
                header::HeaderName::from_static("x-docker-container-path-stat"),
                stat_header(&stat),
            ),
        ],
        body,
    )
        .into_response())
}

/// Reads the request body on a blocking thread.
struct ChanReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// `PUT /containers/{id}/archive`: extracts the tar body into the directory `path`.
pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Body,
) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: qbool(q.get("noOverwriteDirNonDir")),
        copy_uid_gid: qbool(q.get("copyUIDGID")),
    };
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    tokio::spawn(async move {
        let mut s = body.into_data_stream();
        while let Some(chunk) = s.next().await {
            let item = chunk.map_err(io::Error::other);
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    let reader = ChanReader {
        rx,
        cur: Bytes::new(),
    };
    blocking(move || state.archive_put(&id, &path, reader, opts)).await?;
    Ok(StatusCode::OK.into_response())
}
