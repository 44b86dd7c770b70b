//! `logs` and `inspect`, plus the stream helpers attach shares: demuxing docker's 8-byte frames and
//! re-indenting inspect JSON in the daemon's key order.

use std::io::{Read, Write};

use clap::Parser;
use serde_json::Value;

use super::http::{encode, with_query, Client, HttpError};
use super::{out, parse, table, CliError, CmdResult, Globals};

#[derive(Parser)]
#[command(about = "Fetch the logs of a container")]
struct LogsOpts {
    /// Show extra details provided to logs
    #[arg(long)]
    details: bool,
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show logs since timestamp or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show logs before a timestamp or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// docker's relative times (`42m`, `1h30m`, `10s`) or timestamps for `--since`/`--until`, as unix seconds.
pub fn parse_since(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return s.to_string();
    }
    if let Some(t) = super::units::parse_rfc3339(s) {
        return format!("{t:.9}");
    }
    let mut total = 0.0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().unwrap_or(0.0);
        num.clear();
        total += n * match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return s.to_string(),
        };
    }
    format!("{:.0}", super::units::now_secs() - total)
}

/// Copies a multiplexed (8-byte framed) stream to stdout/stderr until EOF.
pub fn demux(r: &mut impl Read) -> std::io::Result<()> {
    let mut head = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    loop {
        if let Err(e) = r.read_exact(&mut head) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Ok(());
            }
            return Err(e);
        }
        let mut left = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        while left > 0 {
            let n = r.read(&mut buf[..left.min(32 * 1024)])?;
            if n == 0 {
                return Ok(());
            }
            left -= n;
            if head[0] == 2 {
                let mut e = stderr.lock();
                e.write_all(&buf[..n])?;
                e.flush()?;
            } else {
                let mut o = stdout.lock();
                o.write_all(&buf[..n])?;
                o.flush()?;
            }
        }
    }
}

/// Copies a raw (tty) stream to stdout until EOF.
pub fn copy_raw(r: &mut impl Read) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    let stdout = std::io::stdout();
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let mut o = stdout.lock();
        o.write_all(&buf[..n])?;
        o.flush()?;
    }
}

/// `berth logs`.
pub fn logs(args: &[String], g: &Globals) -> CmdResult {
    let o: LogsOpts = parse("logs", "berth logs [OPTIONS] CONTAINER", args)?;
    let mut client = g.client()?;
    let info = client.get_json(&format!("/containers/{}/json", encode(&o.container)))?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let mut q = vec![
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
        ("tail", o.tail.clone()),
    ];
    if o.follow {
        q.push(("follow", "1".into()));
    }
    if o.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if o.details {
        q.push(("details", "1".into()));
    }
    if let Some(s) = &o.since {
        q.push(("since", parse_since(s)));
    }
    if let Some(s) = &o.until {
        q.push(("until", parse_since(s)));
    }
    let mut resp = client.request(
        "GET",
        &with_query(&format!("/containers/{}/logs", encode(&o.container)), &q),
        &[],
        super::http::Body::None,
    )?;
    let r = if tty {
        copy_raw(&mut resp)
    } else {
        demux(&mut resp)
    };
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        r => {
            r?;
            Ok(0)
        }
    }
}

#[derive(Parser)]
#[command(about = "Return low-level information on Berth objects")]
struct InspectOpts {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    size: bool,
    /// Return JSON for specified type
    #[arg(long = "type")]
    typ: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    names: Vec<String>,
}

