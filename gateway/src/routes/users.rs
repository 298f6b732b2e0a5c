//! Users: the signed-in user's own account (`/users/auth`).

use actix_web::{HttpResponse, web};
use feria_kernel::{Db, ErrorBody};
use feria_users::{UserChanges, UserObject};

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::Json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users/auth")
            .route(web::get().to(me))
            .route(web::put().to(update_me)),
    );
}

/// The signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/users/auth",
    tag = "users",
    operation_id = "users_me",
    security(("session" = [])),
    responses(
        (status = 200, description = "The user.", body = UserObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody)
    )
)]
pub async fn me(caller: Caller, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    let user = feria_users::user::get(&mut conn, &caller.tenant, user_id).await?;
    Ok(HttpResponse::Ok().json(user.to_object()))
}

/// Changes the signed-in user's profile.
#[utoipa::path(
    put,
    path = "/api/v1/users/auth",
    tag = "users",
    operation_id = "users_update_me",
    security(("session" = [])),
    request_body = UserChanges,
    responses(
        (status = 200, description = "The updated user.", body = UserObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 409, description = "The username is taken (`username_taken`).", body = ErrorBody),
        (status = 422, description = "Invalid fields.", body = ErrorBody)
    )
)]
pub async fn update_me(
    caller: Caller,
    body: Json<UserChanges>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    let user =
        feria_users::user::update(&mut conn, &caller.tenant, user_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(user.to_object()))
}
