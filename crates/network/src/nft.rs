//! berth's nftables rules: NAT (masquerade), port publishing (DNAT), and isolation between berth bridges.
//!
//! All rules live in one table of berth's own (`table ip berth` by default). When networks change (daemon start,
//! network create/rm) the whole table is re-rendered from the persisted network state and replaced in a single
//! `nft -f -` transaction (`table`, `delete table`, `table {...}`), so the kernel never sees a half-applied
//! rule set, a crash can never leave stale rules that the next apply would not remove, and nothing outside the
//! table is ever read, changed or flushed. A container's published ports are elements of two maps in that
//! table; attach and detach add or delete only those elements ([`update_ports`]), and a container without
//! ports costs no nft call at all.
//!
//! Chains (every base chain has policy accept, so berth never drops traffic it does not own):
//! - `guard` (filter, prerouting, raw priority): packets for 127.0.0.0/8 arriving on a berth bridge are dropped,
//!   because `route_localnet` would otherwise route them to the host's loopback services.
//! - `prerouting` / `output` (nat): traffic to a local address jumps to `publish`, which DNATs published ports
//!   looked up in the maps `publish_ip` (host address . proto . port) and `publish_any` (proto . port).
//!   `output` covers the host itself, including 127.0.0.1 (needs `route_localnet` on the bridge).
//! - `postrouting` (nat): masquerade a non-internal network's traffic leaving through another interface;
//!   masquerade loopback-sourced traffic to published ports (route_localnet) and hairpin traffic (a container
//!   reaching a published port through the host, possibly its own), so replies come back through the host.
//! - `input` (filter): an internal network's containers reach only their own gateway address on the host.
//! - `forward` (filter): internal networks cannot forward in or out of their bridge; DNATed (published)
//!   connections are allowed; any other traffic between two different berth bridges is dropped.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::ports::PortMapping;
use crate::subnet::Ipv4Net;

/// Errors from applying rules.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be run.
    #[error("running nft (is the nftables package installed?): {0}")]
    Spawn(std::io::Error),
    /// `nft` rejected the batch.
    #[error("nft -f -: {0}")]
    Rejected(String),
}

/// One bridge network as far as the rules care.
#[derive(Clone, Debug)]
pub struct RuleNetwork {
    /// Bridge device.
    pub bridge: String,
    /// Subnet.
    pub subnet: Ipv4Net,
    /// Gateway address (the bridge's).
    pub gateway: Ipv4Addr,
    /// No NAT, no forwarding in or out.
    pub internal: bool,
}

/// One published port.
#[derive(Clone, Debug)]
pub struct RulePort {
    /// Container address the port forwards to.
    pub container_ip: Ipv4Addr,
    /// The mapping.
    pub mapping: PortMapping,
}

/// The map of ports published on one host address.
const PUB_IP: &str = "publish_ip";
/// The map of ports published on every host address.
const PUB_ANY: &str = "publish_any";

/// The map a port's element belongs in.
fn map_of(p: &RulePort) -> &'static str {
    if p.mapping.host_ip.is_some() {
        PUB_IP
    } else {
        PUB_ANY
    }
}

/// A port's map element: `[host ip .] proto . host port : container ip . container port`.
fn element(p: &RulePort) -> String {
    let m = &p.mapping;
    let daddr = m.host_ip.map(|a| format!("{a} . ")).unwrap_or_default();
    format!(
        "{daddr}{} . {} : {} . {}",
        m.proto, m.host_port, p.container_ip, m.container_port
    )
}

/// Renders the element changes for publishing `add` and withdrawing `remove` (see [`update_ports`]).
pub fn render_update(table: &str, add: &[RulePort], remove: &[RulePort]) -> String {
    let mut s = String::new();
    for (verb, ports) in [("delete", remove), ("add", add)] {
        for p in ports {
            let _ = writeln!(
                s,
                "{verb} element ip {table} {} {{ {} }}",
                map_of(p),
                element(p)
            );
        }
    }
    s
}

/// Publishes `add` and withdraws `remove` in one `nft -f` transaction that touches only those map elements
/// (one container's ports). Fails (changing nothing) if an element to remove is missing or the table is not
/// berth's current layout; the caller then re-applies the whole table.
pub fn update_ports(table: &str, add: &[RulePort], remove: &[RulePort]) -> Result<(), NftError> {
    if add.is_empty() && remove.is_empty() {
        return Ok(());
    }
    nft_batch(&render_update(table, add, remove))
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace(['"', '\\'], ""))
}

