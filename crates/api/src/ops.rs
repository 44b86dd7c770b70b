//! `POST /containers/{id}/pause`, `/unpause` and `/update`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::error::{parse_json, ApiError};
use crate::AppState;

/// `POST /containers/{id}/pause`.
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    tokio::task::spawn_blocking(move || state.pause(&id))
        .await
        .map_err(ApiError::internal)??;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/unpause`.
pub async fn unpause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    tokio::task::spawn_blocking(move || state.unpause(&id))
        .await
        .map_err(ApiError::internal)??;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/update`: `{"Warnings": [...]}`.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = parse_json(&body)?;
    let warnings = state.update_container(&id, &req)?;
    Ok(Json(json!({"Warnings": warnings})))
}
