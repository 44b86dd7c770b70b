//! The embedded DNS server: container names and aliases resolve to their addresses on the networks the asking
//! container shares with them; other names are forwarded to the upstream (host) resolvers.
//!
//! Design (like docker's): every container on a user network gets a resolver at `127.0.0.11:53/udp` inside its
//! own network namespace. [`DnsServer::serve_netns`] creates that UDP socket from a helper thread that joined the
//! container's namespace (a socket belongs to the namespace it was created in, forever), then answers it from a
//! plain thread in the daemon's namespace. That has three consequences: no per-network listener address to
//! reserve, a container only sees names of networks it is attached to (the socket knows whose it is), and
//! forwarding happens from the host namespace, so the host's loopback resolvers (systemd-resolved) still work.
//!
//! The packet codec is a minimal hand-written DNS (RFC 1035): one question, A answers, NXDOMAIN, SERVFAIL.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::link::{in_netns, LinkError, NetnsRef};

/// The address the embedded resolver listens on inside each container.
pub const EMBEDDED_DNS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Record type A.
pub const TYPE_A: u16 = 1;
/// Record type AAAA.
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// TTL of answers from the name table; short because containers come and go.
const TTL: u32 = 600;

/// Errors from the DNS codec and server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The packet is not a well-formed single-question query.
    #[error("malformed DNS packet: {0}")]
    Malformed(&'static str),
    /// Socket setup failed.
    #[error("embedded DNS socket: {0}")]
    Io(#[from] io::Error),
    /// Entering the container's namespace failed.
    #[error(transparent)]
    Netns(#[from] LinkError),
}

/// A parsed query: header id, flags and its single question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Transaction id.
    pub id: u16,
    /// Header flags as received.
    pub flags: u16,
    /// Queried name, lowercase, without the trailing dot.
    pub name: String,
    /// Query type.
    pub qtype: u16,
    /// Query class.
    pub qclass: u16,
    /// The question section bytes, echoed in the reply.
    question: Vec<u8>,
}

fn read_name(p: &[u8], mut pos: usize) -> Result<(String, usize), DnsError> {
    let mut labels = Vec::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *p
            .get(pos)
            .ok_or(DnsError::Malformed("name runs past the packet"))? as usize;
        if len & 0xC0 == 0xC0 {
            let lo = *p
                .get(pos + 1)
                .ok_or(DnsError::Malformed("truncated pointer"))? as usize;
            end.get_or_insert(pos + 2);
            jumps += 1;
            if jumps > 16 {
                return Err(DnsError::Malformed("pointer loop"));
            }
            pos = ((len & 0x3F) << 8) | lo;
            continue;
        }
        if len & 0xC0 != 0 {
            return Err(DnsError::Malformed("bad label"));
        }
        pos += 1;
        if len == 0 {
            break;
        }
        let l = p
            .get(pos..pos + len)
            .ok_or(DnsError::Malformed("label runs past the packet"))?;
        labels.push(String::from_utf8_lossy(l).to_ascii_lowercase());
        pos += len;
        if labels.len() > 127 {
            return Err(DnsError::Malformed("name too long"));
        }
    }
    Ok((labels.join("."), end.unwrap_or(pos)))
}

fn u16_at(p: &[u8], pos: usize) -> Result<u16, DnsError> {
    p.get(pos..pos + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Malformed("truncated"))
}

impl Query {
    /// Parses a query packet; responses and multi-question packets are rejected.
    pub fn parse(p: &[u8]) -> Result<Self, DnsError> {
        if p.len() < 12 {
            return Err(DnsError::Malformed("shorter than a header"));
        }
        let id = u16_at(p, 0)?;
        let flags = u16_at(p, 2)?;
        if flags & 0x8000 != 0 {
            return Err(DnsError::Malformed("not a query"));
        }
        if u16_at(p, 4)? != 1 {
            return Err(DnsError::Malformed("expected exactly one question"));
        }
        let (name, pos) = read_name(p, 12)?;
        let qtype = u16_at(p, pos)?;
        let qclass = u16_at(p, pos + 2)?;
        Ok(Self {
            id,
            flags,
            name,
            qtype,
            qclass,
            question: p[12..pos + 4].to_vec(),
        })
    }

    /// Encodes a query for `name` (used by tests and clients).
    pub fn encode(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut p = Vec::with_capacity(32 + name.len());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
        p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        for l in name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            p.push(l.len().min(63) as u8);
            p.extend_from_slice(&l.as_bytes()[..l.len().min(63)]);
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&CLASS_IN.to_be_bytes());
        p
    }

    /// Encodes the reply with response code `rcode` and A records for `ips`.
    pub fn reply(&self, rcode: u8, ips: &[Ipv4Addr]) -> Vec<u8> {
        let mut p = Vec::with_capacity(12 + self.question.len() + 16 * ips.len());
        p.extend_from_slice(&self.id.to_be_bytes());
        // QR, opcode and RD copied, AA (we are authoritative for container names), RA.
        let flags = 0x8000 | (self.flags & 0x7900) | 0x0400 | 0x0080 | u16::from(rcode & 0x0F);
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(&(ips.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&self.question);
        for ip in ips {
            p.extend_from_slice(&[0xC0, 0x0C]); // pointer to the question name
            p.extend_from_slice(&TYPE_A.to_be_bytes());
            p.extend_from_slice(&CLASS_IN.to_be_bytes());
            p.extend_from_slice(&TTL.to_be_bytes());
            p.extend_from_slice(&4u16.to_be_bytes());
            p.extend_from_slice(&ip.octets());
        }
        p
    }
}

