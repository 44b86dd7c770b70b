//! Port publishing: loopback on the host, the host's address, hairpin from containers, unpublish.

mod common;

use berth_network::{AttachRequest, NetworkError, NetworkManager, PortSpec};
use common::*;

fn fetch_host(url: &str) -> Option<String> {
    let o = run("curl", &["-sS", "--max-time", "5", url]);
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn fetch_in(c: &FakeContainer, url: &str) -> Option<String> {
    // curl, not busybox wget: Debian's static busybox wget crashes on start.
    let o = c.exec(&["curl", "-sS", "--max-time", "5", url]);
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn published_ports_reach_httpd() {
    if skip("published_ports_reach_httpd") {
        return;
    }
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP published_ports_reach_httpd: curl not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let www = web_root(dir.path(), "hello from berth\n");
    let cfg = config('p', 2);
    let (bridge, table) = (cfg.bridge_name.clone(), cfg.nft_table.clone());
    let host_if = format!("bt{}", tag('h'));
    in_private_netns(|| {
        // The "host's" own address on a link of its own, like eth0's on a real host (a bridge: the test
        // kernel may lack the dummy driver).
        run_ok("ip", &["link", "add", &host_if, "type", "bridge"]);
        run_ok("ip", &["addr", "add", "10.213.250.1/24", "dev", &host_if]);
        run_ok("ip", &["link", "set", &host_if, "up"]);
        let mgr = NetworkManager::open(dir.path(), cfg.clone()).unwrap();
        let veths = {
            let _guard = Cleanup(&mgr);
            mgr.ensure_default_bridge().unwrap();
            let web = FakeContainer::start("web");
            let client = FakeContainer::start("client");
            let ep = mgr
                .attach(&AttachRequest {
                    network: "bridge".into(),
                    container_id: "web".into(),
                    netns: web.netns(),
                    aliases: vec![],
                    requested_ip: None,
                    mac: None,
                    ports: vec![
                        PortSpec::parse("127.0.0.1::80").unwrap(),
                        PortSpec::parse("80").unwrap(),
                    ],
                })
                .unwrap();
            let (lo_port, any_port) = (ep.ports[0].host_port, ep.ports[1].host_port);
            assert_eq!(ep.ports[0].host_ip, Some(std::net::Ipv4Addr::LOCALHOST));
            assert_eq!(ep.ports[1].host_ip, None);
            assert_ne!(lo_port, any_port);
            let ec = mgr
                .attach(&AttachRequest {
                    network: "bridge".into(),
                    container_id: "client".into(),
                    netns: client.netns(),
                    aliases: vec![],
                    requested_ip: None,
                    mac: None,
                    ports: vec![],
                })
                .unwrap();
            let www_s = www.to_string_lossy().into_owned();
            let httpd =
                KillOnDrop(web.spawn(&["busybox", "httpd", "-f", "-p", "80", "-h", &www_s]));
            wait_listen(httpd.0.id(), 80);

            let rules = run_ok("nft", &["list", "table", "ip", &table]);
            assert!(
                rules.contains(&format!("127.0.0.1 . tcp . {lo_port} : {} . 80", ep.ip)),
                "{rules}"
            );

            let want = Some("hello from berth\n".to_string());
            assert_eq!(
                fetch_host(&format!("http://127.0.0.1:{lo_port}/")),
                want,
                "host loopback"
            );
            assert_eq!(
                fetch_host(&format!("http://127.0.0.1:{any_port}/")),
                want,
                "0.0.0.0 covers loopback"
            );
            assert_eq!(
                fetch_host(&format!("http://10.213.250.1:{any_port}/")),
                want,
                "host address"
            );
            assert_eq!(
                fetch_host(&format!("http://10.213.250.1:{lo_port}/")),
                None,
                "127.0.0.1-only port"
            );
            assert_eq!(
                fetch_in(&client, &format!("http://10.213.250.1:{any_port}/")),
                want,
                "hairpin from another container"
            );
            assert_eq!(
                fetch_in(&web, &format!("http://10.213.250.1:{any_port}/")),
                want,
                "hairpin to itself"
            );

            // route_localnet must not open the host's loopback to containers: a datagram a container routes to
            // 127.0.0.1 through its gateway is dropped, while one to the gateway address arrives (control).
            let gw = ep.gateway;
            let lo_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let gw_sock =
                std::net::UdpSocket::bind((gw, lo_sock.local_addr().unwrap().port())).unwrap();
            let port = lo_sock.local_addr().unwrap().port();
            let gw_s = gw.to_string();
            for args in [
                &[
                    "ip",
                    "route",
                    "del",
                    "local",
                    "127.0.0.0/8",
                    "dev",
                    "lo",
                    "table",
                    "local",
                ][..],
                &[
                    "ip",
                    "route",
                    "del",
                    "local",
                    "127.0.0.1",
                    "dev",
                    "lo",
                    "table",
                    "local",
                ][..],
                &[
                    "ip",
                    "route",
                    "add",
                    "127.0.0.1/32",
                    "via",
                    &gw_s,
                    "dev",
                    "eth0",
                ][..],
            ] {
                let o = client.exec(args);
                assert!(
                    o.status.success(),
                    "{args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            berth_network::link::in_netns(&client.netns(), || {
                let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
                s.send_to(b"to-loopback", ("127.0.0.1", port)).unwrap();
                s.send_to(b"to-gateway", (gw, port)).unwrap();
            })
            .unwrap();
            let mut buf = [0u8; 64];
            gw_sock
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let n = gw_sock
                .recv(&mut buf)
                .expect("control datagram to the gateway");
            assert_eq!(&buf[..n], b"to-gateway");
            // The control arrived after the probe was sent first, so a delivered probe would be queued by now.
            lo_sock.set_nonblocking(true).unwrap();
            if let Ok((n, from)) = lo_sock.recv_from(&mut buf) {
                panic!(
                    "a container reached the host's 127.0.0.1: {:?} from {from}\n{}",
                    String::from_utf8_lossy(&buf[..n]),
                    run_ok("nft", &["list", "table", "ip", &table])
                );
            }
            let rules = run_ok("nft", &["list", "table", "ip", &table]);
            assert!(rules.contains("ip daddr 127.0.0.0/8 drop"), "{rules}");

            // The same host port cannot be published twice.
            let taken = PortSpec::parse(&format!("{any_port}:81")).unwrap();
            assert!(matches!(
                mgr.publish("bridge", "client", &[taken]),
                Err(NetworkError::PortInUse { .. })
            ));

            // Nor one a host process is bound to.
            let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let busy_port = busy.local_addr().unwrap().port();
            let clash = PortSpec::parse(&format!("127.0.0.1:{busy_port}:81")).unwrap();
            assert!(matches!(
                mgr.publish("bridge", "client", &[clash]),
                Err(NetworkError::PortInUse { port, .. }) if port == busy_port
            ));
            drop(busy);

            // Unpublish removes the rules: the port stops answering.
            let old = mgr.unpublish("bridge", "web").unwrap();
            assert_eq!(old.len(), 2);
            assert_eq!(fetch_host(&format!("http://127.0.0.1:{lo_port}/")), None);
            let rules = run_ok("nft", &["list", "table", "ip", &table]);
            assert!(
                !rules.contains(&format!(": {} . 80", ep.ip)),
                "unpublished ports still mapped: {rules}"
            );
            let again = mgr
                .publish(
                    "bridge",
                    "web",
                    &[PortSpec::parse(&format!("127.0.0.1:{lo_port}:80")).unwrap()],
                )
                .unwrap();
            assert_eq!(again[0].host_port, lo_port);
            assert_eq!(
                fetch_host(&format!("http://127.0.0.1:{lo_port}/")),
                want,
                "republished"
            );
            vec![ep.veth, ec.veth]
        };
        let mut prefixes: Vec<&str> = veths.iter().map(String::as_str).collect();
        prefixes.push(&bridge);
        assert_clean(&prefixes, &table);
        run_ok("ip", &["link", "del", &host_if]);
    });
}
