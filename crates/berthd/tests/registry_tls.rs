//! Registry transport security through the real docker CLI and berthd: `--insecure-registry` (host:port and
//! CIDR) and `certs.d` CAs and client certificates, against Debian's `docker-registry` listening on the address of berthd's test
//! bridge, which is a local but non-loopback address (loopback registries are insecure by default, as in
//! dockerd). Traffic stays on this host. Run as root inside `unshare -m --propagation private`.

mod common;

use common::{Daemon, Registry};
use std::path::Path;
use std::process::Command;

/// The address of berthd's test bridge (it brings its default bridge up at start), if it has it.
fn bridge_ip(d: &Daemon) -> Option<String> {
    let ip = d.net.bip.split('/').next()?.to_string();
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", &d.net.bridge])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .contains(&format!("inet {ip}/"))
        .then_some(ip)
}

fn restart(d: &mut Daemon, args: &[String], env: &[(String, String)]) {
    d.terminate();
    d.extra_args = args.to_vec();
    d.extra_env = env.to_vec();
    d.spawn();
}

fn fails(d: &Daemon, args: &[&str]) -> String {
    let o = d.docker(args);
    assert!(!o.status.success(), "{args:?} unexpectedly succeeded");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn insecure_registry_flag() {
    require!();
    require!("docker-registry");
    let mut d = Daemon::start();
    let Some(ip) = bridge_ip(&d) else {
        eprintln!("SKIPPED: berthd's test bridge has no IPv4 address");
        return;
    };
    let reg = Registry::start_on(&ip, None);
    let host = format!("{ip}:{}", reg.port);
    let name = format!("{host}/insecure/bb:1");
    d.import_busybox();
    d.ok(&["tag", "busybox", &name]);

    // A registry that is neither loopback nor listed is secure: verified HTTPS only, which this plain HTTP
    // registry does not speak, so the push fails with a one-line error naming the registry.
    let err = fails(&d, &["push", &name]);
    assert!(err.contains(&host), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Listed by host:port: HTTPS is tried first (docker's order), then plain HTTP works.
    restart(&mut d, &["--insecure-registry".into(), host.clone()], &[]);
    let push = d.ok(&["push", &name]);
    assert!(push.contains("1: digest: sha256:"), "{push}");
    d.ok(&["rmi", &name]);
    d.ok(&["rmi", "busybox"]);
    let pull = d.ok(&["pull", &name]);
    assert!(pull.contains("Status: Downloaded newer image"), "{pull}");

    // Listed by CIDR, matched by the registry's address.
    let prefix = ip.rsplit_once('.').unwrap().0;
    restart(
        &mut d,
        &["--insecure-registry".into(), format!("{prefix}.0/24")],
        &[],
    );
    d.ok(&["rmi", &name]);
    let pull = d.ok(&["pull", &name]);
    assert!(pull.contains("Status: Downloaded newer image"), "{pull}");
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA and a server certificate for `ip`, signed by it: (ca.crt, server.crt, server.key).
fn make_certs(dir: &Path, ip: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=berth test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            &format!("/CN={ip}"),
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        format!("subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[test]
fn certs_d_ca_and_insecure_tls() {
    require!();
    require!("docker-registry");
    require!("openssl");
    let mut d = Daemon::start();
    let Some(ip) = bridge_ip(&d) else {
        eprintln!("SKIPPED: berthd's test bridge has no IPv4 address");
        return;
    };
    let pki = d.root.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    make_certs(&pki, &ip);
    let reg = Registry::start_on(
        &ip,
        Some((&pki.join("server.crt"), &pki.join("server.key"))),
    );
    let host = format!("{ip}:{}", reg.port);
    let name = format!("{host}/tls/bb:1");
    // berthd reads certs.d from here instead of /etc/{berth,docker}/certs.d.
    let certs_d = d.root.path().join("certs.d");
    std::fs::create_dir_all(certs_d.join(&host)).unwrap();
    let env = vec![(
        "BERTH_CERTS_D".to_string(),
        certs_d.to_str().unwrap().to_string(),
    )];
    restart(&mut d, &[], &env);
    d.import_busybox();
    d.ok(&["tag", "busybox", &name]);

    // The CA is unknown: the certificate is refused.
    let err = fails(&d, &["push", &name]);
    assert!(err.contains(&host), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // With the CA in certs.d/<host:port>/ (read per operation, no restart) the push and pull verify.
    std::fs::copy(pki.join("ca.crt"), certs_d.join(&host).join("ca.crt")).unwrap();
    let push = d.ok(&["push", &name]);
    assert!(push.contains("1: digest: sha256:"), "{push}");
    d.ok(&["rmi", &name]);
    d.ok(&["rmi", "busybox"]);
    let pull = d.ok(&["pull", &name]);
    assert!(pull.contains("Status: Downloaded newer image"), "{pull}");

    // A key without its certificate is a configuration error, reported as such.
    std::fs::write(certs_d.join(&host).join("client.key"), "x").unwrap();
    let err = fails(&d, &["pull", &name]);
    assert!(
        err.contains("missing client certificate client.cert for key client.key"),
        "{err}"
    );
    std::fs::remove_file(certs_d.join(&host).join("client.key")).unwrap();

    // Without the CA but listed as insecure: HTTPS without verification (this registry has no plain HTTP).
    std::fs::remove_file(certs_d.join(&host).join("ca.crt")).unwrap();
    restart(&mut d, &["--insecure-registry".into(), host.clone()], &env);
    d.ok(&["rmi", &name]);
    let pull = d.ok(&["pull", &name]);
    assert!(pull.contains("Status: Downloaded newer image"), "{pull}");
}

#[test]
fn certs_d_client_certificate() {
    require!();
    require!("docker-registry");
    require!("openssl");
    let mut d = Daemon::start();
    let Some(ip) = bridge_ip(&d) else {
        eprintln!("SKIPPED: berthd's test bridge has no IPv4 address");
        return;
    };
    let pki = d.root.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    make_certs(&pki, &ip);
    // A client certificate signed by the same CA, named as docker's certs.d wants it.
    openssl(
        &pki,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=berth test client",
        ],
    );
    std::fs::write(pki.join("client.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        &pki,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.cert",
            "-days",
            "2",
            "-extfile",
            "client.cnf",
        ],
    );
    let reg = Registry::start_tls(
        &ip,
        Some((&pki.join("server.crt"), &pki.join("server.key"))),
        Some(&pki.join("ca.crt")),
    );
    let host = format!("{ip}:{}", reg.port);
    let name = format!("{host}/mtls/bb:1");
    let certs_d = d.root.path().join("certs.d");
    let hd = certs_d.join(&host);
    std::fs::create_dir_all(&hd).unwrap();
    std::fs::copy(pki.join("ca.crt"), hd.join("ca.crt")).unwrap();
    let env = vec![(
        "BERTH_CERTS_D".to_string(),
        certs_d.to_str().unwrap().to_string(),
    )];
    restart(&mut d, &[], &env);
    d.import_busybox();
    d.ok(&["tag", "busybox", &name]);

    // The server is trusted but wants a client certificate.
    let err = fails(&d, &["push", &name]);
    assert!(err.contains(&host), "{err}");

    // With client.cert + client.key in certs.d the handshake completes.
    std::fs::copy(pki.join("client.cert"), hd.join("client.cert")).unwrap();
    std::fs::copy(pki.join("client.key"), hd.join("client.key")).unwrap();
    let push = d.ok(&["push", &name]);
    assert!(push.contains("1: digest: sha256:"), "{push}");
    d.ok(&["rmi", &name]);
    d.ok(&["rmi", "busybox"]);
    let pull = d.ok(&["pull", &name]);
    assert!(pull.contains("Status: Downloaded newer image"), "{pull}");
}
