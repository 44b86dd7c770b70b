//! `GET /containers/{id}/stats` (one sample, or a stream of one per second, with `precpu_stats` from the
//! previous sample as docker sends them) and `GET /containers/{id}/top`.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::error::ApiError;
use crate::{qbool, AppState};

type Q = Query<HashMap<String, String>>;

/// docker's sampling interval.
const INTERVAL: Duration = Duration::from_secs(1);

/// Fills `precpu_stats`/`preread` of `cur` from `prev`.
fn chain(mut cur: Value, prev: Option<&Value>) -> Value {
    if let Some(p) = prev {
        if !p["cpu_stats"].is_null() {
            cur["precpu_stats"] = p["cpu_stats"].clone();
        }
        cur["preread"] = p["read"].clone();
    }
    cur
}

fn running(v: &Value) -> bool {
    v["read"] != berth_engine::record::ZERO_TIME
}

/// `GET /containers/{id}/stats?stream=&one-shot=`.
pub async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let stream = q.get("stream").is_none_or(|_| qbool(q.get("stream")));
    let one_shot = qbool(q.get("one-shot"));
    let first = state.stats_sample(&id)?;
    if !stream {
        let v = if one_shot || !running(&first) {
            first
        } else {
            tokio::time::sleep(INTERVAL).await;
            chain(state.stats_sample(&id)?, Some(&first))
        };
        return Ok(Json(v).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut prev: Option<Value> = None;
        let mut cur = first;
        loop {
            let live = running(&cur);
            let v = chain(cur, prev.as_ref());
            if tx.send(format!("{v}\n").into()).await.is_err() || !live {
                return;
            }
            prev = Some(v);
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = tx.closed() => return,
            }
            cur = match state.stats_sample(&id) {
                Ok(s) => s,
                Err(_) => return,
            };
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let args = q.get("ps_args").cloned().unwrap_or_default();
    let v = tokio::task::spawn_blocking(move || state.top(&id, &args))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(v))
}
