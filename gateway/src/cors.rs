//! CORS: which browser origins may read what the API answers (docs/DEPLOYMENT.md, `## CORS`).
//!
//! Two lists allow an origin: the server's (`CORS_ALLOWED_ORIGINS`, for every platform)
//! and each platform's own (`corsAllowedOrigins`, edited by its admins). Both are held in
//! memory ([`CorsPolicy`]): the server's from start-up, every platform's loaded at
//! start-up, replaced at once when an admin changes it on this server, and read again
//! every `CORS_REFRESH_MS` (a change made through another server applies here within
//! that time). No request reads the database for CORS.
//!
//! Only the API (`/api/v1/...`) answers cross-origin requests; `/metrics`, `/docs` and the
//! rest never do.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) carries no
//!   credential, so its platform is unknown: an origin in the server's list or in any
//!   platform's list is answered 204 with `Access-Control-Allow-Origin: <that origin>`,
//!   the path's methods, the headers the API reads and a `Max-Age`. Any other origin is
//!   answered 204 without `Access-Control-Allow-*` headers: the browser then refuses to
//!   send the request. A path the API does not serve is not answered here (404 or 405 as
//!   for any method the path does not take). [`preflight`] runs inside the observing
//!   middleware, so each preflight is logged and counted like any request.
//! - An actual request with an `Origin` gets `Access-Control-Allow-Origin: <that origin>`
//!   when the origin is in the server's list, or, with a valid credential, in the list of
//!   the credential's platform: one platform's origins never read another's answers. A
//!   request without a valid credential (none, or a wrong or expired one) is answered
//!   only what anybody may fetch without one, or an error; an origin in any platform's
//!   list may read it (a platform's app signs its users in before it has a session, and
//!   must see a 401 to refresh one). [`actual`] wraps everything else, so that refusals
//!   made before a handler runs (429 with `Retry-After`, 503) are readable too.
//! - Every API response carries `Vary: Origin`. `*` is never sent nor accepted, and
//!   neither is `Access-Control-Allow-Credentials`: the API reads bearer tokens, never
//!   cookies, so a browser never needs to send credentials on its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use feria_kernel::{Db, PlatformId};
use feria_platforms::PlatformError;

use crate::middleware::RequestTimeout;
use crate::routes::meta::ApiDocuments;

/// The paths that answer cross-origin requests.
const API_PREFIX: &str = "/api/v1/";

/// The request headers the API reads, besides the ones browsers send on their own.
const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Idempotency-Key, X-Request-Id";

/// The response headers a page may read, besides the ones every page may (`Content-Type` ...).
const EXPOSED_HEADERS: &str = "X-Request-Id, Retry-After, RateLimit, RateLimit-Policy, \
RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Location, ETag, Content-Disposition";

/// Seconds a browser may reuse a preflight's answer (Chromium keeps it at most 2 hours).
/// A platform's removed origin is still refused at once: actual answers are checked anew.
const MAX_AGE: &str = "600";

/// A preflight's answer depends on these request headers.
const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// The allowed origins: the server's, fixed at start-up, and every platform's, a
/// snapshot of the database swapped whole.
pub struct CorsPolicy {
    server: HashSet<String>,
    platforms: RwLock<Arc<PlatformOrigins>>,
    /// Bumped by every change made on this server, so that a reload that read the
    /// database before the change does not put the old list back.
    edits: AtomicU64,
}

#[derive(Debug, Default)]
struct PlatformOrigins {
    by_platform: HashMap<PlatformId, HashSet<String>>,
    /// Every platform's origins together: what a preflight, with no credential, allows.
    any: HashSet<String>,
}

impl PlatformOrigins {
    fn new(by_platform: HashMap<PlatformId, HashSet<String>>) -> PlatformOrigins {
        let any = by_platform.values().flatten().cloned().collect();
        PlatformOrigins { by_platform, any }
    }
}

/// What an actual request's origin may read, before its credential is known.
enum Verdict {
    Allowed,
    Refused,
    /// In some platform's list only: allowed if the credential is that platform's.
    IfPlatform,
}

