//! Container verbs other than run/create: `ps`, `start`, `stop`, `restart`, `kill`, `rm`, `logs`, `inspect`,
//! `rename`, `wait`, `container prune`.

use clap::Parser;
use serde_json::{json, Value};

use super::http::{encode, with_query, HttpError};
use super::units::{ago, ellipsis, go_quote, human_size, human_size_prec, short_id};
use super::{confirm, filters_json, out, parse, table, CliError, CmdResult, Globals};

/// docker's default `ps` table.
pub const PS_FORMAT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// docker's column titles for container fields.
pub fn ps_header() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
        "Names": "NAMES", "Labels": "LABELS", "Label": "LABEL", "Mounts": "MOUNTS", "Networks": "NETWORKS",
        "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM",
    })
}

/// docker's `DisplayablePorts`: sorted, consecutive unpublished (or same-number) ports grouped into ranges,
/// then host mappings: `80-81/tcp, 0.0.0.0:8080->80/tcp`.
pub fn display_ports(ports: &Value) -> String {
    struct P {
        ip: String,
        private: u64,
        public: u64,
        typ: String,
    }
    let mut list: Vec<P> = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| P {
            ip: p["IP"].as_str().unwrap_or("").to_string(),
            private: p["PrivatePort"].as_u64().unwrap_or(0),
            public: p["PublicPort"].as_u64().unwrap_or(0),
            typ: p["Type"].as_str().unwrap_or("tcp").to_string(),
        })
        .collect();
    list.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.typ).cmp(&(b.private, &b.ip, b.public, &b.typ))
    });
    let form = |key: &str, first: u64, last: u64| {
        // Keys are "type" or "ip/type"; an IPv6 ip has no '/', so the split is unambiguous.
        let (ip, typ) = key.rsplit_once('/').map_or(("", key), |(i, t)| (i, t));
        let mut g = first.to_string();
        if first != last {
            g = format!("{g}-{last}");
        }
        if !ip.is_empty() {
            g = format!("{ip}:{g}->{g}");
        }
        format!("{g}/{typ}")
    };
    let mut groups: Vec<(String, u64, u64)> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for p in &list {
        let mut key = p.typ.clone();
        if !p.ip.is_empty() {
            if p.public != p.private {
                let host = if p.ip.contains(':') {
                    format!("[{}]", p.ip)
                } else {
                    p.ip.clone()
                };
                host_mappings.push(format!("{host}:{}->{}/{}", p.public, p.private, p.typ));
                continue;
            }
            key = format!("{}/{}", p.ip, p.typ);
        }
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            None => groups.push((key, p.private, p.private)),
            Some(g) if p.private == g.2 + 1 => g.2 = p.private,
            Some(g) => {
                result.push(form(&g.0, g.1, g.2));
                g.1 = p.private;
                g.2 = p.private;
            }
        }
    }
    for (k, first, last) in &groups {
        result.push(form(k, *first, *last));
    }
    result.extend(host_mappings);
    result.join(", ")
}

fn go_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

fn labels_string(labels: &Value) -> String {
    let mut v: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    v.sort();
    v.join(",")
}

/// Turns one `/containers/json` summary into docker's formatter fields (all strings).
pub fn ps_row(c: &Value, trunc: bool) -> Value {
    let id = c["Id"].as_str().unwrap_or("");
    let mut image = c["Image"].as_str().unwrap_or("").to_string();
    if trunc && image.starts_with("sha256:") {
        image = short_id(&image);
    }
    let command = c["Command"].as_str().unwrap_or("");
    let command = go_quote(&if trunc {
        ellipsis(command, 20)
    } else {
        command.to_string()
    });
    let names: Vec<String> = c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    let created = c["Created"].as_i64().unwrap_or(0);
    let size = match (c["SizeRw"].as_f64(), c["SizeRootFs"].as_f64()) {
        (Some(rw), Some(root)) => format!(
            "{} (virtual {})",
            human_size_prec(rw, 3),
            human_size_prec(root, 3)
        ),
        (Some(rw), None) => human_size_prec(rw, 3),
        _ => "0B".into(),
    };
    let mounts: Vec<String> = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            m["Name"]
                .as_str()
                .filter(|s| !s.is_empty())
                .or(m["Source"].as_str())
                .unwrap_or("")
                .to_string()
        })
        .map(|m| if trunc { ellipsis(&m, 15) } else { m })
        .collect();
    let local_volumes = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["Driver"].as_str() == Some("local"))
        .count();
    let mut networks: Vec<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    networks.sort();
    json!({
        "Command": command,
        "CreatedAt": go_time(created),
        "ID": if trunc { short_id(id) } else { id.to_string() },
        "Image": image,
        "Labels": labels_string(&c["Labels"]),
        "_Label": c["Labels"].as_object().cloned().unwrap_or_default(),
        "LocalVolumes": local_volumes.to_string(),
        "Mounts": mounts.join(","),
        "Names": names.join(","),
        "Networks": networks.join(","),
        "Platform": Value::Null,
        "Ports": display_ports(&c["Ports"]),
        "RunningFor": ago(created as f64),
        "Size": size,
        "State": c["State"].as_str().unwrap_or(""),
        "Status": c["Status"].as_str().unwrap_or(""),
    })
}

