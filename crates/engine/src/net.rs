//! Container networking through berth-network: the daemon's network settings, the per-container attach plan
//! berthd writes before a start, and the hooks the monitor runs around the container's process.
//!
//! The monitor, not berthd, attaches and detaches: it is the only process that sees the container between
//! `create` (the network namespace exists) and `start` (the process runs), and it outlives berthd, so a
//! container that stops while berthd is down still gives back its address and ports. berthd only reads the
//! endpoints (inspect, DNS) and handles `network connect`/`disconnect` on running containers.

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;

use berth_network::{
    AddressPool, AttachRequest, Config, Endpoint, Ipv4Net, NetnsRef, NetworkManager, PortSpec,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::record::{read_json, write_json_sync, Container, Durability};

/// Errors of container networking.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A berth-network failure.
    #[error("{0}")]
    Network(#[from] berth_network::NetworkError),
    /// Bad settings (`-p`, `--ip`, `--add-host`, flags).
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing the plan or the container's files.
    #[error("{0}")]
    Io(String),
}

/// The daemon's network settings (berthd flags), serializable so the monitor builds the same manager.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetSettings {
    /// `--bridge-name` (berth0).
    pub bridge_name: String,
    /// `--bip`, e.g. `172.30.0.1/16`.
    pub bip: Option<String>,
    /// `--default-address-pool base=CIDR,size=N` entries.
    pub pools: Vec<String>,
    /// `--nft-table`.
    pub nft_table: String,
}

impl NetSettings {
    /// The berth-network configuration these settings describe.
    pub fn config(&self) -> Result<Config, NetError> {
        let mut c = Config {
            bridge_name: self.bridge_name.clone(),
            nft_table: self.nft_table.clone(),
            ..Config::default()
        };
        if let Some(b) = &self.bip {
            c.bip = Some(parse_cidr(b)?);
        }
        if !self.pools.is_empty() {
            c.pools = self
                .pools
                .iter()
                .map(|p| AddressPool::parse(p).map_err(|e| NetError::Invalid(e.to_string())))
                .collect::<Result<_, _>>()?;
        }
        Ok(c)
    }

    /// Opens the manager for `data_root`.
    pub fn manager(&self, data_root: &Path) -> Result<NetworkManager, NetError> {
        Ok(NetworkManager::open(data_root, self.config()?)?)
    }
}

/// Parses `A.B.C.D/N` keeping the host part (for `--bip` and `--subnet`).
pub fn parse_cidr(s: &str) -> Result<Ipv4Net, NetError> {
    let bad = || NetError::Invalid(format!("invalid CIDR address: {s}"));
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    Ipv4Net::new(a.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?).map_err(|_| bad())
}

/// One network to join.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanEntry {
    /// Network id or name.
    pub network: String,
    /// DNS names.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `-p`/`-P` specs in docker's syntax (on the first entry only).
    pub ports: Vec<String>,
    /// `--mac-address` (EndpointSettings.MacAddress, or Config.MacAddress for the first network).
    #[serde(default)]
    pub mac: Option<String>,
}

/// What the monitor does for a container: `<container dir>/network.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetPlan {
    /// Daemon settings.
    pub settings: NetSettings,
    /// Networks to join, in order.
    pub attach: Vec<PlanEntry>,
    /// The container's hostname and domain for /etc/hosts.
    pub hostname: String,
    /// `Domainname`.
    pub domain: String,
    /// `--add-host` entries.
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// Resolvers the embedded DNS forwards other names to.
    #[serde(default)]
    pub upstreams: Vec<IpAddr>,
}

const PLAN_FILE: &str = "network.json";

/// The docker `-p` specs of a container: `PortBindings`, plus with `PublishAllPorts` every exposed port not
/// bound explicitly on a random host port.
pub fn port_specs(config: &Value, hc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let bindings = hc["PortBindings"].as_object();
    for (port, binds) in bindings.into_iter().flatten() {
        let (num, proto) = port.split_once('/').unwrap_or((port, "tcp"));
        let list: Vec<&Value> = binds.as_array().into_iter().flatten().collect();
        if list.is_empty() {
            out.push(format!("{num}/{proto}"));
        }
        for b in list {
            let ip = b["HostIp"].as_str().unwrap_or("");
            if ip.contains(':') {
                continue; // IPv6 bindings: berth-network is IPv4 only
            }
            let hp = b["HostPort"].as_str().unwrap_or("");
            out.push(format!("{ip}:{hp}:{num}/{proto}"));
        }
    }
    if hc["PublishAllPorts"].as_bool().unwrap_or(false) {
        for port in config["ExposedPorts"].as_object().into_iter().flatten() {
            if bindings.is_some_and(|b| b.contains_key(port.0)) {
                continue;
            }
            let (num, proto) = port.0.split_once('/').unwrap_or((port.0, "tcp"));
            out.push(format!("{num}/{proto}"));
        }
    }
    out
}

