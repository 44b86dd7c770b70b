//! The docker-compatible client: parses docker's verbs and flags and talks to berthd over the Engine API.
//!
//! Layout: `http` (blocking HTTP/1.1 over a unix socket, hijack for attach), `template` and
//! `template_funcs` (Go templates for `--format`), `table` (docker's table/json/raw list output), `units`
//! (go-units sizes and durations), `progress` (the JSON progress stream of pull/push/load), and one module
//! per command family: `container` (ps, start/stop/kill/rm, rename, wait, prune), `logs` (logs, inspect,
//! stream demux), `run` + `runopts` (run/create), `image`, `system` (version, info, df, prune), `auth`
//! (login/logout, `X-Registry-Auth`). No async runtime: `berth ps` is two round trips on a unix socket.

mod auth;
mod build;
mod commit;
mod container;
mod cp;
mod events;
mod exec;
mod healthopts;
mod http;
mod image;
mod logs;
mod mountopts;
mod network;
mod ops;
mod port;
mod progress;
mod run;
mod runopts;
mod stats;
mod system;
mod table;
mod template;
mod template_funcs;
mod units;
mod volume;

use std::io::{self, Write};

use clap::{ArgAction, CommandFactory, FromArgMatches};

use self::http::{Client, HttpError};
use self::template::TemplateError;

/// Errors a command returns; `main` prints them docker-style and maps them to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A one-line error printed as is, exit 1.
    #[error("{0}")]
    Msg(String),
    /// Exit with `code`, printing `msg` (if any) to stderr verbatim.
    #[error("{}", msg.clone().unwrap_or_default())]
    Exit { code: i32, msg: Option<String> },
}

impl CliError {
    fn code(&self) -> i32 {
        match self {
            CliError::Exit { code, .. } => *code,
            _ => 1,
        }
    }
}

/// Shorthand for command results: the exit code on success.
pub type CmdResult = Result<i32, CliError>;

/// Global options given before the verb.
pub struct Globals {
    pub host: String,
    pub config_dir: std::path::PathBuf,
}

impl Globals {
    /// A client for `--host`/`BERTH_HOST`/`DOCKER_HOST` (unix sockets only).
    pub fn client(&self) -> Result<Client, CliError> {
        let path = self.host.strip_prefix("unix://").ok_or_else(|| {
            CliError::Msg(format!(
                "unsupported host {:?}: only unix:// sockets are supported",
                self.host
            ))
        })?;
        Ok(Client::new(path.into()))
    }
}

/// Writes to stdout, treating a closed pipe (`berth ps | head`) as success.
pub fn out(s: &str) -> Result<(), CliError> {
    let mut o = io::stdout().lock();
    match o.write_all(s.as_bytes()).and_then(|_| o.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            Err(CliError::Exit { code: 0, msg: None })
        }
        r => Ok(r?),
    }
}

