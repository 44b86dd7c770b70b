//! docker's `run`/`create` flags and their mapping to the `POST /containers/create` body.

use clap::Parser;
use serde_json::{json, Map, Value};

use super::units::ram_in_bytes;
use super::CliError;

fn mem(s: &str) -> Result<i64, String> {
    ram_in_bytes(s).map_err(|e| e.to_string())
}

fn mem_swap(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    mem(s)
}

/// docker's container flags shared by `run` and `create`.
#[derive(Parser, Debug, Default)]
#[command(about = "Create and run a new container from an image")]
pub struct RunOpts {
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Write the container ID to the file
    #[arg(long)]
    pub cidfile: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Add a host device to the container
    #[arg(long)]
    pub device: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// GPU devices to add to the container ('all' to pass all GPUs)
    #[arg(long)]
    pub gpus: Option<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h)
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// Container isolation technology
    #[arg(long)]
    pub isolation: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    pub label_file: Vec<String>,
    /// Add link to another container
    #[arg(long)]
    pub link: Vec<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_parser = mem)]
    pub memory: Option<i64>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_parser = mem)]
    pub memory_reservation: Option<i64>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_parser = mem_swap, allow_hyphen_values = true)]
    pub memory_swap: Option<i64>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(long = "memory-swappiness", allow_negative_numbers = true)]
    pub memory_swappiness: Option<i64>,
    /// Attach a filesystem mount to the container
    #[arg(long)]
    pub mount: Vec<String>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Connect a container to a network
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_negative_numbers = true)]
    pub oom_score_adj: Option<i64>,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing", value_parser = ["always", "missing", "never"])]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short, long)]
    pub quiet: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Runtime to use for this container
    #[arg(long)]
    pub runtime: Option<String>,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_parser = mem)]
    pub shm_size: Option<i64>,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_negative_numbers = true)]
    pub stop_timeout: Option<i64>,
    /// Storage driver options for the container
    #[arg(long = "storage-opt")]
    pub storage_opt: Vec<String>,
    /// Sysctl options
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Ulimit options
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// User namespace to use
    #[arg(long)]
    pub userns: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Optional volume driver for the container
    #[arg(long = "volume-driver")]
    pub volume_driver: Option<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    // IMAGE [COMMAND] [ARG...]: one positional so that everything after the image is the command,
    // flags included (docker's interspersed=false).
    #[arg(value_name = "IMAGE", required = true, num_args = 1.., trailing_var_arg = true)]
    pub args: Vec<String>,
    #[arg(skip)]
    pub image: String,
    #[arg(skip)]
    pub command: Vec<String>,
}

impl RunOpts {
    /// Splits the positional list into the image and its command.
    pub fn split_args(mut self) -> RunOpts {
        if !self.args.is_empty() {
            self.image = self.args.remove(0);
            self.command = std::mem::take(&mut self.args);
        }
        self
    }
}

fn bad(flag: &str, val: &str, why: &str) -> CliError {
    CliError::Exit {
        code: 125,
        msg: Some(format!(
            "berth: invalid argument \"{val}\" for \"{flag}\" flag: {why}"
        )),
    }
}

/// `KEY=VALUE`, or `KEY` taken from our environment (dropped when unset), like docker.
pub(super) fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        return Some(e.to_string());
    }
    std::env::var(e).ok().map(|v| format!("{e}={v}"))
}

fn read_lines_file(path: &str) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Exit {
        code: 125,
        msg: Some(format!("berth: {}", crate::client::go_io("open", path, &e))),
    })?;
    Ok(text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn parse_range(s: &str) -> Option<(u32, u32)> {
    match s.split_once('-') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => {
            let p = s.parse().ok()?;
            Some((p, p))
        }
    }
}

