//! What can go wrong talking to Stripe, and what of it a client of Feria may see.

use feria_kernel::{ApiError, FieldError};

/// An error from the Stripe client.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with its error envelope (`{"error": {"type", "code", ...}}`), or
    /// with a non-success status and no readable envelope.
    #[error("{0}")]
    Api(Box<StripeApiError>),
    /// No complete answer within the configured timeout. The request may have been
    /// carried out: retry with the same idempotency key.
    #[error("Stripe did not answer in time")]
    Timeout,
    /// The connection failed (refused, reset, TLS, DNS). Retry with the same key.
    #[error("could not reach Stripe: {0}")]
    Transport(#[source] reqwest::Error),
    /// A success status whose body is not what the API documents.
    #[error("Stripe's answer (HTTP {status}) could not be read: {message}")]
    Decode { status: u16, message: String },
    /// A parameter the client refused to send (an id that is not a Stripe id, an amount
    /// Stripe cannot represent, an idempotency key out of bounds).
    #[error("invalid {field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    /// The client could not be built from its configuration.
    #[error("invalid Stripe configuration: {0}")]
    Config(String),
}

/// Stripe's error envelope, with the response's status and headers that matter.
///
/// Boxed inside [`StripeError::Api`] so that every `Result` of the client stays small.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Stripe answered {status} {kind}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct StripeApiError {
    /// The HTTP status (402 for a declined card, 400 for a bad parameter, ...).
    pub status: u16,
    /// `error.type`: `card_error`, `invalid_request_error`, `idempotency_error`,
    /// `api_error`, ...
    pub kind: String,
    /// `error.code`: `card_declined`, `resource_missing`, `balance_insufficient`, ...
    pub code: Option<String>,
    /// `error.message`: for card errors, a sentence meant for the customer.
    pub message: String,
    /// `error.param`: the request parameter at fault.
    pub param: Option<String>,
    /// `error.decline_code` of a card decline (`insufficient_funds`, ...).
    pub decline_code: Option<String>,
    /// `error.charge`: the failed charge of a decline.
    pub charge: Option<String>,
    /// The `Request-Id` header: quote it to Stripe's support.
    pub request_id: Option<String>,
    /// The `Stripe-Should-Retry` header, when Stripe sent one.
    pub should_retry: Option<bool>,
}

impl StripeError {
    pub(crate) fn api(error: StripeApiError) -> Self {
        StripeError::Api(Box::new(error))
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        StripeError::InvalidInput {
            field,
            message: message.into(),
        }
    }

    /// Stripe's envelope, when Stripe answered with one.
    pub fn api_error(&self) -> Option<&StripeApiError> {
        match self {
            StripeError::Api(error) => Some(error),
            _ => None,
        }
    }

    /// The HTTP status Stripe answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        self.api_error().map(|e| e.status)
    }

    /// Stripe's `error.code` (`card_declined`), if any.
    pub fn code(&self) -> Option<&str> {
        self.api_error().and_then(|e| e.code.as_deref())
    }

    /// How the call failed, for counting (`feria_provider_errors_total{code}`): Stripe's
    /// `error.code` (`card_declined`, `resource_missing`), else its `error.type`
    /// (`api_error`), else what went wrong on the way (`timeout`, `unreachable`,
    /// `unreadable_answer`, `invalid_input`, `config`). Stripe's values are kept to
    /// lower-case letters, digits and `_`, at most 64 of them; the server bounds how many
    /// distinct ones it keeps.
    pub fn metric_code(&self) -> String {
        match self {
            StripeError::Api(error) => {
                let raw = error.code.as_deref().unwrap_or(&error.kind);
                let code: String = raw
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect::<String>()
                    .to_ascii_lowercase();
                if code.is_empty() {
                    format!("http_{}", error.status)
                } else {
                    code
                }
            }
            StripeError::Timeout => "timeout".to_owned(),
            StripeError::Transport(_) => "unreachable".to_owned(),
            StripeError::Decode { .. } => "unreadable_answer".to_owned(),
            StripeError::InvalidInput { .. } => "invalid_input".to_owned(),
            StripeError::Config(_) => "config".to_owned(),
        }
    }

    /// Stripe's `error.decline_code`, if any.
    pub fn decline_code(&self) -> Option<&str> {
        self.api_error().and_then(|e| e.decline_code.as_deref())
    }

    /// Whether the same request, sent again with the same idempotency key, may succeed:
    /// timeouts and connection failures, 409 (a concurrent request on the same object or
    /// key), 429 and 5xx — unless Stripe said otherwise with `Stripe-Should-Retry`.
    /// A card decline, a bad parameter, a wrong key or a reused idempotency key with other
    /// parameters are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            StripeError::Api(error) => error
                .should_retry
                .unwrap_or(error.status == 409 || error.status == 429 || error.status >= 500),
            StripeError::Timeout | StripeError::Transport(_) => true,
            StripeError::Decode { .. }
            | StripeError::InvalidInput { .. }
            | StripeError::Config(_) => false,
        }
    }

    /// Field details for a wire error (`ApiError::details`): Stripe's type, code, decline
    /// code, parameter and message, each under a `stripe.*` field.
    ///
    /// Stripe's message is left out where it concerns our side rather than the request —
    /// authentication (401, 403: it quotes our key, masked) and Stripe's own failures
    /// (5xx) — and transport failures are described without internals.
    pub fn details(&self) -> Vec<FieldError> {
        match self {
            StripeError::Api(error) => {
                let mut details = vec![FieldError::new("stripe.type", error.kind.clone())];
                if let Some(code) = &error.code {
                    details.push(FieldError::new("stripe.code", code.clone()));
                }
                if let Some(decline_code) = &error.decline_code {
                    details.push(FieldError::new("stripe.decline_code", decline_code.clone()));
                }
                if let Some(param) = &error.param {
                    details.push(FieldError::new("stripe.param", param.clone()));
                }
                if error.is_about_the_request() {
                    details.push(FieldError::new("stripe.message", error.message.clone()));
                }
                details
            }
            StripeError::Timeout => {
                vec![FieldError::new("stripe", "Stripe did not answer in time")]
            }
            StripeError::Transport(_) => {
                vec![FieldError::new("stripe", "Stripe could not be reached")]
            }
            StripeError::Decode { .. } => {
                vec![FieldError::new(
                    "stripe",
                    "Stripe's answer could not be read",
                )]
            }
            StripeError::InvalidInput { field, message } => {
                vec![FieldError::new(*field, message.clone())]
            }
            StripeError::Config(_) => {
                vec![FieldError::new(
                    "stripe",
                    "the Stripe provider is not configured correctly",
                )]
            }
        }
    }
}

