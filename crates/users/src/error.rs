use feria_kernel::{ApiError, DbError, KernelCode};

feria_kernel::error_codes! {
    /// The codes user operations answer.
    pub enum UserCode {
        PaymentMethodExists = Conflict "payment_method_exists",
        EmailTaken = Conflict "email_taken",
        UsernameTaken = Conflict "username_taken",
        LastOwner = Conflict "last_owner",
    }
}

/// Failures of user operations.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user not found")]
    NotFound,
    #[error("link not found")]
    LinkNotFound,
    #[error("payment method not found")]
    PaymentMethodNotFound,
    #[error("this payment method is already saved")]
    PaymentMethodExists,
    #[error("no bank account is connected")]
    BankAccountNotConnected,
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("this username is taken")]
    UsernameTaken,
    /// Making an owner, changing an owner's role or deleting an owner takes an owner.
    #[error("this action requires the owner role")]
    OwnerRequired,
    /// The platform's last owner (in this mode) cannot be deleted or give up the role.
    #[error("the last owner cannot be deleted or demoted")]
    LastOwner,
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl UserError {
    pub(crate) fn from_write(error: DbError) -> UserError {
        if error.is_unique_violation("email") {
            UserError::EmailTaken
        } else if error.is_unique_violation("username") {
            UserError::UsernameTaken
        } else {
            UserError::Db(error)
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::NotFound => ApiError::not_found("user"),
            UserError::LinkNotFound => ApiError::not_found("link"),
            UserError::PaymentMethodNotFound => ApiError::not_found("payment method"),
            UserError::PaymentMethodExists => ApiError::coded(
                UserCode::PaymentMethodExists,
                "this payment method is already saved",
            ),
            UserError::BankAccountNotConnected => ApiError::not_found("bank account"),
            UserError::EmailTaken => ApiError::coded(
                UserCode::EmailTaken,
                "a user with this email already exists",
            ),
            UserError::UsernameTaken => {
                ApiError::coded(UserCode::UsernameTaken, "this username is taken")
            }
            // The same answer as any route refusing a role below owner.
            UserError::OwnerRequired => ApiError::coded(
                KernelCode::Forbidden,
                "this action requires the owner role or higher",
            ),
            UserError::LastOwner => ApiError::coded(
                UserCode::LastOwner,
                "this is the platform's last owner: make another owner before deleting or demoting this one",
            ),
            UserError::Invalid { field, message } => ApiError::invalid_field(field, message),
            UserError::Db(db) => db.into(),
        }
    }
}
