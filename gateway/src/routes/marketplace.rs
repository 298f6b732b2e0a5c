//! The character-template marketplace (`../shared/seeds/template-marketplace.txt`):
//! workspaces, characters, listings, purchases with credits, dashboards and reviews.
//!
//! Session auth only ("Use session auth for marketplace actions"): an API key gets 403
//! `api_key_not_allowed` on every route here except the admin's workspace limit.
//! Another tenant's or mode's objects, and other users' characters and workspaces, are
//! 404.

use actix_web::{HttpRequest, HttpResponse, web};
use feria_kernel::{Db, ErrorBody};
use feria_template_marketplace::character::{
    CharacterChanges, CharacterEnvelope, CharacterFilter, CharacterList, NewCharacter,
};
use feria_template_marketplace::listing::{
    ListingChanges, ListingEnvelope, ListingFilter, ListingPage, NewListing, SellerListingPage,
};
use feria_template_marketplace::purchase::{PurchasePage, PurchaseRequest, PurchaseResult};
use feria_template_marketplace::review::{NewReview, ReviewEnvelope, ReviewPage};
use feria_template_marketplace::workspace::{WorkspaceChanges, WorkspaceEnvelope, WorkspaceList};
use feria_template_marketplace::{CharacterId, ListingId, MarketplaceError, WorkspaceId};
use feria_users::Role;

use crate::caller::Caller;
use crate::config::Config;
use crate::error::HttpError;
use crate::extract::{Json, Pagination, Query, idempotency_key};
use crate::replicas::Reads;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/workspaces").route(web::get().to(list_workspaces)))
        .service(web::resource("/workspaces/{id}").route(web::put().to(set_workspace_limit)))
        .service(
            web::resource("/characters")
                .route(web::post().to(create_character))
                .route(web::get().to(list_characters)),
        )
        .service(
            web::resource("/characters/{id}")
                .route(web::get().to(get_character))
                .route(web::put().to(update_character))
                .route(web::delete().to(delete_character)),
        )
        // Static segments before `/marketplace/{id}`.
        .service(web::resource("/marketplace").route(web::get().to(browse)))
        .service(web::resource("/marketplace/listings").route(web::post().to(create_listing)))
        .service(
            web::resource("/marketplace/listings/{id}")
                .route(web::put().to(update_listing))
                .route(web::delete().to(delete_listing)),
        )
        .service(web::resource("/marketplace/my-listings").route(web::get().to(my_listings)))
        .service(web::resource("/marketplace/my-purchases").route(web::get().to(my_purchases)))
        .service(web::resource("/marketplace/{id}").route(web::get().to(get_listing)))
        .service(web::resource("/marketplace/{id}/purchase").route(web::post().to(purchase)))
        .service(
            web::resource("/marketplace/{id}/reviews")
                .route(web::post().to(create_review))
                .route(web::get().to(list_reviews)),
        );
}

fn listing_id(raw: &str) -> Result<ListingId, HttpError> {
    raw.parse()
        .map_err(|_| MarketplaceError::ListingNotFound.into())
}

fn character_id(raw: &str) -> Result<CharacterId, HttpError> {
    raw.parse()
        .map_err(|_| MarketplaceError::CharacterNotFound.into())
}

fn workspace_id(raw: &str) -> Result<WorkspaceId, HttpError> {
    raw.parse()
        .map_err(|_| MarketplaceError::WorkspaceNotFound.into())
}

// ---- workspaces ----------------------------------------------------------------------

/// The signed-in user's workspaces (the default one is created on first use), each with
/// its character limit and count.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces",
    tag = "marketplace",
    operation_id = "workspaces_list",
    security(("session" = [])),
    responses(
        (status = 200, description = "The user's workspaces.", body = WorkspaceList),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody)
    )
)]
pub async fn list_workspaces(
    caller: Caller,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let mut conn = db.conn().await?;
    let list = feria_template_marketplace::workspace::list(
        &mut conn,
        &caller.tenant,
        user,
        config.workspace_character_limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Sets a workspace's own character limit, or (`null`) returns it to the server's
/// default (admins: API key, owner or admin).
#[utoipa::path(
    put,
    path = "/api/v1/workspaces/{id}",
    tag = "marketplace",
    operation_id = "workspaces_set_limit",
    security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The workspace's id (`ws_...`).")),
    request_body = WorkspaceChanges,
    responses(
        (status = 200, description = "The workspace.", body = WorkspaceEnvelope),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such workspace on this platform and mode.", body = ErrorBody),
        (status = 422, description = "`character_limit` out of 0..=100000.", body = ErrorBody)
    )
)]
pub async fn set_workspace_limit(
    caller: Caller,
    id: web::Path<String>,
    body: Json<WorkspaceChanges>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    caller.require_role(Role::Admin)?;
    let id = workspace_id(&id)?;
    let mut conn = db.conn().await?;
    let workspace = feria_template_marketplace::workspace::set_limit(
        &mut conn,
        &caller.tenant,
        &id,
        body.into_inner(),
        config.workspace_character_limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(WorkspaceEnvelope { workspace }))
}

