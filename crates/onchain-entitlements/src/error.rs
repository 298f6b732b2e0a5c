use feria_kernel::{ApiError, DbError};

use crate::evm::AddressError;
use crate::rpc::RpcError;

feria_kernel::error_codes! {
    /// The codes of on-chain offers, quotes, confirmations and entitlements.
    pub enum OnchainCode {
        OfferExists = Conflict "offer_exists",
        MembershipRequired = Forbidden "membership_required",
        UnsupportedChain = Validation "unsupported_chain",
        QuoteMismatch = Validation "quote_mismatch",
        ChainMismatch = Validation "chain_mismatch",
        /// The chain knows no such transaction (yet).
        TxNotFound = NotFound "tx_not_found",
        TxFailed = Validation "tx_failed",
        WalletMismatch = Validation "wallet_mismatch",
        WrongRecipient = Validation "wrong_recipient",
        AmountMismatch = Validation "amount_mismatch",
        CalldataMismatch = Validation "calldata_mismatch",
        QuoteExpired = Validation "quote_expired",
        TxAlreadyUsed = Conflict "tx_already_used",
        QuoteAlreadyUsed = Conflict "quote_already_used",
        ChainUnavailable = Unavailable "chain_unavailable",
        ChainRpcError = Unavailable "chain_rpc_error",
        /// A receipt is only made for an active entitlement.
        EntitlementNotActive = Conflict "entitlement_not_active",
    }
}

