use feria_kernel::money::{Currency, Money, MoneyError};
use feria_kernel::{ApiError, DbError};

use crate::fees::FeeError;
use crate::ledger::AccountKind;

feria_kernel::error_codes! {
    /// The codes money operations answer.
    pub enum BillingCode {
        InsufficientFunds = Conflict "insufficient_funds",
        BalanceLimitExceeded = Validation "balance_limit_exceeded",
        IdempotencyKeyReused = Conflict "idempotency_key_reused",
        NotRefundable = Conflict "not_refundable",
        CycleAlreadyCharged = Conflict "cycle_already_charged",
        SettlementIncomplete = Conflict "settlement_incomplete",
        SettlementInProgress = Conflict "settlement_in_progress",
        /// A request the payment provider refused (`stripe::api_error`).
        PaymentProviderRejected = Validation "payment_provider_rejected",
        /// The payment provider unreachable, slow or overloaded (`stripe::api_error`).
        PaymentProviderUnavailable = Unavailable "payment_provider_unavailable",
        // The subscription conflicts: `subscriptions.rs` answers these through
        // `BillingError::SubscriptionConflict`, by string.
        AlreadySubscribed = Conflict "already_subscribed",
        AlreadyPaused = Conflict "already_paused",
        PaymentFailed = Conflict "payment_failed",
        NotPaused = Conflict "not_paused",
        SubscriptionEnded = Conflict "subscription_ended",
    }
}

