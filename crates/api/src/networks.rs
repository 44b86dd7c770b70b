//! `/networks/...`: list, inspect, create, remove, connect, disconnect, prune, over berth-network.
//!
//! Manager calls run `ip`/`nft` and take a file lock, so every handler runs them in `spawn_blocking`.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::{query, Engine};
use berth_network::{Network, NetworkError, NetworkManager, NetworkSpec};
use serde_json::{json, Value};

use crate::error::{parse_json, ApiError};
use crate::AppState;

type Q = Query<HashMap<String, String>>;

impl From<NetworkError> for ApiError {
    fn from(e: NetworkError) -> Self {
        let status = match &e {
            NetworkError::NotFound(_) => StatusCode::NOT_FOUND,
            NetworkError::NameInUse(_) | NetworkError::AlreadyAttached { .. } => {
                StatusCode::CONFLICT
            }
            NetworkError::InUse(_) => StatusCode::FORBIDDEN,
            NetworkError::Invalid(_)
            | NetworkError::Overlap(_)
            | NetworkError::NoAddress { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: e.to_string(),
        }
    }
}

fn disabled() -> ApiError {
    ApiError::internal("bridge networking is disabled in this daemon")
}

async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Engine, &NetworkManager) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = state.clone();
    tokio::task::spawn_blocking(move || {
        let mgr = engine.networks().ok_or_else(disabled)?;
        f(&engine, mgr)
    })
    .await
    .map_err(ApiError::internal)?
}

fn rfc3339(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_default()
}

/// docker's network JSON.
fn network_json(engine: &Engine, n: &Network) -> Value {
    let containers: serde_json::Map<String, Value> = n
        .endpoints
        .values()
        .map(|e| {
            let name = engine
                .get(&e.container_id)
                .map(|c| c.short_name().to_string())
                .unwrap_or_default();
            (
                e.container_id.clone(),
                json!({"Name": name, "EndpointID": e.id, "MacAddress": e.mac,
                    "IPv4Address": format!("{}/{}", e.ip, e.prefix), "IPv6Address": ""}),
            )
        })
        .collect();
    let mut options = n.options.clone();
    if n.default {
        options.insert(berth_network::BRIDGE_NAME_OPTION.into(), n.bridge.clone());
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": rfc3339(n.created),
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": [{
            "Subnet": format!("{}/{}", n.subnet.network().addr, n.subnet.prefix),
            "Gateway": n.gateway.to_string(),
        }]},
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

