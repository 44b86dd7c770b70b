//! `/volumes...`: list, create, inspect, remove, prune (docker's local driver only), over the engine's volume
//! store. Volume operations walk and delete directories, so they run in `spawn_blocking`.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::{query, Engine};
use serde_json::{json, Value};

use crate::error::{parse_json, ApiError};
use crate::{qbool, AppState};

type Q = Query<HashMap<String, String>>;

async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = state.clone();
    tokio::task::spawn_blocking(move || f(&engine))
        .await
        .map_err(ApiError::internal)?
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

/// `GET /volumes?filters=`.
pub async fn list(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = query::parse_filters(q.get("filters").map(String::as_str))?;
    let vols = blocking(&state, move |e| Ok(e.volume_list(&filters)?)).await?;
    Ok(Json(json!({"Volumes": vols, "Warnings": []})))
}

/// `POST /volumes/create`.
pub async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req = parse_json(&body)?;
    let name = req["Name"].as_str().unwrap_or("").to_string();
    let driver = req["Driver"].as_str().unwrap_or("").to_string();
    let labels = string_map(&req["Labels"]);
    let opts = string_map(&req["DriverOpts"]);
    let v = blocking(&state, move |e| {
        Ok(e.volume_create(&name, &driver, labels, opts)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `GET /volumes/{name}`.
pub async fn inspect(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        blocking(&state, move |e| Ok(e.volume_inspect(&name)?)).await?,
    ))
}

/// `DELETE /volumes/{name}?force=`.
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let force = qbool(q.get("force"));
    blocking(&state, move |e| Ok(e.volume_remove(&name, force)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune?filters=`: unused anonymous volumes (all unused ones with `all=true`).
pub async fn prune(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = query::parse_filters(q.get("filters").map(String::as_str))?;
    let (names, space) = blocking(&state, move |e| Ok(e.volume_prune(&filters)?)).await?;
    Ok(Json(json!({
        "VolumesDeleted": if names.is_empty() { Value::Null } else { json!(names) },
        "SpaceReclaimed": space,
    })))
}
