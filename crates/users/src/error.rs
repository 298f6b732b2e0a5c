use feria_kernel::{ApiError, DbError};

/// Failures of user operations.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user not found")]
    NotFound,
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("this username is taken")]
    UsernameTaken,
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
            UserError::EmailTaken => {
                ApiError::conflict("email_taken", "a user with this email already exists")
            }
            UserError::UsernameTaken => {
                ApiError::conflict("username_taken", "this username is taken")
            }
            UserError::Invalid { field, message } => ApiError::invalid_field(field, message),
            UserError::Db(db) => db.into(),
        }
    }
}