/// A parsed reply: response code and the A records it carries (for tests and the forwarder's checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Transaction id.
    pub id: u16,
    /// Response code (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN).
    pub rcode: u8,
    /// A records in the answer section.
    pub addrs: Vec<Ipv4Addr>,
}

impl Reply {
    /// Parses a reply packet.
    pub fn parse(p: &[u8]) -> Result<Self, DnsError> {
        if p.len() < 12 || u16_at(p, 2)? & 0x8000 == 0 {
            return Err(DnsError::Malformed("not a response"));
        }
        let (qd, an) = (u16_at(p, 4)?, u16_at(p, 6)?);
        let mut pos = 12;
        for _ in 0..qd {
            pos = read_name(p, pos)?.1 + 4;
        }
        let mut addrs = Vec::new();
        for _ in 0..an {
            pos = read_name(p, pos)?.1;
            let (ty, len) = (u16_at(p, pos)?, usize::from(u16_at(p, pos + 8)?));
            let data = p
                .get(pos + 10..pos + 10 + len)
                .ok_or(DnsError::Malformed("truncated answer"))?;
            if ty == TYPE_A && len == 4 {
                addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
            }
            pos += 10 + len;
        }
        Ok(Self {
            id: u16_at(p, 0)?,
            rcode: (u16_at(p, 2)? & 0x0F) as u8,
            addrs,
        })
    }
}

/// Names known on each network: `network id -> name -> addresses`. Names are case-insensitive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameTable {
    nets: BTreeMap<String, BTreeMap<String, Vec<Ipv4Addr>>>,
}

impl NameTable {
    /// Registers `name` for `ip` on `network`.
    pub fn add(&mut self, network: &str, name: &str, ip: Ipv4Addr) {
        let v = self
            .nets
            .entry(network.to_string())
            .or_default()
            .entry(name.to_ascii_lowercase())
            .or_default();
        if !v.contains(&ip) {
            v.push(ip);
        }
    }

    /// Removes every name pointing at `ip` on `network`.
    pub fn remove_ip(&mut self, network: &str, ip: Ipv4Addr) {
        if let Some(n) = self.nets.get_mut(network) {
            n.values_mut().for_each(|v| v.retain(|a| *a != ip));
            n.retain(|_, v| !v.is_empty());
        }
    }

    /// Addresses of `name` on any of `networks` (the asker's networks), in network order.
    pub fn lookup(&self, networks: &[String], name: &str) -> Vec<Ipv4Addr> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut out = Vec::new();
        for n in networks {
            for ip in self
                .nets
                .get(n)
                .and_then(|m| m.get(&name))
                .into_iter()
                .flatten()
            {
                if !out.contains(ip) {
                    out.push(*ip);
                }
            }
        }
        out
    }
}

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send this reply.
    Reply(Vec<u8>),
    /// Not a container name: forward to the upstream resolvers.
    Forward,
}

/// Answers `packet` from `table` for a container on `networks`. Known names get their A records (an AAAA or
/// other query for a known name gets an empty NOERROR, so resolvers fall back to A); unknown names are
/// forwarded if `forward`, else NXDOMAIN. Unparsable packets get no answer (`None`).
pub fn answer(
    table: &NameTable,
    networks: &[String],
    packet: &[u8],
    forward: bool,
) -> Option<Answer> {
    let q = Query::parse(packet).ok()?;
    let ips = table.lookup(networks, &q.name);
    if !ips.is_empty() {
        let ips = if q.qtype == TYPE_A && q.qclass == CLASS_IN {
            ips
        } else {
            Vec::new()
        };
        return Some(Answer::Reply(q.reply(0, &ips)));
    }
    Some(if forward {
        Answer::Forward
    } else {
        Answer::Reply(q.reply(3, &[]))
    })
}

/// Sends `packet` to each upstream in turn and returns the first reply; SERVFAIL for the asker if none answers.
fn forward(packet: &[u8], upstreams: &[IpAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        if s.send_to(packet, (*up, 53)).is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            if n >= 2 && buf[..2] == packet[..2] {
                return Some(buf[..n].to_vec());
            }
        }
    }
    Query::parse(packet).ok().map(|q| q.reply(2, &[]))
}

/// The embedded DNS server: a shared name table and upstream list, and one listener per container.
#[derive(Clone, Debug, Default)]
pub struct DnsServer {
    table: Arc<RwLock<NameTable>>,
    upstreams: Arc<RwLock<Vec<IpAddr>>>,
}

