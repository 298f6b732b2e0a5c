//! The payment providers the server is configured with, and how their failures look on
//! the wire.
//!
//! Stripe keys come per mode (`STRIPE_TEST_SECRET_KEY`, `STRIPE_LIVE_SECRET_KEY`): a
//! platform's test mode never touches live money. Without a key for a mode, the users'
//! payment routes record the references clients send (see `routes/user_payments.rs`).

use feria_billing::stripe::{StripeClient, StripeConfig, StripeError};
use feria_kernel::{ApiError, Mode};

/// Stripe clients per mode, when configured.
#[derive(Clone, Default)]
pub struct PaymentProviders {
    test: Option<StripeClient>,
    live: Option<StripeClient>,
}

impl PaymentProviders {
    /// Clients for the keys given, all against `base_url` (`https://api.stripe.com`, or a
    /// Stripe-compatible server in tests).
    pub fn new(
        base_url: &str,
        test_key: Option<&str>,
        live_key: Option<&str>,
    ) -> Result<PaymentProviders, StripeError> {
        let client = |key: &str| {
            StripeClient::new(StripeConfig::new(key.to_owned()).with_base_url(base_url.to_owned()))
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

    /// The Stripe client of a mode, or 409 `payment_provider_not_configured`.
    pub fn require_stripe(&self, mode: Mode) -> Result<&StripeClient, ApiError> {
        self.stripe(mode).ok_or_else(|| {
            ApiError::coded(
                feria_contracts::ContractCode::PaymentProviderNotConfigured,
                format!("no Stripe key is configured for {mode} mode on this server"),
            )
        })
    }
}

/// A provider failure in the one error shape, Stripe's own code and message in `details`:
/// a request Stripe refused → 422 `payment_provider_rejected`; Stripe unreachable, slow,
/// overloaded, or refusing our own key → 503 `payment_provider_unavailable`. The mapping
/// lives in billing (`feria_billing::stripe::api_error`) so that settlements answer the
/// same way.
pub fn provider_error(error: StripeError) -> ApiError {
    feria_billing::stripe::api_error(error)
}
