//! `berth pause`, `unpause` and `top`.

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
