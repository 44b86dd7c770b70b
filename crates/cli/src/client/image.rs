//! Image verbs: `images`, `pull`, `push`, `tag`, `rmi`, `history`, `save`, `load`, `import`, `image prune`.

use std::io::{IsTerminal, Read, Write};

use clap::Parser;
use serde_json::{json, Value};

use super::http::{encode, with_query, Body, Client};
use super::units::{ago, ellipsis, human_size, human_size_prec, short_id};
use super::{
    auth, confirm, container::prune_report, filters_json, out, parse, progress, table, CliError,
    CmdResult, Globals,
};

/// Splits `name[:tag][@digest]` into the name and its tag or digest (empty when neither is given).
pub fn split_ref(r: &str) -> (String, String) {
    if let Some((n, d)) = r.split_once('@') {
        return (n.to_string(), d.to_string());
    }
    let slash = r.rfind('/').map_or(0, |i| i + 1);
    match r[slash..].rfind(':') {
        Some(i) => (r[..slash + i].to_string(), r[slash + i + 1..].to_string()),
        None => (r.to_string(), String::new()),
    }
}

/// `x` → `x:latest` (references with a tag or digest are kept).
pub fn with_default_tag(r: &str) -> String {
    let (_, t) = split_ref(r);
    if t.is_empty() {
        format!("{r}:latest")
    } else {
        r.to_string()
    }
}

/// The registry domain of a reference (docker's rule: a first component with `.`, `:` or `localhost`).
pub fn domain(r: &str) -> Option<&str> {
    let (first, rest) = r.split_once('/')?;
    let _ = rest;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// docker's fully-qualified form: `hello-world` → `docker.io/library/hello-world:latest`.
pub fn full_ref(r: &str) -> String {
    let r = with_default_tag(r);
    if domain(&r).is_some() {
        return r;
    }
    if r.contains('/') {
        format!("docker.io/{r}")
    } else {
        format!("docker.io/library/{r}")
    }
}

/// Pulls `reference` with progress (to stderr for run's implicit pull).
pub fn pull_image(
    client: &mut Client,
    g: &Globals,
    reference: &str,
    platform: Option<&str>,
    quiet: bool,
    to_stderr: bool,
) -> Result<(), CliError> {
    let (name, tag) = split_ref(reference);
    let mut q = vec![
        ("fromImage", name.clone()),
        ("tag", if tag.is_empty() { "latest".into() } else { tag }),
    ];
    if let Some(p) = platform {
        q.push(("platform", p.to_string()));
    }
    let headers = auth::header_for(g, &name);
    let resp = client.request(
        "POST",
        &with_query("/images/create", &q),
        &headers,
        Body::None,
    )?;
    progress::consume(resp, to_stderr, quiet)?;
    Ok(())
}

fn image_header() -> Value {
    json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE",
        "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
    })
}

const IMAGES_FORMAT: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}";
const IMAGES_DIGEST_FORMAT: &str = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}";

