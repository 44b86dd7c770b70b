//! `berth build`: docker's classic-builder client. Packs the context directory into a tar (honouring
//! `.dockerignore`; the Dockerfile and `.dockerignore` always go along, and a Dockerfile from outside the
//! context or from stdin is added under a generated name, as the docker CLI does), sends it to `POST /build`
//! and prints the JSON stream like docker: the `stream` texts on stdout, an `error` on stderr with the
//! failing step's exit code. `-q` prints only the image id. `PATH` may be `-`: a tar context or a lone
//! Dockerfile on stdin.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::{ArgAction, Parser};
use serde_json::Value;

use super::http::{with_query, Body};
use super::{out, parse, CliError, CmdResult, Globals};

#[derive(Parser)]
#[command(about = "Build an image from a Dockerfile")]
struct BuildOpts {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    tag: Vec<String>,
    /// Name of the Dockerfile (Default is "PATH/Dockerfile")
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Set metadata for an image
    #[arg(long)]
    label: Vec<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Remove intermediate containers after a successful build
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true")]
    rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    force_rm: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pull: bool,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long)]
    network: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<String>,
    #[arg(value_name = "PATH|URL|-")]
    path: String,
}

fn msg(s: impl Into<String>) -> CliError {
    CliError::Msg(s.into())
}

/// Adds `dir` (context-relative `rel`) and what is under it to the tar, skipping ignored paths.
fn walk(
    b: &mut tar::Builder<Vec<u8>>,
    root: &Path,
    rel: &str,
    ignore: &berth_build::dockerignore::Ignore,
) -> Result<(), CliError> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| msg(format!("error checking context: {}: {e}", dir.display())))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for n in names {
        let name = n.to_string_lossy();
        let r = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let keep = r == ".dockerignore" || !ignore.matches(&r);
        let p = root.join(&r);
        let md = std::fs::symlink_metadata(&p)
            .map_err(|e| msg(format!("error checking context: {}: {e}", p.display())))?;
        if keep {
            let mut h = tar::Header::new_gnu();
            h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
            h.set_uid(0);
            h.set_gid(0);
            let res = if md.file_type().is_symlink() {
                let target = std::fs::read_link(&p)?;
                h.set_size(0);
                b.append_link(&mut h, &r, target)
            } else if md.is_dir() {
                h.set_size(0);
                b.append_data(&mut h, format!("{r}/"), std::io::empty())
            } else if md.is_file() {
                let f = std::fs::File::open(&p).map_err(|e| {
                    msg(format!(
                        "error checking context: can't stat '{}': {e}",
                        p.display()
                    ))
                })?;
                b.append_data(&mut h, &r, f)
            } else {
                // Sockets, fifos and devices are not part of a context.
                Ok(())
            };
            res.map_err(|e| msg(format!("packing the build context: {r}: {e}")))?;
        }
        if md.is_dir() && (keep || ignore.has_exclusions()) {
            walk(b, root, &r, ignore)?;
        }
    }
    Ok(())
}

fn append_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) -> Result<(), CliError> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, name, data)
        .map_err(|e| msg(format!("packing the build context: {e}")))
}

/// The context tar and the Dockerfile name to send.
fn pack_context(
    dir: &Path,
    file: Option<&str>,
    stdin: Option<Vec<u8>>,
) -> Result<(Vec<u8>, String), CliError> {
    let md = std::fs::metadata(dir).map_err(|_| {
        msg(format!(
            "unable to prepare context: path {:?} not found",
            dir.display().to_string()
        ))
    })?;
    if !md.is_dir() {
        return Err(msg(format!(
            "unable to prepare context: context must be a directory: {}",
            dir.display()
        )));
    }
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(t) => berth_build::dockerignore::Ignore::parse(&t)
            .map_err(|e| msg(format!("error checking context: {e}")))?,
        Err(_) => Default::default(),
    };
    let mut b = tar::Builder::new(Vec::new());
    walk(&mut b, dir, "", &ignore)?;
    // The Dockerfile: from stdin, from outside the context, or inside it (sent even when ignored).
    let dockerfile_name = match (file, stdin) {
        (_, Some(text)) => {
            let name = format!(".dockerfile.{}", &berth_engine::names::new_id()[..20]);
            append_file(&mut b, &name, &text)?;
            name
        }
        (Some(f), None) => {
            let p = PathBuf::from(f);
            let abs = if p.is_absolute() {
                p
            } else {
                std::env::current_dir()?.join(p)
            };
            let canon_dir = dir.canonicalize()?;
            let canon = abs
                .canonicalize()
                .map_err(|_| msg(format!("unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory", abs.display())))?;
            match canon.strip_prefix(&canon_dir) {
                Ok(rel) if ignore.matches(&rel.to_string_lossy()) => {
                    let data = std::fs::read(&canon)?;
                    append_file(&mut b, &rel.to_string_lossy(), &data)?;
                    rel.to_string_lossy().to_string()
                }
                Ok(rel) => rel.to_string_lossy().to_string(),
                Err(_) => {
                    let data = std::fs::read(&canon)?;
                    let name = format!(".dockerfile.{}", &berth_engine::names::new_id()[..20]);
                    append_file(&mut b, &name, &data)?;
                    name
                }
            }
        }
        (None, None) => {
            let p = dir.join("Dockerfile");
            if !p.exists() {
                return Err(msg(format!(
                    "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                    p.display()
                )));
            }
            if ignore.matches("Dockerfile") {
                append_file(&mut b, "Dockerfile", &std::fs::read(&p)?)?;
            }
            "Dockerfile".into()
        }
    };
    let data = b
        .into_inner()
        .map_err(|e| msg(format!("packing the build context: {e}")))?;
    Ok((data, dockerfile_name))
}

