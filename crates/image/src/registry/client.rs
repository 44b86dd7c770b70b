//! HTTP plumbing for one registry: endpoint choice (HTTPS; for loopback and insecure registries docker's
//! order: HTTPS without certificate verification, then plain HTTP), auth challenges, retries with back-off,
//! and the distribution-spec calls.

use super::RegistryError;
use crate::manifest::MANIFEST_ACCEPT;
use crate::{AuthConfig, StoreOptions};
use base64::Engine as _;
use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Largest manifest or config we read into memory.
const MAX_DOC: u64 = 16 << 20;
const RETRIES: u32 = 4;

/// The host serving a registry domain: Docker Hub's API lives at registry-1.docker.io.
pub fn endpoint_host(domain: &str) -> String {
    match domain {
        "docker.io" | "index.docker.io" => "registry-1.docker.io".into(),
        d => d.to_string(),
    }
}

/// Whether `domain` is an insecure registry (unverified HTTPS, then plain HTTP): loopback addresses,
/// `localhost`, and `--insecure-registry` entries (host, host:port or CIDR). As in dockerd, a host name is
/// matched against the CIDRs by the addresses it resolves to.
pub fn is_insecure(domain: &str, insecure: &[String]) -> bool {
    let host = host_part(domain);
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    let ip: Option<IpAddr> = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok();
    if ip.is_some_and(|i| i.is_loopback()) {
        return true;
    }
    if insecure.iter().any(|e| e == domain || e == host) {
        return true;
    }
    let cidrs: Vec<(&str, &str)> = insecure.iter().filter_map(|e| e.split_once('/')).collect();
    if cidrs.is_empty() {
        return false;
    }
    let addrs: Vec<IpAddr> = match ip {
        Some(ip) => vec![ip],
        None => {
            use std::net::ToSocketAddrs;
            (host, 0)
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip()).collect())
                .unwrap_or_default()
        }
    };
    addrs
        .iter()
        .any(|a| a.is_loopback() || cidrs.iter().any(|(net, bits)| cidr_contains(net, bits, *a)))
}

fn host_part(domain: &str) -> &str {
    if domain.starts_with('[') {
        return domain
            .split(']')
            .next()
            .map(|h| &domain[..h.len() + 1])
            .unwrap_or(domain);
    }
    domain.rsplit_once(':').map(|(h, _)| h).unwrap_or(domain)
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// A fetched manifest: body, content type, `Docker-Content-Digest`.
pub type ManifestResp = (Vec<u8>, Option<String>, Option<String>);

/// A request body that can be sent again on retry.
#[derive(Debug, Clone)]
pub enum Body<'a> {
    None,
    Bytes(&'a [u8], &'a str),
    File(PathBuf, u64),
}

/// Which kind of auth the registry asked for.
#[derive(Debug, Clone)]
enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
    },
    Basic,
}

/// A client for one registry.
pub struct Client {
    agent: ureq::Agent,
    /// Domain as in image references (`docker.io`, `127.0.0.1:5000`).
    pub domain: String,
    base: String,
    auth: Option<AuthConfig>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, String>>,
}

/// A response's useful parts.
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Box<dyn Read + Send + Sync>,
}

impl Resp {
    pub fn header(&self, n: &str) -> Option<&str> {
        self.headers
            .get(&n.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn bytes(self, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let mut v = Vec::new();
        self.body
            .take(limit)
            .read_to_end(&mut v)
            .map_err(|e| RegistryError::Io(e.to_string()))?;
        Ok(v)
    }
}

/// Extracts the `message` of a distribution-spec error body.
fn error_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        message: String,
        #[serde(default)]
        code: String,
    }
    #[derive(serde::Deserialize)]
    struct Es {
        errors: Vec<E>,
    }
    match serde_json::from_str::<Es>(body) {
        Ok(es) if !es.errors.is_empty() => es
            .errors
            .iter()
            .map(|e| {
                if e.message.is_empty() {
                    e.code.to_lowercase()
                } else {
                    e.message.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => body
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect(),
    }
}

/// Parses `Bearer realm="...",service="...",scope="..."`.
fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut s = rest;
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(k, v.to_string());
        s = next.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
    })
}

