//! Content of a container's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, generated like docker's.
//!
//! These are pure functions: the engine decides where the files go (docker keeps them in the container's
//! directory and bind-mounts them).

use std::net::{IpAddr, Ipv4Addr};

use crate::dns::EMBEDDED_DNS_IP;

/// The parts of a resolv.conf berth cares about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` entries, in order.
    pub nameservers: Vec<IpAddr>,
    /// `search` domains.
    pub search: Vec<String>,
    /// `options` words.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text; unknown lines are ignored.
    pub fn parse(text: &str) -> Self {
        let mut r = Self::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut w = line.split_whitespace();
            match w.next() {
                Some("nameserver") => r
                    .nameservers
                    .extend(w.next().and_then(|a| a.parse::<IpAddr>().ok())),
                Some("search") | Some("domain") => r.search = w.map(str::to_string).collect(),
                Some("options") => r.options.extend(w.map(str::to_string)),
                _ => {}
            }
        }
        r
    }

    /// The host's resolvers usable from a container: loopback ones (systemd-resolved's 127.0.0.53, a local
    /// dnsmasq) are unreachable from another namespace, so they are dropped; if none remain, Google's public
    /// resolvers are used, as docker does.
    pub fn container_nameservers(&self) -> Vec<IpAddr> {
        let v: Vec<IpAddr> = self
            .nameservers
            .iter()
            .copied()
            .filter(|a| !a.is_loopback())
            .collect();
        if v.is_empty() {
            vec![
                IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
                IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
            ]
        } else {
            v
        }
    }

    fn render(&self) -> String {
        let mut s = String::new();
        for n in &self.nameservers {
            s.push_str(&format!("nameserver {n}\n"));
        }
        if !self.search.is_empty() {
            s.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }
}

/// Settings from `--dns`, `--dns-search`, `--dns-option` (empty means "from the host").
#[derive(Clone, Debug, Default)]
pub struct DnsSettings {
    /// `--dns` servers.
    pub servers: Vec<IpAddr>,
    /// `--dns-search` domains.
    pub search: Vec<String>,
    /// `--dns-option` options.
    pub options: Vec<String>,
}

/// A container's resolv.conf. `host` is the host's resolv.conf text. With `embedded_dns` (user networks) the
/// only nameserver is 127.0.0.11, berth's embedded server, which forwards other names upstream; otherwise the
/// host's non-loopback resolvers (or 8.8.8.8/8.8.4.4).
pub fn resolv_conf(host: &str, embedded_dns: bool, dns: &DnsSettings) -> String {
    let h = ResolvConf::parse(host);
    let mut r = ResolvConf {
        nameservers: if embedded_dns {
            vec![IpAddr::V4(EMBEDDED_DNS_IP)]
        } else if !dns.servers.is_empty() {
            dns.servers.clone()
        } else {
            h.container_nameservers()
        },
        search: if dns.search.is_empty() {
            h.search.clone()
        } else {
            dns.search.clone()
        },
        options: if dns.options.is_empty() {
            h.options.clone()
        } else {
            dns.options.clone()
        },
    };
    if embedded_dns && !r.options.iter().any(|o| o.starts_with("ndots:")) {
        r.options.push("ndots:0".into());
    }
    r.render()
}

/// The upstream servers the embedded DNS forwards to: `--dns` if given, else the host's resolvers. Loopback
/// ones are kept here because the forwarder runs in the daemon's (the host's) namespace.
pub fn upstream_servers(host: &str, dns: &DnsSettings) -> Vec<IpAddr> {
    if !dns.servers.is_empty() {
        return dns.servers.clone();
    }
    let h = ResolvConf::parse(host);
    if h.nameservers.is_empty() {
        ResolvConf::default().container_nameservers()
    } else {
        h.nameservers
    }
}

/// A container's `/etc/hosts`: docker's localhost block, `extra` (`--add-host name:ip`) entries, then the
/// container's own addresses (`ip`, hostname and aliases) if it has any network.
pub fn hosts_file(
    hostname: &str,
    domain: Option<&str>,
    ips: &[Ipv4Addr],
    extra: &[(String, IpAddr)],
) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, ip) in extra {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    let names = match domain {
        Some(d) if !d.is_empty() => format!("{hostname}.{d} {hostname}"),
        _ => hostname.to_string(),
    };
    for ip in ips {
        s.push_str(&format!("{ip}\t{names}\n"));
    }
    s
}

/// A container's `/etc/hostname`.
pub fn hostname_file(hostname: &str) -> String {
    format!("{hostname}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";

    #[test]
    fn resolv_default_bridge_drops_loopback() {
        let r = resolv_conf(HOST, false, &DnsSettings::default());
        assert_eq!(
            r,
            "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
        );
        let r = resolv_conf("nameserver 127.0.0.53\n", false, &DnsSettings::default());
        assert_eq!(r, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let d = DnsSettings {
            servers: vec!["1.1.1.1".parse().unwrap()],
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(HOST, false, &d),
            "nameserver 1.1.1.1\nsearch corp.example\noptions edns0\n"
        );
    }

    #[test]
    fn resolv_user_network_uses_embedded() {
        let r = resolv_conf(HOST, true, &DnsSettings::default());
        assert_eq!(
            r,
            "nameserver 127.0.0.11\nsearch corp.example\noptions edns0 ndots:0\n"
        );
        let up = upstream_servers(HOST, &DnsSettings::default());
        assert_eq!(
            up.len(),
            2,
            "forwarder runs on the host, loopback resolvers stay usable"
        );
    }

    #[test]
    fn hosts_and_hostname() {
        let h = hosts_file(
            "abc123",
            None,
            &["172.17.0.2".parse().unwrap()],
            &[("db".into(), "10.0.0.5".parse().unwrap())],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(h.ends_with("10.0.0.5\tdb\n172.17.0.2\tabc123\n"), "{h}");
        assert!(hosts_file(
            "web",
            Some("example.com"),
            &["10.0.0.2".parse().unwrap()],
            &[]
        )
        .contains("10.0.0.2\tweb.example.com web\n"));
        assert_eq!(hostname_file("abc"), "abc\n");
    }
}
