//! On-chain entitlements under `/marketplace`: offers, checkout quote, confirmation by
//! transaction hash (verified on chain), entitlements by wallet (docs/ONCHAIN.md).
//!
//! Every route takes an API key or a session (401 without) and works in the caller's
//! platform and mode. Operators (API keys, admin users) create, replace and retire offers
//! and revoke entitlements (403 for others). Only exact static paths under `/marketplace`
//! are registered here (plus `{offer_id}` and `{entitlement_id}` below `offers/` and
//! `entitlements/`), so `/marketplace/{id}` routes of other modules do not collide.

use actix_web::{HttpResponse, web};
use feria_kernel::sealed::Keyring;
use feria_kernel::{ApiError, Db, ErrorBody, Mode, Timestamp};
use feria_onchain_entitlements::entitlement::{
    ConfirmRequest, ConfirmedObject, EntitlementObject, PendingObject,
};
use feria_onchain_entitlements::offer::{NewOffer, OfferFields};
use feria_onchain_entitlements::quote::QuoteRequest;
use feria_onchain_entitlements::receipt::{Jwks, ReceiptObject};
use feria_onchain_entitlements::{Confirmation, OfferObject, Onchain, QuoteObject};
use feria_users::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::{Json, Query};
use crate::replicas::Reads;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/marketplace/offers")
            .route(web::get().to(list_offers))
            .route(web::post().to(create_offer)),
    )
    .service(
        web::resource("/marketplace/offers/{offer_id}")
            .route(web::put().to(update_offer))
            .route(web::delete().to(retire_offer)),
    )
    .service(web::resource("/marketplace/checkout/quote").route(web::post().to(quote)))
    .service(web::resource("/marketplace/checkout/confirm").route(web::post().to(confirm)))
    .service(web::resource("/marketplace/entitlements").route(web::get().to(entitlements)))
    .service(
        web::resource("/marketplace/entitlements/{entitlement_id}/revoke")
            .route(web::post().to(revoke)),
    )
    .service(
        web::resource("/marketplace/entitlements/{entitlement_id}/receipt")
            .route(web::get().to(receipt)),
    );
}

/// Outside `/api/v1`: the public keys receipts are verified with.
pub fn configure_well_known(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/.well-known/jwks.json").route(web::get().to(jwks)));
}

/// Whose keys.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JwksQuery {
    /// The platform (`plat_...`).
    pub platform: String,
    /// `live` (the default) or `test`: each mode signs with keys of its own.
    pub mode: Option<String>,
}

/// `{"offers": [...]}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OfferList {
    pub offers: Vec<OfferObject>,
}

/// `{"entitlements": [...]}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntitlementList {
    pub entitlements: Vec<EntitlementObject>,
}

/// Whose entitlements.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WalletQuery {
    /// The wallet: 0x and 40 hex digits (mixed case must pass its EIP-55 checksum).
    pub wallet: String,
}

