//! Users: the signed-in user's own account (`/users/auth...`) and the admin paths
//! (`/users`, `/users/{id}...`).

use actix_web::{HttpResponse, web};
use feria_kernel::{Db, DbConn, ErrorBody, Page, Tenant, UserId};
use feria_platforms::media::MediaUrls;
use feria_users::links::{LinkId, NewLink};
use feria_users::user::{NewUser, UserFilter};
use feria_users::{Role, UserChanges, UserError, UserObject};

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::{Json, Pagination, Query};
use crate::routes::media::{ImageRequest, uploaded_image};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Static segments (`/users/auth...`) before `/users/{id}`.
    cfg.service(
        web::resource("/users/auth")
            .route(web::get().to(me))
            .route(web::put().to(update_me))
            .route(web::delete().to(delete_me)),
    )
    .service(web::resource("/users/auth/image").route(web::post().to(set_my_image)))
    .service(web::resource("/users/auth/link").route(web::post().to(add_my_link)))
    .service(web::resource("/users/auth/link/{link_id}").route(web::delete().to(remove_my_link)))
    .service(
        web::resource("/users")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/users/{id}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(web::resource("/users/{id}/image").route(web::post().to(set_image)))
    .service(web::resource("/users/{id}/link").route(web::post().to(add_link)))
    .service(web::resource("/users/{id}/link/{link_id}").route(web::delete().to(remove_link)));
}

fn user_id(raw: &str) -> Result<UserId, HttpError> {
    raw.parse().map_err(|_| UserError::NotFound.into())
}

fn link_id(raw: &str) -> Result<LinkId, HttpError> {
    raw.parse().map_err(|_| UserError::LinkNotFound.into())
}

async fn object_of(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &UserId,
    media: &MediaUrls,
) -> Result<UserObject, HttpError> {
    let user = feria_users::user::get(conn, tenant, id).await?;
    Ok(feria_users::user::object(conn, tenant, &user, media).await?)
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
pub async fn me(
    caller: Caller,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    Ok(HttpResponse::Ok().json(object_of(&mut conn, &caller.tenant, user_id, &media).await?))
}

/// Changes the signed-in user's profile (not their role).
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
        (status = 422, description = "Invalid fields; `role` cannot be changed here.", body = ErrorBody)
    )
)]
pub async fn update_me(
    caller: Caller,
    body: Json<UserChanges>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let changes = body.into_inner();
    if changes.role.is_some() {
        return Err(UserError::Invalid {
            field: "role",
            message: "a user cannot change their own role".into(),
        }
        .into());
    }
    let mut conn = db.conn().await?;
    feria_users::user::update(&mut conn, &caller.tenant, user_id, changes).await?;
    Ok(HttpResponse::Ok().json(object_of(&mut conn, &caller.tenant, user_id, &media).await?))
}

/// Schedules the signed-in user's account for deletion: `scheduledDeletion` is set 30
/// days ahead, every session ends now, and the personal data is erased on that date.
#[utoipa::path(
    delete,
    path = "/api/v1/users/auth",
    tag = "users",
    operation_id = "users_delete_me",
    security(("session" = [])),
    responses(
        (status = 200, description = "Scheduled; the user object with `scheduledDeletion`.", body = UserObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 409, description = "The user is the platform's last owner (`last_owner`): make another owner first.", body = ErrorBody)
    )
)]
pub async fn delete_me(
    caller: Caller,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    let deleted = feria_auth::sessions::schedule_account_deletion(
        &mut conn,
        &caller.tenant,
        user_id,
        caller.role(),
        &media,
    )
    .await?;
    Ok(HttpResponse::Ok().json(deleted))
}

/// Adds a link to the signed-in user's profile (at most 20).
#[utoipa::path(
    post,
    path = "/api/v1/users/auth/link",
    tag = "users",
    operation_id = "users_add_my_link",
    security(("session" = [])),
    request_body = NewLink,
    responses(
        (status = 201, description = "The user, with the new link.", body = UserObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "Not a URL, or too many links.", body = ErrorBody)
    )
)]
pub async fn add_my_link(
    caller: Caller,
    body: Json<NewLink>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    feria_users::links::add(&mut conn, &caller.tenant, user_id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(object_of(&mut conn, &caller.tenant, user_id, &media).await?))
}