#[derive(Parser)]
#[command(about = "List containers")]
struct PsOpts {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, default_value = "")]
    format: String,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_negative_numbers = true)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
}

/// `berth ps`.
pub fn ps(args: &[String], g: &Globals) -> CmdResult {
    let o: PsOpts = parse("ps", "berth ps [OPTIONS]", args)?;
    let mut q: Vec<(&str, String)> = Vec::new();
    let limit = if o.latest { 1 } else { o.last };
    if o.all || limit > 0 {
        q.push(("all", "1".into()));
    }
    if limit > 0 {
        q.push(("limit", limit.to_string()));
    }
    if !o.format.is_empty() && !o.quiet {
        // Like docker, the template is tried before listing, so a bad one fails even with no containers.
        table::render(
            &o.format,
            PS_FORMAT,
            &ps_header(),
            &[ps_row(&json!({}), true)],
        )?;
    }
    let size = o.size || o.format.contains(".Size");
    if size {
        q.push(("size", "1".into()));
    }
    if let Some(f) = filters_json(&o.filter)? {
        q.push(("filters", f));
    }
    let mut client = g.client()?;
    let list = client.get_json(&with_query("/containers/json", &q))?;
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| ps_row(c, !o.no_trunc))
        .collect();
    let format = if o.quiet {
        "{{.ID}}".to_string()
    } else if o.format.is_empty() && o.size {
        format!("{PS_FORMAT}\t{{{{.Size}}}}")
    } else {
        o.format.clone()
    };
    out(&table::render(&format, PS_FORMAT, &ps_header(), &rows)?)?;
    Ok(0)
}

/// Runs `f` for each name, printing the name on success and docker's error on failure; exit 1 if any failed.
fn each(names: &[String], f: impl FnMut(&str) -> Result<Option<String>, CliError>) -> CmdResult {
    each_or(names, None, f)
}

/// [`each`], then docker's summary line (`Error: failed to start containers: a, b`) when some failed.
fn each_or(
    names: &[String],
    summary: Option<&str>,
    mut f: impl FnMut(&str) -> Result<Option<String>, CliError>,
) -> CmdResult {
    let mut failed = Vec::new();
    for n in names {
        match f(n) {
            Ok(Some(line)) => out(&format!("{line}\n"))?,
            Ok(None) => {}
            Err(e) => {
                failed.push(n.as_str());
                eprintln!("{e}");
            }
        }
    }
    if let (Some(s), false) = (summary, failed.is_empty()) {
        eprintln!("Error: {s}: {}", failed.join(", "));
    }
    Ok(i32::from(!failed.is_empty()))
}

