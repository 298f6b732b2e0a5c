//! Secrets (API keys, session tokens): random, shown once, stored only as SHA-256 digests.
//!
//! A digest is enough for a lookup because a secret carries 256 random bits: unlike a
//! password it cannot be guessed, so a fast hash is safe and keeps argon2 off the
//! per-request path.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// `prefix` followed by 32 random bytes in lower-case hex (64 characters).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Lower-case hex SHA-256 of `secret`: the form in which secrets are stored.
pub fn digest(secret: &str) -> String {
    digest_bytes(secret.as_bytes())
}

/// Lower-case hex SHA-256 of arbitrary bytes (content fingerprints).
pub fn digest_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A secret for display: its prefix and last four characters (`fer_live_…9f3a`).
pub fn mask(secret: &str, prefix_len: usize) -> String {
    let prefix: String = secret.chars().take(prefix_len).collect();
    let tail: String = {
        let chars: Vec<char> = secret.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    format!("{prefix}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_hex() {
        let a = random_token("fer_test_");
        let b = random_token("fer_test_");
        assert!(a.starts_with("fer_test_"));
        assert_eq!(a.len(), "fer_test_".len() + 64);
        assert_ne!(a, b);
    }

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(mask("fer_live_0123456789abcdef", 9), "fer_live_…cdef");
    }
}
