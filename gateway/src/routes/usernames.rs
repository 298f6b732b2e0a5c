//! Usernames made from free text (`/utils/generate/username`): needs no credentials.

use actix_web::{HttpResponse, web};
use feria_kernel::{Db, ErrorBody, Mode, PlatformId, Tenant};
use feria_platforms::PlatformError;
use feria_users::usernames::UsernameSuggestion;
use serde::Deserialize;
use utoipa::ToSchema;
use validator::Validate;

use crate::error::HttpError;
use crate::extract::Json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/utils/generate/username").route(web::post().to(username)))
        // The seed's spelling, kept so that clients written against it work.
        .service(web::resource("/utils/gnerate/username").route(web::post().to(username_seed)));
}

/// Text to make a username from; with a platform, the username is checked against it.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsernameRequest {
    /// Free text, e.g. a full name: `José Ñúñez` → `jose_nunez`.
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub text: String,
    /// Check availability on this platform (`plat_...`).
    pub platform_id: Option<String>,
    /// The mode whose users count (default `live`).
    pub mode: Option<Mode>,
}

/// Makes a username from text: transliterated to ASCII, lower case, `_` between words.
/// With `platform_id`, says whether it is free there and offers free alternatives.
#[utoipa::path(
    post,
    path = "/api/v1/utils/generate/username",
    tag = "utils",
    operation_id = "utils_generate_username",
    request_body = UsernameRequest,
    responses(
        (status = 200, description = "The username, its availability and alternatives.", body = UsernameSuggestion),
        (status = 404, description = "No such platform.", body = ErrorBody),
        (status = 422, description = "The text has no letters or digits.", body = ErrorBody)
    )
)]
pub async fn username(
    body: Json<UsernameRequest>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let request = body.into_inner();
    let mut conn = db.conn().await?;
    let tenant = match &request.platform_id {
        Some(raw) => {
            let id: PlatformId = raw.parse().map_err(|_| PlatformError::NotFound)?;
            let platform = feria_platforms::platform::get(&mut conn, &id).await?;
            Some(Tenant::new(platform.id, request.mode.unwrap_or(Mode::Live)))
        }
        None => None,
    };
    let suggestion =
        feria_users::usernames::suggest(&mut conn, tenant.as_ref(), &request.text).await?;
    Ok(HttpResponse::Ok().json(suggestion))
}

/// The same as `POST /api/v1/utils/generate/username`, at the path the seed spells
/// `gnerate`.
#[utoipa::path(
    post,
    path = "/api/v1/utils/gnerate/username",
    tag = "utils",
    operation_id = "utils_generate_username_seed_spelling",
    request_body = UsernameRequest,
    responses(
        (status = 200, description = "The username, its availability and alternatives.", body = UsernameSuggestion),
        (status = 404, description = "No such platform.", body = ErrorBody),
        (status = 422, description = "The text has no letters or digits.", body = ErrorBody)
    )
)]
pub async fn username_seed(
    body: Json<UsernameRequest>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    username(body, db).await
}