/// Parses a verb's flags with clap, turning clap's errors into docker's messages and exit codes.
/// `args[0]` is the verb itself; `usage` is docker's usage line without the `Usage:` prefix.
pub fn parse<T: CommandFactory + FromArgMatches>(
    verb: &str,
    usage: &str,
    args: &[String],
) -> Result<T, CliError> {
    let mut cmd = T::command()
        // clap wants a 'static name without its "string" feature; one leak per process is fine.
        .name(&*Box::leak(format!("berth {verb}").into_boxed_str()))
        .bin_name(format!("berth {verb}"))
        .override_usage(usage.to_string())
        .disable_help_flag(true)
        .disable_version_flag(true)
        // docker's help layout: usage, description, options (positionals are in the usage line).
        .help_template("\nUsage:  {usage}\n\n{about}\n\nOptions:\n{options}\n")
        .max_term_width(120)
        .mut_args(|a| {
            if a.get_action().takes_values() {
                a.hide_default_value(true)
            } else {
                a
            }
        });
    let has_h = cmd.get_arguments().any(|a| a.get_short() == Some('h'));
    let mut help = clap::Arg::new("help")
        .long("help")
        .action(ArgAction::Help)
        .help("Print usage");
    if !has_h {
        help = help.short('h');
    }
    cmd = cmd.arg(help);
    let see = format!("See 'berth {verb} --help'.");
    let m = match cmd.try_get_matches_from_mut(args) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::{ContextKind, ContextValue, ErrorKind};
            let ctx = |k: ContextKind| match e.get(k) {
                Some(ContextValue::String(s)) => s.clone(),
                Some(ContextValue::Strings(v)) => v.join(", "),
                _ => String::new(),
            };
            let msg = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = out(&e.render().to_string());
                    return Err(CliError::Exit { code: 0, msg: None });
                }
                ErrorKind::UnknownArgument => {
                    let a = ctx(ContextKind::InvalidArg);
                    let a = a.split('=').next().unwrap_or("").to_string();
                    if !a.starts_with('-') {
                        // A stray positional: cobra's argument-count wording, exit 1.
                        let what = if cmd.get_positionals().next().is_none() {
                            "accepts no arguments".to_string()
                        } else {
                            format!("got an unexpected argument {a:?}")
                        };
                        return Err(CliError::Exit {
                            code: 1,
                            msg: Some(format!(
                                "berth: 'berth {verb}' {what}\n\nUsage:  {usage}\n\nRun 'berth {verb} --help' for more information"
                            )),
                        });
                    }
                    if a.starts_with("--") {
                        format!("unknown flag: {a}")
                    } else {
                        format!(
                            "unknown shorthand flag: {:?} in {a}",
                            a.chars().nth(1).unwrap_or('-')
                        )
                        .replace('"', "'")
                    }
                }
                ErrorKind::MissingRequiredArgument
                | ErrorKind::TooFewValues
                | ErrorKind::WrongNumberOfValues => {
                    if ctx(ContextKind::InvalidArg).starts_with('-') {
                        format!("flag needs an argument: {}", ctx(ContextKind::InvalidArg))
                    } else {
                        // docker 28's wording for a missing positional argument.
                        return Err(CliError::Exit {
                            code: 1,
                            msg: Some(format!(
                                "berth: 'berth {verb}' requires at least 1 argument\n\nUsage:  {usage}\n\nSee 'berth {verb} --help' for more information"
                            )),
                        });
                    }
                }
                ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
                    // docker names the flag as "-m, --memory".
                    let raw = ctx(ContextKind::InvalidArg);
                    let long = raw
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("--")
                        .to_string();
                    let arg = match cmd
                        .get_arguments()
                        .find(|a| a.get_long() == Some(long.as_str()))
                    {
                        Some(a) => match a.get_short() {
                            Some(c) => format!("-{c}, --{long}"),
                            None => format!("--{long}"),
                        },
                        None => raw,
                    };
                    let val = ctx(ContextKind::InvalidValue);
                    let detail = std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "invalid value".into());
                    if val.is_empty() {
                        format!("flag needs an argument: {arg}")
                    } else {
                        format!("invalid argument \"{val}\" for \"{arg}\" flag: {detail}")
                    }
                }
                _ => {
                    let r = e.render().to_string();
                    r.lines()
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("error: ")
                        .to_string()
                }
            };
            return Err(CliError::Exit {
                code: 125,
                msg: Some(format!("{msg}\n{see}")),
            });
        }
    };
    T::from_arg_matches(&m).map_err(|e| CliError::Exit {
        code: 125,
        msg: Some(format!("{e}\n{see}")),
    })
}

/// An I/O error worded like Go's (`open x: no such file or directory`), without Rust's `(os error N)`.
pub fn go_io(op: &str, path: &str, e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut c = text.chars();
    let text = match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect::<String>(),
        None => String::new(),
    };
    format!("{op} {path}: {text}")
}

/// Reads `y`/`N` from stdin after printing `prompt` (docker's confirmation for prune).
pub fn confirm(prompt: &str) -> bool {
    eprint!("{prompt} [y/N] ");
    let _ = io::stderr().flush();
    let mut line = String::new();
    if io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Builds docker's `filters` query JSON from repeated `k=v` flags.
pub fn filters_json(filters: &[String]) -> Result<Option<String>, CliError> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut map = serde_json::Map::new();
    for f in filters {
        let (k, v) = f.split_once('=').ok_or_else(|| CliError::Exit {
            code: 125,
            msg: Some(format!("invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)")),
        })?;
        let e = map
            .entry(k.to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(a) = e {
            a.push(serde_json::Value::String(v.to_string()));
        }
    }
    Ok(Some(serde_json::Value::Object(map).to_string()))
}

const VERSION_LINE: &str = concat!("Berth version ", env!("CARGO_PKG_VERSION"));

fn git_sha() -> &'static str {
    option_env!("BERTH_GIT_SHA").unwrap_or("unknown")
}