impl Client {
    pub fn new(
        domain: &str,
        opts: &StoreOptions,
        auth: Option<&AuthConfig>,
    ) -> Result<Self, RegistryError> {
        let insecure = is_insecure(domain, &opts.insecure_registries);
        let tls = super::tls::client_config(domain, &opts.certs_dirs, !insecure)?;
        let builder = || {
            ureq::AgentBuilder::new()
                .tls_config(tls.clone())
                .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        };
        let agent = builder()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .build();
        let scheme = if insecure {
            probe_https(builder(), &endpoint_host(domain))
        } else {
            "https"
        };
        let auth = auth.cloned().filter(|a| {
            !a.username.is_empty() || a.registry_token.is_some() || a.identity_token.is_some()
        });
        Ok(Client {
            agent,
            domain: domain.to_string(),
            base: format!("{scheme}://{}", endpoint_host(domain)),
            auth,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn host(&self) -> String {
        endpoint_host(&self.domain)
    }

    fn unreachable(&self, msg: impl std::fmt::Display) -> RegistryError {
        RegistryError::Unreachable {
            host: self.host(),
            msg: msg.to_string().replace('\n', " "),
        }
    }

    fn basic_header(&self) -> Option<String> {
        let a = self.auth.as_ref()?;
        if a.username.is_empty() {
            return None;
        }
        let raw = format!("{}:{}", a.username, a.password);
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }

    /// The Authorization header for `scope`, if we have one.
    fn auth_header(&self, scope: &[String]) -> Option<String> {
        if let Some(t) = self.auth.as_ref().and_then(|a| a.registry_token.clone()) {
            return Some(format!("Bearer {t}"));
        }
        match self
            .challenge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(Challenge::Basic) => self.basic_header(),
            Some(Challenge::Bearer { .. }) => self
                .tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&scope.join(" "))
                .map(|t| format!("Bearer {t}")),
            None => None,
        }
    }

    /// Fetches a bearer token for `scope` from the challenge's realm.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &[String],
    ) -> Result<(), RegistryError> {
        let mut url = url::Url::parse(realm)
            .map_err(|e| RegistryError::Protocol(format!("bad token realm {realm:?}: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scope {
                q.append_pair("scope", s);
            }
        }
        // An identity (refresh) token is exchanged with an OAuth2 POST, as docker does after `login`.
        let refresh = self.auth.as_ref().and_then(|a| a.identity_token.clone());
        let res = match refresh {
            Some(rt) => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("client_id", "berth"),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let sc = scope.join(" ");
                form.push(("scope", &sc));
                self.agent.post(realm).send_form(&form)
            }
            None => {
                let mut req = self.agent.get(url.as_str());
                if let Some(b) = self.basic_header() {
                    req = req.set("Authorization", &b);
                }
                req.call()
            }
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(401, r)) | Err(ureq::Error::Status(403, r)) => {
                let msg = error_message(&r.into_string().unwrap_or_default());
                return Err(RegistryError::Unauthorized {
                    host: self.host(),
                    msg: if msg.is_empty() {
                        "incorrect username or password".into()
                    } else {
                        msg
                    },
                });
            }
            Err(ureq::Error::Status(code, r)) => {
                return Err(RegistryError::Http {
                    host: self.host(),
                    status: code,
                    msg: error_message(&r.into_string().unwrap_or_default()),
                })
            }
            Err(e) => return Err(self.unreachable(e)),
        };
        #[derive(serde::Deserialize)]
        struct Tok {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let t: Tok = resp
            .into_json()
            .map_err(|e| RegistryError::Protocol(format!("token response: {e}")))?;
        let tok = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.join(" "), tok);
        Ok(())
    }

    /// Sends a request, handling auth challenges and retrying connection errors and 5xx with back-off.
    /// Non-2xx answers other than redirects become errors, except those listed in `ok_status`.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        scope: &[String],
        headers: &[(&str, &str)],
        body: Body<'_>,
        ok_status: &[u16],
    ) -> Result<Resp, RegistryError> {
        let url = if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        };
        let mut attempt = 0;
        let mut authed = false;
        loop {
            attempt += 1;
            let mut req = self.agent.request(method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = self.auth_header(scope) {
                req = req.set("Authorization", &a);
            }
            let res = match &body {
                Body::None => req.call(),
                Body::Bytes(b, ct) => req.set("Content-Type", ct).send_bytes(b),
                Body::File(p, len) => match std::fs::File::open(p) {
                    Ok(f) => req
                        .set("Content-Type", "application/octet-stream")
                        .set("Content-Length", &len.to_string())
                        .send(std::io::BufReader::with_capacity(256 * 1024, f)),
                    Err(e) => return Err(RegistryError::Io(format!("{}: {e}", p.display()))),
                },
            };
            let resp = match res {
                Ok(r) => r,
                Err(ureq::Error::Status(code, r)) if ok_status.contains(&code) => r,
                Err(ureq::Error::Status(401, r)) if !authed => {
                    authed = true;
                    let ch = r.header("www-authenticate").and_then(parse_challenge);
                    match ch {
                        Some(Challenge::Bearer { realm, service }) => {
                            self.fetch_token(&realm, service.as_deref(), scope)?;
                            *self.challenge.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(Challenge::Bearer { realm, service });
                        }
                        Some(Challenge::Basic) if self.basic_header().is_some() => {
                            *self.challenge.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(Challenge::Basic);
                        }
                        _ => {
                            return Err(RegistryError::Unauthorized {
                                host: self.host(),
                                msg: format!("authentication required by {}", self.host()),
                            })
                        }
                    }
                    attempt -= 1;
                    continue;
                }
                Err(ureq::Error::Status(401, r)) => {
                    let msg = error_message(&r.into_string().unwrap_or_default());
                    return Err(RegistryError::Unauthorized {
                        host: self.host(),
                        msg: if msg.is_empty() {
                            "authentication required".into()
                        } else {
                            msg
                        },
                    });
                }
                Err(ureq::Error::Status(403, r)) => {
                    return Err(RegistryError::Denied(error_message(
                        &r.into_string().unwrap_or_default(),
                    )));
                }
                Err(ureq::Error::Status(404, r)) => {
                    return Err(RegistryError::NotFound {
                        what: url_tail(&url),
                        msg: error_message(&r.into_string().unwrap_or_default()),
                    });
                }
                Err(ureq::Error::Status(code, r)) if code >= 500 && attempt < RETRIES => {
                    log::debug!("registry {}: {code} from {url}, retrying", self.host());
                    drop(r);
                    backoff(attempt);
                    continue;
                }
                Err(ureq::Error::Status(code, r)) => {
                    return Err(RegistryError::Http {
                        host: self.host(),
                        status: code,
                        msg: error_message(&r.into_string().unwrap_or_default()),
                    });
                }
                Err(ureq::Error::Transport(t)) if attempt < RETRIES && retryable(&t) => {
                    log::debug!("registry {}: {t}, retrying", self.host());
                    backoff(attempt);
                    continue;
                }
                Err(ureq::Error::Transport(t)) => return Err(self.unreachable(transport_msg(&t))),
            };
            let mut hm = HashMap::new();
            for n in resp.headers_names() {
                if let Some(v) = resp.header(&n) {
                    hm.insert(n.to_ascii_lowercase(), v.to_string());
                }
            }
            let status = resp.status();
            return Ok(Resp {
                status,
                headers: hm,
                body: Box::new(resp.into_reader()),
            });
        }
    }

    /// `GET /v2/`: checks the registry answers (and, with credentials, that they work).
    pub fn ping(&self) -> Result<(), RegistryError> {
        self.send("GET", "/v2/", &[], &[], Body::None, &[])
            .map(|_| ())
    }

    /// For `docker login`: forces an authenticated request so bad credentials fail.
    pub fn login_check(&self) -> Result<(), RegistryError> {
        self.ping()?;
        if self.auth.is_some()
            && self
                .challenge
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
        {
            // The registry let us in without asking: nothing to check (docker behaves the same).
        }
        Ok(())
    }

    pub fn pull_scope(path: &str) -> Vec<String> {
        vec![format!("repository:{path}:pull")]
    }

    pub fn push_scope(path: &str, from: Option<&str>) -> Vec<String> {
        let mut v = vec![format!("repository:{path}:pull,push")];
        if let Some(f) = from {
            v.push(format!("repository:{f}:pull"));
        }
        v
    }

    /// Fetches a manifest; returns (body, content type, digest header).
    pub fn get_manifest(
        &self,
        path: &str,
        reference: &str,
        scope: &[String],
    ) -> Result<ManifestResp, RegistryError> {
        let r = self.send(
            "GET",
            &format!("/v2/{path}/manifests/{reference}"),
            scope,
            &[("Accept", MANIFEST_ACCEPT)],
            Body::None,
            &[],
        )?;
        let ct = r.header("content-type").map(str::to_string);
        let dg = r.header("docker-content-digest").map(str::to_string);
        Ok((r.bytes(MAX_DOC)?, ct, dg))
    }

    /// Streams a blob.
    pub fn get_blob(
        &self,
        path: &str,
        digest: &str,
        scope: &[String],
    ) -> Result<Resp, RegistryError> {
        self.send(
            "GET",
            &format!("/v2/{path}/blobs/{digest}"),
            scope,
            &[],
            Body::None,
            &[],
        )
    }

    pub fn get_blob_bytes(
        &self,
        path: &str,
        digest: &str,
        scope: &[String],
    ) -> Result<Vec<u8>, RegistryError> {
        self.get_blob(path, digest, scope)?.bytes(MAX_DOC)
    }

    /// `HEAD /v2/<path>/blobs/<digest>`.
    pub fn blob_exists(
        &self,
        path: &str,
        digest: &str,
        scope: &[String],
    ) -> Result<bool, RegistryError> {
        match self.send(
            "HEAD",
            &format!("/v2/{path}/blobs/{digest}"),
            scope,
            &[],
            Body::None,
            &[],
        ) {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Tries a cross-repository mount; `Ok(None)` when mounted, else the upload location to use.
    pub fn mount_blob(
        &self,
        path: &str,
        digest: &str,
        from: &str,
        scope: &[String],
    ) -> Result<Option<String>, RegistryError> {
        let r = self.send(
            "POST",
            &format!("/v2/{path}/blobs/uploads/?mount={digest}&from={from}"),
            scope,
            &[("Content-Length", "0")],
            Body::None,
            &[],
        )?;
        if r.status == 201 {
            return Ok(None);
        }
        Ok(Some(self.location(&r)?))
    }

    /// Starts an upload session; returns its location.
    pub fn start_upload(&self, path: &str, scope: &[String]) -> Result<String, RegistryError> {
        let r = self.send(
            "POST",
            &format!("/v2/{path}/blobs/uploads/"),
            scope,
            &[("Content-Length", "0")],
            Body::None,
            &[],
        )?;
        self.location(&r)
    }

    fn location(&self, r: &Resp) -> Result<String, RegistryError> {
        let loc = r
            .header("location")
            .ok_or_else(|| RegistryError::Protocol("upload response without Location".into()))?;
        Ok(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else {
                format!("{}{loc}", self.base)
            },
        )
    }

    /// Finishes an upload monolithically with `PUT <location>?digest=`.
    pub fn finish_upload(
        &self,
        location: &str,
        digest: &str,
        body: Body<'_>,
        scope: &[String],
    ) -> Result<(), RegistryError> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={digest}");
        self.send("PUT", &url, scope, &[], body, &[]).map(|_| ())
    }

    /// `PUT /v2/<path>/manifests/<tag>`; returns the digest the registry reports (or ours).
    pub fn put_manifest(
        &self,
        path: &str,
        tag: &str,
        media_type: &str,
        body: &[u8],
        scope: &[String],
    ) -> Result<Option<String>, RegistryError> {
        let r = self.send(
            "PUT",
            &format!("/v2/{path}/manifests/{tag}"),
            scope,
            &[],
            Body::Bytes(body, media_type),
            &[],
        )?;
        Ok(r.header("docker-content-digest").map(str::to_string))
    }
}