/// Failures of money operations.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("insufficient funds in the {kind} account of {owner_id} ({currency})")]
    InsufficientFunds {
        kind: AccountKind,
        owner_id: String,
        currency: Currency,
    },
    /// The movement would take an account past the largest balance it may hold
    /// ([`feria_kernel::money::MAX_AMOUNT_MINOR`] for every account but the outside world's,
    /// [`crate::ledger::EXTERNAL_LIMIT_MINOR`] either way for that): nothing moved.
    #[error("the {kind} account of {owner_id} ({currency}) would pass its largest balance")]
    BalanceLimitExceeded {
        kind: AccountKind,
        owner_id: String,
        currency: Currency,
    },
    #[error("this idempotency key was used for a different operation")]
    IdempotencyKeyReused,
    #[error("transaction not found")]
    TransactionNotFound,
    /// The action is for admins (403, as every role check answers).
    #[error("this action requires the admin role or higher")]
    AdminRequired,
    /// Another user's totals, asked for by a user who is no admin.
    #[error("only admins read another user's totals")]
    NotYourTotals,
    /// A card charge to refund, and no Stripe key for its mode on this server.
    #[error("no Stripe key is configured for {0} mode on this server")]
    ProviderNotConfigured(feria_kernel::Mode),
    #[error("this transaction cannot be refunded: {0}")]
    NotRefundable(&'static str),
    #[error("the refund exceeds what is left to refund ({remaining} minor units)")]
    RefundTooLarge { remaining: i64 },
    #[error("unbalanced journal entry: {0}")]
    Unbalanced(String),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The payment provider refused or could not be reached; nothing was recorded.
    #[error("payment provider: {0}")]
    Provider(crate::stripe::StripeError),
    /// The buyers were charged at the provider but a seller could not be paid: the
    /// settlement stays pending until the same request is repeated.
    #[error("the settlement is incomplete at the payment provider: {0}")]
    ProviderIncomplete(crate::stripe::StripeError),
    /// A settlement with this key is being carried out at the provider (by another
    /// request, or pending after a failure with other terms).
    #[error("a settlement with this key is in progress at the payment provider")]
    SettlementInProgress,
    #[error(transparent)]
    Platform(#[from] feria_platforms::PlatformError),
    #[error(transparent)]
    User(#[from] feria_users::UserError),
    #[error(transparent)]
    Fee(#[from] FeeError),
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// Stored data that cannot be read back: a bug or a hand edit, never the caller's fault.
    #[error("ledger data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<BillingError> for ApiError {
    fn from(error: BillingError) -> Self {
        match error {
            BillingError::InsufficientFunds { kind, currency, .. } => {
                let what = match kind {
                    AccountKind::UserCredit => "credits",
                    AccountKind::SellerReceivable => "seller balance",
                    _ => "balance",
                };
                ApiError::coded(
                    BillingCode::InsufficientFunds,
                    format!("not enough {what} in {currency} for this operation"),
                )
            }
            BillingError::BalanceLimitExceeded { kind, currency, .. } => {
                let what = match kind {
                    AccountKind::UserCredit => "the credits",
                    AccountKind::SellerReceivable => "the seller's balance",
                    _ => "a balance",
                };
                let (_, ceiling) = kind.limits();
                let largest = Money::from_minor(ceiling, currency).to_major_string();
                ApiError::coded(
                    BillingCode::BalanceLimitExceeded,
                    format!(
                        "this would take {what} in {currency} past the largest balance \
                         allowed ({largest}); nothing was moved"
                    ),
                )
                .with_detail("amount", format!("would take {what} past {largest}"))
            }
            BillingError::IdempotencyKeyReused => ApiError::coded(
                BillingCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used with a different request",
            ),
            BillingError::TransactionNotFound => ApiError::not_found("transaction"),
            BillingError::AdminRequired => {
                ApiError::forbidden("forbidden", "this action requires the admin role or higher")
            }
            BillingError::NotYourTotals => {
                ApiError::forbidden("forbidden", "only admins read another user's totals")
            }
            BillingError::ProviderNotConfigured(mode) => ApiError::conflict(
                "payment_provider_not_configured",
                format!("no Stripe key is configured for {mode} mode on this server"),
            ),
            BillingError::NotRefundable(why) => ApiError::coded(
                BillingCode::NotRefundable,
                format!("this transaction cannot be refunded: {why}"),
            ),
            BillingError::RefundTooLarge { .. } => {
                ApiError::invalid_field("amount", "exceeds what is left to refund on this charge")
            }
            BillingError::Invalid { field, message } => ApiError::invalid_field(field, message),
            BillingError::Provider(error) => crate::stripe::api_error(error),
            BillingError::ProviderIncomplete(error) => {
                let mut api = ApiError::coded(
                    BillingCode::SettlementIncomplete,
                    "the buyers were charged but a seller could not be paid; fix the \
                     seller's payout account and repeat the request",
                );
                for detail in error.details() {
                    api = api.with_detail(detail.field, detail.message);
                }
                api
            }
            BillingError::SettlementInProgress => ApiError::coded(
                BillingCode::SettlementInProgress,
                "a settlement of this is in progress at the payment provider; repeat the \
                 same request to complete it",
            ),
            BillingError::Platform(platform) => platform.into(),
            BillingError::User(user) => user.into(),
            BillingError::Fee(FeeError::FeesExceedAmount) => {
                ApiError::invalid_field("amount", "is too small to cover the fees")
            }
            BillingError::Fee(FeeError::NegativeAmount) => {
                ApiError::invalid_field("amount", "must not be negative")
            }
            BillingError::Fee(FeeError::InvalidPercent) => {
                ApiError::invalid_field("platformFee", "must be between 0 and 100")
            }
            BillingError::Fee(FeeError::Money(error)) | BillingError::Money(error) => match error {
                MoneyError::UnknownCurrency(_) => {
                    ApiError::invalid_field("currency", "is not a supported ISO 4217 code")
                }
                MoneyError::TooPrecise { .. } | MoneyError::InvalidAmount(_) => {
                    ApiError::invalid_field("amount", error.to_string())
                }
                MoneyError::Overflow => ApiError::invalid_field("amount", "is out of range"),
                MoneyError::CurrencyMismatch(..) => {
                    ApiError::invalid_field("currency", error.to_string())
                }
                MoneyError::NoWeights => {
                    tracing::error!(%error, "money allocation without weights");
                    ApiError::internal()
                }
            },
            BillingError::Unbalanced(reason) => {
                tracing::error!(%reason, "refused an unbalanced journal entry");
                ApiError::internal()
            }
            BillingError::Corrupt(reason) => {
                tracing::error!(%reason, "inconsistent ledger data");
                ApiError::internal()
            }
            BillingError::Db(db) => db.into(),
        }
    }
}