/// A running per-container listener; dropping it (or [`DnsHandle::stop`]) stops it.
#[derive(Debug)]
pub struct DnsHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsHandle {
    /// Stops the listener and waits for its thread (at most one poll interval).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DnsHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

impl DnsServer {
    /// A server with `upstreams` for names that are not containers.
    pub fn new(upstreams: Vec<IpAddr>) -> Self {
        Self {
            table: Arc::default(),
            upstreams: Arc::new(RwLock::new(upstreams)),
        }
    }

    /// Replaces the name table (e.g. with [`crate::NetworkManager::name_table`] after attach/detach).
    pub fn set_table(&self, table: NameTable) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
    }

    /// Replaces the upstream resolvers.
    pub fn set_upstreams(&self, upstreams: Vec<IpAddr>) {
        *self.upstreams.write().unwrap_or_else(|e| e.into_inner()) = upstreams;
    }

    /// Starts answering at 127.0.0.11:53/udp inside `netns` for a container attached to `networks` (ids).
    /// The namespace's `lo` must be up (attach does that).
    pub fn serve_netns(
        &self,
        netns: &NetnsRef,
        networks: Vec<String>,
    ) -> Result<DnsHandle, DnsError> {
        let sock = in_netns(netns, || UdpSocket::bind((EMBEDDED_DNS_IP, 53)))??;
        // Polling lets the handle stop the thread without signals; the interval only bounds stop latency.
        sock.set_read_timeout(Some(Duration::from_millis(250)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (st, me) = (stop.clone(), self.clone());
        let thread = std::thread::Builder::new()
            .name("berth-dns".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while !st.load(Ordering::SeqCst) {
                    let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    let table = me.table.read().unwrap_or_else(|e| e.into_inner()).clone();
                    let upstreams = me
                        .upstreams
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    let reply = match answer(&table, &networks, &buf[..n], !upstreams.is_empty()) {
                        Some(Answer::Reply(r)) => Some(r),
                        Some(Answer::Forward) => forward(&buf[..n], &upstreams),
                        None => None,
                    };
                    if let Some(r) = reply {
                        let _ = sock.send_to(&r, peer);
                    }
                }
            })?;
        Ok(DnsHandle {
            stop,
            thread: Some(thread),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> NameTable {
        let mut t = NameTable::default();
        t.add("net1", "web", "10.1.0.2".parse().unwrap());
        t.add("net1", "www", "10.1.0.2".parse().unwrap());
        t.add("net2", "db", "10.2.0.2".parse().unwrap());
        t
    }

    fn ask(t: &NameTable, nets: &[&str], name: &str, qtype: u16) -> Reply {
        let nets: Vec<String> = nets.iter().map(|s| s.to_string()).collect();
        let q = Query::encode(0xBEEF, name, qtype);
        match answer(t, &nets, &q, false).unwrap() {
            Answer::Reply(r) => Reply::parse(&r).unwrap(),
            Answer::Forward => panic!("forward"),
        }
    }

    #[test]
    fn answers_names_and_aliases() {
        let t = table();
        let r = ask(&t, &["net1"], "web", TYPE_A);
        assert_eq!(
            (r.id, r.rcode, r.addrs.clone()),
            (0xBEEF, 0, vec!["10.1.0.2".parse().unwrap()])
        );
        assert_eq!(
            ask(&t, &["net1"], "WWW.", TYPE_A).addrs,
            r.addrs,
            "alias, case-insensitive, trailing dot"
        );
        let r = ask(&t, &["net1"], "web", TYPE_AAAA);
        assert_eq!((r.rcode, r.addrs.len()), (0, 0));
    }

    #[test]
    fn unknown_or_other_network_is_nxdomain() {
        let t = table();
        assert_eq!(ask(&t, &["net1"], "nothere", TYPE_A).rcode, 3);
        assert_eq!(
            ask(&t, &["net1"], "db", TYPE_A).rcode,
            3,
            "db is on net2 only"
        );
        assert_eq!(
            ask(&t, &["net1", "net2"], "db", TYPE_A).addrs,
            vec!["10.2.0.2".parse::<Ipv4Addr>().unwrap()]
        );
        let nets = vec!["net1".to_string()];
        assert_eq!(
            answer(&t, &nets, &Query::encode(1, "example.com", TYPE_A), true),
            Some(Answer::Forward)
        );
    }

    #[test]
    fn remove_and_malformed() {
        let mut t = table();
        t.remove_ip("net1", "10.1.0.2".parse().unwrap());
        assert!(t.lookup(&["net1".into()], "web").is_empty());
        assert!(answer(&t, &[], &[0u8; 5], false).is_none());
        let mut resp = Query::encode(1, "x", TYPE_A);
        resp[2] |= 0x80;
        assert!(Query::parse(&resp).is_err());
        // compression pointer loop
        let mut bad = Query::encode(1, "", TYPE_A);
        bad[12] = 0xC0;
        bad.insert(13, 12);
        assert!(Query::parse(&bad).is_err());
    }
}
