//! `berth stats`: docker's columns (CPU % and MEM USAGE / LIMIT computed from the stats API the way the docker
//! CLI does), `--no-stream`, `-a`, `--format`.

use clap::Parser;
use serde_json::{json, Value};

use super::http::encode;
use super::units::{bytes_size, human_size_prec, short_id};
use super::{out, parse, table, CmdResult, Globals};

#[derive(Parser)]
#[command(about = "Display a live stream of container(s) resource usage statistics")]
struct StatsOpts {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Format output using a custom template
    #[arg(long, default_value = "")]
    format: String,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    #[arg(value_name = "CONTAINER")]
    containers: Vec<String>,
}

const DEFAULT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// One row of docker's stats formatter from a stats API sample.
pub fn row(given: &str, v: &Value, no_trunc: bool) -> Value {
    let u = |x: &Value| x.as_f64().unwrap_or(0.0);
    let cpu = &v["cpu_stats"];
    let pre = &v["precpu_stats"];
    let cpu_delta = u(&cpu["cpu_usage"]["total_usage"]) - u(&pre["cpu_usage"]["total_usage"]);
    let sys_delta = u(&cpu["system_cpu_usage"]) - u(&pre["system_cpu_usage"]);
    let online = match u(&cpu["online_cpus"]) {
        0.0 => cpu["cpu_usage"]["percpu_usage"]
            .as_array()
            .map_or(0.0, |a| a.len() as f64),
        n => n,
    };
    let cpu_pct = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * online * 100.0
    } else {
        0.0
    };
    let mem = &v["memory_stats"];
    let usage = u(&mem["usage"]);
    let inactive = mem["stats"]["total_inactive_file"]
        .as_f64()
        .or_else(|| mem["stats"]["inactive_file"].as_f64())
        .unwrap_or(0.0);
    let used = if inactive < usage {
        usage - inactive
    } else {
        usage
    };
    let limit = u(&mem["limit"]);
    let mem_pct = if limit > 0.0 {
        used / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in v["networks"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
    {
        rx += u(&n["rx_bytes"]);
        tx += u(&n["tx_bytes"]);
    }
    let (mut rd, mut wr) = (0.0, 0.0);
    for e in v["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().unwrap_or("").to_ascii_lowercase().as_str() {
            "read" => rd += u(&e["value"]),
            "write" => wr += u(&e["value"]),
            _ => {}
        }
    }
    let id = v["id"].as_str().unwrap_or("");
    json!({
        "Container": given,
        "ID": if no_trunc { id.to_string() } else { short_id(id) },
        "Name": v["name"].as_str().unwrap_or("").trim_start_matches('/'),
        "CPUPerc": format!("{cpu_pct:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(used), bytes_size(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", human_size_prec(rx, 3), human_size_prec(tx, 3)),
        "BlockIO": format!("{} / {}", human_size_prec(rd, 3), human_size_prec(wr, 3)),
        "PIDs": v["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

/// `berth stats`.
pub fn stats(args: &[String], g: &Globals) -> CmdResult {
    let o: StatsOpts = parse("stats", "berth stats [OPTIONS] [CONTAINER...]", args)?;
    let mut client = g.client()?;
    let header = json!({
        "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
        "PIDs": "PIDS",
    });
    loop {
        let names: Vec<String> = if o.containers.is_empty() {
            let path = if o.all {
                "/containers/json?all=1"
            } else {
                "/containers/json"
            };
            client
                .get_json(path)?
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["Id"].as_str().map(String::from))
                .collect()
        } else {
            o.containers.clone()
        };
        let mut rows = Vec::new();
        let mut failed = false;
        for n in &names {
            match client.get_json(&format!("/containers/{}/stats?stream=0", encode(n))) {
                Ok(v) => rows.push(row(n, &v, o.no_trunc)),
                Err(e) => {
                    failed = true;
                    eprintln!("{e}");
                }
            }
        }
        let text = table::render(&o.format, DEFAULT, &header, &rows)?;
        if o.no_stream {
            out(&text)?;
            return Ok(i32::from(failed));
        }
        // docker redraws the screen on every sample.
        out(&format!("\x1b[2J\x1b[H{text}"))?;
        if failed && rows.is_empty() {
            return Ok(1);
        }
    }
}
