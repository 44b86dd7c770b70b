//! The `berth runtime` subcommands.

use super::args::{parse, Spec};
use super::{info, Globals};
use anyhow::{anyhow, bail, Context, Result};
use berth_runtime as rt;
use std::io::Write;
use std::path::PathBuf;

const CREATE: Spec = &[
    ("bundle", &["b"], true),
    ("pid-file", &[], true),
    ("console-socket", &[], true),
    ("no-pivot", &[], false),
    ("no-new-keyring", &[], false),
    ("preserve-fds", &[], true),
    ("detach", &["d"], false),
    ("keep", &[], false),
    ("no-subreaper", &[], false),
];
const EXEC: Spec = &[
    ("process", &["p"], true),
    ("tty", &["t"], false),
    ("detach", &["d"], false),
    ("pid-file", &[], true),
    ("console-socket", &[], true),
    ("env", &["e"], true),
    ("cwd", &[], true),
    ("user", &["u"], true),
    ("additional-gids", &["g"], true),
    ("cap", &["c"], true),
    ("no-new-privs", &[], false),
    ("preserve-fds", &[], true),
    ("process-label", &[], true),
    ("apparmor", &[], true),
    ("cgroup", &[], true),
    ("ignore-paused", &[], false),
];
const NONE: Spec = &[];
const KILL: Spec = &[("all", &["a"], false)];
const DELETE: Spec = &[("force", &["f"], false)];
const LIST: Spec = &[("format", &["f"], true), ("quiet", &["q"], false)];
const PS: Spec = &[("format", &["f"], true)];
const SPEC: Spec = &[("bundle", &["b"], true), ("rootless", &[], false)];

fn one_id(pos: &[String], cmd: &str) -> Result<String> {
    match pos {
        [id] => Ok(id.clone()),
        [] => bail!("{cmd}: container id cannot be empty"),
        _ => bail!(
            "{cmd}: expected exactly one container id, got {}",
            pos.len()
        ),
    }
}

/// Runs one subcommand; returns the exit code.
pub fn run(cmd: &str, args: &[String], g: &Globals) -> Result<i32> {
    let root = g.root.as_path();
    match cmd {
        "create" | "run" => {
            // CVE-2019-5736: from here on we run from a sealed memfd copy of ourselves.
            rt::ensure_sealed_exe()?;
            let p = parse(args, CREATE, None).map_err(|e| anyhow!(e))?;
            let id = one_id(&p.positionals, cmd)?;
            let opts = create_opts(g, &p, id)?;
            if cmd == "create" {
                rt::create(&opts)?;
                Ok(0)
            } else {
                run_container(g, &p, &opts)
            }
        }
        "start" => {
            let p = parse(args, NONE, None).map_err(|e| anyhow!(e))?;
            rt::start(root, &one_id(&p.positionals, cmd)?)?;
            Ok(0)
        }
        "state" => {
            let p = parse(args, NONE, None).map_err(|e| anyhow!(e))?;
            let st = rt::state(root, &one_id(&p.positionals, cmd)?)?;
            println!("{}", serde_json::to_string_pretty(&st.oci_state())?);
            Ok(0)
        }
        "kill" => {
            let p = parse(args, KILL, None).map_err(|e| anyhow!(e))?;
            let (id, sig) = match p.positionals.as_slice() {
                [id] => (id, "TERM"),
                [id, sig] => (id, sig.as_str()),
                _ => bail!("kill: usage: kill [--all] <container-id> [signal]"),
            };
            let signal = rt::parse_signal(sig).ok_or_else(|| anyhow!("invalid signal {sig:?}"))?;
            rt::kill(root, id, signal, p.has("all"))?;
            Ok(0)
        }
        "delete" => {
            let p = parse(args, DELETE, None).map_err(|e| anyhow!(e))?;
            let id = one_id(&p.positionals, cmd)?;
            match rt::delete(root, &id, p.has("force")) {
                // runc: `delete --force` of a missing container succeeds (containerd relies on it).
                Err(rt::RuntimeError::NotFound(_)) if p.has("force") => Ok(0),
                r => r.map(|_| 0).map_err(Into::into),
            }
        }
        "pause" | "resume" => {
            let p = parse(args, NONE, None).map_err(|e| anyhow!(e))?;
            let id = one_id(&p.positionals, cmd)?;
            if cmd == "pause" {
                rt::pause(root, &id)?
            } else {
                rt::resume(root, &id)?
            }
            Ok(0)
        }
        "list" => list(g, &parse(args, LIST, None).map_err(|e| anyhow!(e))?),
        "ps" => ps(g, &parse(args, PS, Some(1)).map_err(|e| anyhow!(e))?),
        "exec" => {
            rt::ensure_sealed_exe()?;
            exec(g, &parse(args, EXEC, Some(1)).map_err(|e| anyhow!(e))?)
        }
        "spec" => info::spec(&parse(args, SPEC, None).map_err(|e| anyhow!(e))?),
        "features" => {
            println!("{}", serde_json::to_string_pretty(&info::features())?);
            Ok(0)
        }
        "help" => {
            println!("{}", info::usage());
            Ok(0)
        }
        "checkpoint" | "restore" | "events" | "update" => {
            bail!("{cmd} is not supported by berth runtime")
        }
        other => bail!("unknown command {other:?}"),
    }
}