/// Lists the platform's active offers.
#[utoipa::path(
    get,
    path = "/api/v1/marketplace/offers",
    tag = "marketplace",
    operation_id = "marketplace_offers_list",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "The active offers, oldest first.", body = OfferList),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody)
    )
)]
pub async fn list_offers(
    caller: Caller,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let offers = reads
        .run(&caller, async |conn| {
            Ok(feria_onchain_entitlements::offer::list(conn, &caller.tenant, false).await?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(OfferList {
        offers: offers.iter().map(|o| o.to_object()).collect(),
    }))
}

/// Creates an offer (operators).
#[utoipa::path(
    post,
    path = "/api/v1/marketplace/offers",
    tag = "marketplace",
    operation_id = "marketplace_offers_create",
    security(("api_key" = []), ("session" = [])),
    request_body = NewOffer,
    responses(
        (status = 201, description = "The new offer.", body = OfferObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an operator (API key or admin) (`forbidden`).", body = ErrorBody),
        (status = 409, description = "The `offer_id` exists (`offer_exists`).", body = ErrorBody),
        (status = 422, description = "Invalid fields: offer id shape, empty title, amount, decimals, chain id, duration.", body = ErrorBody)
    )
)]
pub async fn create_offer(
    caller: Caller,
    body: Json<NewOffer>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let mut conn = db.conn().await?;
    let offer =
        feria_onchain_entitlements::offer::create(&mut conn, &caller.tenant, body.into_inner())
            .await?;
    Ok(HttpResponse::Created().json(offer.to_object()))
}

/// Replaces an offer's fields (operators). Quotes already issued keep their price.
#[utoipa::path(
    put,
    path = "/api/v1/marketplace/offers/{offer_id}",
    tag = "marketplace",
    operation_id = "marketplace_offers_update",
    security(("api_key" = []), ("session" = [])),
    params(("offer_id" = String, Path, description = "The offer's readable id.")),
    request_body = OfferFields,
    responses(
        (status = 200, description = "The offer.", body = OfferObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an operator (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such offer.", body = ErrorBody),
        (status = 422, description = "Invalid fields.", body = ErrorBody)
    )
)]
pub async fn update_offer(
    caller: Caller,
    offer_id: web::Path<String>,
    body: Json<OfferFields>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let mut conn = db.conn().await?;
    let offer = feria_onchain_entitlements::offer::update(
        &mut conn,
        &caller.tenant,
        &offer_id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(offer.to_object()))
}

/// Retires an offer (operators): no new quotes; granted entitlements stay.
#[utoipa::path(
    delete,
    path = "/api/v1/marketplace/offers/{offer_id}",
    tag = "marketplace",
    operation_id = "marketplace_offers_retire",
    security(("api_key" = []), ("session" = [])),
    params(("offer_id" = String, Path, description = "The offer's readable id.")),
    responses(
        (status = 200, description = "The retired offer.", body = OfferObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an operator (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such offer.", body = ErrorBody)
    )
)]
pub async fn retire_offer(
    caller: Caller,
    offer_id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let mut conn = db.conn().await?;
    let offer =
        feria_onchain_entitlements::offer::retire(&mut conn, &caller.tenant, &offer_id).await?;
    Ok(HttpResponse::Ok().json(offer.to_object()))
}

/// Quotes a checkout: the exact ERC-20 transfer the wallet must send (`tx`), until
/// `expires_at`. The calldata is `transfer(treasury, amount_atomic)` followed by the
/// quote id's ASCII bytes.
#[utoipa::path(
    post,
    path = "/api/v1/marketplace/checkout/quote",
    tag = "marketplace",
    operation_id = "marketplace_checkout_quote",
    security(("api_key" = []), ("session" = [])),
    request_body = QuoteRequest,
    responses(
        (status = 200, description = "The quote.", body = QuoteObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Member-only offer and no active membership (`membership_required`).", body = ErrorBody),
        (status = 404, description = "Unknown or retired offer.", body = ErrorBody),
        (status = 422, description = "Malformed wallet (or bad EIP-55 checksum), missing `workspace_id` for a workspace-bound offer, or the offer's chain is not configured (`unsupported_chain`).", body = ErrorBody)
    )
)]
pub async fn quote(
    caller: Caller,
    body: Json<QuoteRequest>,
    db: web::Data<Db>,
    onchain: web::Data<Onchain>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let quote = feria_onchain_entitlements::quote::create(
        &mut conn,
        &caller.tenant,
        &onchain,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(quote.to_object()))
}

/// Confirms a quote's payment by transaction hash, verified on chain: sender is the
/// quote's wallet, the transaction calls the token with the quote's exact calldata, it
/// succeeded, the token logged the transfer to the treasury, it was mined before the
/// quote expired, and it has enough confirmations. Idempotent: the same hash for the
/// same quote returns the same entitlement.
#[utoipa::path(
    post,
    path = "/api/v1/marketplace/checkout/confirm",
    tag = "marketplace",
    operation_id = "marketplace_checkout_confirm",
    security(("api_key" = []), ("session" = [])),
    request_body = ConfirmRequest,
    responses(
        (status = 200, description = "The entitlement is active (new, or the same one on a replay).", body = ConfirmedObject),
        (status = 202, description = "Valid so far but not deep enough yet (`insufficient_confirmations`) or not mined (`tx_pending`): confirm again later.", body = PendingObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "Unknown quote, or the chain knows no such transaction (`tx_not_found`).", body = ErrorBody),
        (status = 409, description = "The hash already confirmed another quote (`tx_already_used`), or the quote was confirmed with another hash (`quote_already_used`).", body = ErrorBody),
        (status = 422, description = "`unsupported_chain`, `chain_mismatch`, `quote_mismatch`, `wallet_mismatch`, `wrong_recipient`, `amount_mismatch`, `calldata_mismatch`, `tx_failed`, `quote_expired`, or a malformed field.", body = ErrorBody),
        (status = 503, description = "The chain's node does not answer (`chain_unavailable`) or answers with an error (`chain_rpc_error`).", body = ErrorBody)
    )
)]
pub async fn confirm(
    caller: Caller,
    body: Json<ConfirmRequest>,
    db: web::Data<Db>,
    onchain: web::Data<Onchain>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let outcome = feria_onchain_entitlements::entitlement::confirm(
        &mut conn,
        &caller.tenant,
        &onchain,
        body.into_inner(),
    )
    .await?;
    Ok(confirmation_response(outcome))
}

