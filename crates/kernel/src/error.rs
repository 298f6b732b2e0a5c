//! The one error shape Feria puts on the wire, and its status mapping.
//!
//! Domain crates define their own `thiserror` enums with business variants and convert
//! them into [`ApiError`]; the gateway turns an `ApiError` into an HTTP response. This
//! module knows status codes as numbers only: no crate below the gateway knows HTTP.
//!
//! Codes are data: each crate declares the codes it answers in one enum made by
//! [`error_codes!`](crate::error_codes), which fixes each code's string and kind, so the
//! gateway can list every code the server may answer and check the OpenAPI document's
//! lists against them (docs/API-CONVENTIONS.md).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The class of an error, which fixes its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: the request cannot be parsed (malformed JSON, bad query string).
    BadRequest,
    /// 401: missing or invalid credentials.
    Unauthorized,
    /// 403: authenticated but not allowed (`membership_required`, `api_key_not_allowed`).
    Forbidden,
    /// 404: absent, or not visible to the caller (never leak another tenant's ids).
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: the request conflicts with the current state (`already_purchased`).
    Conflict,
    /// 413: the body is larger than the configured limit.
    PayloadTooLarge,
    /// 415: the body is not in a supported media type.
    UnsupportedMediaType,
    /// 422: the request is well-formed but fails validation; `details` lists each field.
    Validation,
    /// 429: rate limited; carries a `Retry-After`.
    RateLimited,
    /// 500: a fault of ours; the body never carries internals.
    Internal,
    /// 503: a dependency (the database) is unavailable; retry later.
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status code of this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Validation => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
        }
    }

    /// The kind for a status code, for errors raised by the HTTP framework itself.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed,
            409 => ErrorKind::Conflict,
            413 => ErrorKind::PayloadTooLarge,
            415 => ErrorKind::UnsupportedMediaType,
            422 => ErrorKind::Validation,
            429 => ErrorKind::RateLimited,
            503 => ErrorKind::Unavailable,
            400..=499 => ErrorKind::BadRequest,
            _ => ErrorKind::Internal,
        }
    }
}

/// A crate's enum of error codes, as made by [`error_codes!`](crate::error_codes).
pub trait ErrorCode: Copy + 'static {
    /// The code on the wire (`contract_locked`).
    fn as_str(self) -> &'static str;
    /// The kind, hence the status, this code is always answered with.
    fn kind(self) -> ErrorKind;
    /// Every code of the enum with its kind, in declaration order.
    fn table() -> Vec<(&'static str, ErrorKind)>;
}