fn key_values(list: &[String], from_env: bool) -> Result<serde_json::Map<String, Value>, CliError> {
    let mut m = serde_json::Map::new();
    for kv in list {
        match kv.split_once('=') {
            Some((k, v)) => {
                m.insert(k.to_string(), Value::String(v.to_string()));
            }
            // docker: `--build-arg NAME` takes NAME from the environment (unset: not sent as a value).
            None if from_env => {
                m.insert(
                    kv.clone(),
                    std::env::var(kv).map(Value::String).unwrap_or(Value::Null),
                );
            }
            None => {
                m.insert(kv.clone(), Value::String(String::new()));
            }
        }
    }
    Ok(m)
}

/// `berth build`.
pub fn build(args: &[String], g: &Globals) -> CmdResult {
    let o: BuildOpts = parse("build", "berth build [OPTIONS] PATH | URL | -", args)?;
    if o.path.starts_with("http://") || o.path.starts_with("https://") || o.path.starts_with("git@")
    {
        return Err(msg(
            "remote build contexts are not supported: berth builds offline; clone or download the context first",
        ));
    }
    let dockerfile_stdin = if o.file.as_deref() == Some("-") {
        if o.path == "-" {
            return Err(msg(
                "invalid argument: can't use stdin for both build context and dockerfile",
            ));
        }
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        Some(v)
    } else {
        None
    };
    let (body, dockerfile) = if o.path == "-" {
        if std::io::stdin().is_terminal() {
            return Err(msg("unable to prepare context: stdin is a terminal: a tar context or a Dockerfile must be piped in"));
        }
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        (v, o.file.clone().unwrap_or_default())
    } else {
        let file = o.file.as_deref().filter(|f| *f != "-");
        pack_context(Path::new(&o.path), file, dockerfile_stdin)?
    };
    let mut q: Vec<(&str, String)> = Vec::new();
    for t in &o.tag {
        berth_image::Reference::parse_with_default_tag(t).map_err(|e| {
            msg(format!(
                "invalid argument \"{t}\" for \"-t, --tag\" flag: {e}"
            ))
        })?;
        q.push(("t", t.clone()));
    }
    if !dockerfile.is_empty() {
        q.push(("dockerfile", dockerfile));
    }
    let build_args = key_values(&o.build_arg, true)?;
    if !build_args.is_empty() {
        q.push(("buildargs", Value::Object(build_args).to_string()));
    }
    let labels = key_values(&o.label, false)?;
    if !labels.is_empty() {
        q.push(("labels", Value::Object(labels).to_string()));
    }
    if let Some(t) = &o.target {
        q.push(("target", t.clone()));
    }
    for (k, v) in [
        ("q", o.quiet),
        ("nocache", o.no_cache),
        ("rm", o.rm),
        ("forcerm", o.force_rm),
        ("pull", o.pull),
    ] {
        q.push((k, if v { "1" } else { "0" }.into()));
    }
    if let Some(n) = &o.network {
        q.push(("networkmode", n.clone()));
    }
    if let Some(p) = &o.platform {
        q.push(("platform", p.clone()));
    }
    q.push(("version", "1".into()));
    let mut client = g.client()?;
    let mut cursor = std::io::Cursor::new(body);
    let resp = client.request(
        "POST",
        &with_query("/build", &q),
        &[],
        Body::Stream(&mut cursor, "application/x-tar"),
    )?;
    let mut image_id = None;
    for l in BufReader::new(resp).lines() {
        let l = l?;
        if l.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(&l).map_err(|e| msg(format!("invalid JSON from daemon: {e}")))?;
        if let Some(e) = v["error"].as_str() {
            let code = v["errorDetail"]["code"]
                .as_i64()
                .filter(|c| *c != 0)
                .unwrap_or(1);
            return Err(CliError::Exit {
                code: i32::try_from(code).unwrap_or(1),
                msg: Some(e.to_string()),
            });
        }
        if let Some(s) = v["stream"].as_str() {
            out(s)?;
        } else if let Some(s) = v["status"].as_str() {
            out(&format!("{s}\n"))?;
        }
        if let Some(id) = v["aux"]["ID"].as_str() {
            image_id = Some(id.to_string());
        }
    }
    std::io::stdout().flush()?;
    if let (Some(f), Some(id)) = (&o.iidfile, &image_id) {
        std::fs::write(f, id).map_err(|e| msg(format!("failed to write image ID to file: {e}")))?;
    }
    if image_id.is_none() {
        return Err(msg("the build ended without an image id"));
    }
    Ok(0)
}
