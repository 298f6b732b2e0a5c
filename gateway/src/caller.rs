//! The authenticated caller of a request, as an extractor.
//!
//! `Caller` accepts an API key or a session; handlers then ask for what they need:
//! `caller.require_role(Role::Admin)?`, `caller.require_user()?`. No credentials → 401,
//! invalid ones → 401, the wrong kind or role → 403.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use feria_auth::{AuthError, CredentialCache, Principal};
use feria_kernel::Db;
use futures_util::future::LocalBoxFuture;

use crate::error::HttpError;

/// The authenticated caller (API key or signed-in user).
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Deref for Caller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Records the tenant a request acts in on the request's span (`crate::middleware::observe`),
/// so that every line logged from here on — domain and database layers included — says
/// which platform and mode it concerns. Called once the caller is authenticated, and by
/// the sign-in routes, whose tenant is in the body.
pub fn record_tenant(tenant: &feria_kernel::Tenant) {
    let span = tracing::Span::current();
    span.record("platform", tracing::field::display(&tenant.platform_id));
    span.record("mode", tenant.mode.as_str());
}

/// The outcome of authenticating a request's bearer token, kept in the request's
/// extensions by the middleware that counts writes (it needs to know who is writing) and
/// by the CORS layer (a platform's origins apply to its own credentials only), so
/// that the [`Caller`] extractor does not look the credential up a second time.
#[derive(Debug, Clone)]
enum Authentication {
    Valid(Principal),
    /// Wrong, expired or revoked.
    Invalid,
}

/// The caller behind the request's bearer token, if it has one that authenticates;
/// remembered in the request for the [`Caller`] extractor. `None` without a token, with
/// one that does not authenticate, or when the database did not answer (the extractor
/// then tries again and reports the outage).
pub async fn authenticate(req: &HttpRequest) -> Option<Principal> {
    // Asked twice in one request (the CORS layer, then the write counter): one lookup.
    match req.extensions().get::<Authentication>() {
        Some(Authentication::Valid(principal)) => return Some(principal.clone()),
        Some(Authentication::Invalid) => return None,
        None => {}
    }
    let token = bearer_token(req)?;
    let db = req.app_data::<web::Data<Db>>()?.clone();
    let credentials = req.app_data::<web::Data<CredentialCache>>()?.clone();
    let outcome = match credentials.authenticate(&db, &token).await {
        Ok(principal) => {
            record_tenant(&principal.tenant);
            Authentication::Valid(principal)
        }
        Err(AuthError::InvalidCredentials) => Authentication::Invalid,
        Err(_) => return None,
    };
    req.extensions_mut().insert(outcome.clone());
    match outcome {
        Authentication::Valid(principal) => Some(principal),
        Authentication::Invalid => None,
    }
}

impl FromRequest for Caller {
    type Error = HttpError;
    type Future = LocalBoxFuture<'static, Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Already authenticated by the middleware (writes): the same answer, at no cost.
        match req.extensions().get::<Authentication>() {
            Some(Authentication::Valid(principal)) => {
                record_tenant(&principal.tenant);
                let caller = Caller(principal.clone());
                return Box::pin(async move { Ok(caller) });
            }
            Some(Authentication::Invalid) => {
                return Box::pin(async { Err(AuthError::InvalidCredentials.into()) });
            }
            None => {}
        }
        let token = bearer_token(req);
        let db = req.app_data::<web::Data<Db>>().cloned();
        let credentials = req.app_data::<web::Data<CredentialCache>>().cloned();
        Box::pin(async move {
            let token = token.ok_or(AuthError::MissingCredentials)?;
            let (db, credentials) = db
                .zip(credentials)
                .ok_or_else(feria_kernel::ApiError::internal)?;
            let principal = credentials.authenticate(&db, &token).await?;
            record_tenant(&principal.tenant);
            Ok(Caller(principal))
        })
    }
}