const TOP_HELP: &str = "
Usage:  berth [OPTIONS] COMMAND

A Docker-compatible container engine

Common Commands:
  run         Create and run a new container from an image
  ps          List containers
  build       Build an image from a Dockerfile
  pull        Download an image from a registry
  push        Upload an image to a registry
  images      List images
  login       Authenticate to a registry
  logout      Log out from a registry
  version     Show the Berth version information
  info        Display system-wide information

Management Commands:
  container   Manage containers
  image       Manage images
  system      Manage Berth
  volume      Manage volumes

Commands:
  attach      Attach local standard input, output, and error streams to a running container
  commit      Create a new image from a container's changes
  cp          Copy files/folders between a container and the local filesystem
  create      Create a new container
  diff        Inspect changes to files or directories on a container's filesystem
  exec        Execute a command in a running container
  history     Show the history of an image
  import      Import the contents from a tarball to create a filesystem image
  inspect     Return low-level information on Berth objects
  kill        Kill one or more running containers
  load        Load an image from a tar archive or STDIN
  logs        Fetch the logs of a container
  rename      Rename a container
  restart     Restart one or more containers
  rm          Remove one or more containers
  rmi         Remove one or more images
  save        Save one or more images to a tar archive (streamed to STDOUT by default)
  start       Start one or more stopped containers
  stop        Stop one or more running containers
  tag         Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
  wait        Block until one or more containers stop, then print their exit codes