#[derive(Parser)]
#[command(about = "Start one or more stopped containers")]
struct StartOpts {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// `berth start`.
pub fn start(args: &[String], g: &Globals) -> CmdResult {
    let o: StartOpts = parse(
        "start",
        "berth start [OPTIONS] CONTAINER [CONTAINER...]",
        args,
    )?;
    let mut client = g.client()?;
    if o.attach || o.interactive {
        if o.containers.len() > 1 {
            return Err(CliError::Msg(
                "you cannot start and attach multiple containers at once".into(),
            ));
        }
        return super::run::start_attached(
            &mut client,
            &o.containers[0],
            o.interactive,
            o.detach_keys.as_deref(),
        );
    }
    each_or(&o.containers, Some("failed to start containers"), |c| {
        client.request(
            "POST",
            &format!("/containers/{}/start", encode(c)),
            &[],
            super::http::Body::None,
        )?;
        Ok(Some(c.to_string()))
    })
}

#[derive(Parser)]
#[command(about = "Stop one or more running containers")]
struct StopOpts {
    /// Signal to send to the container
    #[arg(short, long)]
    signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(short, long, allow_negative_numbers = true)]
    time: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// `berth stop`.
pub fn stop(args: &[String], g: &Globals) -> CmdResult {
    let o: StopOpts = parse(
        "stop",
        "berth stop [OPTIONS] CONTAINER [CONTAINER...]",
        args,
    )?;
    stop_or_restart(&o, "stop", g)
}

/// `berth restart`.
pub fn restart(args: &[String], g: &Globals) -> CmdResult {
    let o: StopOpts = parse(
        "restart",
        "berth restart [OPTIONS] CONTAINER [CONTAINER...]",
        args,
    )?;
    stop_or_restart(&o, "restart", g)
}

fn stop_or_restart(o: &StopOpts, action: &str, g: &Globals) -> CmdResult {
    let mut client = g.client()?;
    let mut q = Vec::new();
    if let Some(t) = o.time {
        q.push(("t", t.to_string()));
    }
    if let Some(s) = &o.signal {
        q.push(("signal", s.clone()));
    }
    each(&o.containers, |c| {
        client.request(
            "POST",
            &with_query(&format!("/containers/{}/{action}", encode(c)), &q),
            &[],
            super::http::Body::None,
        )?;
        Ok(Some(c.to_string()))
    })
}

#[derive(Parser)]
#[command(about = "Kill one or more running containers")]
struct KillOpts {
    /// Signal to send to the container
    #[arg(short, long)]
    signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// `berth kill`.
pub fn kill(args: &[String], g: &Globals) -> CmdResult {
    let o: KillOpts = parse(
        "kill",
        "berth kill [OPTIONS] CONTAINER [CONTAINER...]",
        args,
    )?;
    let mut client = g.client()?;
    let q: Vec<(&str, String)> = o.signal.iter().map(|s| ("signal", s.clone())).collect();
    each(&o.containers, |c| {
        client.request(
            "POST",
            &with_query(&format!("/containers/{}/kill", encode(c)), &q),
            &[],
            super::http::Body::None,
        )?;
        Ok(Some(c.to_string()))
    })
}

#[derive(Parser)]
#[command(about = "Remove one or more containers")]
struct RmOpts {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove the specified link
    #[arg(short, long)]
    link: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// `berth rm`.
pub fn rm(args: &[String], g: &Globals) -> CmdResult {
    let o: RmOpts = parse("rm", "berth rm [OPTIONS] CONTAINER [CONTAINER...]", args)?;
    let mut client = g.client()?;
    let mut q = Vec::new();
    if o.force {
        q.push(("force", "1".to_string()));
    }
    if o.volumes {
        q.push(("v", "1".to_string()));
    }
    if o.link {
        q.push(("link", "1".to_string()));
    }
    each(&o.containers, |c| {
        let c = c.trim_start_matches('/');
        match client.request(
            "DELETE",
            &with_query(&format!("/containers/{}", encode(c)), &q),
            &[],
            super::http::Body::None,
        ) {
            Ok(_) => Ok(Some(c.to_string())),
            // docker rm -f of a missing container is not an error.
            Err(HttpError::Api { status: 404, .. }) if o.force => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
}

#[derive(Parser)]
#[command(about = "Rename a container")]
struct RenameOpts {
    #[arg(value_name = "CONTAINER")]
    container: String,
    #[arg(value_name = "NEW_NAME")]
    new_name: String,
}

/// `berth rename`.
pub fn rename(args: &[String], g: &Globals) -> CmdResult {
    let o: RenameOpts = parse("rename", "berth rename CONTAINER NEW_NAME", args)?;
    let mut client = g.client()?;
    let q = [("name", o.new_name.trim_start_matches('/').to_string())];
    let path = with_query(&format!("/containers/{}/rename", encode(&o.container)), &q);
    if let Err(e) = client.request("POST", &path, &[], super::http::Body::None) {
        return Err(CliError::Exit {
            code: 1,
            msg: Some(format!(
                "{e}\nError: failed to rename container named {}",
                o.container
            )),
        });
    }
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Block until one or more containers stop, then print their exit codes")]
struct WaitOpts {
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// `berth wait`.
pub fn wait(args: &[String], g: &Globals) -> CmdResult {
    let o: WaitOpts = parse("wait", "berth wait CONTAINER [CONTAINER...]", args)?;
    let mut client = g.client()?;
    each(&o.containers, |c| {
        let v = client.post_json(&format!("/containers/{}/wait", encode(c)), None)?;
        Ok(Some(v["StatusCode"].as_i64().unwrap_or(0).to_string()))
    })
}

#[derive(Parser)]
#[command(about = "Remove all stopped containers")]
struct PruneOpts {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

/// Prints a prune report like docker's: `Deleted Containers:` ... `Total reclaimed space: 1.2MB`.
pub fn prune_report(title: &str, ids: &[String], reclaimed: f64) -> String {
    let mut s = String::new();
    if !ids.is_empty() {
        s.push_str(title);
        s.push_str(":\n");
        for id in ids {
            s.push_str(id);
            s.push('\n');
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed)
    ));
    s
}

/// `berth container prune`.
pub fn prune(args: &[String], g: &Globals) -> CmdResult {
    let o: PruneOpts = parse("container prune", "berth container prune [OPTIONS]", args)?;
    if !o.force
        && !confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )
    {
        return Ok(0);
    }
    let mut client = g.client()?;
    let q: Vec<(&str, String)> = filters_json(&o.filter)?
        .into_iter()
        .map(|f| ("filters", f))
        .collect();
    let v = client.post_json(&with_query("/containers/prune", &q), None)?;
    let ids: Vec<String> = v["ContainersDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect();
    out(&prune_report(
        "Deleted Containers",
        &ids,
        v["SpaceReclaimed"].as_f64().unwrap_or(0.0),
    ))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_like_docker() {
        let c = json!({
            "Id": "0123456789abcdef0123456789abcdef", "Names": ["/hopeful_turing"], "Image": "hello-world",
            "Command": "/bin/sh -c 'sleep 1000; echo done'", "Created": 0, "Status": "Exited (0) 5 seconds ago",
            "State": "exited", "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}, {"PrivatePort": 443, "Type": "tcp"}],
            "Labels": {"b": "2", "a": "1"}, "SizeRw": 12, "SizeRootFs": 13256
        });
        let r = ps_row(&c, true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Command"], "\"/bin/sh -c 'sleep 1…\"");
        assert_eq!(r["Names"], "hopeful_turing");
        assert_eq!(r["Ports"], "443/tcp, 0.0.0.0:8080->80/tcp");
        assert_eq!(r["Labels"], "a=1,b=2");
        assert_eq!(r["Size"], "12B (virtual 13.3kB)");
        assert_eq!(r["CreatedAt"], "1970-01-01 00:00:00 +0000 UTC");
        let t = table::render("", PS_FORMAT, &ps_header(), &[r]).expect("table");
        let mut lines = t.lines();
        assert_eq!(
            lines.next(),
            Some("CONTAINER ID   IMAGE         COMMAND                  CREATED        STATUS                     PORTS                           NAMES")
        );
        assert!(lines
            .next()
            .expect("row")
            .starts_with("0123456789ab   hello-world   \"/bin/sh -c 'sleep 1…\"   "));
    }

    #[test]
    fn ports_group_like_docker() {
        let p = json!([
            {"PrivatePort": 81, "Type": "tcp"}, {"PrivatePort": 80, "Type": "tcp"}, {"PrivatePort": 53, "Type": "udp"},
            {"IP": "0.0.0.0", "PrivatePort": 9000, "PublicPort": 9000, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        ]);
        assert_eq!(
            display_ports(&p),
            "53/udp, 80-81/tcp, 0.0.0.0:9000->9000/tcp, [::]:8080->80/tcp"
        );
        assert_eq!(display_ports(&json!([])), "");
    }

    #[test]
    fn prune_reports() {
        assert_eq!(
            prune_report("Deleted Containers", &[], 0.0),
            "Total reclaimed space: 0B\n"
        );
        assert_eq!(
            prune_report("Deleted Containers", &["a".into()], 1500.0),
            "Deleted Containers:\na\n\nTotal reclaimed space: 1.5kB\n"
        );
    }
}