/// Declares a crate's error codes as one enum: each variant names its [`ErrorKind`] and
/// its wire string, and the enum gets `as_str`, `kind`, `ALL` and [`ErrorCode`], and
/// converts into the `code` of an [`ApiError`]:
///
/// ```
/// feria_kernel::error_codes! {
///     /// The codes of a crate.
///     pub enum ExampleCode {
///         /// The thing is settled.
///         Locked = Conflict "example_locked",
///     }
/// }
/// let error = feria_kernel::ApiError::coded(ExampleCode::Locked, "it is settled");
/// assert_eq!((error.status(), error.code.as_ref()), (409, "example_locked"));
/// ```
#[macro_export]
macro_rules! error_codes {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $kind:ident $code:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),*
        }

        impl $name {
            /// Every code, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The code on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code),*
                }
            }

            /// The kind (status) this code is answered with.
            pub const fn kind(self) -> $crate::ErrorKind {
                match self {
                    $($name::$variant => $crate::ErrorKind::$kind),*
                }
            }
        }

        impl $crate::error::ErrorCode for $name {
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            fn kind(self) -> $crate::ErrorKind {
                $name::kind(self)
            }

            fn table() -> ::std::vec::Vec<(&'static str, $crate::ErrorKind)> {
                $name::ALL.iter().map(|code| (code.as_str(), code.kind())).collect()
            }
        }

        impl ::std::convert::From<$name> for ::std::borrow::Cow<'static, str> {
            fn from(code: $name) -> Self {
                ::std::borrow::Cow::Borrowed(code.as_str())
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

error_codes! {
    /// The codes of the kernel: the generic code of each kind, and the kernel's own
    /// failures (database, mail).
    pub enum KernelCode {
        BadRequest = BadRequest "bad_request",
        Unauthorized = Unauthorized "unauthorized",
        /// A role below the route's, whoever refuses it (auth, catalog, users, gateway).
        Forbidden = Forbidden "forbidden",
        /// A missing resource and an unknown route alike.
        NotFound = NotFound "not_found",
        MethodNotAllowed = MethodNotAllowed "method_not_allowed",
        PayloadTooLarge = PayloadTooLarge "payload_too_large",
        UnsupportedMediaType = UnsupportedMediaType "unsupported_media_type",
        ValidationFailed = Validation "validation_failed",
        RateLimited = RateLimited "rate_limited",
        Internal = Internal "internal_error",
        ServiceUnavailable = Unavailable "service_unavailable",
        /// Answered by `From<DbError>` (`db/error.rs`): a serialization conflict.
        DatabaseBusy = Unavailable "database_busy",
        /// Answered by `From<DbError>` (`db/error.rs`) and the readiness probe.
        DatabaseUnavailable = Unavailable "database_unavailable",
        /// Answered by `From<DbError>` (`db/error.rs`): the primary refused a write as
        /// read-only (a replica's refusal is retried on the primary, never answered).
        DatabaseReadOnly = Unavailable "database_read_only",
        MailUnavailable = Unavailable "mail_unavailable",
    }
}

/// One field-level problem, listed in `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the request (`price`, `items[2].quantity`, `page_size`).
    pub field: String,
    /// What is wrong with it, as a sentence.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error as clients see it: a kind (status), a stable snake_case code, a sentence,
/// and field details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    /// Stable, snake_case, documented: clients branch on it.
    pub code: Cow<'static, str>,
    /// A human sentence; may change between versions.
    pub message: String,
    pub details: Vec<FieldError>,
    /// Seconds after which a retry makes sense (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(
        kind: ErrorKind,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            kind,
            code: code.into(),
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// An error with a declared code, whose kind comes with it; an `Unavailable` code
    /// carries a `Retry-After` of one second, as [`ApiError::unavailable`] does.
    pub fn coded(code: impl ErrorCode, message: impl Into<String>) -> Self {
        let error = Self::new(code.kind(), code.as_str(), message);
        match code.kind() {
            ErrorKind::Unavailable => error.with_retry_after(1),
            _ => error,
        }
    }

    pub fn bad_request(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::coded(KernelCode::Unauthorized, message)
    }

    pub fn forbidden(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, code, message)
    }

    /// 404 for a resource, named in the message (`"listing not found"`).
    pub fn not_found(resource: &str) -> Self {
        Self::coded(KernelCode::NotFound, format!("{resource} not found"))
    }

    pub fn conflict(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    /// 422 with one or more field details.
    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => "the request has invalid fields".to_owned(),
        };
        ApiError {
            details,
            ..Self::coded(KernelCode::ValidationFailed, message)
        }
    }

    /// 422 for a single field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// 500 with a generic message: internals are logged, never sent.
    pub fn internal() -> Self {
        Self::coded(KernelCode::Internal, "an internal error occurred")
    }

    /// 503: a dependency is unavailable; clients should retry after `retry_after` seconds.
    pub fn unavailable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(ErrorKind::Unavailable, code, message)
        }
    }

    pub fn with_detail(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.details.push(FieldError::new(field, message));
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The body as it goes on the wire, stamped with the request's id.
    pub fn to_body(&self, request_id: Option<String>) -> ErrorBody {
        ErrorBody {
            error: self.code.to_string(),
            message: self.message.clone(),
            details: self.details.clone(),
            request_id,
        }
    }
}

/// Whether `code` is a well-formed code: lower-case ASCII words joined by single
/// underscores (`contract_locked`), as clients branch on them.
pub fn is_snake_case_code(code: &str) -> bool {
    !code.is_empty()
        && code.split('_').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && code.starts_with(|c: char| c.is_ascii_lowercase())
}

