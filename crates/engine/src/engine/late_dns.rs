//! The embedded DNS (127.0.0.11) for a running container that joined its first user network after it started
//! (`network connect` from the default bridge): its monitor only serves DNS for containers that start on a
//! user network, so berthd binds the socket in the container's namespace, answers from a thread, and rewrites
//! the container's /etc/resolv.conf in place (same inode: it is bind-mounted) to point at it.
//!
//! Whoever already serves 127.0.0.11:53 there (the monitor, or this daemon earlier) keeps it: the bind fails
//! with EADDRINUSE and nothing more is done. After a berthd restart, [`Engine::late_dns_recover`] serves again
//! for the running containers on user networks that nobody serves. The thread ends when the container's
//! network namespace is no longer the one it bound in (checked every second), so it never keeps a dead
//! container's namespace alive for long.

use std::net::UdpSocket;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use berth_network::NetworkManager;

use super::Engine;
use crate::record::Container;

fn netns_inode(pid: i32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

impl Engine {
    /// Makes sure a running container on a user network has the embedded DNS and a resolv.conf using it.
    /// Errors are logged, not returned: the connect itself succeeded, and names are a convenience on top.
    pub(super) fn late_dns_ensure(&self, c: &Container) {
        let Some(n) = &self.net else { return };
        if !c.state.running || c.state.pid <= 0 || !self.net_uses_embedded_dns(c) {
            return;
        }
        let pid = c.state.pid;
        let Some(ino) = netns_inode(pid) else { return };
        let netns = berth_network::NetnsRef::Path(format!("/proc/{pid}/ns/net").into());
        let ip = berth_network::dns::EMBEDDED_DNS_IP;
        let sock = match berth_network::link::in_netns(&netns, || UdpSocket::bind((ip, 53))) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::AddrInUse => {
                // Already served (by the monitor or an earlier call); resolv.conf may still be the bridge's.
                self.late_dns_resolv(c);
                return;
            }
            Ok(Err(e)) => {
                log::warn!("embedded DNS for {}: bind {ip}:53: {e}", c.id);
                return;
            }
            Err(e) => {
                log::warn!("embedded DNS for {}: {e}", c.id);
                return;
            }
        };
        let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
        let hc = c.host_config.clone();
        let upstreams = berth_network::upstream_servers(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            &super::network::dns_settings(&hc),
        );
        let (mgr, id): (NetworkManager, String) = (n.mgr.clone(), c.id.clone());
        let spawned = std::thread::Builder::new()
            .name("berth-late-dns".into())
            .spawn(move || serve(sock, mgr, id, pid, ino, upstreams));
        if let Err(e) = spawned {
            log::warn!("embedded DNS for {}: thread: {e}", c.id);
            return;
        }
        self.late_dns_resolv(c);
    }

    /// Rewrites resolv.conf in place for the embedded DNS (a no-op when it already says so).
    fn late_dns_resolv(&self, c: &Container) {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let want =
            berth_network::resolv_conf(&host, true, &super::network::dns_settings(&c.host_config));
        if std::fs::read_to_string(&c.resolv_conf_path).is_ok_and(|have| have == want) {
            return;
        }
        if let Err(e) = std::fs::write(&c.resolv_conf_path, want) {
            log::warn!("resolv.conf of {}: {e}", c.id);
        }
    }

    /// At daemon start: the embedded DNS for running containers on user networks that nobody serves (those
    /// connected after start, whose server was a thread of the previous berthd).
    pub(super) fn late_dns_recover(&self) {
        for c in self.all() {
            if c.state.running && super::container_net::joined_name(&c.host_config).is_none() {
                self.late_dns_ensure(&c);
            }
        }
    }
}

/// Answers queries until the container's namespace is gone.
fn serve(
    sock: UdpSocket,
    mgr: NetworkManager,
    id: String,
    pid: i32,
    ino: u64,
    upstreams: Vec<std::net::IpAddr>,
) {
    let mut buf = [0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                if netns_inode(pid) != Some(ino) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        let nets: Vec<String> = mgr
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|x| !x.default && x.endpoints.contains_key(&id))
            .map(|x| x.id)
            .collect();
        let table = mgr.name_table().unwrap_or_default();
        let reply =
            match berth_network::dns::answer(&table, &nets, &buf[..n], !upstreams.is_empty()) {
                Some(berth_network::dns::Answer::Reply(r)) => Some(r),
                Some(berth_network::dns::Answer::Forward) => {
                    crate::net::forward(&buf[..n], &upstreams)
                }
                None => None,
            };
        if let Some(r) = reply {
            let _ = sock.send_to(&r, peer);
        }
    }
}