impl CorsPolicy {
    /// A policy with the server's list and no platform's yet ([`CorsPolicy::reload`]).
    pub fn new(server: &[String]) -> CorsPolicy {
        CorsPolicy {
            server: server.iter().cloned().collect(),
            platforms: RwLock::new(Arc::default()),
            edits: AtomicU64::new(0),
        }
    }

    fn snapshot(&self) -> Arc<PlatformOrigins> {
        self.platforms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads every platform's origins from the database and takes them as the snapshot.
    pub async fn reload(&self, db: &Db) -> Result<(), PlatformError> {
        let edits = self.edits.load(Ordering::SeqCst);
        let lists = {
            let mut conn = db.conn().await?;
            feria_platforms::platform::all_allowed_origins(&mut conn).await?
        };
        let fresh = PlatformOrigins::new(
            lists
                .into_iter()
                .map(|(id, origins)| (id, origins.into_iter().collect()))
                .collect(),
        );
        let mut platforms = self
            .platforms
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // A change made here meanwhile is newer than what was read: keep it; the next
        // reload reads it back.
        if self.edits.load(Ordering::SeqCst) == edits {
            *platforms = Arc::new(fresh);
        }
        Ok(())
    }

    /// Takes a platform's new list at once (an admin changed it on this server).
    pub fn set_platform(&self, platform: &PlatformId, origins: Vec<String>) {
        let mut platforms = self
            .platforms
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut by_platform = platforms.by_platform.clone();
        if origins.is_empty() {
            by_platform.remove(platform);
        } else {
            by_platform.insert(platform.clone(), origins.into_iter().collect());
        }
        *platforms = Arc::new(PlatformOrigins::new(by_platform));
        self.edits.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether a preflight from `origin` is answered with `Access-Control-Allow-*`.
    pub fn allows_preflight(&self, origin: &str) -> bool {
        self.server.contains(origin) || self.snapshot().any.contains(origin)
    }

    fn verdict(&self, origin: &str) -> Verdict {
        if self.server.contains(origin) {
            Verdict::Allowed
        } else if self.snapshot().any.contains(origin) {
            Verdict::IfPlatform
        } else {
            Verdict::Refused
        }
    }

    /// Whether `origin` is in the server's list or the platform's.
    pub fn allows(&self, platform: &PlatformId, origin: &str) -> bool {
        self.server.contains(origin)
            || self
                .snapshot()
                .by_platform
                .get(platform)
                .is_some_and(|origins| origins.contains(origin))
    }
}

/// Reads every platform's origins again when a platform's settings change on any node
/// (`feria_kernel::coherence`), and every `every` in any case, for as long as the server
/// runs; a failed read keeps the last snapshot.
pub async fn refresh(policy: web::Data<CorsPolicy>, db: Db, every: Duration) {
    let mut changes = feria_kernel::coherence::platform_changes();
    // Loaded at start-up: the first reload is one period later.
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    // The sender is a static: it never closes; keep the timer alone.
                    interval.tick().await;
                }
            }
        }
        if let Err(error) = policy.reload(&db).await {
            tracing::warn!(%error, "reloading the platforms' CORS origins failed; keeping the last ones");
        }
    }
}

fn is_api_path(path: &str) -> bool {
    path.starts_with(API_PREFIX)
}

fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Answers the preflights of the API's paths; passes everything else on.
pub async fn preflight(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(answer) = preflight_answer(&req) {
        return Ok(req.into_response(answer));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

fn preflight_answer(req: &ServiceRequest) -> Option<HttpResponse> {
    if !is_api_path(req.path()) || !is_preflight(req) {
        return None;
    }
    // The path's methods, as its `Allow` says; a path the API does not serve is left to
    // the router.
    let methods = req
        .app_data::<web::Data<ApiDocuments>>()?
        .allow
        .get(&req.match_pattern()?)?
        .clone();
    let policy = req.app_data::<web::Data<CorsPolicy>>()?;
    let mut answer = HttpResponse::NoContent();
    answer.insert_header((header::VARY, PREFLIGHT_VARY));
    let origin = req.headers().get(header::ORIGIN)?;
    if origin
        .to_str()
        .is_ok_and(|origin| policy.allows_preflight(origin))
    {
        answer
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, methods))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE));
    }
    Some(answer.finish())
}

