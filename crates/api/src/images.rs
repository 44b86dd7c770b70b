//! `/images/...`: list, import (`create?fromSrc=-`), inspect, history, tag, remove, prune. Pull, push, save and
//! load wait for berth-image's registry and archive code.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::images::{normalize, ImageRecord};
use berth_engine::query::{self, unix_time};
use berth_engine::{names, EngineError};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::{qbool, AppState};

type Q = Query<HashMap<String, String>>;

/// One entry of `GET /images/json`.
pub fn summary(i: &ImageRecord) -> Value {
    json!({
        "Id": i.id,
        "ParentId": "",
        "RepoTags": i.repo_tags,
        "RepoDigests": i.repo_digests,
        "Created": unix_time(&i.created),
        "Size": i.size,
        "VirtualSize": i.size,
        "SharedSize": -1,
        "Labels": i.container_config()["Labels"],
        "Containers": -1,
    })
}

/// `GET /images/json?all=&filters=&digests=`.
pub async fn list(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let f = query::parse_filters(q.get("filters").map(String::as_str))?;
    query::check_filters(
        &f,
        &["dangling", "reference", "label", "before", "since", "until"],
    )?;
    let imgs: Vec<Value> = state
        .images
        .list()
        .into_iter()
        .filter(|i| match f.get("dangling").and_then(|d| d.first()) {
            Some(d) if d == "true" || d == "1" => i.repo_tags.is_empty(),
            Some(_) => !i.repo_tags.is_empty(),
            None => true,
        })
        .filter(|i| {
            f.get("reference").is_none_or(|refs| {
                refs.iter()
                    .any(|r| i.repo_tags.iter().any(|t| ref_matches(t, r)))
            })
        })
        .filter(|i| {
            f.get("label")
                .is_none_or(|l| query::labels_match(&i.container_config()["Labels"], l))
        })
        .map(|i| summary(&i))
        .collect();
    Ok(Json(json!(imgs)))
}

/// `reference` filter: `name` matches any tag of name, `name:tag` exactly; `*` globs within a component.
fn ref_matches(tag: &str, pattern: &str) -> bool {
    let (name, t) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
    let (pn, pt) = match pattern.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (pattern, None),
    };
    glob(pn, name) && pt.is_none_or(|pt| glob(pt, t))
}

fn glob(p: &str, s: &str) -> bool {
    match p.split_once('*') {
        None => p == s,
        Some((pre, rest)) => {
            s.starts_with(pre) && (0..=s.len() - pre.len()).any(|i| glob(rest, &s[pre.len() + i..]))
        }
    }
}

fn json_line(v: Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
}

fn error_line(msg: &str) -> Bytes {
    json_line(json!({"errorDetail": {"message": msg}, "error": msg}))
}

/// `POST /images/create?fromImage=&tag=` (pull) or `?fromSrc=-&repo=&tag=&changes=` (import from the body).
pub async fn create(
    State(state): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Response, ApiError> {
    let ct = [(header::CONTENT_TYPE, "application/json")];
    if let Some(src) = q.get("fromSrc") {
        if src != "-" {
            return Err(ApiError::bad(
                "importing from a URL is not supported; use fromSrc=-",
            ));
        }
        let reference = match (
            q.get("repo").filter(|r| !r.is_empty()),
            q.get("tag").filter(|t| !t.is_empty()),
        ) {
            (Some(r), Some(t)) => Some(format!("{r}:{t}")),
            (Some(r), None) => Some(r.clone()),
            _ => None,
        };
        if let Some(r) = &reference {
            normalize(r).map_err(|e| ApiError::bad(e.to_string()))?;
        }
        // docker's CLI sends changes as repeated `changes=` params; ours are in one, newline separated too.
        let changes: Vec<String> = q
            .get("changes")
            .map(|c| {
                c.lines()
                    .map(String::from)
                    .filter(|l| !l.trim().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let data = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| ApiError::bad(e.to_string()))?;
        let images = state.images.clone();
        let message = q.get("message").cloned().unwrap_or_default();
        let res = tokio::task::spawn_blocking(move || {
            images.import(&data[..], reference.as_deref(), &changes, &message)
        })
        .await
        .map_err(ApiError::internal)?;
        let line = match res {
            Ok(img) => json_line(json!({"status": img.id})),
            Err(e @ berth_engine::images::ImageError::InvalidChange(..)) => {
                return Err(ApiError::bad(e.to_string()))
            }
            Err(e) => error_line(&e.to_string()),
        };
        return Ok((ct, line).into_response());
    }
    let Some(from) = q.get("fromImage").filter(|f| !f.is_empty()) else {
        return Err(ApiError::bad("fromImage or fromSrc is required"));
    };
    let reference = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.clone(),
    };
    let reference = normalize(&reference).map_err(|e| ApiError::bad(e.to_string()))?;
    let msg = format!(
        "pull of {reference} is not supported by this berthd yet (registry client pending); import the image instead"
    );
    Ok((ct, error_line(&msg)).into_response())
}

/// `GET /images/{name}/json|history`.
pub async fn get_dispatch(
    State(state): State<AppState>,
    Path(rest): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(name) = rest.strip_suffix("/json") {
        let i = state.images.resolve(name).map_err(EngineError::from)?;
        return Ok(Json(inspect(&state, &i)).into_response());
    }
    if let Some(name) = rest.strip_suffix("/history") {
        let i = state.images.resolve(name).map_err(EngineError::from)?;
        let hist: Vec<Value> = i.config["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .rev()
            .enumerate()
            .map(|(n, h)| {
                json!({
                    "Id": if n == 0 { i.id.clone() } else { "<missing>".into() },
                    "Created": unix_time(h["created"].as_str().unwrap_or("")),
                    "CreatedBy": h["created_by"].as_str().unwrap_or(""),
                    "Tags": if n == 0 { json!(i.repo_tags) } else { Value::Null },
                    "Size": if n == 0 { i.size } else { 0 },
                    "Comment": h["comment"].as_str().unwrap_or(""),
                })
            })
            .collect();
        return Ok(Json(json!(hist)).into_response());
    }
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        message: "page not found".into(),
    })
}

fn inspect(state: &AppState, i: &ImageRecord) -> Value {
    let dirs = state.images.layer_dirs(i);
    json!({
        "Id": i.id,
        "RepoTags": i.repo_tags,
        "RepoDigests": i.repo_digests,
        "Parent": "",
        "Comment": i.config["history"][0]["comment"].as_str().unwrap_or(""),
        "Created": i.created,
        "DockerVersion": "",
        "Author": i.config["author"].as_str().unwrap_or(""),
        "Config": i.container_config(),
        "Architecture": i.config["architecture"],
        "Os": i.config["os"],
        "Size": i.size,
        "GraphDriver": {"Name": "overlay2", "Data": {
            "MergedDir": "", "UpperDir": dirs.first(), "WorkDir": "",
            "LowerDir": dirs.iter().skip(1).map(|d| d.display().to_string()).collect::<Vec<_>>().join(":"),
        }},
        "RootFS": {"Type": "layers", "Layers": i.config["rootfs"]["diff_ids"]},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
}

/// `POST /images/{name}/tag?repo=&tag=` (push comes with berth-image).
pub async fn post_dispatch(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    if let Some(name) = rest.strip_suffix("/tag") {
        let i = state.images.resolve(name).map_err(EngineError::from)?;
        let repo = q
            .get("repo")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ApiError::bad("repo is required"))?;
        let target = match q.get("tag").filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.clone(),
        };
        state
            .images
            .tag(&i.id, &target)
            .map_err(EngineError::from)?;
        return Ok(StatusCode::CREATED.into_response());
    }
    if rest.ends_with("/push") {
        return Err(ApiError::internal(
            "push is not supported by this berthd yet (registry client pending)",
        ));
    }
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        message: "page not found".into(),
    })
}

