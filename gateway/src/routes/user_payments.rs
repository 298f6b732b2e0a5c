//! A user's payment-provider references: the connected payout account and saved payment
//! methods, for the signed-in user (`/users/auth/...`) and for admins (`/users/{id}/...`).
//!
//! With a Stripe key for the caller's mode (`STRIPE_TEST_SECRET_KEY` /
//! `STRIPE_LIVE_SECRET_KEY`), every change goes through Stripe first: a connected account
//! is looked up there (its real `chargesEnabled`/`detailsSubmitted` are stored), a payment
//! method is attached to the user's Stripe customer and its card details come from
//! Stripe, removals detach it, the default is set on the customer, and
//! `POST /users/auth/client_secret` creates a SetupIntent. No pooled database connection
//! is held while Stripe answers. Without a key, the references
//! a client sends are recorded as given (and `client_secret` answers 409
//! `payment_provider_not_configured`). The flows live in `feria_billing::payment_methods`.

use actix_web::{HttpResponse, web};
use feria_billing::payment_methods::{self, ClientSecret};
use feria_kernel::{Db, ErrorBody, UserId};
use feria_platforms::media::MediaUrls;
use feria_users::payments::{
    BankAccount, ConnectBankAccount, NewPaymentMethod, PaymentMethod, PaymentMethodId,
};
use feria_users::{Role, UserError, UserObject};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::Json;
use crate::payments::PaymentProviders;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // `/users/auth/...` before `/users/{id}/...`.
    cfg.service(web::resource("/users/auth/bank_account").route(web::post().to(connect_my_bank)))
        .service(web::resource("/users/auth/client_secret").route(web::post().to(client_secret)))
        .service(
            web::resource("/users/auth/payment_methods")
                .route(web::get().to(my_methods))
                .route(web::post().to(add_my_method)),
        )
        .service(
            web::resource("/users/auth/payment_methods/{payment_method_id}")
                .route(web::delete().to(remove_my_method)),
        )
        .service(
            web::resource("/users/auth/payment_methods/{payment_method_id}/default")
                .route(web::put().to(default_my_method)),
        )
        .service(web::resource("/users/{id}/bank_account").route(web::get().to(bank_account)))
        .service(web::resource("/users/{id}/payment_methods").route(web::get().to(methods)))
        .service(
            web::resource("/users/{id}/payment_methods/{payment_method_id}")
                .route(web::delete().to(remove_method)),
        )
        .service(
            web::resource("/users/{id}/payment_methods/{payment_method_id}/default")
                .route(web::put().to(default_method)),
        );
}

/// A user's saved payment methods, default first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentMethodList {
    pub payment_methods: Vec<PaymentMethod>,
}

fn user_id(raw: &str) -> Result<UserId, HttpError> {
    raw.parse().map_err(|_| UserError::NotFound.into())
}

fn method_id(raw: &str) -> Result<PaymentMethodId, HttpError> {
    raw.parse()
        .map_err(|_| UserError::PaymentMethodNotFound.into())
}

/// Creates a Stripe SetupIntent for the signed-in user (creating their Stripe customer on
/// first use) and returns its client secret, with which the client saves a card through
/// Stripe.js; then it records the card with `POST /users/auth/payment_methods`.
#[utoipa::path(
    post,
    path = "/api/v1/users/auth/client_secret",
    tag = "users",
    operation_id = "users_client_secret",
    security(("session" = [])),
    responses(
        (status = 201, description = "The client secret.", body = ClientSecret),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 409, description = "No Stripe key for this mode (`payment_provider_not_configured`).", body = ErrorBody),
        (status = 503, description = "Stripe is unavailable (`payment_provider_unavailable`).", body = ErrorBody)
    )
)]
pub async fn client_secret(
    caller: Caller,
    db: web::Data<Db>,
    providers: web::Data<PaymentProviders>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let secret = feria_billing::payment_methods::client_secret(
        &db,
        providers.stripe(caller.mode()),
        &caller.tenant,
        user_id,
    )
    .await?;
    Ok(HttpResponse::Created().json(secret))
}

/// Records the signed-in user's Stripe Connect account (`acct_...`). Charges stay
/// disabled until the provider reports the account's details submitted.
#[utoipa::path(
    post,
    path = "/api/v1/users/auth/bank_account",
    tag = "users",
    operation_id = "users_connect_my_bank_account",
    security(("session" = [])),
    request_body = ConnectBankAccount,
    responses(
        (status = 200, description = "The user, with `stripeConnectId` set.", body = UserObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "Not an `acct_...` id (`validation_failed`), or Stripe refused it (`payment_provider_rejected`, Stripe's error in `details`).", body = ErrorBody)
    )
)]
pub async fn connect_my_bank(
    caller: Caller,
    body: Json<ConnectBankAccount>,
    db: web::Data<Db>,
    providers: web::Data<PaymentProviders>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let user = feria_billing::payment_methods::connect_bank_account(
        &db,
        providers.stripe(caller.mode()),
        &media,
        &caller.tenant,
        user_id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(user))
}

/// The signed-in user's saved payment methods.
#[utoipa::path(
    get,
    path = "/api/v1/users/auth/payment_methods",
    tag = "users",
    operation_id = "users_my_payment_methods",
    security(("session" = [])),
    responses(
        (status = 200, description = "Payment methods, default first.", body = PaymentMethodList),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody)
    )
)]
pub async fn my_methods(caller: Caller, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    let payment_methods = feria_users::payments::list(&mut conn, &caller.tenant, user_id).await?;
    Ok(HttpResponse::Ok().json(PaymentMethodList { payment_methods }))
}

