use feria_kernel::{ApiError, DbError};

feria_kernel::error_codes! {
    /// The codes platform and waitlist operations answer (media answers the kernel's
    /// `payload_too_large` and `unsupported_media_type`).
    pub enum PlatformCode {
        DomainTaken = Conflict "domain_taken",
        AlreadyOnWaitlist = Conflict "already_on_waitlist",
        /// The media store (`MEDIA_STORE`) failed or did not answer: an upload is not
        /// recorded, an image is not served; retry later.
        MediaUnavailable = Unavailable "media_unavailable",
    }
}

/// Failures of platform operations.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("platform not found")]
    NotFound,
    #[error("the domain `{0}` is already used by another platform")]
    DomainTaken(String),
    #[error("waitlist entry not found")]
    WaitlistEntryNotFound,
    #[error("this email is already on the waitlist")]
    AlreadyOnWaitlist,
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Several fields (or entries of a list) are invalid at once.
    #[error("invalid fields: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    InvalidFields(Vec<feria_kernel::FieldError>),
    #[error(transparent)]
    Mail(#[from] feria_kernel::mail::MailError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<PlatformError> for ApiError {
    fn from(error: PlatformError) -> Self {
        match error {
            PlatformError::NotFound => ApiError::not_found("platform"),
            PlatformError::DomainTaken(domain) => ApiError::coded(
                PlatformCode::DomainTaken,
                format!("the domain `{domain}` is already used"),
            ),
            PlatformError::WaitlistEntryNotFound => ApiError::not_found("waitlist entry"),
            PlatformError::AlreadyOnWaitlist => ApiError::coded(
                PlatformCode::AlreadyOnWaitlist,
                "this email is already on the waitlist",
            ),
            PlatformError::Invalid { field, message } => ApiError::invalid_field(field, message),
            PlatformError::InvalidFields(details) => ApiError::validation(details),
            PlatformError::Mail(mail) => mail.into(),
            PlatformError::Db(db) => db.into(),
        }
    }
}
