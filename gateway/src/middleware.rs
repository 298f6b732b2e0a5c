//! The middleware every request passes through: request id, the write rate limit,
//! timeout, one log line, metrics, and the error shape for responses the framework made on
//! its own.

use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use feria_kernel::ApiError;
use tracing::Instrument;

use crate::client_address::{ClientAddress, TrustedProxies};
use crate::error::{HttpError, REQUEST_ID, error_for_status, error_response};
use crate::metrics::Metrics;
use crate::ratelimit::{Counted, Decision, WriteClient, WriteRateLimiter};

/// The request id header, accepted from the client and always returned.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, also in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// How long one request may take.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeout(pub Duration);

/// A client-supplied id is kept when it is short and plain; otherwise a ULID is made.
fn request_id_of(req: &ServiceRequest) -> String {
    req.headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| ulid::Ulid::new().to_string())
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request_id_of(&req);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    // Once per request: every limit per address and the log line read it from here.
    let client = client_address_of(&req);
    if let Some(client) = client {
        req.extensions_mut().insert(ClientAddress(client));
    }
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let timeout = req
        .app_data::<web::Data<RequestTimeout>>()
        .map(|t| t.0)
        .unwrap_or(Duration::from_secs(30));
    let method = req.method().to_string();
    let path = req.path().to_owned();
    // One span for the whole request: every line logged while it is served (the
    // credential lookup, the handler, the domain and database layers, which run on this
    // task) carries its id, route, and — once the caller is known — platform and mode
    // (`crate::caller::record_tenant`). The route is the pattern the path matches, known
    // before routing runs. `otel.*` name and kind the span when traces are exported.
    // It is at ERROR level so that whatever `RUST_LOG` lets through (`warn`, `error`)
    // keeps its request context: a span's level only decides when it is recorded.
    let route = req.match_pattern();
    let span = tracing::error_span!(
        "request",
        otel.name = %format!("{method} {}", route.as_deref().unwrap_or("unmatched")),
        otel.kind = "server",
        request_id = %request_id,
        method = %method,
        route = route.as_deref().unwrap_or("unmatched"),
        platform = tracing::field::Empty,
        mode = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let record = |route: &str, status: u16| {
        let elapsed = started.elapsed();
        if let Some(metrics) = &metrics {
            metrics.observe_request(&method, route, status, elapsed);
        }
        span.record("status", status);
        let _inside = span.enter();
        tracing::info!(
            target: "feria::http",
            request_id = %request_id,
            method = %method,
            route = %route,
            path = %path,
            client = client.map(tracing::field::display),
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    };

    // One deadline for the whole request: the credential lookup of a write, then the handler.
    let deadline = tokio::time::Instant::now() + timeout;
    let counted = REQUEST_ID
        .scope(request_id.clone(), count_write(&req, deadline))
        .instrument(span.clone())
        .await;
    if let Some(decision) = counted {
        if let Some(retry_after) = decision.retry_after() {
            let error = ApiError::coded(
                feria_kernel::KernelCode::RateLimited,
                "too many writes from this client; retry after the number of seconds in Retry-After",
            )
            .with_retry_after(retry_after);
            record("rate_limited", error.status());
            let mut refused =
                req.error_response(HttpError::with_request_id(error, request_id.clone()));
            crate::ratelimit::apply_headers(refused.headers_mut(), &[decision]);
            return Ok(refused);
        }
        crate::ratelimit::record(&mut req.extensions_mut(), decision);
    }

    // No clone of the request may be held across this call: routing needs it unshared.
    let outcome = REQUEST_ID
        .scope(
            request_id.clone(),
            // Called inside the async block, so that routing and the extractors also run
            // inside the span.
            tokio::time::timeout_at(deadline, async move { next.call(req).await }),
        )
        .instrument(span.clone())
        .await;
    let mut response = match outcome {
        Ok(Ok(response)) => response.map_into_boxed_body(),
        Ok(Err(error)) => {
            // Handlers and extractors turn their errors into responses themselves; an
            // error here comes from the framework and is rendered by it.
            record(
                "unmatched",
                error.as_response_error().status_code().as_u16(),
            );
            return Err(error);
        }
        Err(_elapsed) => {
            // The handler's future is dropped: a transaction it held is rolled back and
            // its connection discarded by the pool.
            let error = ApiError::coded(
                crate::error::GatewayCode::RequestTimeout,
                "the request took too long; retry it",
            );
            record("unmatched", error.status());
            return Err(HttpError::with_request_id(error, request_id.clone()).into());
        }
    };

    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            // A response the framework made (wrong method, its own limits): give it the
            // one error shape.
            let error = error_for_status(status, &method, &path);
            let (request, _) = response.into_parts();
            let mut rendered = error_response(&error, Some(request_id.clone()));
            if status == StatusCode::METHOD_NOT_ALLOWED
                && let Some(allow) = allowed_methods(&request)
            {
                rendered.headers_mut().insert(header::ALLOW, allow);
            }
            response = ServiceResponse::new(request, rendered);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    let counted = response.request().extensions().get::<Counted>().cloned();
    if let Some(Counted(decisions)) = counted {
        crate::ratelimit::apply_headers(response.headers_mut(), &decisions);
    }
    apply_security_headers(response.headers_mut());
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    record(&route, response.status().as_u16());
    Ok(response)
}

/// The methods the matched path accepts, from the OpenAPI document (every route is in it;
/// routes mounted by an embedding application are not, and get no `Allow`).
fn allowed_methods(request: &actix_web::HttpRequest) -> Option<HeaderValue> {
    let pattern = request.match_pattern()?;
    let documents = request.app_data::<web::Data<crate::routes::meta::ApiDocuments>>()?;
    documents.allow.get(&pattern).cloned()
}

/// The client address of a request: its peer, or behind a trusted proxy the address the
/// proxies forwarded (`crate::client_address`).
fn client_address_of(req: &ServiceRequest) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    Some(match req.app_data::<web::Data<TrustedProxies>>() {
        Some(trusted) => crate::client_address::resolve(peer, req.headers(), trusted),
        None => peer.to_canonical(),
    })
}

