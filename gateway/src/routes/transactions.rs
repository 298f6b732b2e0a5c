//! Transactions: list and read (admins, or the parties of a transaction), refunds
//! (admins), per-user revenue and spend (admins or the user), platform metrics and top
//! spenders and earners (admins).
//!
//! The seed describes `/transactions/user/:user_id/revenue` as a buyer's revenue and
//! `/spend` as a seller's spend; the paths say the opposite and we follow the paths:
//! revenue is what the user earned as a seller, spend what they paid as a buyer.

use actix_web::{HttpRequest, HttpResponse, web};
use feria_billing::transactions::{
    CurrencyTotal, Metrics, Period, Transaction, TransactionFilter, TransactionId, TransactionKind,
    TransactionStatus, UserSide, UserTotal,
};
use feria_billing::{Actor, BillingError};
use feria_kernel::money::Currency;
use feria_kernel::{ApiError, Db, ErrorBody, Page, Timestamp, UserId};
use feria_users::{Role, UserError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::{Json, Pagination, Query, idempotency_key};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Static segments before `/transactions/{id}`.
    cfg.service(web::resource("/transactions").route(web::get().to(list)))
        .service(web::resource("/transactions/metrics").route(web::get().to(metrics)))
        .service(web::resource("/transactions/top/spenders").route(web::get().to(top_spenders)))
        .service(web::resource("/transactions/top/earners").route(web::get().to(top_earners)))
        .service(
            web::resource("/transactions/user/{user_id}/revenue").route(web::get().to(revenue)),
        )
        .service(web::resource("/transactions/user/{user_id}/spend").route(web::get().to(spend)))
        .service(web::resource("/transactions/{id}").route(web::get().to(get)))
        .service(web::resource("/transactions/{id}/refund").route(web::post().to(refund)));
}

/// Who acts, as billing sees it: admins (and API keys) or a user.
pub(crate) fn billing_actor(caller: &Caller) -> Actor {
    match caller.user_id() {
        Some(user) => Actor::user(user.clone(), caller.role().at_least(Role::Admin)),
        None => Actor::api_key(),
    }
}

fn transaction_id(raw: &str) -> Result<TransactionId, HttpError> {
    raw.parse()
        .map_err(|_| BillingError::TransactionNotFound.into())
}

fn user_id(raw: &str) -> Result<UserId, HttpError> {
    raw.parse().map_err(|_| UserError::NotFound.into())
}

fn period(from: Option<Timestamp>, to: Option<Timestamp>) -> Result<Period, HttpError> {
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        return Err(ApiError::invalid_field("to", "must be after `from`").into());
    }
    Ok(Period { from, to })
}

/// Filters of the transaction list.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Transactions where this user is the buyer or the seller.
    pub user_id: Option<UserId>,
    /// Transactions of this contract (`inv_...`).
    pub contract_id: Option<String>,
    /// `charge`, `earning`, `fee`, `refund`, `earning_reversal`, `fee_reversal`,
    /// `payout` or `credit_top_up`.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<TransactionKind>)]
    pub kind: Option<TransactionKind>,
    /// `succeeded`, `pending` or `failed`.
    #[param(value_type = Option<TransactionStatus>)]
    pub status: Option<TransactionStatus>,
    /// Created at or after (RFC 3339).
    #[param(value_type = Option<String>, example = "2026-01-01T00:00:00Z")]
    pub from: Option<Timestamp>,
    /// Created before (RFC 3339).
    #[param(value_type = Option<String>, example = "2026-02-01T00:00:00Z")]
    pub to: Option<Timestamp>,
}

/// The platform's transactions, newest first (admins).
#[utoipa::path(
    get,
    path = "/api/v1/transactions",
    tag = "transactions",
    operation_id = "transactions_list",
    security(("api_key" = []), ("session" = [])),
    params(ListQuery, feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of transactions.", body = Page<Transaction>),
        (status = 400, description = "A filter is malformed.", body = ErrorBody),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 422, description = "Invalid page, page_size or range.", body = ErrorBody)
    )
)]
pub async fn list(
    caller: Caller,
    query: Query<ListQuery>,
    page: Pagination,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let query = query.0;
    let range = period(query.from, query.to)?;
    let filter = TransactionFilter {
        user_id: query.user_id,
        contract_id: query.contract_id,
        kind: query.kind,
        status: query.status,
        from: range.from,
        to: range.to,
    };
    let mut conn = db.conn().await?;
    let page =
        feria_billing::transactions::list(&mut conn, &caller.tenant, &filter, page.0).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One transaction: admins see any of the platform's; a user sees those they are the
/// buyer or seller of (others answer 404).
#[utoipa::path(
    get,
    path = "/api/v1/transactions/{id}",
    tag = "transactions",
    operation_id = "transactions_get",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The transaction's id (`tran_...`).")),
    responses(
        (status = 200, description = "The transaction.", body = Transaction),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such transaction visible to the caller.", body = ErrorBody)
    )
)]
pub async fn get(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let id = transaction_id(&id)?;
    let mut conn = db.conn().await?;
    let transaction = feria_billing::transactions::get_as(
        &mut conn,
        &caller.tenant,
        &billing_actor(&caller),
        &id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(transaction))
}

