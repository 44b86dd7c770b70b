//! `run` and `create`: the run flow (create → pull on "No such image" → attach → wait → start → stream →
//! exit with the container's status), attach streaming and terminal handling.

use std::io::{IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;

use serde_json::Value;

use super::http::{encode, with_query, Body, Client, HttpError};
use super::logs::{copy_raw, demux};
use super::runopts::{create_body, RunOpts};
use super::{image, parse, CliError, CmdResult, Globals};

/// Creates the container, pulling the image when it is missing (`--pull missing`) or always.
fn create_container(client: &mut Client, g: &Globals, o: &RunOpts) -> Result<String, CliError> {
    let mut body = create_body(o)?;
    if o.tty {
        // Like docker: the terminal starts at our size, so the first prompt fits before any resize.
        if let Some((h, w)) = terminal_size() {
            body["HostConfig"]["ConsoleSize"] = serde_json::json!([h, w]);
        }
    }
    let mut q = Vec::new();
    if let Some(n) = &o.name {
        q.push(("name", n.clone()));
    }
    if let Some(p) = &o.platform {
        q.push(("platform", p.clone()));
    }
    let path = with_query("/containers/create", &q);
    let pull = |client: &mut Client| {
        image::pull_image(client, g, &o.image, o.platform.as_deref(), o.quiet, true)
    };
    if o.pull == "always" {
        pull(client)?;
    }
    let resp = match client.post_json(&path, Some(&body)) {
        Err(HttpError::Api {
            status: 404,
            message,
        }) if o.pull == "missing" && message.contains("No such image") => {
            eprintln!(
                "Unable to find image '{}' locally",
                image::with_default_tag(&o.image)
            );
            pull(client)?;
            client.post_json(&path, Some(&body))?
        }
        r => r?,
    };
    for w in resp["Warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        eprintln!("WARNING: {w}");
    }
    let id = resp["Id"].as_str().unwrap_or("").to_string();
    if let Some(f) = &o.cidfile {
        std::fs::write(f, &id).map_err(|e| {
            CliError::Msg(format!("failed to write the container ID to the file: {e}"))
        })?;
    }
    Ok(id)
}

/// Errors from run/create are prefixed `berth:`; like docker's `toStatusError`, a missing executable exits
/// 127, a non-executable one 126, anything else 125.
fn as_run_error(e: CliError) -> CliError {
    match e {
        CliError::Exit { .. } => e,
        other => {
            let msg = other.to_string();
            CliError::Exit {
                code: run_error_code(&msg),
                msg: Some(format!("berth: {msg}")),
            }
        }
    }
}

/// docker's exit code for a failed create/start, from the daemon's message.
pub fn run_error_code(msg: &str) -> i32 {
    // Case-insensitive: runtimes word errno text differently ("No such file or directory").
    let msg = msg.to_ascii_lowercase();
    if msg.contains("executable file not found")
        || msg.contains("no such file or directory")
        || msg.contains("system cannot find the file specified")
    {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    }
}

/// `berth create`.
pub fn create(args: &[String], g: &Globals) -> CmdResult {
    let mut o = parse::<RunOpts>(
        "create",
        "berth create [OPTIONS] IMAGE [COMMAND] [ARG...]",
        args,
    )?
    .split_args();
    o.detach = true;
    let mut client = g.client().map_err(as_run_error)?;
    let id = create_container(&mut client, g, &o).map_err(as_run_error)?;
    super::out(&format!("{id}\n"))?;
    Ok(0)
}

/// Puts the terminal in raw mode for `-it`, restoring it on drop.
pub struct RawTerminal(Option<nix::sys::termios::Termios>);

impl RawTerminal {
    /// Raw mode on stdin (a no-op when it is not a terminal).
    pub fn enable() -> RawTerminal {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let Ok(orig) = tcgetattr(&stdin) else {
            return RawTerminal(None);
        };
        let mut raw = orig.clone();
        cfmakeraw(&mut raw);
        // Keep output post-processing so our own messages still get CRLF.
        raw.output_flags |= nix::sys::termios::OutputFlags::OPOST;
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawTerminal(Some(orig))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// docker's `CheckTty`: a TTY with stdin attached needs a terminal on our stdin.
pub(super) fn check_tty(stdin: bool, tty: bool) -> Result<(), CliError> {
    if tty && stdin && !std::io::stdin().is_terminal() {
        return Err(CliError::Exit {
            code: 1,
            msg: Some("the input device is not a TTY".into()),
        });
    }
    Ok(())
}

/// Our terminal's (rows, columns), from stdout.
pub(super) fn terminal_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the valid, properly aligned struct we pass.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Streams an attached container or exec: copies stdin in a thread (if asked), output here until the daemon
/// closes. With a TTY, typing the detach keys (`detach_keys`, default ctrl-p ctrl-q) ends the session like
/// docker's escape proxy: the keys are not sent, and the result is `true` (detached).
pub fn stream(
    mut reader: impl Read,
    writer: UnixStream,
    tty: bool,
    stdin: bool,
    detach_keys: Option<&str>,
) -> Result<bool, CliError> {
    let detached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if stdin {
        let mut w = writer;
        // An invalid spec was already refused by the daemon; docker falls back to the default here too.
        let mut escape = tty.then(|| {
            berth_engine::tty::EscapeProxy::new(
                berth_engine::tty::parse_detach_keys(detach_keys.unwrap_or(""))
                    .unwrap_or_else(|_| berth_engine::tty::DEFAULT_DETACH_KEYS.to_vec()),
            )
        });
        let flag = detached.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut input = std::io::stdin();
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (data, detach) = match escape.as_mut() {
                    Some(e) => e.feed(&buf[..n]),
                    None => (buf[..n].to_vec(), false),
                };
                if w.write_all(&data).is_err() {
                    break;
                }
                if detach {
                    // Closing both directions ends the output copy in the main thread too.
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = w.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
            // EOF on our stdin closes the container's stdin.
            let _ = w.shutdown(std::net::Shutdown::Write);
        });
    }
    let r = if tty {
        copy_raw(&mut reader)
    } else {
        demux(&mut reader)
    };
    if detached.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(true);
    }
    match r {
        // Our reader went away (`berth run ... | head`): stop here like a killed pipeline would, rather than
        // wait for a container that may never stop writing.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Exit { code: 0, msg: None })
        }
        r => Ok(r.map(|_| false)?),
    }
}

