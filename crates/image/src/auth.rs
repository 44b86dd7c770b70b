//! Registry credentials in docker's `config.json` (`auths.<host>.auth` = base64 "user:pass"), found in
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. Other keys in the file are preserved.

use base64::Engine as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Docker Hub's key in `auths`.
pub const HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// Errors reading or writing config.json.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("docker config {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("docker config {path}: {msg}")]
    Invalid { path: String, msg: String },
    #[error("cannot find the docker config directory: neither DOCKER_CONFIG nor HOME is set")]
    NoConfigDir,
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

impl AuthConfig {
    pub fn basic(user: &str, pass: &str) -> Self {
        AuthConfig {
            username: user.into(),
            password: pass.into(),
            ..Default::default()
        }
    }

    /// Decodes the API's `X-Registry-Auth` header (base64url JSON; an empty or "{}" value means none).
    pub fn from_header(h: &str) -> Option<Self> {
        let h = h.trim();
        if h.is_empty() {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(h)
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('='))
            })
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
            .ok()?;
        let a: AuthConfig = serde_json::from_slice(&raw).ok()?;
        (!a.username.is_empty() || a.identity_token.is_some() || a.registry_token.is_some())
            .then_some(a)
    }
}

/// Normalises a `docker login` server argument to a registry domain: scheme and path dropped, Docker Hub's
/// aliases folded into `docker.io`.
pub fn normalize_server(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        h => h.to_string(),
    }
}

/// The `auths` key docker uses for a domain.
pub fn config_key(domain: &str) -> String {
    if normalize_server(domain) == "docker.io" {
        HUB_CONFIG_KEY.into()
    } else {
        domain.to_string()
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn config_path() -> Result<PathBuf, AuthError> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("config.json"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or(AuthError::NoConfigDir)?;
    Ok(PathBuf::from(home).join(".docker/config.json"))
}

fn read_config(path: &Path) -> Result<serde_json::Value, AuthError> {
    match fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(b) => serde_json::from_slice(&b).map_err(|e| AuthError::Invalid {
            path: path.display().to_string(),
            msg: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(source) => Err(AuthError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn write_config(path: &Path, v: &serde_json::Value) -> Result<(), AuthError> {
    let io = |source| AuthError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode_0600()
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&serde_json::to_vec_pretty(v).expect("serialisable"))
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// Credentials stored for `domain` in the config file at `path`.
pub fn lookup_at(path: &Path, domain: &str) -> Result<Option<AuthConfig>, AuthError> {
    let v = read_config(path)?;
    let key = config_key(domain);
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let entry = auths.get(&key).or_else(|| {
        // Keys are sometimes stored with a scheme ("https://reg:5000").
        auths
            .iter()
            .find(|(k, _)| normalize_server(k) == normalize_server(domain))
            .map(|(_, v)| v)
    });
    let Some(entry) = entry else { return Ok(None) };
    let mut a = AuthConfig {
        server_address: key,
        ..Default::default()
    };
    if let Some(enc) = entry
        .get("auth")
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(enc)
            .map_err(|e| AuthError::Invalid {
                path: path.display().to_string(),
                msg: format!("auths.{domain}.auth: {e}"),
            })?;
        let s = String::from_utf8_lossy(&raw);
        let (u, p) = s.split_once(':').ok_or_else(|| AuthError::Invalid {
            path: path.display().to_string(),
            msg: format!("auths.{domain}.auth is not user:password"),
        })?;
        a.username = u.into();
        a.password = p.into();
    }
    a.identity_token = entry
        .get("identitytoken")
        .and_then(|x| x.as_str())
        .map(str::to_string);
    Ok((!a.username.is_empty() || a.identity_token.is_some()).then_some(a))
}

/// Credentials for `domain` from the default config file.
pub fn lookup(domain: &str) -> Result<Option<AuthConfig>, AuthError> {
    lookup_at(&config_path()?, domain)
}

/// Stores `user:pass` for `domain` (`docker login`).
pub fn store_at(path: &Path, domain: &str, user: &str, pass: &str) -> Result<(), AuthError> {
    let mut v = read_config(path)?;
    if !v.is_object() {
        v = serde_json::json!({});
    }
    let auths = v
        .as_object_mut()
        .expect("object")
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    auths
        .as_object_mut()
        .expect("object")
        .insert(config_key(domain), serde_json::json!({ "auth": enc }));
    write_config(path, &v)
}

pub fn store(domain: &str, user: &str, pass: &str) -> Result<(), AuthError> {
    store_at(&config_path()?, domain, user, pass)
}

/// Removes stored credentials (`docker logout`); returns whether there were any.
pub fn remove_at(path: &Path, domain: &str) -> Result<bool, AuthError> {
    let mut v = read_config(path)?;
    let key = config_key(domain);
    let removed = v.get_mut("auths").and_then(|a| a.as_object_mut()).map(|a| {
        let before = a.len();
        a.retain(|k, _| k != &key && normalize_server(k) != normalize_server(domain));
        before != a.len()
    });
    if removed == Some(true) {
        write_config(path, &v)?;
        return Ok(true);
    }
    Ok(false)
}

pub fn remove(domain: &str) -> Result<bool, AuthError> {
    remove_at(&config_path()?, domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_config_json() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.json");
        fs::write(&p, r#"{"credsStore":"","psFormat":"x"}"#).unwrap();
        assert_eq!(lookup_at(&p, "127.0.0.1:5000").unwrap(), None);
        store_at(&p, "127.0.0.1:5000", "user", "p:ss").unwrap();
        store_at(&p, "docker.io", "hub", "pw").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "x", "other keys kept");
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dXNlcjpwOnNz");
        assert!(v["auths"][HUB_CONFIG_KEY].is_object());
        let a = lookup_at(&p, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("user", "p:ss"));
        assert_eq!(
            lookup_at(&p, "index.docker.io").unwrap().unwrap().username,
            "hub"
        );
        assert!(remove_at(&p, "127.0.0.1:5000").unwrap());
        assert!(!remove_at(&p, "127.0.0.1:5000").unwrap());
        assert_eq!(lookup_at(&p, "127.0.0.1:5000").unwrap(), None);
    }

    #[test]
    fn header_decoding() {
        let h = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"u","password":"p","serveraddress":"r"}"#);
        let a = AuthConfig::from_header(&h).unwrap();
        assert_eq!(a.username, "u");
        assert_eq!(AuthConfig::from_header(""), None);
        assert_eq!(
            AuthConfig::from_header(&base64::engine::general_purpose::URL_SAFE.encode("{}")),
            None
        );
        assert_eq!(normalize_server("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_server("http://127.0.0.1:5000/"), "127.0.0.1:5000");
    }
}
