//! Secrets at rest: values the server must read back (webhook signing secrets, receipt
//! signing keys) are stored sealed with XChaCha20-Poly1305 under the server's secret key
//! (`FERIA_SECRET_KEY`), so a copy of the database alone does not reveal them.
//!
//! A sealed value is text: `fsk1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The
//! nonce is 24 random bytes (XChaCha's extended nonce: random nonces are safe). The key id
//! (8 hex digits of a SHA-256 of the key) names the key that sealed it, so a [`Keyring`]
//! holding the current key and the previous one opens both while `feria secrets rotate`
//! reseals everything under the current key. Each value is sealed with a *context* — the
//! row it belongs to (`webhook_endpoint:we_...`) — as associated data: a sealed value
//! copied into another row does not open there.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix of every sealed value (format version 1).
pub const PREFIX: &str = "fsk1:";
const NONCE_BYTES: usize = 24;

/// Why a key or a sealed value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error(
        "a secret key is 32 bytes written as 64 hexadecimal digits or in base64 (44 characters); this one is neither"
    )]
    BadKey,
    #[error("the value is not sealed (no `{PREFIX}` prefix)")]
    NotSealed,
    #[error("the sealed value is malformed")]
    Malformed,
    #[error(
        "the value was sealed under key {0}, which is neither FERIA_SECRET_KEY nor FERIA_SECRET_KEY_PREVIOUS"
    )]
    UnknownKey(String),
    #[error("the sealed value does not open under key {0} (altered, or sealed for another row)")]
    Forged(String),
}

/// One 32-byte key and its id.
struct SecretKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl SecretKey {
    fn new(bytes: &[u8; 32]) -> SecretKey {
        let digest = Sha256::new()
            .chain_update(b"feria secret key id\0")
            .chain_update(bytes)
            .finalize();
        SecretKey {
            id: hex::encode(&digest[..4]),
            cipher: XChaCha20Poly1305::new(&(*bytes).into()),
        }
    }
}

/// The keys secrets are sealed with: the current one, and while a rotation is under way
/// the previous one (which still opens, never seals). Cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    current: Arc<SecretKey>,
    previous: Option<Arc<SecretKey>>,
}

impl std::fmt::Debug for Keyring {
    /// Key ids only, never the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field("previous", &self.previous.as_ref().map(|k| &k.id))
            .finish()
    }
}

/// Reads a key written as 64 hex digits or as base64 (standard or URL alphabet, padded or
/// not) of exactly 32 bytes; surrounding white space is ignored.
pub fn parse_key(text: &str) -> Result<[u8; 32], SealError> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|_| SealError::BadKey)?
    } else {
        [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(SealError::BadKey)?
    };
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| SealError::BadKey)
}

/// A new random key in the form `FERIA_SECRET_KEY` takes (standard base64, 44 characters).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// Whether `value` is a sealed value (it may still fail to open).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// The id of the key that sealed `value`, if it is sealed.
pub fn key_id_of(value: &str) -> Option<&str> {
    value.strip_prefix(PREFIX)?.split(':').next()
}

impl Keyring {
    pub fn new(current: &[u8; 32], previous: Option<&[u8; 32]>) -> Keyring {
        let current = Arc::new(SecretKey::new(current));
        let previous = previous
            .map(|bytes| Arc::new(SecretKey::new(bytes)))
            .filter(|previous| previous.id != current.id);
        Keyring { current, previous }
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// The id of the previous key, during a rotation.
    pub fn previous_id(&self) -> Option<&str> {
        self.previous.as_ref().map(|k| k.id.as_str())
    }

    /// Seals `plaintext` for `context` under the current key.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let nonce = XNonce::from(nonce);
        // Encryption fails only past the cipher's message limit (256 GiB); the values
        // sealed here are a few dozen bytes.
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        format!(
            "{PREFIX}{}:{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(out)
        )
    }