/// Tells the daemon our terminal size (for `-t`); `base` is `/containers/ID` or `/exec/ID`.
pub(super) fn resize(client: &mut Client, base: &str) {
    if let Some((h, w)) = terminal_size() {
        let q = [("h", h.to_string()), ("w", w.to_string())];
        let path = with_query(&format!("{base}/resize"), &q);
        let _ = client.request("POST", &path, &[], Body::None);
    }
}

/// docker's `--sig-proxy`: signals we receive go to the container (`POST /kill`), and with a TTY, window
/// size changes become `resize` calls on `base` (`/containers/ID` or `/exec/ID`). A dedicated thread
/// `sigwait`s for them.
pub(super) fn spawn_signal_proxy(client: &Client, base: &str, tty: bool, proxy: bool) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    if proxy && !tty {
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
        ] {
            set.add(s);
        }
    }
    if tty && std::io::stdout().is_terminal() {
        set.add(Signal::SIGWINCH);
    }
    if set.iter().next().is_none() || set.thread_block().is_err() {
        return;
    }
    let mut client = client.clone();
    let base = base.to_string();
    std::thread::spawn(move || {
        while let Ok(sig) = set.wait() {
            if sig == Signal::SIGWINCH {
                resize(&mut client, &base);
                continue;
            }
            let q = [("signal", sig.as_str().to_string())];
            let path = with_query(&format!("{base}/kill"), &q);
            let _ = client.request("POST", &path, &[], Body::None);
        }
    });
}

/// Attaches to, waits for and starts container `id`; returns its exit status.
/// How to attach: the container, its TTY mode, whether to send stdin, the wait condition, whether to start
/// it, docker's `--sig-proxy` and `--detach-keys`.
pub struct Attach<'a> {
    pub id: &'a str,
    pub tty: bool,
    pub stdin: bool,
    pub condition: &'a str,
    pub start: bool,
    pub sig_proxy: bool,
    pub detach_keys: Option<&'a str>,
}

/// How an attached session ended.
pub enum Ended {
    /// The container exited with this status.
    Exited(i32),
    /// The user typed the detach keys; the container still runs.
    Detached,
}

fn attach_start_wait(client: &mut Client, a: &Attach<'_>) -> Result<Ended, CliError> {
    let (id, tty, stdin, condition, start) = (a.id, a.tty, a.stdin, a.condition, a.start);
    let base = format!("/containers/{}", encode(id));
    // Before any thread starts, so every thread inherits the blocked mask and only the proxy sees signals.
    spawn_signal_proxy(client, &base, tty, a.sig_proxy);
    let mut q = vec![
        ("stream", "1".to_string()),
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
    ];
    if stdin {
        q.push(("stdin", "1".into()));
    }
    if let Some(k) = a.detach_keys {
        q.push(("detachKeys", k.to_string()));
    }
    let (reader, writer) = client.hijack(
        &with_query(&format!("/containers/{}/attach", encode(id)), &q),
        None,
    )?;
    let wq: Vec<(&str, String)> = if condition.is_empty() {
        Vec::new()
    } else {
        vec![("condition", condition.to_string())]
    };
    let pending = client.send(
        "POST",
        &with_query(&format!("/containers/{}/wait", encode(id)), &wq),
    )?;
    // Start only once the daemon has registered the waiter (its headers arrive at once), so a container that
    // exits immediately cannot be missed; a daemon that answers only at exit still works, unordered.
    let waiter = if pending.answered_within(5000) {
        let resp = pending.response()?;
        std::thread::spawn(move || resp.json())
    } else {
        std::thread::spawn(move || pending.response().and_then(|r| r.json()))
    };
    if start {
        client.request(
            "POST",
            &format!("/containers/{}/start", encode(id)),
            &[],
            Body::None,
        )?;
    }
    let _raw = (tty && stdin && std::io::stdin().is_terminal()).then(RawTerminal::enable);
    if tty {
        if !start {
            // Attaching to a running shell: like docker, resize one off first, so the size change makes the
            // program redraw (a prompt shows up without typing anything).
            if let Some((h, w)) = terminal_size() {
                let q = [("h", (h + 1).to_string()), ("w", (w + 1).to_string())];
                let _ = client.request(
                    "POST",
                    &with_query(&format!("{base}/resize"), &q),
                    &[],
                    Body::None,
                );
            }
        }
        resize(client, &base);
    }
    if stream(reader, writer, tty, stdin, a.detach_keys)? {
        return Ok(Ended::Detached);
    }
    let result = waiter
        .join()
        .map_err(|_| CliError::Msg("wait thread panicked".into()))??;
    if let Some(msg) = result["Error"]["Message"]
        .as_str()
        .filter(|m| !m.is_empty())
    {
        return Err(CliError::Exit {
            code: 125,
            msg: Some(format!("berth: Error response from daemon: {msg}")),
        });
    }
    Ok(Ended::Exited(
        result["StatusCode"].as_i64().unwrap_or(0) as i32
    ))
}

