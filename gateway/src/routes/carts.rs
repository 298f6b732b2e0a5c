//! The signed-in user's cart: add a product, read, remove a line, clear.
//!
//! Session only: an API key is no shopper (403 `api_key_not_allowed`).

use actix_web::{HttpResponse, web};
use feria_catalog::cart::AddToCart;
use feria_catalog::{CartItemId, CartObject, CatalogError};
use feria_kernel::{Db, ErrorBody};

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::OptionalJson;
use crate::routes::catalog::product_id;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/carts/auth")
            .route(web::get().to(view))
            .route(web::delete().to(clear)),
    )
    .service(web::resource("/carts/auth/product/{product_id}").route(web::post().to(add)))
    .service(web::resource("/carts/auth/item/{cart_item_id}").route(web::delete().to(remove_item)));
}

/// Adds a product to the cart (`quantity` 1 when there is no body). Adding a product
/// already in the cart adds to its line. The line keeps the name and unit price of the
/// first addition; a later price change shows as `price_changed`.
#[utoipa::path(
    post,
    path = "/api/v1/carts/auth/product/{product_id}",
    tag = "carts",
    operation_id = "carts_add_product",
    security(("session" = [])),
    params(("product_id" = String, Path, description = "The product's id (`prod_...`).")),
    request_body(content = Option<AddToCart>, description = "Optional: how many units (1 to 1000; 1 when absent)."),
    responses(
        (status = 200, description = "The cart.", body = CartObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a shopper (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such product here.", body = ErrorBody),
        (status = 409, description = "`product_disabled`, `out_of_stock`, `insufficient_stock` (the line would hold more than the stock), `currency_mismatch` (a cart holds one currency) or `cart_full`.", body = ErrorBody),
        (status = 422, description = "Invalid quantity, or a line over 1000 units.", body = ErrorBody)
    )
)]
pub async fn add(
    caller: Caller,
    path: web::Path<String>,
    body: OptionalJson<AddToCart>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let product = product_id(&path)?;
    let quantity = body.0.and_then(|b| b.quantity).unwrap_or(1);
    let mut conn = db.conn().await?;
    let cart =
        feria_catalog::cart::add(&mut conn, &caller.tenant, user, &product, quantity).await?;
    Ok(HttpResponse::Ok().json(cart))
}

/// The signed-in user's cart (empty until something is added), with line totals, the
/// subtotal, and each line's current price and availability.
#[utoipa::path(
    get,
    path = "/api/v1/carts/auth",
    tag = "carts",
    operation_id = "carts_view",
    security(("session" = [])),
    responses(
        (status = 200, description = "The cart.", body = CartObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a shopper (`api_key_not_allowed`).", body = ErrorBody)
    )
)]
pub async fn view(caller: Caller, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let mut conn = db.conn().await?;
    let cart = feria_catalog::cart::view(&mut conn, &caller.tenant, user).await?;
    Ok(HttpResponse::Ok().json(cart))
}

/// Removes a line from the cart.
#[utoipa::path(
    delete,
    path = "/api/v1/carts/auth/item/{cart_item_id}",
    tag = "carts",
    operation_id = "carts_remove_item",
    security(("session" = [])),
    params(("cart_item_id" = String, Path, description = "The line's id (`citem_...`).")),
    responses(
        (status = 200, description = "The cart, without the line.", body = CartObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a shopper (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "Not a line of the user's cart.", body = ErrorBody)
    )
)]
pub async fn remove_item(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let item: CartItemId = path
        .parse()
        .map_err(|_| HttpError::from(CatalogError::CartItemNotFound))?;
    let mut conn = db.conn().await?;
    let cart = feria_catalog::cart::remove_item(&mut conn, &caller.tenant, user, &item).await?;
    Ok(HttpResponse::Ok().json(cart))
}

/// Empties the cart.
#[utoipa::path(
    delete,
    path = "/api/v1/carts/auth",
    tag = "carts",
    operation_id = "carts_clear",
    security(("session" = [])),
    responses(
        (status = 200, description = "The empty cart.", body = CartObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a shopper (`api_key_not_allowed`).", body = ErrorBody)
    )
)]
pub async fn clear(caller: Caller, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let mut conn = db.conn().await?;
    let cart = feria_catalog::cart::clear(&mut conn, &caller.tenant, user).await?;
    Ok(HttpResponse::Ok().json(cart))
}