// ---- characters ----------------------------------------------------------------------

/// Creates a character in one of the user's workspaces (the default one unless
/// `workspace_id` names another), within its character limit.
#[utoipa::path(
    post,
    path = "/api/v1/characters",
    tag = "marketplace",
    operation_id = "characters_create",
    security(("session" = [])),
    request_body = NewCharacter,
    responses(
        (status = 201, description = "The new character.", body = CharacterEnvelope),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 409, description = "The workspace is at its character limit (`workspace_full`).", body = ErrorBody),
        (status = 422, description = "Missing or invalid name, niche, description, workspace_id, avatar_url or traits.", body = ErrorBody)
    )
)]
pub async fn create_character(
    caller: Caller,
    body: Json<NewCharacter>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let mut conn = db.conn().await?;
    let character = feria_template_marketplace::character::create(
        &mut conn,
        &caller.tenant,
        user,
        body.into_inner(),
        config.workspace_character_limit,
    )
    .await?;
    Ok(HttpResponse::Created().json(CharacterEnvelope { character }))
}

/// The user's characters, oldest first: in one workspace, or in all of theirs.
#[utoipa::path(
    get,
    path = "/api/v1/characters",
    tag = "marketplace",
    operation_id = "characters_list",
    security(("session" = [])),
    params(CharacterFilter),
    responses(
        (status = 200, description = "The characters.", body = CharacterList),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such workspace of the user.", body = ErrorBody)
    )
)]
pub async fn list_characters(
    caller: Caller,
    filter: Query<CharacterFilter>,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let list = reads
        .run(&caller, async |conn| {
            Ok(
                feria_template_marketplace::character::list(conn, &caller.tenant, user, &filter)
                    .await?,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// One of the user's characters.
#[utoipa::path(
    get,
    path = "/api/v1/characters/{id}",
    tag = "marketplace",
    operation_id = "characters_get",
    security(("session" = [])),
    params(("id" = String, Path, description = "The character's id (`char_...`).")),
    responses(
        (status = 200, description = "The character.", body = CharacterEnvelope),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such character of the user.", body = ErrorBody)
    )
)]
pub async fn get_character(
    caller: Caller,
    id: web::Path<String>,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let id = character_id(&id)?;
    let character = reads
        .run(&caller, async |conn| {
            Ok(
                feria_template_marketplace::character::owned(conn, &caller.tenant, user, &id)
                    .await?
                    .to_object(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(CharacterEnvelope { character }))
}

/// Changes one of the user's characters; absent fields stay.
#[utoipa::path(
    put,
    path = "/api/v1/characters/{id}",
    tag = "marketplace",
    operation_id = "characters_update",
    security(("session" = [])),
    params(("id" = String, Path, description = "The character's id (`char_...`).")),
    request_body = CharacterChanges,
    responses(
        (status = 200, description = "The character.", body = CharacterEnvelope),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such character of the user.", body = ErrorBody),
        (status = 422, description = "Invalid fields.", body = ErrorBody)
    )
)]
pub async fn update_character(
    caller: Caller,
    id: web::Path<String>,
    body: Json<CharacterChanges>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let id = character_id(&id)?;
    let mut conn = db.conn().await?;
    let character = feria_template_marketplace::character::update(
        &mut conn,
        &caller.tenant,
        user,
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(CharacterEnvelope { character }))
}

/// Deletes one of the user's characters and frees its place in the workspace. Refused
/// while a listing of it is not archived.
#[utoipa::path(
    delete,
    path = "/api/v1/characters/{id}",
    tag = "marketplace",
    operation_id = "characters_delete",
    security(("session" = [])),
    params(("id" = String, Path, description = "The character's id (`char_...`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such character of the user.", body = ErrorBody),
        (status = 409, description = "A listing of it is not archived (`character_listed`).", body = ErrorBody)
    )
)]
pub async fn delete_character(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let id = character_id(&id)?;
    let mut conn = db.conn().await?;
    feria_template_marketplace::character::delete(&mut conn, &caller.tenant, user, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- marketplace ---------------------------------------------------------------------

/// Browses the active, available listings: the seed's filters, ranked full-text `q`,
/// pages.
#[utoipa::path(
    get,
    path = "/api/v1/marketplace",
    tag = "marketplace",
    operation_id = "marketplace_browse",
    security(("session" = [])),
    params(ListingFilter, feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of listings.", body = ListingPage),
        (status = 400, description = "A filter does not parse (`invalid_query`).", body = ErrorBody),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "Invalid page, page_size, price bounds, currency or rating.", body = ErrorBody)
    )
)]
pub async fn browse(
    caller: Caller,
    filter: Query<ListingFilter>,
    page: Pagination,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    caller.require_user()?;
    let listings = reads
        .run(&caller, async |conn| {
            Ok(
                feria_template_marketplace::listing::browse(conn, &caller.tenant, &filter, page.0)
                    .await?,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(listings))
}

/// A listing: an active one, one of the caller's own, or one they bought.
#[utoipa::path(
    get,
    path = "/api/v1/marketplace/{id}",
    tag = "marketplace",
    operation_id = "marketplace_get",
    security(("session" = [])),
    params(("id" = String, Path, description = "The listing's id (`mkt_...`).")),
    responses(
        (status = 200, description = "The listing.", body = ListingEnvelope),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such listing the caller may see.", body = ErrorBody)
    )
)]
pub async fn get_listing(
    caller: Caller,
    id: web::Path<String>,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let id = listing_id(&id)?;
    let listing = reads
        .run(&caller, async |conn| {
            Ok(feria_template_marketplace::listing::read(conn, &caller.tenant, user, &id).await?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ListingEnvelope { listing }))
}

/// Buys a listing with credits and clones its character into the buyer's default
/// workspace, in one transaction. Send an `Idempotency-Key` to make a retry safe: the same
/// key returns the first purchase (the same 201 and body) without buying again.
#[utoipa::path(
    post,
    path = "/api/v1/marketplace/{id}/purchase",
    tag = "marketplace",
    operation_id = "marketplace_purchase",
    security(("session" = [])),
    params(
        ("id" = String, Path, description = "The listing's id (`mkt_...`)."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the purchase happen at most once per key.")
    ),
    responses(
        (status = 201, description = "The purchase and the buyer's clone (also for a retry with the same `Idempotency-Key`: the first purchase).", body = PurchaseResult),
        (status = 400, description = "Malformed `Idempotency-Key` (`invalid_idempotency_key`).", body = ErrorBody),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`), or the buyer's own listing (`own_listing`).", body = ErrorBody),
        (status = 404, description = "No such listing on this platform and mode.", body = ErrorBody),
        (status = 409, description = "Not available (`listing_unavailable`: not active, archived, or an exclusive license already sold), already bought (`already_purchased`), not enough credits (`insufficient_funds`), the buyer's workspace at its limit (`workspace_full`), or the key used for another listing (`idempotency_key_reused`).", body = ErrorBody),
        (status = 422, description = "The seller's balance would pass the largest allowed (`balance_limit_exceeded`); nothing is bought.", body = ErrorBody)
    )
)]
pub async fn purchase(
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
    config: web::Data<Config>,
    metrics: web::Data<crate::metrics::Metrics>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let key = idempotency_key(&req)?;
    let id = listing_id(&id)?;
    let mut conn = db.conn().await?;
    let purchased = feria_template_marketplace::purchase::purchase(
        &mut conn,
        &caller.tenant,
        PurchaseRequest {
            buyer: user.clone(),
            listing: id,
            idempotency_key: key,
            default_character_limit: config.workspace_character_limit,
        },
    )
    .await?;
    if !purchased.replayed {
        metrics.purchased(crate::metrics::Marketplace::Templates);
    }
    // A replay answers exactly as the first time (the design card's idempotency rule).
    Ok(HttpResponse::Created().json(purchased.result))
}

/// Lists one of the seller's characters (the seed's body).
#[utoipa::path(
    post,
    path = "/api/v1/marketplace/listings",
    tag = "marketplace",
    operation_id = "marketplace_create_listing",
    security(("session" = [])),
    request_body = NewListing,
    responses(
        (status = 201, description = "The new listing.", body = ListingEnvelope),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "Character missing or not the seller's, price not positive or too precise, unknown currency, license_type or status.", body = ErrorBody)
    )
)]
pub async fn create_listing(
    caller: Caller,
    body: Json<NewListing>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let mut conn = db.conn().await?;
    let listing = feria_template_marketplace::listing::create(
        &mut conn,
        &caller.tenant,
        user,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Created().json(ListingEnvelope { listing }))
}

/// Changes one of the seller's listings; absent fields stay.
#[utoipa::path(
    put,
    path = "/api/v1/marketplace/listings/{id}",
    tag = "marketplace",
    operation_id = "marketplace_update_listing",
    security(("session" = [])),
    params(("id" = String, Path, description = "The listing's id (`mkt_...`).")),
    request_body = ListingChanges,
    responses(
        (status = 200, description = "The listing.", body = ListingEnvelope),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`), or not the seller (`not_listing_owner`).", body = ErrorBody),
        (status = 404, description = "No such listing the caller may see.", body = ErrorBody),
        (status = 422, description = "Invalid price, currency, license_type or status.", body = ErrorBody)
    )
)]
pub async fn update_listing(
    caller: Caller,
    id: web::Path<String>,
    body: Json<ListingChanges>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let id = listing_id(&id)?;
    let mut conn = db.conn().await?;
    let listing = feria_template_marketplace::listing::update(
        &mut conn,
        &caller.tenant,
        user,
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(ListingEnvelope { listing }))
}

