//! [`NetworkManager`]: the public face of the crate. Every mutating call takes the state lock, reloads the
//! state, changes the kernel, saves the state and updates berth's nftables table (whole for network changes,
//! only the container's port elements for attach/detach), so the daemon and monitors can share one data root,
//! and a restarted daemon sees exactly what was allocated.
//!
//! All calls are blocking (netlink, `ip`/`nft` for network-level changes, files); from tokio use `spawn_blocking`. They act in
//! the network namespace of the calling thread, which is the host's in berthd.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

use crate::dns::NameTable;
use crate::link::{self, LinkError, NetnsRef};
use crate::nft::{self, NftError, RuleNetwork, RulePort};
use crate::ports::{PortMapping, PortSpec, Proto};
use crate::state::{Endpoint, Locked, Network, State, StateError, Store};
use crate::subnet::{self, AddressPool, Ipv4Net};

/// Errors from [`NetworkManager`].
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// State file problem.
    #[error(transparent)]
    State(#[from] StateError),
    /// Kernel link/address problem.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// nftables problem.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// No such network.
    #[error("network {0} not found")]
    NotFound(String),
    /// A network with that name exists.
    #[error("network with name {0} already exists")]
    NameInUse(String),
    /// The network still has endpoints.
    #[error("error while removing network: network {0} has active endpoints")]
    InUse(String),
    /// Bad request (subnet, gateway, names...).
    #[error("{0}")]
    Invalid(String),
    /// The subnet overlaps an existing network or host route.
    #[error("Pool overlaps with other one on this address space: {0}")]
    Overlap(Ipv4Net),
    /// Every pool is used.
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    PoolsExhausted,
    /// No free (or the requested) address.
    #[error("no available address in network {network}{}", requested.map(|r| format!(" (requested {r})")).unwrap_or_default())]
    NoAddress {
        /// Network name.
        network: String,
        /// The requested address, if any.
        requested: Option<Ipv4Addr>,
    },
    /// Container already attached.
    #[error("container {container} is already attached to network {network}")]
    AlreadyAttached {
        /// Container id.
        container: String,
        /// Network name.
        network: String,
    },
    /// Container not attached.
    #[error("container {container} is not connected to network {network}")]
    NotAttached {
        /// Container id.
        container: String,
        /// Network name.
        network: String,
    },
    /// Host port taken.
    #[error("Bind for {}:{port} failed: port is already allocated", ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()))]
    PortInUse {
        /// Host address.
        ip: Option<Ipv4Addr>,
        /// Host port.
        port: u16,
    },
}

/// Daemon-level settings (berthd flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// Default bridge device (`berth0`).
    pub bridge_name: String,
    /// Name of the default network (`bridge`).
    pub default_network: String,
    /// `--bip`: the default bridge's gateway address with prefix, e.g. `172.30.0.1/16`.
    pub bip: Option<Ipv4Net>,
    /// `--default-address-pool`s; Docker's defaults when empty.
    pub pools: Vec<AddressPool>,
    /// Name of berth's nftables table (`berth`).
    pub nft_table: String,
    /// `--mtu` for bridges and veths.
    pub mtu: Option<u32>,
    /// Set `net.ipv4.ip_forward=1` when creating a bridge (docker's `--ip-forward`, default on).
    pub ip_forward: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bridge_name: "berth0".into(),
            default_network: "bridge".into(),
            bip: None,
            pools: subnet::default_pools(),
            nft_table: "berth".into(),
            mtu: None,
            ip_forward: true,
        }
    }
}

/// `docker network create` parameters.
#[derive(Clone, Debug, Default)]
pub struct NetworkSpec {
    /// Unique name.
    pub name: String,
    /// `--subnet`; picked from the pools if `None`.
    pub subnet: Option<Ipv4Net>,
    /// `--gateway`; the first host address if `None`.
    pub gateway: Option<Ipv4Addr>,
    /// `--internal`.
    pub internal: bool,
    /// `-o` options; `com.docker.network.bridge.name` chooses the device name.
    pub options: BTreeMap<String, String>,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
}

