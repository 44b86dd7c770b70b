//! The engine's side of networking: the manager and embedded DNS opened at start, network checks at create,
//! the attach plan at start, DNS per running container, `network connect`/`disconnect`, and docker's
//! NetworkSettings / Ports views. The attach itself happens in the monitor ([`crate::net`]).

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use berth_network::{AttachRequest, DnsSettings, Endpoint, NetnsRef, NetworkManager, PortSpec};
use serde_json::{json, Value};

use super::{Engine, EngineError, Result};
use crate::net::{self, NetPlan, NetSettings, PlanEntry};
use crate::record::Container;

/// Networking state of a daemon with bridge networking enabled.
#[derive(Debug)]
pub struct NetState {
    /// The daemon's settings (passed on to monitors).
    pub settings: NetSettings,
    /// The manager.
    pub mgr: NetworkManager,
}

fn net_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

fn host_resolv() -> String {
    std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
}

/// The `--dns`/`--dns-search`/`--dns-option` settings of a container.
pub(crate) fn dns_settings(hc: &Value) -> DnsSettings {
    let strs = |k: &str| -> Vec<String> {
        hc[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    DnsSettings {
        servers: strs("Dns").iter().filter_map(|s| s.parse().ok()).collect(),
        search: strs("DnsSearch"),
        options: strs("DnsOptions"),
    }
}

impl NetState {
    /// Opens the manager, creates or restores the default bridge and its rules.
    pub fn open(data_root: &std::path::Path, settings: NetSettings) -> Result<Self> {
        let mgr = settings
            .manager(data_root)
            .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        mgr.ensure_default_bridge().map_err(net_err)?;
        Ok(Self { settings, mgr })
    }
}

impl Engine {
    /// The network manager, if bridge networking is enabled.
    pub fn networks(&self) -> Option<&NetworkManager> {
        self.net.as_ref().map(|n| &n.mgr)
    }

    /// After recovery: frees the endpoints of containers that are not running (their monitor died without
    /// detaching, or the host rebooted).
    pub(super) fn net_recover(&self) {
        let Some(n) = &self.net else { return };
        let running: HashSet<String> = self
            .all()
            .into_iter()
            .filter(|c| c.state.running)
            .map(|c| c.id)
            .collect();
        if let Err(e) = n.mgr.prune(|id| running.contains(id)) {
            log::warn!("pruning stale network endpoints: {e}");
        }
        self.late_dns_recover();
    }

    /// Checks `NetworkMode` and the endpoints config at create; returns the networks to store.
    pub(super) fn net_validate(
        &self,
        hc: &Value,
        endpoints: &Value,
    ) -> Result<BTreeMap<String, Value>> {
        let mode = hc["NetworkMode"].as_str().unwrap_or("bridge");
        let mut out = BTreeMap::new();
        if matches!(mode, "host" | "none") || mode.starts_with("container:") {
            return Ok(out);
        }
        let Some(n) = &self.net else {
            if mode == "bridge" {
                return Ok(out);
            }
            return Err(EngineError::NoSuchContainer(format!(
                "network {mode} not found"
            )));
        };
        // The CLI keys the endpoint of `--network default` (no flag) as "default".
        let norm = |k: &str| {
            if k == "default" {
                "bridge".to_string()
            } else {
                k.to_string()
            }
        };
        let mut names = vec![(mode.to_string(), mode.to_string())];
        names.extend(
            endpoints
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| (norm(k), k.clone())),
        );
        for (name, key) in names {
            let net = n
                .mgr
                .get(&name)
                .map_err(|_| EngineError::NoSuchContainer(format!("network {name} not found")))?;
            let ep = endpoints.get(&key).cloned().unwrap_or_else(|| json!({}));
            if out.contains_key(&net.name) && ep.as_object().is_none_or(|o| o.is_empty()) {
                continue;
            }
            let ip = ep["IPAMConfig"]["IPv4Address"].as_str().unwrap_or("");
            if !ip.is_empty() {
                if net.default {
                    return Err(EngineError::InvalidParameter(
                        "user specified IP address is supported on user defined networks only"
                            .into(),
                    ));
                }
                ip.parse::<Ipv4Addr>().map_err(|_| {
                    EngineError::InvalidParameter(format!("invalid IPv4 address: {ip}"))
                })?;
            }
            out.insert(net.name.clone(), ep);
        }
        for spec in net::port_specs(&json!({}), hc) {
            PortSpec::parse(&spec).map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        }
        net::extra_hosts(hc, None).map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        Ok(out)
    }

    fn plan_entry(&self, c: &Container, name: &str, ep: &Value, default: bool) -> PlanEntry {
        let mut aliases = Vec::new();
        if !default {
            aliases.push(c.short_name().to_string());
            aliases.extend(
                ep["Aliases"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(String::from)),
            );
            aliases.push(c.id[..12].to_string());
            aliases.dedup();
        }
        PlanEntry {
            network: name.to_string(),
            aliases,
            ip: ep["IPAMConfig"]["IPv4Address"]
                .as_str()
                .and_then(|s| s.parse().ok()),
            ports: Vec::new(),
            mac: ep["MacAddress"]
                .as_str()
                .filter(|m| !m.is_empty())
                .map(String::from),
        }
    }

    /// The monitor's attach plan for a start (`None`: no bridge networking for this container).
    pub(super) fn net_plan(&self, c: &Container) -> Result<Option<NetPlan>> {
        let Some(n) = &self.net else { return Ok(None) };
        let nets = net::container_networks(c);
        if nets.is_empty() {
            return Ok(None);
        }
        let mut attach = Vec::new();
        let mut gateway = None;
        for (name, ep) in &nets {
            let net = n
                .mgr
                .get(name)
                .map_err(|_| EngineError::NoSuchContainer(format!("network {name} not found")))?;
            if net.default {
                gateway = Some(net.gateway);
            }
            attach.push(self.plan_entry(c, &net.id, ep, net.default));
        }
        if let Some(first) = attach.first_mut() {
            first.ports = net::port_specs(&c.config, &c.host_config);
            // The deprecated Config.MacAddress (API < 1.44, and berth's own CLI) is the first network's.
            if first.mac.is_none() {
                first.mac = c.config["MacAddress"]
                    .as_str()
                    .filter(|m| !m.is_empty())
                    .map(String::from);
            }
        }
        if gateway.is_none() {
            gateway = n
                .mgr
                .list()
                .ok()
                .and_then(|l| l.into_iter().find(|x| x.default).map(|x| x.gateway));
        }
        Ok(Some(NetPlan {
            settings: n.settings.clone(),
            attach,
            hostname: c.config["Hostname"].as_str().unwrap_or("").to_string(),
            domain: c.config["Domainname"].as_str().unwrap_or("").to_string(),
            extra_hosts: net::extra_hosts(&c.host_config, gateway)
                .map_err(|e| EngineError::InvalidParameter(e.to_string()))?,
            upstreams: berth_network::upstream_servers(
                &host_resolv(),
                &dns_settings(&c.host_config),
            ),
        }))
    }

    /// Whether the container is on a user network (embedded DNS in resolv.conf).
    pub(super) fn net_uses_embedded_dns(&self, c: &Container) -> bool {
        let Some(n) = &self.net else { return false };
        net::container_networks(c)
            .iter()
            .any(|(name, _)| n.mgr.get(name).is_ok_and(|x| !x.default))
    }

    /// `POST /networks/{id}/connect`: records the network and, for a running container, attaches it now.
    pub fn network_connect(&self, network: &str, key: &str, endpoint: &Value) -> Result<()> {
        let n = self
            .net
            .as_ref()
            .ok_or_else(|| net_err("networking is disabled"))?;
        let net = n
            .mgr
            .get(network)
            .map_err(|_| EngineError::NoSuchContainer(format!("network {network} not found")))?;
        let c = self.get(key)?;
        if matches!(c.host_config["NetworkMode"].as_str(), Some("host" | "none")) {
            return Err(EngineError::InvalidParameter(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        if super::container_net::joined_name(&c.host_config).is_some() {
            return Err(EngineError::InvalidParameter(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            ));
        }
        if net::container_networks(&c)
            .iter()
            .any(|(k, _)| *k == net.name)
        {
            return Err(EngineError::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                c.short_name(),
                net.name
            )));
        }
        if c.state.running {
            let e = self.plan_entry(&c, &net.id, endpoint, net.default);
            n.mgr
                .attach(&AttachRequest {
                    network: net.id.clone(),
                    container_id: c.id.clone(),
                    netns: NetnsRef::Path(format!("/proc/{}/ns/net", c.state.pid).into()),
                    aliases: e.aliases,
                    requested_ip: e.ip,
                    ports: Vec::new(),
                    mac: e.mac,
                })
                .map_err(net_err)?;
        }
        let name = net.name.clone();
        let ep = endpoint.clone();
        let c = self.update(&c.id, move |c| {
            c.networks.insert(name, ep);
        })?;
        if !net.default {
            self.late_dns_ensure(&c);
        }
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub fn network_disconnect(&self, network: &str, key: &str) -> Result<()> {
        let n = self
            .net
            .as_ref()
            .ok_or_else(|| net_err("networking is disabled"))?;
        let net = n
            .mgr
            .get(network)
            .map_err(|_| EngineError::NoSuchContainer(format!("network {network} not found")))?;
        let c = self.get(key)?;
        if !net::container_networks(&c)
            .iter()
            .any(|(k, _)| *k == net.name)
        {
            return Err(EngineError::Conflict(format!(
                "container {} is not connected to network {}",
                c.id, net.name
            )));
        }
        if net.endpoints.contains_key(&c.id) {
            n.mgr.detach(&net.id, &c.id).map_err(net_err)?;
        }
        let name = net.name.clone();
        let mode_is_net = c.host_config["NetworkMode"].as_str() == Some(net.name.as_str());
        self.update(&c.id, move |c| {
            c.networks.remove(&name);
            if mode_is_net {
                c.host_config["NetworkMode"] = json!("none");
            }
        })?;
        Ok(())
    }

    /// The container's endpoints by network name.
    pub fn endpoints(&self, c: &Container) -> BTreeMap<String, Endpoint> {
        match &self.net {
            Some(n) => net::endpoints_of(&n.mgr, &c.id),
            None => BTreeMap::new(),
        }
    }

    /// docker's `NetworkSettings` for inspect.
    pub fn network_settings(&self, c: &Container) -> Value {
        let eps = self.endpoints(c);
        let mut ports = serde_json::Map::new();
        for p in c.config["ExposedPorts"].as_object().into_iter().flatten() {
            ports.insert(p.0.clone(), Value::Null);
        }
        for e in eps.values() {
            for m in &e.ports {
                let key = format!("{}/{}", m.container_port, proto_name(m));
                let entry = ports.entry(key).or_insert_with(|| json!([]));
                if !entry.is_array() {
                    *entry = json!([]);
                }
                if let Some(a) = entry.as_array_mut() {
                    a.push(json!({
                        "HostIp": m.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                        "HostPort": m.host_port.to_string(),
                    }));
                }
            }
        }
        let mut networks = serde_json::Map::new();
        for (name, ep_cfg) in net::container_networks(c) {
            let e = eps.get(&name);
            let s = |f: &dyn Fn(&Endpoint) -> String| e.map(f).unwrap_or_default();
            networks.insert(
                name.clone(),
                json!({
                    "IPAMConfig": ep_cfg.get("IPAMConfig").cloned().unwrap_or(Value::Null),
                    "Links": null,
                    "Aliases": ep_cfg.get("Aliases").cloned().unwrap_or(Value::Null),
                    "MacAddress": s(&|e| e.mac.clone()),
                    "DriverOpts": null,
                    "NetworkID": s(&|e| e.network_id.clone()),
                    "EndpointID": s(&|e| e.id.clone()),
                    "Gateway": s(&|e| e.gateway.to_string()),
                    "IPAddress": s(&|e| e.ip.to_string()),
                    "IPPrefixLen": e.map(|e| e.prefix).unwrap_or(0),
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "DNSNames": e
                        .filter(|e| !e.aliases.is_empty())
                        .map(|e| json!(e.aliases))
                        .unwrap_or(Value::Null),
                }),
            );
        }
        if matches!(c.host_config["NetworkMode"].as_str(), Some("host" | "none")) {
            let m = c.host_config["NetworkMode"].as_str().unwrap_or("none");
            let id = "";
            networks.insert(
                m.to_string(),
                json!({"IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                    "DriverOpts": null, "NetworkID": id, "EndpointID": "", "Gateway": "",
                    "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0, "DNSNames": null}),
            );
        }
        let bridge = eps.get("bridge");
        let b = |f: &dyn Fn(&Endpoint) -> String| bridge.map(f).unwrap_or_default();
        json!({
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": if c.state.running { format!("/proc/{}/ns/net", c.state.pid) } else { String::new() },
            "Ports": ports,
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": b(&|e| e.id.clone()),
            "Gateway": b(&|e| e.gateway.to_string()),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": b(&|e| e.ip.to_string()),
            "IPPrefixLen": bridge.map(|e| e.prefix).unwrap_or(0),
            "IPv6Gateway": "",
            "MacAddress": b(&|e| e.mac.clone()),
            "Networks": networks,
        })
    }

    /// docker's `Ports` of `GET /containers/json`.
    pub fn port_summary(&self, c: &Container) -> Value {
        let mut out = Vec::new();
        let mut published = std::collections::HashSet::new();
        for e in self.endpoints(c).values() {
            for m in &e.ports {
                published.insert(format!("{}/{}", m.container_port, proto_name(m)));
                out.push(json!({
                    "IP": m.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                    "PrivatePort": m.container_port,
                    "PublicPort": m.host_port,
                    "Type": proto_name(m),
                }));
            }
        }
        for p in c.config["ExposedPorts"].as_object().into_iter().flatten() {
            if published.contains(p.0) {
                continue;
            }
            let (num, proto) = p.0.split_once('/').unwrap_or((p.0, "tcp"));
            if let Ok(n) = num.parse::<u16>() {
                out.push(json!({"PrivatePort": n, "Type": proto}));
            }
        }
        json!(out)
    }
}

fn proto_name(m: &berth_network::PortMapping) -> &'static str {
    match m.proto {
        berth_network::Proto::Tcp => "tcp",
        berth_network::Proto::Udp => "udp",
    }
}
