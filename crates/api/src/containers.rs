//! `/containers/...`: create, start, stop, restart, kill, wait, remove, list, inspect, rename, prune.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::query::{self, status_text, unix_time};
use berth_engine::record::Container;
use serde_json::{json, Value};

use crate::error::{parse_json, ApiError};
use crate::{qbool, AppState};

type Q = Query<HashMap<String, String>>;

fn command_line(c: &Container) -> String {
    let mut v = vec![c.path.clone()];
    v.extend(c.args.iter().cloned());
    v.join(" ")
}

/// One entry of `GET /containers/json` (and of `/system/df`).
pub fn summary(state: &AppState, c: &Container, size: bool) -> Value {
    let mut v = json!({
        "Id": c.id,
        "Names": [c.name],
        "Image": c.config["Image"],
        "ImageID": c.image,
        "Command": command_line(c),
        "Created": unix_time(&c.created),
        "Ports": state.port_summary(c),
        "Labels": c.config["Labels"],
        "State": c.state.status,
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.host_config["NetworkMode"]},
        "NetworkSettings": {"Networks": state.network_settings(c)["Networks"]},
        "Mounts": state.mounts_json(c),
    });
    if size {
        let rw = state.rw_size(&c.id);
        let base = state.images.resolve(&c.image).map(|i| i.size).unwrap_or(0);
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(rw + base);
    }
    v
}

/// `GET /containers/json`.
pub async fn list(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = query::parse_filters(q.get("filters").map(String::as_str))?;
    query::check_filters(&filters, query::CONTAINER_FILTERS)?;
    let limit: i64 = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(-1);
    let all = qbool(q.get("all"))
        || limit > 0
        || filters.contains_key("status")
        || filters.contains_key("exited");
    let size = qbool(q.get("size"));
    let mut cs: Vec<Container> = state
        .all()
        .into_iter()
        // docker counts a container waiting for its restart policy as running.
        .filter(|c| all || c.state.running || c.state.restarting)
        .filter(|c| query::container_matches(c, &filters, &state.images))
        .collect();
    cs.sort_by(|a, b| b.created.cmp(&a.created));
    if limit > 0 {
        cs.truncate(limit as usize);
    }
    Ok(Json(json!(cs
        .iter()
        .map(|c| summary(&state, c, size))
        .collect::<Vec<_>>())))
}

/// `POST /containers/create?name=`.
pub async fn create(
    State(state): State<AppState>,
    Query(q): Q,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut req = parse_json(&body)?;
    if !req.is_object() {
        return Err(ApiError::bad(
            "config cannot be empty in order to create a container",
        ));
    }
    let hc = req
        .get_mut("HostConfig")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let endpoints = req
        .as_object_mut()
        .and_then(|o| o.remove("NetworkingConfig"))
        .map(|n| n["EndpointsConfig"].clone())
        .unwrap_or(Value::Null);
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        if !p.starts_with("linux") {
            return Err(ApiError::bad(format!("invalid platform: {p}")));
        }
    }
    let (id, warnings) = state.create(q.get("name").map(String::as_str), req, hc, endpoints)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": id, "Warnings": warnings})),
    )
        .into_response())
}

/// `POST /containers/{id}/start`.
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.start(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn opt_i64(q: &HashMap<String, String>, k: &str) -> Result<Option<i64>, ApiError> {
    q.get(k)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::bad(format!("invalid value for {k}: {v}")))
        })
        .transpose()
}

/// `POST /containers/{id}/stop?t=&signal=`.
pub async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let t = opt_i64(&q, "t")?;
    if let Some(s) = q.get("signal").filter(|s| !s.is_empty()) {
        berth_engine::engine::parse_signal(s)?;
    }
    state
        .stop(&id, t, q.get("signal").map(String::as_str))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/restart?t=&signal=`.
pub async fn restart(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let t = opt_i64(&q, "t")?;
    state
        .restart(&id, t, q.get("signal").map(String::as_str))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/kill?signal=`.
