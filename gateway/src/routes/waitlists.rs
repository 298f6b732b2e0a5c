//! The platform's waitlist: join, list, count, grant (with an invitation mail), remove.

use actix_web::{HttpResponse, web};
use feria_kernel::mail::Mailer;
use feria_kernel::{Db, ErrorBody, Page};
use feria_platforms::PlatformError;
use feria_platforms::waitlist::{NewWaitlistEntry, WaitlistEntry, WaitlistId};
use feria_users::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::{Json, Pagination};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/waitlists")
            .route(web::post().to(join))
            .route(web::get().to(list)),
    )
    .service(web::resource("/waitlists/count").route(web::get().to(count)))
    .service(web::resource("/waitlists/{id}/grant").route(web::post().to(grant)))
    .service(web::resource("/waitlists/{id}/remove").route(web::delete().to(remove)));
}

fn entry_id(raw: &str) -> Result<WaitlistId, HttpError> {
    raw.parse()
        .map_err(|_| PlatformError::WaitlistEntryNotFound.into())
}

/// Adds someone at the end of the waitlist; their position is their order of arrival.
#[utoipa::path(
    post,
    path = "/api/v1/waitlists",
    tag = "waitlists",
    operation_id = "waitlists_join",
    security(("api_key" = []), ("session" = [])),
    request_body = NewWaitlistEntry,
    responses(
        (status = 201, description = "On the waitlist.", body = WaitlistEntry),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 409, description = "The email is already on the waitlist (`already_on_waitlist`).", body = ErrorBody),
        (status = 422, description = "Invalid email or name.", body = ErrorBody)
    )
)]
pub async fn join(
    caller: Caller,
    body: Json<NewWaitlistEntry>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let entry =
        feria_platforms::waitlist::join(&mut conn, &caller.tenant, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(entry))
}

/// Everyone on the waitlist, by position (admins).
#[utoipa::path(
    get,
    path = "/api/v1/waitlists",
    tag = "waitlists",
    operation_id = "waitlists_list",
    security(("api_key" = []), ("session" = [])),
    params(feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of entries.", body = Page<WaitlistEntry>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn list(
    caller: Caller,
    page: Pagination,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let mut conn = db.conn().await?;
    let entries = feria_platforms::waitlist::list(&mut conn, &caller.tenant, page.0).await?;
    Ok(HttpResponse::Ok().json(entries))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WaitlistCount {
    pub count: u64,
}

/// How many people are on the waitlist.
#[utoipa::path(
    get,
    path = "/api/v1/waitlists/count",
    tag = "waitlists",
    operation_id = "waitlists_count",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "The count.", body = WaitlistCount),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody)
    )
)]
pub async fn count(caller: Caller, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let count = feria_platforms::waitlist::count(&mut conn, &caller.tenant).await?;
    Ok(HttpResponse::Ok().json(WaitlistCount { count }))
}

/// Grants access and mails an invitation (admins). Granting again changes nothing and
/// sends no second mail.
#[utoipa::path(
    post,
    path = "/api/v1/waitlists/{id}/grant",
    tag = "waitlists",
    operation_id = "waitlists_grant",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The entry's id (`wlist_...`).")),
    responses(
        (status = 200, description = "The granted entry.", body = WaitlistEntry),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such entry on this platform.", body = ErrorBody)
    )
)]
pub async fn grant(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
    mailer: web::Data<Mailer>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let id = entry_id(&id)?;
    let mut conn = db.conn().await?;
    let entry =
        feria_platforms::waitlist::grant_and_invite(&mut conn, &mailer, &caller.tenant, &id)
            .await?;
    Ok(HttpResponse::Ok().json(entry))
}

/// Removes an entry (admins); the others keep their positions.
#[utoipa::path(
    delete,
    path = "/api/v1/waitlists/{id}/remove",
    tag = "waitlists",
    operation_id = "waitlists_remove",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The entry's id (`wlist_...`).")),
    responses(
        (status = 204, description = "Removed."),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such entry on this platform.", body = ErrorBody)
    )
)]
pub async fn remove(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let id = entry_id(&id)?;
    let mut conn = db.conn().await?;
    feria_platforms::waitlist::remove(&mut conn, &caller.tenant, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