/// Renders the full definition of `table ip <table>` for these networks and ports.
pub fn render(table: &str, nets: &[RuleNetwork], ports: &[RulePort]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table ip {table} {{");
    if !nets.is_empty() {
        // route_localnet on the bridges (needed for the 127.0.0.1 DNAT) would otherwise let a container send
        // packets to the host's 127.0.0.1 services through its gateway (CVE-2020-8558's pattern).
        let all = nets
            .iter()
            .map(|n| q(&n.bridge))
            .collect::<Vec<_>>()
            .join(", ");
        s.push_str(
            "  chain guard {\n    type filter hook prerouting priority -300; policy accept;\n",
        );
        let _ = writeln!(s, "    iifname {{ {all} }} ip daddr 127.0.0.0/8 drop\n  }}");
    }
    s.push_str(
        "  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n",
    );
    s.push_str("    fib daddr type local jump publish\n  }\n");
    s.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n");
    s.push_str("    fib daddr type local jump publish\n  }\n");
    // Published ports are elements of two verdict-free maps (with and without a host address), so adding or
    // removing one container's ports is an element change ([`update_ports`]), not a rule-set rewrite.
    let (with_ip, any): (Vec<&RulePort>, Vec<&RulePort>) =
        ports.iter().partition(|p| p.mapping.host_ip.is_some());
    let elements = |v: &[&RulePort]| {
        if v.is_empty() {
            String::new()
        } else {
            format!(
                " elements = {{ {} }};",
                v.iter().map(|p| element(p)).collect::<Vec<_>>().join(", ")
            )
        }
    };
    let _ = writeln!(
        s,
        "  map {PUB_IP} {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;{} }}",
        elements(&with_ip)
    );
    let _ = writeln!(
        s,
        "  map {PUB_ANY} {{ type inet_proto . inet_service : ipv4_addr . inet_service;{} }}",
        elements(&any)
    );
    s.push_str("  chain publish {\n");
    let _ = writeln!(
        s,
        "    dnat ip to ip daddr . meta l4proto . th dport map @{PUB_IP}"
    );
    let _ = writeln!(s, "    dnat ip to meta l4proto . th dport map @{PUB_ANY}");
    s.push_str("  }\n");
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n",
    );
    for n in nets {
        let br = q(&n.bridge);
        if !n.internal {
            let _ = writeln!(
                s,
                "    ip saddr {} oifname != {br} masquerade",
                n.subnet.network()
            );
        }
        let _ = writeln!(s, "    oifname {br} ip saddr 127.0.0.0/8 masquerade");
        let _ = writeln!(
            s,
            "    oifname {br} ct status dnat ip saddr {} masquerade",
            n.subnet.network()
        );
    }
    s.push_str("  }\n");
    s.push_str("  chain input {\n    type filter hook input priority 0; policy accept;\n");
    for n in nets.iter().filter(|n| n.internal) {
        // An internal network may talk to its own gateway (the host side of the bridge) but not use the host
        // as a way into its other networks' addresses.
        let _ = writeln!(
            s,
            "    iifname {} ip daddr != {} drop",
            q(&n.bridge),
            n.gateway
        );
    }
    s.push_str("  }\n");
    s.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
    for n in nets.iter().filter(|n| n.internal) {
        let br = q(&n.bridge);
        let _ = writeln!(s, "    iifname {br} oifname != {br} drop");
        let _ = writeln!(s, "    oifname {br} iifname != {br} drop");
    }
    if nets.len() > 1 {
        s.push_str("    ct status dnat accept\n");
        let all = nets
            .iter()
            .map(|n| q(&n.bridge))
            .collect::<Vec<_>>()
            .join(", ");
        for n in nets {
            let br = q(&n.bridge);
            let _ = writeln!(
                s,
                "    iifname {br} oifname != {br} oifname {{ {all} }} drop"
            );
        }
    }
    s.push_str("  }\n}\n");
    s
}

/// Runs `nft -f -` with `batch` as input.
pub fn nft_batch(batch: &str) -> Result<(), NftError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(batch.as_bytes()).map_err(NftError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(NftError::Spawn)?;
    if !out.status.success() {
        return Err(NftError::Rejected(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Atomically replaces berth's table with the rules for `nets` and `ports`; with no networks the table is
/// removed entirely.
pub fn apply(table: &str, nets: &[RuleNetwork], ports: &[RulePort]) -> Result<(), NftError> {
    // `table ip t` first makes the delete valid even when the table does not exist yet.
    let mut batch = format!("table ip {table}\ndelete table ip {table}\n");
    if !nets.is_empty() {
        batch.push_str(&render(table, nets, ports));
    }
    nft_batch(&batch)
}

/// Removes berth's table (and with it every rule berth made); absent is fine.
pub fn remove_table(table: &str) -> Result<(), NftError> {
    apply(table, &[], &[])
}

/// Whether `table ip <table>` exists.
pub fn table_exists(table: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "ip", table])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Proto;

    #[test]
    fn render_rules() {
        let nets = vec![
            RuleNetwork {
                bridge: "b0".into(),
                subnet: "10.1.0.1/24".parse().unwrap(),
                gateway: "10.1.0.1".parse().unwrap(),
                internal: false,
            },
            RuleNetwork {
                bridge: "b1".into(),
                subnet: "10.2.0.0/24".parse().unwrap(),
                gateway: "10.2.0.1".parse().unwrap(),
                internal: true,
            },
        ];
        let ports = vec![RulePort {
            container_ip: "10.1.0.2".parse().unwrap(),
            mapping: PortMapping {
                proto: Proto::Tcp,
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 8080,
                container_port: 80,
            },
        }];
        let r = render("berth", &nets, &ports);
        assert!(
            r.contains("elements = { 127.0.0.1 . tcp . 8080 : 10.1.0.2 . 80 }"),
            "{r}"
        );
        assert!(
            r.contains("dnat ip to ip daddr . meta l4proto . th dport map @publish_ip"),
            "{r}"
        );
        let u = render_update("berth", &ports, &[]);
        assert_eq!(
            u,
            "add element ip berth publish_ip { 127.0.0.1 . tcp . 8080 : 10.1.0.2 . 80 }\n"
        );
        assert!(
            r.contains("ip saddr 10.1.0.0/24 oifname != \"b0\" masquerade"),
            "{r}"
        );
        assert!(
            !r.contains("ip saddr 10.2.0.0/24 oifname != \"b1\" masquerade"),
            "internal must not NAT: {r}"
        );
        assert!(r.contains("iifname \"b1\" oifname != \"b1\" drop"), "{r}");
        assert!(
            r.contains("iifname { \"b0\", \"b1\" } ip daddr 127.0.0.0/8 drop"),
            "{r}"
        );
        assert!(
            r.contains("iifname \"b1\" ip daddr != 10.2.0.1 drop"),
            "{r}"
        );
        assert!(
            r.contains("iifname \"b0\" oifname != \"b0\" oifname { \"b0\", \"b1\" } drop"),
            "{r}"
        );
    }
}
