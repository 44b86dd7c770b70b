//! `berth-shim`: the steady-state half of a container's monitor (like conmon beside runc).
//!
//! `berth monitor` (the full `berth` binary: runtime, storage, network) sets a container up and starts it, then
//! `execve`s this small program in the same process, handing over the container's output pipes (or its pty
//! master), the stdin fifo and the container init's pid. Because exec keeps the pid, the init stays our child,
//! we stay a child subreaper (the flag survives exec), and berthd's pidfd on the monitor keeps watching the right
//! process. This program only copies output into the json-file log (see [`log`]) and stdin into the container,
//! and reaps children. When the init has exited and its output is drained it records the exit (code, time, OOM
//! kill) in `monitor.json` and exits: with the builtin runtime berthd does the rest of the cleanup (runtime
//! state, network, rootfs) when it sees the monitor gone. With a runtime CLI (`--runtime runc`) it `execve`s the
//! full binary again as `berth monitor --finish CODE ...` (through the fd of the monitor's own sealed
//! executable), which deletes the container through that CLI.
//!
//! It depends on std and libc only, so a running container costs well under 2 MB of resident memory.
//!
//! Command line (written by `berth_engine::monitor`, which is the only caller; `monitor` as the first argument
//! and the container id keep `ps` and berthd's re-adoption check recognizing the process as a monitor):
//!
//! ```text
//! berth-shim monitor --data-root D --exec-root E --id ID --runtime R --pid PID --out FD --err FD
//!     --log PATH [--max-size BYTES] [--max-file N] [--tty]
//!     [--stdin-fifo PATH --stdin-fd FD --stdin-to FD [--stdin-once]]
//!     --finish-fd FD [--finish-argv0 PATH]
//! ```

mod log;
mod pump;

use std::ffi::{CString, OsString};
use std::fmt;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Errors of the shim's command line and hand-over.
#[derive(Debug)]
pub enum ShimError {
    /// Bad command line.
    Usage(String),
    /// The log file could not be opened.
    Log(log::LogError),
    /// Executing the finishing monitor failed.
    Finish(std::io::Error),
}

impl fmt::Display for ShimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShimError::Usage(m) => write!(f, "usage: {m}"),
            ShimError::Log(e) => write!(f, "{e}"),
            ShimError::Finish(e) => write!(f, "executing berth monitor --finish: {e}"),
        }
    }
}

/// The parsed command line.
#[derive(Debug, Default)]
pub struct Opts {
    data_root: OsString,
    exec_root: OsString,
    id: String,
    runtime: OsString,
    pid: i32,
    out: i32,
    err: i32,
    log: PathBuf,
    max_size: Option<u64>,
    max_file: u32,
    tty: bool,
    stdin_fifo: Option<PathBuf>,
    stdin_fd: i32,
    stdin_to: i32,
    stdin_once: bool,
    finish_fd: i32,
    finish_argv0: OsString,
}

fn parse(args: &[OsString]) -> Result<Opts, ShimError> {
    let mut o = Opts {
        max_file: 1,
        stdin_fd: -1,
        stdin_to: -1,
        finish_fd: -1,
        out: -1,
        err: -1,
        finish_argv0: "berth".into(),
        ..Default::default()
    };
    let mut it = args.iter().skip(1);
    if it.next().map(|a| a.as_bytes()) != Some(b"monitor") {
        return Err(ShimError::Usage(
            "berth-shim monitor ... (started by berth monitor only)".into(),
        ));
    }
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        let flag = a.as_ref();
        match flag {
            "--tty" => {
                o.tty = true;
                continue;
            }
            "--stdin-once" => {
                o.stdin_once = true;
                continue;
            }
            _ => {}
        }
        let v = it
            .next()
            .ok_or_else(|| ShimError::Usage(format!("{flag} needs a value")))?;
        let num = |v: &OsString| -> Result<i64, ShimError> {
            v.to_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ShimError::Usage(format!("bad {flag} {}", v.to_string_lossy())))
        };
        match flag {
            "--data-root" => o.data_root = v.clone(),
            "--exec-root" => o.exec_root = v.clone(),
            "--id" => o.id = v.to_string_lossy().into_owned(),
            "--runtime" => o.runtime = v.clone(),
            "--pid" => o.pid = num(v)? as i32,
            "--out" => o.out = num(v)? as i32,
            "--err" => o.err = num(v)? as i32,
            "--log" => o.log = PathBuf::from(v),
            "--max-size" => o.max_size = Some(num(v)? as u64),
            "--max-file" => o.max_file = num(v)? as u32,
            "--stdin-fifo" => o.stdin_fifo = Some(PathBuf::from(v)),
            "--stdin-fd" => o.stdin_fd = num(v)? as i32,
            "--stdin-to" => o.stdin_to = num(v)? as i32,
            "--finish-fd" => o.finish_fd = num(v)? as i32,
            "--finish-argv0" => o.finish_argv0 = v.clone(),
            other => return Err(ShimError::Usage(format!("unknown argument {other}"))),
        }
    }
    if o.id.len() != 64 || !o.id.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(ShimError::Usage(format!("bad --id {:?}", o.id)));
    }
    if o.pid <= 0 || o.out < 0 || o.err < 0 || o.log.as_os_str().is_empty() {
        return Err(ShimError::Usage(
            "--pid, --out, --err and --log are required".into(),
        ));
    }
    Ok(o)
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            // Without a valid id there is no monitor.log to write to (berth monitor never gets here).
            eprintln!("berth-shim: {e}");
            std::process::exit(2);
        }
    };
    let code = match pump::run(&o) {
        Ok(c) => c,
        Err(e) => {
            diag(&o, &e.to_string());
            // The log cannot be written: still wait for the container, so its exit is recorded.
            pump::wait_exit(o.pid)
        }
    };
    if o.runtime.as_bytes() == b"builtin" {
        write_status(&o, code, None);
        std::process::exit(0);
    }
    let e = finish(&o, code);
    // Only reached when the exec failed: record the exit ourselves so berthd still sees it (berthd unmounts
    // and detaches a monitor's leftovers when it notices the death; the runtime state is deleted by the next
    // start).
    diag(&o, &e.to_string());
    write_status(&o, code, Some(&e.to_string()));
    std::process::exit(1);
}

