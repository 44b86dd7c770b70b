//! `berth volume create|ls|rm|prune` (inspect is the shared `inspect --type volume`), over the API's
//! `/volumes` endpoints, with docker's flags and output.

use clap::Parser;
use serde_json::{json, Map, Value};

use super::http::encode;
use super::{confirm, filters_json, out, parse, table, CliError, CmdResult, Globals};

const LS_FORMAT: &str = "table {{.Driver}}\t{{.Name}}";

fn key_values(list: &[String]) -> Result<Map<String, Value>, CliError> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), json!(v))),
            _ => Err(CliError::Msg(format!(
                "invalid argument \"{kv}\": must be KEY=VALUE"
            ))),
        })
        .collect()
}

#[derive(Parser)]
#[command(about = "Create a volume")]
struct CreateOpts {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name")]
    name_flag: Option<String>,
    #[arg(value_name = "VOLUME")]
    name: Option<String>,
}

/// `berth volume create [NAME]`: prints the volume's name.
pub fn create(args: &[String], g: &Globals) -> CmdResult {
    let o: CreateOpts = parse(
        "volume create",
        "berth volume create [OPTIONS] [VOLUME]",
        args,
    )?;
    let name = match (&o.name_flag, &o.name) {
        (Some(a), Some(b)) if a != b => {
            return Err(CliError::Msg(format!(
                "conflicting options: cannot specify a volume-name through both --name and as a positional arg ({a} and {b})"
            )))
        }
        (a, b) => a.clone().or(b.clone()).unwrap_or_default(),
    };
    let labels: Map<String, Value> = o
        .label
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), json!(v)),
            None => (kv.clone(), json!("")),
        })
        .collect();
    let body = json!({
        "Name": name, "Driver": o.driver, "DriverOpts": key_values(&o.opt)?, "Labels": labels,
    });
    let v = g.client()?.post_json("/volumes/create", Some(&body))?;
    out(&format!("{}\n", v["Name"].as_str().unwrap_or("")))?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "List volumes")]
struct LsOpts {
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, default_value = "")]
    format: String,
}

/// `berth volume ls`.
pub fn ls(args: &[String], g: &Globals) -> CmdResult {
    let o: LsOpts = parse("volume ls", "berth volume ls [OPTIONS]", args)?;
    let mut client = g.client()?;
    let path = match filters_json(&o.filter)? {
        Some(f) => format!("/volumes?filters={}", encode(&f)),
        None => "/volumes".to_string(),
    };
    let list = client.get_json(&path)?;
    let mut rows: Vec<Value> = list["Volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let labels = v["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            json!({
                "Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"],
                "Mountpoint": v["Mountpoint"], "Labels": labels, "CreatedAt": v["CreatedAt"],
                "Links": "N/A", "Size": "N/A", "Availability": "N/A", "Group": "N/A",
            })
        })
        .collect();
    rows.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    let format = if o.quiet {
        "{{.Name}}"
    } else {
        o.format.as_str()
    };
    let header = json!({"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "CreatedAt": "CREATED AT", "Links": "LINKS",
        "Size": "SIZE", "Availability": "AVAILABILITY", "Group": "GROUP"});
    out(&table::render(format, LS_FORMAT, &header, &rows)?)?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Remove one or more volumes")]
struct RmOpts {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    volumes: Vec<String>,
}

/// `berth volume rm`: prints each removed name; errors go to stderr and make the exit code 1.
pub fn rm(args: &[String], g: &Globals) -> CmdResult {
    let o: RmOpts = parse(
        "volume rm",
        "berth volume rm [OPTIONS] VOLUME [VOLUME...]",
        args,
    )?;
    let mut client = g.client()?;
    let mut failed = false;
    let q = if o.force { "?force=1" } else { "" };
    for v in &o.volumes {
        match client.request(
            "DELETE",
            &format!("/volumes/{}{q}", encode(v)),
            &[],
            super::http::Body::None,
        ) {
            Ok(_) => out(&format!("{v}\n"))?,
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

#[derive(Parser)]
#[command(about = "Remove unused local volumes")]
struct PruneOpts {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

/// `berth volume prune`.
pub fn prune(args: &[String], g: &Globals) -> CmdResult {
    let o: PruneOpts = parse("volume prune", "berth volume prune [OPTIONS]", args)?;
    let what = if o.all {
        "all local volumes not used by at least one container"
    } else {
        "all anonymous local volumes not used by at least one container"
    };
    if !o.force
        && !confirm(&format!(
            "WARNING! This will remove {what}.\nAre you sure you want to continue?"
        ))
    {
        return Ok(0);
    }
    let mut filters = o.filter.clone();
    if o.all {
        filters.push("all=true".into());
    }
    let path = match filters_json(&filters)? {
        Some(f) => format!("/volumes/prune?filters={}", encode(&f)),
        None => "/volumes/prune".to_string(),
    };
    let v = g.client()?.post_json(&path, None)?;
    let names: Vec<&str> = v["VolumesDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .collect();
    let mut s = String::new();
    if !names.is_empty() {
        s.push_str(&format!("Deleted Volumes:\n{}\n\n", names.join("\n")));
    }
    let space = v["SpaceReclaimed"].as_u64().unwrap_or(0) as f64;
    s.push_str(&format!(
        "Total reclaimed space: {}\n",
        super::units::human_size(space)
    ));
    out(&s)?;
    Ok(0)
}