/// A refund to make.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// In major units of the charge's currency; everything still refundable when absent.
    #[serde(default, with = "feria_kernel::money::decimal_number::option")]
    #[schema(value_type = Option<f64>, example = 10.5)]
    pub amount: Option<Decimal>,
}

/// The refund's transactions: the buyer's refund first, then the sellers' and fees'
/// shares taken back.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefundResult {
    pub transactions: Vec<Transaction>,
}

/// Refunds a charge in full or in part to the buyer (admins): a credits charge to their
/// credits, a card charge to their card through Stripe (each seller's share taken back
/// by reversing the transfer that paid them). The refund is taken back from the sellers
/// and fees in proportion to what each received. Send an `Idempotency-Key` header to make
/// a retry safe.
#[utoipa::path(
    post,
    path = "/api/v1/transactions/{id}/refund",
    tag = "transactions",
    operation_id = "transactions_refund",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The charge's transaction id (`tran_...`)."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the refund happen at most once per key.")
    ),
    request_body = RefundRequest,
    responses(
        (status = 201, description = "The refund's transactions.", body = RefundResult),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such transaction.", body = ErrorBody),
        (status = 409, description = "Not a charge, fully refunded (`not_refundable`), a seller no longer holds their share (`insufficient_funds`), no Stripe key for a card charge (`payment_provider_not_configured`), or the key was used with another body (`idempotency_key_reused`).", body = ErrorBody),
        (status = 422, description = "The amount is not positive or exceeds what is left (`validation_failed`), the refund would take a balance past the largest allowed (`balance_limit_exceeded`), or Stripe refused the refund or a reversal (`payment_provider_rejected`, Stripe's error in `details`).", body = ErrorBody),
        (status = 503, description = "Stripe is unreachable (`payment_provider_unavailable`): repeat the request (with the same key).", body = ErrorBody)
    )
)]
pub async fn refund(
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    body: Json<RefundRequest>,
    db: web::Data<Db>,
    payments: web::Data<crate::payments::PaymentProviders>,
) -> Result<HttpResponse, HttpError> {
    let key = idempotency_key(&req)?;
    let refunded = feria_billing::settlement::refund_charge(
        &db,
        payments.stripe(caller.mode()),
        &billing_actor(&caller),
        &caller.tenant,
        &id,
        body.into_inner().amount,
        key,
    )
    .await?;
    Ok(HttpResponse::Created().json(RefundResult {
        transactions: refunded.transactions,
    }))
}

/// A period in the query string.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// From this instant, inclusive (RFC 3339).
    #[param(value_type = Option<String>, example = "2026-01-01T00:00:00Z")]
    pub from: Option<Timestamp>,
    /// Until this instant, exclusive (RFC 3339).
    #[param(value_type = Option<String>, example = "2026-02-01T00:00:00Z")]
    pub to: Option<Timestamp>,
}

/// A user's totals per currency over a period.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserTotals {
    pub user_id: UserId,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub totals: Vec<CurrencyTotal>,
}

/// What the user earned as a seller over the period (earnings minus refunded shares),
/// per currency. Admins, or the user.
#[utoipa::path(
    get,
    path = "/api/v1/transactions/user/{user_id}/revenue",
    tag = "transactions",
    operation_id = "transactions_revenue",
    security(("api_key" = []), ("session" = [])),
    params(("user_id" = String, Path, description = "The user's id (`user_...`)."), PeriodQuery),
    responses(
        (status = 200, description = "Totals per currency.", body = UserTotals),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Neither an admin nor the user (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
        (status = 422, description = "`to` is not after `from`.", body = ErrorBody)
    )
)]
pub async fn revenue(
    caller: Caller,
    user: web::Path<String>,
    query: Query<PeriodQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    user_totals(caller, &user, query.0, db, UserSide::Earned).await
}