/// Appends a line to the container's `monitor.log` (made on first use: a run with nothing to report creates
/// no file; berthd gives monitors /dev/null for stdio).
pub fn diag(o: &Opts, msg: &str) {
    let p = PathBuf::from(&o.data_root)
        .join("containers")
        .join(&o.id)
        .join("monitor.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
    {
        let _ = writeln!(f, "{} berth-shim {}: {msg}", log::rfc3339_nano_now(), o.id);
    }
}

/// Whether the container's cgroup saw an OOM kill (v1 memory.oom_control or v2 memory.events), as
/// `berth monitor` checks it.
fn oom_killed(id: &str) -> bool {
    [
        format!("/sys/fs/cgroup/memory/berth/{id}/memory.oom_control"),
        format!("/sys/fs/cgroup/berth/{id}/memory.events"),
    ]
    .iter()
    .any(|p| {
        std::fs::read_to_string(p).is_ok_and(|s| {
            s.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    > 0
            })
        })
    })
}

/// Replaces this process with `berth monitor --finish CODE ...` from the fd the monitor handed over.
fn finish(o: &Opts, code: i32) -> ShimError {
    if o.finish_fd < 0 {
        return ShimError::Finish(std::io::Error::other("no --finish-fd"));
    }
    let code = code.to_string();
    let args: Vec<&[u8]> = vec![
        o.finish_argv0.as_bytes(),
        b"monitor",
        b"--finish",
        code.as_bytes(),
        b"--data-root",
        o.data_root.as_bytes(),
        b"--exec-root",
        o.exec_root.as_bytes(),
        b"--id",
        o.id.as_bytes(),
        b"--runtime",
        o.runtime.as_bytes(),
    ];
    let args: Vec<CString> = args
        .into_iter()
        .filter_map(|a| CString::new(a).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    // The finishing monitor does not need the fd itself (an ELF binary, so close-on-exec is fine for execveat).
    // SAFETY: F_SETFD on an fd number only changes its flags.
    unsafe { libc::fcntl(o.finish_fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: argv/envp are NULL-terminated arrays of valid C strings that outlive the call; on success the call
    // does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            o.finish_fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    ShimError::Finish(std::io::Error::last_os_error())
}

/// `monitor.json` with the exit, keeping `pid` and `started_at` from the record the monitor wrote at start.
/// Same fields as `berth_engine::record::MonitorStatus`; atomic (temp file, rename) but not fsync'd, as the
/// monitor writes it (it describes one run, which a power loss ends).
fn write_status(o: &Opts, code: i32, error: Option<&str>) {
    let dir = PathBuf::from(&o.data_root).join("containers").join(&o.id);
    let path = dir.join("monitor.json");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let started = old
        .split_once("\"started_at\":\"")
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(s, _)| s.to_string())
        .unwrap_or_default();
    let mut data = format!(
        "{{\"pid\":{},\"started_at\":\"{started}\",\"exit_code\":{code},\"finished_at\":\"{}\",\"oom_killed\":{},\"error\":",
        o.pid,
        log::rfc3339_nano_now(),
        oom_killed(&o.id)
    )
    .into_bytes();
    match error {
        Some(error) => {
            data.push(b'"');
            log::escape_into(&mut data, error);
            data.extend_from_slice(b"\"}");
        }
        None => data.extend_from_slice(b"null}"),
    }
    let tmp = dir.join(format!(".monitor.json.tmp{}", std::process::id()));
    let ok = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&data))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = ok {
        diag(o, &format!("writing {}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let id = "ab".repeat(32);
        let args: Vec<OsString> = [
            "berth-shim",
            "monitor",
            "--data-root",
            "/d",
            "--exec-root",
            "/e",
            "--id",
            &id,
            "--runtime",
            "builtin",
            "--pid",
            "42",
            "--out",
            "5",
            "--err",
            "6",
            "--log",
            "/d/x.log",
            "--tty",
            "--max-size",
            "1000",
            "--finish-fd",
            "7",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let o = parse(&args).unwrap();
        assert_eq!((o.pid, o.out, o.err, o.finish_fd), (42, 5, 6, 7));
        assert!(o.tty && o.max_size == Some(1000) && o.max_file == 1);
        assert!(o.stdin_fifo.is_none());
        assert!(parse(&args[..12]).is_err(), "missing --out/--err/--log");
        let mut bad = args.clone();
        bad[1] = "other".into();
        assert!(parse(&bad).is_err());
        let mut bad = args.clone();
        bad[11] = "x".into();
        assert!(parse(&bad).is_err());
    }
}
