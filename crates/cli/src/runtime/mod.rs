//! `berth runtime`: runc's command line over `berth_runtime`, so dockerd and containerd can use berth in
//! runc's place. Global flags are accepted anywhere (as runc does); errors are one line on stderr and, with
//! `--log`, a runc-format line (text or json) in the log file, which containerd reads on failure.

mod args;
mod cmds;
mod info;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// Global options.
#[derive(Debug, Clone)]
pub struct Globals {
    pub root: PathBuf,
    pub log: Option<PathBuf>,
    pub log_json: bool,
    pub systemd_cgroup: bool,
    pub debug: bool,
}

/// Runs `berth runtime ARGS...` (`args[0]` is "runtime") and returns the process exit code.
pub fn main(args: &[OsString]) -> i32 {
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (globals, rest) = args::split_globals(&args);
    let g = match args::parse(&globals, args::GLOBAL, None) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("berth runtime: {e}");
            return 1;
        }
    };
    let globals = Globals {
        root: g
            .value("root")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/berth/runtime")),
        log: g.value("log").map(PathBuf::from),
        log_json: g.value("log-format") == Some("json"),
        systemd_cgroup: g.has("systemd-cgroup"),
        debug: g.has("debug"),
    };
    if g.has("version") && rest.is_empty() {
        print!("{}", info::version());
        return 0;
    }
    let Some((cmd, cmd_args)) = rest.split_first() else {
        eprintln!("{}", info::usage());
        return if g.has("help") { 0 } else { 1 };
    };
    if globals.debug {
        log_line(
            &globals,
            "debug",
            &format!("berth runtime {}", rest.join(" ")),
        );
    }
    match cmds::run(cmd, cmd_args, &globals) {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string().replace('\n', " ");
            eprintln!("berth runtime: {msg}");
            log_line(&globals, "error", &msg);
            1
        }
    }
}

/// Appends a line to `--log` in runc's logrus format.
fn log_line(g: &Globals, level: &str, msg: &str) {
    let Some(path) = &g.log else { return };
    let time = berth_runtime::now_rfc3339();
    let line = if g.log_json {
        serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
    } else {
        format!("time=\"{time}\" level={level} msg={:?}", msg)
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}
