//! `version`, `info`, `system df`, `system prune`.

use clap::Parser;
use serde_json::{json, Value};

use super::container::{prune_report, ps_row};
use super::http::{with_query, HttpError, CLIENT_API_VERSION};
use super::image::image_rows;
use super::units::{ago, bytes_size, human_size, human_size_prec, short_id};
use super::{confirm, out, parse, table, CliError, CmdResult, Globals};

#[derive(Parser)]
#[command(about = "Show the Berth version information")]
struct VersionOpts {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

fn client_info(api: &str) -> Value {
    json!({
        "Platform": {"Name": ""},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": api,
        "DefaultAPIVersion": CLIENT_API_VERSION,
        "GitCommit": super::git_sha(),
        "GoVersion": "n/a",
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "BuildTime": "n/a",
        "Context": "default",
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Tab-separated `key:\tvalue` lines aligned like docker's `tabwriter.NewWriter(out, 20, 1, 1, ' ', 0)`.
fn align20(text: &str) -> String {
    use std::io::Write;
    let mut tw = tabwriter::TabWriter::new(Vec::new())
        .minwidth(19)
        .padding(1);
    let _ = tw.write_all(text.as_bytes());
    let _ = tw.flush();
    String::from_utf8_lossy(&tw.into_inner().unwrap_or_default()).into_owned()
}

/// Renders docker's default `version` text.
pub fn version_text(v: &Value) -> String {
    let c = &v["Client"];
    let s = |x: &Value| x.as_str().map_or_else(|| x.to_string(), str::to_string);
    let mut t = String::from("Client:\n");
    let api = s(&c["ApiVersion"]);
    let downgraded = if api != s(&c["DefaultAPIVersion"]) {
        format!(" (downgraded from {})", s(&c["DefaultAPIVersion"]))
    } else {
        String::new()
    };
    t.push_str(&format!(" Version:\t{}\n API version:\t{api}{downgraded}\n Go version:\t{}\n Git commit:\t{}\n Built:\t{}\n OS/Arch:\t{}/{}\n Context:\t{}\n",
        s(&c["Version"]), s(&c["GoVersion"]), s(&c["GitCommit"]), s(&c["BuildTime"]), s(&c["Os"]), s(&c["Arch"]), s(&c["Context"])));
    let srv = &v["Server"];
    if srv.is_object() {
        let name = srv["Platform"]["Name"].as_str().unwrap_or("");
        t.push_str(&format!(
            "\nServer:{}\n",
            if name.is_empty() {
                String::new()
            } else {
                format!(" {name}")
            }
        ));
        let comps = srv["Components"].as_array().cloned().unwrap_or_else(|| vec![json!({"Name": "Engine", "Version": srv["Version"], "Details": {
            "ApiVersion": srv["ApiVersion"], "MinAPIVersion": srv["MinAPIVersion"], "GoVersion": srv["GoVersion"], "GitCommit": srv["GitCommit"],
            "BuildTime": srv["BuildTime"], "Os": srv["Os"], "Arch": srv["Arch"], "Experimental": srv["Experimental"].as_bool().unwrap_or(false).to_string()}})]);
        for comp in comps {
            let d = &comp["Details"];
            let ds = |k: &str| {
                d[k].as_str().map_or_else(
                    || {
                        if d[k].is_null() {
                            String::new()
                        } else {
                            d[k].to_string()
                        }
                    },
                    str::to_string,
                )
            };
            t.push_str(&format!(" {}:\n", s(&comp["Name"])));
            if comp["Name"] == "Engine" {
                t.push_str(&format!("  Version:\t{}\n  API version:\t{} (minimum version {})\n  Go version:\t{}\n  Git commit:\t{}\n  Built:\t{}\n  OS/Arch:\t{}/{}\n  Experimental:\t{}\n",
                    s(&comp["Version"]), ds("ApiVersion"), ds("MinAPIVersion"), ds("GoVersion"), ds("GitCommit"), ds("BuildTime"), ds("Os"), ds("Arch"), ds("Experimental")));
            } else {
                t.push_str(&format!("  Version:\t{}\n", s(&comp["Version"])));
                let mut keys: Vec<&String> = d
                    .as_object()
                    .map(|o| o.keys().collect())
                    .unwrap_or_default();
                keys.sort();
                for k in keys {
                    t.push_str(&format!("  {k}:\t{}\n", ds(k)));
                }
            }
        }
    }
    align20(&t)
}

/// `berth version`.
pub fn version(args: &[String], g: &Globals) -> CmdResult {
    let o: VersionOpts = parse("version", "berth version [OPTIONS]", args)?;
    let mut client = g.client()?;
    let (server, err) = match client
        .api_version()
        .and_then(|_| client.get_json("/version"))
    {
        Ok(v) => (v, None),
        Err(e) => (Value::Null, Some(e)),
    };
    let api = client
        .api_version()
        .unwrap_or_else(|_| CLIENT_API_VERSION.to_string());
    let v = json!({"Client": client_info(&api), "Server": server});
    match o.format.as_deref() {
        Some(f) if !f.is_empty() => out(&table::render_one(f, &v, true)?)?,
        _ => out(&version_text(&v))?,
    }
    match err {
        Some(e) => Err(e.into()),
        None => Ok(0),
    }
}

#[derive(Parser)]
#[command(about = "Display system-wide information")]
struct InfoOpts {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

/// Renders docker's default `info` text from the `/info` JSON.
pub fn info_text(i: &Value) -> String {
    let s = |k: &str| match &i[k] {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        o => o.to_string(),
    };
    let mut t = String::new();
    t.push_str(&format!(
        "Client:\n Version:    {}\n Context:    default\n Debug Mode: false\n\nServer:\n",
        env!("CARGO_PKG_VERSION")
    ));
    t.push_str(&format!(
        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n",
        s("Containers"),
        s("ContainersRunning"),
        s("ContainersPaused"),
        s("ContainersStopped")
    ));
    t.push_str(&format!(
        " Images: {}\n Server Version: {}\n Storage Driver: {}\n",
        s("Images"),
        s("ServerVersion"),
        s("Driver")
    ));
    for pair in i["DriverStatus"].as_array().into_iter().flatten() {
        if let (Some(k), Some(v)) = (pair[0].as_str(), pair[1].as_str()) {
            t.push_str(&format!("  {k}: {v}\n"));
        }
    }
    t.push_str(&format!(
        " Logging Driver: {}\n Cgroup Driver: {}\n Cgroup Version: {}\n",
        s("LoggingDriver"),
        s("CgroupDriver"),
        s("CgroupVersion")
    ));
    let plugins = &i["Plugins"];
    if plugins.is_object() {
        t.push_str(" Plugins:\n");
        for (k, label) in [("Volume", "Volume"), ("Network", "Network"), ("Log", "Log")] {
            let list: Vec<&str> = plugins[k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            t.push_str(&format!("  {label}: {}\n", list.join(" ")));
        }
    }
    t.push_str(&format!(
        " Swarm: {}\n",
        i["Swarm"]["LocalNodeState"].as_str().unwrap_or("inactive")
    ));
    if let Some(rt) = i["Runtimes"].as_object() {
        let mut names: Vec<&String> = rt.keys().collect();
        names.sort();
        t.push_str(&format!(
            " Runtimes: {}\n",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if !s("DefaultRuntime").is_empty() {
        t.push_str(&format!(" Default Runtime: {}\n", s("DefaultRuntime")));
    }
    if s("OSType") == "linux" {
        let id = |k: &str| i[k]["ID"].as_str().unwrap_or("").to_string();
        t.push_str(&format!(
            " Init Binary: {}\n containerd version: {}\n runc version: {}\n init version: {}\n",
            s("InitBinary"),
            id("ContainerdCommit"),
            id("RuncCommit"),
            id("InitCommit")
        ));
    }
    let sec: Vec<String> = i["SecurityOptions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    if !sec.is_empty() {
        t.push_str(" Security Options:\n");
        for o in sec {
            // "name=seccomp,profile=builtin" → "  seccomp\n   Profile: builtin"
            let mut name = String::new();
            let mut rest = Vec::new();
            for kv in o.split(',') {
                match kv.split_once('=') {
                    Some(("name", v)) => name = v.to_string(),
                    Some((k, v)) => rest.push(format!(
                        "   {}: {v}\n",
                        super::template::go_string(&json!(k))
                            .chars()
                            .enumerate()
                            .map(|(n, c)| if n == 0 { c.to_ascii_uppercase() } else { c })
                            .collect::<String>()
                    )),
                    None => name = kv.to_string(),
                }
            }
            t.push_str(&format!("  {name}\n{}", rest.concat()));
        }
    }
    t.push_str(&format!(" Kernel Version: {}\n Operating System: {}\n OSType: {}\n Architecture: {}\n CPUs: {}\n Total Memory: {}\n Name: {}\n ID: {}\n",
        s("KernelVersion"), s("OperatingSystem"), s("OSType"), s("Architecture"), s("NCPU"), bytes_size(i["MemTotal"].as_f64().unwrap_or(0.0)), s("Name"), s("ID")));
    t.push_str(&format!(
        " Docker Root Dir: {}\n Debug Mode: {}\n",
        s("DockerRootDir"),
        i["Debug"].as_bool().unwrap_or(false)
    ));
    if i["Debug"].as_bool().unwrap_or(false) {
        t.push_str(&format!(
            "  File Descriptors: {}\n  Goroutines: {}\n  System Time: {}\n  EventsListeners: {}\n",
            s("NFd"),
            s("NGoroutines"),
            s("SystemTime"),
            s("NEventsListener")
        ));
    }
    t.push_str(&format!(
        " Experimental: {}\n",
        i["ExperimentalBuild"].as_bool().unwrap_or(false)
    ));
    let insecure: Vec<&str> = i["RegistryConfig"]["InsecureRegistryCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !insecure.is_empty() {
        t.push_str(" Insecure Registries:\n");
        for r in insecure {
            t.push_str(&format!("  {r}\n"));
        }
    }
    t.push_str(&format!(
        " Live Restore Enabled: {}\n",
        i["LiveRestoreEnabled"].as_bool().unwrap_or(false)
    ));
    // docker prints a blank line after the server section; its warnings go to stderr (see `info`).
    t.push('\n');
    t
}

/// `berth info`.
pub fn info(args: &[String], g: &Globals) -> CmdResult {
    let o: InfoOpts = parse("info", "berth info [OPTIONS]", args)?;
    let mut client = g.client()?;
    let mut i = client.get_json("/info")?;
    if let Some(f) = o.format.as_deref().filter(|f| !f.is_empty()) {
        let api = client.api_version().unwrap_or_default();
        i["ClientInfo"] = json!({"Debug": false, "Context": "default", "Version": env!("CARGO_PKG_VERSION"), "Plugins": [], "Warnings": null, "ApiVersion": api});
        out(&table::render_one(f, &i, true)?)?;
        return Ok(0);
    }
    out(&info_text(&i))?;
    for w in i["Warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        eprintln!("{w}");
    }
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Show berth disk usage")]
struct DfOpts {
    /// Format output using a custom template
    #[arg(long, default_value = "")]
    format: String,
    /// Show detailed information on space usage
    #[arg(short, long)]
    verbose: bool,
}

fn pct(size: f64, total: f64) -> String {
    if total > 0.0 {
        format!(
            "{} ({}%)",
            human_size(size),
            ((size * 100.0) / total) as i64
        )
    } else {
        human_size(size)
    }
}

/// docker's `system df` summary rows from the `/system/df` JSON.
pub fn df_rows(d: &Value) -> Vec<Value> {
    let arr = |k: &str| d[k].as_array().cloned().unwrap_or_default();
    let images = arr("Images");
    let total = d["LayersSize"].as_f64().unwrap_or(0.0);
    let mut used = 0.0;
    for i in images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
    {
        let (size, shared) = (
            i["Size"].as_f64().unwrap_or(-1.0),
            i["SharedSize"].as_f64().unwrap_or(-1.0),
        );
        if size >= 0.0 && shared >= 0.0 {
            used += size - shared;
        } else if size >= 0.0 && shared < 0.0 {
            used += size;
        }
    }
    let img_active = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .count();
    let containers = arr("Containers");
    let active = |c: &Value| {
        matches!(
            c["State"].as_str(),
            Some("running" | "paused" | "restarting")
        )
    };
    let csize: f64 = containers
        .iter()
        .map(|c| c["SizeRw"].as_f64().unwrap_or(0.0))
        .sum();
    let creclaim: f64 = containers
        .iter()
        .filter(|c| !active(c))
        .map(|c| c["SizeRw"].as_f64().unwrap_or(0.0))
        .sum();
    let volumes = arr("Volumes");
    let vsize = |v: &Value| {
        v["UsageData"]["Size"]
            .as_f64()
            .filter(|s| *s >= 0.0)
            .unwrap_or(0.0)
    };
    let vused = |v: &Value| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0;
    let vtotal: f64 = volumes.iter().map(vsize).sum();
    let vreclaim: f64 = volumes.iter().filter(|v| !vused(v)).map(vsize).sum();
    let cache = arr("BuildCache");
    let btotal: f64 = cache
        .iter()
        .filter(|b| !b["Shared"].as_bool().unwrap_or(false))
        .map(|b| b["Size"].as_f64().unwrap_or(0.0))
        .sum();
    let breclaim: f64 = cache
        .iter()
        .filter(|b| {
            !b["Shared"].as_bool().unwrap_or(false) && !b["InUse"].as_bool().unwrap_or(false)
        })
        .map(|b| b["Size"].as_f64().unwrap_or(0.0))
        .sum();
    vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": img_active.to_string(), "Size": human_size(total), "Reclaimable": pct((total - used).max(0.0), total)}),
        json!({"Type": "Containers", "TotalCount": containers.len().to_string(), "Active": containers.iter().filter(|c| active(c)).count().to_string(), "Size": human_size(csize), "Reclaimable": pct(creclaim, csize)}),
        json!({"Type": "Local Volumes", "TotalCount": volumes.len().to_string(), "Active": volumes.iter().filter(|v| vused(v)).count().to_string(), "Size": human_size(vtotal), "Reclaimable": pct(vreclaim, vtotal)}),
        json!({"Type": "Build Cache", "TotalCount": cache.len().to_string(), "Active": cache.iter().filter(|b| b["InUse"].as_bool().unwrap_or(false)).count().to_string(), "Size": human_size(btotal), "Reclaimable": human_size(breclaim)}),
    ]
}

const DF_FORMAT: &str =
    "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";

fn df_verbose(d: &Value) -> Result<String, CliError> {
    let arr = |k: &str| d[k].as_array().cloned().unwrap_or_default();
    let mut s = String::from("Images space usage:\n\n");
    let img_rows: Vec<Value> = arr("Images")
        .iter()
        .flat_map(|i| {
            // image_rows already has docker's SharedSize/UniqueSize (HumanSize, 4 digits).
            image_rows(i, true, false).into_iter().map(move |mut r| {
                r["Containers"] = json!(i["Containers"].as_i64().unwrap_or(0).to_string());
                r
            })
        })
        .collect();
    let ih = json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED", "Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS"});
    s.push_str(&table::render("", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", &ih, &img_rows)?);
    s.push_str("\nContainers space usage:\n\n");
    let c_rows: Vec<Value> = arr("Containers")
        .iter()
        .map(|c| {
            let mut r = ps_row(c, true);
            r["Size"] = json!(human_size_prec(c["SizeRw"].as_f64().unwrap_or(0.0), 3));
            r
        })
        .collect();
    s.push_str(&table::render("", "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}", &super::container::ps_header(), &c_rows)?);
    s.push_str("\nLocal Volumes space usage:\n\n");
    let v_rows: Vec<Value> = arr("Volumes")
        .iter()
        .map(|v| {
            let size = v["UsageData"]["Size"].as_f64().unwrap_or(-1.0);
            json!({"Name": v["Name"], "Links": v["UsageData"]["RefCount"].as_i64().unwrap_or(0).to_string(), "Size": if size >= 0.0 { human_size_prec(size, 3) } else { "N/A".into() }})
        })
        .collect();
    s.push_str(&table::render(
        "",
        "table {{.Name}}\t{{.Links}}\t{{.Size}}",
        &json!({"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}),
        &v_rows,
    )?);
    let cache = arr("BuildCache");
    let total: f64 = cache
        .iter()
        .map(|b| b["Size"].as_f64().unwrap_or(0.0))
        .sum();
    s.push_str(&format!("\nBuild cache usage: {}\n\n", human_size(total)));
    let b_rows: Vec<Value> = cache
        .iter()
        .map(|b| {
            let t = |k: &str| b[k].as_str().and_then(super::units::parse_rfc3339).map(ago).unwrap_or_default();
            json!({"ID": short_id(b["ID"].as_str().unwrap_or("")), "CacheType": b["Type"], "Size": human_size_prec(b["Size"].as_f64().unwrap_or(0.0), 3),
                "CreatedSince": t("CreatedAt"), "LastUsedSince": t("LastUsedAt"), "UsageCount": b["UsageCount"].as_i64().unwrap_or(0).to_string(), "Shared": b["Shared"].as_bool().unwrap_or(false).to_string()})
        })
        .collect();
    let bh = json!({"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED", "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"});
    s.push_str(&table::render("", "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}", &bh, &b_rows)?);
    Ok(s)
}

/// `berth system df`.
pub fn df(args: &[String], g: &Globals) -> CmdResult {
    let o: DfOpts = parse("system df", "berth system df [OPTIONS]", args)?;
    let d = g.client()?.get_json("/system/df")?;
    if o.verbose && o.format.is_empty() {
        out(&df_verbose(&d)?)?;
        return Ok(0);
    }
    let header = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    out(&table::render(&o.format, DF_FORMAT, &header, &df_rows(&d))?)?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Remove unused data")]
struct PruneOpts {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    volumes: bool,
}

/// `berth system prune`.
pub fn prune(args: &[String], g: &Globals) -> CmdResult {
    let o: PruneOpts = parse("system prune", "berth system prune [OPTIONS]", args)?;
    if !o.force {
        let mut w = String::from("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n");
        if o.volumes {
            w.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        w.push_str(if o.all {
            "  - all images without at least one container associated to them\n"
        } else {
            "  - all dangling images\n"
        });
        w.push_str("  - unused build cache\n\nAre you sure you want to continue?");
        if !confirm(&w) {
            return Ok(0);
        }
    }
    let mut client = g.client()?;
    let fq = |extra: Option<String>| -> Result<Vec<(&'static str, String)>, CliError> {
        let mut f = o.filter.clone();
        f.extend(extra);
        Ok(super::filters_json(&f)?
            .into_iter()
            .map(|f| ("filters", f))
            .collect())
    };
    // Endpoints berthd may not serve yet (networks, volumes, build cache) are skipped on 404.
    let mut call = |path: &str, q: Vec<(&'static str, String)>| -> Result<Value, CliError> {
        match client.post_json(&with_query(path, &q), None) {
            Ok(v) => Ok(v),
            Err(HttpError::Api {
                status: 404 | 501, ..
            }) => Ok(Value::Null),
            Err(e) => Err(e.into()),
        }
    };
    let mut text = String::new();
    let mut total = 0.0;
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    let c = call("/containers/prune", fq(None)?)?;
    total += c["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    let ids = strs(&c["ContainersDeleted"]);
    if !ids.is_empty() {
        text.push_str(&format!("Deleted Containers:\n{}\n\n", ids.join("\n")));
    }
    let n = call("/networks/prune", fq(None)?)?;
    let ids = strs(&n["NetworksDeleted"]);
    if !ids.is_empty() {
        text.push_str(&format!("Deleted Networks:\n{}\n\n", ids.join("\n")));
    }
    if o.volumes {
        let v = call("/volumes/prune", fq(None)?)?;
        total += v["SpaceReclaimed"].as_f64().unwrap_or(0.0);
        let ids = strs(&v["VolumesDeleted"]);
        if !ids.is_empty() {
            text.push_str(&format!("Deleted Volumes:\n{}\n\n", ids.join("\n")));
        }
    }
    let i = call("/images/prune", fq(Some(format!("dangling={}", !o.all)))?)?;
    total += i["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    let mut lines = Vec::new();
    for item in i["ImagesDeleted"].as_array().into_iter().flatten() {
        if let Some(u) = item["Untagged"].as_str() {
            lines.push(format!("untagged: {u}"));
        }
        if let Some(d) = item["Deleted"].as_str() {
            lines.push(format!("deleted: {d}"));
        }
    }
    if !lines.is_empty() {
        text.push_str(&format!("Deleted Images:\n{}\n\n", lines.join("\n")));
    }
    let mut bq = Vec::new();
    if o.all {
        bq.push(("all", "1".to_string()));
    }
    let b = call("/build/prune", bq)?;
    total += b["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    let ids = strs(&b["CachesDeleted"]);
    if !ids.is_empty() {
        text.push_str(&format!(
            "Deleted build cache objects:\n{}\n\n",
            ids.join("\n")
        ));
    }
    text.push_str(&prune_report("", &[], total));
    out(&text)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_summary() {
        let d = json!({"LayersSize": 13256, "Images": [{"Id": "sha256:1", "Size": 13256, "SharedSize": 0, "Containers": 1, "RepoTags": ["hello-world:latest"]}],
            "Containers": [{"Id": "c1", "State": "exited", "SizeRw": 0}], "Volumes": [], "BuildCache": []});
        let out = table::render("", DF_FORMAT, &json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}), &df_rows(&d)).expect("df");
        let expected = "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
                        Images          1         1         13.26kB   0B (0%)\n\
                        Containers      1         0         0B        0B\n\
                        Local Volumes   0         0         0B        0B\n\
                        Build Cache     0         0         0B        0B\n";
        assert_eq!(out, expected);
        assert!(df_verbose(&d)
            .expect("verbose")
            .contains("Images space usage:\n\nREPOSITORY    TAG       IMAGE ID"));
    }

    #[test]
    fn version_layout() {
        let v = json!({"Client": client_info("1.47"), "Server": {"Version": "0.1.0", "ApiVersion": "1.47", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64"}});
        let t = version_text(&v);
        assert!(
            t.starts_with("Client:\n Version:           0.1.0\n API version:       1.47\n"),
            "{t}"
        );
        assert!(t.contains("\nServer:\n Engine:\n  Version:          0.1.0\n  API version:      1.47 (minimum version 1.24)\n"), "{t}");
        assert_eq!(
            table::render_one("{{.Server.Version}}", &v, true).expect("fmt"),
            "0.1.0\n"
        );
        assert_eq!(
            table::render_one("{{.Client.APIVersion}}", &v, true).expect("fmt"),
            "1.47\n"
        );
    }

    #[test]
    fn info_layout() {
        let i = json!({"Containers": 2, "ContainersRunning": 1, "ContainersPaused": 0, "ContainersStopped": 1, "Images": 1,
            "ServerVersion": "0.1.0", "Driver": "overlay2", "DockerRootDir": "/var/lib/berth", "MemTotal": 2084020224u64, "NCPU": 2,
            "SecurityOptions": ["name=seccomp,profile=builtin"]});
        let t = info_text(&i);
        assert!(t.contains("Server:\n Containers: 2\n  Running: 1\n  Paused: 0\n  Stopped: 1\n Images: 1\n Server Version: 0.1.0\n Storage Driver: overlay2\n"), "{t}");
        assert!(
            t.contains(" Security Options:\n  seccomp\n   Profile: builtin\n"),
            "{t}"
        );
        assert!(t.contains(" Total Memory: 1.941GiB\n"), "{t}");
        assert!(t.contains(" Docker Root Dir: /var/lib/berth\n"), "{t}");
    }
}
