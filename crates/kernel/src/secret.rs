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

/// A URL for logs and errors: its password (`user:PASSWORD@`, or a `password=` query
/// parameter, as libpq and tokio-postgres accept) shown as `***`. For the database URL,
/// `SMTP_URL` and any other URL that may carry credentials.
#[derive(Clone, Copy)]
pub struct RedactedUrl<'a>(pub &'a str);

impl std::fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.0;
        let (head, query) = match url.split_once('?') {
            Some((head, query)) => (head, Some(query)),
            None => (url, None),
        };
        match (head.find("://"), head.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                match head[scheme_end + 3..at].split_once(':') {
                    Some((user, _)) => {
                        write!(f, "{}{user}:***{}", &head[..scheme_end + 3], &head[at..])?;
                    }
                    None => f.write_str(head)?,
                }
            }
            _ => f.write_str(head)?,
        }
        if let Some(query) = query {
            f.write_str("?")?;
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    f.write_str("&")?;
                }
                match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        write!(f, "{key}=***")?;
                    }
                    _ => f.write_str(pair)?,
                }
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{self}\"")
    }
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
    fn urls_are_shown_without_their_passwords() {
        let shown = |url| RedactedUrl(url).to_string();
        assert_eq!(
            shown("postgres://feria:s3cret@db:5432/feria?sslmode=verify-full"),
            "postgres://feria:***@db:5432/feria?sslmode=verify-full"
        );
        assert_eq!(
            shown("postgres://feria@db/feria?password=s3cret&sslmode=require"),
            "postgres://feria@db/feria?password=***&sslmode=require"
        );
        assert_eq!(
            shown("smtp://mailer:p%40ss@smtp.example:587"),
            "smtp://mailer:***@smtp.example:587"
        );
        assert_eq!(
            shown("postgres://feria@db/feria"),
            "postgres://feria@db/feria"
        );
        assert_eq!(shown("sqlite://./x.db"), "sqlite://./x.db");
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
