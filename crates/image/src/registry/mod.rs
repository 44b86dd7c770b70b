//! Registry client per the OCI distribution spec: ping, Bearer token and Basic auth, manifests and blobs,
//! pull and push. Blocking (ureq); parallel layer transfers run on scoped threads.

mod client;
pub mod pull;
pub mod push;
pub mod tls;

pub use client::{endpoint_host, is_insecure, Client};

use crate::{AuthConfig, Result, StoreOptions};

/// Registry errors. Messages are one line, as the CLI prints them after "Error response from daemon: ".
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {host}: {msg}")]
    Unreachable { host: String, msg: String },
    #[error("unauthorized: {msg}")]
    Unauthorized { host: String, msg: String },
    #[error("denied: {0}")]
    Denied(String),
    #[error("{what} not found: {msg}")]
    NotFound { what: String, msg: String },
    #[error("registry {host} answered {status}: {msg}")]
    Http {
        host: String,
        status: u16,
        msg: String,
    },
    #[error("registry protocol error: {0}")]
    Protocol(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
}

impl RegistryError {
    /// HTTP status the Docker API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            RegistryError::Unauthorized { .. } => 401,
            RegistryError::Denied(_) => 403,
            RegistryError::NotFound { .. } => 404,
            _ => 500,
        }
    }
}

/// `docker login`: checks credentials against the registry (Docker Hub when `server` is `None`).
pub fn login(opts: &StoreOptions, server: Option<&str>, auth: &AuthConfig) -> Result<String> {
    let host = server
        .map(crate::auth::normalize_server)
        .unwrap_or_else(|| crate::reference::DEFAULT_DOMAIN.to_string());
    let c = Client::new(&host, opts, Some(auth))?;
    c.login_check()?;
    Ok("Login Succeeded".into())
}
