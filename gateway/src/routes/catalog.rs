//! Products: create, list and search, categories, read, change, delete, seasonal prices,
//! enable and disable.
//!
//! Every route takes an API key or a session (401 without). Reads show what the caller may
//! see: admins (and API keys) every product of their platform and mode, users the enabled
//! ones and their own. Changes take the product's seller or an admin (403
//! `not_product_owner`); another tenant's or mode's product is 404.

use actix_web::{HttpResponse, web};
use feria_catalog::pricing::{NewSeasonalPrice, SeasonalPriceObject, SeasonalPriceUsage};
use feria_catalog::product::{NewProduct, ProductChanges};
use feria_catalog::search::{Category, ProductFilter};
use feria_catalog::{Actor, CatalogError, ProductId, ProductObject, SeasonalPriceId};
use feria_kernel::{Db, ErrorBody, Page, UserId};
use feria_users::{Role, UserError};

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::{Json, Pagination, Query};
use crate::replicas::Reads;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Static segments (`categories`, `user`, `usage`) before `{id}` and `{price_id}`.
    cfg.service(
        web::resource("/products")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(web::resource("/products/categories").route(web::get().to(categories)))
    .service(web::resource("/products/user/{user_id}").route(web::get().to(list_by_user)))
    .service(
        web::resource("/products/{id}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(
        web::resource("/products/{id}/prices")
            .route(web::get().to(list_prices))
            .route(web::post().to(add_price)),
    )
    .service(web::resource("/products/{id}/prices/usage").route(web::put().to(set_price_usage)))
    .service(
        web::resource("/products/{id}/prices/{price_id}").route(web::delete().to(remove_price)),
    )
    .service(web::resource("/products/{id}/enable").route(web::put().to(enable)))
    .service(web::resource("/products/{id}/disable").route(web::put().to(disable)));
}

/// The catalog's view of the caller: API keys, and users from editor up, manage the whole
/// catalog (editors moderate every seller's products; docs/API-CONVENTIONS.md, Roles).
pub fn actor(caller: &Caller) -> Actor {
    match caller.user_id() {
        Some(user) => Actor::user(user.clone(), caller.role().at_least(Role::Editor)),
        None => Actor::api_key(),
    }
}

pub(crate) fn product_id(raw: &str) -> Result<ProductId, HttpError> {
    raw.parse()
        .map_err(|_| CatalogError::ProductNotFound.into())
}

fn price_id(raw: &str) -> Result<SeasonalPriceId, HttpError> {
    raw.parse()
        .map_err(|_| CatalogError::SeasonalPriceNotFound.into())
}

/// Creates a product. A user sells in their own name; admins and API keys name the
/// seller with `user_id` (required for an API key).
#[utoipa::path(
    post,
    path = "/api/v1/products",
    tag = "products",
    operation_id = "products_create",
    security(("api_key" = []), ("session" = [])),
    request_body = NewProduct,
    responses(
        (status = 201, description = "The new product.", body = ProductObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "A non-admin named another seller (`forbidden`).", body = ErrorBody),
        (status = 422, description = "Invalid fields: negative or too precise price, unknown currency, category shape (a subcategory needs a category), tags, parent product, seller.", body = ErrorBody)
    )
)]
pub async fn create(
    caller: Caller,
    body: Json<NewProduct>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    let product = feria_catalog::product::create(
        &mut conn,
        &caller.tenant,
        &actor(&caller),
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Created().json(product))
}

