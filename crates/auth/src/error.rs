use feria_kernel::mail::MailError;
use feria_kernel::{ApiError, DbError, KernelCode};
use feria_platforms::PlatformError;
use feria_users::{Role, UserError};

feria_kernel::error_codes! {
    /// The codes authentication answers (besides the kernel's `unauthorized`,
    /// `forbidden` and `rate_limited`).
    pub enum AuthCode {
        /// A bearer token that does not authenticate: made up, expired, revoked.
        InvalidCredentials = Unauthorized "invalid_credentials",
        ApiKeyNotAllowed = Forbidden "api_key_not_allowed",
        ApiKeyRequired = Forbidden "api_key_required",
        InvalidCode = Unauthorized "invalid_code",
        CodeExpired = Unauthorized "code_expired",
        TooManyAttempts = RateLimited "too_many_attempts",
        RefreshTokenReused = Unauthorized "refresh_token_reused",
    }
}

/// Failures of authentication and authorisation.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials")]
    MissingCredentials,
    #[error("invalid or expired credentials")]
    InvalidCredentials,
    #[error("requires the {0:?} role or higher")]
    RoleRequired(Role),
    #[error("API keys cannot be used here")]
    ApiKeyNotAllowed,
    #[error("API key required")]
    ApiKeyRequired,
    #[error("the code is wrong")]
    InvalidCode,
    #[error("the code has expired")]
    CodeExpired,
    #[error("too many wrong codes")]
    TooManyAttempts,
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the refresh token was already used")]
    RefreshTokenReused,
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::MissingCredentials => {
                ApiError::unauthorized("send `Authorization: Bearer <API key or access token>`")
            }
            AuthError::InvalidCredentials => ApiError::coded(
                AuthCode::InvalidCredentials,
                "the credentials are invalid, expired or revoked",
            ),
            AuthError::RoleRequired(role) => ApiError::coded(
                KernelCode::Forbidden,
                format!("this action requires the {} role or higher", role.as_str()),
            ),
            AuthError::ApiKeyNotAllowed => ApiError::coded(
                AuthCode::ApiKeyNotAllowed,
                "this route acts on a signed-in user: use session auth, not an API key",
            ),
            AuthError::ApiKeyRequired => ApiError::coded(
                AuthCode::ApiKeyRequired,
                "this route requires the platform's API key",
            ),
            AuthError::InvalidCode => ApiError::coded(
                AuthCode::InvalidCode,
                "the code is wrong or no longer valid",
            ),
            AuthError::CodeExpired => ApiError::coded(
                AuthCode::CodeExpired,
                "the code has expired; request a new one",
            ),
            AuthError::TooManyAttempts => ApiError::coded(
                AuthCode::TooManyAttempts,
                "too many wrong codes; request a new one",
            ),
            AuthError::RateLimited { retry_after } => {
                ApiError::coded(KernelCode::RateLimited, "too many requests; retry later")
                    .with_retry_after(retry_after)
            }
            AuthError::RefreshTokenReused => ApiError::coded(
                AuthCode::RefreshTokenReused,
                "this refresh token was already used; the session is revoked, sign in again",
            ),
            AuthError::Platform(e) => e.into(),
            AuthError::User(e) => e.into(),
            AuthError::Mail(e) => e.into(),
            AuthError::Db(e) => e.into(),
        }
    }
}

/// Failures of [`crate::bootstrap::create_platform`]; each maps to the API error of the
/// crate it comes from.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("invalid platform: {0}")]
    Invalid(#[from] validator::ValidationErrors),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<BootstrapError> for ApiError {
    fn from(error: BootstrapError) -> Self {
        match error {
            BootstrapError::Invalid(e) => e.into(),
            BootstrapError::Platform(e) => e.into(),
            BootstrapError::User(e) => e.into(),
            BootstrapError::Auth(e) => e.into(),
            BootstrapError::Db(e) => e.into(),
        }
    }
}
