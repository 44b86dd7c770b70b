//! Container networking driven by the real docker CLI: the default bridge (addresses, inspect, `-p`, `-P`,
//! `docker port`, `ps`), a berthd restart, user networks with names, aliases, `--ip` and isolation, `none` and
//! `host`, the network API verbs, and that nothing of the test's bridge, veths or nft table stays behind.
//! Each daemon gets its own bridge, /24 and table ([`common::TestNet`]); traffic goes only to 127.0.0.1 and
//! the test's own containers. Run as root inside `unshare -m --propagation private`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Daemon;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fetches `url` with curl until it answers (a readiness wait for httpd to listen, bounded).
fn fetch(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = Command::new("curl")
            .args(["-sf", "--max-time", "5", url])
            .output()
            .expect("curl");
        if o.status.success() {
            return String::from_utf8_lossy(&o.stdout).into_owned();
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn links() -> String {
    let o = Command::new("ip").args(["-o", "link"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn table_exists(t: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "ip", t])
        .output()
        .is_ok_and(|o| o.status.success())
}

const HTTPD: &str = "echo hello-net > /tmp/index.html && exec httpd -f -p 80 -h /tmp";

#[test]
fn bridge_ports_restart_and_cleanup() {
    require!();
    require!("curl");
    require!("nft");
    let mut d = Daemon::start();
    d.import_busybox();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = d
        .ok(&[
            "run", "-d", "--name", "web", "-p", &publish, "busybox", "sh", "-c", HTTPD,
        ])
        .trim()
        .to_string();

    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    let ip = ip.trim().to_string();
    assert!(
        ip.starts_with(&d.net.subnet_prefix),
        "{ip} not in {}",
        d.net.bip
    );
    let gw = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.bridge.Gateway}}",
        "web",
    ]);
    assert_eq!(gw.trim(), format!("{}1", d.net.subnet_prefix));
    let mac = d.ok(&["inspect", "-f", "{{.NetworkSettings.MacAddress}}", "web"]);
    assert!(mac.trim().starts_with("02:42:"), "{mac}");
    // The container end is eth0 with that address.
    let addr = d.ok(&["exec", "web", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("{ip}/24")), "{addr}");

    assert_eq!(
        fetch(&format!("http://127.0.0.1:{port}/index.html")).trim(),
        "hello-net"
    );
    assert_eq!(
        d.ok(&["port", "web"]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    let ps = d.ok(&["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");

    // -P: a random host port for the exposed port, reported by `docker port`.
    d.ok(&[
        "run", "-d", "--name", "web2", "--expose", "80", "-P", "busybox", "sh", "-c", HTTPD,
    ]);
    let p = d.ok(&["port", "web2", "80/tcp"]);
    let host_port: u16 = p
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {p:?}"));
    assert_ne!(host_port, 0);
    assert_eq!(
        fetch(&format!("http://127.0.0.1:{host_port}/index.html")).trim(),
        "hello-net"
    );

    // --add-host and --dns land in the container's files.
    let files = d.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.test:10.9.9.9",
        "--dns",
        "10.9.9.53",
        "busybox",
        "cat",
        "/etc/hosts",
        "/etc/resolv.conf",
    ]);
    assert!(files.contains("10.9.9.9\tdb.test"), "{files}");
    assert!(files.contains("nameserver 10.9.9.53"), "{files}");

    // berthd going away leaves the container networked; the new berthd sees the same address.
    d.kill9();
    assert_eq!(
        fetch(&format!("http://127.0.0.1:{port}/index.html")).trim(),
        "hello-net"
    );
    d.spawn();
    let again = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    assert_eq!(again.trim(), ip);
    assert_eq!(
        fetch(&format!("http://127.0.0.1:{port}/index.html")).trim(),
        "hello-net"
    );

    // Removing the containers removes their veths from the bridge.
    d.ok(&["rm", "-f", "web", "web2"]);
    let o = Command::new("ip")
        .args(["-o", "link", "show", "master", &d.net.bridge])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).trim().is_empty(),
        "veths left on the bridge"
    );
    assert!(!id.is_empty());
    d.terminate();
    assert!(
        links().contains(&d.net.bridge),
        "berthd exit must not tear down the bridge"
    );
    d.net.cleanup(&d.data);
    assert!(
        !links().contains(&format!("{}:", d.net.bridge)),
        "bridge left behind"
    );
    assert!(!table_exists(&d.net.table), "nft table left behind");
}

