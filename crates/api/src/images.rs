//! `/images/...` on top of berth-image: list, pull and import (`create`), push, tag, inspect, history, remove,
//! prune, save (`get`) and load. Long operations run on the blocking pool and stream docker's JSON progress
//! lines.

use std::collections::HashSet;
use std::convert::Infallible;
use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::images::{normalize, ImageError};
use berth_engine::names;
use berth_engine::query;
use berth_image::{AuthConfig, ImageSummary, LoadedImage, ProgressEvent, RemoveEvent};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::{qbool, AppState};

/// Query strings with repeated keys (`names=a&names=b`, `changes=...` several times).
type QV = Query<Vec<(String, String)>>;

fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a String> {
    q.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v)
}

fn all<'a>(q: &'a [(String, String)], k: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    q.iter().filter(move |(key, _)| key == k).map(|(_, v)| v)
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        Self {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: e.to_string(),
        }
    }
}

fn img_err(e: berth_image::Error) -> ApiError {
    ImageError::from(e).into()
}

/// `GET /images/json?all=&filters=&digests=`.
pub async fn list(State(state): State<AppState>, Query(q): QV) -> Result<Json<Value>, ApiError> {
    let f = query::parse_filters(get(&q, "filters").map(String::as_str))?;
    query::check_filters(
        &f,
        &["dangling", "reference", "label", "before", "since", "until"],
    )?;
    let listed = state.images.store().list().map_err(img_err)?;
    // Like docker, untagged images that are the parent of another (a build's intermediate steps) show only
    // with `all`.
    let parents: HashSet<String> = listed.iter().map(|i| i.parent_id.clone()).collect();
    let all_images = qbool(get(&q, "all"));
    let imgs: Vec<ImageSummary> = listed
        .into_iter()
        .filter(|i| all_images || !i.repo_tags.is_empty() || !parents.contains(&i.id))
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
                .is_none_or(|l| query::labels_match(&json!(i.labels), l))
        })
        .collect();
    Ok(Json(json!(imgs)))
}

/// `reference` filter: `name` matches any tag of name, `name:tag` exactly; `*` globs.
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

fn line(v: Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
}

fn error_line(msg: &str) -> Bytes {
    line(json!({"errorDetail": {"message": msg}, "error": msg}))
}

/// docker's jsonmessage for a progress event.
fn progress_line(ev: &ProgressEvent) -> Bytes {
    let mut v = json!({"status": ev.status});
    if let Some(id) = &ev.id {
        v["id"] = json!(id);
    }
    if let Some(cur) = ev.current {
        v["progressDetail"] = json!({"current": cur});
        if let Some(t) = ev.total {
            v["progressDetail"]["total"] = json!(t);
        }
    } else if ev.id.is_some() {
        v["progressDetail"] = json!({});
    }
    line(v)
}

fn stream_body(rx: mpsc::Receiver<Bytes>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }))
}

fn json_stream(rx: mpsc::Receiver<Bytes>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        stream_body(rx),
    )
        .into_response()
}

fn registry_auth(h: &HeaderMap) -> Option<AuthConfig> {
    h.get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .and_then(AuthConfig::from_header)
}

