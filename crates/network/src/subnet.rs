//! IPv4 subnets and the address-pool search that picks a bridge subnet no route on the host already covers.
//!
//! Only IPv4 is handled: the default bridge and user networks are IPv4 like Docker's defaults.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Errors from parsing subnets and pools.
#[derive(Debug, thiserror::Error)]
pub enum SubnetError {
    /// The text is not `a.b.c.d/len`.
    #[error("invalid subnet {0:?}: expected a.b.c.d/len with len 0-32")]
    Parse(String),
    /// A pool entry cannot be split into the requested size.
    #[error("invalid address pool {base}: size /{size} must be between /{} and /30", base.prefix)]
    Pool {
        /// The pool's base network.
        base: Ipv4Net,
        /// Requested prefix length of each subnet.
        size: u8,
    },
}

/// An IPv4 network: address and prefix length. The address is kept as written (so `10.0.0.1/24` can describe
/// a gateway with its prefix, like `--bip`); [`Ipv4Net::network`] gives the masked form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    /// The address as given.
    pub addr: Ipv4Addr,
    /// Prefix length, 0-32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// Builds a network, rejecting prefixes above 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, SubnetError> {
        if prefix > 32 {
            return Err(SubnetError::Parse(format!("{addr}/{prefix}")));
        }
        Ok(Self { addr, prefix })
    }

    /// The netmask as an integer.
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The network with host bits cleared.
    pub fn network(&self) -> Self {
        Self {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }

    /// First address (network address).
    pub fn first(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }

    /// Last address (broadcast address).
    pub fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.first()
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The `n`th address of the network (0 is the network address).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let ip = self.first().checked_add(n)?;
        (ip <= self.last()).then(|| Ipv4Addr::from(ip))
    }

    /// Whether `ip` is usable by a host: inside the network and neither the network nor the broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        self.contains(ip) && (self.prefix >= 31 || (v != self.first() && v != self.last()))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = SubnetError;
    fn from_str(s: &str) -> Result<Self, SubnetError> {
        let bad = || SubnetError::Parse(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Self::new(addr, prefix).map_err(|_| bad())
    }
}

impl serde::Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One `--default-address-pool base=...,size=...` entry: `base` is carved into subnets of prefix `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AddressPool {
    /// The range to carve.
    pub base: Ipv4Net,
    /// Prefix length of each subnet handed out.
    pub size: u8,
}

impl AddressPool {
    /// Validates that `base` can be split into `/size` subnets.
    pub fn new(base: Ipv4Net, size: u8) -> Result<Self, SubnetError> {
        if size < base.prefix || size > 30 {
            return Err(SubnetError::Pool { base, size });
        }
        Ok(Self {
            base: base.network(),
            size,
        })
    }

    /// Parses docker's `base=172.30.0.0/16,size=24` syntax.
    pub fn parse(s: &str) -> Result<Self, SubnetError> {
        let mut base = None;
        let mut size = None;
        for kv in s.split(',') {
            match kv.split_once('=') {
                Some(("base", v)) => base = Some(v.parse::<Ipv4Net>()?),
                Some(("size", v)) => {
                    size = Some(
                        v.parse::<u8>()
                            .map_err(|_| SubnetError::Parse(s.to_string()))?,
                    )
                }
                _ => return Err(SubnetError::Parse(s.to_string())),
            }
        }
        let base = base.ok_or_else(|| SubnetError::Parse(s.to_string()))?;
        Self::new(base, size.unwrap_or(base.prefix))
    }

    /// Iterates the subnets of this pool in order.
    pub fn subnets(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        let step = 1u64 << (32 - u32::from(self.size));
        let count = 1u64 << (u32::from(self.size) - u32::from(self.base.prefix));
        let first = u64::from(self.base.first());
        (0..count).map(move |i| Ipv4Net {
            addr: Ipv4Addr::from((first + i * step) as u32),
            prefix: self.size,
        })
    }
}

/// Docker's default address pools: 172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/16 in /20 steps.
pub fn default_pools() -> Vec<AddressPool> {
    vec![
        AddressPool {
            base: Ipv4Net {
                addr: Ipv4Addr::new(172, 17, 0, 0),
                prefix: 16,
            },
            size: 16,
        },
        AddressPool {
            base: Ipv4Net {
                addr: Ipv4Addr::new(172, 18, 0, 0),
                prefix: 15,
            },
            size: 16,
        },
        AddressPool {
            base: Ipv4Net {
                addr: Ipv4Addr::new(172, 20, 0, 0),
                prefix: 14,
            },
            size: 16,
        },
        AddressPool {
            base: Ipv4Net {
                addr: Ipv4Addr::new(172, 24, 0, 0),
                prefix: 14,
            },
            size: 16,
        },
        AddressPool {
            base: Ipv4Net {
                addr: Ipv4Addr::new(172, 28, 0, 0),
                prefix: 14,
            },
            size: 16,
        },
        AddressPool {
            base: Ipv4Net {
                addr: Ipv4Addr::new(192, 168, 0, 0),
                prefix: 16,
            },
            size: 20,
        },
    ]
}

/// The first subnet from `pools` that overlaps none of `taken` (host routes, host addresses, other networks).
pub fn pick_subnet(pools: &[AddressPool], taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    pools
        .iter()
        .flat_map(|p| p.subnets())
        .find(|s| !taken.iter().any(|t| t.overlaps(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_math() {
        let n: Ipv4Net = "10.1.2.3/24".parse().unwrap();
        assert_eq!(n.network().to_string(), "10.1.2.0/24");
        assert!(n.contains("10.1.2.200".parse().unwrap()));
        assert!(!n.contains("10.1.3.1".parse().unwrap()));
        assert!(n.is_host("10.1.2.1".parse().unwrap()));
        assert!(!n.is_host("10.1.2.255".parse().unwrap()));
        assert!(!n.is_host("10.1.2.0".parse().unwrap()));
        assert_eq!(n.nth(1), Some("10.1.2.1".parse().unwrap()));
        assert_eq!(n.nth(256), None);
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
        let big: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        assert!(big.overlaps(&n) && n.overlaps(&big));
        assert!(!n.overlaps(&"10.1.3.0/24".parse().unwrap()));
    }

    #[test]
    fn pool_skips_taken() {
        let pools = default_pools();
        assert_eq!(
            pick_subnet(&pools, &[]).unwrap().to_string(),
            "172.17.0.0/16"
        );
        let taken = [
            "172.17.5.0/24".parse().unwrap(),
            "172.18.0.0/16".parse().unwrap(),
        ];
        assert_eq!(
            pick_subnet(&pools, &taken).unwrap().to_string(),
            "172.19.0.0/16"
        );
        let all: Vec<Ipv4Net> = vec![
            "172.16.0.0/12".parse().unwrap(),
            "192.168.0.0/19".parse().unwrap(),
        ];
        assert_eq!(
            pick_subnet(&pools, &all).unwrap().to_string(),
            "192.168.32.0/20"
        );
        let p = AddressPool::parse("base=10.213.0.0/16,size=24").unwrap();
        assert_eq!(p.subnets().count(), 256);
        assert!(AddressPool::parse("base=10.0.0.0/16,size=8").is_err());
        assert!(AddressPool::parse("bogus").is_err());
    }
}
