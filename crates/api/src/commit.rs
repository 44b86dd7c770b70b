//! `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=` (`docker commit`): the body is an
//! optional container config (the docker CLI sends `null`); `changes` may repeat. Answers 201 `{"Id": ...}`.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use berth_engine::engine::CommitRequest;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::{qbool, AppState};

pub async fn commit(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let get = |k: &str| {
        q.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let container = get("container").ok_or_else(|| ApiError::bad("container is required"))?;
    let reference = match (get("repo"), get("tag")) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r),
        (None, Some(_)) => return Err(ApiError::bad("a tag needs a repository")),
        (None, None) => None,
    };
    let config: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid config: {e}")))?
    };
    if config.as_ref().is_some_and(|c| !c.is_object()) {
        return Err(ApiError::bad("invalid config: not a JSON object"));
    }
    let req = CommitRequest {
        container,
        reference,
        comment: get("comment"),
        author: get("author"),
        // docker's default: pause, unless `pause=0`.
        pause: q
            .iter()
            .rev()
            .find(|(k, _)| k == "pause")
            .is_none_or(|(_, v)| qbool(Some(v))),
        changes: q
            .iter()
            .filter(|(k, _)| k == "changes")
            .flat_map(|(_, v)| v.lines().map(String::from).collect::<Vec<_>>())
            .filter(|l| !l.trim().is_empty())
            .collect(),
        config,
    };
    let id = tokio::task::spawn_blocking(move || state.commit(&req))
        .await
        .map_err(ApiError::internal)??;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))))
}