/// `POST /images/create?fromImage=&tag=&platform=` (pull) or `?fromSrc=-&repo=&tag=&changes=` (import).
pub async fn create(
    State(state): State<AppState>,
    Query(q): QV,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(src) = get(&q, "fromSrc") {
        if src != "-" {
            return Err(ApiError::bad(
                "importing from a URL is not supported; use fromSrc=-",
            ));
        }
        let reference = match (
            get(&q, "repo").filter(|r| !r.is_empty()),
            get(&q, "tag").filter(|t| !t.is_empty()),
        ) {
            (Some(r), Some(t)) => Some(format!("{r}:{t}")),
            (Some(r), None) => Some(r.clone()),
            _ => None,
        };
        if let Some(r) = &reference {
            normalize(r)?;
        }
        let changes: Vec<String> = all(&q, "changes")
            .flat_map(|c| c.lines().map(String::from).collect::<Vec<_>>())
            .filter(|l| !l.trim().is_empty())
            .collect();
        let data = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| ApiError::bad(e.to_string()))?;
        let store = state.images.store().clone();
        let message = get(&q, "message").cloned().filter(|m| !m.is_empty());
        let res = tokio::task::spawn_blocking(move || {
            store.import(
                &mut &data[..],
                reference.as_deref(),
                &changes,
                message.as_deref(),
            )
        })
        .await
        .map_err(ApiError::internal)?;
        return match res {
            Ok(img) => {
                state
                    .events
                    .emit("image", "import", &img.id, json!({"name": img.id}));
                Ok((
                    [(header::CONTENT_TYPE, "application/json")],
                    line(json!({"status": img.id})),
                )
                    .into_response())
            }
            Err(e) if e.http_status() == 400 => Err(img_err(e)),
            Err(e) => Ok((
                [(header::CONTENT_TYPE, "application/json")],
                error_line(&e.to_string()),
            )
                .into_response()),
        };
    }
    let Some(from) = get(&q, "fromImage").filter(|f| !f.is_empty()) else {
        return Err(ApiError::bad("fromImage or fromSrc is required"));
    };
    let reference = match get(&q, "tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.clone(),
    };
    normalize(&reference)?;
    let platform = match get(&q, "platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(berth_image::Platform::parse(p).map_err(|e| ApiError::bad(e.to_string()))?),
        None => None,
    };
    let auth = registry_auth(&headers);
    let store = state.images.store().clone();
    let engine = state.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::task::spawn_blocking(move || {
        let progress = |ev: ProgressEvent| {
            let _ = tx.blocking_send(progress_line(&ev));
        };
        match store.pull(&reference, platform.as_ref(), auth.as_ref(), &progress) {
            Ok(_) => engine
                .events
                .emit("image", "pull", &reference, json!({"name": reference})),
            Err(e) => {
                let _ = tx.blocking_send(error_line(&e.to_string()));
            }
        }
    });
    Ok(json_stream(rx))
}

/// `GET /images/{name}/json|history|get`.
pub async fn get_dispatch(
    State(state): State<AppState>,
    Path(rest): Path<String>,
) -> Result<Response, ApiError> {
    let store = state.images.store();
    if let Some(name) = rest.strip_suffix("/json") {
        return Ok(Json(store.inspect(name).map_err(img_err)?).into_response());
    }
    if let Some(name) = rest.strip_suffix("/history") {
        return Ok(Json(store.history(name).map_err(img_err)?).into_response());
    }
    if let Some(name) = rest.strip_suffix("/get") {
        return save(&state, vec![name.to_string()]);
    }
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        message: "page not found".into(),
    })
}

/// `GET /images/get?names=a&names=b`.
pub async fn save_many(State(state): State<AppState>, Query(q): QV) -> Result<Response, ApiError> {
    let names: Vec<String> = all(&q, "names").cloned().collect();
    if names.is_empty() {
        return Err(ApiError::bad("no images named"));
    }
    save(&state, names)
}

/// Writes a blocking producer's output into a channel as body chunks.
struct ChanWriter(mpsc::Sender<Bytes>);

impl Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn save(state: &AppState, names: Vec<String>) -> Result<Response, ApiError> {
    let store = state.images.store().clone();
    // Fail before streaming when a name is unknown: afterwards only a broken tarball could tell.
    for n in &names {
        store.resolve(n).map_err(img_err)?;
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut w = ChanWriter(tx);
        if let Err(e) = store.save(&refs, &mut w) {
            log::warn!("save {refs:?}: {e}");
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        stream_body(rx),
    )
        .into_response())
}

