//! The event stream behind `GET /events`: a broadcast channel for live subscribers plus a bounded history for
//! `since=`, with docker's message shape and filters.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::query::{labels_match, Filters};

/// How many past events `since=` can replay.
const HISTORY: usize = 1024;

/// Errors from event filters.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// A filter docker does not know for events.
    #[error("invalid filter '{0}'")]
    BadFilter(String),
}

/// The event bus.
#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<Value>,
    history: Mutex<VecDeque<Value>>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(HISTORY).0,
            history: Mutex::new(VecDeque::new()),
        }
    }
}

impl Events {
    /// Publishes an event. `attrs` are the actor's attributes (name, image, exitCode, labels...).
    pub fn emit(&self, kind: &str, action: &str, id: &str, attrs: Value) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let mut ev = json!({
            "Type": kind,
            "Action": action,
            "Actor": {"ID": id, "Attributes": attrs},
            "scope": "local",
            "time": now.timestamp(),
            "timeNano": nanos,
        });
        // The pre-1.22 fields docker still sends for containers and images.
        if kind == "container" || kind == "image" {
            ev["status"] = json!(action);
            ev["id"] = json!(id);
            if let Some(img) = ev["Actor"]["Attributes"]["image"]
                .as_str()
                .map(String::from)
            {
                ev["from"] = json!(img);
            }
        }
        {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() >= HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        let _ = self.tx.send(ev);
    }

    /// Past events at or after `since_nanos`, and a receiver for the ones to come (subscribed first, so none
    /// fall between the two).
    pub fn subscribe(&self, since_nanos: Option<i64>) -> (Vec<Value>, broadcast::Receiver<Value>) {
        let rx = self.tx.subscribe();
        let past = match since_nanos {
            None => vec![],
            Some(s) => self
                .history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|e| e["timeNano"].as_i64().unwrap_or(0) >= s)
                .cloned()
                .collect(),
        };
        (past, rx)
    }
}

/// Filters `GET /events` understands.
pub const EVENT_FILTERS: &[&str] = &[
    "type",
    "event",
    "container",
    "image",
    "label",
    "scope",
    "network",
    "volume",
    "daemon",
    "plugin",
    "node",
    "service",
    "secret",
    "config",
];

/// Whether an event passes the filters.
pub fn matches(ev: &Value, f: &Filters) -> bool {
    let any = |k: &str, pred: &dyn Fn(&str) -> bool| {
        f.get(k)
            .is_none_or(|v| v.is_empty() || v.iter().any(|x| pred(x)))
    };
    let kind = ev["Type"].as_str().unwrap_or("");
    let id = ev["Actor"]["ID"].as_str().unwrap_or("");
    let attrs = &ev["Actor"]["Attributes"];
    let name = attrs["name"].as_str().unwrap_or("");
    any("type", &|t| t == kind)
        && any("event", &|a| {
            ev["Action"]
                .as_str()
                .is_some_and(|x| x == a || x.starts_with(&format!("{a}:")))
        })
        && any("container", &|c| {
            kind == "container" && (id.starts_with(c) || name == c)
        })
        && any("image", &|i| {
            attrs["image"].as_str() == Some(i)
                || (kind == "image"
                    && (id == i || name == i || id.trim_start_matches("sha256:").starts_with(i)))
        })
        && f.get("label").is_none_or(|l| labels_match(attrs, l))
        && any("scope", &|s| s == "local")
}

/// Parses docker's `since`/`until` (unix seconds with optional fraction, or RFC 3339) into nanoseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        return Some((f * 1e9) as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_history_and_filters() {
        let ev = Events::default();
        ev.emit(
            "container",
            "start",
            "abc123",
            json!({"name": "web", "image": "busybox"}),
        );
        ev.emit(
            "image",
            "tag",
            "sha256:ff",
            json!({"name": "busybox:latest"}),
        );
        let (past, _rx) = ev.subscribe(Some(0));
        assert_eq!(past.len(), 2);
        assert_eq!(past[0]["status"], "start");
        let mut f = Filters::new();
        f.insert("type".into(), vec!["container".into()]);
        f.insert("container".into(), vec!["web".into()]);
        assert!(matches(&past[0], &f));
        assert!(!matches(&past[1], &f));
        assert_eq!(parse_time("1.5"), Some(1_500_000_000));
    }
}
