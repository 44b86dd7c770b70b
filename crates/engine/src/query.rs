//! Read-side helpers: `GET /containers/json` filters, docker's human status text ("Up 3 seconds",
//! "Exited (0) 2 minutes ago") and docker's filter argument format.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::images::Images;
use crate::record::Container;

/// Errors from parsing filters.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The `filters` parameter is not valid JSON of docker's shape.
    #[error("invalid filter: {0}")]
    BadFilters(String),
    /// A filter name the endpoint does not know.
    #[error("invalid filter '{0}'")]
    UnknownFilter(String),
}

/// Parsed `filters`: name -> values. Accepts both `{"k":["v"]}` and the old `{"k":{"v":true}}`.
pub type Filters = BTreeMap<String, Vec<String>>;

/// Parses docker's `filters` query parameter.
pub fn parse_filters(raw: Option<&str>) -> Result<Filters, QueryError> {
    let mut out = Filters::new();
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(out);
    };
    let v: Value = serde_json::from_str(raw).map_err(|e| QueryError::BadFilters(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| QueryError::BadFilters(raw.to_string()))?;
    for (k, vals) in obj {
        let list = match vals {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            Value::Object(o) => o
                .iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(false))
                .map(|(k, _)| k.clone())
                .collect(),
            Value::String(s) => vec![s.clone()],
            _ => return Err(QueryError::BadFilters(raw.to_string())),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

/// Checks that only `allowed` filter names are used.
pub fn check_filters(f: &Filters, allowed: &[&str]) -> Result<(), QueryError> {
    match f.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(QueryError::UnknownFilter(k.clone())),
        None => Ok(()),
    }
}

/// Whether the labels match every `key` / `key=value` in `wanted`.
pub fn labels_match(labels: &Value, wanted: &[String]) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels[k].as_str() == Some(v),
        None => labels.get(w).is_some(),
    })
}

/// The filters `GET /containers/json` understands.
pub const CONTAINER_FILTERS: &[&str] = &[
    "status", "name", "id", "label", "ancestor", "exited", "before", "since", "health", "network",
    "volume", "is-task",
];

/// Whether a container passes `filters`.
pub fn container_matches(c: &Container, f: &Filters, images: &Images) -> bool {
    let any = |k: &str, pred: &dyn Fn(&str) -> bool| {
        f.get(k)
            .is_none_or(|vals| vals.is_empty() || vals.iter().any(|v| pred(v)))
    };
    any("status", &|v| v == c.state.status)
        && any("name", &|v| {
            c.short_name().contains(v.trim_start_matches('/'))
        })
        && any("id", &|v| c.id.starts_with(v))
        && f.get("label")
            .is_none_or(|w| labels_match(&c.config["Labels"], w))
        && any("ancestor", &|v| {
            c.config["Image"].as_str() == Some(v)
                || images.resolve(v).is_ok_and(|img| img.id == c.image)
                || c.image.trim_start_matches("sha256:").starts_with(v)
        })
        && any("health", &|v| v == health_status(c))
        && any("exited", &|v| {
            !c.state.running && c.state.status == "exited" && v.parse() == Ok(c.state.exit_code)
        })
        // docker: a volume name (a bind's source) or a mount destination.
        && any("volume", &|v| {
            c.mount_points.iter().any(|m| {
                m.destination == v || if m.name.is_empty() { m.source == v } else { m.name == v }
            })
        })
}

/// `State.Health.Status`, or `none` for a container without a healthcheck (ps' `health` filter).
pub fn health_status(c: &Container) -> &str {
    c.state
        .health
        .as_ref()
        .and_then(|h| h["Status"].as_str())
        .unwrap_or("none")
}

/// docker's `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}

fn since(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
        .unwrap_or(0)
}

/// docker ps' STATUS column.
pub fn status_text(c: &Container) -> String {
    let st = &c.state;
    if st.running {
        let up = format!("Up {}", human_duration(since(&st.started_at)));
        return if st.paused {
            format!("{up} (Paused)")
        } else {
            match health_status(c) {
                "none" => up,
                "starting" => format!("{up} (health: starting)"),
                h => format!("{up} ({h})"),
            }
        };
    }
    match st.status.as_str() {
        "restarting" => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            human_duration(since(&st.finished_at))
        ),
        "created" => "Created".into(),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        _ if st.finished_at.starts_with("0001") => "Created".into(),
        _ => format!(
            "Exited ({}) {} ago",
            st.exit_code,
            human_duration(since(&st.finished_at))
        ),
    }
}

/// Seconds since the epoch for an RFC 3339 time (0 when unparsable).
pub fn unix_time(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_both_shapes() {
        let f = parse_filters(Some(r#"{"status":["exited"],"label":{"a=b":true}}"#)).unwrap();
        assert_eq!(f["status"], vec!["exited"]);
        assert_eq!(f["label"], vec!["a=b"]);
        assert!(parse_filters(Some("{nope")).is_err());
        assert!(check_filters(&f, &["status"]).is_err());
        assert!(labels_match(
            &serde_json::json!({"a": "b", "c": ""}),
            &["a=b".into(), "c".into()]
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(7200), "2 hours");
    }
}
