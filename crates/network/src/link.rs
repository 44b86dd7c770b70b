//! Kernel network objects: bridges, veth pairs, addresses, routes, sysctls.
//!
//! What a container attach does (veth pair, hairpin, address, default route, delete) goes through
//! [`crate::netlink`], so a `run` spawns no process for its network; the rare daemon-level work (creating a
//! bridge, listing host routes) still uses iproute2's `ip`, whose behaviour is well known. Everything is
//! synchronous (usable from the single-threaded monitor and, via `spawn_blocking`, from the daemon). Every function acts in the network namespace of the *calling thread*:
//! child processes inherit it, and `/proc/sys/net` resolves against it. [`in_netns`] runs a closure on a helper
//! thread that joined another namespace, which is how a container's side is configured without `nsenter`.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::netlink::{self, Netlink, NetlinkError};
use crate::subnet::Ipv4Net;

/// Errors from link and address operations.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// An `ip` invocation failed.
    #[error("ip {args}: {stderr}")]
    Command {
        /// The arguments given.
        args: String,
        /// What `ip` printed.
        stderr: String,
    },
    /// A tool could not be run or a file could not be accessed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Joining a network namespace failed.
    #[error("cannot enter network namespace {path}: {errno}")]
    Setns {
        /// The namespace file.
        path: PathBuf,
        /// The error from setns(2).
        errno: nix::Error,
    },
    /// Output of `ip -j` could not be parsed.
    #[error("unexpected output of ip {0}")]
    Parse(String),
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// A container's network namespace: a path like `/proc/<pid>/ns/net` or `/run/netns/<name>`, or an open fd.
#[derive(Clone, Debug)]
pub enum NetnsRef {
    /// A namespace file.
    Path(PathBuf),
    /// An fd open on a namespace file; it must stay open for the call.
    Fd(RawFd),
}

impl NetnsRef {
    /// A path naming the namespace that other processes (the `ip` children) can open too.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsRef::Path(p) => p.clone(),
            NetnsRef::Fd(fd) => PathBuf::from(format!("/proc/{}/fd/{fd}", std::process::id())),
        }
    }
}