/// Removes a link from the signed-in user's profile.
#[utoipa::path(
    delete,
    path = "/api/v1/users/auth/link/{link_id}",
    tag = "users",
    operation_id = "users_remove_my_link",
    security(("session" = [])),
    params(("link_id" = String, Path, description = "The link's id (`link_...`).")),
    responses(
        (status = 200, description = "The user, without the link.", body = UserObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "Not one of the user's links.", body = ErrorBody)
    )
)]
pub async fn remove_my_link(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let link_id = link_id(&path)?;
    let mut conn = db.conn().await?;
    feria_users::links::remove(&mut conn, &caller.tenant, user_id, &link_id).await?;
    Ok(HttpResponse::Ok().json(object_of(&mut conn, &caller.tenant, user_id, &media).await?))
}

/// Creates a user (admins). Making an owner takes an owner.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    operation_id = "users_create",
    security(("api_key" = []), ("session" = [])),
    request_body = NewUser,
    responses(
        (status = 201, description = "The new user.", body = UserObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (or not an owner, to make an owner) (`forbidden`).", body = ErrorBody),
        (status = 409, description = "Email or username taken (`email_taken`, `username_taken`).", body = ErrorBody),
        (status = 422, description = "Invalid fields.", body = ErrorBody)
    )
)]
pub async fn create(
    caller: Caller,
    body: Json<NewUser>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let new = body.into_inner();
    feria_users::user::check_owner_rule(caller.role(), new.role)?;
    let mut conn = db.conn().await?;
    let user = feria_users::user::create_with_profile(&mut conn, &caller.tenant, new).await?;
    Ok(HttpResponse::Created()
        .json(feria_users::user::object(&mut conn, &caller.tenant, &user, &media).await?))
}

/// The platform's users, newest first, filtered by exact email or username (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    operation_id = "users_list",
    security(("api_key" = []), ("session" = [])),
    params(UserFilter, feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of users.", body = Page<UserObject>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn list(
    caller: Caller,
    filter: Query<UserFilter>,
    page: Pagination,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let mut conn = db.conn().await?;
    let users = feria_users::user::list(&mut conn, &caller.tenant, &filter, page.0).await?;
    let objects =
        feria_users::user::objects(&mut conn, &caller.tenant, &users.data, &media).await?;
    Ok(HttpResponse::Ok().json(Page {
        data: objects,
        page: users.page,
        page_size: users.page_size,
        total: users.total,
    }))
}

/// A user of the platform (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    tag = "users",
    operation_id = "users_get",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The user's id (`user_...`).")),
    responses(
        (status = 200, description = "The user.", body = UserObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody)
    )
)]
pub async fn get(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let id = user_id(&id)?;
    let mut conn = db.conn().await?;
    Ok(HttpResponse::Ok().json(object_of(&mut conn, &caller.tenant, &id, &media).await?))
}

/// Changes a user's profile or role (admins; owners for anything touching the owner role).
#[utoipa::path(
    put,
    path = "/api/v1/users/{id}",
    tag = "users",
    operation_id = "users_update",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The user's id (`user_...`).")),
    request_body = UserChanges,
    responses(
        (status = 200, description = "The updated user.", body = UserObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin, or an owner role change by a non-owner (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
        (status = 409, description = "The username is taken (`username_taken`), or the user is the platform's last owner and the role would change (`last_owner`).", body = ErrorBody),
        (status = 422, description = "Invalid fields.", body = ErrorBody)
    )
)]
pub async fn update(
    caller: Caller,
    id: web::Path<String>,
    body: Json<UserChanges>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let id = user_id(&id)?;
    let changes = body.into_inner();
    let mut conn = db.conn().await?;
    feria_users::user::update_as(&mut conn, &caller.tenant, &id, changes, caller.role()).await?;
    Ok(HttpResponse::Ok().json(object_of(&mut conn, &caller.tenant, &id, &media).await?))
}