/// `attach`, `start -a`: a detach is docker's "read escape sequence" error.
fn exit_status(e: Ended) -> CmdResult {
    match e {
        Ended::Exited(code) => Ok(code),
        Ended::Detached => Err(CliError::Exit {
            code: 1,
            msg: Some("read escape sequence".into()),
        }),
    }
}

/// `berth start -a [-i] CONTAINER`.
pub fn start_attached(
    client: &mut Client,
    name: &str,
    interactive: bool,
    detach_keys: Option<&str>,
) -> CmdResult {
    let info = client.get_json(&format!("/containers/{}/json", encode(name)))?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = interactive && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let id = info["Id"].as_str().unwrap_or(name).to_string();
    check_tty(stdin, tty)?;
    let a = Attach {
        id: &id,
        tty,
        stdin,
        condition: "next-exit",
        start: true,
        sig_proxy: true,
        detach_keys,
    };
    exit_status(attach_start_wait(client, &a)?)
}

/// `berth run`.
pub fn run(args: &[String], g: &Globals) -> CmdResult {
    let o =
        parse::<RunOpts>("run", "berth run [OPTIONS] IMAGE [COMMAND] [ARG...]", args)?.split_args();
    if !o.detach {
        check_tty(o.interactive, o.tty)?;
    }
    let mut client = g.client().map_err(as_run_error)?;
    let id = create_container(&mut client, g, &o).map_err(as_run_error)?;
    if o.detach {
        client
            .request(
                "POST",
                &format!("/containers/{}/start", encode(&id)),
                &[],
                Body::None,
            )
            .map_err(|e| as_run_error(e.into()))?;
        super::out(&format!("{id}\n"))?;
        return Ok(0);
    }
    let stdin = o.interactive
        && (o.attach.is_empty() || o.attach.iter().any(|a| a.eq_ignore_ascii_case("stdin")));
    let condition = if o.rm { "removed" } else { "next-exit" };
    let a = Attach {
        id: &id,
        tty: o.tty,
        stdin,
        condition,
        start: true,
        sig_proxy: o.sig_proxy,
        detach_keys: o.detach_keys.as_deref(),
    };
    // A detach from `run` is quiet and successful, as with docker.
    match attach_start_wait(&mut client, &a).map_err(as_run_error)? {
        Ended::Exited(code) => Ok(code),
        Ended::Detached => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_docker_codes() {
        assert_eq!(
            run_error_code("exec: \"/x\": stat /x: no such file or directory"),
            127
        );
        assert_eq!(
            run_error_code("exec: \"sh\": executable file not found in $PATH"),
            127
        );
        assert_eq!(run_error_code("exec: \"/etc\": permission denied"), 126);
        assert_eq!(run_error_code("No such image: nosuch:latest"), 125);
    }
}

#[derive(clap::Parser)]
#[command(about = "Attach local standard input, output, and error streams to a running container")]
struct AttachOpts {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// `berth attach`.
pub fn attach(args: &[String], g: &Globals) -> CmdResult {
    let o: AttachOpts = parse("attach", "berth attach [OPTIONS] CONTAINER", args)?;
    let mut client = g.client()?;
    let info = client.get_json(&format!("/containers/{}/json", encode(&o.container)))?;
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        return Err(CliError::Msg(
            "You cannot attach to a stopped container, start it first".into(),
        ));
    }
    let id = info["Id"].as_str().unwrap_or(&o.container).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    check_tty(!o.no_stdin, tty)?;
    let a = Attach {
        id: &id,
        tty,
        stdin: !o.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false),
        condition: "",
        start: false,
        sig_proxy: o.sig_proxy,
        detach_keys: o.detach_keys.as_deref(),
    };
    exit_status(attach_start_wait(&mut client, &a)?)
}
