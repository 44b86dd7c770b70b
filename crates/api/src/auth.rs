//! `POST /auth`: checks registry credentials for `docker login` / `berth login`. The client, not the daemon,
//! stores them (in its `config.json`); berthd only asks the registry whether they are good.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use berth_image::AuthConfig;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// `POST /auth` with docker's AuthConfig body (`username`, `password`, `serveraddress`, ...).
pub async fn login(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let auth: AuthConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid auth configuration: {e}")))?;
    let store = state.images.store().clone();
    let server = Some(auth.server_address.clone()).filter(|s| !s.is_empty());
    let res = tokio::task::spawn_blocking(move || store.login(server.as_deref(), &auth))
        .await
        .map_err(ApiError::internal)?;
    match res {
        Ok(status) => Ok(Json(json!({"Status": status, "IdentityToken": ""}))),
        // dockerd answers failed logins with 401 and the registry's reason.
        Err(e) if e.http_status() == 401 || e.to_string().contains("401") => Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: e.to_string(),
        }),
        Err(e) => Err(ApiError::internal(e)),
    }
}