/// Runs `ip` with `args` and returns stdout.
pub fn ip<S: AsRef<OsStr>>(args: &[S]) -> Result<String, LinkError> {
    let shown = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| LinkError::Io {
            what: "running ip (is iproute2 installed?)".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(LinkError::Command {
            args: shown,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a link named `name` exists in the current namespace.
pub fn link_exists(name: &str) -> bool {
    netlink::link_index(name).is_some()
}

/// Creates (or reuses) bridge `name` with `gateway/prefix` on it and brings it up.
pub fn ensure_bridge(
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    mtu: Option<u32>,
) -> Result<(), LinkError> {
    if !link_exists(name) {
        ip(&["link", "add", "name", name, "type", "bridge"])?;
    }
    if let Some(mtu) = mtu {
        ip(&["link", "set", "dev", name, "mtu", &mtu.to_string()])?;
    }
    let cidr = format!("{gateway}/{prefix}");
    let have = ip(&["-4", "-o", "addr", "show", "dev", name])?;
    if !have.split_whitespace().any(|w| w == cidr) {
        ip(&["addr", "add", &cidr, "dev", name])?;
    }
    ip(&["link", "set", "dev", name, "up"])?;
    Ok(())
}

/// Deletes a link; a missing link is not an error (teardown must be idempotent, and a veth vanishes by
/// itself when its peer's namespace dies).
pub fn delete_link(name: &str) -> Result<(), LinkError> {
    Ok(Netlink::open()?.delete_link(name)?)
}

/// Creates a veth pair: `host` stays here, attached to `bridge` with hairpin on, up; the peer is created
/// directly inside `netns` as `ifname` with `mac`, so the container-side name never exists (and never
/// collides) on the host. Netlink, one request for the pair: attach cost is what `run` pays per container.
pub fn create_veth(
    host: &str,
    bridge: &str,
    netns: &NetnsRef,
    ifname: &str,
    mac: &str,
    mtu: Option<u32>,
) -> Result<(), LinkError> {
    let master = netlink::link_index(bridge).ok_or_else(|| LinkError::Io {
        what: format!("bridge {bridge}"),
        source: io::Error::from(io::ErrorKind::NotFound),
    })?;
    let held;
    let fd = match netns {
        NetnsRef::Fd(fd) => *fd,
        NetnsRef::Path(p) => {
            held = File::open(p).map_err(|source| LinkError::Io {
                what: format!("open {}", p.display()),
                source,
            })?;
            held.as_raw_fd()
        }
    };
    let mut nl = Netlink::open()?;
    nl.create_veth(host, master, fd, ifname, mac, mtu)?;
    // hairpin lets a container reach its own published port through the host address.
    let rest = netlink::link_index(host)
        .ok_or_else(|| LinkError::Io {
            what: format!("veth {host}"),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
        .and_then(|i| Ok(nl.set_hairpin(i)?));
    if let Err(e) = rest {
        let _ = nl.delete_link(host);
        return Err(e);
    }
    Ok(())
}

/// Runs `f` on a helper thread that joined `netns`; commands it spawns and sockets it creates live there.
pub fn in_netns<T: Send>(netns: &NetnsRef, f: impl FnOnce() -> T + Send) -> Result<T, LinkError> {
    let path = netns.path();
    let file = File::open(&path).map_err(|source| LinkError::Io {
        what: format!("open {}", path.display()),
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // setns only changes this helper thread; the caller's namespace is untouched.
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|errno| {
                LinkError::Setns {
                    path: path.clone(),
                    errno,
                }
            })?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Inside the container's namespace: address `ifname`, bring it and `lo` up, add a default route via
/// `gateway` unless one exists (the first network a container joins provides its default route, like docker).
pub fn configure_container_side(
    netns: &NetnsRef,
    ifname: &str,
    addr: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<(), LinkError> {
    in_netns(netns, || -> Result<(), LinkError> {
        let missing = |n: &str| LinkError::Io {
            what: format!("link {n} in the container"),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        let mut nl = Netlink::open()?;
        let lo = netlink::link_index("lo").ok_or_else(|| missing("lo"))?;
        nl.set_up(lo)?;
        let idx = netlink::link_index(ifname).ok_or_else(|| missing(ifname))?;
        nl.add_addr(idx, addr, prefix)?;
        nl.set_up(idx)?;
        if let Some(gw) = gateway {
            nl.add_default_route(idx, gw)?;
        }
        Ok(())
    })?
}

/// The first `ethN` that does not exist in `netns` (the name of a new interface there).
pub fn free_ifname(netns: &NetnsRef) -> Result<String, LinkError> {
    in_netns(netns, || {
        (0..)
            .map(|i| format!("eth{i}"))
            .find(|c| !link_exists(c))
            .unwrap_or_default()
    })
}

/// Deletes `ifname` inside `netns` (its veth peer on the host goes with it). Missing is not an error.
pub fn delete_in_netns(netns: &NetnsRef, ifname: &str) -> Result<(), LinkError> {
    in_netns(netns, || delete_link(ifname))?
}

/// Every IPv4 prefix the host already routes or owns (all tables), so a new subnet can avoid them.
pub fn host_prefixes() -> Result<Vec<Ipv4Net>, LinkError> {
    let mut out = Vec::new();
    let routes = ip(&["-j", "-4", "route", "show", "table", "all"])?;
    let routes: serde_json::Value =
        serde_json::from_str(&routes).map_err(|_| LinkError::Parse("route".into()))?;
    for r in routes.as_array().into_iter().flatten() {
        let Some(dst) = r.get("dst").and_then(|d| d.as_str()) else {
            continue;
        };
        if dst == "default" {
            continue;
        }
        let net = if dst.contains('/') {
            dst.parse().ok()
        } else {
            dst.parse().ok().map(|a| Ipv4Net {
                addr: a,
                prefix: 32,
            })
        };
        out.extend(net.map(|n: Ipv4Net| n.network()));
    }
    let addrs = ip(&["-j", "-4", "addr", "show"])?;
    let addrs: serde_json::Value =
        serde_json::from_str(&addrs).map_err(|_| LinkError::Parse("addr".into()))?;
    for l in addrs.as_array().into_iter().flatten() {
        for a in l
            .get("addr_info")
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            let (Some(ip), Some(p)) = (
                a.get("local").and_then(|v| v.as_str()),
                a.get("prefixlen").and_then(|v| v.as_u64()),
            ) else {
                continue;
            };
            if let (Ok(addr), Ok(prefix)) = (ip.parse(), u8::try_from(p)) {
                out.push(Ipv4Net { addr, prefix }.network());
            }
        }
    }
    Ok(out)
}

/// Writes a sysctl given as a path under `/proc/sys` (`net/ipv4/ip_forward`); `net/` keys act in the calling
/// thread's network namespace. Slashes, not dots, so interface names with dots stay intact.
pub fn sysctl(key: &str, value: &str) -> Result<(), LinkError> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).map_err(|source| LinkError::Io {
        what: format!("write {path}"),
        source,
    })
}

/// Keeps an fd-based reference's file alive for the caller: opens `path` and returns it with its [`NetnsRef`].
pub fn open_netns(path: &Path) -> Result<(File, NetnsRef), LinkError> {
    let f = File::open(path).map_err(|source| LinkError::Io {
        what: format!("open {}", path.display()),
        source,
    })?;
    let fd = f.as_raw_fd();
    Ok((f, NetnsRef::Fd(fd)))
}
