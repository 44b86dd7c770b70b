//! Registry client per the OCI distribution spec.

/// Registry errors.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {host}: {msg}")]
    Unreachable { host: String, msg: String },
}

impl RegistryError {
    pub fn http_status(&self) -> u16 {
        500
    }
}

pub mod pull;
pub mod push;

/// `docker login` check.
pub fn login(
    _o: &crate::StoreOptions,
    _s: Option<&str>,
    _a: &crate::AuthConfig,
) -> crate::Result<String> {
    Err(crate::Error::InvalidArgument("not implemented yet".into()))
}
