#![recursion_limit = "256"]
//! berth-api: the Docker Engine API over a unix socket (axum on tokio), one module per resource.
//!
//! Paths are accepted unversioned and with a `/vX.YY` prefix (v1.24 to [`API_VERSION`]); the prefix is stripped
//! by a middleware before routing. Errors are docker's `{"message": "..."}` bodies with docker's status codes.

mod archive;
mod auth;
mod build;
mod commit;
mod containers;
mod error;
mod exec;
mod images;
mod logwatch;
mod networks;
mod ops;
mod stats;
mod streams;
mod system;
mod volumes;

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use berth_engine::Engine;

pub use error::ApiError;

/// The highest API version served.
pub const API_VERSION: &str = "1.47";
/// The lowest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";

/// Shared handler state.
pub(crate) type AppState = Arc<Engine>;

/// Parses docker's boolean query values: empty, `0`, `no`, `false`, `none` are false.
pub(crate) fn qbool(v: Option<&String>) -> bool {
    v.is_some_and(|s| {
        !matches!(
            s.to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        )
    })
}

fn version_tuple(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Strips `/vX.YY` and rejects versions outside [MIN_API_VERSION, API_VERSION].
async fn strip_version(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if let Some(v) = version_tuple(ver) {
            let min = version_tuple(MIN_API_VERSION).unwrap_or((1, 24));
            let max = version_tuple(API_VERSION).unwrap_or((1, 47));
            if v < min {
                return ApiError::bad(format!(
                    "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ))
                .into_response();
            }
            if v > max {
                return ApiError::bad(format!(
                    "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
                ))
                .into_response();
            }
            let pq = match req.uri().query() {
                Some(q) => format!("{tail}?{q}"),
                None => tail.to_string(),
            };
            if let Ok(uri) = pq.parse() {
                *req.uri_mut() = uri;
            }
        }
    }
    log::debug!("{} {}", req.method(), req.uri());
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        "Api-Version",
        axum::http::HeaderValue::from_static(API_VERSION),
    );
    resp.headers_mut()
        .insert("Ostype", axum::http::HeaderValue::from_static("linux"));
    resp.headers_mut().insert(
        "Server",
        axum::http::HeaderValue::from_static(concat!(
            "Berth/",
            env!("CARGO_PKG_VERSION"),
            " (linux)"
        )),
    );
    resp
}

/// Builds the whole API as one router.
pub fn router(engine: Arc<Engine>) -> Router {
    let inner = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/system/df", get(system::df))
        .route("/auth", post(auth::login))
        .route("/build", post(build::build))
        .route("/events", get(system::events))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/rename", post(containers::rename))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/containers/{id}/logs", get(streams::logs))
        .route("/containers/{id}/attach", post(streams::attach))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/exec", post(exec::create))
        .route(
            "/containers/{id}/archive",
            get(archive::get).head(archive::head).put(archive::put),
        )
        .route("/containers/{id}/stats", get(stats::stats))
        .route("/containers/{id}/top", get(stats::top))
        .route("/containers/{id}/changes", get(containers::changes))
        .route("/commit", post(commit::commit))
        .route("/containers/{id}/pause", post(ops::pause))
        .route("/containers/{id}/unpause", post(ops::unpause))
        .route("/containers/{id}/update", post(ops::update))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/prune", post(images::prune))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::save_many))
        .route(
            "/images/{*rest}",
            get(images::get_dispatch)
                .post(images::post_dispatch)
                .delete(images::remove),
        )
        .fallback(error::not_found)
        .with_state(engine);
    Router::new()
        .fallback_service(inner)
        .layer(axum::middleware::from_fn(strip_version))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::UnixListener,
    engine: Arc<Engine>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown)
        .await
}
