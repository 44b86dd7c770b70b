//! berth-network: bridge networking for berth containers (issue 5).
//!
//! What it does, like Docker's bridge driver:
//! - a default network `bridge` on device `berth0` whose subnet is `--bip` or the first entry of the address
//!   pools (Docker's 172.17.0.0/16, 172.18.0.0/16, ..., 192.168.0.0/20 steps) that no host route or address
//!   overlaps ([`subnet`]);
//! - user networks with subnet, gateway, `--internal`, options (`com.docker.network.bridge.name`) and labels;
//! - per container a veth pair whose container end is created directly in the container's network namespace
//!   (given as a path like `/proc/<pid>/ns/net` or an fd), with MAC `02:42:<ip>` and a default route;
//! - IPAM persisted in `<data-root>/network/state.json` with atomic writes under a file lock ([`state`]);
//! - outbound masquerade, `-p` port publishing with ranges and random ports, reachable from other hosts, from
//!   the host itself including 127.0.0.1 (DNAT in `output` + `route_localnet`), and from containers through
//!   the host's addresses (hairpin), all in berth's own nftables table ([`nft`]);
//! - isolation between networks and no forwarding for internal networks;
//! - `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` generators ([`files`]);
//! - an embedded DNS resolver at 127.0.0.11 inside each container on a user network ([`dns`]).
//!
//! A container's links, addresses and routes are set up over netlink ([`netlink`], no process spawned), its
//! published ports are nft map elements changed alone; bridges use iproute2's `ip` and whole-table changes
//! `nft -f -` ([`link`], [`nft`]). Every call is blocking and acts in the calling thread's network namespace.
//!
//! ```no_run
//! use berth_network::{AttachRequest, Config, NetnsRef, NetworkManager, PortSpec};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mgr = NetworkManager::open("/var/lib/berth".as_ref(), Config::default())?;
//! let bridge = mgr.ensure_default_bridge()?; // at daemon start
//! let ep = mgr.attach(&AttachRequest {
//!     network: bridge.name.clone(),
//!     container_id: "0123abcd".into(),
//!     netns: NetnsRef::Path("/proc/4242/ns/net".into()),
//!     aliases: vec![],
//!     requested_ip: None,
//!     ports: vec![PortSpec::parse("127.0.0.1:8080:80")?],
//!     mac: None,
//! })?;
//! println!("{} {} via {}", ep.ip, ep.mac, ep.gateway);
//! mgr.detach(&bridge.id, "0123abcd")?; // when the container stops
//! # Ok(()) }
//! ```
//!
//! Integration notes for the engine: call [`NetworkManager::ensure_default_bridge`] once at startup (it also
//! restores bridges and rules after a reboot); attach after the container's namespaces exist and before its
//! process starts; detach when it stops. Write [`files::hosts_file`], [`files::hostname_file`] and
//! [`files::resolv_conf`] (embedded DNS for user networks) into the container directory and bind-mount them.
//! For user networks, run one [`dns::DnsServer`] in the daemon, refresh it with
//! [`NetworkManager::name_table`] after attach/detach, and call [`dns::DnsServer::serve_netns`] per container.

pub mod dns;
pub mod files;
pub mod link;
pub mod manager;
pub mod netlink;
pub mod nft;
pub mod ports;
pub mod state;
pub mod subnet;

pub use dns::{DnsHandle, DnsServer, NameTable};
pub use files::{hostname_file, hosts_file, resolv_conf, upstream_servers, DnsSettings};
pub use link::NetnsRef;
pub use manager::{
    mac_for, normalize_mac, AttachRequest, Config, NetworkError, NetworkManager, NetworkSpec,
    BRIDGE_NAME_OPTION,
};
pub use ports::{PortMapping, PortSpec, Proto};
pub use state::{Endpoint, Network};
pub use subnet::{AddressPool, Ipv4Net};