/// Parses `--add-host name:ip` entries (`host-gateway` is the default bridge's gateway).
pub fn extra_hosts(
    hc: &Value,
    gateway: Option<Ipv4Addr>,
) -> Result<Vec<(String, IpAddr)>, NetError> {
    let mut out = Vec::new();
    for e in hc["ExtraHosts"].as_array().into_iter().flatten() {
        let s = e.as_str().unwrap_or("");
        let (name, ip) = s
            .split_once(':')
            .or_else(|| s.split_once('='))
            .ok_or_else(|| NetError::Invalid(format!("bad format for add-host: {s:?}")))?;
        let ip = if ip == "host-gateway" {
            IpAddr::V4(gateway.unwrap_or(Ipv4Addr::LOCALHOST))
        } else {
            ip.trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| NetError::Invalid(format!("invalid IP address in add-host: {ip:?}")))?
        };
        out.push((name.to_string(), ip));
    }
    Ok(out)
}

/// The networks a container joins (name → EndpointSettings) for its NetworkMode and stored endpoints config.
pub fn container_networks(c: &Container) -> Vec<(String, Value)> {
    let mode = c.host_config["NetworkMode"].as_str().unwrap_or("bridge");
    if matches!(mode, "host" | "none") || mode.starts_with("container:") {
        return Vec::new();
    }
    let mut out: Vec<(String, Value)> = c
        .networks
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !out.iter().any(|(k, _)| k == mode) {
        out.insert(0, (mode.to_string(), json!({})));
    } else if let Some(i) = out.iter().position(|(k, _)| k == mode) {
        let e = out.remove(i);
        out.insert(0, e);
    }
    out
}

/// Writes the plan for a start (or removes a stale one when the container has no bridge networking).
pub fn write_plan(dir: &Path, plan: Option<&NetPlan>) -> Result<(), NetError> {
    let p = dir.join(PLAN_FILE);
    match plan {
        // Re-made at every start: nothing needs it after a power loss (record.rs).
        Some(plan) => {
            write_json_sync(&p, plan, Durability::None).map_err(|e| NetError::Io(e.to_string()))
        }
        None => match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetError::Io(e.to_string())),
            _ => Ok(()),
        },
    }
}

fn load_plan(dir: &Path) -> Option<NetPlan> {
    read_json(&dir.join(PLAN_FILE)).ok()
}

/// Monitor hook between create and start: joins every planned network through `/proc/<pid>/ns/net` and
/// rewrites /etc/hosts with the addresses. On failure nothing stays attached.
pub fn monitor_attach(data_root: &Path, id: &str, pid: i32) -> Result<(), NetError> {
    let dir = Container::dir(data_root, id);
    let Some(plan) = load_plan(&dir) else {
        return Ok(());
    };
    let mgr = plan.settings.manager(data_root)?;
    let netns = NetnsRef::Path(format!("/proc/{pid}/ns/net").into());
    let mut ips = Vec::new();
    for e in &plan.attach {
        let ports = e
            .ports
            .iter()
            .map(|p| PortSpec::parse(p).map_err(|e| NetError::Invalid(e.to_string())))
            .collect::<Result<Vec<_>, _>>();
        let res = ports.and_then(|ports| {
            mgr.attach(&AttachRequest {
                network: e.network.clone(),
                container_id: id.to_string(),
                netns: netns.clone(),
                aliases: e.aliases.clone(),
                requested_ip: e.ip,
                ports,
                mac: e.mac.clone(),
            })
            .map_err(NetError::from)
        });
        match res {
            Ok(ep) => ips.push(ep.ip),
            Err(err) => {
                let _ = mgr.detach_all(id);
                return Err(err);
            }
        }
    }
    if plan
        .attach
        .iter()
        .any(|e| mgr.get(&e.network).is_ok_and(|n| !n.default))
    {
        serve_dns(&mgr, id, &netns, plan.upstreams.clone())?;
    }
    let domain = (!plan.domain.is_empty()).then_some(plan.domain.as_str());
    let hosts = berth_network::hosts_file(&plan.hostname, domain, &ips, &plan.extra_hosts);
    // In place (same inode): the file is already bind-mounted into the container.
    fs::write(dir.join("hosts"), hosts).map_err(|e| NetError::Io(format!("writing hosts: {e}")))?;
    Ok(())
}

