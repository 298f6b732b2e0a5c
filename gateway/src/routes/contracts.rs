//! Contracts (multi-party invoices): create (also from a cart), list, read, change items,
//! buyers, sellers, fees and fee inclusion, void, send, settle and sync. Handlers are
//! thin; the rules live in `feria_contracts` and `docs/CONTRACTS.md`.
//!
//! Who may do what: admins and API keys everything on their platform and mode; the
//! creator of a contract reads and changes it; its buyers and sellers read it (a change
//! is 403 `not_contract_owner`); anyone else gets 404. Settling moves buyers' credits,
//! so only admins settle.

use actix_web::{HttpRequest, HttpResponse, web};
use feria_catalog::CartId;
use feria_contracts::service::{self, Actor, ListFilter};
use feria_contracts::settle::{self, PaymentProvider, SyncObject};
use feria_contracts::{
    ContractChanges, ContractError, ContractFeeId, ContractId, ContractItemId, ContractObject,
    DueChange, FeeChanges, FeeInclusionChanges, NewBuyer, NewContract, NewFee, NewItem, NewSeller,
    OwedChange,
};
use feria_kernel::{Db, ErrorBody, Page, UserId};
use feria_users::Role;

use crate::caller::Caller;
use crate::config::Config;
use crate::error::HttpError;
use crate::extract::{Json, Pagination, Query, idempotency_key};
use crate::payments::PaymentProviders;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Static segments before `/contracts/{id}`.
    cfg.service(
        web::resource("/contracts")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(web::resource("/contracts/auth").route(web::get().to(mine)))
    .service(web::resource("/contracts/cart/{cart_id}").route(web::post().to(from_cart)))
    .service(web::resource("/contracts/user/{user_id}/buyer").route(web::get().to(as_buyer)))
    .service(web::resource("/contracts/user/{user_id}/seller").route(web::get().to(as_seller)))
    .service(
        web::resource("/contracts/{id}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(void)),
    )
    .service(web::resource("/contracts/{id}/item").route(web::post().to(add_item)))
    .service(web::resource("/contracts/{id}/item/{item_id}").route(web::delete().to(remove_item)))
    .service(web::resource("/contracts/{id}/buyer").route(web::post().to(add_buyer)))
    .service(
        web::resource("/contracts/{id}/buyer/{buyer_id}").route(web::delete().to(remove_buyer)),
    )
    .service(web::resource("/contracts/{id}/buyer/{buyer_id}/due").route(web::put().to(set_due)))
    .service(web::resource("/contracts/{id}/seller").route(web::post().to(add_seller)))
    .service(
        web::resource("/contracts/{id}/seller/{seller_id}").route(web::delete().to(remove_seller)),
    )
    .service(
        web::resource("/contracts/{id}/seller/{seller_id}/owed").route(web::put().to(set_owed)),
    )
    .service(web::resource("/contracts/{id}/fee").route(web::post().to(add_fee)))
    .service(
        web::resource("/contracts/{id}/fee/{fee_id}")
            .route(web::put().to(update_fee))
            .route(web::delete().to(remove_fee)),
    )
    .service(web::resource("/contracts/{id}/fee_inclusion").route(web::put().to(set_fee_inclusion)))
    .service(web::resource("/contracts/{id}/send").route(web::post().to(send)))
    .service(web::resource("/contracts/{id}/settle").route(web::put().to(settle)))
    .service(web::resource("/contracts/{id}/sync").route(web::get().to(sync)));
}

fn actor(caller: &Caller) -> Actor {
    match caller.user_id() {
        Some(user) => Actor::user(user.clone(), caller.role().at_least(Role::Admin)),
        None => Actor::api_key(),
    }
}

fn contract_id(raw: &str) -> Result<ContractId, HttpError> {
    raw.parse().map_err(|_| ContractError::NotFound.into())
}

fn item_id(raw: &str) -> Result<ContractItemId, HttpError> {
    raw.parse().map_err(|_| ContractError::ItemNotFound.into())
}

fn fee_id(raw: &str) -> Result<ContractFeeId, HttpError> {
    raw.parse().map_err(|_| ContractError::FeeNotFound.into())
}

fn party_id(raw: &str, missing: ContractError) -> Result<UserId, HttpError> {
    raw.parse().map_err(|_| missing.into())
}

/// Creates a draft contract. Amounts are never accepted: `subTotal` and `total` follow
/// from the lines (sending them is 422).
#[utoipa::path(
    post,
    path = "/api/v1/contracts",
    tag = "contracts",
    operation_id = "contracts_create",
    security(("api_key" = []), ("session" = [])),
    request_body = NewContract,
    responses(
        (status = 201, description = "The new draft contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 422, description = "Invalid body, an unknown field (such as `total`), or `user_id` named by a non-admin.", body = ErrorBody)
    )
)]
pub async fn create(
    caller: Caller,
    body: Json<NewContract>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let contract = service::create(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Created().json(contract))
}