/// Parses `-p [ip:][hostPort:]containerPort[/proto]` into (exposed key, binding) pairs.
pub fn parse_publish(spec: &str) -> Result<Vec<(String, Value)>, String> {
    let (rest, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r.split_once(']').ok_or("invalid IPv6 address")?;
        (ip.to_string(), after.trim_start_matches(':').to_string())
    } else {
        (String::new(), rest.to_string())
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => (ip, "", *c),
        [h, c] => (ip, *h, *c),
        [i, h, c] if ip.is_empty() => (i.to_string(), *h, *c),
        _ => return Err("invalid format".into()),
    };
    let (c0, c1) =
        parse_range(container).ok_or_else(|| format!("invalid containerPort: {container}"))?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(parse_range(host).ok_or_else(|| format!("invalid hostPort: {host}"))?)
    };
    let mut out = Vec::new();
    for (i, cp) in (c0..=c1).enumerate() {
        let hp = match host_range {
            None => String::new(),
            Some((h0, h1)) if h1 - h0 == c1 - c0 => (h0 + i as u32).to_string(),
            // A host range for one container port: let the daemon pick within it.
            Some((h0, h1)) if h0 != h1 => format!("{h0}-{h1}"),
            Some((h0, _)) => h0.to_string(),
        };
        out.push((
            format!("{cp}/{proto}"),
            json!({"HostIp": ip, "HostPort": hp}),
        ));
    }
    Ok(out)
}

/// `--ulimit nofile=1024:2048` → `{"Name","Soft","Hard"}`.
pub fn parse_ulimit(s: &str) -> Result<Value, String> {
    let (name, vals) = s.split_once('=').ok_or("invalid ulimit argument")?;
    let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
    let soft: i64 = soft
        .parse()
        .map_err(|_| format!("invalid ulimit soft value {soft}"))?;
    let hard: i64 = hard
        .parse()
        .map_err(|_| format!("invalid ulimit hard value {hard}"))?;
    if soft > hard && hard != -1 {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `--restart on-failure:3` → `{"Name","MaximumRetryCount"}`.
pub fn parse_restart(s: &str) -> Result<Value, String> {
    let (name, count) = s.split_once(':').unwrap_or((s, ""));
    match name {
        "no" | "always" | "unless-stopped" | "on-failure" | "" => {}
        other => return Err(format!("invalid restart policy {other}")),
    }
    let count: i64 = if count.is_empty() {
        0
    } else {
        count
            .parse()
            .map_err(|_| format!("maximum retry count must be an integer: {count}"))?
    };
    if count != 0 && name != "on-failure" {
        return Err(format!(
            "maximum retry count cannot be used with restart policy '{name}'"
        ));
    }
    Ok(json!({"Name": if name.is_empty() { "no" } else { name }, "MaximumRetryCount": count}))
}

fn kv_map(items: &[String]) -> Map<String, Value> {
    items
        .iter()
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap_or((s, ""));
            (k.to_string(), Value::String(v.to_string()))
        })
        .collect()
}