    /// [`Keyring::seal`] of a text.
    pub fn seal_str(&self, plaintext: &str, context: &str) -> String {
        self.seal(plaintext.as_bytes(), context)
    }

    /// Opens a value sealed for `context` under the current or the previous key.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let rest = sealed.strip_prefix(PREFIX).ok_or(SealError::NotSealed)?;
        let (key_id, body) = rest.split_once(':').ok_or(SealError::Malformed)?;
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|key| key.id == key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Malformed)?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Malformed)?;
        key.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Forged(key_id.to_owned()))
    }

    /// [`Keyring::open`] of a sealed text.
    pub fn open_str(&self, sealed: &str, context: &str) -> Result<String, SealError> {
        String::from_utf8(self.open(sealed, context)?).map_err(|_| SealError::Malformed)
    }

    /// Whether `value` must be sealed again to be under the current key: a clear value
    /// (stored before secrets were sealed) or one sealed under another key.
    pub fn needs_reseal(&self, value: &str) -> bool {
        key_id_of(value) != Some(self.current.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [7; 32];
    const B: [u8; 32] = [9; 32];

    #[test]
    fn a_sealed_value_opens_under_its_context_only() {
        let ring = Keyring::new(&A, None);
        let sealed = ring.seal_str("whsec_abc", "webhook_endpoint:we_1");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(
            ring.open_str(&sealed, "webhook_endpoint:we_1").unwrap(),
            "whsec_abc"
        );
        assert!(matches!(
            ring.open_str(&sealed, "webhook_endpoint:we_2"),
            Err(SealError::Forged(_))
        ));
        // Two seals of one value differ (random nonces).
        assert_ne!(sealed, ring.seal_str("whsec_abc", "webhook_endpoint:we_1"));
    }

    #[test]
    fn the_previous_key_opens_during_a_rotation_and_is_then_refused() {
        let old = Keyring::new(&A, None);
        let sealed = old.seal_str("s", "c");
        let rotating = Keyring::new(&B, Some(&A));
        assert_eq!(rotating.open_str(&sealed, "c").unwrap(), "s");
        assert!(rotating.needs_reseal(&sealed));
        let resealed = rotating.seal_str("s", "c");
        assert!(!rotating.needs_reseal(&resealed));
        assert_eq!(key_id_of(&resealed), Some(rotating.current_id()));
        let after = Keyring::new(&B, None);
        assert!(matches!(
            after.open_str(&sealed, "c"),
            Err(SealError::UnknownKey(_))
        ));
        assert_eq!(after.open_str(&resealed, "c").unwrap(), "s");
    }

    #[test]
    fn keys_parse_from_hex_and_base64_and_nothing_else() {
        let hex_key = "07".repeat(32);
        assert_eq!(parse_key(&hex_key).unwrap(), A);
        assert_eq!(parse_key(&STANDARD.encode(A)).unwrap(), A);
        assert_eq!(parse_key(&URL_SAFE_NO_PAD.encode(A)).unwrap(), A);
        assert_eq!(parse_key(&format!(" {}\n", STANDARD.encode(A))).unwrap(), A);
        assert_eq!(parse_key("short"), Err(SealError::BadKey));
        assert_eq!(
            parse_key(&STANDARD.encode([1u8; 16])),
            Err(SealError::BadKey)
        );
        assert_eq!(parse_key(&generate_key()).map(|k| k.len()), Ok(32));
    }

    #[test]
    fn altered_and_malformed_values_are_refused() {
        let ring = Keyring::new(&A, None);
        let sealed = ring.seal_str("secret", "c");
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(ring.open_str(&altered, "c").is_err());
        assert_eq!(ring.open_str("whsec_clear", "c"), Err(SealError::NotSealed));
        assert_eq!(
            ring.open_str(&format!("{PREFIX}{}:!!", ring.current_id()), "c"),
            Err(SealError::Malformed)
        );
        assert!(!format!("{ring:?}").contains("07"));
    }
}
