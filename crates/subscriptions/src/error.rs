use feria_billing::BillingError;
use feria_calendar::CalendarError;
use feria_contracts::ContractError;
use feria_kernel::money::MoneyError;
use feria_kernel::{ApiError, DbError};
use feria_users::UserError;

/// Failures of subscription operations.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// Absent, in another tenant or mode, or not the caller's: one answer for all three.
    #[error("subscription not found")]
    NotFound,
    /// The subscription's state forbids the change (409 with `code`).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: &'static str,
    },
    /// A cycle of a subscription can be charged once only.
    #[error("cycle {cycle} of this subscription is already charged")]
    CycleAlreadyCharged { cycle: i64 },
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Subscribing, resuming and ending act as the signed-in user: an API key is no
    /// subscriber.
    #[error("API keys cannot be used here")]
    ApiKeyNotAllowed,
    /// A user who is no admin lists another user's subscriptions.
    #[error("only admins list another user's subscriptions")]
    NotYours,
    /// Stored data that cannot be read back: a bug or a hand edit, never the caller's fault.
    #[error("subscription data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl SubscriptionError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> SubscriptionError {
        SubscriptionError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// A database failure worth retrying (serialisation failure, lock timeout, busy),
    /// whether it came from this crate's queries or from billing's.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            SubscriptionError::Db(error) | SubscriptionError::Billing(BillingError::Db(error)) => {
                error.is_retryable()
            }
            _ => false,
        }
    }
}

impl From<SubscriptionError> for ApiError {
    fn from(error: SubscriptionError) -> Self {
        match error {
            SubscriptionError::NotFound => ApiError::not_found("subscription"),
            SubscriptionError::Conflict { code, message } => ApiError::conflict(code, message),
            SubscriptionError::CycleAlreadyCharged { .. } => ApiError::conflict(
                "cycle_already_charged",
                "this cycle of the subscription is already charged",
            ),
            SubscriptionError::Invalid { field, message } => {
                ApiError::invalid_field(field, message)
            }
            // The same answer as every other session-only route's (`feria_auth`).
            SubscriptionError::ApiKeyNotAllowed => ApiError::forbidden(
                "api_key_not_allowed",
                "this route acts on a signed-in user: use session auth, not an API key",
            ),
            SubscriptionError::NotYours => {
                ApiError::forbidden("forbidden", "only admins list another user's subscriptions")
            }
            SubscriptionError::Corrupt(reason) => {
                tracing::error!(%reason, "inconsistent subscription data");
                ApiError::internal()
            }
            SubscriptionError::Billing(billing) => billing.into(),
            SubscriptionError::Contract(contract) => contract.into(),
            SubscriptionError::Calendar(calendar) => calendar.into(),
            SubscriptionError::User(user) => user.into(),
            // Amounts are billing's: the same answers as billing gives.
            SubscriptionError::Money(money) => BillingError::Money(money).into(),
            SubscriptionError::Db(db) => db.into(),
        }
    }
}
