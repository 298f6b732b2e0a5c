//! Prepaid credits (the `internal` payment provider): admins top users up and read their
//! credits; users read their own.

use actix_web::{HttpRequest, HttpResponse, web};
use feria_billing::credits::{Credits, TopUpResult};
use feria_kernel::money::Currency;
use feria_kernel::{Db, ErrorBody};
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;
use validator::Validate;

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::{Json, idempotency_key};
use crate::routes::transactions::billing_actor;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // `/users/auth/...` before `/users/{id}/...`.
    cfg.service(web::resource("/users/auth/credits").route(web::get().to(my_credits)))
        .service(
            web::resource("/users/{id}/credits")
                .route(web::get().to(credits))
                .route(web::post().to(top_up)),
        );
}

/// Credits to add.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// In major units of `currency` (`25.00`), at most its decimal places, above zero and
    /// at most 10^12 minor units (`10000000000.00` USD); the balance it makes may not pass
    /// that either.
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 25.0)]
    pub amount: Decimal,
    /// ISO 4217 code, any case (`usd`).
    #[schema(value_type = String, example = "usd")]
    pub currency: Currency,
}

/// Adds prepaid credits to a user (admins). Send an `Idempotency-Key` header to make a
/// retry safe: the same key and body return the first result without adding again.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/credits",
    tag = "credits",
    operation_id = "credits_top_up",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The user's id (`user_...`)."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the top-up happen at most once per key.")
    ),
    request_body = TopUpRequest,
    responses(
        (status = 201, description = "The credits and the top-up transaction.", body = TopUpResult),
        (status = 400, description = "Malformed body (`malformed_json`) or `Idempotency-Key` (`invalid_idempotency_key`).", body = ErrorBody),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
        (status = 409, description = "The key was used with another body (`idempotency_key_reused`).", body = ErrorBody),
        (status = 422, description = "Not a positive amount in the currency's precision, more than 10^12 minor units, or an unknown currency (`validation_failed`); a balance that would pass 10^12 minor units (`balance_limit_exceeded`).", body = ErrorBody)
    )
)]
pub async fn top_up(
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    body: Json<TopUpRequest>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let key = idempotency_key(&req)?;
    let request = body.into_inner();
    let mut conn = db.conn().await?;
    let topped = feria_billing::credits::top_up_as(
        &mut conn,
        &billing_actor(&caller),
        &caller.tenant,
        &id,
        request.amount,
        request.currency,
        key,
    )
    .await?;
    Ok(HttpResponse::Created().json(topped))
}

/// A user's credits, one balance per currency (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/credits",
    tag = "credits",
    operation_id = "credits_get",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The user's id (`user_...`).")),
    responses(
        (status = 200, description = "The user's credits.", body = Credits),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody)
    )
)]
pub async fn credits(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let credits =
        feria_billing::credits::of_user_as(&mut conn, &billing_actor(&caller), &caller.tenant, &id)
            .await?;
    Ok(HttpResponse::Ok().json(credits))
}

/// The signed-in user's credits.
#[utoipa::path(
    get,
    path = "/api/v1/users/auth/credits",
    tag = "credits",
    operation_id = "credits_mine",
    security(("session" = [])),
    responses(
        (status = 200, description = "The user's credits.", body = Credits),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody)
    )
)]
pub async fn my_credits(caller: Caller, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    let credits = feria_billing::credits::of_user(&mut conn, &caller.tenant, user_id).await?;
    Ok(HttpResponse::Ok().json(credits))
}
