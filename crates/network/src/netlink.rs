//! A small rtnetlink client for the few link, address and route changes a container attach needs, so attaching
//! runs no `ip` processes (each costs a fork+exec and several milliseconds on a loaded host).
//!
//! Hand-rolled rather than a crate: the messages are few and fixed (veth pair with its peer created directly in
//! another namespace, bridge hairpin, address, default route, delete), the crate stays synchronous (the monitor
//! has no async runtime), and the whole client is one socket and a message builder. Like everything in
//! [`crate::link`], a socket acts in the network namespace of the thread that opened it.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

/// Errors from netlink requests.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened or used.
    #[error("netlink socket: {0}")]
    Socket(Errno),
    /// The kernel refused a request.
    #[error("netlink {what}: {errno}")]
    Refused {
        /// What was asked.
        what: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// A reply could not be understood.
    #[error("netlink {0}: malformed reply")]
    Malformed(String),
}

impl NetlinkError {
    /// The kernel's errno, if the kernel refused.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NetlinkError::Refused { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

// Values from <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/veth.h>, <linux/if_addr.h>;
// spelled out here because they are kernel ABI and not all of them are in every libc crate version.
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_PROTINFO: u16 = 12;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFLA_BRPORT_MODE: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const IFF_UP: u32 = 1;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_BRIDGE: u8 = 7;

/// One request being built: header, fixed part, attributes (with nesting).
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(ty: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq, set by the socket
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        Self {
            buf,
            nests: Vec::new(),
        }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// `struct ifinfomsg`.
    fn ifinfo(&mut self, family: u8, index: i32, flags: u32, change: u32) {
        self.buf.extend_from_slice(&[family, 0, 0, 0]); // family, pad, type (u16)
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        self.pad();
        let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v);
    }

    fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    fn begin(&mut self, ty: u16) {
        self.pad();
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    fn end(&mut self) {
        self.pad();
        if let Some(start) = self.nests.pop() {
            let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
fn parse_mac(mac: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = mac.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The index of link `name` in the calling thread's namespace, if it exists.
pub fn link_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; if_nametoindex only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// A NETLINK_ROUTE socket in the namespace of the thread that opened it.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Opens a socket (in the calling thread's network namespace).
    pub fn open() -> Result<Self, NetlinkError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(NetlinkError::Socket)?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(NetlinkError::Socket)?;
        Ok(Self { fd, seq: 1 })
    }

    /// Sends `m` and waits for the kernel's acknowledgement.
    fn request(&mut self, mut m: Msg, what: impl Fn() -> String) -> Result<(), NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let len = u32::try_from(m.buf.len()).unwrap_or(u32::MAX);
        m.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        m.buf[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        let fd: RawFd = self.fd.as_raw_fd();
        send(fd, &m.buf, MsgFlags::empty()).map_err(NetlinkError::Socket)?;
        let mut buf = vec![0u8; 16384];
        loop {
            let n = match recv(fd, &mut buf, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                r => r.map_err(NetlinkError::Socket)?,
            };
            let mut off = 0;
            while off + 16 <= n {
                let h = &buf[off..];
                let mlen = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
                let ty = u16::from_ne_bytes([h[4], h[5]]);
                let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
                if mlen < 16 || off + mlen > n {
                    return Err(NetlinkError::Malformed(what()));
                }
                if ty == NLMSG_ERROR && seq == self.seq {
                    if mlen < 20 {
                        return Err(NetlinkError::Malformed(what()));
                    }
                    let code = i32::from_ne_bytes([h[16], h[17], h[18], h[19]]);
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(NetlinkError::Refused {
                            what: what(),
                            errno: Errno::from_raw(-code),
                        })
                    };
                }
                off += (mlen + 3) & !3;
            }
        }
    }

    /// Creates a veth pair: `host` here, enslaved to bridge `master` and up; its peer `peer` (with `mac`, down)
    /// created directly in the namespace open on `netns_fd`. One message, so no half pair is ever visible.
    pub fn create_veth(
        &mut self,
        host: &str,
        master: u32,
        netns_fd: RawFd,
        peer: &str,
        mac: &str,
        mtu: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let what = || format!("create veth {host} (peer {peer})");
        let mac = parse_mac(mac).ok_or_else(|| NetlinkError::Malformed(format!("mac {mac}")))?;
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(AF_UNSPEC, 0, IFF_UP, IFF_UP);
        m.attr_str(IFLA_IFNAME, host);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.attr_u32(IFLA_MASTER, master);
        m.begin(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        m.begin(IFLA_INFO_DATA);
        m.begin(VETH_INFO_PEER);
        // Not up here: the kernel configures the peer before the two ends are linked (ENOTCONN).
        m.ifinfo(AF_UNSPEC, 0, 0, 0);
        m.attr_str(IFLA_IFNAME, peer);
        m.attr(IFLA_ADDRESS, &mac);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        let fd = u32::try_from(netns_fd).map_err(|_| NetlinkError::Socket(Errno::EBADF))?;
        m.attr_u32(IFLA_NET_NS_FD, fd);
        m.end();
        m.end();
        m.end();
        self.request(m, what)
    }

    /// Turns hairpin mode on for bridge port `index` (`bridge link set dev X hairpin on`).
    pub fn set_hairpin(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_SETLINK, 0);
        m.ifinfo(AF_BRIDGE, index as i32, 0, 0);
        m.begin(IFLA_PROTINFO);
        m.attr(IFLA_BRPORT_MODE, &[1]);
        m.end();
        self.request(m, || format!("hairpin on link {index}"))
    }

    /// Brings link `index` up.
    pub fn set_up(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_SETLINK, 0);
        m.ifinfo(AF_UNSPEC, index as i32, IFF_UP, IFF_UP);
        self.request(m, || format!("set link {index} up"))
    }

    /// Sets link `index`'s hardware address.
    pub fn set_mac(&mut self, index: u32, mac: &str) -> Result<(), NetlinkError> {
        let bytes = parse_mac(mac).ok_or_else(|| NetlinkError::Malformed(format!("mac {mac}")))?;
        let mut m = Msg::new(RTM_SETLINK, 0);
        m.ifinfo(AF_UNSPEC, index as i32, 0, 0);
        m.attr(IFLA_ADDRESS, &bytes);
        self.request(m, || format!("set link {index} address {mac}"))
    }

    /// Adds `addr/prefix` to link `index`.
    pub fn add_addr(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        m.buf
            .extend_from_slice(&[AF_INET, prefix, 0, RT_SCOPE_UNIVERSE]);
        m.buf.extend_from_slice(&index.to_ne_bytes());
        m.attr(IFA_LOCAL, &addr.octets());
        m.attr(IFA_ADDRESS, &addr.octets());
        self.request(m, || format!("add address {addr}/{prefix} to link {index}"))
    }

    /// Adds a default route via `gateway` out of link `index`. Returns false when a default route already
    /// exists (the first network a container joins keeps providing it, like docker).
    pub fn add_default_route(
        &mut self,
        index: u32,
        gateway: Ipv4Addr,
    ) -> Result<bool, NetlinkError> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32).
        m.buf.extend_from_slice(&[
            AF_INET,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ]);
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.attr(RTA_GATEWAY, &gateway.octets());
        m.attr_u32(RTA_OIF, index);
        match self.request(m, || format!("add default route via {gateway}")) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(Errno::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes link `name`; a missing link is not an error.
    pub fn delete_link(&mut self, name: &str) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_DELLINK, 0);
        m.ifinfo(AF_UNSPEC, 0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        match self.request(m, || format!("delete link {name}")) {
            Err(e) if matches!(e.errno(), Some(Errno::ENODEV | Errno::ENOENT)) => Ok(()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing() {
        assert_eq!(parse_mac("02:42:0a:00:00:02"), Some([2, 0x42, 10, 0, 0, 2]));
        assert_eq!(parse_mac("02:42:0a:00:00"), None);
        assert_eq!(parse_mac("02:42:0a:00:00:02:03"), None);
        assert_eq!(parse_mac("zz:42:0a:00:00:02"), None);
    }

    #[test]
    fn nested_attribute_lengths() {
        let mut m = Msg::new(RTM_NEWLINK, 0);
        m.ifinfo(AF_UNSPEC, 0, 0, 0);
        m.begin(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        m.end();
        // header 16 + ifinfomsg 16 + nest header 4 + ("veth\0" attr: 4 + 5, padded to 12)
        assert_eq!(m.buf.len(), 16 + 16 + 4 + 12);
        assert_eq!(u16::from_ne_bytes([m.buf[32], m.buf[33]]), 16);
        assert_eq!(
            u16::from_ne_bytes([m.buf[34], m.buf[35]]),
            IFLA_LINKINFO | NLA_F_NESTED
        );
    }
}
