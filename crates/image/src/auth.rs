//! Registry credentials: docker's `config.json` (`auths.<host>.auth` = base64 "user:pass").

/// Errors reading or writing config.json.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("docker config {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("docker config {path}: {msg}")]
    Invalid { path: String, msg: String },
}

/// Credentials for one registry, as the Docker API's `X-Registry-Auth` carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// A refresh token (docker's `identitytoken`).
    #[serde(
        default,
        rename = "identitytoken",
        skip_serializing_if = "Option::is_none"
    )]
    pub identity_token: Option<String>,
    /// A bearer token to use as is (docker's `registrytoken`).
    #[serde(
        default,
        rename = "registrytoken",
        skip_serializing_if = "Option::is_none"
    )]
    pub registry_token: Option<String>,
    #[serde(
        default,
        rename = "serveraddress",
        skip_serializing_if = "String::is_empty"
    )]
    pub server_address: String,
}
