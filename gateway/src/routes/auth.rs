//! Sign-in with an emailed code, session refresh and sign-out.

use actix_web::{HttpRequest, HttpResponse, web};
use feria_auth::AuthSettings;
use feria_auth::sessions::SessionTokens;
use feria_kernel::mail::Mailer;
use feria_kernel::{ApiError, Db, ErrorBody, Mode, PlatformId, Tenant};
use feria_platforms::media::MediaUrls;
use feria_users::UserObject;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::Json;
use crate::ratelimit::IpRateLimiter;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/otp/email").route(web::post().to(request_code)))
        .service(web::resource("/auth/otp/verify").route(web::post().to(verify_code)))
        .service(web::resource("/auth/session/refresh").route(web::post().to(refresh)))
        .service(web::resource("/auth/session/logout").route(web::post().to(logout)));
}

/// Ask for a sign-in code.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub platform_id: PlatformId,
    #[validate(email(message = "must be a valid email address"))]
    pub email: String,
    /// `live` (default) or `test`: the two worlds of a platform never share accounts.
    #[serde(default)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CodeSent {
    /// Always `sent`: the answer does not reveal whether the account exists.
    #[schema(example = "sent")]
    pub status: String,
    /// Seconds the code stays valid.
    #[schema(example = 600)]
    pub expires_in: u64,
}

/// Check a sign-in code.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeCheck {
    pub platform_id: PlatformId,
    #[validate(email(message = "must be a valid email address"))]
    pub email: String,
    /// The 6-digit code from the mail.
    #[validate(length(equal = 6, message = "must be the 6-digit code from the mail"))]
    #[schema(example = "123456")]
    pub code: String,
    #[serde(default)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[validate(length(min = 1, message = "is required"))]
    pub refresh_token: String,
}

/// A session: tokens and the signed-in user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Session {
    #[serde(flatten)]
    pub tokens: SessionTokens,
    pub user: UserObject,
}

/// Counts the request against its client address's budget of code requests; 429
/// `rate_limited` once it is spent. The decision goes to the response's `RateLimit-*`
/// headers (middleware).
async fn client_ip_allowed(req: &HttpRequest, limiter: &IpRateLimiter) -> Result<(), ApiError> {
    let Some(ip) = crate::client_address::of(req) else {
        return Ok(());
    };
    let decision = limiter.decide(ip).await;
    crate::ratelimit::record_on(req, decision);
    match decision.retry_after() {
        None => Ok(()),
        Some(retry_after) => Err(ApiError::new(
            feria_kernel::ErrorKind::RateLimited,
            "rate_limited",
            "too many sign-in requests from this address; retry later",
        )
        .with_retry_after(retry_after)),
    }
}

/// Sends a 6-digit sign-in code to the email. The account is created when the code is
/// first verified. Limited per email (5 per 10 minutes) and per client address.
#[utoipa::path(
    post,
    path = "/api/v1/auth/otp/email",
    tag = "auth",
    operation_id = "auth_request_code",
    request_body = CodeRequest,
    responses(
        (status = 200, description = "The code was sent.", body = CodeSent),
        (status = 404, description = "No such platform.", body = ErrorBody),
        (status = 422, description = "Invalid email or mode.", body = ErrorBody),
        (status = 429, description = "Too many codes requested from this client address (OTP_REQUESTS_PER_IP per 10 minutes) or for this email (`rate_limited`, with `Retry-After`).", body = ErrorBody)
    )
)]
pub async fn request_code(
    req: HttpRequest,
    body: Json<CodeRequest>,
    db: web::Data<Db>,
    mailer: web::Data<Mailer>,
    settings: web::Data<AuthSettings>,
    limiter: web::Data<IpRateLimiter>,
) -> Result<HttpResponse, HttpError> {
    client_ip_allowed(&req, &limiter).await?;
    let body = body.into_inner();
    let tenant = Tenant::new(body.platform_id, body.mode.unwrap_or(Mode::Live));
    crate::caller::record_tenant(&tenant);
    let mut conn = db.conn().await?;
    feria_auth::otp::request_code(&mut conn, &mailer, &settings, &tenant, &body.email).await?;
    Ok(HttpResponse::Ok().json(CodeSent {
        status: "sent".into(),
        expires_in: settings.otp_ttl.as_secs(),
    }))
}

/// Checks the code; on success returns a session (creating the account on first sign-in).
/// A code works once, for 10 minutes, with 5 guesses.
#[utoipa::path(
    post,
    path = "/api/v1/auth/otp/verify",
    tag = "auth",
    operation_id = "auth_verify_code",
    request_body = CodeCheck,
    responses(
        (status = 200, description = "Signed in.", body = Session),
        (status = 401, description = "Wrong, used or expired code (`invalid_code`, `code_expired`).", body = ErrorBody),
        (status = 422, description = "Malformed fields.", body = ErrorBody),
        (status = 429, description = "Too many wrong codes (`too_many_attempts`): request a new one.", body = ErrorBody)
    )
)]
pub async fn verify_code(
    body: Json<CodeCheck>,
    db: web::Data<Db>,
    settings: web::Data<AuthSettings>,
    media: web::Data<MediaUrls>,
    metrics: web::Data<crate::metrics::Metrics>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
    let tenant = Tenant::new(body.platform_id, body.mode.unwrap_or(Mode::Live));
    crate::caller::record_tenant(&tenant);
    let mut conn = db.conn().await?;
    let (user, tokens) =
        feria_auth::otp::verify_code(&mut conn, &settings, &tenant, &body.email, &body.code)
            .await?;
    metrics.signed_in();
    let user = feria_users::user::object(&mut conn, &tenant, &user, &media).await?;
    Ok(HttpResponse::Ok().json(Session { tokens, user }))
}

/// Rotates the session: both tokens are replaced, the old ones stop working. Presenting
/// an already-rotated refresh token revokes the whole session (`refresh_token_reused`).
#[utoipa::path(
    post,
    path = "/api/v1/auth/session/refresh",
    tag = "auth",
    operation_id = "auth_refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens.", body = Session),
        (status = 401, description = "Invalid, expired or revoked refresh token (`invalid_credentials`), or one already used (`refresh_token_reused`: the session is revoked).", body = ErrorBody)
    )
)]
pub async fn refresh(
    body: Json<RefreshRequest>,
    db: web::Data<Db>,
    settings: web::Data<AuthSettings>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let (tenant, user_id, tokens) =
        feria_auth::sessions::refresh(&mut conn, &settings, &body.refresh_token).await?;
    let user = feria_users::user::get(&mut conn, &tenant, &user_id).await?;
    let user = feria_users::user::object(&mut conn, &tenant, &user, &media).await?;
    Ok(HttpResponse::Ok().json(Session { tokens, user }))
}

/// Signs out: the session's access and refresh tokens stop working.
#[utoipa::path(
    post,
    path = "/api/v1/auth/session/logout",
    tag = "auth",
    operation_id = "auth_logout",
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out."),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a session (`api_key_not_allowed`).", body = ErrorBody)
    )
)]
pub async fn logout(caller: Caller, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    feria_auth::sessions::logout(&mut conn, &caller).await?;
    Ok(HttpResponse::NoContent().finish())
}
