//! Networking remainders of issue 5, driven by the real docker CLI against a bridged berthd:
//! `--network container:<x>` (shared namespace, hostname and files; docker's conflict errors; a missing or
//! stopped x),
//! `--mac-address`, and names resolving in a container connected to a user network after it started.
//! Each daemon gets its own bridge, /24 and nft table ([`common::TestNet`]); traffic goes only to the test's
//! own containers. Run as root inside `unshare -m --propagation private`.

mod common;

use common::Daemon;

const HTTPD: &str = "echo hello-shared > /tmp/index.html && exec httpd -f -p 80 -h /tmp";

/// Runs `args` until its output contains `want` (a readiness wait for a server to listen, bounded).
fn eventually(d: &Daemon, args: &[&str], want: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let o = d.docker(args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        if out.contains(want) {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{args:?} never printed {want:?}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A daemon error: the docker CLI exits 125 for `run`, 1 for the other verbs.
fn fails_with(d: &Daemon, args: &[&str], msg: &str) {
    let o = d.docker(args);
    let err = String::from_utf8_lossy(&o.stderr);
    let code = if args[0] == "run" { 125 } else { 1 };
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(msg), "{args:?}: want {msg:?} in {err}");
}

#[test]
fn container_network_mode() {
    require!();
    require!("nft");
    let d = Daemon::start();
    d.import_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "webhost",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let web_ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    let web_ip = web_ip.trim();
    assert!(web_ip.starts_with(&d.net.subnet_prefix), "{web_ip}");

    // The joining container reaches web's server on its own loopback, sees web's eth0 and hostname.
    let page = eventually(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "container:web",
            "busybox",
            "wget",
            "-qO-",
            "http://127.0.0.1/index.html",
        ],
        "hello-shared",
    );
    assert_eq!(page.trim(), "hello-shared");
    let inside = d.ok(&[
        "run",
        "--rm",
        "--network",
        "container:web",
        "busybox",
        "sh",
        "-c",
        "hostname; ip -o -4 addr show eth0; cat /etc/hosts",
    ]);
    assert!(inside.starts_with("webhost\n"), "{inside}");
    assert!(inside.contains(&format!("{web_ip}/24")), "{inside}");
    assert!(inside.contains("webhost"), "hosts is web's: {inside}");

    // A long-running joiner, by id prefix; inspect shows web's files and mode.
    let web_id = d.ok(&["inspect", "-f", "{{.Id}}", "web"]);
    let mode = format!("container:{}", &web_id.trim()[..12]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "side",
        "--network",
        &mode,
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "side"])
            .trim(),
        mode
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostsPath}}", "side"]),
        d.ok(&["inspect", "-f", "{{.HostsPath}}", "web"])
    );
    let o = d.docker(&["network", "connect", "bridge", "side"]);
    assert!(!o.status.success(), "connected a container:x container");

    // docker's conflicts, at create.
    for (extra, msg) in [
        (
            vec!["-p", "127.0.0.1::80"],
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            vec!["--hostname", "x"],
            "conflicting options: hostname and the network mode",
        ),
        (
            vec!["--dns", "10.0.0.1"],
            "conflicting options: dns and the network mode",
        ),
        (
            vec!["--add-host", "a:10.0.0.1"],
            "conflicting options: custom host-to-IP mapping and the network mode",
        ),
        (
            vec!["--expose", "80"],
            "conflicting options: port exposing and the container type network mode",
        ),
    ] {
        let mut args = vec!["create", "--network", "container:web"];
        args.extend(extra);
        args.extend(["busybox", "true"]);
        fails_with(&d, &args, msg);
    }
    // As docker 28: a missing container is found out at start, not create.
    d.ok(&[
        "create",
        "--name",
        "orphan",
        "--network",
        "container:nosuch",
        "busybox",
        "true",
    ]);
    fails_with(
        &d,
        &["start", "orphan"],
        "joining network namespace of container: No such container: nosuch",
    );

    // When web stops, side keeps running with only lo (web's veth went with web); a new joiner is refused.
    d.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "side"])
            .trim(),
        "true"
    );
    let links = d.ok(&["exec", "side", "ip", "-o", "link"]);
    assert!(!links.contains("eth0"), "{links}");
    // (Not `run --rm`: berthd does not yet auto-remove a container whose start failed, so the CLI would wait.)
    d.ok(&[
        "create",
        "--name",
        "late",
        "--network",
        "container:web",
        "busybox",
        "true",
    ]);
    fails_with(
        &d,
        &["start", "late"],
        "cannot join network namespace of a non running container: container web is exited",
    );
    d.ok(&["rm", "-f", "side", "web", "orphan", "late"]);
}

