//! Domain errors → HTTP responses in the one wire shape.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use feria_kernel::{ApiError, ErrorKind};

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
        ErrorKind::NotFound => ApiError::new(
            kind,
            "not_found",
            format!("no route matches {method} {path}"),
        ),
        ErrorKind::MethodNotAllowed => ApiError::new(
            kind,
            "method_not_allowed",
            format!("{path} does not accept {method}"),
        ),
        ErrorKind::PayloadTooLarge => {
            ApiError::new(kind, "payload_too_large", "the request body is too large")
        }
        ErrorKind::UnsupportedMediaType => ApiError::new(
            kind,
            "unsupported_media_type",
            "the request body must be application/json",
        ),
        ErrorKind::Internal => ApiError::internal(),
        ErrorKind::Unavailable => {
            ApiError::unavailable("service_unavailable", "the service is unavailable")
        }
        _ => ApiError::new(
            kind,
            "bad_request",
            status
                .canonical_reason()
                .unwrap_or("the request is invalid")
                .to_owned(),
        ),
    }
}