/// Lists and searches the products the caller may see: filters, full-text `q` (ranked),
/// sort and pages.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "products",
    operation_id = "products_list",
    security(("api_key" = []), ("session" = [])),
    params(ProductFilter, feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of products.", body = Page<ProductObject>),
        (status = 400, description = "A filter does not parse (`invalid_query`).", body = ErrorBody),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 422, description = "Invalid page, page_size, price bounds or currency.", body = ErrorBody)
    )
)]
pub async fn list(
    caller: Caller,
    filter: Query<ProductFilter>,
    page: Pagination,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let products = reads
        .run(&caller, async |conn| {
            Ok(
                feria_catalog::search::list(conn, &caller.tenant, &actor(&caller), &filter, page.0)
                    .await?,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(products))
}

/// Lists a seller's products (the same filters as `GET /products`).
#[utoipa::path(
    get,
    path = "/api/v1/products/user/{user_id}",
    tag = "products",
    operation_id = "products_list_by_user",
    security(("api_key" = []), ("session" = [])),
    params(
        ("user_id" = String, Path, description = "The seller's id (`user_...`)."),
        ProductFilter,
        feria_kernel::PageQuery
    ),
    responses(
        (status = 200, description = "A page of the seller's products.", body = Page<ProductObject>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
        (status = 422, description = "Invalid page, page_size, price bounds or currency.", body = ErrorBody)
    )
)]
pub async fn list_by_user(
    caller: Caller,
    user_id: web::Path<String>,
    filter: Query<ProductFilter>,
    page: Pagination,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let user_id: UserId = user_id
        .parse()
        .map_err(|_| HttpError::from(UserError::NotFound))?;
    let filter = ProductFilter {
        user_id: Some(user_id),
        ..filter.0
    };
    let products = reads
        .run(&caller, async |conn| {
            if let Some(seller) = &filter.user_id {
                feria_users::user::get(conn, &caller.tenant, seller).await?;
            }
            Ok(
                feria_catalog::search::list(conn, &caller.tenant, &actor(&caller), &filter, page.0)
                    .await?,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(products))
}

/// The categories of the products the caller may see, by name, each with its product
/// count and its subcategories with theirs.
#[utoipa::path(
    get,
    path = "/api/v1/products/categories",
    tag = "products",
    operation_id = "products_categories",
    security(("api_key" = []), ("session" = [])),
    params(feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of categories.", body = Page<Category>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn categories(
    caller: Caller,
    page: Pagination,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let categories = reads
        .run(&caller, async |conn| {
            Ok(
                feria_catalog::search::categories(conn, &caller.tenant, &actor(&caller), page.0)
                    .await?,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(categories))
}

/// A product the caller may see.
#[utoipa::path(
    get,
    path = "/api/v1/products/{id}",
    tag = "products",
    operation_id = "products_get",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The product's id (`prod_...`).")),
    responses(
        (status = 200, description = "The product.", body = ProductObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such product here, deleted, or disabled and not the caller's.", body = ErrorBody)
    )
)]
pub async fn get(
    caller: Caller,
    id: web::Path<String>,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let id = product_id(&id)?;
    let product = reads
        .run(&caller, async |conn| {
            Ok(feria_catalog::product::read(conn, &caller.tenant, &actor(&caller), &id).await?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(product))
}

/// Changes a product (its seller or an admin). Absent fields stay; `null` clears
/// `image`, `category`, `subcategory` or `parent_product_id`. `quantity` sets the stock.
#[utoipa::path(
    put,
    path = "/api/v1/products/{id}",
    tag = "products",
    operation_id = "products_update",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The product's id (`prod_...`).")),
    request_body = ProductChanges,
    responses(
        (status = 200, description = "The changed product.", body = ProductObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Neither the seller nor an admin (`not_product_owner`).", body = ErrorBody),
        (status = 404, description = "No such product here.", body = ErrorBody),
        (status = 422, description = "Invalid fields.", body = ErrorBody)
    )
)]
pub async fn update(
    caller: Caller,
    id: web::Path<String>,
    body: Json<ProductChanges>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let id = product_id(&id)?;
    let mut conn = db.conn().await?;
    let product = feria_catalog::product::update(
        &mut conn,
        &caller.tenant,
        &actor(&caller),
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(product))
}

/// Deletes a product (its seller or an admin): it leaves the catalog; carts that hold it
/// keep their lines with the snapshot taken when it was added. Returns the product as it
/// was.
#[utoipa::path(
    delete,
    path = "/api/v1/products/{id}",
    tag = "products",
    operation_id = "products_delete",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The product's id (`prod_...`).")),
    responses(
        (status = 200, description = "The deleted product.", body = ProductObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Neither the seller nor an admin (`not_product_owner`).", body = ErrorBody),
        (status = 404, description = "No such product here.", body = ErrorBody),
        (status = 409, description = "The product has variants; delete them first (`product_has_variants`).", body = ErrorBody)
    )
)]
pub async fn delete(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let id = product_id(&id)?;
    let mut conn = db.conn().await?;
    let product =
        feria_catalog::product::delete(&mut conn, &caller.tenant, &actor(&caller), &id).await?;
    Ok(HttpResponse::Ok().json(product))
}

/// The product's seasonal prices, by start.
#[utoipa::path(
    get,
    path = "/api/v1/products/{id}/prices",
    tag = "products",
    operation_id = "products_list_prices",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The product's id (`prod_...`)."),
        feria_kernel::PageQuery
    ),
    responses(
        (status = 200, description = "A page of seasonal prices.", body = Page<SeasonalPriceObject>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such product here.", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn list_prices(
    caller: Caller,
    id: web::Path<String>,
    page: Pagination,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let id = product_id(&id)?;
    let prices = reads
        .run(&caller, async |conn| {
            Ok(
                feria_catalog::pricing::list(conn, &caller.tenant, &actor(&caller), &id, page.0)
                    .await?,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(prices))
}

/// Adds a seasonal price `[start, end)` (the seller or an admin). Seasons of one product
/// never overlap. While `useSeasonalPrices` is on, a season covering now sets `price`.
#[utoipa::path(
    post,
    path = "/api/v1/products/{id}/prices",
    tag = "products",
    operation_id = "products_add_price",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The product's id (`prod_...`).")),
    request_body = NewSeasonalPrice,
    responses(
        (status = 201, description = "The product, with the new season.", body = ProductObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Neither the seller nor an admin (`not_product_owner`).", body = ErrorBody),
        (status = 404, description = "No such product here.", body = ErrorBody),
        (status = 422, description = "Invalid fields (negative price, dates that do not parse, `end` not after `start`), or the season overlaps another (`season_overlap`).", body = ErrorBody)
    )
)]
pub async fn add_price(
    caller: Caller,
    id: web::Path<String>,
    body: Json<NewSeasonalPrice>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let id = product_id(&id)?;
    let mut conn = db.conn().await?;
    let product = feria_catalog::pricing::add(
        &mut conn,
        &caller.tenant,
        &actor(&caller),
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Created().json(product))
}

/// Removes a seasonal price (the seller or an admin).
#[utoipa::path(
    delete,
    path = "/api/v1/products/{id}/prices/{price_id}",
    tag = "products",
    operation_id = "products_remove_price",
    security(("api_key" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The product's id (`prod_...`)."),
        ("price_id" = String, Path, description = "The season's id (`price_...`).")
    ),
    responses(
        (status = 200, description = "The product, without the season.", body = ProductObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Neither the seller nor an admin (`not_product_owner`).", body = ErrorBody),
        (status = 404, description = "No such product or season here.", body = ErrorBody)
    )
)]
pub async fn remove_price(
    caller: Caller,
    path: web::Path<(String, String)>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let (id, price) = path.into_inner();
    let id = product_id(&id)?;
    let price = price_id(&price)?;
    let mut conn = db.conn().await?;
    let product =
        feria_catalog::pricing::remove(&mut conn, &caller.tenant, &actor(&caller), &id, &price)
            .await?;
    Ok(HttpResponse::Ok().json(product))
}

/// Turns seasonal pricing on or off (the seller or an admin). `basePrice` stays visible
/// either way.
#[utoipa::path(
    put,
    path = "/api/v1/products/{id}/prices/usage",
    tag = "products",
    operation_id = "products_set_price_usage",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The product's id (`prod_...`).")),
    request_body = SeasonalPriceUsage,
    responses(
        (status = 200, description = "The product.", body = ProductObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Neither the seller nor an admin (`not_product_owner`).", body = ErrorBody),
        (status = 404, description = "No such product here.", body = ErrorBody),
        (status = 422, description = "`useSeasonalPrices` missing or not a boolean.", body = ErrorBody)
    )
)]
pub async fn set_price_usage(
    caller: Caller,
    id: web::Path<String>,
    body: Json<SeasonalPriceUsage>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let id = product_id(&id)?;
    let mut conn = db.conn().await?;
    let product = feria_catalog::pricing::set_usage(
        &mut conn,
        &caller.tenant,
        &actor(&caller),
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(product))
}

async fn set_enabled(
    caller: Caller,
    id: &str,
    db: &Db,
    enabled: bool,
) -> Result<HttpResponse, HttpError> {
    let id = product_id(id)?;
    let mut conn = db.conn().await?;
    let product = feria_catalog::product::set_enabled(
        &mut conn,
        &caller.tenant,
        &actor(&caller),
        &id,
        enabled,
    )
    .await?;
    Ok(HttpResponse::Ok().json(product))
}

/// Puts a product on sale (the seller or an admin).
#[utoipa::path(
    put,
    path = "/api/v1/products/{id}/enable",
    tag = "products",
    operation_id = "products_enable",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The product's id (`prod_...`).")),
    responses(
        (status = 200, description = "The product, enabled.", body = ProductObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Neither the seller nor an admin (`not_product_owner`).", body = ErrorBody),
        (status = 404, description = "No such product here.", body = ErrorBody)
    )
)]
pub async fn enable(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    set_enabled(caller, &id, &db, true).await
}

/// Takes a product off sale (the seller or an admin): it can no longer be added to carts
/// and only its seller and admins see it.
#[utoipa::path(
    put,
    path = "/api/v1/products/{id}/disable",
    tag = "products",
    operation_id = "products_disable",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The product's id (`prod_...`).")),
    responses(
        (status = 200, description = "The product, disabled.", body = ProductObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Neither the seller nor an admin (`not_product_owner`).", body = ErrorBody),
        (status = 404, description = "No such product here.", body = ErrorBody)
    )
)]
pub async fn disable(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    set_enabled(caller, &id, &db, false).await
}
