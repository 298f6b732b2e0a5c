use feria_billing::BillingError;
use feria_catalog::CatalogError;
use feria_kernel::{ApiError, DbError, FieldError, MoneyError};
use feria_platforms::PlatformError;
use feria_users::UserError;

feria_kernel::error_codes! {
    /// The codes contract operations answer.
    pub enum ContractCode {
        NotContractOwner = Forbidden "not_contract_owner",
        NotContractBuyer = Forbidden "not_contract_buyer",
        ContractLocked = Conflict "contract_locked",
        ContractNotSent = Conflict "contract_not_sent",
        ContractNotSubscribable = Conflict "contract_not_subscribable",
        AlreadySettled = Conflict "already_settled",
        ContractIncomplete = Conflict "contract_incomplete",
        CartEmpty = Conflict "cart_empty",
        AlreadyBuyer = Conflict "already_buyer",
        AlreadySeller = Conflict "already_seller",
        CurrencyMismatch = Conflict "currency_mismatch",
        SharesDoNotAddUp = Validation "shares_do_not_add_up",
        InsufficientStock = Conflict "insufficient_stock",
        PaymentMethodRequired = Conflict "payment_method_required",
        SellerNotConnected = Conflict "seller_not_connected",
        SellerAccountNotReady = Conflict "seller_account_not_ready",
        PaymentProviderNotConfigured = Conflict "payment_provider_not_configured",
        SettlementPending = Conflict "settlement_pending",
    }
}