/// Maps the flags to the `POST /containers/create` body.
pub fn create_body(o: &RunOpts) -> Result<Value, CliError> {
    let mut env = Vec::new();
    for f in &o.env_file {
        env.extend(read_lines_file(f)?.iter().filter_map(|l| env_entry(l)));
    }
    env.extend(o.env.iter().filter_map(|e| env_entry(e)));
    let mut labels = Vec::new();
    for f in &o.label_file {
        labels.extend(read_lines_file(f)?);
    }
    labels.extend(o.label.iter().cloned());
    let mut exposed = Map::new();
    let mut bindings: Map<String, Value> = Map::new();
    for p in &o.publish {
        for (port, b) in parse_publish(p).map_err(|e| bad("-p, --publish", p, &e))? {
            exposed.insert(port.clone(), json!({}));
            if let Value::Array(a) = bindings.entry(port).or_insert_with(|| json!([])) {
                a.push(b);
            }
        }
    }
    for e in &o.expose {
        let (rest, proto) = e.rsplit_once('/').unwrap_or((e, "tcp"));
        let (a, b) = parse_range(rest)
            .ok_or_else(|| bad("--expose", e, "invalid range format for --expose"))?;
        for p in a..=b {
            exposed.insert(format!("{p}/{proto}"), json!({}));
        }
    }
    let mut ulimits = Vec::new();
    for u in &o.ulimit {
        ulimits.push(parse_ulimit(u).map_err(|e| bad("--ulimit", u, &e))?);
    }
    let restart = parse_restart(&o.restart).map_err(|e| bad("--restart", &o.restart, &e))?;
    if o.rm && restart["Name"] != "no" {
        return Err(CliError::Exit {
            code: 125,
            msg: Some("berth: conflicting options: cannot specify both --restart and --rm.".into()),
        });
    }
    let attach = |s: &str| {
        if o.attach.is_empty() {
            !o.detach && s != "stdin"
        } else {
            o.attach.iter().any(|a| a.eq_ignore_ascii_case(s))
        }
    };
    let stdin = o.interactive && !o.detach && (o.attach.is_empty() || attach("stdin"));
    let entrypoint = o.entrypoint.as_ref().map(|e| {
        if e.is_empty() {
            json!([""])
        } else {
            json!([e])
        }
    });
    let tmpfs: Map<String, Value> = o
        .tmpfs
        .iter()
        .map(|t| {
            let (p, opts) = t.split_once(':').unwrap_or((t, ""));
            (p.to_string(), Value::String(opts.to_string()))
        })
        .collect();
    let devices: Vec<Value> = o
        .device
        .iter()
        .map(|d| {
            let mut it = d.split(':');
            let host = it.next().unwrap_or("");
            let cont = it.next().unwrap_or(host);
            let perms = it.next().unwrap_or("rwm");
            json!({"PathOnHost": host, "PathInContainer": cont, "CgroupPermissions": perms})
        })
        .collect();
    let network = o.network.clone().unwrap_or_else(|| "default".into());
    let mut host = json!({
        "Binds": o.volume,
        "ContainerIDFile": o.cidfile.clone().unwrap_or_default(),
        "LogConfig": {"Type": o.log_driver.clone().unwrap_or_default(), "Config": kv_map(&o.log_opt)},
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": restart,
        "AutoRemove": o.rm,
        "VolumeDriver": o.volume_driver.clone().unwrap_or_default(),
        "VolumesFrom": o.volumes_from,
        "CapAdd": o.cap_add,
        "CapDrop": o.cap_drop,
        "CgroupnsMode": o.cgroupns.clone().unwrap_or_default(),
        "Dns": o.dns,
        "DnsOptions": o.dns_option,
        "DnsSearch": o.dns_search,
        "ExtraHosts": o.add_host,
        "GroupAdd": o.group_add,
        "IpcMode": o.ipc.clone().unwrap_or_default(),
        "Links": o.link,
        "OomScoreAdj": o.oom_score_adj.unwrap_or(0),
        "PidMode": o.pid.clone().unwrap_or_default(),
        "Privileged": o.privileged,
        "PublishAllPorts": o.publish_all,
        "ReadonlyRootfs": o.read_only,
        "SecurityOpt": o.security_opt,
        "Tmpfs": tmpfs,
        "UTSMode": o.uts.clone().unwrap_or_default(),
        "UsernsMode": o.userns.clone().unwrap_or_default(),
        "ShmSize": o.shm_size.unwrap_or(0),
        "Sysctls": kv_map(&o.sysctl),
        "Runtime": o.runtime.clone().unwrap_or_default(),
        "Isolation": o.isolation.clone().unwrap_or_default(),
    });
    // Split in two: one json! this large exceeds the macro recursion limit.
    let resources = json!({
        "CpuShares": o.cpu_shares.unwrap_or(0),
        "Memory": o.memory.unwrap_or(0),
        "NanoCpus": o.cpus.map_or(0, |c| (c * 1e9).round() as i64),
        "CgroupParent": o.cgroup_parent.clone().unwrap_or_default(),
        "BlkioWeight": o.blkio_weight.unwrap_or(0),
        "CpuPeriod": o.cpu_period.unwrap_or(0),
        "CpuQuota": o.cpu_quota.unwrap_or(0),
        "CpusetCpus": o.cpuset_cpus.clone().unwrap_or_default(),
        "CpusetMems": o.cpuset_mems.clone().unwrap_or_default(),
        "Devices": devices,
        "MemoryReservation": o.memory_reservation.unwrap_or(0),
        "MemorySwap": o.memory_swap.unwrap_or(0),
        "Ulimits": ulimits,
        "Mounts": o.mount.iter().map(|m| super::mountopts::parse_mount(m)).collect::<Result<Vec<_>, _>>()?,
    });
    if let (Some(h), Value::Object(r)) = (host.as_object_mut(), resources) {
        h.extend(r);
    }
    if let Some(p) = o.pids_limit {
        host["PidsLimit"] = json!(p);
    }
    if let Some(s) = o.memory_swappiness {
        host["MemorySwappiness"] = json!(s);
    }
    if o.oom_kill_disable {
        host["OomKillDisable"] = json!(true);
    }
    if o.init {
        host["Init"] = json!(true);
    }
    let mut body = json!({
        "Hostname": o.hostname.clone().unwrap_or_default(),
        "Domainname": o.domainname.clone().unwrap_or_default(),
        "User": o.user.clone().unwrap_or_default(),
        "AttachStdin": stdin,
        "AttachStdout": attach("stdout"),
        "AttachStderr": attach("stderr"),
        "ExposedPorts": exposed,
        "Tty": o.tty,
        "OpenStdin": o.interactive,
        "StdinOnce": stdin,
        "Env": env,
        "Cmd": if o.command.is_empty() { Value::Null } else { json!(o.command) },
        "Image": o.image,
        "Volumes": {},
        "WorkingDir": o.workdir.clone().unwrap_or_default(),
        "Entrypoint": entrypoint.unwrap_or(Value::Null),
        "Labels": kv_map(&labels),
        "HostConfig": host,
        "NetworkingConfig": {"EndpointsConfig": {}},
    });
    if let Some(s) = &o.stop_signal {
        body["StopSignal"] = json!(s);
    }
    if let Some(t) = o.stop_timeout {
        body["StopTimeout"] = json!(t);
    }
    if let Some(m) = &o.mac_address {
        body["MacAddress"] = json!(m);
    }
    match super::healthopts::healthcheck(o) {
        Ok(Some(h)) => body["Healthcheck"] = h,
        Ok(None) => {}
        Err(e) => {
            return Err(CliError::Exit {
                code: 125,
                msg: Some(format!("berth: {e}")),
            })
        }
    }
    if let Some(n) = &o.network {
        if !o.network_alias.is_empty() || o.ip.is_some() || o.ip6.is_some() {
            let mut ep = json!({"Aliases": o.network_alias});
            if o.ip.is_some() || o.ip6.is_some() {
                ep["IPAMConfig"] = json!({"IPv4Address": o.ip.clone().unwrap_or_default(), "IPv6Address": o.ip6.clone().unwrap_or_default()});
            }
            body["NetworkingConfig"]["EndpointsConfig"][n] = ep;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::parse;

    fn opts(args: &[&str]) -> RunOpts {
        let mut v = vec!["run".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        parse::<RunOpts>("run", "berth run", &v)
            .expect("parse")
            .split_args()
    }

    #[test]
    fn flags_map_to_create_body() {
        let o = opts(&[
            "--rm",
            "--name",
            "web",
            "-e",
            "A=1",
            "-w",
            "/srv",
            "-u",
            "1000:1000",
            "-h",
            "box",
            "-l",
            "k=v",
            "-m",
            "512m",
            "--memory-swap",
            "-1",
            "--cpus",
            "1.5",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "64",
            "--ulimit",
            "nofile=1024:2048",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "ALL",
            "--read-only",
            "--security-opt",
            "no-new-privileges",
            "--stop-signal",
            "SIGINT",
            "--stop-timeout",
            "3",
            "--log-driver",
            "json-file",
            "--log-opt",
            "max-size=1m",
            "--net",
            "none",
            "-v",
            "/a:/b:ro",
            "-p",
            "127.0.0.1:8080:80",
            "-it",
            "--init",
            "--entrypoint",
            "/bin/sh",
            "busybox",
            "-c",
            "exit 3",
        ]);
        let b = create_body(&o).expect("body");
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["-c", "exit 3"]));
        assert_eq!(b["Entrypoint"], json!(["/bin/sh"]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["WorkingDir"], "/srv");
        assert_eq!(b["User"], "1000:1000");
        assert_eq!(b["Hostname"], "box");
        assert_eq!(b["Labels"], json!({"k": "v"}));
        assert_eq!(b["Tty"], true);
        assert_eq!(b["OpenStdin"], true);
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["StopSignal"], "SIGINT");
        assert_eq!(b["StopTimeout"], 3);
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}}));
        let h = &b["HostConfig"];
        assert_eq!(h["AutoRemove"], true);
        assert_eq!(h["Memory"], 512 * 1024 * 1024);
        assert_eq!(h["MemorySwap"], -1);
        assert_eq!(h["NanoCpus"], 1_500_000_000i64);
        assert_eq!(h["CpuShares"], 512);
        assert_eq!(h["CpusetCpus"], "0");
        assert_eq!(h["PidsLimit"], 64);
        assert_eq!(
            h["Ulimits"],
            json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
        );
        assert_eq!(h["CapAdd"], json!(["NET_ADMIN"]));
        assert_eq!(h["CapDrop"], json!(["ALL"]));
        assert_eq!(h["ReadonlyRootfs"], true);
        assert_eq!(h["SecurityOpt"], json!(["no-new-privileges"]));
        assert_eq!(
            h["LogConfig"],
            json!({"Type": "json-file", "Config": {"max-size": "1m"}})
        );
        assert_eq!(h["NetworkMode"], "none");
        assert_eq!(h["Binds"], json!(["/a:/b:ro"]));
        assert_eq!(
            h["PortBindings"],
            json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]})
        );
        assert_eq!(h["Init"], true);
    }

    #[test]
    fn detached_defaults() {
        let o = opts(&["-d", "hello-world"]);
        let b = create_body(&o).expect("body");
        assert_eq!(b["Cmd"], Value::Null);
        assert_eq!(b["AttachStdout"], false);
        assert_eq!(
            b["HostConfig"]["RestartPolicy"],
            json!({"Name": "no", "MaximumRetryCount": 0})
        );
        assert_eq!(b["HostConfig"]["NetworkMode"], "default");
        let o = opts(&["hello-world"]);
        let b = create_body(&o).expect("body");
        assert_eq!(b["AttachStdout"], true);
        assert_eq!(b["AttachStdin"], false);
    }

    #[test]
    fn publish_ulimit_restart_parsing() {
        assert_eq!(
            parse_publish("80").expect("p"),
            vec![("80/tcp".into(), json!({"HostIp": "", "HostPort": ""}))]
        );
        assert_eq!(parse_publish("8080:80/udp").expect("p")[0].0, "80/udp");
        assert_eq!(
            parse_publish("[::1]:8080:80").expect("p")[0].1,
            json!({"HostIp": "::1", "HostPort": "8080"})
        );
        assert_eq!(parse_publish("8000-8001:80-81").expect("p").len(), 2);
        assert!(parse_publish("a:b:c:d").is_err());
        assert_eq!(
            parse_ulimit("nproc=10").expect("u"),
            json!({"Name": "nproc", "Soft": 10, "Hard": 10})
        );
        assert!(parse_ulimit("nofile=10:5").is_err());
        assert_eq!(
            parse_restart("on-failure:3").expect("r"),
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("always:3").is_err());
    }

    #[test]
    fn command_after_image_keeps_its_flags() {
        let o = opts(&["busybox", "ls", "-l", "--color"]);
        assert_eq!(o.command, vec!["ls", "-l", "--color"]);
        let err = parse::<RunOpts>("run", "u", &["run".into(), "--bogus".into(), "x".into()])
            .expect_err("err");
        assert_eq!(
            err.to_string(),
            "unknown flag: --bogus\nSee 'berth run --help'."
        );
        assert!(matches!(err, CliError::Exit { code: 125, .. }));
    }
}
