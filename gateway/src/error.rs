//! Domain errors → HTTP responses in the one wire shape.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use feria_kernel::{ApiError, ErrorCode, ErrorKind, KernelCode};

feria_kernel::error_codes! {
    /// The codes the gateway answers itself, besides the kernel's generic ones: what
    /// extractors and middleware refuse before a handler runs, and the few refusals of
    /// handlers that belong to no domain crate.
    pub enum GatewayCode {
        /// A body that is not JSON (extractors, and the framework's JSON extractor).
        MalformedJson = BadRequest "malformed_json",
        /// A body that could not be read off the connection.
        InvalidBody = BadRequest "invalid_body",
        /// A query string that does not parse.
        InvalidQuery = BadRequest "invalid_query",
        InvalidIdempotencyKey = BadRequest "invalid_idempotency_key",
        /// A multipart upload that does not parse (`routes/utils.rs`).
        MalformedMultipart = BadRequest "malformed_multipart",
        /// The request outlived `REQUEST_TIMEOUT` (middleware).
        RequestTimeout = Unavailable "request_timeout",
        /// Live API keys are listed and rolled from live mode only (`routes/platforms.rs`).
        LiveModeRequired = Forbidden "live_mode_required",
    }
}

/// Every code the server may answer, with its kind: the kernel's, the gateway's and each
/// domain crate's. The OpenAPI document's code lists are checked against it.
pub fn known_codes() -> Vec<(&'static str, ErrorKind)> {
    [
        KernelCode::table(),
        GatewayCode::table(),
        feria_auth::AuthCode::table(),
        feria_billing::BillingCode::table(),
        feria_calendar::CalendarCode::table(),
        feria_catalog::CatalogCode::table(),
        feria_contracts::ContractCode::table(),
        feria_events::EventsCode::table(),
        feria_onchain_entitlements::OnchainCode::table(),
        feria_platforms::PlatformCode::table(),
        feria_template_marketplace::MarketplaceCode::table(),
        feria_users::UserCode::table(),
    ]
    .concat()
}

/// The kind of a known code, if it is one.
pub fn kind_of(code: &str) -> Option<ErrorKind> {
    known_codes()
        .into_iter()
        .find_map(|(known, kind)| (known == code).then_some(kind))
}

tokio::task_local! {
    /// The id of the request being served, set by the observing middleware so that error
    /// bodies can carry it.
    pub static REQUEST_ID: String;
}

/// The current request's id, if inside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The error type of every handler: any domain error converts into it with `?`.
#[derive(Debug)]
pub struct HttpError {
    pub error: ApiError,
    /// Set when the error is rendered outside the request's scope (timeouts).
    request_id: Option<String>,
}

impl HttpError {
    pub fn new(error: ApiError) -> HttpError {
        HttpError {
            error,
            request_id: None,
        }
    }

    pub fn with_request_id(error: ApiError, request_id: String) -> HttpError {
        HttpError {
            error,
            request_id: Some(request_id),
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<E: Into<ApiError>> From<E> for HttpError {
    fn from(error: E) -> Self {
        HttpError::new(error.into())
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        error_response(
            &self.error,
            self.request_id.clone().or_else(current_request_id),
        )
    }
}

/// Renders an error in the wire shape.
pub fn error_response(error: &ApiError, request_id: Option<String>) -> HttpResponse {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if let Some(seconds) = error.retry_after {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
    }
    if let Some(value) = request_id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        response.insert_header((crate::middleware::X_REQUEST_ID.clone(), value));
    }
    let mut response = response.json(error.to_body(request_id));
    crate::middleware::apply_security_headers(response.headers_mut());
    response
}

/// The error for a response the framework produced without a body in our shape
/// (no route matched, wrong method, a payload limit of its own).
pub fn error_for_status(status: StatusCode, method: &str, path: &str) -> ApiError {
    let kind = ErrorKind::from_status(status.as_u16());
    match kind {
        ErrorKind::NotFound => ApiError::coded(
            KernelCode::NotFound,
            format!("no route matches {method} {path}"),
        ),
        ErrorKind::MethodNotAllowed => ApiError::coded(
            KernelCode::MethodNotAllowed,
            format!("{path} does not accept {method}"),
        ),
        ErrorKind::PayloadTooLarge => {
            ApiError::coded(KernelCode::PayloadTooLarge, "the request body is too large")
        }
        ErrorKind::UnsupportedMediaType => ApiError::coded(
            KernelCode::UnsupportedMediaType,
            "the request body must be application/json",
        ),
        ErrorKind::Internal => ApiError::internal(),
        ErrorKind::Unavailable => {
            ApiError::coded(KernelCode::ServiceUnavailable, "the service is unavailable")
        }
        // Framework statuses without a code of their own (401, 403, 409, 422 ... raised
        // by actix itself) keep their status and say `bad_request`.
        _ => ApiError::new(
            kind,
            KernelCode::BadRequest,
            status
                .canonical_reason()
                .unwrap_or("the request is invalid")
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Clients branch on codes: one string must mean one thing, at one status.
    #[test]
    fn each_code_is_snake_case_and_has_one_kind() {
        let mut kinds: HashMap<&str, ErrorKind> = HashMap::new();
        for (code, kind) in known_codes() {
            assert!(
                feria_kernel::error::is_snake_case_code(code),
                "`{code}` is not snake_case"
            );
            let first = *kinds.entry(code).or_insert(kind);
            assert_eq!(
                first, kind,
                "`{code}` is declared with two kinds: {first:?} and {kind:?}"
            );
        }
        assert_eq!(kind_of("contract_locked"), Some(ErrorKind::Conflict));
        assert_eq!(kind_of("no_such_code"), None);
    }

    /// The statuses actix answers by itself (routing, its limits, its own extractors).
    #[test]
    fn framework_errors_answer_known_codes() {
        for status in [400u16, 404, 405, 413, 415, 500, 503] {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
            let error = error_for_status(status, "GET", "/x");
            assert_eq!(kind_of(&error.code), Some(error.kind), "{status}: {error}");
        }
    }
}