Global Options:
      --config string      Location of client config files (default \"~/.docker\")
  -D, --debug              Enable debug mode
  -H, --host string        Daemon socket to connect to
  -l, --log-level string   Set the logging level (\"debug\", \"info\", \"warn\", \"error\", \"fatal\") (default \"info\")
  -v, --version            Print version information and quit

Run 'berth COMMAND --help' for more information on a command.
";

/// `berth container|image|system [--help]`: the subcommands, docker-style.
fn management_help(group: &str) -> String {
    let (about, cmds): (&str, &[(&str, &str)]) = match group {
        "container" => (
            "Manage containers",
            &[
                (
                    "attach",
                    "Attach local standard input, output, and error streams to a running container",
                ),
                ("commit", "Create a new image from a container's changes"),
                ("create", "Create a new container"),
                (
                    "diff",
                    "Inspect changes to files or directories on a container's filesystem",
                ),
                ("exec", "Execute a command in a running container"),
                (
                    "inspect",
                    "Display detailed information on one or more containers",
                ),
                ("kill", "Kill one or more running containers"),
                ("logs", "Fetch the logs of a container"),
                ("ls", "List containers"),
                (
                    "port",
                    "List port mappings or a specific mapping for the container",
                ),
                ("prune", "Remove all stopped containers"),
                ("rename", "Rename a container"),
                ("restart", "Restart one or more containers"),
                ("rm", "Remove one or more containers"),
                ("run", "Create and run a new container from an image"),
                ("start", "Start one or more stopped containers"),
                ("stop", "Stop one or more running containers"),
                (
                    "wait",
                    "Block until one or more containers stop, then print their exit codes",
                ),
            ],
        ),
        "image" => (
            "Manage images",
            &[
                ("build", "Build an image from a Dockerfile"),
                ("history", "Show the history of an image"),
                (
                    "import",
                    "Import the contents from a tarball to create a filesystem image",
                ),
                (
                    "inspect",
                    "Display detailed information on one or more images",
                ),
                ("load", "Load an image from a tar archive or STDIN"),
                ("ls", "List images"),
                ("prune", "Remove unused images"),
                ("pull", "Download an image from a registry"),
                ("push", "Upload an image to a registry"),
                ("rm", "Remove one or more images"),
                (
                    "save",
                    "Save one or more images to a tar archive (streamed to STDOUT by default)",
                ),
                (
                    "tag",
                    "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
                ),
            ],
        ),
        "network" => (
            "Manage networks",
            &[
                ("connect", "Connect a container to a network"),
                ("create", "Create a network"),
                ("disconnect", "Disconnect a container from a network"),
                (
                    "inspect",
                    "Display detailed information on one or more networks",
                ),
                ("ls", "List networks"),
                ("prune", "Remove all unused networks"),
                ("rm", "Remove one or more networks"),
            ],
        ),
        "volume" => (
            "Manage volumes",
            &[
                ("create", "Create a volume"),
                (
                    "inspect",
                    "Display detailed information on one or more volumes",
                ),
                ("ls", "List volumes"),
                ("prune", "Remove unused local volumes"),
                ("rm", "Remove one or more volumes"),
            ],
        ),
        _ => (
            "Manage Berth",
            &[
                ("df", "Show berth disk usage"),
                ("info", "Display system-wide information"),
                ("prune", "Remove unused data"),
            ],
        ),
    };
    let mut s = format!("\nUsage:  berth {group} COMMAND\n\n{about}\n\nCommands:\n");
    for (c, d) in cmds {
        s.push_str(&format!("  {c:<11} {d}\n"));
    }
    s.push_str(&format!(
        "\nRun 'berth {group} COMMAND --help' for more information on a command.\n"
    ));
    s
}

/// Maps management-command forms (`container ls`, `image rm`, `system df`) to the verb that implements them.
fn canonical(group: &str, sub: &str) -> Option<&'static str> {
    Some(match (group, sub) {
        ("container", "ls" | "list" | "ps") => "ps",
        ("container", "rm" | "remove") => "rm",
        ("container", "inspect") => "container-inspect",
        ("container", "prune") => "container-prune",
        ("container", "run") => "run",
        ("container", "create") => "create",
        ("container", "start") => "start",
        ("container", "stop") => "stop",
        ("container", "restart") => "restart",
        ("container", "kill") => "kill",
        ("container", "logs") => "logs",
        ("container", "rename") => "rename",
        ("container", "port") => "port",
        ("container", "wait") => "wait",
        ("container", "pause") => "pause",
        ("container", "unpause") => "unpause",
        ("container", "top") => "top",
        ("container", "diff") => "diff",
        ("container", "commit") => "commit",
        ("container", "update") => "update",
        ("container", "stats") => "stats",
        ("container", "exec") => "exec",
        ("container", "attach") => "attach",
        ("container", "cp") => "cp",
        ("image", "ls" | "list") => "images",
        ("image", "rm" | "remove") => "rmi",
        ("image", "inspect") => "image-inspect",
        ("image", "prune") => "image-prune",
        ("image", "pull") => "pull",
        ("image", "push") => "push",
        ("image", "tag") => "tag",
        ("image", "history") => "history",
        ("image", "save") => "save",
        ("image", "load") => "load",
        ("image", "import") => "import",
        ("image", "build") => "build",
        ("network", "ls" | "list") => "network-ls",
        ("network", "create") => "network-create",
        ("network", "rm" | "remove") => "network-rm",
        ("network", "inspect") => "network-inspect",
        ("network", "connect") => "network-connect",
        ("network", "disconnect") => "network-disconnect",
        ("network", "prune") => "network-prune",
        ("volume", "ls" | "list") => "volume-ls",
        ("volume", "create") => "volume-create",
        ("volume", "rm" | "remove") => "volume-rm",
        ("volume", "inspect") => "volume-inspect",
        ("volume", "prune") => "volume-prune",
        ("system", "df") => "df",
        ("system", "events") => "events",
        ("system", "info") => "info",
        ("system", "prune") => "system-prune",
        _ => return None,
    })
}

/// `berth help ps` → the verb whose help to show.
fn canonical_help(v: &str) -> &str {
    match v {
        "container-inspect" | "image-inspect" => "inspect",
        other => other,
    }
}

fn dispatch(verb: &str, args: &[String], g: &Globals) -> CmdResult {
    match verb {
        "version" => system::version(args, g),
        "info" => system::info(args, g),
        "df" => system::df(args, g),
        "system-prune" => system::prune(args, g),
        "run" => run::run(args, g),
        "create" => run::create(args, g),
        "ps" => container::ps(args, g),
        "exec" => exec::exec(args, g),
        "attach" => run::attach(args, g),
        "start" => container::start(args, g),
        "stop" => container::stop(args, g),
        "restart" => container::restart(args, g),
        "kill" => container::kill(args, g),
        "rm" => container::rm(args, g),
        "logs" => logs::logs(args, g),
        "inspect" => logs::inspect(args, g, None),
        "container-inspect" => logs::inspect(args, g, Some("container")),
        "image-inspect" => logs::inspect(args, g, Some("image")),
        "rename" => container::rename(args, g),
        "port" => port::port(args, g),
        "network-ls" => network::ls(args, g),
        "network-create" => network::create(args, g),
        "network-rm" => network::rm(args, g),
        "network-inspect" => logs::inspect(args, g, Some("network")),
        "network-connect" => network::connect(args, g),
        "network-disconnect" => network::disconnect(args, g),
        "network-prune" => network::prune(args, g),
        "volume-ls" => volume::ls(args, g),
        "volume-create" => volume::create(args, g),
        "volume-rm" => volume::rm(args, g),
        "volume-inspect" => logs::inspect(args, g, Some("volume")),
        "volume-prune" => volume::prune(args, g),
        "wait" => container::wait(args, g),
        "pause" => ops::pause(args, g),
        "unpause" => ops::unpause(args, g),
        "top" => ops::top(args, g),
        "diff" => ops::diff(args, g),
        "commit" => commit::commit(args, g),
        "cp" => cp::cp(args, g),
        "update" => ops::update(args, g),
        "stats" => stats::stats(args, g),
        "events" => events::events(args, g),
        "container-prune" => container::prune(args, g),
        "images" => image::images(args, g),
        "pull" => image::pull(args, g),
        "push" => image::push(args, g),
        "tag" => image::tag(args, g),
        "rmi" => image::rmi(args, g),
        "history" => image::history(args, g),
        "save" => image::save(args, g),
        "load" => image::load(args, g),
        "import" => image::import(args, g),
        "build" => build::build(args, g),
        "image-prune" => image::prune(args, g),
        "login" => auth::login(args, g),
        "help" => match args.get(1) {
            Some(v) => dispatch(canonical_help(v), &[v.clone(), "--help".into()], g),
            None => {
                out(TOP_HELP)?;
                Ok(0)
            }
        },
        "logout" => auth::logout(args, g),
        other => Err(CliError::Exit {
            code: 1,
            msg: Some(format!(
                "berth: '{other}' is not a berth command.\nSee 'berth --help'"
            )),
        }),
    }
}

fn run_main(args: &[String]) -> CmdResult {
    let mut host = None;
    let mut config_dir = None;
    let mut i = 1;
    let flag_err = |m: String| CliError::Exit {
        code: 125,
        msg: Some(format!("{m}\nSee 'berth --help'.")),
    };
    while i < args.len() && args[i].starts_with('-') && args[i] != "-" {
        let a = &args[i];
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if a.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let value = |i: &mut usize| -> Result<String, CliError> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            *i += 1;
            args.get(*i)
                .cloned()
                .ok_or_else(|| flag_err(format!("flag needs an argument: {name}")))
        };
        match name.as_str() {
            "-v" | "--version" => {
                out(&format!("{VERSION_LINE}, build {}\n", git_sha()))?;
                return Ok(0);
            }
            "-h" | "--help" => {
                out(TOP_HELP)?;
                return Ok(0);
            }
            "-H" | "--host" => host = Some(value(&mut i)?),
            "--config" => config_dir = Some(value(&mut i)?),
            "-l" | "--log-level" | "-c" | "--context" | "--tlscacert" | "--tlscert"
            | "--tlskey" => {
                value(&mut i)?;
            }
            "-D" | "--debug" | "--tls" | "--tlsverify" => {}
            _ => return Err(flag_err(format!("unknown flag: {name}"))),
        }
        i += 1;
    }
    let rest = &args[i.min(args.len())..];
    let Some(first) = rest.first() else {
        out(TOP_HELP)?;
        return Ok(0);
    };
    let host = host
        .or_else(|| std::env::var("BERTH_HOST").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unix:///run/berth/berth.sock".into());
    let config_dir = config_dir
        .or_else(|| {
            std::env::var("DOCKER_CONFIG")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".docker")
        });
    let g = Globals { host, config_dir };
    if matches!(
        first.as_str(),
        "container" | "image" | "network" | "system" | "volume"
    ) {
        let Some(sub) = rest
            .get(1)
            .filter(|s| !matches!(s.as_str(), "--help" | "-h" | "help"))
        else {
            out(&management_help(first))?;
            return Ok(0);
        };
        let verb = canonical(first, sub).ok_or_else(|| CliError::Exit {
            code: 1,
            msg: Some(format!(
                "berth: '{first} {sub}' is not a berth command.\nSee 'berth {first} --help'"
            )),
        })?;
        return dispatch(verb, &rest[1..], &g);
    }
    dispatch(first, rest, &g)
}

/// Runs `berth ARGS...` (`args[0]` is the program name) and returns the process exit code.
pub fn main(args: &[std::ffi::OsString]) -> i32 {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match run_main(&args) {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string();
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            e.code()
        }
    }
}