/// Schedules a user's account for deletion in 30 days and ends their sessions (admins).
///
/// Only an owner deletes an owner, and never the platform's last owner.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}",
    tag = "users",
    operation_id = "users_delete",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The user's id (`user_...`).")),
    responses(
        (status = 200, description = "Scheduled; the user object with `scheduledDeletion`.", body = UserObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin, or the user is an owner and the caller is not (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
        (status = 409, description = "The user is the platform's last owner (`last_owner`).", body = ErrorBody)
    )
)]
pub async fn delete(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let id = user_id(&id)?;
    let mut conn = db.conn().await?;
    let deleted = feria_auth::sessions::schedule_account_deletion(
        &mut conn,
        &caller.tenant,
        &id,
        caller.role(),
        &media,
    )
    .await?;
    Ok(HttpResponse::Ok().json(deleted))
}

/// Adds a link to a user's profile (admins).
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/link",
    tag = "users",
    operation_id = "users_add_link",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The user's id (`user_...`).")),
    request_body = NewLink,
    responses(
        (status = 201, description = "The user, with the new link.", body = UserObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
        (status = 422, description = "Not a URL, or too many links.", body = ErrorBody)
    )
)]
pub async fn add_link(
    caller: Caller,
    id: web::Path<String>,
    body: Json<NewLink>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let id = user_id(&id)?;
    let mut conn = db.conn().await?;
    feria_users::links::add(&mut conn, &caller.tenant, &id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(object_of(&mut conn, &caller.tenant, &id, &media).await?))
}

/// Removes a link from a user's profile (admins).
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/link/{link_id}",
    tag = "users",
    operation_id = "users_remove_link",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The user's id (`user_...`)."),
        ("link_id" = String, Path, description = "The link's id (`link_...`).")
    ),
    responses(
        (status = 200, description = "The user, without the link.", body = UserObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user or link.", body = ErrorBody)
    )
)]
pub async fn remove_link(
    caller: Caller,
    path: web::Path<(String, String)>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let (id, link) = path.into_inner();
    let id = user_id(&id)?;
    let link = link_id(&link)?;
    let mut conn = db.conn().await?;
    feria_users::links::remove(&mut conn, &caller.tenant, &id, &link).await?;
    Ok(HttpResponse::Ok().json(object_of(&mut conn, &caller.tenant, &id, &media).await?))
}

/// Sets the signed-in user's profile image to an uploaded image.
#[utoipa::path(
    post,
    path = "/api/v1/users/auth/image",
    tag = "users",
    operation_id = "users_set_my_image",
    security(("session" = [])),
    request_body = ImageRequest,
    responses(
        (status = 200, description = "The user, with `image` set to the image's URL.", body = UserObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "No uploaded image has this `media_id`.", body = ErrorBody)
    )
)]
pub async fn set_my_image(
    caller: Caller,
    body: Json<ImageRequest>,
    db: web::Data<Db>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    let image = uploaded_image(&mut conn, &body).await?;
    feria_users::user::set_image(&mut conn, &caller.tenant, user_id, &image).await?;
    Ok(HttpResponse::Ok().json(object_of(&mut conn, &caller.tenant, user_id, &media).await?))
}

/// Sets a user's profile image to an uploaded image (admins).
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/image",
    tag = "users",
    operation_id = "users_set_image",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The user's id (`user_...`).")),
    request_body = ImageRequest,
    responses(
        (status = 200, description = "The user, with `image` set to the image's URL.", body = UserObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
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
    caller.require_role(Role::Admin)?;
    let id = user_id(&id)?;
    let mut conn = db.conn().await?;
    feria_users::user::get(&mut conn, &caller.tenant, &id).await?;
    let image = uploaded_image(&mut conn, &body).await?;
    feria_users::user::set_image(&mut conn, &caller.tenant, &id, &image).await?;
    Ok(HttpResponse::Ok().json(object_of(&mut conn, &caller.tenant, &id, &media).await?))
}