pub async fn kill(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let sig = q
        .get("signal")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    if let Some(s) = sig {
        berth_engine::engine::parse_signal(s)?;
    }
    state.kill(&id, sig)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/wait?condition=`: headers go out at once (the docker CLI waits for them before it
/// starts the container), the JSON body when the condition is met.
pub async fn wait(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let fut = state.wait(&id, q.get("condition").map(String::as_str).unwrap_or(""))?;
    let stream = futures_util::stream::once(async move {
        let (code, err) = fut.await;
        let err = err.map(|m| json!({"Message": m})).unwrap_or(Value::Null);
        Ok::<_, Infallible>(Bytes::from(format!(
            "{}\n",
            json!({"StatusCode": code, "Error": err})
        )))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `DELETE /containers/{id}?force=&v=`.
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    // The mounts are needed after the record is gone, for `v=1` (docker's `rm -v`: anonymous volumes).
    let mounts = state.get(&id).map(|c| c.mount_points).unwrap_or_default();
    state.remove(&id, qbool(q.get("force"))).await?;
    if qbool(q.get("v")) {
        let engine = state.clone();
        let _ = tokio::task::spawn_blocking(move || engine.remove_anonymous_volumes(&mounts, None))
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad("name is required"))?;
    state.rename(&id, name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/prune?filters=`.
pub async fn prune(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = query::parse_filters(q.get("filters").map(String::as_str))?;
    query::check_filters(&filters, &["label", "label!", "until"])?;
    let labels = filters.get("label").cloned().unwrap_or_default();
    let not_labels = filters.get("label!").cloned().unwrap_or_default();
    // Each removal unmounts a rootfs (a sync of its upper layer): blocking work.
    let (ids, space) = tokio::task::spawn_blocking(move || {
        state.prune(|c| {
            !query::labels_match(&c.config["Labels"], &labels)
                || (!not_labels.is_empty() && query::labels_match(&c.config["Labels"], &not_labels))
        })
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(
        json!({"ContainersDeleted": if ids.is_empty() { Value::Null } else { json!(ids) }, "SpaceReclaimed": space}),
    ))
}

/// `GET /containers/{id}/json?size=`: docker's inspect shape.
pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let c = state.get(&id)?;
    let layer = state.layer_dir(&c.id);
    // The lower dirs the container mounts (its init layer, then the image's layers), as recorded at create.
    let lower = std::fs::read_to_string(layer.join("lower"))
        .map(|l| l.lines().collect::<Vec<_>>().join(":"))
        .unwrap_or_default();
    let mut v = json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": c.state,
        "Image": c.image,
        "ResolvConfPath": c.resolv_conf_path,
        "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path,
        "LogPath": c.log_path,
        "Name": c.name,
        "RestartCount": c.restart_count,
        "Driver": c.driver,
        "Platform": c.platform,
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": if c.exec_ids.is_empty() { Value::Null } else { json!(c.exec_ids) },
        "HostConfig": c.host_config,
        "GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": lower,
            "UpperDir": layer.join("diff"),
            "WorkDir": layer.join("work"),
            "MergedDir": layer.join("merged"),
        }},
        "Mounts": state.mounts_json(&c),
        "Config": c.config,
        "NetworkSettings": state.network_settings(&c),
    });
    if c.state.restarting {
        // docker's State.Running stays true while a restart policy brings the container back.
        v["State"]["Running"] = json!(true);
    }
    if qbool(q.get("size")) {
        let rw = state.rw_size(&c.id);
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(rw + state.images.resolve(&c.image).map(|i| i.size).unwrap_or(0));
    }
    Ok(Json(v))
}

/// `POST /containers/{id}/resize?h=&w=`: sets a TTY container's window size.
pub async fn resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let dim = |k: &str| -> Result<u16, ApiError> {
        let v = q.get(k).map(String::as_str).unwrap_or("0");
        v.parse::<u16>()
            .map_err(|_| ApiError::bad(format!("invalid value for {k}: {v}")))
    };
    state.resize(&id, dim("h")?, dim("w")?)?;
    Ok(StatusCode::OK)
}

/// `GET /containers/{id}/changes` (`docker diff`).
pub async fn changes(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let v = tokio::task::spawn_blocking(move || state.changes(&id))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(v))
}
