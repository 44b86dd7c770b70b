//! System endpoints: `/_ping`, `/version`, `/info`, `/system/df`, `/events`.

use std::collections::HashMap;
use std::fs;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::{AppState, API_VERSION, MIN_API_VERSION};

/// `GET|HEAD /_ping`.
pub async fn ping() -> Response {
    (
        [
            ("Api-Version", API_VERSION),
            ("OSType", "linux"),
            ("Docker-Experimental", "false"),
            ("Builder-Version", "1"),
            (
                header::CACHE_CONTROL.as_str(),
                "no-cache, no-store, must-revalidate",
            ),
            (header::PRAGMA.as_str(), "no-cache"),
            (header::CONTENT_TYPE.as_str(), "text/plain; charset=utf-8"),
        ],
        "OK",
    )
        .into_response()
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn os_name() -> String {
    fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn cgroup_version() -> &'static str {
    // Hybrid hosts report "1", like docker: the controllers are on v1.
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

const GIT_COMMIT: &str = "berth";

/// `GET /version`.
pub async fn version() -> Json<Value> {
    let ver = env!("CARGO_PKG_VERSION");
    let arch = berth_engine::images::go_arch();
    Json(json!({
        "Platform": {"Name": "berth"},
        "Components": [{
            "Name": "Engine",
            "Version": ver,
            "Details": {
                "ApiVersion": API_VERSION,
                "Arch": arch,
                "BuildTime": "",
                "Experimental": "false",
                "GitCommit": GIT_COMMIT,
                "GoVersion": "rust",
                "KernelVersion": kernel_version(),
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
            },
        }],
        "Version": ver,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": GIT_COMMIT,
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    }))
}

/// A stable engine id kept in the data root.
fn engine_id(state: &AppState) -> String {
    let p = state.cfg.data_root.join("engine-id");
    if let Ok(s) = fs::read_to_string(&p) {
        if !s.trim().is_empty() {
            return s.trim().to_string();
        }
    }
    let id = uuid_like();
    let _ = fs::write(&p, &id);
    id
}

fn uuid_like() -> String {
    let h = berth_engine::names::new_id();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `GET /info`.
pub async fn info(State(state): State<AppState>) -> Json<Value> {
    let all = state.all();
    let running = all
        .iter()
        .filter(|c| c.state.running && !c.state.paused)
        .count();
    let paused = all.iter().filter(|c| c.state.paused).count();
    let images = state.images.count();
    let root = state.cfg.data_root.display().to_string();
    Json(json!({
        "ID": engine_id(&state),
        "Containers": all.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": all.len() - running - paused,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Using metacopy", "false"], ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Authorization": null, "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": log::log_enabled!(log::Level::Debug),
        "NFd": fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
        "OomKillDisable": false,
        "NGoroutines": 0,
        "SystemTime": berth_engine::record::now_rfc3339(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version(),
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": null, "AllowNondistributableArtifactsHostnames": null, "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"], "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true}}, "Mirrors": null},
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total(),
        "GenericResources": null,
        "DockerRootDir": root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": hostname(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"berth": {"path": state.cfg.runtime}, "runc": {"path": "runc"}},
        "DefaultRuntime": "berth",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "CDISpecDirs": [],
        "Warnings": [],
    }))
}

/// `GET /system/df`.
pub async fn df(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let types: Vec<String> = q
        .get("type")
        .map(|t| t.split(',').map(String::from).collect())
        .unwrap_or_default();
    for t in &types {
        if !matches!(t.as_str(), "container" | "image" | "volume" | "build-cache") {
            return Err(ApiError::bad(format!("unknown object type: {t}")));
        }
    }
    let want = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
    let containers = state.all();
    let mut out = json!({});
    if want("image") {
        let du = state
            .images
            .store()
            .disk_usage()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let list: Vec<Value> = du
            .images
            .iter()
            .map(|i| {
                let mut v = json!(i);
                v["Containers"] = json!(containers.iter().filter(|c| c.image == i.id).count());
                if i.shared_size < 0 {
                    v["SharedSize"] = json!(0);
                }
                v
            })
            .collect();
        out["LayersSize"] = json!(du.layers_size);
        out["Images"] = json!(list);
    }
    if want("container") {
        let list: Vec<Value> = containers
            .iter()
            .map(|c| crate::containers::summary(&state, c, true))
            .collect();
        out["Containers"] = json!(list);
    }
    if want("volume") {
        let engine = state.clone();
        let vols = tokio::task::spawn_blocking(move || engine.volume_df())
            .await
            .map_err(ApiError::internal)?;
        out["Volumes"] = json!(vols);
    }
    if want("build-cache") {
        out["BuildCache"] = json!([]);
    }
    Ok(Json(out))
}

/// `GET /events?since=&until=&filters=`: past events from `since`, then live ones until `until` (or until the
/// client goes away).
pub async fn events(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    use berth_engine::events::{matches, parse_time, EVENT_FILTERS};
    let f = berth_engine::query::parse_filters(q.get("filters").map(String::as_str))?;
    berth_engine::query::check_filters(&f, EVENT_FILTERS)?;
    let time = |k: &str| -> Result<Option<i64>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_time(v)
                .map(Some)
                .ok_or_else(|| ApiError::bad(format!("invalid value for {k}: {v}"))),
        }
    };
    let (since, until) = (time("since")?, time("until")?);
    let (past, mut rx) = state.events.subscribe(since);
    let (tx, out) = tokio::sync::mpsc::channel::<axum::body::Bytes>(256);
    tokio::spawn(async move {
        let before_until =
            |e: &Value| until.is_none_or(|u| e["timeNano"].as_i64().unwrap_or(0) <= u);
        for e in past.iter().filter(|e| before_until(e) && matches(e, &f)) {
            if tx.send(format!("{e}\n").into()).await.is_err() {
                return;
            }
        }
        loop {
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
            let wait = match until {
                Some(u) if u <= now => return,
                Some(u) => std::time::Duration::from_nanos((u - now) as u64),
                None => std::time::Duration::from_secs(3600),
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(e) => {
                        if before_until(&e) && matches(&e, &f) && tx.send(format!("{e}\n").into()).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
                _ = tokio::time::sleep(wait) => {}
                _ = tx.closed() => return,
            }
        }
    });
    let body =
        axum::body::Body::from_stream(futures_util::stream::unfold(out, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
        }));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
