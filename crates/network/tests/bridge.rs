//! Default bridge, veth attach, ping, IPAM persistence across a reopen.

mod common;

use berth_network::{AttachRequest, NetworkError, NetworkManager};
use common::*;

#[test]
fn attach_ping_and_ipam_persistence() {
    if skip("attach_ping_and_ipam_persistence") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config('a', 1);
    let (bridge, table) = (cfg.bridge_name.clone(), cfg.nft_table.clone());
    in_private_netns(|| {
        let mgr = NetworkManager::open(dir.path(), cfg.clone()).unwrap();
        let veths = {
            let _guard = Cleanup(&mgr);
            let net = mgr.ensure_default_bridge().unwrap();
            assert_eq!(
                (net.name.as_str(), net.bridge.as_str()),
                ("bridge", bridge.as_str())
            );
            assert_eq!(net.subnet.to_string(), "10.213.1.0/24");
            assert_eq!(net.gateway.to_string(), "10.213.1.1");
            assert!(run_ok("ip", &["-4", "addr", "show", "dev", &bridge]).contains("10.213.1.1/24"));

            let c1 = FakeContainer::start("c1");
            let c2 = FakeContainer::start("c2");
            let req = |c: &FakeContainer| AttachRequest {
                network: "bridge".into(),
                container_id: c.id.clone(),
                netns: c.netns(),
                aliases: vec![],
                requested_ip: None,
                mac: None,
                ports: vec![],
            };
            let e1 = mgr.attach(&req(&c1)).unwrap();
            // c2's namespace is given as an open fd instead of a path.
            let (_c2_ns_file, c2_ns) = berth_network::link::open_netns(&c2.netns_path()).unwrap();
            let e2 = mgr
                .attach(&AttachRequest {
                    netns: c2_ns,
                    ..req(&c2)
                })
                .unwrap();
            assert_eq!(
                (e1.ip.to_string(), e2.ip.to_string()),
                ("10.213.1.2".into(), "10.213.1.3".into())
            );
            assert_eq!(e1.mac, "02:42:0a:d5:01:02");
            assert_eq!(e1.ifname, "eth0");
            let inside = String::from_utf8_lossy(
                &c1.exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
                    .stdout,
            )
            .into_owned();
            assert!(inside.contains("10.213.1.2/24"), "{inside}");
            let link =
                String::from_utf8_lossy(&c1.exec(&["ip", "link", "show", "dev", "eth0"]).stdout)
                    .into_owned();
            assert!(link.contains("02:42:0a:d5:01:02"), "{link}");
            let route =
                String::from_utf8_lossy(&c1.exec(&["ip", "route", "show", "default"]).stdout)
                    .into_owned();
            assert!(route.contains("via 10.213.1.1"), "{route}");
            assert!(run_ok("ip", &["link", "show", "master", &bridge]).contains(&e1.veth));

            assert!(c1.ping("10.213.1.3"), "c1 -> c2");
            assert!(c2.ping("10.213.1.2"), "c2 -> c1");
            assert!(c1.ping("10.213.1.1"), "c1 -> gateway");

            assert!(matches!(
                mgr.attach(&req(&c1)),
                Err(NetworkError::AlreadyAttached { .. })
            ));

            // A second manager (a restarted daemon) sees the same allocations and never hands them out twice.
            let again = NetworkManager::open(dir.path(), cfg.clone()).unwrap();
            let reloaded = again.get("bridge").unwrap();
            assert_eq!(reloaded.endpoints.get("c1"), Some(&e1));
            assert_eq!(reloaded.endpoints.get("c2"), Some(&e2));
            assert_eq!(
                again.ensure_default_bridge().unwrap().id,
                net.id,
                "restart keeps the network"
            );
            let c3 = FakeContainer::start("c3");
            let mut r3 = req(&c3);
            r3.requested_ip = Some(e1.ip);
            assert!(
                matches!(again.attach(&r3), Err(NetworkError::NoAddress { .. })),
                "requested address in use"
            );
            r3.requested_ip = None;
            let e3 = again.attach(&r3).unwrap();
            assert_eq!(e3.ip.to_string(), "10.213.1.4");
            assert!(c3.ping("10.213.1.2"));
            // c3 dies while "berthd is down": its namespace and veth vanish with it; prune frees its record.
            let mut c3 = c3;
            c3.child.kill().unwrap();
            c3.child.wait().unwrap();
            let pruned = again.prune(|id| id != "c3").unwrap();
            assert_eq!(pruned.iter().map(|e| e.ip).collect::<Vec<_>>(), [e3.ip]);
            assert!(!again.get("bridge").unwrap().endpoints.contains_key("c3"));

            // Detach frees the address and removes the veth; the next attach reuses the lowest free address.
            let gone = mgr.detach("bridge", "c1").unwrap();
            assert!(!run_ok("ip", &["-o", "link"]).contains(&gone.veth));
            assert!(!c2.ping("10.213.1.2"), "detached container is unreachable");
            let e1b = mgr.attach(&req(&c1)).unwrap();
            assert_eq!(e1b.ip, e1.ip);
            assert!(c1.ping("10.213.1.3"));
            assert!(matches!(
                mgr.remove_network("bridge"),
                Err(NetworkError::InUse(_))
            ));
            // Two processes' worth of managers attaching at once never get the same address (the state lock).
            let c4 = FakeContainer::start("c4");
            let c5 = FakeContainer::start("c5");
            let (r4, r5) = (req(&c4), req(&c5));
            let (m4, m5) = (
                mgr.clone(),
                NetworkManager::open(dir.path(), cfg.clone()).unwrap(),
            );
            let (e4, e5) = std::thread::scope(|sc| {
                // Threads spawned here inherit this thread's (the test's private) network namespace.
                let t4 = sc.spawn(|| m4.attach(&r4).unwrap());
                let t5 = sc.spawn(|| m5.attach(&r5).unwrap());
                (t4.join().unwrap(), t5.join().unwrap())
            });
            assert_ne!(e4.ip, e5.ip);
            assert!(c4.ping(&e5.ip.to_string()));
            let all = mgr.get("bridge").unwrap();
            let mut ips: Vec<_> = all.endpoints.values().map(|e| e.ip).collect();
            ips.sort();
            ips.dedup();
            assert_eq!(
                ips.len(),
                all.endpoints.len(),
                "no address is allocated twice"
            );

            // A reboot loses bridge and rules; ensure_default_bridge at daemon start brings both back.
            run_ok("ip", &["link", "del", &bridge]);
            run_ok("nft", &["delete", "table", "ip", &cfg.nft_table]);
            assert_eq!(mgr.ensure_default_bridge().unwrap().id, net.id);
            assert!(run_ok("ip", &["-4", "addr", "show", "dev", &bridge]).contains("10.213.1.1/24"));
            assert!(run_ok("nft", &["list", "table", "ip", &cfg.nft_table]).contains("masquerade"));
            vec![e1b.veth, e2.veth, e3.veth, e4.veth, e5.veth]
        };
        // The guard ran cleanup_all.
        let mut prefixes: Vec<&str> = veths.iter().map(String::as_str).collect();
        prefixes.push(&bridge);
        assert_clean(&prefixes, &table);
        assert!(mgr.list().unwrap().is_empty());
    });
}
