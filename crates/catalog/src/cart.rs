//! Carts: one per user (a user belongs to one platform and mode).
//!
//! A line holds a snapshot of the product's name, unit price and currency taken when the
//! product was first added; adding the same product again adds to that line's quantity
//! and keeps its snapshot. The line total and the cart subtotal are computed from the
//! snapshots. When the product's price in force later differs, the line says so
//! (`current_unit_price`, `price_changed`) instead of silently re-pricing; when the
//! product is disabled, sold out or deleted, `availability` says that. A cart holds one
//! currency. Adding does not reserve stock: stock is taken when an order settles.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{
    Currency, DbConn, DbError, Mode, Money, PlatformId, Tenant, Timestamp, UserId, with_conn,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::dialect;
use crate::error::CatalogError;
use crate::pricing;
use crate::product::{self, ProductId};
use crate::sale;
use crate::schema::{cart_items, carts};

feria_kernel::define_id!(
    /// A user's cart.
    CartId,
    "cart"
);

feria_kernel::define_id!(
    /// A line of a cart.
    CartItemId,
    "citem"
);

/// Most units on one cart line.
pub const MAX_LINE_QUANTITY: i64 = 1000;
/// Most lines in one cart.
pub const MAX_LINES: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = carts)]
struct CartRow {
    id: CartId,
    platform_id: PlatformId,
    mode: Mode,
    user_id: UserId,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = cart_items)]
