//! Subscriptions: subscribe to a contract's terms, list, read, pause, resume, end.
//! Handlers are thin: each calls one function of `feria_subscriptions`, which owns the
//! use case, the rules and who may do what. Rules: `docs/SUBSCRIPTIONS.md`.
//!
//! Who may do what (decided in `feria_subscriptions`): `/subscriptions/auth/...` act as
//! the signed-in user (an API key gets 403 `api_key_not_allowed`) on their own
//! subscriptions (platform admins on any); the other paths take the platform's API key,
//! an admin, or the subscription's owner. Anyone else — another user, another platform,
//! the other mode — gets 404.

use actix_web::{HttpResponse, web};
use feria_kernel::{Db, ErrorBody, Page, Timestamp};
use feria_subscriptions::{Actor, Cycle, NewSubscription, SubscriptionObject};
use feria_users::Role;
use serde::Deserialize;
use utoipa::ToSchema;
use validator::Validate;

use crate::caller::Caller;
use crate::config::Config;
use crate::error::HttpError;
use crate::extract::{OptionalJson, Pagination};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Static segments before `/subscriptions/{id}`.
    cfg.service(
        web::resource("/subscriptions/auth/contract/{contract_id}")
            .route(web::post().to(subscribe)),
    )
    .service(web::resource("/subscriptions/auth/{id}/resume").route(web::put().to(resume)))
    .service(web::resource("/subscriptions/auth/{id}").route(web::delete().to(end)))
    .service(web::resource("/subscriptions/user/{user_id}").route(web::get().to(list_for_user)))
    .service(web::resource("/subscriptions/{id}").route(web::get().to(get)))
    .service(web::resource("/subscriptions/{id}/pause").route(web::put().to(pause)));
}

/// Optional body of a subscription: the contract has no billing cycle of its own.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeBody {
    /// `weekly`, `monthly` (the default) or `yearly`.
    pub cycle: Option<Cycle>,
    /// When the subscription ends by itself (RFC 3339, in the future); absent: until
    /// ended.
    #[serde(rename = "endDate")]
    pub end_date: Option<Timestamp>,
}

/// Optional body of a pause.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// When the subscription resumes by itself (RFC 3339, in the future); absent: until
    /// resumed.
    #[serde(rename = "pausedUntil")]
    pub paused_until: Option<Timestamp>,
}

/// The caller as `feria_subscriptions` sees it: an API key acts as an admin that is no
/// user.
fn actor(caller: &Caller) -> Actor {
    match caller.user_id() {
        Some(user) => Actor::user(user.clone(), caller.role().at_least(Role::Admin)),
        None => Actor::api_key(),
    }
}