/// Re-indents raw JSON text with 4 spaces like Go's `json.MarshalIndent`, keeping the daemon's key order
/// (parsing into a `Value` would sort keys). Empty objects and arrays stay `{}` / `[]`.
pub fn reindent(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    let nl = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 4));
    };
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_str = true;
                out.push(c);
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                let next = raw[i + 1..]
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .map(|p| i + 1 + p);
                if let Some(n) = next.filter(|&n| raw[n] == close) {
                    out.push(c);
                    out.push(close);
                    i = n + 1;
                    continue;
                }
                out.push(c);
                depth += 1;
                nl(&mut out, depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                nl(&mut out, depth);
                out.push(c);
            }
            b',' => {
                out.push(c);
                nl(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn inspect_one(
    client: &mut Client,
    name: &str,
    typ: Option<&str>,
    size: bool,
) -> Result<Vec<u8>, CliError> {
    let types: &[&str] = match typ {
        Some("container") => &["container"],
        Some("image") => &["image"],
        Some("volume") => &["volume"],
        Some("network") => &["network"],
        Some(other) => {
            return Err(CliError::Msg(format!(
                "\"{other}\" is not a valid value for --type"
            )))
        }
        None => &["container", "image", "volume", "network"],
    };
    for t in types {
        let path = match *t {
            "container" => with_query(
                &format!("/containers/{}/json", encode(name)),
                &if size {
                    vec![("size", "1".to_string())]
                } else {
                    vec![]
                },
            ),
            "image" => format!("/images/{}/json", encode(name)),
            "volume" => format!("/volumes/{}", encode(name)),
            _ => format!("/networks/{}", encode(name)),
        };
        match client
            .request("GET", &path, &[], super::http::Body::None)
            .and_then(|r| r.bytes())
        {
            Ok(v) => return Ok(v),
            Err(HttpError::Api {
                status: 404 | 400 | 501,
                message,
            }) => {
                if types.len() == 1 {
                    return Err(CliError::Msg(format!(
                        "Error response from daemon: {}",
                        message_or(message, t, name)
                    )));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CliError::Msg(format!("Error: No such object: {name}")))
}

fn message_or(message: String, typ: &str, name: &str) -> String {
    if message.is_empty() {
        format!("No such {typ}: {name}")
    } else {
        message
    }
}

/// `berth inspect`, `berth container inspect`, `berth image inspect`.
pub fn inspect(args: &[String], g: &Globals, typ: Option<&str>) -> CmdResult {
    let o: InspectOpts = parse(
        "inspect",
        "berth inspect [OPTIONS] NAME|ID [NAME|ID...]",
        args,
    )?;
    let typ = typ.or(o.typ.as_deref());
    let mut client = g.client()?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for n in &o.names {
        match inspect_one(&mut client, n, typ, o.size) {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e.to_string()),
        }
    }
    match o.format.as_deref() {
        Some(f) if !f.is_empty() => {
            let mut s = String::new();
            for raw in &found {
                let v: Value = serde_json::from_slice(raw).map_err(HttpError::from)?;
                s.push_str(&table::render_one(f, &v, false)?);
            }
            out(&s)?;
        }
        _ => {
            let mut all = b"[".to_vec();
            for (n, raw) in found.iter().enumerate() {
                if n > 0 {
                    all.push(b',');
                }
                all.extend_from_slice(raw);
            }
            all.push(b']');
            out(&format!("{}\n", reindent(&all)))?;
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(i32::from(!errors.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demux_splits_streams() {
        let mut data = vec![1u8, 0, 0, 0, 0, 0, 0, 0];
        let mut r: &[u8] = &data;
        demux(&mut r).expect("empty frame");
        data.clear();
        let mut r: &[u8] = &data;
        demux(&mut r).expect("eof");
    }

    #[test]
    fn reindent_keeps_order_like_go() {
        let raw = br#"{"Id":"x","Args":[],"State":{"Status":"exited","ExitCode":0},"Env":["A=1","B=\"{,}\""],"L":{}}"#;
        let want = "{\n    \"Id\": \"x\",\n    \"Args\": [],\n    \"State\": {\n        \"Status\": \"exited\",\n        \"ExitCode\": 0\n    },\n    \"Env\": [\n        \"A=1\",\n        \"B=\\\"{,}\\\"\"\n    ],\n    \"L\": {}\n}";
        assert_eq!(reindent(raw), want);
        assert_eq!(reindent(b"[]"), "[]");
    }

    #[test]
    fn since_parsing() {
        assert_eq!(parse_since("1700000000"), "1700000000");
        let now = crate::client::units::now_secs();
        let v: f64 = parse_since("1h").parse().expect("num");
        assert!((now - 3600.0 - v).abs() < 5.0);
    }
}