struct ItemRow {
    id: CartItemId,
    cart_id: CartId,
    platform_id: PlatformId,
    mode: Mode,
    product_id: ProductId,
    name: String,
    unit_price_minor: i64,
    currency: String,
    quantity: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// A cart as the API shows it: the seed's object plus the subtotal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Cart)]
pub struct CartObject {
    pub id: CartId,
    pub platform_id: PlatformId,
    pub user_id: UserId,
    /// Lines in the order they were first added.
    pub items: Vec<CartItemObject>,
    /// The cart's currency, lower case; `null` while the cart is empty.
    #[schema(example = "usd")]
    pub currency: Option<String>,
    /// Sum of the line totals (snapshot prices), in major units.
    #[schema(value_type = f64, example = 599.98)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub subtotal: Decimal,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// What became of a line's product since it was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Enabled, with enough stock for the line.
    Available,
    /// The seller disabled it.
    Disabled,
    /// No stock left.
    OutOfStock,
    /// Some stock, fewer units than the line holds.
    InsufficientStock,
    /// The product was deleted; the line keeps its snapshot.
    Deleted,
}

/// A cart line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = CartItem)]
pub struct CartItemObject {
    pub id: CartItemId,
    pub product_id: ProductId,
    /// The product's name when it was added.
    pub name: String,
    pub quantity: i64,
    /// The unit price when the product was added, in major units.
    #[schema(value_type = f64, example = 299.99)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub unit_price: Decimal,
    /// `unit_price × quantity`.
    #[schema(value_type = f64, example = 599.98)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub line_total: Decimal,
    /// Lower case.
    #[schema(example = "usd")]
    pub currency: String,
    /// The product's price in force now; `null` once the product is deleted.
    #[schema(value_type = Option<f64>, example = 279.99)]
    #[serde(with = "feria_kernel::money::decimal_number::option")]
    pub current_unit_price: Option<Decimal>,
    /// Whether `current_unit_price` differs from `unit_price`.
    pub price_changed: bool,
    pub availability: Availability,
    /// When the product was first added.
    pub added: Timestamp,
}

/// How many units to add (1 when absent).
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddToCart {
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    pub quantity: Option<i64>,
}

async fn find_cart(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
) -> Result<Option<CartRow>, CatalogError> {
    let found = with_conn!(conn, c => {
        carts::table
            .filter(carts::platform_id.eq(&tenant.platform_id))
            .filter(carts::mode.eq(tenant.mode))
            .filter(carts::user_id.eq(user))
            .select(CartRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    Ok(found)
}

/// The user's cart, created empty on first use (concurrent first uses make one cart).
async fn cart_for(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
) -> Result<CartRow, CatalogError> {
    if let Some(cart) = find_cart(conn, tenant, user).await? {
        return Ok(cart);
    }
    let now = Timestamp::now();
    let row = CartRow {
        id: CartId::new(),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        user_id: user.clone(),
        created_at: now,
        updated_at: now,
    };
    with_conn!(conn, c => {
        diesel::insert_into(carts::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    find_cart(conn, tenant, user)
        .await?
        .ok_or(CatalogError::Db(DbError::NotFound))
}

async fn items_of(conn: &mut DbConn, cart: &CartId) -> Result<Vec<ItemRow>, CatalogError> {
    let rows = with_conn!(conn, c => {
        cart_items::table
            .filter(cart_items::cart_id.eq(cart))
            .order((cart_items::created_at.asc(), cart_items::id.asc()))
            .select(ItemRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(rows)
}

fn overflow(_: feria_kernel::MoneyError) -> CatalogError {
    CatalogError::invalid("quantity", "the cart's total is too large")
}

/// The API object of a cart: lines with their current state, totals.
async fn render(
    conn: &mut DbConn,
    tenant: &Tenant,
    cart: &CartRow,
) -> Result<CartObject, CatalogError> {
    let items = items_of(conn, &cart.id).await?;
    let ids: Vec<ProductId> = items.iter().map(|i| i.product_id.clone()).collect();
    let products = product::get_many_any_state(conn, tenant, &ids).await?;
    let seasonal: Vec<ProductId> = products
        .values()
        .filter(|p| p.use_seasonal_prices)
        .map(|p| p.id.clone())
        .collect();
    let mut seasons = pricing::seasons_of(conn, &seasonal).await?;
    let now = Timestamp::now();
    let currency = items
        .as_slice()
        .first()
        .map(|i| Currency::from_code(&i.currency).unwrap_or(Currency::USD));
    let mut subtotal = Money::zero(currency.unwrap_or(Currency::USD));
    let mut lines = Vec::with_capacity(items.len());
    for item in items {
        let item_currency = Currency::from_code(&item.currency).unwrap_or(Currency::USD);
        let unit = Money::from_minor(item.unit_price_minor, item_currency);
        let total = unit.checked_mul(item.quantity).map_err(overflow)?;
        subtotal = subtotal.checked_add(total).map_err(overflow)?;
        let live = products
            .get(&item.product_id)
            .filter(|p| p.deleted_at.is_none());
        let (current, availability) = match live {
            None => (None, Availability::Deleted),
            Some(p) => {
                let season_list = seasons.remove(&p.id).unwrap_or_default();
                let in_force = pricing::price_in_force(
                    p.base_price(),
                    p.use_seasonal_prices,
                    &season_list,
                    now,
                );
                seasons.insert(p.id.clone(), season_list);
                let availability = if !p.is_enabled {
                    Availability::Disabled
                } else if p.quantity == 0 {
                    Availability::OutOfStock
                } else if p.quantity < item.quantity {
                    Availability::InsufficientStock
                } else {
                    Availability::Available
                };
                (Some(in_force.price), availability)
            }
        };
        lines.push(CartItemObject {
            id: item.id,
            product_id: item.product_id,
            name: item.name,
            quantity: item.quantity,
            unit_price: unit.to_decimal(),
            line_total: total.to_decimal(),
            currency: item.currency.to_ascii_lowercase(),
            current_unit_price: current.map(|m| m.to_decimal()),
            price_changed: current.is_some_and(|m| m != unit),
            availability,
            added: item.created_at,
        });
    }
    Ok(CartObject {
        id: cart.id.clone(),
        platform_id: cart.platform_id.clone(),
        user_id: cart.user_id.clone(),
        items: lines,
        currency: currency.map(|c| c.code().to_ascii_lowercase()),
        subtotal: subtotal.to_decimal(),
        created: cart.created_at,
        updated: cart.updated_at,
    })
}

/// The user's cart (created empty on first use).
pub async fn view(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
) -> Result<CartObject, CatalogError> {
    let cart = cart_for(conn, tenant, user).await?;
    render(conn, tenant, &cart).await
}

async fn touch(conn: &mut DbConn, cart: &CartId, now: Timestamp) -> Result<(), CatalogError> {
    with_conn!(conn, c => {
        diesel::update(carts::table.find(cart)).set(carts::updated_at.eq(now)).execute(c).await
    })
    .map_err(DbError::from)?;
    Ok(())
}

/// Adds `quantity` units of a product to the user's cart: a new line with a snapshot of
/// the product's name and price in force, or more units on the product's existing line.
/// Refused (409) when the product is disabled (`product_disabled`), sold out
/// (`out_of_stock`), has fewer units than the line would hold (`insufficient_stock`), is
/// priced in another currency than the cart (`currency_mismatch`), or the cart is full.
pub async fn add(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
    product_id: &ProductId,
    quantity: i64,
) -> Result<CartObject, CatalogError> {
    if !(1..=MAX_LINE_QUANTITY).contains(&quantity) {
        return Err(CatalogError::invalid(
            "quantity",
            format!("must be between 1 and {MAX_LINE_QUANTITY}"),
        ));
    }
    let cart = conn
        .transaction(async |c| -> Result<CartRow, CatalogError> {
            let cart = cart_for(c, tenant, user).await?;
            // One change to a cart at a time: the line check below reads, then writes.
            dialect::lock_cart(c, &cart.id).await?;
            let product = sale::sellable(c, tenant, product_id).await?;
            if product.quantity == 0 {
                return Err(CatalogError::OutOfStock);
            }
            let lines = items_of(c, &cart.id).await?;
            if let Some(other) = lines.iter().find(|l| l.currency != product.currency) {
                return Err(CatalogError::CurrencyMismatch {
                    cart: other.currency.to_ascii_lowercase(),
                    product: product.currency.to_ascii_lowercase(),
                });
            }
            let existing = lines.iter().find(|l| l.product_id == product.id);
            let wanted = existing.map_or(0, |l| l.quantity) + quantity;
            if wanted > MAX_LINE_QUANTITY {
                return Err(CatalogError::invalid(
                    "quantity",
                    format!("a cart line holds at most {MAX_LINE_QUANTITY} units"),
                ));
            }
            if wanted > product.quantity {
                return Err(CatalogError::InsufficientStock {
                    available: product.quantity,
                });
            }
            let now = Timestamp::now();
            match existing {
                Some(line) => {
                    with_conn!(c, c => {
                        diesel::update(cart_items::table.find(&line.id))
                            .set((cart_items::quantity.eq(wanted), cart_items::updated_at.eq(now)))
                            .execute(c)
                            .await
                    })
                    .map_err(DbError::from)?;
                }
                None => {
                    if lines.len() as i64 >= MAX_LINES {
                        return Err(CatalogError::CartFull {
                            max_lines: MAX_LINES,
                        });
                    }
                    let price = pricing::price_of(c, &product, now).await?;
                    let row = ItemRow {
                        id: CartItemId::new(),
                        cart_id: cart.id.clone(),
                        platform_id: tenant.platform_id.clone(),
                        mode: tenant.mode,
                        product_id: product.id.clone(),
                        name: product.name.clone(),
                        unit_price_minor: price.price.minor(),
                        currency: product.currency.clone(),
                        quantity,
                        created_at: now,
                        updated_at: now,
                    };
                    with_conn!(c, c => {
                        diesel::insert_into(cart_items::table).values(&row).execute(c).await
                    })
                    .map_err(DbError::from)?;
                }
            }
            touch(c, &cart.id, now).await?;
            Ok(CartRow {
                updated_at: now,
                ..cart
            })
        })
        .await?;
    render(conn, tenant, &cart).await
}

/// Removes a line from the user's cart; another user's line is "not found".
pub async fn remove_item(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
    item: &CartItemId,
) -> Result<CartObject, CatalogError> {
    let Some(cart) = find_cart(conn, tenant, user).await? else {
        return Err(CatalogError::CartItemNotFound);
    };
    let deleted = with_conn!(conn, c => {
        diesel::delete(
            cart_items::table
                .find(item)
                .filter(cart_items::cart_id.eq(&cart.id)),
        )
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if deleted == 0 {
        return Err(CatalogError::CartItemNotFound);
    }
    let now = Timestamp::now();
    touch(conn, &cart.id, now).await?;
    render(
        conn,
        tenant,
        &CartRow {
            updated_at: now,
            ..cart
        },
    )
    .await
}

/// Empties the user's cart.
pub async fn clear(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
) -> Result<CartObject, CatalogError> {
    let cart = cart_for(conn, tenant, user).await?;
    let now = Timestamp::now();
    with_conn!(conn, c => {
        diesel::delete(cart_items::table.filter(cart_items::cart_id.eq(&cart.id)))
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    touch(conn, &cart.id, now).await?;
    render(
        conn,
        tenant,
        &CartRow {
            updated_at: now,
            ..cart
        },
    )
    .await
}

/// A cart of the tenant by id, locked until the caller's transaction ends, as the API
/// shows it (`None` when there is none): for turning a cart into something else (a
/// contract) and emptying it in that transaction. Two checkouts of one cart queue on the
/// lock (PostgreSQL; SQLite's writers take turns anyway): the second reads the cart the
/// first emptied, so a cart is checked out at most once.
pub async fn lock_for_checkout(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &CartId,
) -> Result<Option<CartObject>, CatalogError> {
    dialect::lock_cart(conn, id).await?;
    by_id(conn, tenant, id).await
}

/// A cart of the tenant by id, as the API shows it (`None` when there is none). For
/// callers that read a cart they name.
pub async fn by_id(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &CartId,
) -> Result<Option<CartObject>, CatalogError> {
    let found = with_conn!(conn, c => {
        carts::table
            .find(id)
            .filter(carts::platform_id.eq(&tenant.platform_id))
            .filter(carts::mode.eq(tenant.mode))
            .select(CartRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    match found {
        Some(cart) => Ok(Some(render(conn, tenant, &cart).await?)),
        None => Ok(None),
    }
}
