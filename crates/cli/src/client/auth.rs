//! `login`/`logout` and registry credentials in docker's `~/.docker/config.json` (`auths`), sent to the
//! daemon as `X-Registry-Auth` on pull and push.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use base64::Engine;
use clap::Parser;
use serde_json::{json, Value};

use super::http::Body;
use super::{image, out, parse, CliError, CmdResult, Globals};

/// docker's key for Docker Hub in `auths`.
pub const DEFAULT_SERVER: &str = "https://index.docker.io/v1/";

fn config_path(g: &Globals) -> PathBuf {
    g.config_dir.join("config.json")
}

fn load_config(g: &Globals) -> Value {
    std::fs::read(config_path(g))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}))
}

fn save_config(g: &Globals, v: &Value) -> Result<(), CliError> {
    std::fs::create_dir_all(&g.config_dir)?;
    let path = config_path(g);
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    let data = serde_json::to_vec_pretty(v).map_err(|e| CliError::Msg(e.to_string()))?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&data)?;
        f.write_all(b"\n")?;
    }
    // Rename so a crash never leaves a half-written config.
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// The registry key for an image name: its domain, or Docker Hub.
pub fn server_for(name: &str) -> String {
    image::domain(name).map_or_else(|| DEFAULT_SERVER.to_string(), str::to_string)
}

/// base64url(JSON), docker's `X-Registry-Auth` encoding.
pub fn encode_auth(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
}

/// The `X-Registry-Auth` header for pulling/pushing `name`, when credentials are stored.
pub fn header_for(g: &Globals, name: &str) -> Vec<(&'static str, String)> {
    let server = server_for(name);
    let cfg = load_config(g);
    let Some(entry) = cfg["auths"].get(&server) else {
        return Vec::new();
    };
    let Some(auth) = entry["auth"].as_str() else {
        return Vec::new();
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(auth.trim()) else {
        return Vec::new();
    };
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (user, pass) = raw.split_once(':').unwrap_or((&raw, ""));
    vec![(
        "X-Registry-Auth",
        encode_auth(&json!({"username": user, "password": pass, "serveraddress": server})),
    )]
}

#[derive(Parser)]
#[command(about = "Authenticate to a registry")]
struct LoginOpts {
    /// Password
    #[arg(short, long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    #[arg(value_name = "SERVER")]
    server: Option<String>,
}

fn read_line_prompt(prompt: &str) -> Result<String, CliError> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut s = String::new();
    std::io::stdin().lock().read_line(&mut s)?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

fn read_password(prompt: &str) -> Result<String, CliError> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let orig = if stdin.is_terminal() {
        tcgetattr(&stdin).ok()
    } else {
        None
    };
    if let Some(t) = &orig {
        let mut noecho = t.clone();
        noecho.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &noecho);
    }
    let r = read_line_prompt(prompt);
    if let Some(t) = &orig {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
        eprintln!();
    }
    r
}

/// `berth login`.
pub fn login(args: &[String], g: &Globals) -> CmdResult {
    let o: LoginOpts = parse("login", "berth login [OPTIONS] [SERVER]", args)?;
    if o.password.is_some() && o.password_stdin {
        return Err(CliError::Msg(
            "--password and --password-stdin are mutually exclusive".into(),
        ));
    }
    if o.password_stdin && o.username.is_none() {
        return Err(CliError::Msg(
            "Must provide --username with --password-stdin".into(),
        ));
    }
    let server = o
        .server
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let server = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let server = if server == "index.docker.io/v1" || server == "docker.io" {
        DEFAULT_SERVER.to_string()
    } else {
        server
    };
    if o.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let user = match o.username {
        Some(u) => u,
        None => read_line_prompt("Username: ")?,
    };
    let pass = match (o.password, o.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s.trim_end_matches(['\r', '\n']).to_string()
        }
        (None, false) => read_password("Password: ")?,
    };
    if user.is_empty() {
        return Err(CliError::Msg("Error: Non-null Username Required".into()));
    }
    let body = json!({"username": user, "password": pass, "serveraddress": server});
    let resp = g
        .client()?
        .request("POST", "/auth", &[], Body::Json(&body))?
        .json()?;
    let mut cfg = load_config(g);
    if !cfg["auths"].is_object() {
        cfg["auths"] = json!({});
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    cfg["auths"][&server] = json!({"auth": token});
    save_config(g, &cfg)?;
    let status = resp["Status"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("Login Succeeded");
    out(&format!("{status}\n"))?;
    Ok(0)
}

#[derive(Parser)]
#[command(about = "Log out from a registry")]
struct LogoutOpts {
    #[arg(value_name = "SERVER")]
    server: Option<String>,
}

/// `berth logout`.
pub fn logout(args: &[String], g: &Globals) -> CmdResult {
    let o: LogoutOpts = parse("logout", "berth logout [SERVER]", args)?;
    let server = o.server.unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let mut cfg = load_config(g);
    let removed = cfg["auths"]
        .as_object_mut()
        .and_then(|a| a.remove(&server))
        .is_some();
    if !removed {
        out(&format!("Not logged in to {server}\n"))?;
        return Ok(0);
    }
    out(&format!("Removing login credentials for {server}\n"))?;
    save_config(g, &cfg)?;
    Ok(0)
}
