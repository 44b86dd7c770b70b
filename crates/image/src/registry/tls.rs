//! TLS for registries, configured the way dockerd does it: the system CA bundle and webpki's roots, plus
//! per-registry files in `certs.d/<host[:port]>/` (berth's `/etc/berth/certs.d` and docker's
//! `/etc/docker/certs.d`): `*.crt` are extra CAs, `*.cert` + `*.key` (same base name) a client certificate.
//! For insecure registries the certificate is not verified (docker's `InsecureSkipVerify`): the handshake
//! signatures still are, so the session is encrypted, only the peer is not authenticated.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The system CA bundle (Debian's ca-certificates), read when present.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Errors reading a registry's TLS files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("missing key {key} for client certificate {cert}")]
    MissingKey { key: String, cert: String },
    #[error("missing client certificate {cert} for key {key}")]
    MissingCert { cert: String, key: String },
    #[error("tls configuration: {0}")]
    Config(String),
}

fn file_err(p: &Path, msg: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: p.display().to_string(),
        msg: msg.to_string(),
    }
}

/// The certs.d directories to read: `BERTH_CERTS_D` (colon-separated, for tests and unusual layouts), else
/// berth's own and docker's.
pub fn default_certs_dirs() -> Vec<PathBuf> {
    match std::env::var_os("BERTH_CERTS_D") {
        Some(v) => std::env::split_paths(&v).collect(),
        None => vec![
            PathBuf::from("/etc/berth/certs.d"),
            PathBuf::from("/etc/docker/certs.d"),
        ],
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// webpki's roots plus the system bundle, parsed once per process.
fn base_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut r = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Ok(it) = CertificateDer::pem_file_iter(SYSTEM_BUNDLE) {
            r.add_parsable_certificates(it.flatten());
        }
        r
    })
}

/// What certs.d holds for one registry.
#[derive(Default)]
struct HostFiles {
    cas: Vec<CertificateDer<'static>>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

/// Reads `<dir>/<domain>/` in every certs.d dir, as docker's `ReadCertsDirectory` does.
fn host_files(domain: &str, dirs: &[PathBuf]) -> Result<HostFiles, TlsError> {
    let mut out = HostFiles::default();
    // A domain is a host[:port]; never let it name another directory.
    if domain.is_empty() || domain.contains('/') || domain.starts_with('.') {
        return Ok(out);
    }
    for base in dirs {
        let dir = base.join(domain);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for n in &names {
            let p = dir.join(n);
            if n.ends_with(".crt") {
                for c in CertificateDer::pem_file_iter(&p).map_err(|e| file_err(&p, e))? {
                    out.cas.push(c.map_err(|e| file_err(&p, e))?);
                }
            } else if let Some(stem) = n.strip_suffix(".cert") {
                let key = format!("{stem}.key");
                if !names.contains(&key) {
                    return Err(TlsError::MissingKey {
                        key,
                        cert: n.clone(),
                    });
                }
                let chain = CertificateDer::pem_file_iter(&p)
                    .map_err(|e| file_err(&p, e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| file_err(&p, e))?;
                let kp = dir.join(&key);
                let k = PrivateKeyDer::from_pem_file(&kp).map_err(|e| file_err(&kp, e))?;
                // The first pair wins, as in docker (it keeps a list but Go's TLS offers the first match).
                if out.client.is_none() {
                    out.client = Some((chain, k));
                }
            } else if let Some(stem) = n.strip_suffix(".key") {
                let cert = format!("{stem}.cert");
                if !names.contains(&cert) {
                    return Err(TlsError::MissingCert {
                        cert,
                        key: n.clone(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A rustls client configuration for `domain`: verified against the roots and certs.d CAs, or (`verify`
/// false, for insecure registries) accepting any certificate.
pub fn client_config(
    domain: &str,
    dirs: &[PathBuf],
    verify: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let files = host_files(domain, dirs)?;
    let prov = provider();
    let builder = ClientConfig::builder_with_provider(prov.clone())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if verify {
        let mut roots = base_roots().clone();
        for c in files.cas {
            roots
                .add(c)
                .map_err(|e| TlsError::Config(format!("certs.d CA for {domain}: {e}")))?;
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert {
                algs: prov.signature_verification_algorithms,
            }))
    };
    let cfg = match files.client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Config(format!("client certificate for {domain}: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Accepts any server certificate (insecure registries only); handshake signatures are still checked.
#[derive(Debug)]
struct AnyCert {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_without_cert_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path().join("reg.example:5000");
        std::fs::create_dir(&h).unwrap();
        std::fs::write(h.join("client.key"), "x").unwrap();
        let e = client_config("reg.example:5000", &[d.path().to_path_buf()], true)
            .expect_err("refused");
        assert_eq!(
            e.to_string(),
            "missing client certificate client.cert for key client.key"
        );
        // Another registry's directory is not read.
        assert!(client_config("other:5000", &[d.path().to_path_buf()], true).is_ok());
        assert!(client_config("../x", &[d.path().to_path_buf()], false).is_ok());
    }
}