/// Subscribes the signed-in user to a contract they are the one buyer of: the contract's
/// total is charged from their credits now and then once per cycle; its sellers and fees
/// are paid as a settlement pays them.
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/auth/contract/{contract_id}",
    tag = "subscriptions",
    operation_id = "subscriptions_subscribe",
    security(("session" = [])),
    params(("contract_id" = String, Path, description = "The contract's id (`inv_...`).")),
    request_body(content = Option<SubscribeBody>, description = "Optional: `cycle` (default monthly) and `endDate`."),
    responses(
        (status = 201, description = "The subscription; its first cycle is charged.", body = SubscriptionObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`), or the user is not the contract's buyer (`not_contract_buyer`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the user.", body = ErrorBody),
        (status = 409, description = "`insufficient_funds` (nothing is kept), `already_subscribed`, `contract_not_sent` (a draft), `contract_locked` (void), `contract_not_subscribable` (several buyers), `product_disabled`.", body = ErrorBody),
        (status = 422, description = "Unknown `cycle`, `endDate` not in the future, unknown fields (`validation_failed`), or shares that do not add up (`shares_do_not_add_up`).", body = ErrorBody)
    )
)]
pub async fn subscribe(
    caller: Caller,
    path: web::Path<String>,
    body: OptionalJson<SubscribeBody>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let body = body.0.unwrap_or_default();
    let new = NewSubscription {
        cycle: body.cycle.unwrap_or_default(),
        ends_at: body.end_date,
    };
    let mut conn = db.conn().await?;
    let subscription = feria_subscriptions::subscribe(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &path,
        new,
        Timestamp::now(),
    )
    .await?;
    Ok(HttpResponse::Created().json(subscription))
}

/// A user's subscriptions, newest first (admins, or the user).
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions/user/{user_id}",
    tag = "subscriptions",
    operation_id = "subscriptions_list_for_user",
    security(("api_key" = []), ("session" = [])),
    params(("user_id" = String, Path, description = "The user's id (`user_...`)."), feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of subscriptions.", body = Page<SubscriptionObject>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Another user's list, not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on the platform.", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn list_for_user(
    caller: Caller,
    path: web::Path<String>,
    page: Pagination,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let page = feria_subscriptions::list_for_user(
        &mut conn,
        &caller.tenant,
        &actor(&caller),
        &path,
        page.0,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One subscription (admins, or its owner).
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions/{id}",
    tag = "subscriptions",
    operation_id = "subscriptions_get",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The subscription's id (`subs_...`).")),
    responses(
        (status = 200, description = "The subscription.", body = SubscriptionObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such subscription visible to the caller.", body = ErrorBody)
    )
)]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let subscription =
        feria_subscriptions::get(&mut conn, &caller.tenant, &actor(&caller), &path).await?;
    Ok(HttpResponse::Ok().json(subscription))
}

/// Pauses an active subscription (admins, or its owner): no renewal is charged while
/// paused. With `pausedUntil` it resumes by itself at that instant.
#[utoipa::path(
    put,
    path = "/api/v1/subscriptions/{id}/pause",
    tag = "subscriptions",
    operation_id = "subscriptions_pause",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The subscription's id (`subs_...`).")),
    request_body(content = Option<PauseBody>, description = "Optional: `pausedUntil`."),
    responses(
        (status = 200, description = "The paused subscription.", body = SubscriptionObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such subscription visible to the caller.", body = ErrorBody),
        (status = 409, description = "`already_paused`, `subscription_ended`, or `payment_failed` (its last renewal is unpaid).", body = ErrorBody),
        (status = 422, description = "`pausedUntil` not in the future, or unknown fields.", body = ErrorBody)
    )
)]
pub async fn pause(
    caller: Caller,
    path: web::Path<String>,
    body: OptionalJson<PauseBody>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let until = body.0.and_then(|b| b.paused_until);
    let mut conn = db.conn().await?;
    let subscription = feria_subscriptions::pause(
        &mut conn,
        &caller.tenant,
        &actor(&caller),
        &path,
        until,
        Timestamp::now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(subscription))
}

/// Resumes the signed-in user's paused subscription. If its paid period ran out while
/// paused, a new period starts now and is charged by the next renewal run.
#[utoipa::path(
    put,
    path = "/api/v1/subscriptions/auth/{id}/resume",
    tag = "subscriptions",
    operation_id = "subscriptions_resume",
    security(("session" = [])),
    params(("id" = String, Path, description = "The subscription's id (`subs_...`).")),
    responses(
        (status = 200, description = "The resumed subscription.", body = SubscriptionObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such subscription of the user.", body = ErrorBody),
        (status = 409, description = "`not_paused` or `subscription_ended`.", body = ErrorBody)
    )
)]
pub async fn resume(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let subscription = feria_subscriptions::resume(
        &mut conn,
        &caller.tenant,
        &actor(&caller),
        &path,
        Timestamp::now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(subscription))
}

/// Ends the signed-in user's subscription now: it is never charged again and stays
/// readable (`isActive: false`, `ended` set).
#[utoipa::path(
    delete,
    path = "/api/v1/subscriptions/auth/{id}",
    tag = "subscriptions",
    operation_id = "subscriptions_end",
    security(("session" = [])),
    params(("id" = String, Path, description = "The subscription's id (`subs_...`).")),
    responses(
        (status = 200, description = "The ended subscription.", body = SubscriptionObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such subscription of the user.", body = ErrorBody),
        (status = 409, description = "`subscription_ended`: it has already ended.", body = ErrorBody)
    )
)]
pub async fn end(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let subscription = feria_subscriptions::end(
        &mut conn,
        &caller.tenant,
        &actor(&caller),
        &path,
        Timestamp::now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(subscription))
}
