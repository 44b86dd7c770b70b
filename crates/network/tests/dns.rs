//! The embedded DNS server answering real UDP queries at 127.0.0.11 inside a container's namespace.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_network::dns::{DnsServer, Query, Reply, TYPE_A};
use berth_network::link::in_netns;
use berth_network::{AttachRequest, NetnsRef, NetworkManager, NetworkSpec, BRIDGE_NAME_OPTION};
use common::*;

/// Sends one A query to 127.0.0.11:53 from inside `netns`.
fn query(netns: &NetnsRef, name: &str) -> Reply {
    in_netns(netns, || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.send_to(&Query::encode(0x1234, name, TYPE_A), "127.0.0.11:53")
            .unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = s.recv_from(&mut buf).expect("no DNS reply");
        Reply::parse(&buf[..n]).unwrap()
    })
    .unwrap()
}

/// A stand-in upstream resolver on the host's 127.0.0.1:53: `example.com` is 192.0.2.99, all else NXDOMAIN.
/// It stops once `stop` is set (polling only bounds how long the thread outlives the test).
fn fake_upstream(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let s = UdpSocket::bind("127.0.0.1:53").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::SeqCst) {
            let Ok((n, peer)) = s.recv_from(&mut buf) else {
                continue;
            };
            let q = Query::parse(&buf[..n]).unwrap();
            let r = if q.name == "example.com" {
                q.reply(0, &[Ipv4Addr::new(192, 0, 2, 99)])
            } else {
                q.reply(3, &[])
            };
            s.send_to(&r, peer).unwrap();
        }
    })
}

#[test]
fn embedded_dns_answers_inside_the_container() {
    if skip("embedded_dns_answers_inside_the_container") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config('d', 7);
    let table = cfg.nft_table.clone();
    let t = tag('d');
    let (brd, bre) = (format!("bt{t}D"), format!("bt{t}E"));
    in_private_netns(|| {
        let mgr = NetworkManager::open(dir.path(), cfg.clone()).unwrap();
        let veths = {
            let _guard = Cleanup(&mgr);
            let mk = |name: &str, br: &str, subnet: &str| {
                mgr.create_network(&NetworkSpec {
                    name: name.into(),
                    subnet: Some(subnet.parse().unwrap()),
                    options: BTreeMap::from([(BRIDGE_NAME_OPTION.to_string(), br.to_string())]),
                    ..Default::default()
                })
                .unwrap()
            };
            let d = mk("netd", &brd, "10.213.8.0/24");
            let e = mk("nete", &bre, "10.213.9.0/24");
            let web = FakeContainer::start("web");
            let db = FakeContainer::start("db");
            let other = FakeContainer::start("other");
            let att = |net: &str, c: &FakeContainer, aliases: &[&str]| {
                mgr.attach(&AttachRequest {
                    network: net.into(),
                    container_id: c.id.clone(),
                    netns: c.netns(),
                    aliases: aliases.iter().map(|s| s.to_string()).collect(),
                    requested_ip: None,
                    mac: None,
                    ports: vec![],
                })
                .unwrap()
            };
            let ew = att("netd", &web, &["web", "www"]);
            let ed = att("netd", &db, &["db"]);
            let eo = att("nete", &other, &["other"]);

            let stop = Arc::new(AtomicBool::new(false));
            let upstream = fake_upstream(stop.clone());
            let server = DnsServer::new(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
            server.set_table(mgr.name_table().unwrap());
            let handle = server
                .serve_netns(&web.netns(), vec![d.id.clone()])
                .unwrap();

            let r = query(&web.netns(), "db");
            assert_eq!((r.id, r.rcode, r.addrs.clone()), (0x1234, 0, vec![ed.ip]));
            assert_eq!(query(&web.netns(), "WWW.").addrs, vec![ew.ip], "alias");
            assert_eq!(
                query(&web.netns(), "other").rcode,
                3,
                "other network's container is not visible"
            );
            let r = query(&web.netns(), "example.com");
            assert_eq!(
                (r.rcode, r.addrs.clone()),
                (0, vec![Ipv4Addr::new(192, 0, 2, 99)]),
                "forwarded upstream"
            );

            // A real resolver client inside the namespace.
            let out = web.exec(&["busybox", "nslookup", "db", "127.0.0.11"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                text.contains(&ed.ip.to_string()),
                "nslookup: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            );

            // Detach: the refreshed table forgets the name.
            mgr.detach("netd", "db").unwrap();
            server.set_table(mgr.name_table().unwrap());
            assert_eq!(query(&web.netns(), "db").rcode, 3);
            handle.stop();
            stop.store(true, Ordering::SeqCst);
            upstream.join().unwrap();
            let _ = e;
            vec![ew.veth, ed.veth, eo.veth]
        };
        let mut prefixes: Vec<&str> = veths.iter().map(String::as_str).collect();
        prefixes.extend([brd.as_str(), bre.as_str()]);
        assert_clean(&prefixes, &table);
    });
}