/// Deletes a listing: archives it. Purchases already made keep working.
#[utoipa::path(
    delete,
    path = "/api/v1/marketplace/listings/{id}",
    tag = "marketplace",
    operation_id = "marketplace_delete_listing",
    security(("session" = [])),
    params(("id" = String, Path, description = "The listing's id (`mkt_...`).")),
    responses(
        (status = 200, description = "The archived listing.", body = ListingEnvelope),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`), or not the seller (`not_listing_owner`).", body = ErrorBody),
        (status = 404, description = "No such listing the caller may see.", body = ErrorBody)
    )
)]
pub async fn delete_listing(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let id = listing_id(&id)?;
    let mut conn = db.conn().await?;
    let listing =
        feria_template_marketplace::listing::archive(&mut conn, &caller.tenant, user, &id).await?;
    Ok(HttpResponse::Ok().json(ListingEnvelope { listing }))
}

/// The seller's dashboard: their listings (every status), newest first, each with its
/// sales count, revenue and earnings after the platform's fee.
#[utoipa::path(
    get,
    path = "/api/v1/marketplace/my-listings",
    tag = "marketplace",
    operation_id = "marketplace_my_listings",
    security(("session" = [])),
    params(feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of the seller's listings.", body = SellerListingPage),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn my_listings(
    caller: Caller,
    page: Pagination,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let listings = reads
        .run(&caller, async |conn| {
            Ok(
                feria_template_marketplace::listing::mine(conn, &caller.tenant, user, page.0)
                    .await?,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(listings))
}

/// The buyer's library: their purchases, newest first, each with the clone's id and
/// the license.
#[utoipa::path(
    get,
    path = "/api/v1/marketplace/my-purchases",
    tag = "marketplace",
    operation_id = "marketplace_my_purchases",
    security(("session" = [])),
    params(feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of the buyer's purchases.", body = PurchasePage),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn my_purchases(
    caller: Caller,
    page: Pagination,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let purchases = reads
        .run(&caller, async |conn| {
            Ok(
                feria_template_marketplace::purchase::mine(conn, &caller.tenant, user, page.0)
                    .await?,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(purchases))
}

/// Reviews a listing the caller bought: once, rating 1 to 5, with a text.
#[utoipa::path(
    post,
    path = "/api/v1/marketplace/{id}/reviews",
    tag = "marketplace",
    operation_id = "marketplace_create_review",
    security(("session" = [])),
    params(("id" = String, Path, description = "The listing's id (`mkt_...`).")),
    request_body = NewReview,
    responses(
        (status = 201, description = "The review.", body = ReviewEnvelope),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`), or not a buyer of the listing (`not_a_purchaser`).", body = ErrorBody),
        (status = 404, description = "No such listing the caller may see.", body = ErrorBody),
        (status = 409, description = "Reviewed already (`already_reviewed`).", body = ErrorBody),
        (status = 422, description = "Rating outside 1..=5, or text too long.", body = ErrorBody)
    )
)]
pub async fn create_review(
    caller: Caller,
    id: web::Path<String>,
    body: Json<NewReview>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let id = listing_id(&id)?;
    let mut conn = db.conn().await?;
    let review = feria_template_marketplace::review::create(
        &mut conn,
        &caller.tenant,
        user,
        &id,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Created().json(ReviewEnvelope { review }))
}

/// A listing's reviews, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/marketplace/{id}/reviews",
    tag = "marketplace",
    operation_id = "marketplace_list_reviews",
    security(("session" = [])),
    params(
        ("id" = String, Path, description = "The listing's id (`mkt_...`)."),
        feria_kernel::PageQuery
    ),
    responses(
        (status = 200, description = "A page of reviews.", body = ReviewPage),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such listing the caller may see.", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn list_reviews(
    caller: Caller,
    id: web::Path<String>,
    page: Pagination,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    let user = caller.require_user()?;
    let id = listing_id(&id)?;
    let reviews = reads
        .run(&caller, async |conn| {
            Ok(
                feria_template_marketplace::review::list(conn, &caller.tenant, user, &id, page.0)
                    .await?,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(reviews))
}