/// The embedded DNS at 127.0.0.11 for a container on user networks, served by a thread of its monitor. The
/// socket is bound before the container's process starts (so its first lookup cannot be refused), and every
/// query reads the current names from the manager's state, so containers started later resolve at once.
fn serve_dns(
    mgr: &NetworkManager,
    id: &str,
    netns: &NetnsRef,
    upstreams: Vec<IpAddr>,
) -> Result<(), NetError> {
    let ip = berth_network::dns::EMBEDDED_DNS_IP;
    let sock = berth_network::link::in_netns(netns, || UdpSocket::bind((ip, 53)))
        .map_err(|e| NetError::Io(format!("embedded DNS: {e}")))?
        .map_err(|e| NetError::Io(format!("embedded DNS: bind {ip}:53: {e}")))?;
    let (mgr, id) = (mgr.clone(), id.to_string());
    std::thread::Builder::new()
        .name("berth-dns".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with the monitor process; the socket dies with the container's namespace.
            while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                let nets: Vec<String> = mgr
                    .list()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|x| !x.default && x.endpoints.contains_key(&id))
                    .map(|x| x.id)
                    .collect();
                let table = mgr.name_table().unwrap_or_default();
                let reply = match berth_network::dns::answer(
                    &table,
                    &nets,
                    &buf[..n],
                    !upstreams.is_empty(),
                ) {
                    Some(berth_network::dns::Answer::Reply(r)) => Some(r),
                    Some(berth_network::dns::Answer::Forward) => forward(&buf[..n], &upstreams),
                    None => None,
                };
                if let Some(r) = reply {
                    let _ = sock.send_to(&r, peer);
                }
            }
        })
        .map_err(|e| NetError::Io(format!("embedded DNS thread: {e}")))?;
    Ok(())
}

/// Asks each upstream in turn (from the host's namespace); SERVFAIL when none answers.
pub(crate) fn forward(packet: &[u8], upstreams: &[IpAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(3)));
        if s.send_to(packet, (*up, 53)).is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            if n >= 2 && packet.len() >= 2 && buf[..2] == packet[..2] {
                return Some(buf[..n].to_vec());
            }
        }
    }
    let q = berth_network::dns::Query::parse(packet).ok()?;
    Some(q.reply(2, &[]))
}

/// Monitor hook after the container exited: gives back its addresses, veths and ports.
pub fn monitor_detach(data_root: &Path, id: &str) {
    let dir = Container::dir(data_root, id);
    if let Some(plan) = load_plan(&dir) {
        if let Ok(mgr) = plan.settings.manager(data_root) {
            if let Err(e) = mgr.detach_all(id) {
                eprintln!("berth monitor {id}: detach: {e}");
            }
        }
    }
}

/// The endpoints of `id`, keyed by network name.
pub fn endpoints_of(mgr: &NetworkManager, id: &str) -> BTreeMap<String, Endpoint> {
    let mut out = BTreeMap::new();
    for n in mgr.list().unwrap_or_default() {
        if let Some(e) = n.endpoints.get(id) {
            out.insert(n.name.clone(), e.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_from_bindings_and_publish_all() {
        let hc = json!({"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
            "53/udp": [{"HostIp": "", "HostPort": ""}, {"HostIp": "::", "HostPort": "53"}]},
            "PublishAllPorts": true});
        let cfg = json!({"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}});
        let mut s = port_specs(&cfg, &hc);
        s.sort();
        assert_eq!(s, vec!["127.0.0.1:8080:80/tcp", "443/tcp", "::53/udp"]);
        for p in &s {
            PortSpec::parse(p).unwrap();
        }
    }

    #[test]
    fn add_hosts() {
        let hc = json!({"ExtraHosts": ["db:10.0.0.5", "gw:host-gateway"]});
        let e = extra_hosts(&hc, Some("172.17.0.1".parse().unwrap())).unwrap();
        assert_eq!(e[0], ("db".into(), "10.0.0.5".parse().unwrap()));
        assert_eq!(e[1].1, "172.17.0.1".parse::<IpAddr>().unwrap());
        assert!(extra_hosts(&json!({"ExtraHosts": ["x"]}), None).is_err());
    }

    #[test]
    fn cidr() {
        let n = parse_cidr("10.213.0.1/24").unwrap();
        assert_eq!((n.addr, n.prefix), ("10.213.0.1".parse().unwrap(), 24));
        assert!(parse_cidr("10.0.0.0").is_err());
    }
}