/// Failures of contract operations.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// Absent, in another tenant or mode, or not visible to the caller.
    #[error("contract not found")]
    NotFound,
    #[error("contract item not found")]
    ItemNotFound,
    #[error("contract fee not found")]
    FeeNotFound,
    #[error("buyer not found on this contract")]
    BuyerNotFound,
    #[error("seller not found on this contract")]
    SellerNotFound,
    #[error("cart not found")]
    CartNotFound,
    /// A party may read the contract but only its creator or an admin may change it.
    #[error("only the contract's creator or an admin may change it")]
    NotOwner,
    /// The contract's status forbids the change (settled or void).
    #[error("a {status} contract cannot be changed")]
    Locked { status: &'static str },
    /// Only a sent (open) contract is settled.
    #[error("the contract has not been sent")]
    NotSent,
    #[error("the contract is already settled")]
    AlreadySettled,
    /// Only a buyer of the contract subscribes to it.
    #[error("only a buyer of the contract may subscribe to it")]
    NotBuyer,
    /// Another user's contracts, asked for by a user who is no admin.
    #[error("only admins list another user's contracts")]
    NotYourList,
    /// The contract's terms cannot be charged as a subscription.
    #[error("the contract cannot be subscribed to: {0}")]
    NotSubscribable(&'static str),
    /// Sending needs at least one buyer and one item.
    #[error("the contract is incomplete: {0}")]
    Incomplete(&'static str),
    #[error("the cart is empty")]
    CartEmpty,
    #[error("the user is already a {0} on this contract")]
    AlreadyParty(&'static str),
    #[error("the contract is in {contract}, the product in {product}")]
    CurrencyMismatch { contract: String, product: String },
    /// The buyers' or sellers' shares do not add up (422, before anything moves).
    #[error("{field}: {message}")]
    SharesMismatch {
        field: &'static str,
        message: String,
    },
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A product of the contract has too little stock at settlement.
    #[error("not enough stock of {product}")]
    InsufficientStock { product: String },
    /// A card settlement needs every buyer's saved default card.
    #[error("buyer {user} has no saved default payment method")]
    PaymentMethodRequired { user: String },
    /// A card settlement pays every seller by a transfer to their connected account.
    #[error("seller {user} has no connected payout account")]
    SellerNotConnected { user: String },
    /// The seller's connected account cannot receive transfers yet (onboarding).
    #[error("seller {user}'s payout account cannot receive transfers yet")]
    SellerAccountNotReady { user: String },
    /// `provider=stripe` without a Stripe key for the mode.
    #[error("no payment provider is configured for this")]
    ProviderNotConfigured,
    /// A card settlement of the contract is pending: its terms must not change.
    #[error("a payment of this contract is in progress")]
    SettlementPending,
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Catalog(CatalogError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Mail(#[from] feria_kernel::mail::MailError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ContractError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ContractError {
        ContractError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// Whether the error came from moving money or stock (a payment attempt that failed).
    pub(crate) fn is_payment_failure(&self) -> bool {
        matches!(
            self,
            ContractError::Billing(_)
                | ContractError::InsufficientStock { .. }
                | ContractError::Catalog(_)
        )
    }
}

impl From<CatalogError> for ContractError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::Db(db) => ContractError::Db(db),
            other => ContractError::Catalog(other),
        }
    }
}

impl From<MoneyError> for ContractError {
    fn from(_: MoneyError) -> Self {
        ContractError::invalid("amount", "is out of range")
    }
}

impl From<diesel::result::Error> for ContractError {
    fn from(error: diesel::result::Error) -> Self {
        ContractError::Db(error.into())
    }
}

impl From<ContractError> for ApiError {
    fn from(error: ContractError) -> Self {
        match error {
            ContractError::NotFound => ApiError::not_found("contract"),
            ContractError::ItemNotFound => ApiError::not_found("contract item"),
            ContractError::FeeNotFound => ApiError::not_found("contract fee"),
            ContractError::BuyerNotFound => ApiError::not_found("buyer"),
            ContractError::SellerNotFound => ApiError::not_found("seller"),
            ContractError::CartNotFound => ApiError::not_found("cart"),
            ContractError::NotOwner => ApiError::coded(
                ContractCode::NotContractOwner,
                "only the contract's creator or an admin may change it",
            ),
            ContractError::Locked { status } => ApiError::coded(
                ContractCode::ContractLocked,
                format!("the contract is {status}: it can no longer be changed"),
            ),
            ContractError::NotSent => ApiError::coded(
                ContractCode::ContractNotSent,
                "send the contract to its buyers before settling it",
            ),
            ContractError::NotYourList => {
                ApiError::forbidden("forbidden", "only admins list another user's contracts")
            }
            ContractError::NotBuyer => ApiError::coded(
                ContractCode::NotContractBuyer,
                "only a buyer of the contract may subscribe to it",
            ),
            ContractError::NotSubscribable(why) => ApiError::coded(
                ContractCode::ContractNotSubscribable,
                format!("the contract cannot be subscribed to: {why}"),
            ),
            ContractError::AlreadySettled => ApiError::coded(
                ContractCode::AlreadySettled,
                "the contract is already settled",
            ),
            ContractError::Incomplete(what) => ApiError::coded(
                ContractCode::ContractIncomplete,
                format!("the contract cannot be sent: {what}"),
            ),
            ContractError::CartEmpty => {
                ApiError::coded(ContractCode::CartEmpty, "an empty cart makes no contract")
            }
            ContractError::AlreadyParty(role) => ApiError::coded(
                match role {
                    "seller" => ContractCode::AlreadySeller,
                    _ => ContractCode::AlreadyBuyer,
                },
                format!("the user is already a {role} on this contract"),
            ),
            ContractError::CurrencyMismatch { contract, product } => ApiError::coded(
                ContractCode::CurrencyMismatch,
                format!("the contract is in {contract}; the product is priced in {product}"),
            ),
            ContractError::SharesMismatch { field, message } => ApiError {
                details: vec![FieldError::new(field, message.clone())],
                ..ApiError::coded(
                    ContractCode::SharesDoNotAddUp,
                    format!("{field}: {message}"),
                )
            },
            ContractError::Invalid { field, message } => ApiError::invalid_field(field, message),
            ContractError::InsufficientStock { product } => ApiError::coded(
                ContractCode::InsufficientStock,
                format!("not enough stock of {product} to settle the contract"),
            ),
            ContractError::PaymentMethodRequired { user } => ApiError::coded(
                ContractCode::PaymentMethodRequired,
                format!("buyer {user} has no saved default payment method to charge"),
            ),
            ContractError::SellerNotConnected { user } => ApiError::coded(
                ContractCode::SellerNotConnected,
                format!("seller {user} has no connected payout account (`stripeConnectId`)"),
            ),
            ContractError::SellerAccountNotReady { user } => ApiError::coded(
                ContractCode::SellerAccountNotReady,
                format!(
                    "seller {user}'s payout account cannot receive transfers until they finish onboarding"
                ),
            ),
            ContractError::ProviderNotConfigured => ApiError::coded(
                ContractCode::PaymentProviderNotConfigured,
                "no Stripe key is configured for this mode on this server",
            ),
            ContractError::SettlementPending => ApiError::coded(
                ContractCode::SettlementPending,
                "a card payment of this contract is in progress; repeat the settle request to finish it",
            ),
            ContractError::Billing(billing) => billing.into(),
            ContractError::Catalog(catalog) => catalog.into(),
            ContractError::User(user) => user.into(),
            ContractError::Platform(platform) => platform.into(),
            ContractError::Mail(mail) => mail.into(),
            ContractError::Db(db) => db.into(),
        }
    }
}