/// Failures of offers, quotes, confirmations and entitlements.
#[derive(Debug, thiserror::Error)]
pub enum OnchainError {
    /// Absent, retired (for checkout), or in another tenant or mode.
    #[error("offer not found")]
    OfferNotFound,
    #[error("quote not found")]
    QuoteNotFound,
    #[error("entitlement not found")]
    EntitlementNotFound,
    #[error("an offer with this offer_id exists")]
    OfferExists,
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("invalid {field}: {error}")]
    InvalidAddress {
        field: &'static str,
        error: AddressError,
    },
    /// The offer is member-only and the wallet holds no active membership.
    #[error("Active membership is required for checkout.")]
    MembershipRequired,
    /// No chain with this id is configured.
    #[error("chain {0} is not supported")]
    UnsupportedChain(i64),
    /// The quote was issued for another wallet or offer than the request names.
    #[error("the quote was issued for another {0}")]
    QuoteMismatch(&'static str),
    /// The node serves another chain than the request and configuration name.
    #[error("{0}")]
    ChainMismatch(String),
    #[error("the chain knows no transaction with this hash")]
    TxNotFound,
    #[error("the transaction reverted")]
    TxFailed,
    /// The transaction was sent from another wallet than the quote's.
    #[error("the transaction was sent by {0}, not by the quote's wallet")]
    WalletMismatch(String),
    #[error("{0}")]
    WrongRecipient(String),
    #[error("{0}")]
    AmountMismatch(String),
    #[error("{0}")]
    CalldataMismatch(String),
    #[error("the quote expired before the transaction was mined")]
    QuoteExpired,
    /// The transaction already paid for another quote.
    #[error("the transaction already confirmed another quote")]
    TxAlreadyUsed,
    /// The quote was already confirmed with another transaction.
    #[error("the quote was already confirmed with another transaction")]
    QuoteAlreadyUsed,
    /// A receipt of a revoked or expired entitlement.
    #[error("the entitlement is {0:?}, not active: no receipt is made for it")]
    EntitlementNotActive(crate::entitlement::EntitlementState),
    /// A sealed signing key does not open, or signing failed (500, logged).
    #[error("{0}")]
    Sealed(String),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl OnchainError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> OnchainError {
        OnchainError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn address(field: &'static str) -> impl Fn(AddressError) -> OnchainError {
        move |error| OnchainError::InvalidAddress { field, error }
    }
}

impl From<diesel::result::Error> for OnchainError {
    fn from(error: diesel::result::Error) -> Self {
        OnchainError::Db(error.into())
    }
}

impl From<OnchainError> for ApiError {
    fn from(error: OnchainError) -> Self {
        let message = error.to_string();
        match error {
            OnchainError::OfferNotFound => ApiError::not_found("offer"),
            OnchainError::QuoteNotFound => ApiError::not_found("quote"),
            OnchainError::EntitlementNotFound => ApiError::not_found("entitlement"),
            OnchainError::OfferExists => ApiError::coded(
                OnchainCode::OfferExists,
                "an offer with this offer_id already exists on this platform",
            ),
            OnchainError::Invalid { field, message } => ApiError::invalid_field(field, message),
            OnchainError::InvalidAddress { field, error } => {
                ApiError::invalid_field(field, error.to_string())
            }
            OnchainError::MembershipRequired => {
                ApiError::coded(OnchainCode::MembershipRequired, message)
            }
            OnchainError::UnsupportedChain(_) => {
                ApiError::coded(OnchainCode::UnsupportedChain, message)
            }
            OnchainError::QuoteMismatch(_) => ApiError::coded(OnchainCode::QuoteMismatch, message),
            OnchainError::ChainMismatch(_) => ApiError::coded(OnchainCode::ChainMismatch, message),
            OnchainError::TxNotFound => ApiError::coded(OnchainCode::TxNotFound, message),
            OnchainError::TxFailed => ApiError::coded(OnchainCode::TxFailed, message),
            OnchainError::WalletMismatch(_) => {
                ApiError::coded(OnchainCode::WalletMismatch, message)
            }
            OnchainError::WrongRecipient(_) => {
                ApiError::coded(OnchainCode::WrongRecipient, message)
            }
            OnchainError::AmountMismatch(_) => {
                ApiError::coded(OnchainCode::AmountMismatch, message)
            }
            OnchainError::CalldataMismatch(_) => {
                ApiError::coded(OnchainCode::CalldataMismatch, message)
            }
            OnchainError::QuoteExpired => ApiError::coded(OnchainCode::QuoteExpired, message),
            OnchainError::TxAlreadyUsed => ApiError::coded(OnchainCode::TxAlreadyUsed, message),
            OnchainError::QuoteAlreadyUsed => {
                ApiError::coded(OnchainCode::QuoteAlreadyUsed, message)
            }
            OnchainError::EntitlementNotActive(state) => ApiError::coded(
                OnchainCode::EntitlementNotActive,
                format!(
                    "the entitlement is {}: receipts are made for active entitlements only",
                    match state {
                        crate::entitlement::EntitlementState::Active => "active",
                        crate::entitlement::EntitlementState::Expired => "expired",
                        crate::entitlement::EntitlementState::Revoked => "revoked",
                    }
                ),
            ),
            OnchainError::Sealed(reason) => {
                tracing::error!(%reason, "a receipt signing key cannot be used");
                ApiError::internal()
            }
            OnchainError::Rpc(RpcError::Unreachable(_)) => ApiError::coded(
                OnchainCode::ChainUnavailable,
                "the chain's JSON-RPC node does not answer; retry later",
            ),
            OnchainError::Rpc(RpcError::Node(reason)) => {
                tracing::warn!(%reason, "the JSON-RPC node answered with an error");
                ApiError::coded(
                    OnchainCode::ChainRpcError,
                    "the chain's JSON-RPC node answered with an error; retry later",
                )
            }
            OnchainError::Db(db) => db.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_status_and_code() {
        let cases: Vec<(OnchainError, u16, &str)> = vec![
            (OnchainError::OfferNotFound, 404, "not_found"),
            (OnchainError::TxNotFound, 404, "tx_not_found"),
            (OnchainError::MembershipRequired, 403, "membership_required"),
            (OnchainError::UnsupportedChain(1), 422, "unsupported_chain"),
            (
                OnchainError::ChainMismatch("x".into()),
                422,
                "chain_mismatch",
            ),
            (OnchainError::TxFailed, 422, "tx_failed"),
            (
                OnchainError::WrongRecipient("x".into()),
                422,
                "wrong_recipient",
            ),
            (
                OnchainError::AmountMismatch("x".into()),
                422,
                "amount_mismatch",
            ),
            (
                OnchainError::CalldataMismatch("x".into()),
                422,
                "calldata_mismatch",
            ),
            (
                OnchainError::WalletMismatch("x".into()),
                422,
                "wallet_mismatch",
            ),
            (OnchainError::QuoteExpired, 422, "quote_expired"),
            (OnchainError::TxAlreadyUsed, 409, "tx_already_used"),
            (OnchainError::QuoteAlreadyUsed, 409, "quote_already_used"),
            (
                OnchainError::Rpc(RpcError::Unreachable("x".into())),
                503,
                "chain_unavailable",
            ),
            (
                OnchainError::Rpc(RpcError::Node("x".into())),
                503,
                "chain_rpc_error",
            ),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status(), api.code.as_ref()), (status, code));
        }
        let membership = ApiError::from(OnchainError::MembershipRequired);
        assert_eq!(
            membership.message,
            "Active membership is required for checkout."
        );
    }
}
