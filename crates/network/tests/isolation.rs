//! User networks: subnets from the pool avoid host routes, networks are isolated from each other, internal
//! networks have no way out, and removal takes bridge and rules away.

mod common;

use std::collections::BTreeMap;

use berth_network::{AttachRequest, NetworkError, NetworkManager, NetworkSpec, BRIDGE_NAME_OPTION};
use common::*;

fn spec(name: &str, bridge: &str, subnet: Option<&str>, internal: bool) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        subnet: subnet.map(|s| s.parse().unwrap()),
        gateway: None,
        internal,
        options: BTreeMap::from([(BRIDGE_NAME_OPTION.to_string(), bridge.to_string())]),
        labels: BTreeMap::new(),
    }
}

#[test]
fn user_networks_are_isolated_and_internal_has_no_way_out() {
    if skip("user_networks_are_isolated_and_internal_has_no_way_out") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config('i', 3);
    let table = cfg.nft_table.clone();
    let t = tag('i');
    let (bra, brb, brc, host_if) = (
        format!("bt{t}A"),
        format!("bt{t}B"),
        format!("bt{t}C"),
        format!("bt{t}H"),
    );
    in_private_netns(|| {
        // A host route that the first pool subnet (10.213.128.0/24) collides with.
        run_ok("ip", &["link", "add", &host_if, "type", "bridge"]);
        run_ok("ip", &["addr", "add", "10.213.128.1/24", "dev", &host_if]);
        let mgr = NetworkManager::open(dir.path(), cfg.clone()).unwrap();
        let veths = {
            let _guard = Cleanup(&mgr);
            let a = mgr
                .create_network(&spec("neta", &bra, Some("10.213.4.0/24"), false))
                .unwrap();
            let b = mgr
                .create_network(&spec("netb", &brb, None, false))
                .unwrap();
            assert_eq!(
                b.subnet.to_string(),
                "10.213.129.0/24",
                "pool must skip the host's 10.213.128.0/24"
            );
            let c = mgr
                .create_network(&spec("netc", &brc, Some("10.213.6.0/24"), true))
                .unwrap();
            assert!(matches!(
                mgr.create_network(&spec("neta", "btx", None, false)),
                Err(NetworkError::NameInUse(_))
            ));
            assert!(matches!(
                mgr.create_network(&spec("netd", "btx", Some("10.213.4.128/25"), false)),
                Err(NetworkError::Overlap(_))
            ));
            assert!(matches!(
                mgr.create_network(&spec("netd", "btx", Some("10.213.128.0/25"), false)),
                Err(NetworkError::Overlap(_))
            ));
            assert_eq!(mgr.list().unwrap().len(), 3);

            let a1 = FakeContainer::start("a1");
            let a2 = FakeContainer::start("a2");
            let b1 = FakeContainer::start("b1");
            let c1 = FakeContainer::start("c1");
            let att = |net: &str, c: &FakeContainer| {
                mgr.attach(&AttachRequest {
                    network: net.into(),
                    container_id: c.id.clone(),
                    netns: c.netns(),
                    aliases: vec![],
                    requested_ip: None,
                    mac: None,
                    ports: vec![],
                })
                .unwrap()
            };
            let ea1 = att("neta", &a1);
            let ea2 = att("neta", &a2);
            let eb1 = att(&b.id[..12], &b1);
            let ec1 = att(&c.id, &c1);
            let ip = |e: &berth_network::Endpoint| e.ip.to_string();

            assert!(a1.ping(&ip(&ea2)), "same network");
            assert!(a1.ping(&a.gateway.to_string()), "own gateway");
            assert!(!a1.ping(&ip(&eb1)), "A must not reach B");
            assert!(!b1.ping(&ip(&ea1)), "B must not reach A");
            assert!(!a1.ping(&ip(&ec1)), "A must not reach internal C");

            let rules = run_ok("nft", &["list", "table", "ip", &table]);
            assert!(
                rules.contains(&format!("iifname \"{brc}\" oifname != \"{brc}\" drop")),
                "{rules}"
            );
            assert!(
                !rules.contains("ip saddr 10.213.6.0/24 oifname"),
                "internal network must not be masqueraded: {rules}"
            );
            assert!(rules.contains("ip saddr 10.213.4.0/24 oifname"), "{rules}");

            // Internal: reachable gateway, no default route, and even with one (a container with NET_ADMIN)
            // neither other containers nor other gateways are reachable.
            assert!(c1.ping(&c.gateway.to_string()));
            let routes =
                String::from_utf8_lossy(&c1.exec(&["ip", "route", "show", "default"]).stdout)
                    .into_owned();
            assert!(
                routes.trim().is_empty(),
                "internal network sets no default route: {routes}"
            );
            assert!(!c1.ping(&b.gateway.to_string()));
            assert!(c1
                .exec(&[
                    "ip",
                    "route",
                    "add",
                    "default",
                    "via",
                    &c.gateway.to_string()
                ])
                .status
                .success());
            assert!(!c1.ping(&b.gateway.to_string()), "other bridge's gateway");
            assert!(!c1.ping(&ip(&eb1)), "forwarding out of an internal network");
            assert!(!c1.ping("10.213.128.1"), "host address");

            // Connect a1 to B as well: it gets eth1 and can reach b1 there, keeping its default route on A.
            let ea1b = mgr
                .attach(&AttachRequest {
                    network: "netb".into(),
                    container_id: "a1".into(),
                    netns: a1.netns(),
                    aliases: vec![],
                    requested_ip: Some("10.213.129.50".parse().unwrap()),
                    mac: None,
                    ports: vec![],
                })
                .unwrap();
            assert_eq!(
                (ea1b.ifname.as_str(), ea1b.ip.to_string().as_str()),
                ("eth1", "10.213.129.50")
            );
            assert!(a1.ping(&ip(&eb1)), "connected to both networks");
            let routes =
                String::from_utf8_lossy(&a1.exec(&["ip", "route", "show", "default"]).stdout)
                    .into_owned();
            assert!(routes.contains(&a.gateway.to_string()), "{routes}");
            assert_eq!(mgr.detach_all("a1").unwrap().len(), 2);
            assert!(!b1.ping("10.213.129.50"));

            // Removal: refused while attached, then bridge and rules go.
            assert!(matches!(
                mgr.remove_network("netb"),
                Err(NetworkError::InUse(_))
            ));
            mgr.detach("netb", "b1").unwrap();
            mgr.remove_network("netb").unwrap();
            assert!(!run_ok("ip", &["-o", "link"]).contains(&format!("{brb}:")));
            assert!(!run_ok("nft", &["list", "table", "ip", &table]).contains(&brb));
            assert!(matches!(mgr.get("netb"), Err(NetworkError::NotFound(_))));
            vec![ea1.veth, ea2.veth, eb1.veth, ec1.veth, ea1b.veth]
        };
        let mut prefixes: Vec<&str> = veths.iter().map(String::as_str).collect();
        prefixes.extend([bra.as_str(), brb.as_str(), brc.as_str()]);
        assert_clean(&prefixes, &table);
        run_ok("ip", &["link", "del", &host_if]);
    });
}
