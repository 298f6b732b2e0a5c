//! The caller's platform: read, update, keys, community membership; public lookup by domain.

use actix_web::{HttpResponse, web};
use feria_auth::api_keys::ApiKeySummary;
use feria_kernel::{ApiError, Db, DbConn, ErrorBody, Mode, Page, PageRequest, PlatformId, Tenant};
use feria_platforms::media::MediaUrls;
use feria_platforms::{Platform, PlatformChanges, PlatformError, PlatformObject};
use feria_users::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::cors::CorsPolicy;
use crate::error::HttpError;
use crate::extract::Json;
use crate::routes::media::{ImageRequest, uploaded_image};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Static segments before `{id}`.
    cfg.service(web::resource("/platforms").route(web::get().to(current)))
        .service(web::resource("/platforms/keys").route(web::get().to(list_keys)))
        .service(web::resource("/platforms/keys/roll").route(web::post().to(roll_key)))
        .service(web::resource("/platforms/domains/{domain}").route(web::get().to(by_domain)))
        .service(
            web::resource("/platforms/community/user/{user_id}").route(web::get().to(membership)),
        )
        .service(web::resource("/platforms/{id}").route(web::put().to(update)))
        .service(web::resource("/platforms/{id}/image").route(web::post().to(set_image)));
}

async fn object(
    conn: &mut DbConn,
    platform: &Platform,
    mode: Mode,
    media: &MediaUrls,
) -> Result<PlatformObject, HttpError> {
    let tenant = Tenant::new(platform.id.clone(), mode);
    let admins = feria_users::user::admin_ids(conn, &tenant).await?;
    Ok(platform.to_object(mode, admins, media))
}

/// The caller's own platform, or 404 for any other id (never another tenant's object).
fn own_platform(caller: &Caller, id: &str) -> Result<PlatformId, HttpError> {
    match id.parse::<PlatformId>() {
        Ok(id) if &id == caller.platform_id() => Ok(id),
        _ => Err(PlatformError::NotFound.into()),
    }
}

/// The platform's settings (name, domain, fee, logo) are one for both modes, so only a
/// live-mode credential changes them: a test key in a developer's hands must not move the
/// live fee.
fn require_live_mode(caller: &Caller) -> Result<(), HttpError> {
    if caller.mode() == Mode::Live {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "live_mode_required",
            "platform settings apply to both modes; change them with a live-mode key or session",
        )
        .into())
    }
}

/// The platform of the API key or session, in the caller's mode.
#[utoipa::path(
    get,
    path = "/api/v1/platforms",
    tag = "platforms",
    operation_id = "platforms_current",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "The platform.", body = PlatformObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody)
    )
)]
pub async fn current(
    caller: Caller,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let platform = feria_platforms::platform::get(&mut conn, caller.platform_id()).await?;
    Ok(HttpResponse::Ok().json(object(&mut conn, &platform, caller.mode(), &media).await?))
}

/// The platform served at a domain (public: no credentials needed).
#[utoipa::path(
    get,
    path = "/api/v1/platforms/domains/{domain}",
    tag = "platforms",
    operation_id = "platforms_by_domain",
    params(("domain" = String, Path, description = "Host name, e.g. `market.example.com`.")),
    responses(
        (status = 200, description = "The platform (live mode).", body = PlatformObject),
        (status = 404, description = "No platform at this domain.", body = ErrorBody)
    )
)]
pub async fn by_domain(
    domain: web::Path<String>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let platform = feria_platforms::platform::get_by_domain(&mut conn, &domain).await?;
    Ok(HttpResponse::Ok().json(object(&mut conn, &platform, Mode::Live, &media).await?))
}

