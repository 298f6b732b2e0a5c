use feria_kernel::{ApiError, DbError, FieldError, KernelCode, MoneyError};
use feria_users::UserError;

use crate::pricing::SeasonalPriceId;

feria_kernel::error_codes! {
    /// The codes catalog and cart operations answer.
    pub enum CatalogCode {
        NotProductOwner = Forbidden "not_product_owner",
        SeasonOverlap = Validation "season_overlap",
        ProductDisabled = Conflict "product_disabled",
        OutOfStock = Conflict "out_of_stock",
        InsufficientStock = Conflict "insufficient_stock",
        CurrencyMismatch = Conflict "currency_mismatch",
        CartFull = Conflict "cart_full",
        ProductHasVariants = Conflict "product_has_variants",
    }
}

/// Failures of catalog and cart operations.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Absent, deleted, in another tenant or mode, or not visible to the caller.
    #[error("product not found")]
    ProductNotFound,
    #[error("seasonal price not found")]
    SeasonalPriceNotFound,
    #[error("cart item not found")]
    CartItemNotFound,
    /// Only the product's seller or an admin may change it.
    #[error("only the product's seller or an admin may change it")]
    NotProductOwner,
    /// Only admins act for another user (e.g. create a product in their name).
    #[error("only admins may act for another user")]
    NotAllowedForOtherUser,
    /// A field is invalid (422).
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The new season overlaps one the product already has (422 `season_overlap`).
    #[error("the season overlaps `{name}` ({id})")]
    SeasonOverlap { id: SeasonalPriceId, name: String },
    /// The product is disabled: it cannot be sold (added to a cart or a contract,
    /// or settled).
    #[error("product {product} is disabled")]
    ProductDisabled { product: crate::product::ProductId },
    /// The product has no stock left.
    #[error("the product is out of stock")]
    OutOfStock,
    /// Fewer units are in stock than asked for.
    #[error("only {available} in stock")]
    InsufficientStock { available: i64 },
    /// A cart holds one currency.
    #[error("the cart is in {cart}, the product in {product}")]
    CurrencyMismatch { cart: String, product: String },
    /// A cart holds at most this many lines.
    #[error("the cart is full")]
    CartFull { max_lines: i64 },
    /// A product with live variants cannot be deleted before them.
    #[error("the product has variants")]
    HasVariants,
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl CatalogError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> CatalogError {
        CatalogError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// A money error on `field` as a validation error.
    pub(crate) fn money(field: &'static str, error: MoneyError) -> CatalogError {
        let message = match error {
            MoneyError::TooPrecise { currency, exponent } => {
                format!("{currency} allows at most {exponent} decimal places")
            }
            MoneyError::UnknownCurrency(code) => {
                format!("`{code}` is not a supported ISO 4217 currency code")
            }
            _ => "is out of range".to_owned(),
        };
        CatalogError::invalid(field, message)
    }
}

impl From<diesel::result::Error> for CatalogError {
    fn from(error: diesel::result::Error) -> Self {
        CatalogError::Db(error.into())
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::ProductNotFound => ApiError::not_found("product"),
            CatalogError::SeasonalPriceNotFound => ApiError::not_found("seasonal price"),
            CatalogError::CartItemNotFound => ApiError::not_found("cart item"),
            CatalogError::NotProductOwner => ApiError::coded(
                CatalogCode::NotProductOwner,
                "only the product's seller or an admin may change it",
            ),
            CatalogError::NotAllowedForOtherUser => ApiError::coded(
                KernelCode::Forbidden,
                "only admins may create or move products for another user",
            ),
            CatalogError::Invalid { field, message } => ApiError::invalid_field(field, message),
            CatalogError::SeasonOverlap { id, name } => {
                let message = format!("overlaps the season `{name}` ({id})");
                ApiError {
                    details: vec![
                        FieldError::new("start", message.clone()),
                        FieldError::new("end", message),
                    ],
                    ..ApiError::coded(
                        CatalogCode::SeasonOverlap,
                        format!("the season overlaps the season `{name}` ({id}) of this product"),
                    )
                }
            }
            CatalogError::ProductDisabled { product } => ApiError::coded(
                CatalogCode::ProductDisabled,
                format!("product {product} is disabled and cannot be sold"),
            ),
            CatalogError::OutOfStock => ApiError::coded(
                CatalogCode::OutOfStock,
                "the product is out of stock and cannot be added to a cart",
            ),
            CatalogError::InsufficientStock { available } => ApiError::coded(
                CatalogCode::InsufficientStock,
                format!("only {available} of this product are in stock"),
            ),
            CatalogError::CurrencyMismatch { cart, product } => ApiError::coded(
                CatalogCode::CurrencyMismatch,
                format!(
                    "the cart holds {cart} products; this product is priced in {product}: one cart holds one currency"
                ),
            ),
            CatalogError::CartFull { max_lines } => ApiError::coded(
                CatalogCode::CartFull,
                format!("a cart holds at most {max_lines} different products"),
            ),
            CatalogError::HasVariants => ApiError::coded(
                CatalogCode::ProductHasVariants,
                "delete the product's variants first",
            ),
            CatalogError::User(user) => user.into(),
            CatalogError::Db(db) => db.into(),
        }
    }
}
