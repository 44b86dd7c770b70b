//! `berth events`: the `/events` stream with docker's filters, `--since`/`--until` (timestamps, unix seconds or
//! relative durations like `10m`) and output (`--format` templates or docker's default line).

use std::io::BufRead;

use clap::Parser;
use serde_json::Value;

use super::http::{with_query, Body};
use super::logs::parse_since;
use super::{filters_json, out, parse, table, CmdResult, Globals};

#[derive(Parser)]
#[command(about = "Get real time events from the server")]
struct EventsOpts {
    /// Filter output based on conditions provided
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, default_value = "")]
    format: String,
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
}

/// docker's default event line: time, type, action, actor id and its sorted attributes.
pub fn default_line(ev: &Value) -> String {
    let nanos = ev["timeNano"].as_i64().unwrap_or(0);
    let t = chrono::DateTime::from_timestamp(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.9fZ");
    let mut line = format!(
        "{t} {} {} {}",
        ev["Type"].as_str().unwrap_or(""),
        ev["Action"].as_str().unwrap_or(""),
        ev["Actor"]["ID"].as_str().unwrap_or("")
    );
    if let Some(a) = ev["Actor"]["Attributes"]
        .as_object()
        .filter(|a| !a.is_empty())
    {
        let mut kv: Vec<String> = a
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        kv.sort();
        line.push_str(&format!(" ({})", kv.join(", ")));
    }
    line
}

/// `berth events`.
pub fn events(args: &[String], g: &Globals) -> CmdResult {
    let o: EventsOpts = parse("events", "berth events [OPTIONS]", args)?;
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(f) = filters_json(&o.filter)? {
        q.push(("filters", f));
    }
    if let Some(s) = &o.since {
        q.push(("since", parse_since(s)));
    }
    if let Some(s) = &o.until {
        q.push(("until", parse_since(s)));
    }
    let mut client = g.client()?;
    let resp = client.request("GET", &with_query("/events", &q), &[], Body::None)?;
    for line in std::io::BufReader::new(resp).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(ev) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let text = if o.format.is_empty() {
            default_line(&ev)
        } else {
            table::render_one(&o.format, &ev, false)?
        };
        out(&format!("{text}\n"))?;
    }
    Ok(0)
}