/// One summary from `/images/json` → docker's rows (one per repo:tag, `<none>` for dangling).
pub fn image_rows(img: &Value, trunc: bool, digests: bool) -> Vec<Value> {
    let id = img["Id"].as_str().unwrap_or("");
    let created = img["Created"].as_i64().unwrap_or(0);
    let size = img["Size"].as_f64().unwrap_or(0.0);
    let base = |repo: &str, tag: &str, digest: &str| {
        json!({
            "Containers": match img["Containers"].as_i64() { Some(n) if n >= 0 => n.to_string(), _ => "N/A".into() },
            "CreatedAt": chrono::DateTime::from_timestamp(created, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()).unwrap_or_default(),
            "CreatedSince": ago(created as f64),
            "Digest": digest,
            "ID": if trunc { short_id(id) } else { id.to_string() },
            "Repository": repo,
            "SharedSize": match img["SharedSize"].as_f64() { Some(s) if s >= 0.0 => human_size(s), _ => "N/A".into() },
            "Size": human_size_prec(size, 3),
            "Tag": tag,
            "UniqueSize": match img["SharedSize"].as_f64() { Some(s) if s >= 0.0 => human_size(size - s), _ => "N/A".into() },
            "VirtualSize": human_size(size),
        })
    };
    let strs = |k: &str| -> Vec<String> {
        img[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let (tags, digest_refs) = (strs("RepoTags"), strs("RepoDigests"));
    let dangling = (tags.is_empty() && digest_refs.is_empty())
        || (tags == ["<none>:<none>"] && digest_refs == ["<none>@<none>"]);
    if dangling {
        return vec![base("<none>", "<none>", "<none>")];
    }
    // docker groups by repository (in Go map order, i.e. unspecified); we keep the daemon's order.
    let mut repo_digests: Vec<(String, Vec<String>)> = Vec::new();
    for d in &digest_refs {
        if let Some((r, d)) = d.split_once('@') {
            match repo_digests.iter_mut().find(|(x, _)| x == r) {
                Some((_, v)) => v.push(d.to_string()),
                None => repo_digests.push((r.to_string(), vec![d.to_string()])),
            }
        }
    }
    let mut rows = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for t in &tags {
        let (repo, tag) = split_ref(t);
        if tag.is_empty() || tag.starts_with("sha256:") {
            continue;
        }
        let ds = repo_digests
            .iter()
            .find(|(r, _)| *r == repo)
            .map(|x| x.1.clone())
            .unwrap_or_default();
        if !seen.contains(&repo) {
            seen.push(repo.clone());
        }
        if !digests || ds.is_empty() {
            rows.push(base(&repo, &tag, "<none>"));
        } else {
            for d in &ds {
                rows.push(base(&repo, &tag, d));
            }
        }
    }
    for (repo, ds) in repo_digests.iter().filter(|(r, _)| !seen.contains(r)) {
        if digests {
            for d in ds {
                rows.push(base(repo, "<none>", d));
            }
        } else {
            rows.push(base(repo, "<none>", ""));
        }
    }
    rows
}

#[derive(Parser)]
#[command(about = "List images")]
struct ImagesOpts {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, default_value = "")]
    format: String,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// List multi-platform images as a tree (EXPERIMENTAL)
    #[arg(long)]
    tree: bool,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

/// `berth images`.
pub fn images(args: &[String], g: &Globals) -> CmdResult {
    let o: ImagesOpts = parse("images", "berth images [OPTIONS] [REPOSITORY[:TAG]]", args)?;
    let mut filters = o.filter.clone();
    if let Some(r) = &o.reference {
        filters.push(format!("reference={r}"));
    }
    let mut q = Vec::new();
    if o.all {
        q.push(("all", "1".to_string()));
    }
    if let Some(f) = filters_json(&filters)? {
        q.push(("filters", f));
    }
    let mut client = g.client()?;
    let list = client.get_json(&with_query("/images/json", &q))?;
    let mut format = if o.quiet {
        "{{.ID}}".to_string()
    } else {
        o.format.clone()
    };
    if o.digests && format.starts_with("table") && !format.contains("{{.Digest}}") {
        format.push_str("\t{{.Digest}}");
    }
    let need_digest = o.digests || format.contains("{{.Digest}}");
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| image_rows(i, !o.no_trunc, need_digest))
        .collect();
    let format = format.as_str();
    let default = if o.digests {
        IMAGES_DIGEST_FORMAT
    } else {
        IMAGES_FORMAT
    };
    out(&table::render(format, default, &image_header(), &rows)?)?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Download an image from a registry")]
struct PullOpts {
    /// Download all tagged images in the repository
    #[arg(short, long = "all-tags")]
    all_tags: bool,
    /// Skip image verification
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    disable_content_trust: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    name: String,
}

/// `berth pull`.
pub fn pull(args: &[String], g: &Globals) -> CmdResult {
    let o: PullOpts = parse("pull", "berth pull [OPTIONS] NAME[:TAG|@DIGEST]", args)?;
    let (name, tag) = split_ref(&o.name);
    if o.all_tags && !tag.is_empty() {
        return Err(CliError::Msg("tag can't be used with --all-tags/-a".into()));
    }
    if tag.is_empty() && !o.all_tags && !o.quiet {
        out("Using default tag: latest\n")?;
    }
    let mut client = g.client()?;
    let mut q = vec![("fromImage", name.clone())];
    if !o.all_tags {
        q.push(("tag", if tag.is_empty() { "latest".into() } else { tag }));
    }
    if let Some(p) = &o.platform {
        q.push(("platform", p.clone()));
    }
    let resp = client.request(
        "POST",
        &with_query("/images/create", &q),
        &auth::header_for(g, &name),
        Body::None,
    )?;
    progress::consume(resp, false, o.quiet)?;
    out(&format!(
        "{}\n",
        if o.all_tags {
            full_ref(&name).trim_end_matches(":latest").to_string()
        } else {
            full_ref(&o.name)
        }
    ))?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Upload an image to a registry")]
struct PushOpts {
    /// Push all tags of an image to the repository
    #[arg(short, long = "all-tags")]
    all_tags: bool,
    /// Skip image signing
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    disable_content_trust: bool,
    /// Push a platform-specific manifest as a single-platform image to the registry
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    #[arg(value_name = "NAME[:TAG]")]
    name: String,
}

/// `berth push`.
pub fn push(args: &[String], g: &Globals) -> CmdResult {
    let o: PushOpts = parse("push", "berth push [OPTIONS] NAME[:TAG]", args)?;
    let (name, tag) = split_ref(&o.name);
    if tag.is_empty() && !o.all_tags && !o.quiet {
        out("Using default tag: latest\n")?;
    }
    let tag = if tag.is_empty() && !o.all_tags {
        "latest".to_string()
    } else {
        tag
    };
    let mut headers = auth::header_for(g, &name);
    if headers.is_empty() {
        // The API requires the header on push even without credentials.
        headers.push(("X-Registry-Auth", auth::encode_auth(&json!({}))));
    }
    let mut q = Vec::new();
    if !tag.is_empty() {
        q.push(("tag", tag.clone()));
    }
    let mut client = g.client()?;
    let resp = client.request(
        "POST",
        &with_query(&format!("/images/{}/push", encode(&name)), &q),
        &headers,
        Body::None,
    )?;
    progress::consume(resp, false, o.quiet)?;
    if o.quiet {
        out(&format!("{}\n", o.name))?;
    }
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")]
struct TagOpts {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    target: String,
}

/// `berth tag`.
pub fn tag(args: &[String], g: &Globals) -> CmdResult {
    let o: TagOpts = parse(
        "tag",
        "berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
        args,
    )?;
    let (repo, tag) = split_ref(&o.target);
    let q = [
        ("repo", repo),
        ("tag", if tag.is_empty() { "latest".into() } else { tag }),
    ];
    g.client()?.request(
        "POST",
        &with_query(&format!("/images/{}/tag", encode(&o.source)), &q),
        &[],
        Body::None,
    )?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Remove one or more images")]
struct RmiOpts {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    no_prune: bool,
    /// Remove only the given platform variant
    #[arg(long)]
    platform: Vec<String>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

fn deleted_lines(list: &Value, lower: bool) -> String {
    let mut s = String::new();
    for item in list.as_array().into_iter().flatten() {
        if let Some(u) = item["Untagged"].as_str() {
            s.push_str(&format!(
                "{}: {u}\n",
                if lower { "untagged" } else { "Untagged" }
            ));
        }
        if let Some(d) = item["Deleted"].as_str() {
            s.push_str(&format!(
                "{}: {d}\n",
                if lower { "deleted" } else { "Deleted" }
            ));
        }
    }
    s
}

/// `berth rmi`.
pub fn rmi(args: &[String], g: &Globals) -> CmdResult {
    let o: RmiOpts = parse("rmi", "berth rmi [OPTIONS] IMAGE [IMAGE...]", args)?;
    let mut client = g.client()?;
    let mut q = Vec::new();
    if o.force {
        q.push(("force", "1".to_string()));
    }
    if o.no_prune {
        q.push(("noprune", "1".to_string()));
    }
    let mut failed = false;
    for i in &o.images {
        match client.delete_json(&with_query(&format!("/images/{}", encode(i)), &q)) {
            Ok(v) => out(&deleted_lines(&v, false))?,
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    Ok(i32::from(failed))
}

#[derive(Parser)]
#[command(about = "Show the history of an image")]
struct HistoryOpts {
    /// Format output using a custom template
    #[arg(long, default_value = "")]
    format: String,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value = "true", action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show history for the given platform
    #[arg(long)]
    platform: Option<String>,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    #[arg(value_name = "IMAGE")]
    image: String,
}

/// `berth history`.
pub fn history(args: &[String], g: &Globals) -> CmdResult {
    let o: HistoryOpts = parse("history", "berth history [OPTIONS] IMAGE", args)?;
    let list = g
        .client()?
        .get_json(&format!("/images/{}/history", encode(&o.image)))?;
    let trunc = !o.no_trunc;
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let id = h["Id"].as_str().unwrap_or("<missing>");
            let created = h["Created"].as_i64().unwrap_or(0);
            let by = h["CreatedBy"].as_str().unwrap_or("").replace('\t', " ");
            let size = h["Size"].as_f64().unwrap_or(0.0);
            json!({
                "ID": if trunc && id != "<missing>" { short_id(id) } else { id.to_string() },
                "CreatedSince": if o.human { ago(created as f64) } else { chrono::DateTime::from_timestamp(created, 0).map(|t| t.to_rfc3339()).unwrap_or_default() },
                "CreatedAt": chrono::DateTime::from_timestamp(created, 0).map(|t| t.to_rfc3339()).unwrap_or_default(),
                "CreatedBy": if trunc { ellipsis(&by, 45) } else { by },
                "Size": if o.human { human_size_prec(size, 3) } else { size.to_string() },
                "Comment": h["Comment"].as_str().unwrap_or(""),
                "Tags": h["Tags"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
            })
        })
        .collect();
    let header = json!({"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT", "Tags": "TAGS"});
    let format = if o.quiet {
        "{{.ID}}"
    } else {
        o.format.as_str()
    };
    out(&table::render(
        format,
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &header,
        &rows,
    )?)?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Save one or more images to a tar archive (streamed to STDOUT by default)")]
struct SaveOpts {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    /// Save only the given platform variant
    #[arg(long)]
    platform: Vec<String>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

/// `berth save`.
pub fn save(args: &[String], g: &Globals) -> CmdResult {
    let o: SaveOpts = parse("save", "berth save [OPTIONS] IMAGE [IMAGE...]", args)?;
    if o.output.is_none() && std::io::stdout().is_terminal() {
        return Err(CliError::Msg(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
        ));
    }
    let q: Vec<(&str, String)> = o.images.iter().map(|i| ("names", i.clone())).collect();
    let mut resp = g
        .client()?
        .request("GET", &with_query("/images/get", &q), &[], Body::None)?;
    match &o.output {
        Some(path) => {
            // Write to a temp file next to the target so a failed save never leaves a truncated archive.
            let tmp = format!("{path}.berth-tmp-{}", std::process::id());
            let r = (|| -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                std::io::copy(&mut resp, &mut f)?;
                f.sync_all()?;
                std::fs::rename(&tmp, path)
            })();
            if let Err(e) = r {
                let _ = std::fs::remove_file(&tmp);
                return Err(CliError::Msg(format!("failed to save image: {e}")));
            }
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            std::io::copy(&mut resp, &mut stdout)?;
            stdout.flush()?;
        }
    }
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Load an image from a tar archive or STDIN")]
struct LoadOpts {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
    /// Load only the given platform variant
    #[arg(long)]
    platform: Vec<String>,
}

/// `berth load`.
pub fn load(args: &[String], g: &Globals) -> CmdResult {
    let o: LoadOpts = parse("load", "berth load [OPTIONS]", args)?;
    let mut input: Box<dyn Read> = match &o.input {
        Some(p) => Box::new(
            std::fs::File::open(p).map_err(|e| CliError::Msg(super::go_io("open", p, &e)))?,
        ),
        None => {
            if std::io::stdin().is_terminal() {
                return Err(CliError::Msg(
                    "requested load from stdin, but stdin is empty".into(),
                ));
            }
            Box::new(std::io::stdin())
        }
    };
    // Like docker: progress only on a terminal; the daemon still reports "Loaded image" when quiet.
    let quiet = o.quiet || !std::io::stdout().is_terminal();
    let q = [("quiet", if quiet { "1" } else { "0" }.to_string())];
    let mut client = g.client()?;
    let resp = client.request(
        "POST",
        &with_query("/images/load", &q),
        &[],
        Body::Stream(&mut *input, "application/x-tar"),
    )?;
    let json = resp
        .header("Content-Type")
        .is_some_and(|c| c.contains("json"));
    if json {
        // Quiet mode still prints the "Loaded image" lines, like docker.
        progress::consume(resp, false, false)?;
    } else {
        out(&String::from_utf8_lossy(&resp.bytes()?))?;
    }
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Import the contents from a tarball to create a filesystem image")]
struct ImportOpts {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    #[arg(value_name = "file|URL|-")]
    source: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

/// `berth import`.
pub fn import(args: &[String], g: &Globals) -> CmdResult {
    let o: ImportOpts = parse(
        "import",
        "berth import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
        args,
    )?;
    let is_url = o.source.starts_with("http://") || o.source.starts_with("https://");
    let mut q = vec![(
        "fromSrc",
        if is_url {
            o.source.clone()
        } else {
            "-".to_string()
        },
    )];
    if let Some(r) = &o.reference {
        let (repo, tag) = split_ref(r);
        q.push(("repo", repo));
        if !tag.is_empty() {
            q.push(("tag", tag));
        }
    }
    if let Some(m) = &o.message {
        q.push(("message", m.clone()));
    }
    if let Some(p) = &o.platform {
        q.push(("platform", p.clone()));
    }
    for c in &o.change {
        q.push(("changes", c.clone()));
    }
    let path = with_query("/images/create", &q);
    let mut client = g.client()?;
    let resp = if is_url {
        client.request("POST", &path, &[], Body::None)?
    } else {
        let mut input: Box<dyn Read> = if o.source == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(
                std::fs::File::open(&o.source)
                    .map_err(|e| CliError::Msg(super::go_io("open", &o.source, &e)))?,
            )
        };
        client.request(
            "POST",
            &path,
            &[],
            Body::Stream(&mut *input, "application/x-tar"),
        )?
    };
    progress::consume(resp, false, false)?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Remove unused images")]
struct PruneOpts {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

/// `berth image prune`.
pub fn prune(args: &[String], g: &Globals) -> CmdResult {
    let o: PruneOpts = parse("image prune", "berth image prune [OPTIONS]", args)?;
    let warning = if o.all {
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
    };
    if !o.force && !confirm(warning) {
        return Ok(0);
    }
    let mut filters = o.filter.clone();
    filters.push(format!("dangling={}", !o.all));
    let q: Vec<(&str, String)> = filters_json(&filters)?
        .into_iter()
        .map(|f| ("filters", f))
        .collect();
    let v = g
        .client()?
        .post_json(&with_query("/images/prune", &q), None)?;
    let lines = deleted_lines(&v["ImagesDeleted"], true);
    let ids: Vec<String> = lines.lines().map(String::from).collect();
    out(&prune_report(
        "Deleted Images",
        &ids,
        v["SpaceReclaimed"].as_f64().unwrap_or(0.0),
    ))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            split_ref("hello-world"),
            ("hello-world".into(), String::new())
        );
        assert_eq!(
            split_ref("localhost:5000/a/b:v1"),
            ("localhost:5000/a/b".into(), "v1".into())
        );
        assert_eq!(split_ref("x@sha256:ab"), ("x".into(), "sha256:ab".into()));
        assert_eq!(
            with_default_tag("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
        assert_eq!(
            full_ref("hello-world"),
            "docker.io/library/hello-world:latest"
        );
        assert_eq!(full_ref("me/app:1"), "docker.io/me/app:1");
        assert_eq!(full_ref("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
    }

    #[test]
    fn image_rows_like_docker() {
        let img = json!({"Id": "sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a", "Created": 0,
            "Size": 13256, "RepoTags": ["hello-world:latest", "hw:1"], "RepoDigests": ["hello-world@sha256:abc"]});
        let rows = image_rows(&img, true, false);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["Repository"], "hello-world");
        assert_eq!(rows[0]["Tag"], "latest");
        assert_eq!(rows[0]["ID"], "d2c94e258dcb");
        assert_eq!(rows[0]["Size"], "13.3kB");
        assert!(rows[0]["CreatedSince"]
            .as_str()
            .is_some_and(|s| s.ends_with("years ago")));
        assert_eq!(rows[0]["Digest"], "<none>");
        assert_eq!(image_rows(&img, true, true)[0]["Digest"], "sha256:abc");
        let dangling = json!({"Id": "sha256:1234567890abcdef", "Created": 1, "Size": 0, "RepoTags": [], "RepoDigests": []});
        let rows = image_rows(&dangling, false, false);
        assert_eq!(
            (rows[0]["Repository"].as_str(), rows[0]["Tag"].as_str()),
            (Some("<none>"), Some("<none>"))
        );
        assert_eq!(rows[0]["ID"], "sha256:1234567890abcdef");
    }

    #[test]
    fn rmi_lines() {
        let v = json!([{"Untagged": "a:latest"}, {"Deleted": "sha256:1"}]);
        assert_eq!(
            deleted_lines(&v, false),
            "Untagged: a:latest\nDeleted: sha256:1\n"
        );
    }
}
