//! `berthd`: the engine daemon serving the Docker Engine API on a unix socket.
//!
//! It opens the data root, re-attaches to containers whose monitors survived a previous berthd, and serves
//! until SIGTERM/SIGINT; then it stops serving and removes its socket, leaving containers running.

use std::fs;
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_engine::{Engine, EngineConfig};
use clap::Parser;

/// Command line, dockerd's flag names.
#[derive(Debug, Parser)]
#[command(
    name = "berthd",
    version,
    about = "berth engine daemon (Docker Engine API)"
)]
struct Args {
    /// Socket to listen on (unix:///path).
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/berth/berth.sock"
    )]
    host: String,
    /// Root of persistent state.
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// Root of runtime state.
    #[arg(long, default_value = "/run/berth")]
    exec_root: PathBuf,
    /// Group owning the socket.
    #[arg(short = 'G', long, default_value = "berth")]
    group: String,
    /// Debug logging.
    #[arg(short = 'D', long)]
    debug: bool,
    /// Where to write berthd's pid.
    #[arg(short = 'p', long)]
    pidfile: Option<PathBuf>,
    /// The `berth` binary used for monitors (default: next to berthd).
    #[arg(long)]
    berth_binary: Option<PathBuf>,
    /// How monitors run containers: `builtin` (berth-runtime in-process, the default) or a runc-compatible
    /// runtime command such as `runc` or `/usr/bin/berth runtime`.
    #[arg(long)]
    runtime: Option<String>,
    /// Device name of the default bridge.
    #[arg(long, default_value = "berth0")]
    bridge_name: String,
    /// The default bridge's address and prefix, e.g. 172.30.0.1/16 (default: first free pool subnet).
    #[arg(long)]
    bip: Option<String>,
    /// Address pools for networks, `base=CIDR,size=N` (repeatable; docker's defaults when none).
    #[arg(long = "default-address-pool")]
    default_address_pool: Vec<String>,
    /// nftables table for berth's rules (default: `berth` for /var/lib/berth, else one derived from the
    /// data root so two daemons never share a table).
    #[arg(long)]
    nft_table: Option<String>,
    /// Disable bridge networking ("bridge" containers get only `lo`), dockerd's `--bridge none`.
    #[arg(long)]
    no_bridge: bool,
    /// An insecure registry (host[:port] or CIDR): HTTPS without certificate checks, else plain HTTP, as
    /// dockerd; loopback always is. Repeatable.
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    insecure_registry: Vec<String>,
}

/// `berth` for the standard data root, `berth_<hash>` otherwise (FNV-1a of the path: stable across runs).
fn default_nft_table(data_root: &Path) -> String {
    if data_root == Path::new("/var/lib/berth") {
        return "berth".into();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data_root.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("berth_{:08x}", h as u32)
}

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!(
                "{} {:<5} {}",
                berth_engine::record::now_rfc3339(),
                r.level(),
                r.args()
            );
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .or_else(|| {
            ["/usr/sbin", "/usr/bin", "/sbin"]
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.is_file())
        })
}

/// Group id for the socket; creates the default `berth` group if missing, falls back to root with a warning.
fn socket_gid(group: &str, explicit_default: bool) -> u32 {
    if let Ok(Some(g)) = nix::unistd::Group::from_name(group) {
        return g.gid.as_raw();
    }
    if explicit_default {
        let ok = Command::new("groupadd")
            .args(["--system", group])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            if let Ok(Some(g)) = nix::unistd::Group::from_name(group) {
                log::info!("created group {group}");
                return g.gid.as_raw();
            }
        }
    }
    log::warn!("group {group} not found; socket will be root:root 0660");
    0
}

/// A socket passed by systemd (LISTEN_PID/LISTEN_FDS), if any.
fn inherited_listener() -> Option<std::os::unix::net::UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let n: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    // sd_listen_fds(unset_environment = true): the variables describe this process only, and every monitor
    // berthd spawns would otherwise inherit them. (main is still single-threaded here.)
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if pid != std::process::id() || n < 1 {
        return None;
    }
    // systemd passes the socket without close-on-exec; set it so that monitors (and through them containers)
    // never inherit the API socket.
    // SAFETY: fcntl(F_SETFD) only changes the flags of fd 3; if nothing is open there it fails with EBADF.
    if unsafe { libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        log::warn!("LISTEN_FDS={n} but fd 3 is not open; binding the socket myself");
        return None;
    }
    // SAFETY: systemd passed fd 3 to us as the first listening socket (checked via LISTEN_PID), and nothing
    // else in this process owns it.
    Some(unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) })
}