/// 200 with the entitlement once active; 202 with the confirmations so far while pending.
fn confirmation_response(outcome: Confirmation) -> HttpResponse {
    match outcome {
        Confirmation::Active(entitlement) => {
            HttpResponse::Ok().json(Confirmation::confirmed_object(&entitlement))
        }
        Confirmation::Pending {
            quote_id,
            tx_hash,
            mined,
            confirmations,
            required,
        } => HttpResponse::Accepted().json(Confirmation::pending_object(
            &quote_id,
            &tx_hash,
            mined,
            confirmations,
            required,
        )),
    }
}

/// A wallet's entitlements on this platform, with their state.
#[utoipa::path(
    get,
    path = "/api/v1/marketplace/entitlements",
    tag = "marketplace",
    operation_id = "marketplace_entitlements_list",
    security(("api_key" = []), ("session" = [])),
    params(WalletQuery),
    responses(
        (status = 200, description = "The wallet's entitlements, oldest first.", body = EntitlementList),
        (status = 400, description = "No `wallet` parameter (`invalid_query`).", body = ErrorBody),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 422, description = "Malformed wallet.", body = ErrorBody)
    )
)]
pub async fn entitlements(
    caller: Caller,
    query: Query<WalletQuery>,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let list = reads
        .run(&caller, async |conn| {
            Ok(feria_onchain_entitlements::entitlement::of_wallet(
                conn,
                &caller.tenant,
                &query.0.wallet,
            )
            .await?)
        })
        .await?;
    let now = Timestamp::now();
    Ok(HttpResponse::Ok().json(EntitlementList {
        entitlements: list.iter().map(|e| e.to_object(now)).collect(),
    }))
}

/// Revokes an entitlement (operators); revoking again changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/marketplace/entitlements/{entitlement_id}/revoke",
    tag = "marketplace",
    operation_id = "marketplace_entitlements_revoke",
    security(("api_key" = []), ("session" = [])),
    params(("entitlement_id" = String, Path, description = "`ent:<chain_id>:<wallet>:<sequence>`.")),
    responses(
        (status = 200, description = "The revoked entitlement.", body = EntitlementObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an operator (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such entitlement.", body = ErrorBody)
    )
)]
pub async fn revoke(
    caller: Caller,
    entitlement_id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let mut conn = db.conn().await?;
    let entitlement =
        feria_onchain_entitlements::entitlement::revoke(&mut conn, &caller.tenant, &entitlement_id)
            .await?;
    Ok(HttpResponse::Ok().json(entitlement.to_object(Timestamp::now())))
}

/// A signed receipt of an active entitlement: a compact JWS (EdDSA, Ed25519) anyone can
/// verify offline with the platform's public keys (`jwks_uri`); docs/ONCHAIN.md,
/// "Receipts".
#[utoipa::path(
    get,
    path = "/api/v1/marketplace/entitlements/{entitlement_id}/receipt",
    tag = "marketplace",
    operation_id = "marketplace_entitlements_receipt",
    security(("api_key" = []), ("session" = [])),
    params(("entitlement_id" = String, Path, description = "`ent:<chain_id>:<wallet>:<sequence>`.")),
    responses(
        (status = 200, description = "The receipt, its key id, its claims and where the public keys are.", body = ReceiptObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such entitlement.", body = ErrorBody),
        (status = 409, description = "The entitlement is revoked or expired (`entitlement_not_active`).", body = ErrorBody)
    )
)]
pub async fn receipt(
    caller: Caller,
    entitlement_id: web::Path<String>,
    db: web::Data<Db>,
    onchain: web::Data<Onchain>,
    keys: web::Data<Keyring>,
) -> Result<HttpResponse, HttpError> {
    // The primary: the first receipt of a platform makes its signing key.
    let mut conn = db.conn().await?;
    let receipt = feria_onchain_entitlements::receipt::issue(
        &mut conn,
        &caller.tenant,
        &onchain,
        &keys,
        &entitlement_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(receipt))
}

/// The public keys of a platform's receipts (JWK Set, RFC 7517): the signing key and the
/// retired ones whose receipts may not have expired yet. Public, no credentials.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "marketplace",
    operation_id = "marketplace_receipt_jwks",
    params(JwksQuery),
    responses(
        (status = 200, description = "The keys (none before the platform's first receipt).", body = Jwks),
        (status = 400, description = "No `platform` parameter (`invalid_query`).", body = ErrorBody),
        (status = 422, description = "`mode` is neither live nor test.", body = ErrorBody)
    )
)]
pub async fn jwks(query: Query<JwksQuery>, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    let mode = match query.0.mode.as_deref() {
        None | Some("live") => Mode::Live,
        Some("test") => Mode::Test,
        Some(_) => {
            return Err(ApiError::invalid_field("mode", "must be `live` or `test`").into());
        }
    };
    let mut conn = db.conn().await?;
    let keys = feria_onchain_entitlements::receipt::jwks(
        &mut conn,
        query.0.platform.trim(),
        mode,
        Timestamp::now(),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(keys))
}