/// Docker's endpoint order for an insecure registry: HTTPS (certificate not verified) when the registry
/// answers it at all, any HTTP status included, else plain HTTP. Short timeouts: a registry that does not
/// speak TLS fails the handshake at once, and an unreachable one fails the same way over HTTP afterwards.
fn probe_https(b: ureq::AgentBuilder, host: &str) -> &'static str {
    let agent = b
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build();
    match agent.get(&format!("https://{host}/v2/")).call() {
        Ok(_) | Err(ureq::Error::Status(..)) => "https",
        Err(e) => {
            log::debug!("registry {host}: HTTPS failed ({e}), falling back to HTTP");
            "http"
        }
    }
}

fn url_tail(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    match path.find("/v2/") {
        Some(i) => path[i + 4..].to_string(),
        None => path.to_string(),
    }
}

fn retryable(t: &ureq::Transport) -> bool {
    matches!(
        t.kind(),
        ureq::ErrorKind::ConnectionFailed
            | ureq::ErrorKind::Io
            | ureq::ErrorKind::Dns
            | ureq::ErrorKind::ProxyConnect
    )
}

fn transport_msg(t: &ureq::Transport) -> String {
    let mut s = match t.message() {
        Some(m) => format!("{}: {m}", t.kind()),
        None => t.kind().to_string(),
    };
    if let Some(src) = std::error::Error::source(t) {
        s.push_str(&format!(": {src}"));
    }
    s
}

