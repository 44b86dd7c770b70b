//! `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`: the container's published ports, as docker prints them
//! (`80/tcp -> 127.0.0.1:8080`, or just `127.0.0.1:8080` when one port is asked for).

use clap::Parser;
use serde_json::Value;

use super::http::encode;
use super::{out, parse, CliError, CmdResult, Globals};

#[derive(Parser)]
#[command(about = "List port mappings or a specific mapping for the container")]
struct PortOpts {
    #[arg(value_name = "CONTAINER")]
    container: String,
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    private: Option<String>,
}

/// `berth port`.
pub fn port(args: &[String], g: &Globals) -> CmdResult {
    let o: PortOpts = parse("port", "berth port CONTAINER [PRIVATE_PORT[/PROTO]]", args)?;
    let mut client = g.client()?;
    let c = client.get_json(&format!("/containers/{}/json", encode(&o.container)))?;
    let ports = c["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let bindings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|b| {
                        let ip = b["HostIp"]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .unwrap_or("0.0.0.0");
                        format!("{ip}:{}", b["HostPort"].as_str().unwrap_or(""))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut text = String::new();
    if let Some(want) = &o.private {
        let key = if want.contains('/') {
            want.clone()
        } else {
            format!("{want}/tcp")
        };
        let found = ports.get(&key).map(bindings).unwrap_or_default();
        if found.is_empty() {
            return Err(CliError::Exit {
                code: 1,
                msg: Some(format!(
                    "Error: No public port '{key}' published for {}",
                    o.container
                )),
            });
        }
        for b in found {
            text.push_str(&b);
            text.push('\n');
        }
    } else {
        let mut keys: Vec<&String> = ports.keys().collect();
        keys.sort_by_key(|k| {
            let (n, proto) = k.split_once('/').unwrap_or((k, ""));
            (n.parse::<u32>().unwrap_or(0), proto.to_string())
        });
        for k in keys {
            for b in bindings(&ports[k]) {
                text.push_str(&format!("{k} -> {b}\n"));
            }
        }
    }
    out(&text)?;
    Ok(0)
}
