//! Webhook signatures: `Feria-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the
//! HMAC key is the endpoint's whole secret (`whsec_...`, as UTF-8 bytes) and the message
//! is `<t>.<raw body>` — the timestamp's decimal digits, one `.`, then the body's exact
//! bytes. See docs/EVENTS.md for the recipe and a worked example.

use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<hmac_sha2::Sha256>;

/// Lower-case hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Feria-Signature` header value.
pub fn header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of docs/EVENTS.md.
    #[test]
    fn the_documented_example_signs_as_documented() {
        let secret = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let body = br#"{"id":"evt_01JD0000000000000000000000","type":"product.created"}"#;
        assert_eq!(
            header(secret, 1_700_000_000, body),
            "t=1700000000,v1=0860a5b91f26e1472176ab79f8ecfb0a0d542acb5599063a88192057b856ae4d"
        );
    }

    /// RFC 4231 test case 2.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let Ok(mut mac) = HmacSha256::new_from_slice(b"Jefe") else {
            panic!("key");
        };
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