/// `POST /images/load?quiet=`.
pub async fn load(
    State(state): State<AppState>,
    Query(q): QV,
    body: Body,
) -> Result<Response, ApiError> {
    let quiet = qbool(get(&q, "quiet"));
    let data = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let store = state.images.store().clone();
    let engine = state.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::task::spawn_blocking(move || {
        let progress = |ev: ProgressEvent| {
            if !quiet {
                let _ = tx.blocking_send(progress_line(&ev));
            }
        };
        match store.load(&mut &data[..], &progress) {
            Ok(loaded) => {
                for l in loaded {
                    let (name, msg) = match l {
                        LoadedImage::Tag(t) => (t.clone(), format!("Loaded image: {t}\n")),
                        LoadedImage::Id(id) => (id.clone(), format!("Loaded image ID: {id}\n")),
                    };
                    engine
                        .events
                        .emit("image", "load", &name, json!({"name": name}));
                    let _ = tx.blocking_send(line(json!({"stream": msg})));
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(error_line(&e.to_string()));
            }
        }
    });
    Ok(json_stream(rx))
}

/// `POST /images/{name}/tag?repo=&tag=` and `POST /images/{name}/push?tag=`.
pub async fn post_dispatch(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    Query(q): QV,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = state.images.store().clone();
    if let Some(name) = rest.strip_suffix("/tag") {
        let repo = get(&q, "repo")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ApiError::bad("repo is required"))?;
        let target = match get(&q, "tag").filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.clone(),
        };
        store.tag(name, &target).map_err(img_err)?;
        if let Ok(img) = store.resolve(&target) {
            state
                .events
                .emit("image", "tag", &img.id, json!({"name": target}));
        }
        return Ok(StatusCode::CREATED.into_response());
    }
    if let Some(name) = rest.strip_suffix("/push") {
        let reference = match get(&q, "tag").filter(|t| !t.is_empty()) {
            Some(t) => format!("{name}:{t}"),
            None => name.to_string(),
        };
        store.resolve(&reference).map_err(img_err)?;
        let auth = registry_auth(&headers);
        let engine = state.clone();
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        tokio::task::spawn_blocking(move || {
            let progress = |ev: ProgressEvent| {
                let _ = tx.blocking_send(progress_line(&ev));
            };
            match store.push(&reference, auth.as_ref(), &progress) {
                Ok(r) => {
                    engine
                        .events
                        .emit("image", "push", &reference, json!({"name": reference}));
                    // berth-image already reported "<tag>: digest: ... size: ..." as progress.
                    let _ = tx.blocking_send(line(
                        json!({"progressDetail": {}, "aux": {"Tag": r.tag, "Digest": r.digest, "Size": r.size}}),
                    ));
                }
                Err(e) => {
                    let _ = tx.blocking_send(error_line(&e.to_string()));
                }
            }
        });
        return Ok(json_stream(rx));
    }
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        message: "page not found".into(),
    })
}

/// `DELETE /images/{name}?force=`: refuses images containers use (docker's 409 messages).
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): QV,
) -> Result<Json<Value>, ApiError> {
    let force = qbool(get(&q, "force"));
    let img = state.images.resolve(&name)?;
    let by_tag = normalize(&name).ok().filter(|n| img.repo_tags.contains(n));
    let only_untag = by_tag.is_some() && img.repo_tags.len() > 1;
    if !only_untag {
        let users: Vec<_> = state
            .all()
            .into_iter()
            .filter(|c| c.image == img.id)
            .collect();
        if let Some(c) = users.iter().find(|c| c.state.running).or(users.first()) {
            if !force || c.state.running {
                let how = if c.state.running {
                    "running"
                } else {
                    "stopped"
                };
                let msg = if by_tag.is_some() && !c.state.running {
                    format!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        names::short(&c.id),
                        names::short(&img.id)
                    )
                } else {
                    format!(
                        "conflict: unable to delete {} (must be forced) - image is being used by {how} container {}",
                        names::short(&img.id),
                        names::short(&c.id)
                    )
                };
                return Err(ApiError {
                    status: StatusCode::CONFLICT,
                    message: msg,
                });
            }
        }
    }
    let events = state.images.store().remove(&name, force).map_err(img_err)?;
    Ok(Json(json!(events
        .into_iter()
        .map(|e| match e {
            RemoveEvent::Untagged(t) => {
                state
                    .events
                    .emit("image", "untag", &img.id, json!({"name": t}));
                json!({"Untagged": t})
            }
            RemoveEvent::Deleted(id) => {
                if id == img.id {
                    state
                        .events
                        .emit("image", "delete", &id, json!({"name": id}));
                }
                json!({"Deleted": id})
            }
        })
        .collect::<Vec<_>>())))
}

/// `POST /images/prune?filters=`: dangling images, or every unused one with `dangling=false`.
pub async fn prune(State(state): State<AppState>, Query(q): QV) -> Result<Json<Value>, ApiError> {
    let f = query::parse_filters(get(&q, "filters").map(String::as_str))?;
    query::check_filters(&f, &["dangling", "label", "label!", "until"])?;
    let dangling_only = !f
        .get("dangling")
        .and_then(|d| d.first())
        .is_some_and(|d| d == "false" || d == "0");
    let in_use: HashSet<String> = state.all().into_iter().map(|c| c.image).collect();
    let store = state.images.store().clone();
    let report = tokio::task::spawn_blocking(move || store.prune(dangling_only, &in_use))
        .await
        .map_err(ApiError::internal)?
        .map_err(img_err)?;
    let deleted: Vec<Value> = report
        .deleted
        .into_iter()
        .map(|e| match e {
            RemoveEvent::Untagged(t) => json!({"Untagged": t}),
            RemoveEvent::Deleted(id) => json!({"Deleted": id}),
        })
        .collect();
    Ok(Json(json!({
        "ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
        "SpaceReclaimed": report.space_reclaimed,
    })))
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
