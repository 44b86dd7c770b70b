//! Image references, parsed and normalised the way docker's `distribution/reference` does.
//!
//! `hello-world` → `docker.io/library/hello-world:latest`; `127.0.0.1:5000/team/app:1` keeps its registry.
//! Errors carry docker's wording ("invalid reference format...") because the CLI prints them verbatim.

use std::fmt;

/// Docker Hub's canonical domain as it appears in normalised names.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Namespace Docker Hub's official images live in.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Tag used when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository name (domain + path) docker accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a reference could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("invalid reference format: repository name must be lowercase")]
    NameNotLowercase,
    #[error(
        "invalid reference format: repository name (default/{0}) must be less than 256 characters"
    )]
    NameTooLong(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("invalid reference format: invalid digest {0:?}")]
    InvalidDigest(String),
}

/// A normalised image reference: domain, path, optional tag and digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses a reference and normalises it (default domain, `library/`), without adding a default tag.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() || s.len() > 4096 {
            return Err(ReferenceError::InvalidFormat);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                validate_digest(d).map_err(|_| ReferenceError::InvalidFormat)?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(ReferenceError::InvalidFormat);
                }
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::InvalidFormat);
        }
        if is_full_hex(name) {
            return Err(ReferenceError::HexName(name.to_string()));
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(&domain) {
            return Err(ReferenceError::InvalidFormat);
        }
        if !valid_path(&path) {
            if valid_path(&path.to_ascii_lowercase()) {
                return Err(ReferenceError::NameNotLowercase);
            }
            return Err(ReferenceError::InvalidFormat);
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong(path));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// Parses and adds `:latest` when the reference names neither a tag nor a digest (docker's
    /// `ParseNormalizedNamed` + `TagNameOnly`).
    pub fn parse_with_default_tag(s: &str) -> Result<Self, ReferenceError> {
        let mut r = Self::parse(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Registry domain (`docker.io`, `127.0.0.1:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// Repository path within the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
    /// Full repository name: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
    /// Short repository name as docker shows it: `busybox`, `127.0.0.1:5000/team/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }
    /// Familiar string with tag and/or digest: `hello-world:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
    /// Returns a copy with the given tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
    /// Returns a copy with the given digest and no tag.
    pub fn with_digest(&self, digest: &str) -> Self {
        Reference {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }
    /// The tag or digest to ask a registry for: the digest wins when both are given.
    pub fn reference_for_registry(&self) -> String {
        self.digest
            .clone()
            .or_else(|| self.tag.clone())
            .unwrap_or_else(|| DEFAULT_TAG.into())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits `name` into domain and path the way docker's `splitDockerDomain` does.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((d, rest))
            if d.contains('.') || d.contains(':') || d == "localhost" || d.to_lowercase() != d =>
        {
            (d.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == "index.docker.io" {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_REPO_PREFIX}{path}");
    }
    (domain, path)
}

fn is_full_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Path components: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*` joined by `/`.
fn valid_path(p: &str) -> bool {
    !p.is_empty() && p.split('/').all(valid_path_component)
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Domain: dot-separated host components or a bracketed IPv6 address, optional `:port`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty()
                    || !v6
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
                {
                    return false;
                }
                match after {
                    "" => return true,
                    a => match a.strip_prefix(':') {
                        Some(p) => return !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// `algorithm:encoded`; sha256 must be 64 lowercase hex digits.
pub fn validate_digest(d: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidDigest(d.to_string());
    let (alg, enc) = d.split_once(':').ok_or_else(bad)?;
    if alg.is_empty()
        || !alg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
    {
        return Err(bad());
    }
    match alg {
        "sha256"
            if enc.len() == 64 && enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(())
        }
        "sha512"
            if enc.len() == 128 && enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(())
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn official_image_is_normalised() {
        let r = Reference::parse_with_default_tag("hello-world").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/hello-world:latest");
        assert_eq!(r.familiar(), "hello-world:latest");
        assert_eq!(r.familiar_name(), "hello-world");
    }

    #[test]
    fn user_repo_on_hub() {
        let r = Reference::parse_with_default_tag("user/app:v1.2").unwrap();
        assert_eq!(r.to_string(), "docker.io/user/app:v1.2");
        assert_eq!(r.familiar(), "user/app:v1.2");
        let r = Reference::parse("index.docker.io/library/busybox").unwrap();
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.familiar_name(), "busybox");
        let r = Reference::parse("docker.io/library/a/b").unwrap();
        assert_eq!(r.familiar_name(), "library/a/b");
    }

    #[test]
    fn registry_with_port_and_localhost() {
        let r = Reference::parse_with_default_tag("127.0.0.1:5000/team/app:1").unwrap();
        assert_eq!(r.domain(), "127.0.0.1:5000");
        assert_eq!(r.path(), "team/app");
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.familiar(), "127.0.0.1:5000/team/app:1");
        let r = Reference::parse_with_default_tag("localhost/x").unwrap();
        assert_eq!(r.domain(), "localhost");
        assert_eq!(r.familiar(), "localhost/x:latest");
        let r = Reference::parse("localhost:5000/x").unwrap();
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.tag(), None);
        let r = Reference::parse("[::1]:5000/x:y").unwrap();
        assert_eq!(r.domain(), "[::1]:5000");
    }

    #[test]
    fn digests() {
        let r = Reference::parse_with_default_tag(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.familiar(), format!("busybox@{D}"));
        assert_eq!(r.reference_for_registry(), D);
        let r = Reference::parse(&format!("busybox:1.36@{D}")).unwrap();
        assert_eq!(r.tag(), Some("1.36"));
        assert_eq!(r.reference_for_registry(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1.36@{D}"));
        assert_eq!(
            Reference::parse("busybox@sha256:abc"),
            Err(ReferenceError::InvalidFormat)
        );
        assert!(validate_digest("sha256:abc").is_err());
    }

    #[test]
    fn invalid_references() {
        assert_eq!(
            Reference::parse("Busybox"),
            Err(ReferenceError::NameNotLowercase)
        );
        assert_eq!(
            Reference::parse("foo/Bar:1"),
            Err(ReferenceError::NameNotLowercase)
        );
        for bad in [
            "", ":tag", "a:", "a::b", "-a", "a-", "a/", "/a", "a//b", "a:t@", "a b", "a$", "a:-x",
            "a..b",
        ] {
            assert_eq!(
                Reference::parse(bad),
                Err(ReferenceError::InvalidFormat),
                "{bad:?}"
            );
        }
        assert_eq!(
            ReferenceError::InvalidFormat.to_string(),
            "invalid reference format"
        );
        assert_eq!(
            ReferenceError::NameNotLowercase.to_string(),
            "invalid reference format: repository name must be lowercase"
        );
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert!(matches!(
            Reference::parse(hex),
            Err(ReferenceError::HexName(_))
        ));
        let long = "a".repeat(300);
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::NameTooLong(_))
        ));
    }

    #[test]
    fn separators() {
        for ok in ["a_b", "a__b", "a---b", "a.b", "a.b/c_d-e"] {
            assert!(Reference::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a___b", "a._b", "a-.b"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