#[test]
fn user_networks_dns_isolation_and_api() {
    require!();
    require!("nft");
    let d = Daemon::start();
    d.import_busybox();
    let x = d
        .net
        .pool
        .trim_start_matches("base=")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let base = x.rsplit_once('.').unwrap().0.to_string(); // 10.214.N
    let subnet = format!("{base}.128/26");
    d.ok(&[
        "network", "create", "--subnet", &subnet, "--label", "t=1", "front",
    ]);
    d.ok(&["network", "create", "back"]);
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for n in ["bridge bridge", "front bridge", "back bridge"] {
        assert!(ls.lines().any(|l| l == n), "{n} missing in {ls}");
    }
    let sub = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "front",
    ]);
    assert_eq!(sub.trim(), subnet);
    let dup = d.docker(&["network", "create", "front"]);
    assert!(!dup.status.success(), "duplicate network name accepted");

    let fixed = format!("{base}.150");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "server",
        "--network",
        "front",
        "--network-alias",
        "svc",
        "--ip",
        &fixed,
        "busybox",
        "sleep",
        "1000",
    ]);
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.front.IPAddress}}",
        "server",
    ]);
    assert_eq!(ip.trim(), fixed);

    // Same network: by name and by alias through the embedded DNS.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        "busybox",
        "sh",
        "-c",
        "grep -q 127.0.0.11 /etc/resolv.conf && nslookup svc && ping -c1 -W5 server",
    ]);
    assert!(out.contains(&fixed), "{out}");
    assert!(out.contains("1 packets received"), "{out}");

    // Another network: neither the name nor the address is reachable.
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "nslookup",
        "server",
    ]);
    assert!(!o.status.success(), "name of another network resolved");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "ping",
        "-c1",
        "-W2",
        &fixed,
    ]);
    assert!(!o.status.success(), "another network is reachable");

    // connect/disconnect on a running container.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "roamer",
        "--network",
        "back",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.ok(&["network", "connect", "front", "roamer"]);
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "roamer",
    ]);
    assert!(nets.contains("front") && nets.contains("back"), "{nets}");
    let ping = d.ok(&["exec", "roamer", "ping", "-c1", "-W5", &fixed]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let members = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "front",
    ]);
    assert!(
        members.contains("roamer") && members.contains("server"),
        "{members}"
    );
    d.ok(&["network", "disconnect", "front", "roamer"]);
    let o = d.docker(&["exec", "roamer", "ping", "-c1", "-W2", &fixed]);
    assert!(!o.status.success(), "still reachable after disconnect");

    // none: only lo; host: the host's interfaces.
    let none = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:"), "{none}");
    let host = d.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(host.contains(&format!("{}:", d.net.bridge)), "{host}");

    // In use: rm refuses; after the containers go, rm and prune work.
    let o = d.docker(&["network", "rm", "front"]);
    assert!(!o.status.success(), "removed a network in use");
    d.ok(&["rm", "-f", "server", "roamer"]);
    d.ok(&["network", "rm", "front"]);
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("back"), "{pruned}");
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(ls.trim(), "bridge bridge\nhost host\nnone null", "{ls}");
    for builtin in ["bridge", "host", "none"] {
        let o = d.docker(&["network", "rm", builtin]);
        assert!(!o.status.success(), "removed the pre-defined {builtin}");
    }
    let host = d.ok(&["network", "inspect", "-f", "{{.Driver}}", "host"]);
    assert_eq!(host.trim(), "host");
}

/// The berth CLI's own `network` commands against the same API the docker CLI uses.
#[test]
fn berth_cli_network_commands() {
    require!();
    require!("nft");
    let berth = std::path::Path::new(env!("CARGO_BIN_EXE_berthd")).with_file_name("berth");
    if !berth.is_file() {
        eprintln!(
            "SKIPPED: {} not built (cargo build --workspace --bins)",
            berth.display()
        );
        return;
    }
    let d = Daemon::start();
    let run = |args: &[&str]| {
        Command::new(&berth)
            .args(args)
            .env("BERTH_HOST", format!("unix://{}", d.sock.display()))
            .output()
            .expect("run berth")
    };
    let o = run(&["network", "create", "--label", "t=1", "clinet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(id.len(), 64, "network create prints the id: {id}");
    let o = run(&["network", "create", "clinet"]);
    assert_eq!(o.status.code(), Some(1), "a duplicate name is refused");
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let ls = String::from_utf8_lossy(&run(&["network", "ls"]).stdout).to_string();
    assert!(ls.starts_with("NETWORK ID     NAME"), "{ls}");
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&id[..12]) && l.contains("clinet")),
        "{ls}"
    );
    let o = run(&[
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{.Labels.t}}",
        "clinet",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "clinet 1\n");
    let o = run(&["network", "rm", "clinet", "no-such-net"]);
    assert_eq!(o.status.code(), Some(1), "one of two removals failed");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "clinet\n");
    let ls = String::from_utf8_lossy(&run(&["network", "ls", "-q"]).stdout).to_string();
    assert!(
        !ls.contains(&id[..12]),
        "removed network still listed: {ls}"
    );
}
