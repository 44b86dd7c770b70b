//! Port publishing specs: docker's `-p [ip:][hostPort:]containerPort[/tcp|udp]` with ranges, and the resolved
//! one-port-per-entry [`PortMapping`] that the NAT rules are built from.

use std::fmt;
use std::net::Ipv4Addr;

/// Errors from parsing `-p` specs.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The spec does not follow `[ip:][hostPort:]containerPort[/proto]`.
    #[error("invalid port spec {0:?}: expected [ip:][hostPort:]containerPort[/tcp|udp]")]
    Syntax(String),
    /// Host and container ranges have different lengths.
    #[error("invalid port spec {0:?}: host and container port ranges must be the same size")]
    RangeMismatch(String),
}

/// Transport protocol of a published port.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A parsed `-p` spec; `host_ports` is `None` for a random host port per container port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortSpec {
    /// Host address to bind; `None` means every host address (0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    /// Inclusive host port range, or `None` for random ports.
    pub host_ports: Option<(u16, u16)>,
    /// Inclusive container port range.
    pub container_ports: (u16, u16),
    /// Protocol.
    pub proto: Proto,
}

/// One published port after random ports were chosen.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PortMapping {
    /// Protocol.
    pub proto: Proto,
    /// Host address; `None` is every address.
    pub host_ip: Option<Ipv4Addr>,
    /// Host port.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
}

fn range(s: &str, spec: &str) -> Result<(u16, u16), PortError> {
    let bad = || PortError::Syntax(spec.to_string());
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = s.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok((a, b))
}

impl PortSpec {
    /// Parses docker's `-p` syntax.
    pub fn parse(spec: &str) -> Result<Self, PortError> {
        let bad = || PortError::Syntax(spec.to_string());
        let (rest, proto) = match spec.rsplit_once('/') {
            Some((r, "tcp")) => (r, Proto::Tcp),
            Some((r, "udp")) => (r, Proto::Udp),
            Some(_) => return Err(bad()),
            None => (spec, Proto::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, cont) = match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => (Some(*ip), Some(*h), *c),
            _ => return Err(bad()),
        };
        let host_ip = match ip {
            None | Some("") => None,
            Some(ip) => match ip.parse::<Ipv4Addr>().map_err(|_| bad())? {
                a if a.is_unspecified() => None,
                a => Some(a),
            },
        };
        let container_ports = range(cont, spec)?;
        let host_ports = match host {
            None | Some("") => None,
            Some(h) => Some(range(h, spec)?),
        };
        if let Some((a, b)) = host_ports {
            let clen = container_ports.1 - container_ports.0;
            // docker allows a host range with a single container port (pick one of the range); we take the first.
            if b - a != clen && clen != 0 {
                return Err(PortError::RangeMismatch(spec.to_string()));
            }
        }
        Ok(Self {
            host_ip,
            host_ports,
            container_ports,
            proto,
        })
    }

    /// Expands to one mapping per container port; `pick` chooses a free host port for random entries.
    pub fn expand<E>(
        &self,
        mut pick: impl FnMut(Proto) -> Result<u16, E>,
    ) -> Result<Vec<PortMapping>, E> {
        let mut out = Vec::new();
        for (i, cp) in (self.container_ports.0..=self.container_ports.1).enumerate() {
            let host_port = match self.host_ports {
                Some((a, _)) => a + i as u16,
                None => pick(self.proto)?,
            };
            out.push(PortMapping {
                proto: self.proto,
                host_ip: self.host_ip,
                host_port,
                container_port: cp,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        let p = PortSpec::parse("80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_ports, p.container_ports, p.proto),
            (None, None, (80, 80), Proto::Tcp)
        );
        let p = PortSpec::parse("8080:80/udp").unwrap();
        assert_eq!((p.host_ports, p.proto), (Some((8080, 8080)), Proto::Udp));
        let p = PortSpec::parse("127.0.0.1:8080:80").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        let p = PortSpec::parse("127.0.0.1::80").unwrap();
        assert_eq!((p.host_ip, p.host_ports), (Some(Ipv4Addr::LOCALHOST), None));
        let p = PortSpec::parse("0.0.0.0:8000-8002:80-82/tcp").unwrap();
        assert_eq!(p.host_ip, None);
        let m = p.expand(|_| Ok::<u16, ()>(1)).unwrap();
        assert_eq!(
            m.iter()
                .map(|m| (m.host_port, m.container_port))
                .collect::<Vec<_>>(),
            [(8000, 80), (8001, 81), (8002, 82)]
        );
        let mut n = 40000;
        let m = PortSpec::parse("80-81").unwrap().expand(|_| {
            n += 1;
            Ok::<u16, ()>(n)
        });
        assert_eq!(
            m.unwrap().iter().map(|m| m.host_port).collect::<Vec<_>>(),
            [40001, 40002]
        );
        for bad in [
            "",
            "x",
            "80/sctp",
            "1:2:3:4",
            "0",
            "90-80",
            "8000-8001:80-85",
            "300.1.1.1:80:80",
            "70000",
        ] {
            assert!(PortSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