/// A provider failure in the one wire error shape, Stripe's own type, code and message in
/// `details`: a request Stripe refused (400, 402, 404, 409 that is not worth retrying)
/// → 422 `payment_provider_rejected`; Stripe unreachable, slow, overloaded, or refusing
/// our own key → 503 `payment_provider_unavailable` with `Retry-After`.
pub fn api_error(error: StripeError) -> ApiError {
    let details = error.details();
    let rejected = matches!(error.status(), Some(400 | 402 | 404 | 409)) && !error.is_retryable()
        || matches!(error, StripeError::InvalidInput { .. });
    let mut api = if rejected {
        ApiError::coded(
            crate::BillingCode::PaymentProviderRejected,
            "the payment provider refused the request",
        )
    } else {
        tracing::warn!(%error, "payment provider unavailable");
        ApiError::coded(
            crate::BillingCode::PaymentProviderUnavailable,
            "the payment provider is unavailable; retry later",
        )
        .with_retry_after(5)
    };
    for detail in details {
        api = api.with_detail(detail.field, detail.message);
    }
    api
}

impl StripeApiError {
    /// True when the error is about what was asked (a decline, a bad parameter, a missing
    /// object), so its message may be shown to the caller.
    pub fn is_about_the_request(&self) -> bool {
        !matches!(self.status, 401 | 403) && self.status < 500
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, kind: &str, code: Option<&str>) -> StripeError {
        StripeError::api(StripeApiError {
            status,
            kind: kind.to_owned(),
            code: code.map(str::to_owned),
            message: "Your card was declined.".to_owned(),
            param: None,
            decline_code: None,
            charge: None,
            request_id: None,
            should_retry: None,
        })
    }

    #[test]
    fn retryable_are_conflicts_rate_limits_outages_and_transport() {
        assert!(api(409, "invalid_request_error", Some("lock_timeout")).is_retryable());
        assert!(api(409, "invalid_request_error", Some("idempotency_key_in_use")).is_retryable());
        assert!(api(429, "invalid_request_error", Some("rate_limit")).is_retryable());
        assert!(api(500, "api_error", None).is_retryable());
        assert!(api(503, "api_error", None).is_retryable());
        assert!(StripeError::Timeout.is_retryable());
        assert!(!api(402, "card_error", Some("card_declined")).is_retryable());
        assert!(!api(400, "idempotency_error", None).is_retryable());
        assert!(!api(401, "invalid_request_error", None).is_retryable());
        assert!(!StripeError::invalid("amount", "too precise").is_retryable());
    }

    #[test]
    fn stripe_should_retry_header_wins() {
        let mut error = StripeApiError {
            status: 500,
            kind: "api_error".to_owned(),
            code: None,
            message: String::new(),
            param: None,
            decline_code: None,
            charge: None,
            request_id: None,
            should_retry: Some(false),
        };
        assert!(!StripeError::api(error.clone()).is_retryable());
        error.status = 400;
        error.should_retry = Some(true);
        assert!(StripeError::api(error).is_retryable());
    }

    #[test]
    fn details_carry_code_and_message_of_a_decline() {
        let error = match api(402, "card_error", Some("card_declined")) {
            StripeError::Api(mut e) => {
                e.decline_code = Some("insufficient_funds".to_owned());
                StripeError::Api(e)
            }
            other => other,
        };
        assert_eq!(
            error.details(),
            vec![
                FieldError::new("stripe.type", "card_error"),
                FieldError::new("stripe.code", "card_declined"),
                FieldError::new("stripe.decline_code", "insufficient_funds"),
                FieldError::new("stripe.message", "Your card was declined."),
            ]
        );
        assert_eq!(error.code(), Some("card_declined"));
        assert_eq!(error.status(), Some(402));
    }

    #[test]
    fn details_leave_out_messages_about_our_side() {
        for status in [401, 403, 500] {
            let details = api(status, "api_error", None).details();
            assert!(
                details.iter().all(|d| d.field != "stripe.message"),
                "{status}"
            );
        }
        assert_eq!(
            StripeError::Timeout.details(),
            vec![FieldError::new("stripe", "Stripe did not answer in time")]
        );
    }
}