fn create_opts(g: &Globals, p: &super::args::Parsed, id: String) -> Result<rt::CreateOptions> {
    let bundle = PathBuf::from(p.value("bundle").unwrap_or("."));
    if g.systemd_cgroup {
        // A systemd-style path ("slice:prefix:name") would need a systemd scope; refuse clearly.
        if let Ok(data) = std::fs::read(bundle.join("config.json")) {
            let v: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
            if let Some(path) = v.pointer("/linux/cgroupsPath").and_then(|p| p.as_str()) {
                if path.split(':').count() == 3 {
                    bail!("--systemd-cgroup with cgroupsPath {path:?} is not supported: berth manages cgroupfs directly");
                }
            }
        }
    }
    let preserve_fds = p
        .value("preserve-fds")
        .map(str::parse)
        .transpose()
        .context("invalid --preserve-fds")?
        .unwrap_or(0);
    Ok(rt::CreateOptions {
        root: g.root.clone(),
        id,
        bundle,
        pid_file: p.value("pid-file").map(abs),
        console_socket: p.value("console-socket").map(abs),
        preserve_fds,
        no_pivot: p.has("no-pivot"),
    })
}

fn abs(p: &str) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| PathBuf::from(p))
}

/// `run`: create + start in-process; in the foreground, forward signals (and the pty), wait, delete.
fn run_container(g: &Globals, p: &super::args::Parsed, opts: &rt::CreateOptions) -> Result<i32> {
    let detach = p.has("detach");
    if detach && opts.console_socket.is_none() && process_terminal(&opts.bundle) {
        bail!("cannot allocate tty if berth runtime will detach without setting console socket");
    }
    if !detach {
        rt::terminal::block_signals()?;
    }
    let (st, master) = rt::create_with_console(opts)?;
    if let Err(e) = rt::start(&g.root, &opts.id) {
        let _ = rt::delete(&g.root, &opts.id, true);
        return Err(e.into());
    }
    if detach {
        return Ok(0);
    }
    let code = rt::terminal::forward_and_wait(st.pid, master)?;
    if !p.has("keep") {
        rt::delete(&g.root, &opts.id, true)?;
    }
    Ok(code)
}

fn process_terminal(bundle: &std::path::Path) -> bool {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        .and_then(|v| v.pointer("/process/terminal").and_then(|t| t.as_bool()))
        .unwrap_or(false)
}

