//! The authenticated caller of a request, as an extractor.
//!
//! `Caller` accepts an API key or a session; handlers then ask for what they need:
//! `caller.require_role(Role::Admin)?`, `caller.require_user()?`. No credentials → 401,
//! invalid ones → 401, the wrong kind or role → 403.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
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

impl FromRequest for Caller {
    type Error = HttpError;
    type Future = LocalBoxFuture<'static, Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let db = req.app_data::<web::Data<Db>>().cloned();
        let credentials = req.app_data::<web::Data<CredentialCache>>().cloned();
        Box::pin(async move {
            let token = token.ok_or(AuthError::MissingCredentials)?;
            let (db, credentials) = db
                .zip(credentials)
                .ok_or_else(feria_kernel::ApiError::internal)?;
            let principal = credentials.authenticate(&db, &token).await?;
            Ok(Caller(principal))
        })
    }
}
