//! `berth pause`, `unpause`, `top`, `diff` and `update`.

use clap::Parser;

use super::http::encode;
use super::{out, parse, CmdResult, Globals};

#[derive(Parser)]
#[command(about = "Pause all processes within one or more containers")]
struct PauseOpts {
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

fn each_post(verb: &str, args: &[String], g: &Globals) -> CmdResult {
    let usage = format!("berth {verb} CONTAINER [CONTAINER...]");
    let o: PauseOpts = parse(verb, &usage, args)?;
    let mut client = g.client()?;
    let mut failed = false;
    for c in &o.containers {
        match client.request(
            "POST",
            &format!("/containers/{}/{verb}", encode(c)),
            &[],
            super::http::Body::None,
        ) {
            Ok(_) => out(&format!("{c}\n"))?,
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    Ok(i32::from(failed))
}

/// `berth pause`.
pub fn pause(args: &[String], g: &Globals) -> CmdResult {
    each_post("pause", args, g)
}

/// `berth unpause`.
pub fn unpause(args: &[String], g: &Globals) -> CmdResult {
    each_post("unpause", args, g)
}

#[derive(Parser)]
#[command(about = "Display the running processes of a container")]
struct TopOpts {
    #[arg(value_name = "CONTAINER")]
    container: String,
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ps OPTIONS"
    )]
    ps_args: Vec<String>,
}

/// `berth top CONTAINER [ps OPTIONS]`: docker's columns (a tabwriter with min width 20, padding 3).
pub fn top(args: &[String], g: &Globals) -> CmdResult {
    let o: TopOpts = parse("top", "berth top CONTAINER [ps OPTIONS]", args)?;
    let mut client = g.client()?;
    let mut path = format!("/containers/{}/top", encode(&o.container));
    if !o.ps_args.is_empty() {
        path.push_str(&format!("?ps_args={}", encode(&o.ps_args.join(" "))));
    }
    let v = client.get_json(&path)?;
    let row = |a: &serde_json::Value| -> Vec<String> {
        a.as_array()
            .into_iter()
            .flatten()
            .map(|x| x.as_str().unwrap_or("").to_string())
            .collect()
    };
    let mut rows = vec![row(&v["Titles"])];
    rows.extend(v["Processes"].as_array().into_iter().flatten().map(row));
    let cols = rows[0].len();
    let mut width = vec![0; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max((c.chars().count() + 3).max(20));
        }
    }
    let mut s = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < cols {
                line.push_str(&format!("{c:<w$}", w = width[i]));
            } else {
                line.push_str(c);
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    out(&s)?;
    Ok(0)
}

fn mem(s: &str) -> Result<i64, String> {
    super::units::ram_in_bytes(s).map_err(|e| e.to_string())
}

fn mem_swap(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    mem(s)
}

#[derive(Parser)]
#[command(about = "Update configuration of one or more containers")]
struct UpdateOpts {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_parser = mem)]
    memory: Option<i64>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_parser = mem)]
    memory_reservation: Option<i64>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_parser = mem_swap, allow_hyphen_values = true)]
    memory_swap: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// `berth update`: docker's UpdateConfig (0 or empty leaves a value as it is).
pub fn update(args: &[String], g: &Globals) -> CmdResult {
    let o: UpdateOpts = parse(
        "update",
        "berth update [OPTIONS] CONTAINER [CONTAINER...]",
        args,
    )?;
    let restart = match &o.restart {
        Some(r) => super::runopts::parse_restart(r).map_err(|e| super::CliError::Exit {
            code: 125,
            msg: Some(format!("{e}\nSee 'berth update --help'.")),
        })?,
        None => serde_json::json!({"Name": "", "MaximumRetryCount": 0}),
    };
    let body = serde_json::json!({
        "BlkioWeight": o.blkio_weight.unwrap_or(0),
        "CpuPeriod": o.cpu_period.unwrap_or(0),
        "CpuQuota": o.cpu_quota.unwrap_or(0),
        "CpuShares": o.cpu_shares.unwrap_or(0),
        "NanoCpus": o.cpus.map_or(0, |c| (c * 1e9).round() as i64),
        "CpusetCpus": o.cpuset_cpus.clone().unwrap_or_default(),
        "CpusetMems": o.cpuset_mems.clone().unwrap_or_default(),
        "Memory": o.memory.unwrap_or(0),
        "MemoryReservation": o.memory_reservation.unwrap_or(0),
        "MemorySwap": o.memory_swap.unwrap_or(0),
        "PidsLimit": o.pids_limit,
        "RestartPolicy": restart,
    });
    let mut client = g.client()?;
    let mut failed = false;
    for c in &o.containers {
        match client.post_json(&format!("/containers/{}/update", encode(c)), Some(&body)) {
            Ok(_) => out(&format!("{c}\n"))?,
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    Ok(i32::from(failed))
}

#[derive(Parser)]
#[command(about = "Inspect changes to files or directories on a container's filesystem")]
struct DiffOpts {
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// `berth diff CONTAINER`: one `C|A|D PATH` line per change, as docker prints them.
pub fn diff(args: &[String], g: &Globals) -> CmdResult {
    let o: DiffOpts = parse("diff", "berth diff CONTAINER", args)?;
    let mut client = g.client()?;
    let v = client.get_json(&format!("/containers/{}/changes", encode(&o.container)))?;
    let mut s = String::new();
    for c in v.as_array().into_iter().flatten() {
        let kind = match c["Kind"].as_u64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        s.push_str(&format!("{kind} {}\n", c["Path"].as_str().unwrap_or("")));
    }
    out(&s)?;
    Ok(0)
}
