use feria_billing::BillingError;
use feria_kernel::{ApiError, DbError, MoneyError};
use feria_platforms::PlatformError;

feria_kernel::error_codes! {
    /// The codes of the character-template marketplace (an Idempotency-Key reused for
    /// another purchase answers billing's `idempotency_key_reused`).
    pub enum MarketplaceCode {
        NotListingOwner = Forbidden "not_listing_owner",
        WorkspaceFull = Conflict "workspace_full",
        CharacterListed = Conflict "character_listed",
        OwnListing = Forbidden "own_listing",
        ListingUnavailable = Conflict "listing_unavailable",
        AlreadyPurchased = Conflict "already_purchased",
        NotAPurchaser = Forbidden "not_a_purchaser",
        AlreadyReviewed = Conflict "already_reviewed",
    }
}

/// Failures of marketplace operations.
#[derive(Debug, thiserror::Error)]
pub enum MarketplaceError {
    /// Absent, in another tenant or mode, or not the caller's.
    #[error("workspace not found")]
    WorkspaceNotFound,
    #[error("character not found")]
    CharacterNotFound,
    /// Absent, in another tenant or mode, or not visible to the caller.
    #[error("listing not found")]
    ListingNotFound,
    /// Only the listing's seller may change it.
    #[error("only the listing's seller may change it")]
    NotListingOwner,
    /// A field is invalid (422).
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The workspace holds as many characters as its limit allows.
    #[error("the workspace is at its character limit ({limit})")]
    WorkspaceFull { limit: i64 },
    /// A character with a listing that is not archived cannot be deleted.
    #[error("the character has a listing that is not archived")]
    CharacterListed,
    /// Purchase: the buyer is the listing's seller.
    #[error("you cannot buy your own listing")]
    OwnListing,
    /// Purchase: not active, archived, or an exclusive license already sold.
    #[error("the listing is not available")]
    ListingUnavailable,
    /// Purchase: once per buyer and listing.
    #[error("you already purchased this listing")]
    AlreadyPurchased,
    /// The Idempotency-Key was used for another purchase.
    #[error("this idempotency key was used for a different purchase")]
    IdempotencyKeyReused,
    /// Reviews: only buyers of the listing review it.
    #[error("only buyers of the listing may review it")]
    NotAPurchaser,
    /// Reviews: once per buyer and listing.
    #[error("you already reviewed this listing")]
    AlreadyReviewed,
    /// Money (credits, ledger): `InsufficientFunds` when the buyer's credits are short.
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl MarketplaceError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> MarketplaceError {
        MarketplaceError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// A money error on `field` as a validation error.
    pub(crate) fn money(field: &'static str, error: MoneyError) -> MarketplaceError {
        let message = match error {
            MoneyError::TooPrecise { currency, exponent } => {
                format!("{currency} allows at most {exponent} decimal places")
            }
            MoneyError::UnknownCurrency(code) => {
                format!("`{code}` is not a supported ISO 4217 currency code")
            }
            _ => "is out of range".to_owned(),
        };
        MarketplaceError::invalid(field, message)
    }
}

impl From<diesel::result::Error> for MarketplaceError {
    fn from(error: diesel::result::Error) -> Self {
        MarketplaceError::Db(error.into())
    }
}

impl From<MarketplaceError> for ApiError {
    fn from(error: MarketplaceError) -> Self {
        match error {
            MarketplaceError::WorkspaceNotFound => ApiError::not_found("workspace"),
            MarketplaceError::CharacterNotFound => ApiError::not_found("character"),
            MarketplaceError::ListingNotFound => ApiError::not_found("listing"),
            MarketplaceError::NotListingOwner => ApiError::coded(
                MarketplaceCode::NotListingOwner,
                "only the listing's seller may change it",
            ),
            MarketplaceError::Invalid { field, message } => ApiError::invalid_field(field, message),
            MarketplaceError::WorkspaceFull { limit } => ApiError::coded(
                MarketplaceCode::WorkspaceFull,
                format!("the workspace is at its limit of {limit} characters"),
            ),
            MarketplaceError::CharacterListed => ApiError::coded(
                MarketplaceCode::CharacterListed,
                "the character has a listing that is not archived: archive it first",
            ),
            MarketplaceError::OwnListing => ApiError::coded(
                MarketplaceCode::OwnListing,
                "you cannot buy your own listing",
            ),
            MarketplaceError::ListingUnavailable => ApiError::coded(
                MarketplaceCode::ListingUnavailable,
                "the listing is no longer available",
            ),
            MarketplaceError::AlreadyPurchased => ApiError::coded(
                MarketplaceCode::AlreadyPurchased,
                "you already purchased this listing",
            ),
            MarketplaceError::IdempotencyKeyReused => ApiError::coded(
                feria_billing::BillingCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used with a different request",
            ),
            MarketplaceError::NotAPurchaser => ApiError::coded(
                MarketplaceCode::NotAPurchaser,
                "only buyers of the listing may review it",
            ),
            MarketplaceError::AlreadyReviewed => ApiError::coded(
                MarketplaceCode::AlreadyReviewed,
                "you already reviewed this listing",
            ),
            MarketplaceError::Billing(billing) => billing.into(),
            MarketplaceError::Platform(platform) => platform.into(),
            MarketplaceError::Db(db) => db.into(),
        }
    }
}
