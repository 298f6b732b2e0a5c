//! How to reach Stripe.

use std::fmt;
use std::time::Duration;

/// Stripe's API.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
/// The API version every request pins (`Stripe-Version`), so an upgrade of the account's
/// default version in Stripe's dashboard cannot change what this client receives.
pub const STRIPE_API_VERSION: &str = "2024-06-20";
/// Bound on a whole request, from connecting to the last byte of the answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on establishing the connection (and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Configuration of a [`StripeClient`](super::StripeClient).
#[derive(Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com`, or a Stripe-compatible server (`http://127.0.0.1:8420`
    /// for localstripe in tests). No trailing `/v1`.
    pub base_url: String,
    /// The secret key, `sk_test_...` or `sk_live_...` (a restricted `rk_...` works for the
    /// calls it allows). Never logged: `Debug` masks it.
    pub secret_key: String,
    /// Bound on a whole request.
    pub timeout: Duration,
    /// Bound on connecting.
    pub connect_timeout: Duration,
}

impl StripeConfig {
    /// Stripe's API with the default timeouts.
    pub fn new(secret_key: impl Into<String>) -> Self {
        StripeConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            secret_key: secret_key.into(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Whether the key is a test-mode key (`sk_test_`, `rk_test_`).
    pub fn is_test_mode(&self) -> bool {
        self.secret_key.starts_with("sk_test_") || self.secret_key.starts_with("rk_test_")
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("base_url", &self.base_url)
            .field("secret_key", &mask(&self.secret_key))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// `sk_test_…abcd`: the mode prefix and the last four characters, as Stripe masks keys.
fn mask(key: &str) -> String {
    let prefix_len = key
        .match_indices('_')
        .nth(1)
        .map(|(i, _)| i + 1)
        .unwrap_or(0);
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < prefix_len + 8 {
        return "***".to_owned();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{}…{tail}", &key[..prefix_len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let config = StripeConfig::new("sk_test_51Habcdefghijklmnop1234");
        let shown = format!("{config:?}");
        assert!(shown.contains("sk_test_…1234"), "{shown}");
        assert!(!shown.contains("abcdefghijklmnop"), "{shown}");
        assert_eq!(mask("short"), "***");
        assert!(config.is_test_mode());
        assert!(!StripeConfig::new("sk_live_x").is_test_mode());
    }
}