/// Changes the platform's name, description, URL, domain, fee or allowed browser origins
/// (admins). New origins apply to this server's answers at once.
#[utoipa::path(
    put,
    path = "/api/v1/platforms/{id}",
    tag = "platforms",
    operation_id = "platforms_update",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The platform's id (`plat_...`).")),
    request_body = PlatformChanges,
    responses(
        (status = 200, description = "The updated platform.", body = PlatformObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`), or a test-mode credential (`live_mode_required`: settings are shared by both modes).", body = ErrorBody),
        (status = 404, description = "Not the caller's platform.", body = ErrorBody),
        (status = 409, description = "The domain is taken (`domain_taken`).", body = ErrorBody),
        (status = 422, description = "Invalid fields (`validation_failed`; a bad origin is named `corsAllowedOrigins[i]`).", body = ErrorBody)
    )
)]
pub async fn update(
    caller: Caller,
    id: web::Path<String>,
    body: Json<PlatformChanges>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
    cors: web::Data<CorsPolicy>,
) -> Result<HttpResponse, HttpError> {
    let id = own_platform(&caller, &id)?;
    caller.require_role(Role::Admin)?;
    require_live_mode(&caller)?;
    let mut conn = db.conn().await?;
    let platform = feria_platforms::platform::update(&mut conn, &id, body.into_inner()).await?;
    cors.set_platform(&platform.id, platform.allowed_origins());
    Ok(HttpResponse::Ok().json(object(&mut conn, &platform, caller.mode(), &media).await?))
}

/// Sets the platform's logo to an uploaded image (admins).
#[utoipa::path(
    post,
    path = "/api/v1/platforms/{id}/image",
    tag = "platforms",
    operation_id = "platforms_set_image",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The platform's id (`plat_...`).")),
    request_body = ImageRequest,
    responses(
        (status = 200, description = "The platform, with `logo` set to the image's URL.", body = PlatformObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`), or a test-mode credential (`live_mode_required`: settings are shared by both modes).", body = ErrorBody),
        (status = 404, description = "Not the caller's platform.", body = ErrorBody),
        (status = 422, description = "No uploaded image has this `media_id`.", body = ErrorBody)
    )
)]
pub async fn set_image(
    caller: Caller,
    id: web::Path<String>,
    body: Json<ImageRequest>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let id = own_platform(&caller, &id)?;
    caller.require_role(Role::Admin)?;
    require_live_mode(&caller)?;
    let mut conn = db.conn().await?;
    let image = uploaded_image(&mut conn, &body).await?;
    let platform = feria_platforms::platform::set_logo(&mut conn, &id, &image).await?;
    Ok(HttpResponse::Ok().json(object(&mut conn, &platform, caller.mode(), &media).await?))
}

/// Whether a user belongs to the platform's community.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Membership {
    pub platform_id: PlatformId,
    pub user_id: String,
    /// `true` when the user has an account on the platform in the caller's mode.
    pub member: bool,
    /// The user's role, when a member.
    pub role: Option<Role>,
}

/// Is this user a member of the platform's community?
#[utoipa::path(
    get,
    path = "/api/v1/platforms/community/user/{user_id}",
    tag = "platforms",
    operation_id = "platforms_membership",
    security(("api_key" = []), ("session" = [])),
    params(("user_id" = String, Path, description = "A user id (`user_...`).")),
    responses(
        (status = 200, description = "The answer; `member: false` for unknown users.", body = Membership),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody)
    )
)]
pub async fn membership(
    caller: Caller,
    user_id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let role = feria_users::user::member_role(&mut conn, &caller.tenant, &user_id).await?;
    Ok(HttpResponse::Ok().json(Membership {
        platform_id: caller.platform_id().clone(),
        user_id: user_id.into_inner(),
        member: role.is_some(),
        role,
    }))
}

/// The platform's active API keys, masked (admins).
#[utoipa::path(
    get,
    path = "/api/v1/platforms/keys",
    tag = "platforms",
    operation_id = "platforms_keys",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "Masked keys of both modes.", body = Page<ApiKeySummary>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody)
    )
)]
pub async fn list_keys(caller: Caller, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let mut conn = db.conn().await?;
    let keys = feria_auth::api_keys::list(&mut conn, caller.platform_id()).await?;
    let total = u64::try_from(keys.len()).unwrap_or(u64::MAX);
    let page = PageRequest::new(1, feria_kernel::pagination::MAX_PAGE_SIZE)?;
    Ok(HttpResponse::Ok().json(Page::new(keys, page, total)))
}

/// A new key, shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RolledKey {
    pub mode: Mode,
    /// The new secret key; the previous key of this mode no longer works.
    pub api_key: String,
}

/// Replaces the API key of the caller's mode: the old key stops working at once (admins).
#[utoipa::path(
    post,
    path = "/api/v1/platforms/keys/roll",
    tag = "platforms",
    operation_id = "platforms_roll_key",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "The new key (shown once).", body = RolledKey),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody)
    )
)]
pub async fn roll_key(caller: Caller, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let mut conn = db.conn().await?;
    let api_key =
        feria_auth::api_keys::roll(&mut conn, caller.platform_id(), caller.mode()).await?;
    Ok(HttpResponse::Ok().json(RolledKey {
        mode: caller.mode(),
        api_key,
    }))
}