fn main() -> Result<()> {
    // `berthd monitor ...` is the same monitor as `berth monitor ...` (used when no `berth` binary sits next to
    // berthd). It is dispatched before tokio starts, so the monitor stays single-threaded.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).and_then(|a| a.to_str()) == Some("monitor") {
        std::process::exit(berth_engine::monitor::main(&argv[1..]));
    }
    let args = Args::parse();
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if args.debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
    let Some(sock_path) = args.host.strip_prefix("unix://") else {
        bail!("only unix:// hosts are supported, got {}", args.host);
    };
    let sock_path = PathBuf::from(sock_path);
    let berth_binary = match args.berth_binary.clone() {
        Some(b) => b,
        None => {
            let me = std::env::current_exe().context("locating berthd")?;
            let sibling = me.with_file_name("berth");
            if sibling.is_file() {
                sibling
            } else {
                me
            }
        }
    };
    let runtime = match args.runtime.clone() {
        None => "builtin".to_string(),
        // A bare name is looked up in PATH (monitors run with a minimal environment).
        Some(r) if !r.contains('/') && r != "builtin" => {
            let mut words = r.split_whitespace();
            let first = words.next().unwrap_or("runc");
            let rest: Vec<&str> = words.collect();
            let path = find_in_path(first)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| first.to_string());
            std::iter::once(path.as_str())
                .chain(rest)
                .collect::<Vec<_>>()
                .join(" ")
        }
        Some(r) => r,
    };
    let cfg = EngineConfig {
        data_root: args.data_root.clone(),
        exec_root: args.exec_root.clone(),
        berth_binary,
        runtime,
        network: (!args.no_bridge).then(|| berth_engine::net::NetSettings {
            bridge_name: args.bridge_name.clone(),
            bip: args.bip.clone(),
            pools: args.default_address_pool.clone(),
            nft_table: args
                .nft_table
                .clone()
                .unwrap_or_else(|| default_nft_table(&args.data_root)),
        }),
        insecure_registries: args.insecure_registry.clone(),
    };
    // Taken before tokio starts: it edits the environment, which is only sound while single-threaded.
    let inherited = inherited_listener();
    limit_malloc_arenas();
    let rt = tokio::runtime::Runtime::new().context("starting tokio")?;
    rt.block_on(run(args, cfg, sock_path, inherited))
}

/// glibc gives each thread that allocates its own arena (up to 8 per core) and keeps what is freed there.
/// berthd's threads (tokio workers, blocking-pool threads that come and go) allocate little, so a few arenas
/// serve them as well and keep the daemon's resident memory small and stable.
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Gives memory freed after a burst of requests (large JSON bodies, image lists, build contexts) back to the
/// kernel: glibc keeps freed pages in its arenas otherwise, and a daemon at rest should not hold its peak.
async fn trim_malloc_periodically() {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free memory to the kernel; it is thread-safe (takes the arena locks).
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

async fn run(
    args: Args,
    cfg: EngineConfig,
    sock_path: PathBuf,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> Result<()> {
    fs::create_dir_all(&cfg.exec_root)
        .with_context(|| format!("creating {}", cfg.exec_root.display()))?;
    let engine: Arc<Engine> =
        Engine::new(cfg).map_err(|e| anyhow::anyhow!("opening data root: {e}"))?;
    tokio::spawn(trim_malloc_periodically());
    let (listener, owned_socket) = match inherited {
        Some(l) => {
            l.set_nonblocking(true)?;
            (tokio::net::UnixListener::from_std(l)?, false)
        }
        None => {
            if let Some(dir) = sock_path.parent() {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            if sock_path.exists() {
                if std::os::unix::net::UnixStream::connect(&sock_path).is_ok() {
                    bail!("{} is in use by another daemon", sock_path.display());
                }
                fs::remove_file(&sock_path)?;
            }
            let l = tokio::net::UnixListener::bind(&sock_path)
                .with_context(|| format!("binding {}", sock_path.display()))?;
            let gid = socket_gid(&args.group, args.group == "berth");
            nix::unistd::chown(
                &sock_path,
                Some(nix::unistd::Uid::from_raw(0)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .with_context(|| format!("chown {}", sock_path.display()))?;
            fs::set_permissions(&sock_path, fs::Permissions::from_mode(0o660))?;
            (l, true)
        }
    };
    if let Some(p) = &args.pidfile {
        fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    log::info!(
        "berthd {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        sock_path.display()
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(berth_api::serve(listener, engine, async move {
        let _ = stop_rx.await;
    }));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM: shutting down"),
        _ = int.recv() => log::info!("SIGINT: shutting down"),
    }
    let _ = stop_tx.send(());
    // Streaming requests (logs -f, attach) may never end on their own; don't wait for them long.
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    if owned_socket {
        let _ = fs::remove_file(&sock_path);
    }
    if let Some(p) = &args.pidfile {
        let _ = fs::remove_file(p);
    }
    log::info!("stopped; containers keep running");
    Ok(())
}