fn exec(g: &Globals, p: &super::args::Parsed) -> Result<i32> {
    let (id, cmdline) = p
        .positionals
        .split_first()
        .ok_or_else(|| anyhow!("exec: container id cannot be empty"))?;
    let st = rt::state(&g.root, id)?;
    let process = match p.value("process") {
        Some(path) => {
            let data = std::fs::read(path).with_context(|| format!("read process file {path}"))?;
            serde_json::from_slice(&data).with_context(|| format!("invalid process file {path}"))?
        }
        None => {
            let mut proc = st
                .config
                .process()
                .clone()
                .ok_or_else(|| anyhow!("container config has no process"))?;
            if cmdline.is_empty() {
                bail!("exec: arguments of the process to run are required (or --process)");
            }
            proc.set_args(Some(cmdline.to_vec()));
            proc.set_terminal(Some(p.has("tty")));
            let mut env = proc.env().clone().unwrap_or_default();
            for kv in p.all("env") {
                let key = kv.split('=').next().unwrap_or_default().to_string();
                env.retain(|e| e.split('=').next() != Some(key.as_str()));
                env.push(kv);
            }
            proc.set_env(Some(env));
            if let Some(cwd) = p.value("cwd") {
                proc.set_cwd(PathBuf::from(cwd));
            }
            if let Some(u) = p.value("user") {
                let (uid, gid) = match u.split_once(':') {
                    Some((a, b)) => (a.parse()?, b.parse()?),
                    None => (u.parse()?, 0),
                };
                let user = proc.user_mut();
                user.set_uid(uid);
                user.set_gid(gid);
            }
            let gids: Vec<u32> = p
                .all("additional-gids")
                .iter()
                .map(|g| g.parse())
                .collect::<Result<_, _>>()?;
            if !gids.is_empty() {
                proc.user_mut().set_additional_gids(Some(gids));
            }
            if p.has("no-new-privs") {
                proc.set_no_new_privileges(Some(true));
            }
            let caps = p.all("cap");
            if !caps.is_empty() {
                let mut c = proc.capabilities().clone().unwrap_or_default();
                for name in &caps {
                    let cap = rt::security::capabilities::parse(name)?;
                    let mut b = c.bounding().clone().unwrap_or_default();
                    b.insert(cap);
                    c.set_bounding(Some(b));
                    let mut e = c.effective().clone().unwrap_or_default();
                    e.insert(cap);
                    c.set_effective(Some(e));
                    let mut pm = c.permitted().clone().unwrap_or_default();
                    pm.insert(cap);
                    c.set_permitted(Some(pm));
                }
                proc.set_capabilities(Some(c));
            }
            proc
        }
    };
    let detach = p.has("detach");
    if process.terminal().unwrap_or(false) && detach && p.value("console-socket").is_none() {
        bail!("cannot allocate tty if berth runtime will detach without setting console socket");
    }
    let opts = rt::ExecOptions {
        process,
        console_socket: p.value("console-socket").map(abs),
        pid_file: p.value("pid-file").map(abs),
        preserve_fds: p
            .value("preserve-fds")
            .map(str::parse)
            .transpose()
            .context("invalid --preserve-fds")?
            .unwrap_or(0),
    };
    if !detach {
        rt::terminal::block_signals()?;
    }
    let h = rt::exec(&g.root, id, &opts)?;
    if detach {
        return Ok(0);
    }
    Ok(rt::terminal::forward_and_wait(h.pid, h.pty_master)?)
}

fn list(g: &Globals, p: &super::args::Parsed) -> Result<i32> {
    let all = rt::list(&g.root)?;
    let mut out = std::io::stdout().lock();
    if p.has("quiet") {
        for c in &all {
            writeln!(out, "{}", c.id)?;
        }
        return Ok(0);
    }
    if p.value("format") == Some("json") {
        let v: Vec<serde_json::Value> = all.iter().map(|c| c.oci_state()).collect();
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
        return Ok(0);
    }
    let mut tw = tabwriter::TabWriter::new(out).padding(3).minwidth(12);
    writeln!(tw, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")?;
    for c in &all {
        let s = c.oci_state();
        writeln!(
            tw,
            "{}\t{}\t{}\t{}\t{}\t{}",
            c.id,
            s["pid"],
            s["status"].as_str().unwrap_or(""),
            c.bundle.display(),
            c.created,
            s["owner"].as_str().unwrap_or("")
        )?;
    }
    tw.flush()?;
    Ok(0)
}

fn ps(g: &Globals, p: &super::args::Parsed) -> Result<i32> {
    let id = p
        .positionals
        .first()
        .ok_or_else(|| anyhow!("ps: container id cannot be empty"))?;
    let pids = rt::processes(&g.root, id)?;
    if p.value("format") == Some("json") {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let extra: Vec<&String> = p.positionals.iter().skip(1).collect();
    let args: Vec<&str> = if extra.is_empty() {
        vec!["-ef"]
    } else {
        extra.iter().map(|s| s.as_str()).collect()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| anyhow!("ps output has no PID column"))?;
    println!("{header}");
    for l in lines {
        if l.split_whitespace()
            .nth(col)
            .and_then(|x| x.parse::<i32>().ok())
            .is_some_and(|pid| pids.contains(&pid))
        {
            println!("{l}");
        }
    }
    Ok(0)
}