/// Turns a cart into a draft contract and empties the cart, in one transaction: lines at
/// the cart's prices, the cart's owner as the one buyer (owing the total), the products'
/// sellers as sellers (owed their lines' share of the net). The cart's owner or an admin.
#[utoipa::path(
    post,
    path = "/api/v1/contracts/cart/{cart_id}",
    tag = "contracts",
    operation_id = "contracts_from_cart",
    security(("api_key" = []), ("session" = [])),
    params(("cart_id" = String, Path, description = "The cart's id (`cart_...`).")),
    responses(
        (status = 201, description = "The new draft contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such cart of the caller.", body = ErrorBody),
        (status = 409, description = "The cart is empty (`cart_empty`), or a product of it is disabled (`product_disabled`).", body = ErrorBody)
    )
)]
pub async fn from_cart(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let cart: CartId = path
        .parse()
        .map_err(|_| HttpError::from(ContractError::CartNotFound))?;
    let mut conn = db.conn().await?;
    let contract = service::from_cart(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &cart,
    )
    .await?;
    Ok(HttpResponse::Created().json(contract))
}

async fn list_page(
    caller: &Caller,
    filter: ListFilter,
    page: Pagination,
    db: &Db,
    config: &Config,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let actor = actor(caller);
    let page = service::list_as(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor,
        &filter,
        page.0,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Every contract of the platform, newest first (admins).
#[utoipa::path(
    get,
    path = "/api/v1/contracts",
    tag = "contracts",
    operation_id = "contracts_list",
    security(("api_key" = []), ("session" = [])),
    params(feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of contracts.", body = Page<ContractObject>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn list(
    caller: Caller,
    page: Pagination,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    list_page(&caller, ListFilter::All, page, &db, &config).await
}

/// Contracts where the user is a buyer (admins, or the user).
#[utoipa::path(
    get,
    path = "/api/v1/contracts/user/{user_id}/buyer",
    tag = "contracts",
    operation_id = "contracts_list_as_buyer",
    security(("api_key" = []), ("session" = [])),
    params(("user_id" = String, Path, description = "The user's id (`user_...`)."), feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of contracts.", body = Page<ContractObject>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Another user's list, not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn as_buyer(
    caller: Caller,
    path: web::Path<String>,
    page: Pagination,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let user = party_id(&path, ContractError::BuyerNotFound)?;
    list_page(&caller, ListFilter::Buyer(user), page, &db, &config).await
}

/// Contracts where the user is a seller (admins, or the user).
#[utoipa::path(
    get,
    path = "/api/v1/contracts/user/{user_id}/seller",
    tag = "contracts",
    operation_id = "contracts_list_as_seller",
    security(("api_key" = []), ("session" = [])),
    params(("user_id" = String, Path, description = "The user's id (`user_...`)."), feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of contracts.", body = Page<ContractObject>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Another user's list, not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn as_seller(
    caller: Caller,
    path: web::Path<String>,
    page: Pagination,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let user = party_id(&path, ContractError::SellerNotFound)?;
    list_page(&caller, ListFilter::Seller(user), page, &db, &config).await
}

/// Contracts the signed-in user created or is a buyer or seller on (sessions only).
#[utoipa::path(
    get,
    path = "/api/v1/contracts/auth",
    tag = "contracts",
    operation_id = "contracts_mine",
    security(("session" = [])),
    params(feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of contracts.", body = Page<ContractObject>),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn mine(
    caller: Caller,
    page: Pagination,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?.clone();
    list_page(&caller, ListFilter::Involving(user), page, &db, &config).await
}

/// One contract: admins, its creator, buyers and sellers.
#[utoipa::path(
    get,
    path = "/api/v1/contracts/{id}",
    tag = "contracts",
    operation_id = "contracts_get",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The contract's id (`inv_...`).")),
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody)
    )
)]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let id = contract_id(&path)?;
    let mut conn = db.conn().await?;
    let contract = service::read(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Voids a draft or open contract (it stays readable, status `void`); voiding again is
/// harmless. A settled contract cannot be voided.
#[utoipa::path(
    delete,
    path = "/api/v1/contracts/{id}",
    tag = "contracts",
    operation_id = "contracts_void",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The contract's id (`inv_...`).")),
    responses(
        (status = 204, description = "Voided."),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody)
    )
)]
pub async fn void(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let id = contract_id(&path)?;
    let mut conn = db.conn().await?;
    service::void(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Changes notes, due date or (while it has no items or fees) the currency.
#[utoipa::path(
    put,
    path = "/api/v1/contracts/{id}",
    tag = "contracts",
    operation_id = "contracts_update",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`).")
    ),
    request_body = ContractChanges,
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn update(
    caller: Caller,
    path: web::Path<String>,
    body: Json<ContractChanges>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let id = contract_id(&path)?;
    let mut conn = db.conn().await?;
    let contract = service::update(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Adds a line: `product_id` (priced by the catalog at this instant) or a custom `name` and `unit_price`.
#[utoipa::path(
    post,
    path = "/api/v1/contracts/{id}/item",
    tag = "contracts",
    operation_id = "contracts_add_item",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`).")
    ),
    request_body = NewItem,
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), a card payment of it is in progress (`settlement_pending`), or the product is priced in another currency (`currency_mismatch`) or disabled (`product_disabled`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn add_item(
    caller: Caller,
    path: web::Path<String>,
    body: Json<NewItem>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let id = contract_id(&path)?;
    let mut conn = db.conn().await?;
    let contract = service::add_item(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Removes a line.
#[utoipa::path(
    delete,
    path = "/api/v1/contracts/{id}/item/{item_id}",
    tag = "contracts",
    operation_id = "contracts_remove_item",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`)."),
        ("item_id" = String, Path, description = "The line's id (`item_...`).")
    ),
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn remove_item(
    caller: Caller,
    path: web::Path<(String, String)>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let (raw, second) = path.into_inner();
    let id = contract_id(&raw)?;
    let second = item_id(&second)?;
    let mut conn = db.conn().await?;
    let contract = service::remove_item(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        &second,
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Adds a buyer (a user of the platform) with their share `due` (0 when absent).
#[utoipa::path(
    post,
    path = "/api/v1/contracts/{id}/buyer",
    tag = "contracts",
    operation_id = "contracts_add_buyer",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`).")
    ),
    request_body = NewBuyer,
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), a card payment of it is in progress (`settlement_pending`), or the user is already a buyer (`already_buyer`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn add_buyer(
    caller: Caller,
    path: web::Path<String>,
    body: Json<NewBuyer>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let id = contract_id(&path)?;
    let mut conn = db.conn().await?;
    let contract = service::add_buyer(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Sets a buyer's share of the total.
#[utoipa::path(
    put,
    path = "/api/v1/contracts/{id}/buyer/{buyer_id}/due",
    tag = "contracts",
    operation_id = "contracts_set_due",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`)."),
        ("buyer_id" = String, Path, description = "The buyer's user id (`user_...`).")
    ),
    request_body = DueChange,
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn set_due(
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<DueChange>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let (raw, second) = path.into_inner();
    let id = contract_id(&raw)?;
    let second = party_id(&second, ContractError::BuyerNotFound)?;
    let mut conn = db.conn().await?;
    let contract = service::set_due(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        &second,
        body.into_inner().due,
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Removes a buyer.
#[utoipa::path(
    delete,
    path = "/api/v1/contracts/{id}/buyer/{buyer_id}",
    tag = "contracts",
    operation_id = "contracts_remove_buyer",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`)."),
        ("buyer_id" = String, Path, description = "The buyer's user id (`user_...`).")
    ),
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn remove_buyer(
    caller: Caller,
    path: web::Path<(String, String)>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let (raw, second) = path.into_inner();
    let id = contract_id(&raw)?;
    let second = party_id(&second, ContractError::BuyerNotFound)?;
    let mut conn = db.conn().await?;
    let contract = service::remove_buyer(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        &second,
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Adds a seller (a user of the platform) with their share `owed` (0 when absent).
#[utoipa::path(
    post,
    path = "/api/v1/contracts/{id}/seller",
    tag = "contracts",
    operation_id = "contracts_add_seller",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`).")
    ),
    request_body = NewSeller,
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), a card payment of it is in progress (`settlement_pending`), or the user is already a seller (`already_seller`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn add_seller(
    caller: Caller,
    path: web::Path<String>,
    body: Json<NewSeller>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let id = contract_id(&path)?;
    let mut conn = db.conn().await?;
    let contract = service::add_seller(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Sets a seller's share of the net.
#[utoipa::path(
    put,
    path = "/api/v1/contracts/{id}/seller/{seller_id}/owed",
    tag = "contracts",
    operation_id = "contracts_set_owed",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`)."),
        ("seller_id" = String, Path, description = "The seller's user id (`user_...`).")
    ),
    request_body = OwedChange,
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn set_owed(
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<OwedChange>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let (raw, second) = path.into_inner();
    let id = contract_id(&raw)?;
    let second = party_id(&second, ContractError::SellerNotFound)?;
    let mut conn = db.conn().await?;
    let contract = service::set_owed(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        &second,
        body.into_inner().owed,
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Removes a seller.
#[utoipa::path(
    delete,
    path = "/api/v1/contracts/{id}/seller/{seller_id}",
    tag = "contracts",
    operation_id = "contracts_remove_seller",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`)."),
        ("seller_id" = String, Path, description = "The seller's user id (`user_...`).")
    ),
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn remove_seller(
    caller: Caller,
    path: web::Path<(String, String)>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let (raw, second) = path.into_inner();
    let id = contract_id(&raw)?;
    let second = party_id(&second, ContractError::SellerNotFound)?;
    let mut conn = db.conn().await?;
    let contract = service::remove_seller(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        &second,
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Adds a custom fee line: charged to the buyers on top of the subtotal, collected by the platform.
#[utoipa::path(
    post,
    path = "/api/v1/contracts/{id}/fee",
    tag = "contracts",
    operation_id = "contracts_add_fee",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`).")
    ),
    request_body = NewFee,
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn add_fee(
    caller: Caller,
    path: web::Path<String>,
    body: Json<NewFee>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let id = contract_id(&path)?;
    let mut conn = db.conn().await?;
    let contract = service::add_fee(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Changes a custom fee line.
#[utoipa::path(
    put,
    path = "/api/v1/contracts/{id}/fee/{fee_id}",
    tag = "contracts",
    operation_id = "contracts_update_fee",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`)."),
        ("fee_id" = String, Path, description = "The fee line's id (`fee_...`).")
    ),
    request_body = FeeChanges,
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn update_fee(
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<FeeChanges>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let (raw, second) = path.into_inner();
    let id = contract_id(&raw)?;
    let second = fee_id(&second)?;
    let mut conn = db.conn().await?;
    let contract = service::update_fee(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        &second,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Removes a custom fee line.
#[utoipa::path(
    delete,
    path = "/api/v1/contracts/{id}/fee/{fee_id}",
    tag = "contracts",
    operation_id = "contracts_remove_fee",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`)."),
        ("fee_id" = String, Path, description = "The fee line's id (`fee_...`).")
    ),
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn remove_fee(
    caller: Caller,
    path: web::Path<(String, String)>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let (raw, second) = path.into_inner();
    let id = contract_id(&raw)?;
    let second = fee_id(&second)?;
    let mut conn = db.conn().await?;
    let contract = service::remove_fee(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        &second,
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Says which fees are included in the contract, paid by the buyers on top (`true`), rather than absorbed by the sellers (`false`).
#[utoipa::path(
    put,
    path = "/api/v1/contracts/{id}/fee_inclusion",
    tag = "contracts",
    operation_id = "contracts_set_fee_inclusion",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`).")
    ),
    request_body = FeeInclusionChanges,
    responses(
        (status = 200, description = "The contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "The contract is settled or void (`contract_locked`), or a card payment of it is in progress (`settlement_pending`).", body = ErrorBody),
        (status = 422, description = "Invalid body (`validation_failed`).", body = ErrorBody)
    )
)]
pub async fn set_fee_inclusion(
    caller: Caller,
    path: web::Path<String>,
    body: Json<FeeInclusionChanges>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let id = contract_id(&path)?;
    let mut conn = db.conn().await?;
    let contract = service::set_fee_inclusion(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Mails every buyer the contract and their share, and opens it (`sent` the first time,
/// `lastSent` each time). Needs an item and a buyer.
#[utoipa::path(
    post,
    path = "/api/v1/contracts/{id}/send",
    tag = "contracts",
    operation_id = "contracts_send",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The contract's id (`inv_...`).")),
    responses(
        (status = 200, description = "The open contract.", body = ContractObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A buyer or seller who is not the creator (`not_contract_owner`).", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 409, description = "Settled or void (`contract_locked`), or no items or buyers (`contract_incomplete`).", body = ErrorBody),
        (status = 503, description = "Mail cannot be sent right now (`mail_unavailable`); the contract is unchanged.", body = ErrorBody)
    )
)]
pub async fn send(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
    config: web::Data<Config>,
    mailer: web::Data<feria_kernel::mail::Mailer>,
) -> Result<HttpResponse, HttpError> {
    let id = contract_id(&path)?;
    let mut conn = db.conn().await?;
    let contract = service::send(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &mailer,
        &id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// How to pay a settlement (optional; see `docs/MONEY.md`).
#[derive(Debug, Clone, Default, serde::Deserialize, validator::Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SettleQuery {
    /// `internal` (the buyers' credits) or `stripe` (their default saved cards, sellers
    /// paid by Stripe Connect transfers). Absent: credits when they cover every buyer's
    /// due, else the cards when every buyer has one and Stripe is configured, else
    /// credits; a pending card settlement of the contract is resumed.
    #[param(value_type = Option<String>, example = "stripe")]
    pub provider: Option<PaymentProvider>,
}

/// Settles an open contract (admins): charges each buyer's `due` (from their credits, or
/// their default card through Stripe), pays each seller's `owed` (to their receivable, or
/// by a Stripe Connect transfer) and the fees in one settlement (`contract:<id>`), takes
/// the products' stock, and marks it settled — all or nothing. Shares that do not add up
/// are 422 before anything moves; a buyer short of credits is 409 `insufficient_funds`,
/// a declined card 422 `payment_provider_rejected` with Stripe's code and message in
/// `details`; both are recorded in `lastPaymentAttempt` and can be retried. A repeat with
/// the same `Idempotency-Key` answers as the first time and moves nothing; a repeat after
/// Stripe was unreachable (503) resumes the same payment without charging twice.
#[utoipa::path(
    put,
    path = "/api/v1/contracts/{id}/settle",
    tag = "contracts",
    operation_id = "contracts_settle",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The contract's id (`inv_...`)."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer as the first settlement."),
        SettleQuery
    ),
    responses(
        (status = 200, description = "The settled contract.", body = ContractObject),
        (status = 400, description = "Malformed `Idempotency-Key` (`invalid_idempotency_key`) or `provider` (`invalid_query`).", body = ErrorBody),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such contract.", body = ErrorBody),
        (status = 409, description = "Not sent (`contract_not_sent`), void (`contract_locked`), already settled (`already_settled`), a buyer short of credits (`insufficient_funds`), too little stock (`insufficient_stock`), a disabled product (`product_disabled`); by card: a buyer without a saved card (`payment_method_required`), a seller without a payout account (`seller_not_connected`) or one that cannot be paid yet (`seller_account_not_ready`), no Stripe key (`payment_provider_not_configured`), a seller Stripe refused to pay after the buyers were charged (`settlement_incomplete`: fix the account and repeat), a card payment of it in progress (`settlement_pending`, `settlement_in_progress`: repeat the request to finish it).", body = ErrorBody),
        (status = 422, description = "The shares do not add up (`shares_do_not_add_up`), the total is zero, a seller's balance would pass the largest allowed (`balance_limit_exceeded`), or Stripe refused the payment (`payment_provider_rejected`, Stripe's type, code and message in `details`).", body = ErrorBody),
        (status = 503, description = "Stripe is unavailable (`payment_provider_unavailable`): repeat the request to resume.", body = ErrorBody)
    )
)]
pub async fn settle(
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: Query<SettleQuery>,
    db: web::Data<Db>,
    config: web::Data<Config>,
    providers: web::Data<PaymentProviders>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let key = idempotency_key(&req)?;
    let id = contract_id(&path)?;
    let outcome = settle::settle_with(
        &db,
        providers.stripe(caller.mode()),
        &caller.tenant,
        &config.fees,
        &id,
        key,
        query.0.provider,
    )
    .await?;
    Ok(HttpResponse::Ok().json(outcome.contract))
}

/// The contract recomputed: while editable, shares that no longer add up are rebalanced
/// in proportion (saying where a rounding unit went) and stored; with its payment state
/// from billing's transactions of the contract.
#[utoipa::path(
    get,
    path = "/api/v1/contracts/{id}/sync",
    tag = "contracts",
    operation_id = "contracts_sync",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The contract's id (`inv_...`).")),
    responses(
        (status = 200, description = "The contract with its payment state.", body = SyncObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such contract visible to the caller.", body = ErrorBody),
        (status = 422, description = "The fees exceed the subtotal.", body = ErrorBody)
    )
)]
pub async fn sync(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let id = contract_id(&path)?;
    let mut conn = db.conn().await?;
    let synced = settle::sync(
        &mut conn,
        &caller.tenant,
        &config.fees,
        &actor(&caller),
        &id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(synced))
}
