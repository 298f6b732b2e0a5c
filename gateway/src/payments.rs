//! The payment providers the server is configured with.
//!
//! Stripe keys come per mode (`STRIPE_TEST_SECRET_KEY`, `STRIPE_LIVE_SECRET_KEY`): a
//! platform's test mode never touches live money. Handlers pass the client of the
//! caller's mode (or `None`) to billing, which decides what to do without one: record the
//! references clients send (`feria_billing::payment_methods`), or answer 409
//! `payment_provider_not_configured`. How a provider's failure looks on the wire is
//! billing's too (`feria_billing::stripe::api_error`).

use feria_billing::stripe::{StripeClient, StripeConfig, StripeError};
use feria_kernel::Mode;
use feria_kernel::provider_errors::ProviderErrors;

/// Stripe clients per mode, when configured.
#[derive(Clone, Default)]
pub struct PaymentProviders {
    test: Option<StripeClient>,
    live: Option<StripeClient>,
}

impl PaymentProviders {
    /// Clients for the keys given, their failed calls counted in `errors` (the server's
    /// metrics), all against `base_url` (`https://api.stripe.com`, or a
    /// Stripe-compatible server in tests).
    pub fn new(
        base_url: &str,
        test_key: Option<&str>,
        live_key: Option<&str>,
        errors: ProviderErrors,
    ) -> Result<PaymentProviders, StripeError> {
        let client = |key: &str| {
            StripeClient::new(StripeConfig::new(key.to_owned()).with_base_url(base_url.to_owned()))
                .map(|client| client.with_error_counter(errors.clone()))
        };
        Ok(PaymentProviders {
            test: test_key.map(client).transpose()?,
            live: live_key.map(client).transpose()?,
        })
    }

    /// The Stripe client of a mode, if that mode has a key.
    pub fn stripe(&self, mode: Mode) -> Option<&StripeClient> {
        match mode {
            Mode::Test => self.test.as_ref(),
            Mode::Live => self.live.as_ref(),
        }
    }
}