/// Parameters of [`NetworkManager::attach`].
#[derive(Clone, Debug)]
pub struct AttachRequest {
    /// Network id, id prefix or name.
    pub network: String,
    /// Container id.
    pub container_id: String,
    /// The container's network namespace.
    pub netns: NetnsRef,
    /// DNS names for this container (name, `--network-alias`es, short id).
    pub aliases: Vec<String>,
    /// `--ip`.
    pub requested_ip: Option<Ipv4Addr>,
    /// `-p` specs.
    pub ports: Vec<PortSpec>,
    /// `--mac-address` (docker's `02:42:<ip>` when `None`).
    pub mac: Option<String>,
}

/// The option naming a network's bridge device, as docker's.
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

const NET_DIR: &str = "network";

/// Manages berth's bridges, endpoints and rules for one data root. Cheap to clone (a path and the config), so
/// the daemon can move a clone into `spawn_blocking`; all coordination is the on-disk lock.
#[derive(Clone, Debug)]
pub struct NetworkManager {
    store: Store,
    config: Config,
}

fn random_hex(n: usize) -> String {
    let mut r = rand::thread_rng();
    (0..n)
        .map(|_| format!("{:x}", r.gen_range(0..16u8)))
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// docker's MAC for an address: `02:42` and the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// Checks a `--mac-address` and writes it in lower case; like docker, a multicast address is refused.
pub fn normalize_mac(mac: &str) -> Result<String, NetworkError> {
    let bad = || NetworkError::Invalid(format!("invalid MAC address: {mac}"));
    let parts: Vec<&str> = mac.split(['-', ':']).collect();
    if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
        return Err(bad());
    }
    let bytes = parts
        .iter()
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    if bytes[0] & 1 == 1 {
        return Err(NetworkError::Invalid(format!(
            "invalid MAC address: {mac}: a multicast address cannot be used"
        )));
    }
    Ok(bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl NetworkManager {
    /// Opens (creating) `<data_root>/network/`. Touches no kernel state.
    pub fn open(data_root: &Path, config: Config) -> Result<Self, NetworkError> {
        if !valid_ifname(&config.bridge_name) {
            return Err(NetworkError::Invalid(format!(
                "invalid bridge name {:?}",
                config.bridge_name
            )));
        }
        if config.nft_table.is_empty()
            || !config
                .nft_table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(NetworkError::Invalid(format!(
                "invalid nftables table name {:?}",
                config.nft_table
            )));
        }
        let store = Store::open(&data_root.join(NET_DIR))?;
        let l = store.lock()?;
        store.load(&l)?;
        Ok(Self { store, config })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut State, &Locked) -> Result<T, NetworkError>,
    ) -> Result<T, NetworkError> {
        let l = self.store.lock()?;
        let mut s = self.store.load(&l)?;
        f(&mut s, &l)
    }

    fn apply_rules(&self, s: &State) -> Result<(), NetworkError> {
        let nets: Vec<RuleNetwork> = s
            .networks
            .values()
            .map(|n| RuleNetwork {
                bridge: n.bridge.clone(),
                subnet: n.subnet,
                gateway: n.gateway,
                internal: n.internal,
            })
            .collect();
        let ports: Vec<RulePort> = s
            .networks
            .values()
            .flat_map(|n| n.endpoints.values())
            .flat_map(|e| {
                e.ports.iter().map(|m| RulePort {
                    container_ip: e.ip,
                    mapping: m.clone(),
                })
            })
            .collect();
        nft::apply(&self.config.nft_table, &nets, &ports)?;
        Ok(())
    }

    /// Publishes `add` and withdraws `remove` (one container's ports) by changing only their nft map
    /// elements; if that fails (the table was changed behind berth's back, or is from an older layout), the
    /// whole table is re-applied from `s`, which already holds the new ports.
    fn update_ports(
        &self,
        s: &State,
        ip: Ipv4Addr,
        add: &[PortMapping],
        remove: &[PortMapping],
    ) -> Result<(), NetworkError> {
        let rp = |v: &[PortMapping]| -> Vec<RulePort> {
            v.iter()
                .map(|m| RulePort {
                    container_ip: ip,
                    mapping: m.clone(),
                })
                .collect()
        };
        if nft::update_ports(&self.config.nft_table, &rp(add), &rp(remove)).is_err() {
            self.apply_rules(s)?;
        }
        Ok(())
    }

    fn bring_up(&self, n: &Network) -> Result<(), NetworkError> {
        link::ensure_bridge(&n.bridge, n.gateway, n.subnet.prefix, self.config.mtu)?;
        // Lets the host's 127.0.0.1 reach published ports through the output-chain DNAT.
        link::sysctl(&format!("net/ipv4/conf/{}/route_localnet", n.bridge), "1")?;
        if self.config.ip_forward && !n.internal {
            link::sysctl("net/ipv4/ip_forward", "1")?;
        }
        Ok(())
    }

    fn new_network(
        &self,
        s: &State,
        spec: &NetworkSpec,
        bridge: String,
        default: bool,
    ) -> Result<Network, NetworkError> {
        if spec.name.is_empty() || s.find(&spec.name).is_some_and(|n| n.name == spec.name) {
            return Err(if spec.name.is_empty() {
                NetworkError::Invalid("network name must not be empty".into())
            } else {
                NetworkError::NameInUse(spec.name.clone())
            });
        }
        if !valid_ifname(&bridge) || s.networks.values().any(|n| n.bridge == bridge) {
            return Err(NetworkError::Invalid(format!(
                "bridge name {bridge:?} is invalid or used by another network"
            )));
        }
        let mut taken: Vec<Ipv4Net> = s.networks.values().map(|n| n.subnet).collect();
        let host = link::host_prefixes()?;
        let subnet = match spec.subnet {
            Some(sn) => {
                let sn = sn.network();
                if sn.prefix > 30 {
                    return Err(NetworkError::Invalid(format!("subnet {sn} is too small")));
                }
                if let Some(t) = taken.iter().find(|t| t.overlaps(&sn)) {
                    return Err(NetworkError::Overlap(*t));
                }
                // Unlike docker, an explicit subnet that a host route already covers is refused too: traffic
                // to it would be split between the bridge and that route.
                if host.iter().any(|h| h.overlaps(&sn) && h.prefix <= 30) {
                    return Err(NetworkError::Overlap(sn));
                }
                sn
            }
            None => {
                taken.extend(host);
                subnet::pick_subnet(&self.config.pools, &taken)
                    .ok_or(NetworkError::PoolsExhausted)?
            }
        };
        let gateway = match spec.gateway {
            Some(g) if subnet.is_host(g) => g,
            Some(g) => {
                return Err(NetworkError::Invalid(format!(
                    "gateway {g} is not a host address of {subnet}"
                )))
            }
            None => subnet
                .nth(1)
                .ok_or_else(|| NetworkError::Invalid(format!("subnet {subnet} is too small")))?,
        };
        Ok(Network {
            id: random_hex(64),
            name: spec.name.clone(),
            driver: "bridge".into(),
            bridge,
            subnet,
            gateway,
            internal: spec.internal,
            default,
            options: spec.options.clone(),
            labels: spec.labels.clone(),
            created: now(),
            endpoints: BTreeMap::new(),
        })
    }

    /// Creates (first run) or restores the default network (`bridge` on `berth0`): subnet from `--bip` or the
    /// first pool entry no host route covers. Also re-creates every other network's bridge and re-applies the
    /// rules, so calling it at daemon start restores the kernel side after a reboot.
    pub fn ensure_default_bridge(&self) -> Result<Network, NetworkError> {
        self.with_state(|s, l| {
            let existing = s.networks.values().find(|n| n.default).cloned();
            let net = match existing {
                Some(n) => n,
                None => {
                    let spec = NetworkSpec {
                        name: self.config.default_network.clone(),
                        subnet: self.config.bip.map(|b| b.network()),
                        gateway: self.config.bip.map(|b| b.addr),
                        ..Default::default()
                    };
                    // A leftover berth0 from a crashed run would make host_prefixes report our own subnet.
                    link::delete_link(&self.config.bridge_name)?;
                    let n = self.new_network(s, &spec, self.config.bridge_name.clone(), true)?;
                    s.networks.insert(n.id.clone(), n.clone());
                    self.store.save(l, s)?;
                    n
                }
            };
            for n in s.networks.values() {
                self.bring_up(n)?;
            }
            self.apply_rules(s)?;
            Ok(net)
        })
    }

    /// `docker network create`.
    pub fn create_network(&self, spec: &NetworkSpec) -> Result<Network, NetworkError> {
        self.with_state(|s, l| {
            let id_hint = random_hex(12);
            let bridge = spec
                .options
                .get(BRIDGE_NAME_OPTION)
                .cloned()
                .unwrap_or_else(|| format!("br-{id_hint}"));
            let mut n = self.new_network(s, spec, bridge, false)?;
            if !spec.options.contains_key(BRIDGE_NAME_OPTION) {
                n.id.replace_range(..12, &id_hint);
            }
            if let Err(e) = self.bring_up(&n) {
                let _ = link::delete_link(&n.bridge);
                return Err(e);
            }
            s.networks.insert(n.id.clone(), n.clone());
            if let Err(e) = self
                .store
                .save(l, s)
                .map_err(NetworkError::from)
                .and_then(|_| self.apply_rules(s))
            {
                s.networks.remove(&n.id);
                let _ = self.store.save(l, s);
                let _ = link::delete_link(&n.bridge);
                return Err(e);
            }
            Ok(n)
        })
    }

    /// `docker network rm`: refuses while containers are attached.
    pub fn remove_network(&self, key: &str) -> Result<(), NetworkError> {
        self.with_state(|s, l| {
            let n = s
                .find(key)
                .cloned()
                .ok_or_else(|| NetworkError::NotFound(key.into()))?;
            if !n.endpoints.is_empty() {
                return Err(NetworkError::InUse(n.name));
            }
            s.networks.remove(&n.id);
            self.store.save(l, s)?;
            self.apply_rules(s)?;
            link::delete_link(&n.bridge)?;
            Ok(())
        })
    }

    /// All networks.
    pub fn list(&self) -> Result<Vec<Network>, NetworkError> {
        self.with_state(|s, _| Ok(s.networks.values().cloned().collect()))
    }

    /// One network by id, id prefix or name.
    pub fn get(&self, key: &str) -> Result<Network, NetworkError> {
        self.with_state(|s, _| {
            s.find(key)
                .cloned()
                .ok_or_else(|| NetworkError::NotFound(key.into()))
        })
    }

    fn port_taken(
        s: &State,
        chosen: &[PortMapping],
        proto: Proto,
        ip: Option<Ipv4Addr>,
        port: u16,
    ) -> bool {
        let clash = |m: &PortMapping| {
            m.proto == proto
                && m.host_port == port
                && (m.host_ip.is_none() || ip.is_none() || m.host_ip == ip)
        };
        chosen.iter().any(clash)
            || s.networks
                .values()
                .flat_map(|n| n.endpoints.values())
                .flat_map(|e| &e.ports)
                .any(clash)
    }

    /// Binds `(ip, port)` (port 0: any) and returns the bound port; a failure means a host process has it.
    fn probe_port(proto: Proto, ip: Option<Ipv4Addr>, port: u16) -> std::io::Result<u16> {
        let addr = (ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
        match proto {
            Proto::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
            Proto::Udp => UdpSocket::bind(addr).and_then(|l| l.local_addr()),
        }
        .map(|a| a.port())
    }

    /// Turns `-p` specs into mappings: explicit host ports must be free (not published by berth, not bound by a
    /// host process); random ones come from the kernel's ephemeral range, skipping ports berth published
    /// (a DNAT rule holds no socket, so the kernel would not know).
    fn resolve_ports(s: &State, specs: &[PortSpec]) -> Result<Vec<PortMapping>, NetworkError> {
        let mut out: Vec<PortMapping> = Vec::new();
        for spec in specs {
            for (i, cp) in (spec.container_ports.0..=spec.container_ports.1).enumerate() {
                let (proto, ip) = (spec.proto, spec.host_ip);
                let host_port = match spec.host_ports {
                    Some((first, _)) => {
                        let port = first.saturating_add(i as u16);
                        if Self::port_taken(s, &out, proto, ip, port) {
                            return Err(NetworkError::PortInUse { ip, port });
                        }
                        match Self::probe_port(proto, ip, port) {
                            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                                return Err(NetworkError::PortInUse { ip, port });
                            }
                            Err(e) => {
                                let ip = ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
                                return Err(NetworkError::Invalid(format!(
                                    "cannot publish {ip}:{port}: {e}"
                                )));
                            }
                            Ok(_) => {}
                        }
                        port
                    }
                    None => {
                        let mut found = None;
                        for _ in 0..64 {
                            let p = Self::probe_port(proto, ip, 0).map_err(|e| {
                                NetworkError::Invalid(format!("cannot pick a host port: {e}"))
                            })?;
                            if !Self::port_taken(s, &out, proto, ip, p) {
                                found = Some(p);
                                break;
                            }
                        }
                        found.ok_or_else(|| {
                            NetworkError::Invalid("cannot pick a free host port".into())
                        })?
                    }
                };
                out.push(PortMapping {
                    proto,
                    host_ip: ip,
                    host_port,
                    container_port: cp,
                });
            }
        }
        Ok(out)
    }

    /// Connects a container: allocates an address (or takes `requested_ip`), creates a veth pair with the
    /// container end as the first free `ethN` in its namespace, sets address, MAC, default route (unless the
    /// network is internal or the container already has one), and publishes `ports`.
    pub fn attach(&self, req: &AttachRequest) -> Result<Endpoint, NetworkError> {
        self.with_state(|s, l| {
            let n = s
                .find(&req.network)
                .cloned()
                .ok_or_else(|| NetworkError::NotFound(req.network.clone()))?;
            if n.endpoints.contains_key(&req.container_id) {
                return Err(NetworkError::AlreadyAttached {
                    container: req.container_id.clone(),
                    network: n.name,
                });
            }
            let ip = n
                .allocate(req.requested_ip)
                .ok_or_else(|| NetworkError::NoAddress {
                    network: n.name.clone(),
                    requested: req.requested_ip,
                })?;
            let ports = Self::resolve_ports(s, &req.ports)?;
            let ifname = link::free_ifname(&req.netns)?;
            let veth = loop {
                let v = format!("veth{}", random_hex(7));
                if !link::link_exists(&v) {
                    break v;
                }
            };
            let mac = match &req.mac {
                Some(m) => normalize_mac(m)?,
                None => mac_for(ip),
            };
            link::create_veth(&veth, &n.bridge, &req.netns, &ifname, &mac, self.config.mtu)?;
            let ep = Endpoint {
                id: random_hex(64),
                network_id: n.id.clone(),
                network_name: n.name.clone(),
                container_id: req.container_id.clone(),
                aliases: req.aliases.clone(),
                ip,
                prefix: n.subnet.prefix,
                mac,
                gateway: n.gateway,
                veth: veth.clone(),
                ifname,
                ports,
            };
            let gw = (!n.internal).then_some(n.gateway);
            let done =
                link::configure_container_side(&req.netns, &ep.ifname, ip, n.subnet.prefix, gw)
                    .map_err(NetworkError::from)
                    .and_then(|_| {
                        if let Some(net) = s.networks.get_mut(&n.id) {
                            net.endpoints.insert(req.container_id.clone(), ep.clone());
                        }
                        self.store.save_endpoints(l, s)?;
                        self.update_ports(s, ep.ip, &ep.ports, &[])
                    });
            if let Err(e) = done {
                if let Some(net) = s.networks.get_mut(&n.id) {
                    if net.endpoints.remove(&req.container_id).is_some() {
                        let _ = self.store.save_endpoints(l, s);
                    }
                }
                let _ = link::delete_link(&veth);
                return Err(e);
            }
            Ok(ep)
        })
    }

    /// Disconnects a container: removes its rules, its veth pair (from the host side, so this works after
    /// the container's namespace is gone too) and frees its address.
    pub fn detach(&self, network: &str, container_id: &str) -> Result<Endpoint, NetworkError> {
        self.with_state(|s, l| {
            let id = s
                .find(network)
                .map(|n| n.id.clone())
                .ok_or_else(|| NetworkError::NotFound(network.into()))?;
            let net = s
                .networks
                .get_mut(&id)
                .ok_or_else(|| NetworkError::NotFound(network.into()))?;
            let ep =
                net.endpoints
                    .remove(container_id)
                    .ok_or_else(|| NetworkError::NotAttached {
                        container: container_id.into(),
                        network: net.name.clone(),
                    })?;
            self.store.save_endpoints(l, s)?;
            self.update_ports(s, ep.ip, &[], &ep.ports)?;
            link::delete_link(&ep.veth)?;
            Ok(ep)
        })
    }

    /// Detaches the container of `ep` from `ep`'s network.
    pub fn detach_endpoint(&self, ep: &Endpoint) -> Result<Endpoint, NetworkError> {
        self.detach(&ep.network_id, &ep.container_id)
    }

    /// Detaches every container for which `alive` says false (at daemon start: containers that died while
    /// berthd was down still hold addresses and ports). Returns the removed endpoints.
    pub fn prune(&self, alive: impl Fn(&str) -> bool) -> Result<Vec<Endpoint>, NetworkError> {
        let dead: Vec<(String, String)> = self.with_state(|s, _| {
            Ok(s.networks
                .values()
                .flat_map(|n| {
                    n.endpoints
                        .keys()
                        .filter(|c| !alive(c))
                        .map(|c| (n.id.clone(), c.clone()))
                })
                .collect())
        })?;
        dead.iter().map(|(n, c)| self.detach(n, c)).collect()
    }

    /// Detaches a container from every network (container removal).
    pub fn detach_all(&self, container_id: &str) -> Result<Vec<Endpoint>, NetworkError> {
        let ids: Vec<String> = self.with_state(|s, _| {
            Ok(s.networks
                .values()
                .filter(|n| n.endpoints.contains_key(container_id))
                .map(|n| n.id.clone())
                .collect())
        })?;
        ids.iter().map(|id| self.detach(id, container_id)).collect()
    }

    /// Publishes more ports for an attached container; returns the new mappings.
    pub fn publish(
        &self,
        network: &str,
        container_id: &str,
        specs: &[PortSpec],
    ) -> Result<Vec<PortMapping>, NetworkError> {
        self.with_state(|s, l| {
            let ports = Self::resolve_ports(s, specs)?;
            let ep = endpoint_mut(s, network, container_id)?;
            ep.ports.extend(ports.iter().cloned());
            let ip = ep.ip;
            self.store.save_endpoints(l, s)?;
            self.update_ports(s, ip, &ports, &[])?;
            Ok(ports)
        })
    }

    /// Withdraws all of a container's published ports on `network`.
    pub fn unpublish(
        &self,
        network: &str,
        container_id: &str,
    ) -> Result<Vec<PortMapping>, NetworkError> {
        self.with_state(|s, l| {
            let ep = endpoint_mut(s, network, container_id)?;
            let old = std::mem::take(&mut ep.ports);
            let ip = ep.ip;
            self.store.save_endpoints(l, s)?;
            self.update_ports(s, ip, &[], &old)?;
            Ok(old)
        })
    }

    /// The embedded DNS names: every endpoint's aliases on user networks (the default bridge has no DNS, like
    /// docker's). Keyed by network id, as [`crate::dns::DnsServer::serve_netns`] expects.
    pub fn name_table(&self) -> Result<NameTable, NetworkError> {
        self.with_state(|s, _| {
            let mut t = NameTable::default();
            for n in s.networks.values().filter(|n| !n.default) {
                for e in n.endpoints.values() {
                    for a in &e.aliases {
                        t.add(&n.id, a, e.ip);
                    }
                }
            }
            Ok(t)
        })
    }

    /// Removes every kernel object and rule berth made for this data root (bridges, veths, the nftables table)
    /// and its state file. For tests and uninstall; containers lose their network.
    pub fn cleanup_all(&self) -> Result<(), NetworkError> {
        self.with_state(|s, l| {
            let mut first_err = None;
            for n in s.networks.values() {
                for e in n.endpoints.values() {
                    if let Err(e) = link::delete_link(&e.veth) {
                        first_err.get_or_insert(NetworkError::from(e));
                    }
                }
                if let Err(e) = link::delete_link(&n.bridge) {
                    first_err.get_or_insert(NetworkError::from(e));
                }
            }
            if let Err(e) = nft::remove_table(&self.config.nft_table) {
                first_err.get_or_insert(NetworkError::from(e));
            }
            s.networks.clear();
            self.store.remove(l)?;
            first_err.map_or(Ok(()), Err)
        })
    }
}

/// The endpoint of `container_id` on `network` (by id, id prefix or name), for changing its ports.
fn endpoint_mut<'a>(
    s: &'a mut crate::state::State,
    network: &str,
    container_id: &str,
) -> Result<&'a mut crate::state::Endpoint, NetworkError> {
    let id = s
        .find(network)
        .map(|n| n.id.clone())
        .ok_or_else(|| NetworkError::NotFound(network.into()))?;
    let net = s
        .networks
        .get_mut(&id)
        .ok_or_else(|| NetworkError::NotFound(network.into()))?;
    let name = net.name.clone();
    net.endpoints
        .get_mut(container_id)
        .ok_or_else(|| NetworkError::NotAttached {
            container: container_id.into(),
            network: name,
        })
}