/// docker's two pre-defined networks without a bridge: `host` (driver host) and `none` (driver null).
const BUILTIN: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// A stable id for a built-in network of this data root (docker makes them once and keeps them).
fn builtin_id(engine: &Engine, name: &str) -> String {
    let mut out = String::new();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0u8..4 {
        for b in engine
            .cfg
            .data_root
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .chain(name.as_bytes())
            .chain([round].iter())
        {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

fn builtin_json(engine: &Engine, name: &str, driver: &str) -> Value {
    let containers: serde_json::Map<String, Value> = engine
        .all()
        .iter()
        .filter(|c| c.state.running && c.host_config["NetworkMode"] == name)
        .map(|c| {
            (
                c.id.clone(),
                json!({"Name": c.short_name(), "EndpointID": "", "MacAddress": "",
                    "IPv4Address": "", "IPv6Address": ""}),
            )
        })
        .collect();
    json!({
        "Name": name, "Id": builtin_id(engine, name), "Created": rfc3339(0), "Scope": "local",
        "Driver": driver, "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": {"Network": ""},
        "ConfigOnly": false, "Containers": containers, "Options": {}, "Labels": {},
    })
}

/// The built-in network `key` names (by name, id or id prefix).
fn builtin_for(engine: &Engine, key: &str) -> Option<(&'static str, &'static str)> {
    BUILTIN.into_iter().find(|(name, _)| {
        *name == key || (key.len() >= 3 && builtin_id(engine, name).starts_with(key))
    })
}

fn builtin_matches(engine: &Engine, name: &str, driver: &str, f: &query::Filters) -> bool {
    let any =
        |k: &str, pred: &dyn Fn(&str) -> bool| f.get(k).is_none_or(|vs| vs.iter().any(|v| pred(v)));
    let id = builtin_id(engine, name);
    any("name", &|v| name.contains(v))
        && any("id", &|v| id.starts_with(v))
        && any("driver", &|v| driver == v)
        && any("scope", &|v| v == "local")
        && any("type", &|v| v == "builtin")
        && !f.contains_key("label")
}

fn matches(n: &Network, f: &query::Filters) -> bool {
    let any =
        |k: &str, pred: &dyn Fn(&str) -> bool| f.get(k).is_none_or(|vs| vs.iter().any(|v| pred(v)));
    any("name", &|v| n.name.contains(v))
        && any("id", &|v| n.id.starts_with(v))
        && any("driver", &|v| n.driver == v)
        && any("scope", &|v| v == "local")
        && any("type", &|v| (v == "builtin") == n.default)
        && f.get("label")
            .is_none_or(|ls| query::labels_match(&json!(n.labels), ls))
}

/// `GET /networks`.
pub async fn list(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = query::parse_filters(q.get("filters").map(String::as_str))?;
    query::check_filters(
        &filters,
        &["name", "id", "driver", "scope", "type", "label", "dangling"],
    )?;
    blocking(&state, move |engine, mgr| {
        let mut out: Vec<Value> = mgr
            .list()?
            .iter()
            .filter(|n| matches(n, &filters))
            .map(|n| network_json(engine, n))
            .collect();
        for (name, driver) in BUILTIN {
            if builtin_matches(engine, name, driver, &filters) {
                out.push(builtin_json(engine, name, driver));
            }
        }
        out.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
        Ok(Json(json!(out)))
    })
    .await
}

/// `GET /networks/{id}`.
pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(&state, move |engine, mgr| {
        if let Some((name, driver)) = builtin_for(engine, &id) {
            return Ok(Json(builtin_json(engine, name, driver)));
        }
        Ok(Json(network_json(engine, &mgr.get(&id)?)))
    })
    .await
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

/// `POST /networks/create`.
pub async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req = parse_json(&body)?;
    let name = req["Name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return Err(ApiError::bad("network name is required"));
    }
    if matches!(name.as_str(), "host" | "none") {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!("{name} is a pre-defined network and cannot be created"),
        });
    }
    let driver = req["Driver"].as_str().unwrap_or("bridge");
    if !driver.is_empty() && driver != "bridge" {
        return Err(ApiError::bad(format!(
            "plugin \"{driver}\" not found: only the bridge driver is supported"
        )));
    }
    let cfg = req["IPAM"]["Config"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let first = cfg.first().cloned().unwrap_or(Value::Null);
    let subnet = match first["Subnet"].as_str().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            berth_engine::net::parse_cidr(s)
                .map_err(|e| ApiError::bad(e.to_string()))?
                .network(),
        ),
        None => None,
    };
    let gateway = match first["Gateway"].as_str().filter(|s| !s.is_empty()) {
        Some(g) => Some(
            g.parse()
                .map_err(|_| ApiError::bad(format!("invalid gateway address {g}")))?,
        ),
        None => None,
    };
    let spec = NetworkSpec {
        name,
        subnet,
        gateway,
        internal: req["Internal"].as_bool().unwrap_or(false),
        options: string_map(&req["Options"]),
        labels: string_map(&req["Labels"]),
    };
    let n = blocking(&state, move |_, mgr| Ok(mgr.create_network(&spec)?)).await?;
    state.events.emit(
        "network",
        "create",
        &n.id,
        json!({"name": n.name, "type": "bridge"}),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": n.id, "Warning": ""})),
    )
        .into_response())
}

/// `DELETE /networks/{id}`.
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let n = blocking(&state, move |engine, mgr| {
        if let Some((name, _)) = builtin_for(engine, &id) {
            return Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!("{name} is a pre-defined network and cannot be removed"),
            });
        }
        let n = mgr.get(&id)?;
        if n.default {
            return Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!("{} is a pre-defined network and cannot be removed", n.name),
            });
        }
        mgr.remove_network(&n.id)?;
        Ok(n)
    })
    .await?;
    state.events.emit(
        "network",
        "destroy",
        &n.id,
        json!({"name": n.name, "type": "bridge"}),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /networks/{id}/connect`.
pub async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let req = parse_json(&body)?;
    let container = req["Container"].as_str().unwrap_or("").to_string();
    let ep = req["EndpointConfig"].clone();
    let ep = if ep.is_object() { ep } else { json!({}) };
    blocking(&state, move |engine, _| {
        Ok(engine.network_connect(&id, &container, &ep)?)
    })
    .await?;
    Ok(StatusCode::OK)
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let req = parse_json(&body)?;
    let container = req["Container"].as_str().unwrap_or("").to_string();
    blocking(&state, move |engine, _| {
        Ok(engine.network_disconnect(&id, &container)?)
    })
    .await?;
    Ok(StatusCode::OK)
}

/// `POST /networks/prune`: removes user networks no container uses.
pub async fn prune(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = query::parse_filters(q.get("filters").map(String::as_str))?;
    query::check_filters(&filters, &["label", "until"])?;
    let removed = blocking(&state, move |engine, mgr| {
        let used: Vec<String> = engine
            .all()
            .iter()
            .flat_map(|c| {
                berth_engine::net::container_networks(c)
                    .into_iter()
                    .map(|(k, _)| k)
            })
            .collect();
        let mut removed = Vec::new();
        for n in mgr.list()? {
            let label_ok = filters
                .get("label")
                .is_none_or(|ls| query::labels_match(&json!(n.labels), ls));
            if n.default || !n.endpoints.is_empty() || used.contains(&n.name) || !label_ok {
                continue;
            }
            if mgr.remove_network(&n.id).is_ok() {
                removed.push(n.name.clone());
            }
        }
        Ok(removed)
    })
    .await?;
    Ok(Json(json!({"NetworksDeleted": removed})))
}
