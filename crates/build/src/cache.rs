//! Build cache keys. The classic builder reuses an image when a child of the same parent was committed for the
//! same instruction; berth makes that explicit: the key is a sha256 over the parent image id, the instruction
//! after substitution (plus the build args it used), and for COPY/ADD the content checksums of every source.
//! The engine stores the key with the image it commits and answers `find_cached(parent, key)`.

use sha2::{Digest, Sha256};

/// Errors computing keys (none today; kept so the module follows the one-enum rule if inputs grow).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {}

/// Builds a cache key from ordered parts; each part is length-prefixed so part boundaries cannot be forged.
#[derive(Debug, Clone)]
pub struct KeyBuilder {
    h: Sha256,
}

impl KeyBuilder {
    /// Starts a key for a step on top of `parent` (`""` for scratch).
    pub fn new(parent: &str) -> Self {
        let mut k = KeyBuilder { h: Sha256::new() };
        k.h.update(b"berth-build-cache-v1\0");
        k.part(parent);
        k
    }

    /// Adds one part.
    pub fn part(&mut self, s: &str) -> &mut Self {
        self.h.update((s.len() as u64).to_le_bytes());
        self.h.update(s.as_bytes());
        self
    }

    /// The key, `sha256:<hex>`.
    pub fn finish(&self) -> String {
        format!("sha256:{}", hex::encode(self.h.clone().finalize()))
    }
}

/// Key of a step: parent, instruction text, extra parts (build args in use, source checksums).
pub fn step_key(parent: &str, instruction: &str, extra: &[String]) -> String {
    let mut k = KeyBuilder::new(parent);
    k.part(instruction);
    for e in extra {
        k.part(e);
    }
    k.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_sensitive() {
        let a = step_key("sha256:p", "RUN echo hi", &[]);
        assert_eq!(a, step_key("sha256:p", "RUN echo hi", &[]));
        assert_ne!(a, step_key("sha256:q", "RUN echo hi", &[]));
        assert_ne!(a, step_key("sha256:p", "RUN echo ho", &[]));
        assert_ne!(a, step_key("sha256:p", "RUN echo hi", &["A=1".into()]));
        // Boundaries matter: ("ab","c") differs from ("a","bc").
        assert_ne!(
            step_key("", "ab", &["c".into()]),
            step_key("", "a", &["bc".into()])
        );
        assert!(a.starts_with("sha256:") && a.len() == 71);
    }
}