/// Records a payment method the signed-in user saved at the provider (`pm_...`). The
/// first one, or one sent with `makeDefault`, becomes the default.
#[utoipa::path(
    post,
    path = "/api/v1/users/auth/payment_methods",
    tag = "users",
    operation_id = "users_add_my_payment_method",
    security(("session" = [])),
    request_body = NewPaymentMethod,
    responses(
        (status = 201, description = "The recorded payment method.", body = PaymentMethod),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 409, description = "Already saved (`payment_method_exists`).", body = ErrorBody),
        (status = 422, description = "Invalid fields, or too many payment methods (`validation_failed`); Stripe refused the method (`payment_provider_rejected`, Stripe's error in `details`).", body = ErrorBody)
    )
)]
pub async fn add_my_method(
    caller: Caller,
    body: Json<NewPaymentMethod>,
    db: web::Data<Db>,
    providers: web::Data<PaymentProviders>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let stripe = providers.stripe(caller.mode());
    let method =
        payment_methods::add(&db, stripe, &caller.tenant, user_id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(method))
}

/// Removes one of the signed-in user's payment methods; when it was the default, the
/// oldest remaining one becomes the default.
#[utoipa::path(
    delete,
    path = "/api/v1/users/auth/payment_methods/{payment_method_id}",
    tag = "users",
    operation_id = "users_remove_my_payment_method",
    security(("session" = [])),
    params(("payment_method_id" = String, Path, description = "The payment method's id (`pmt_...`).")),
    responses(
        (status = 200, description = "The remaining payment methods.", body = PaymentMethodList),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "Not one of the user's payment methods.", body = ErrorBody)
    )
)]
pub async fn remove_my_method(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
    providers: web::Data<PaymentProviders>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let id = method_id(&path)?;
    let stripe = providers.stripe(caller.mode());
    let payment_methods =
        payment_methods::remove(&db, stripe, &caller.tenant, user_id, &id).await?;
    Ok(HttpResponse::Ok().json(PaymentMethodList { payment_methods }))
}

/// Makes one of the signed-in user's payment methods the default.
#[utoipa::path(
    put,
    path = "/api/v1/users/auth/payment_methods/{payment_method_id}/default",
    tag = "users",
    operation_id = "users_default_my_payment_method",
    security(("session" = [])),
    params(("payment_method_id" = String, Path, description = "The payment method's id (`pmt_...`).")),
    responses(
        (status = 200, description = "The payment method, now the default.", body = PaymentMethod),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "Not one of the user's payment methods.", body = ErrorBody)
    )
)]
pub async fn default_my_method(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
    providers: web::Data<PaymentProviders>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let id = method_id(&path)?;
    let stripe = providers.stripe(caller.mode());
    let method = payment_methods::make_default(&db, stripe, &caller.tenant, user_id, &id).await?;
    Ok(HttpResponse::Ok().json(method))
}

/// A user's connected payout account (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/bank_account",
    tag = "users",
    operation_id = "users_bank_account",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The user's id (`user_...`).")),
    responses(
        (status = 200, description = "The connected account.", body = BankAccount),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user, or no account connected.", body = ErrorBody)
    )
)]
pub async fn bank_account(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let id = user_id(&id)?;
    let mut conn = db.conn().await?;
    let account = feria_users::payments::bank_account(&mut conn, &caller.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(account))
}

/// A user's saved payment methods (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/payment_methods",
    tag = "users",
    operation_id = "users_payment_methods",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The user's id (`user_...`).")),
    responses(
        (status = 200, description = "Payment methods, default first.", body = PaymentMethodList),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody)
    )
)]
pub async fn methods(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let id = user_id(&id)?;
    let mut conn = db.conn().await?;
    let payment_methods = feria_users::payments::list(&mut conn, &caller.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(PaymentMethodList { payment_methods }))
}

/// Removes a user's payment method (admins).
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/payment_methods/{payment_method_id}",
    tag = "users",
    operation_id = "users_remove_payment_method",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The user's id (`user_...`)."),
        ("payment_method_id" = String, Path, description = "The payment method's id (`pmt_...`).")
    ),
    responses(
        (status = 200, description = "The remaining payment methods.", body = PaymentMethodList),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user or payment method.", body = ErrorBody)
    )
)]
pub async fn remove_method(
    caller: Caller,
    path: web::Path<(String, String)>,
    db: web::Data<Db>,
    providers: web::Data<PaymentProviders>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let (id, method) = path.into_inner();
    let id = user_id(&id)?;
    let method = method_id(&method)?;
    let stripe = providers.stripe(caller.mode());
    let payment_methods =
        payment_methods::remove(&db, stripe, &caller.tenant, &id, &method).await?;
    Ok(HttpResponse::Ok().json(PaymentMethodList { payment_methods }))
}

/// Makes one of a user's payment methods the default (admins).
#[utoipa::path(
    put,
    path = "/api/v1/users/{id}/payment_methods/{payment_method_id}/default",
    tag = "users",
    operation_id = "users_default_payment_method",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The user's id (`user_...`)."),
        ("payment_method_id" = String, Path, description = "The payment method's id (`pmt_...`).")
    ),
    responses(
        (status = 200, description = "The payment method, now the default.", body = PaymentMethod),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user or payment method.", body = ErrorBody)
    )
)]
pub async fn default_method(
    caller: Caller,
    path: web::Path<(String, String)>,
    db: web::Data<Db>,
    providers: web::Data<PaymentProviders>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let (id, method) = path.into_inner();
    let id = user_id(&id)?;
    let method = method_id(&method)?;
    let stripe = providers.stripe(caller.mode());
    let method = payment_methods::make_default(&db, stripe, &caller.tenant, &id, &method).await?;
    Ok(HttpResponse::Ok().json(method))
}