/// `DELETE /images/{name}?force=`.
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let force = qbool(q.get("force"));
    let i = state.images.resolve(&name).map_err(EngineError::from)?;
    let by_tag = normalize(&name).ok().filter(|n| i.repo_tags.contains(n));
    let mut out = Vec::new();
    // Removing one of several tags only untags.
    if let Some(t) = &by_tag {
        if i.repo_tags.len() > 1 {
            state.images.untag(t).map_err(EngineError::from)?;
            return Ok(Json(json!([{"Untagged": t}])));
        }
    }
    let users: Vec<_> = state
        .all()
        .into_iter()
        .filter(|c| c.image == i.id)
        .collect();
    if let Some(c) = users.first() {
        if !force || c.state.running {
            let how = if c.state.running {
                "running"
            } else {
                "stopped"
            };
            let msg = if by_tag.is_some() && !force {
                format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    names::short(&c.id),
                    names::short(&i.id)
                )
            } else {
                format!(
                    "conflict: unable to delete {} (must be forced) - image is being used by {how} container {}",
                    names::short(&i.id),
                    names::short(&c.id)
                )
            };
            if !force || c.state.running {
                return Err(ApiError {
                    status: StatusCode::CONFLICT,
                    message: msg,
                });
            }
        }
    }
    if !users.is_empty() {
        // Forced removal of an image a stopped container uses: untag only, keep the layers.
        for t in &i.repo_tags {
            state.images.untag(t).map_err(EngineError::from)?;
            out.push(json!({"Untagged": t}));
        }
        return Ok(Json(json!(out)));
    }
    for t in &i.repo_tags {
        out.push(json!({"Untagged": t}));
    }
    state.images.delete(&i.id).map_err(EngineError::from)?;
    out.push(json!({"Deleted": i.id}));
    Ok(Json(json!(out)))
}

/// `POST /images/prune?filters=`: dangling images (all unused ones with `dangling=false`).
pub async fn prune(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let f = query::parse_filters(q.get("filters").map(String::as_str))?;
    query::check_filters(&f, &["dangling", "label", "label!", "until"])?;
    let all = f
        .get("dangling")
        .and_then(|d| d.first())
        .is_some_and(|d| d == "false" || d == "0");
    let used: Vec<String> = state.all().into_iter().map(|c| c.image).collect();
    let mut deleted = Vec::new();
    let mut space = 0;
    for i in state.images.list() {
        if used.contains(&i.id) || (!all && !i.repo_tags.is_empty()) {
            continue;
        }
        if state.images.delete(&i.id).is_ok() {
            for t in &i.repo_tags {
                deleted.push(json!({"Untagged": t}));
            }
            deleted.push(json!({"Deleted": i.id}));
            space += i.size;
        }
    }
    Ok(Json(
        json!({"ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": space}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter() {
        assert!(ref_matches("busybox:latest", "busybox"));
        assert!(ref_matches("busybox:1.36", "busy*"));
        assert!(!ref_matches("busybox:1.36", "busybox:latest"));
        assert!(ref_matches("localhost:5000/x:v1", "localhost:5000/x:v*"));
    }
}