fn backoff(attempt: u32) {
    std::thread::sleep(Duration::from_millis(200 * (1 << attempt.min(5))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_hosts() {
        let none: Vec<String> = vec![];
        assert!(is_insecure("127.0.0.1:5000", &none));
        assert!(is_insecure("127.5.0.1", &none));
        assert!(is_insecure("localhost:5000", &none));
        assert!(is_insecure("[::1]:5000", &none));
        assert!(!is_insecure("docker.io", &none));
        assert!(!is_insecure("10.0.0.5:5000", &none));
        let ins = vec!["10.0.0.0/8".to_string(), "reg.local:5000".to_string()];
        assert!(is_insecure("10.0.0.5:5000", &ins));
        assert!(is_insecure("reg.local:5000", &ins));
        assert!(!is_insecure("reg.local", &ins));
        assert_eq!(endpoint_host("docker.io"), "registry-1.docker.io");
    }

    #[test]
    fn challenges() {
        match parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        ) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.docker.io/token");
                assert_eq!(service.as_deref(), Some("registry.docker.io"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        ));
        assert_eq!(
            error_message(
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            "manifest unknown"
        );
    }

    #[test]
    fn unreachable_is_one_line() {
        let c = Client::new("127.0.0.1:1", &StoreOptions::default(), None).unwrap();
        let e = c.ping().unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("cannot reach registry 127.0.0.1:1: "), "{s}");
        assert!(!s.contains('\n'));
    }
}