/// The wire shape of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "error": "validation_failed",
    "message": "price: must be positive",
    "details": [{"field": "price", "message": "must be positive"}],
    "request_id": "01HZZ0J7N7P5B4K2V1Q9R8S6T5"
}))]
pub struct ErrorBody {
    /// Stable snake_case code.
    pub error: String,
    /// Human-readable sentence.
    pub message: String,
    /// Field-level problems (validation errors); empty otherwise.
    #[serde(default)]
    pub details: Vec<FieldError>,
    /// The request's id, as in the `X-Request-Id` response header.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl From<validator::ValidationErrors> for ApiError {
    fn from(errors: validator::ValidationErrors) -> Self {
        let mut details = Vec::new();
        flatten_validation(&errors, "", &mut details);
        details.sort_by(|a, b| a.field.cmp(&b.field));
        ApiError::validation(details)
    }
}

fn flatten_validation(
    errors: &validator::ValidationErrors,
    prefix: &str,
    out: &mut Vec<FieldError>,
) {
    use validator::ValidationErrorsKind;
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for error in list {
                    let message = error
                        .message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| describe_validation_code(&error.code));
                    out.push(FieldError::new(path.clone(), message));
                }
            }
            ValidationErrorsKind::Struct(inner) => flatten_validation(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    flatten_validation(inner, &format!("{path}[{index}]"), out);
                }
            }
        }
    }
}

fn describe_validation_code(code: &str) -> String {
    match code {
        "length" => "has an invalid length".to_owned(),
        "range" => "is out of range".to_owned(),
        "email" => "must be a valid email address".to_owned(),
        "url" => "must be a valid URL".to_owned(),
        "required" => "is required".to_owned(),
        other => format!("is invalid ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use validator::Validate;

    #[derive(Validate)]
    struct Sample {
        #[validate(range(min = 1, message = "must be positive"))]
        price: i64,
        #[validate(email)]
        email: String,
    }

    #[test]
    fn validation_errors_become_sorted_field_details() {
        let sample = Sample {
            price: 0,
            email: "nope".into(),
        };
        let error: ApiError = sample
            .validate()
            .err()
            .map(Into::into)
            .unwrap_or_else(ApiError::internal);
        assert_eq!(error.status(), 422);
        assert_eq!(error.code, "validation_failed");
        assert_eq!(
            error.details,
            vec![
                FieldError::new("email", "must be a valid email address"),
                FieldError::new("price", "must be positive"),
            ]
        );
    }

    #[test]
    fn body_carries_code_message_details_and_request_id() {
        let body = ApiError::invalid_field("price", "must be positive").to_body(Some("req".into()));
        let json = serde_json::to_value(&body).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({
                "error": "validation_failed",
                "message": "price: must be positive",
                "details": [{"field": "price", "message": "must be positive"}],
                "request_id": "req"
            })
        );
    }

    #[test]
    fn kernel_codes_are_snake_case_and_carry_their_kind() {
        assert!(is_snake_case_code("contract_locked"));
        assert!(!is_snake_case_code("Contract_locked"));
        assert!(!is_snake_case_code("contract__locked"));
        assert!(!is_snake_case_code("_locked"));
        assert!(!is_snake_case_code(""));
        for (code, kind) in KernelCode::table() {
            assert!(is_snake_case_code(code), "`{code}` is not snake_case");
            assert_eq!(ApiError::new(kind, code, "x").status(), kind.status());
        }
        let busy = ApiError::coded(KernelCode::DatabaseBusy, "busy");
        assert_eq!((busy.status(), busy.retry_after), (503, Some(1)));
        assert_eq!(ApiError::internal().code, KernelCode::Internal.as_str());
    }

    #[test]
    fn framework_statuses_map_back_to_kinds() {
        for status in [
            400u16, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503,
        ] {
            assert_eq!(ErrorKind::from_status(status).status(), status);
        }
        assert_eq!(ErrorKind::from_status(418), ErrorKind::BadRequest);
    }
}
