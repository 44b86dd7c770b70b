//! `berth network ls|create|rm|inspect|connect|disconnect|prune`, over the API's `/networks` endpoints.

use clap::Parser;
use serde_json::{json, Map, Value};

use super::http::encode;
use super::units::short_id;
use super::{confirm, filters_json, out, parse, table, CliError, CmdResult, Globals};

const LS_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

#[derive(Parser)]
#[command(about = "List networks")]
struct LsOpts {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    no_trunc: bool,
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    #[arg(long, default_value = "")]
    format: String,
}

/// `berth network ls`.
pub fn ls(args: &[String], g: &Globals) -> CmdResult {
    let o: LsOpts = parse("network ls", "berth network ls [OPTIONS]", args)?;
    let mut client = g.client()?;
    let path = match filters_json(&o.filter)? {
        Some(f) => format!("/networks?filters={}", encode(&f)),
        None => "/networks".to_string(),
    };
    let list = client.get_json(&path)?;
    let mut rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let id = n["Id"].as_str().unwrap_or("");
            json!({
                "ID": if o.no_trunc { id.to_string() } else { short_id(id) },
                "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"],
                "IPv6": n["EnableIPv6"], "Internal": n["Internal"], "CreatedAt": n["Created"],
            })
        })
        .collect();
    rows.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    let format = if o.quiet {
        "{{.ID}}"
    } else {
        o.format.as_str()
    };
    let header = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv6": "IPV6", "Internal": "INTERNAL", "CreatedAt": "CREATED AT"});
    out(&table::render(format, LS_FORMAT, &header, &rows)?)?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Create a network")]
struct CreateOpts {
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    #[arg(long)]
    subnet: Vec<String>,
    #[arg(long)]
    gateway: Vec<String>,
    #[arg(long)]
    internal: bool,
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    #[arg(long)]
    label: Vec<String>,
    #[arg(value_name = "NETWORK")]
    name: String,
}

fn key_values(list: &[String]) -> Map<String, Value> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), json!(v)),
            None => (kv.clone(), json!("")),
        })
        .collect()
}

/// `berth network create`: prints the new network's id.
pub fn create(args: &[String], g: &Globals) -> CmdResult {
    let o: CreateOpts = parse(
        "network create",
        "berth network create [OPTIONS] NETWORK",
        args,
    )?;
    if o.gateway.len() > o.subnet.len() {
        return Err(CliError::Msg(
            "every gateway must come with a --subnet".into(),
        ));
    }
    let config: Vec<Value> = o
        .subnet
        .iter()
        .enumerate()
        .map(|(i, s)| match o.gateway.get(i) {
            Some(gw) => json!({"Subnet": s, "Gateway": gw}),
            None => json!({"Subnet": s}),
        })
        .collect();
    let body = json!({
        "Name": o.name, "Driver": o.driver, "Internal": o.internal, "CheckDuplicate": true,
        "IPAM": {"Driver": "default", "Config": config},
        "Options": key_values(&o.opt), "Labels": key_values(&o.label),
    });
    let v = g.client()?.post_json("/networks/create", Some(&body))?;
    out(&format!("{}\n", v["Id"].as_str().unwrap_or("")))?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Remove one or more networks")]
struct RmOpts {
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

/// `berth network rm`: prints each removed name; exit 1 if any failed.
pub fn rm(args: &[String], g: &Globals) -> CmdResult {
    let o: RmOpts = parse("network rm", "berth network rm NETWORK [NETWORK...]", args)?;
    let mut client = g.client()?;
    let mut failed = false;
    for n in &o.networks {
        match client.request(
            "DELETE",
            &format!("/networks/{}", encode(n)),
            &[],
            super::http::Body::None,
        ) {
            Ok(_) => out(&format!("{n}\n"))?,
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

#[derive(Parser)]
#[command(about = "Connect a container to a network")]
struct ConnectOpts {
    #[arg(long)]
    alias: Vec<String>,
    #[arg(long)]
    ip: Option<String>,
    #[arg(value_name = "NETWORK")]
    network: String,
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// `berth network connect`.
pub fn connect(args: &[String], g: &Globals) -> CmdResult {
    let o: ConnectOpts = parse(
        "network connect",
        "berth network connect [OPTIONS] NETWORK CONTAINER",
        args,
    )?;
    let mut endpoint = json!({"Aliases": o.alias});
    if let Some(ip) = &o.ip {
        endpoint["IPAMConfig"] = json!({"IPv4Address": ip});
    }
    let body = json!({"Container": o.container, "EndpointConfig": endpoint});
    g.client()?.post_json(
        &format!("/networks/{}/connect", encode(&o.network)),
        Some(&body),
    )?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Disconnect a container from a network")]
struct DisconnectOpts {
    #[arg(short, long)]
    force: bool,
    #[arg(value_name = "NETWORK")]
    network: String,
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// `berth network disconnect`.
pub fn disconnect(args: &[String], g: &Globals) -> CmdResult {
    let o: DisconnectOpts = parse(
        "network disconnect",
        "berth network disconnect [OPTIONS] NETWORK CONTAINER",
        args,
    )?;
    let body = json!({"Container": o.container, "Force": o.force});
    g.client()?.post_json(
        &format!("/networks/{}/disconnect", encode(&o.network)),
        Some(&body),
    )?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Remove all unused networks")]
struct PruneOpts {
    #[arg(short, long)]
    force: bool,
    #[arg(long = "filter")]
    filter: Vec<String>,
}

/// `berth network prune`.
pub fn prune(args: &[String], g: &Globals) -> CmdResult {
    let o: PruneOpts = parse("network prune", "berth network prune [OPTIONS]", args)?;
    if !o.force
        && !confirm("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?")
    {
        return Ok(0);
    }
    let path = match filters_json(&o.filter)? {
        Some(f) => format!("/networks/prune?filters={}", encode(&f)),
        None => "/networks/prune".to_string(),
    };
    let v = g.client()?.post_json(&path, None)?;
    let names: Vec<&str> = v["NetworksDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .collect();
    if !names.is_empty() {
        out(&format!("Deleted Networks:\n{}\n", names.join("\n")))?;
    }
    Ok(0)
}