/// What the user spent as a buyer over the period (charges minus refunds), per
/// currency. Admins, or the user.
#[utoipa::path(
    get,
    path = "/api/v1/transactions/user/{user_id}/spend",
    tag = "transactions",
    operation_id = "transactions_spend",
    security(("api_key" = []), ("session" = [])),
    params(("user_id" = String, Path, description = "The user's id (`user_...`)."), PeriodQuery),
    responses(
        (status = 200, description = "Totals per currency.", body = UserTotals),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Neither an admin nor the user (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
        (status = 422, description = "`to` is not after `from`.", body = ErrorBody)
    )
)]
pub async fn spend(
    caller: Caller,
    user: web::Path<String>,
    query: Query<PeriodQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    user_totals(caller, &user, query.0, db, UserSide::Spent).await
}

async fn user_totals(
    caller: Caller,
    user: &str,
    query: PeriodQuery,
    db: web::Data<Db>,
    side: UserSide,
) -> Result<HttpResponse, HttpError> {
    let user = user_id(user)?;
    let range = period(query.from, query.to)?;
    let mut conn = db.conn().await?;
    let actor = billing_actor(&caller);
    let totals = feria_billing::transactions::user_totals(
        &mut conn,
        &caller.tenant,
        &actor,
        &user,
        side,
        range,
    )
    .await?;
    Ok(HttpResponse::Ok().json(UserTotals {
        user_id: user,
        from: range.from,
        to: range.to,
        totals,
    }))
}

/// Volume, average cart value, MRR and ARR, and platform fees over a period (admins).
#[utoipa::path(
    get,
    path = "/api/v1/transactions/metrics",
    tag = "transactions",
    operation_id = "transactions_metrics",
    security(("api_key" = []), ("session" = [])),
    params(PeriodQuery),
    responses(
        (status = 200, description = "Metrics per currency.", body = Metrics),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 422, description = "`to` is not after `from`.", body = ErrorBody)
    )
)]
pub async fn metrics(
    caller: Caller,
    query: Query<PeriodQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let range = period(query.from, query.to)?;
    let mut conn = db.conn().await?;
    let mrr = feria_subscriptions::mrr(&mut conn, &caller.tenant).await?;
    let metrics =
        feria_billing::transactions::metrics(&mut conn, &caller.tenant, range, mrr).await?;
    Ok(HttpResponse::Ok().json(metrics))
}

/// Which ranking to read.
#[derive(Debug, Clone, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// The currency ranked (ISO 4217, default `usd`).
    #[param(value_type = Option<String>, example = "usd")]
    pub currency: Option<Currency>,
    /// How many users, 1 to 100 (default 10).
    #[validate(range(min = 1, max = 100, message = "must be 1 to 100"))]
    pub limit: Option<u32>,
    /// From this instant, inclusive (RFC 3339).
    #[param(value_type = Option<String>)]
    pub from: Option<Timestamp>,
    /// Until this instant, exclusive (RFC 3339).
    #[param(value_type = Option<String>)]
    pub to: Option<Timestamp>,
}

/// The ranking, largest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopUsers {
    pub data: Vec<UserTotal>,
}

/// The users who spent most as buyers (charges minus refunds) over a period (admins).
#[utoipa::path(
    get,
    path = "/api/v1/transactions/top/spenders",
    tag = "transactions",
    operation_id = "transactions_top_spenders",
    security(("api_key" = []), ("session" = [])),
    params(TopQuery),
    responses(
        (status = 200, description = "Largest first.", body = TopUsers),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 422, description = "Invalid limit or range.", body = ErrorBody)
    )
)]
pub async fn top_spenders(
    caller: Caller,
    query: Query<TopQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    top(caller, query.0, db, false).await
}

/// The users who earned most as sellers (earnings minus refunded shares) over a period
/// (admins).
#[utoipa::path(
    get,
    path = "/api/v1/transactions/top/earners",
    tag = "transactions",
    operation_id = "transactions_top_earners",
    security(("api_key" = []), ("session" = [])),
    params(TopQuery),
    responses(
        (status = 200, description = "Largest first.", body = TopUsers),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 422, description = "Invalid limit or range.", body = ErrorBody)
    )
)]
pub async fn top_earners(
    caller: Caller,
    query: Query<TopQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    top(caller, query.0, db, true).await
}

async fn top(
    caller: Caller,
    query: TopQuery,
    db: web::Data<Db>,
    earners: bool,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let range = period(query.from, query.to)?;
    let limit = usize::try_from(query.limit.unwrap_or(10)).unwrap_or(10);
    let currency = query.currency.unwrap_or(Currency::USD);
    let mut conn = db.conn().await?;
    let data = feria_billing::transactions::top_users(
        &mut conn,
        &caller.tenant,
        earners,
        currency,
        range,
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(TopUsers { data }))
}