#[test]
fn mac_address() {
    require!();
    require!("nft");
    let d = Daemon::start();
    d.import_busybox();
    let mac = "02:42:ac:11:ff:01";
    // docker CLI 28 sends it as the endpoint's MacAddress.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "m1",
        "--mac-address",
        mac,
        "busybox",
        "sleep",
        "1000",
    ]);
    let inside = d.ok(&["exec", "m1", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(inside.trim(), mac);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.NetworkSettings.MacAddress}}", "m1"])
            .trim(),
        mac
    );
    // Through the API as Config.MacAddress (what older clients and berth's CLI send), on a user network.
    d.ok(&["network", "create", "macnet"]);
    let body = r#"{"Image":"busybox","Cmd":["sleep","1000"],"MacAddress":"02:42:AC:11:FF:02","HostConfig":{"NetworkMode":"macnet"}}"#;
    let (status, resp) = d.http("POST", "/v1.41/containers/create?name=m2", Some(body));
    assert_eq!(status, 201, "{resp}");
    d.ok(&["start", "m2"]);
    let inside = d.ok(&["exec", "m2", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(inside.trim(), "02:42:ac:11:ff:02");
    let (status, resp) = d.http(
        "POST",
        "/v1.41/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"MacAddress":"zz:42"}"#),
    );
    assert_eq!(status, 400, "{resp}");
    assert!(resp.contains("invalid MAC address"), "{resp}");
    fails_with(
        &d,
        &[
            "create",
            "--network",
            "host",
            "--mac-address",
            mac,
            "busybox",
            "true",
        ],
        "conflicting options: mac-address and the network mode",
    );
    d.ok(&["rm", "-f", "m1", "m2"]);
    d.ok(&["network", "rm", "macnet"]);
}

#[test]
fn dns_after_connect() {
    require!();
    require!("nft");
    let d = Daemon::start();
    d.import_busybox();
    d.ok(&["network", "create", "late"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "target",
        "--network",
        "late",
        "busybox",
        "sleep",
        "1000",
    ]);
    let target_ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.late.IPAddress}}",
        "target",
    ]);
    let target_ip = target_ip.trim().to_string();
    // Started on the default bridge: no embedded DNS, the host's resolvers.
    d.ok(&["run", "-d", "--name", "roamer", "busybox", "sleep", "1000"]);
    let resolv = d.ok(&["exec", "roamer", "cat", "/etc/resolv.conf"]);
    assert!(!resolv.contains("127.0.0.11"), "{resolv}");

    d.ok(&["network", "connect", "--alias", "rover", "late", "roamer"]);
    let resolv = d.ok(&["exec", "roamer", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    let out = d.ok(&["exec", "roamer", "nslookup", "target"]);
    assert!(out.contains(&target_ip), "{out}");
    // And the other way round, by the alias given at connect.
    let rover_ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.late.IPAddress}}",
        "roamer",
    ]);
    let out = d.ok(&["exec", "target", "nslookup", "rover"]);
    assert!(out.contains(rover_ip.trim()), "{out}");

    // A restarted berthd serves it again.
    let mut d = d;
    d.kill9();
    d.spawn();
    let out = d.ok(&["exec", "roamer", "nslookup", "target"]);
    assert!(out.contains(&target_ip), "{out}");
    d.ok(&["rm", "-f", "roamer", "target"]);
    d.ok(&["network", "rm", "late"]);
}