/// Adds `Vary: Origin` to every API response, and `Access-Control-Allow-Origin` where
/// the origin may read it; preflights are [`preflight`]'s.
pub async fn actual(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !is_api_path(req.path()) || is_preflight(&req) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let origin = allowed_origin(&req).await;
    match next.call(req).await {
        Ok(response) => {
            let mut response = response.map_into_boxed_body();
            decorate(response.headers_mut(), origin.as_ref());
            Ok(response)
        }
        // Made before a handler ran (a rate limit, a timeout): rendered by the framework
        // later, with these headers.
        Err(error) => Err(WithCors { error, origin }.into()),
    }
}

/// The request's `Origin`, if it may read the answer.
async fn allowed_origin(req: &ServiceRequest) -> Option<HeaderValue> {
    let origin = req.headers().get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    let policy = req.app_data::<web::Data<CorsPolicy>>()?;
    match policy.verdict(text) {
        Verdict::Allowed => Some(origin.clone()),
        Verdict::Refused => None,
        Verdict::IfPlatform => {
            if crate::caller::bearer_token(req.request()).is_none() {
                return Some(origin.clone());
            }
            // The credential cache answers for a credential in use; the outcome is kept
            // in the request, so the handler does not look it up again.
            let timeout = req
                .app_data::<web::Data<RequestTimeout>>()
                .map_or(Duration::from_secs(30), |t| t.0);
            let principal =
                tokio::time::timeout(timeout, crate::caller::authenticate(req.request()))
                    .await
                    .ok()
                    .flatten();
            match principal {
                Some(principal) => policy
                    .allows(principal.platform_id(), text)
                    .then(|| origin.clone()),
                None => Some(origin.clone()),
            }
        }
    }
}

fn decorate(headers: &mut HeaderMap, origin: Option<&HeaderValue>) {
    add_vary_origin(headers);
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
}

/// `Vary: Origin`, kept beside whatever else the response already varies on.
fn add_vary_origin(headers: &mut HeaderMap) {
    let existing: Vec<String> = headers
        .get_all(header::VARY)
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect();
    let varies_on_origin = existing.iter().any(|value| {
        value
            .split(',')
            .any(|name| name.trim().eq_ignore_ascii_case("origin") || name.trim() == "*")
    });
    if !varies_on_origin {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// An error made inside, rendered with the CORS headers of its request.
struct WithCors {
    error: actix_web::Error,
    origin: Option<HeaderValue>,
}

impl std::fmt::Debug for WithCors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.error, f)
    }
}

impl std::fmt::Display for WithCors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl ResponseError for WithCors {
    fn status_code(&self) -> StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.error.error_response();
        decorate(response.headers_mut(), self.origin.as_ref());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platforms_origins_allow_preflights_and_its_own_requests_only() {
        let policy = CorsPolicy::new(&["https://all.example".to_owned()]);
        let (a, b) = (PlatformId::new(), PlatformId::new());
        policy.set_platform(&a, vec!["https://a.example".to_owned()]);
        assert!(policy.allows_preflight("https://all.example"));
        assert!(policy.allows_preflight("https://a.example"));
        assert!(!policy.allows_preflight("https://evil.example"));
        assert!(policy.allows(&a, "https://a.example"));
        assert!(policy.allows(&b, "https://all.example"));
        assert!(!policy.allows(&b, "https://a.example"));

        policy.set_platform(&a, Vec::new());
        assert!(!policy.allows_preflight("https://a.example"));
        assert!(!policy.allows(&a, "https://a.example"));
    }

    #[test]
    fn vary_keeps_what_was_there() {
        let mut headers = HeaderMap::new();
        add_vary_origin(&mut headers);
        add_vary_origin(&mut headers);
        assert_eq!(headers.get_all(header::VARY).count(), 1);

        let mut headers = HeaderMap::new();
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        add_vary_origin(&mut headers);
        let values: Vec<_> = headers.get_all(header::VARY).collect();
        assert_eq!(values, ["Accept-Encoding", "Origin"]);
    }
}
