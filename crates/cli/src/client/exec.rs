//! `berth exec`: `POST /containers/{id}/exec`, then a hijacked `POST /exec/{id}/start` streamed like attach,
//! then `GET /exec/{id}/json` for the exit code (docker's flow).

use std::io::IsTerminal;

use clap::Parser;
use serde_json::{json, Value};

use super::http::{encode, Body};
use super::{parse, CliError, CmdResult, Globals};

#[derive(Parser, Debug)]
#[command(about = "Execute a command in a running container")]
pub struct ExecOpts {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    // CONTAINER COMMAND [ARG...]: everything after the container is the command, flags included.
    #[arg(value_name = "CONTAINER", required = true, num_args = 2.., trailing_var_arg = true)]
    args: Vec<String>,
}

/// The `POST /containers/{id}/exec` body for the flags.
pub fn exec_body(o: &ExecOpts) -> Result<Value, CliError> {
    let mut env = Vec::new();
    for f in &o.env_file {
        let text =
            std::fs::read_to_string(f).map_err(|e| CliError::Msg(super::go_io("open", f, &e)))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .filter_map(super::runopts::env_entry),
        );
    }
    // `-e KEY` takes KEY from our environment (dropped when unset), as docker does.
    env.extend(o.env.iter().filter_map(|e| super::runopts::env_entry(e)));
    let mut body = json!({
        "User": o.user.clone().unwrap_or_default(),
        "Privileged": o.privileged,
        "Tty": o.tty,
        "AttachStdin": o.interactive && !o.detach,
        "AttachStdout": !o.detach,
        "AttachStderr": !o.detach,
        "Detach": o.detach,
        "Env": env,
        "WorkingDir": o.workdir.clone().unwrap_or_default(),
        "Cmd": o.args[1..],
    });
    if let Some(k) = &o.detach_keys {
        body["DetachKeys"] = json!(k);
    }
    Ok(body)
}

/// `berth exec`.
pub fn exec(args: &[String], g: &Globals) -> CmdResult {
    let o: ExecOpts = parse(
        "exec",
        "berth exec [OPTIONS] CONTAINER COMMAND [ARG...]",
        args,
    )?;
    let mut body = exec_body(&o)?;
    let mut client = g.client()?;
    if !o.detach {
        super::run::check_tty(o.interactive, o.tty)?;
    }
    if o.tty {
        if let Some((h, w)) = super::run::terminal_size() {
            body["ConsoleSize"] = json!([h, w]);
        }
    }
    let created = client.post_json(
        &format!("/containers/{}/exec", encode(&o.args[0])),
        Some(&body),
    )?;
    let id = created["Id"].as_str().unwrap_or("").to_string();
    let mut start = json!({"Detach": o.detach, "Tty": o.tty});
    if let Some(size) = body.get("ConsoleSize") {
        start["ConsoleSize"] = size.clone();
    }
    if o.detach {
        client.request(
            "POST",
            &format!("/exec/{}/start", encode(&id)),
            &[],
            Body::Json(&start),
        )?;
        return Ok(0);
    }
    let (reader, writer) = client.hijack(&format!("/exec/{}/start", encode(&id)), Some(&start))?;
    let stdin = o.interactive;
    let base = format!("/exec/{}", encode(&id));
    if o.tty && std::io::stdout().is_terminal() {
        // Window changes become /exec/ID/resize calls (no signals are proxied for exec, as with docker).
        super::run::spawn_signal_proxy(&client, &base, true, false);
        super::run::resize(&mut client, &base);
    }
    let _raw =
        (o.tty && stdin && std::io::stdin().is_terminal()).then(super::run::RawTerminal::enable);
    if super::run::stream(reader, writer, o.tty, stdin, o.detach_keys.as_deref())? {
        drop(_raw);
        return Err(CliError::Exit {
            code: 1,
            msg: Some("read escape sequence".into()),
        });
    }
    let info = client.get_json(&format!("/exec/{}/json", encode(&id)))?;
    Ok(info["ExitCode"].as_i64().unwrap_or(0) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_flags_map_to_the_body() {
        let args: Vec<String> = [
            "exec", "-e", "A=1", "-u", "nobody", "-w", "/tmp", "-i", "c1", "sh", "-c", "echo $A",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o: ExecOpts = parse("exec", "u", &args).expect("parse");
        let b = exec_body(&o).expect("body");
        assert_eq!(b["Cmd"], json!(["sh", "-c", "echo $A"]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["User"], "nobody");
        assert_eq!(b["WorkingDir"], "/tmp");
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["AttachStdout"], true);
        assert_eq!(o.args[0], "c1");
        let missing: Vec<String> = ["exec", "c1"].iter().map(|s| s.to_string()).collect();
        assert!(parse::<ExecOpts>("exec", "u", &missing).is_err());
    }
}