/// The write rate limit of the app (`None`: off).
pub struct WriteLimit(pub Option<WriteRateLimiter>);

/// Counts a write against its client's budget: the credential it authenticates with (an
/// API key, or the signed-in user), or else its address: a write without a credential,
/// or with a wrong, expired or revoked one, whatever the token says. Reads pass uncounted.
///
/// Telling a valid credential from a made-up one takes authenticating it here, before the
/// handler: the credential cache answers for one in use, a database read for one that is
/// not (as a read with that token would cost), and the `Caller` extractor reuses the
/// outcome. A lookup that does not finish by the request's deadline counts the write
/// against the address. `None`: not counted (a read, the limit off, no address).
async fn count_write(req: &ServiceRequest, deadline: tokio::time::Instant) -> Option<Decision> {
    if !matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return None;
    }
    let limit = req.app_data::<web::Data<WriteLimit>>().cloned()?;
    let limiter = limit.0.as_ref()?;
    let principal = tokio::time::timeout_at(deadline, crate::caller::authenticate(req.request()))
        .await
        .ok()
        .flatten();
    match (&principal, crate::client_address::of(req.request())) {
        (Some(principal), _) => Some(limiter.decide(WriteClient::of(principal)).await),
        (None, Some(address)) => Some(limiter.decide(WriteClient::Address(address)).await),
        (None, None) => None,
    }
}

/// Headers that keep a browser from misusing what the API answers: no content sniffing
/// (an uploaded image is never run as script or HTML), no framing, no referrer leaking ids
/// in URLs. JSON answers also get a policy that forbids loading anything and are not stored
/// by caches (they carry tenant data). Headers a route set itself (the docs page, images)
/// are kept.
pub fn apply_security_headers(headers: &mut header::HeaderMap) {
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            );
        }
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
}
