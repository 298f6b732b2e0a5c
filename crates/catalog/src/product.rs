//! Products: create, read, change, enable, disable and (soft-)delete, with the rules on
//! who may see and change what.
//!
//! Visibility: admins (and API keys) see every live product of their platform and mode;
//! a user sees enabled products and their own. Changes: the product's seller or an admin.
//! A product another tenant or mode owns, a deleted one, or one the caller may not see is
//! "not found".

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{
    Currency, DbConn, DbError, Mode, Money, PlatformId, Tenant, Timestamp, UserId, with_conn,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use feria_events::EventType;

use crate::error::CatalogError;
use crate::pricing::{self, SeasonalPrice, SeasonalPriceObject};
use crate::schema::{product_tags, products};

feria_kernel::define_id!(
    /// A product (or a variant of one).
    ProductId,
    "prod"
);

/// Largest price, in minor units (10 billion US dollars): line totals and cart subtotals
/// stay far inside `i64`.
pub const MAX_PRICE_MINOR: i64 = feria_kernel::money::MAX_AMOUNT_MINOR;
/// Largest stock quantity of one product.
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// Most tags on one product.
pub const MAX_TAGS: usize = 20;
const MAX_TAG_CHARS: usize = 50;
const MAX_CATEGORY_CHARS: usize = 100;

/// Who acts on the catalog: a signed-in user, a user who manages the catalog (editors,
/// admins, owners), or an API key (an admin without a user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The signed-in user; `None` for an API key.
    pub user_id: Option<UserId>,
    /// Editors and above (and API keys) see and change every product of their platform and
    /// mode, and may name another user as a new product's seller.
    pub manages_catalog: bool,
}

impl Actor {
    /// The platform's API key: an admin that is no user.
    pub fn api_key() -> Actor {
        Actor {
            user_id: None,
            manages_catalog: true,
        }
    }

    /// A signed-in user; `manages_catalog` when their role is editor or above.
    pub fn user(user_id: UserId, manages_catalog: bool) -> Actor {
        Actor {
            user_id: Some(user_id),
            manages_catalog,
        }
    }

    fn is_seller_of(&self, product: &Product) -> bool {
        self.user_id.as_ref() == Some(&product.user_id)
    }

    /// Whether the actor may see the product (live products only reach this check).
    pub fn can_see(&self, product: &Product) -> bool {
        self.manages_catalog || product.is_enabled || self.is_seller_of(product)
    }

    /// Whether the actor may change the product.
    pub fn can_change(&self, product: &Product) -> bool {
        self.manages_catalog || self.is_seller_of(product)
    }
}

/// A product as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: ProductId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    /// The seller.
    pub user_id: UserId,
    pub parent_product_id: Option<ProductId>,
    pub name: String,
    pub description: String,
    pub image: Option<String>,
    pub quantity: i64,
    pub is_enabled: bool,
    pub category: Option<String>,
    pub subcategory: Option<String>,
    /// JSON array of lower-case tags.
    pub tags: String,
    /// The base price, in minor units of `currency`.
    pub price_minor: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    pub use_seasonal_prices: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
}

impl Product {
    pub fn tenant(&self) -> Tenant {
        Tenant::new(self.platform_id.clone(), self.mode)
    }

    /// The product's currency (`USD` if the stored code were ever unknown).
    pub fn currency(&self) -> Currency {
        Currency::from_code(&self.currency).unwrap_or(Currency::USD)
    }

    /// The base price, whatever the seasons say.
    pub fn base_price(&self) -> Money {
        Money::from_minor(self.price_minor, self.currency())
    }

    pub fn tag_list(&self) -> Vec<String> {
        serde_json::from_str(&self.tags).unwrap_or_default()
    }

    pub fn is_available_in_stock(&self) -> bool {
        self.quantity > 0
    }

    /// The API object, given the product's seasons; `price` is the price in force at `now`.
    pub fn to_object(&self, seasons: &[SeasonalPrice], now: Timestamp) -> ProductObject {
        let base = self.base_price();
        let in_force = pricing::price_in_force(base, self.use_seasonal_prices, seasons, now);
        ProductObject {
            id: self.id.clone(),
            platform_id: self.platform_id.clone(),
            user_id: self.user_id.clone(),
            parent_product_id: self.parent_product_id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            image: self.image.clone(),
            quantity: self.quantity,
            is_available_in_stock: self.is_available_in_stock(),
            is_enabled: self.is_enabled,
            category: self.category.clone(),
            subcategory: self.subcategory.clone(),
            tags: self.tag_list(),
            price: in_force.price.to_decimal(),
            base_price: base.to_decimal(),
            currency: self.currency.to_ascii_lowercase(),
            use_seasonal_prices: self.use_seasonal_prices,
            seasonal_prices: seasons.iter().map(SeasonalPrice::to_object).collect(),
            created: self.created_at,
            updated: self.updated_at,
        }
    }
}

/// A product as the API shows it: the seed's object, plus `basePrice`, `currency`,
/// `useSeasonalPrices`, `created` and `updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Product)]
pub struct ProductObject {
    pub id: ProductId,
    #[serde(rename = "platform_id")]
    pub platform_id: PlatformId,
    /// The seller.
    #[serde(rename = "user_id")]
    pub user_id: UserId,
    /// The product this one is a variant of.
    #[serde(rename = "parent_product_id")]
    pub parent_product_id: Option<ProductId>,
    pub name: String,
    pub description: String,
    /// URL of the product's image.
    pub image: Option<String>,
    /// Units in stock.
    pub quantity: i64,
    /// `quantity > 0`.
    pub is_available_in_stock: bool,
    pub is_enabled: bool,
    pub category: Option<String>,
    pub subcategory: Option<String>,
    /// Lower-case tags.
    pub tags: Vec<String>,
    /// The price in force now, in major units: the covering season's price when
    /// `useSeasonalPrices` is on and a season covers now, else `basePrice`.
    #[schema(value_type = f64, example = 299.99)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub price: Decimal,
    /// The product's own price, in major units.
    #[schema(value_type = f64, example = 299.99)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub base_price: Decimal,
    /// ISO 4217 code, lower case (`usd`).
    #[schema(example = "usd")]
    pub currency: String,
    /// Whether seasons set `price`.
    pub use_seasonal_prices: bool,
    /// The product's seasons, by start.
    pub seasonal_prices: Vec<SeasonalPriceObject>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A new product. The seller is the signed-in user; admins and API keys name one with
/// `user_id` (required for an API key).
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewProduct {
    /// The seller (admins and API keys only; a user sells in their own name).
    #[serde(rename = "user_id", default)]
    #[schema(value_type = Option<String>, example = "user_01HZX6FQJ5N6E7T2M3A4B5C6D7")]
    pub user_id: Option<UserId>,
    /// Makes this product a variant of another of the same seller (one level deep).
    #[serde(rename = "parent_product_id", default)]
    #[schema(value_type = Option<String>, example = "prod_01HZX6FQJ5N6E7T2M3A4B5C6D7")]
    pub parent_product_id: Option<ProductId>,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: String,
    #[serde(default)]
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub description: Option<String>,
    /// URL of the product's image: `http` or `https` with a host, at most 2000
    /// characters; stored normalised.
    #[serde(default)]
    #[schema(format = "uri", max_length = 2000)]
    pub image: Option<String>,
    /// Units in stock; 0 when absent.
    #[serde(default)]
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub quantity: Option<i64>,
    /// `true` when absent.
    #[serde(default)]
    pub is_enabled: Option<bool>,
    /// 1 to 100 characters.
    #[serde(default)]
    pub category: Option<String>,
    /// 1 to 100 characters; only with a `category`.
    #[serde(default)]
    pub subcategory: Option<String>,
    /// Up to 20 tags of 1 to 50 characters; stored lower-case, duplicates dropped.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// The base price in major units (`299.99`); not negative, no finer than the
    /// currency's minor unit.
    #[schema(value_type = f64, example = 299.99)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub price: Decimal,
    /// ISO 4217 code; `usd` when absent. Fixed once the product exists.
    #[serde(default)]
    #[schema(example = "usd")]
    pub currency: Option<String>,
    /// `false` when absent.
    #[serde(default)]
    pub use_seasonal_prices: Option<bool>,
}

/// Changes to a product; absent fields stay as they are, `null` clears a nullable one.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProductChanges {
    #[serde(rename = "parent_product_id", default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "prod_01HZX6FQJ5N6E7T2M3A4B5C6D7")]
    pub parent_product_id: Option<Option<ProductId>>,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: Option<String>,
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub description: Option<String>,
    /// URL of the product's image (`http` or `https`, at most 2000 characters); `null`
    /// removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = "uri", max_length = 2000)]
    pub image: Option<Option<String>>,
    /// Sets the stock to this many units.
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub quantity: Option<i64>,
    pub is_enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub subcategory: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    /// The base price in major units.
    #[schema(value_type = Option<f64>, example = 249.99)]
    #[serde(default, with = "feria_kernel::money::decimal_number::option")]
    pub price: Option<Decimal>,
    pub use_seasonal_prices: Option<bool>,
}

/// A field that is present (`Some(None)` for `null`), told apart from an absent one
/// (`None`, through `#[serde(default)]`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(AsChangeset)]
#[diesel(table_name = products)]
struct ProductChangeset {
    parent_product_id: Option<Option<ProductId>>,
    name: Option<String>,
    description: Option<String>,
    image: Option<Option<String>>,
    quantity: Option<i64>,
    is_enabled: Option<bool>,
    category: Option<Option<String>>,
    subcategory: Option<Option<String>>,
    tags: Option<String>,
    price_minor: Option<i64>,
    use_seasonal_prices: Option<bool>,
    updated_at: Timestamp,
}

// ---- field rules ---------------------------------------------------------------------

/// Parses a currency code (`usd` when absent).
pub fn parse_currency(code: Option<&str>) -> Result<Currency, CatalogError> {
    match code {
        None => Ok(Currency::USD),
        Some(code) => {
            Currency::from_code(code.trim()).map_err(|e| CatalogError::money("currency", e))
        }
    }
}

/// A price in major units as money: not negative, exact in the currency's minor unit,
/// at most [`MAX_PRICE_MINOR`].
pub fn to_money(
    field: &'static str,
    amount: Decimal,
    currency: Currency,
) -> Result<Money, CatalogError> {
    if amount.is_sign_negative() && !amount.is_zero() {
        return Err(CatalogError::invalid(field, "must not be negative"));
    }
    let money =
        Money::from_decimal_exact(amount, currency).map_err(|e| CatalogError::money(field, e))?;
    if money.minor() > MAX_PRICE_MINOR {
        return Err(CatalogError::invalid(field, "is too large"));
    }
    Ok(money)
}

fn clean_label(field: &'static str, value: &str, max_chars: usize) -> Result<String, CatalogError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max_chars {
        return Err(CatalogError::invalid(
            field,
            format!("must be 1 to {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(CatalogError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// Checks the category shape: each a trimmed label of 1 to 100 characters, and a
/// subcategory only within a category.
pub fn check_category(
    category: Option<&str>,
    subcategory: Option<&str>,
) -> Result<(Option<String>, Option<String>), CatalogError> {
    let category = category
        .map(|c| clean_label("category", c, MAX_CATEGORY_CHARS))
        .transpose()?;
    let subcategory = subcategory
        .map(|s| clean_label("subcategory", s, MAX_CATEGORY_CHARS))
        .transpose()?;
    if subcategory.is_some() && category.is_none() {
        return Err(CatalogError::invalid(
            "subcategory",
            "needs a category: a subcategory belongs to a category",
        ));
    }
    Ok((category, subcategory))
}

/// Tags trimmed, lower-cased, de-duplicated (first occurrence kept), checked; as JSON.
pub fn normalize_tags(tags: &[String]) -> Result<(Vec<String>, String), CatalogError> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = clean_label("tags", tag, MAX_TAG_CHARS)?.to_lowercase();
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(CatalogError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    let json = serde_json::to_string(&out).map_err(|_| CatalogError::invalid("tags", "invalid"))?;
    Ok((out, json))
}

/// The image URL as stored: the one check of stored URLs (`feria_kernel::web_url`).
fn check_image(image: Option<String>) -> Result<Option<String>, CatalogError> {
    feria_kernel::web_url::normalize_opt("image", image.as_deref())
        .map_err(|e| CatalogError::invalid(e.field, e.message()))
}

fn check_name(name: &str) -> Result<String, CatalogError> {
    clean_label("name", name, 200)
}

// ---- reads ---------------------------------------------------------------------------

/// The statement reading the live (not deleted) product `id` of `tenant`.
macro_rules! live_query {
    ($tenant:expr, $id:expr) => {
        products::table
            .find($id)
            .filter(products::platform_id.eq(&$tenant.platform_id))
            .filter(products::mode.eq($tenant.mode))
            .filter(products::deleted_at.is_null())
            .select(Product::as_select())
    };
}
pub(crate) use live_query;

/// A live (not deleted) product of the tenant, whoever may see it.
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &ProductId,
) -> Result<Product, CatalogError> {
    let found = with_conn!(conn, c => live_query!(tenant, id).first(c).await.optional())
        .map_err(DbError::from)?;
    found.ok_or(CatalogError::ProductNotFound)
}

/// Products of the tenant by id, deleted ones included (cart lines show what became of
/// their product).
pub async fn get_many_any_state(
    conn: &mut DbConn,
    tenant: &Tenant,
    ids: &[ProductId],
) -> Result<HashMap<ProductId, Product>, CatalogError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<Product> = with_conn!(conn, c => {
        products::table
            .filter(products::id.eq_any(ids))
            .filter(products::platform_id.eq(&tenant.platform_id))
            .filter(products::mode.eq(tenant.mode))
            .select(Product::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(rows.into_iter().map(|p| (p.id.clone(), p)).collect())
}

/// A product the actor may see.
pub async fn visible(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ProductId,
) -> Result<Product, CatalogError> {
    let product = get(conn, tenant, id).await?;
    if actor.can_see(&product) {
        Ok(product)
    } else {
        Err(CatalogError::ProductNotFound)
    }
}

/// A product the actor may change: 404 when they may not see it, 403 when they may see
/// but not change it.
pub async fn editable(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ProductId,
) -> Result<Product, CatalogError> {
    let product = visible(conn, tenant, actor, id).await?;
    if actor.can_change(&product) {
        Ok(product)
    } else {
        Err(CatalogError::NotProductOwner)
    }
}

/// API objects for products, with their seasons loaded in one query; prices at `now`.
pub async fn objects(
    conn: &mut DbConn,
    products: &[Product],
    now: Timestamp,
) -> Result<Vec<ProductObject>, CatalogError> {
    let ids: Vec<ProductId> = products.iter().map(|p| p.id.clone()).collect();
    let mut seasons = pricing::seasons_of(conn, &ids).await?;
    Ok(products
        .iter()
        .map(|p| p.to_object(&seasons.remove(&p.id).unwrap_or_default(), now))
        .collect())
}

/// The API object of one product, prices as of now.
pub async fn object(conn: &mut DbConn, product: &Product) -> Result<ProductObject, CatalogError> {
    let mut list = objects(conn, std::slice::from_ref(product), Timestamp::now()).await?;
    list.pop().ok_or(CatalogError::ProductNotFound)
}

/// The product the actor may see, as the API shows it.
pub async fn read(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ProductId,
) -> Result<ProductObject, CatalogError> {
    match pricing::product_with_seasons(conn, tenant, id).await? {
        Some((product, seasons)) if actor.can_see(&product) => {
            Ok(product.to_object(&seasons, Timestamp::now()))
        }
        _ => Err(CatalogError::ProductNotFound),
    }
}

// ---- writes --------------------------------------------------------------------------

/// The seller of a new product: the named user (admins only; must exist in the tenant)
/// or the signed-in user.
async fn resolve_seller(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    named: Option<&UserId>,
) -> Result<UserId, CatalogError> {
    match (named, &actor.user_id) {
        (Some(named), Some(me)) if named == me => Ok(me.clone()),
        (Some(named), _) => {
            if !actor.manages_catalog {
                return Err(CatalogError::NotAllowedForOtherUser);
            }
            match feria_users::user::get(conn, tenant, named).await {
                Ok(user) => Ok(user.id),
                Err(feria_users::UserError::NotFound) => Err(CatalogError::invalid(
                    "user_id",
                    "no such user on this platform and mode",
                )),
                Err(other) => Err(other.into()),
            }
        }
        (None, Some(me)) => Ok(me.clone()),
        (None, None) => Err(CatalogError::invalid(
            "user_id",
            "is required with an API key: name the seller",
        )),
    }
}

/// Checks that `parent` can be the parent of a product of `seller` (`child`, when it
/// exists already): a live product of the tenant and seller that is no variant itself.
async fn check_parent(
    conn: &mut DbConn,
    tenant: &Tenant,
    parent: &ProductId,
    seller: &UserId,
    child: Option<&ProductId>,
) -> Result<(), CatalogError> {
    const FIELD: &str = "parent_product_id";
    if child == Some(parent) {
        return Err(CatalogError::invalid(
            FIELD,
            "a product cannot be its own variant",
        ));
    }
    let parent = match get(conn, tenant, parent).await {
        Ok(parent) => parent,
        Err(CatalogError::ProductNotFound) => {
            return Err(CatalogError::invalid(FIELD, "no such product"));
        }
        Err(other) => return Err(other),
    };
    if parent.parent_product_id.is_some() {
        return Err(CatalogError::invalid(
            FIELD,
            "is itself a variant: variants are one level deep",
        ));
    }
    if &parent.user_id != seller {
        return Err(CatalogError::invalid(
            FIELD,
            "belongs to another seller: a variant has its parent's seller",
        ));
    }
    if let Some(child) = child
        && has_live_variants(conn, tenant, child).await?
    {
        return Err(CatalogError::invalid(
            FIELD,
            "this product has variants itself: variants are one level deep",
        ));
    }
    Ok(())
}

async fn has_live_variants(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &ProductId,
) -> Result<bool, CatalogError> {
    let count: i64 = with_conn!(conn, c => {
        products::table
            .filter(products::parent_product_id.eq(id))
            .filter(products::platform_id.eq(&tenant.platform_id))
            .filter(products::mode.eq(tenant.mode))
            .filter(products::deleted_at.is_null())
            .count()
            .get_result(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(count > 0)
}

#[derive(Insertable)]
#[diesel(table_name = product_tags)]
struct TagRow<'a> {
    product_id: &'a ProductId,
    platform_id: &'a PlatformId,
    mode: Mode,
    tag: &'a str,
}

async fn replace_tags(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &ProductId,
    tags: &[String],
) -> Result<(), CatalogError> {
    let rows: Vec<TagRow> = tags
        .iter()
        .map(|tag| TagRow {
            product_id: id,
            platform_id: &tenant.platform_id,
            mode: tenant.mode,
            tag,
        })
        .collect();
    with_conn!(conn, c => async {
        diesel::delete(product_tags::table.filter(product_tags::product_id.eq(id)))
            .execute(c)
            .await?;
        // One statement per tag (at most 20): SQLite's batch insert is not available
        // through the async wrapper.
        for row in &rows {
            diesel::insert_into(product_tags::table).values(row).execute(c).await?;
        }
        Ok::<_, diesel::result::Error>(())
    }
    .await)
    .map_err(DbError::from)?;
    Ok(())
}

/// Creates a product (and its tags) in one transaction.
pub async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    new: NewProduct,
) -> Result<ProductObject, CatalogError> {
    let currency = parse_currency(new.currency.as_deref())?;
    let price = to_money("price", new.price, currency)?;
    let name = check_name(&new.name)?;
    let (category, subcategory) =
        check_category(new.category.as_deref(), new.subcategory.as_deref())?;
    let (tags, tags_json) = normalize_tags(new.tags.as_deref().unwrap_or_default())?;
    let image = check_image(new.image.clone())?;
    let quantity = new.quantity.unwrap_or(0);
    if !(0..=MAX_QUANTITY).contains(&quantity) {
        return Err(CatalogError::invalid(
            "quantity",
            "must be between 0 and 1000000000",
        ));
    }
    conn.transaction(async |c| -> Result<ProductObject, CatalogError> {
        let seller = resolve_seller(c, tenant, actor, new.user_id.as_ref()).await?;
        if let Some(parent) = &new.parent_product_id {
            check_parent(c, tenant, parent, &seller, None).await?;
        }
        let now = Timestamp::now();
        let product = Product {
            id: ProductId::new(),
            platform_id: tenant.platform_id.clone(),
            mode: tenant.mode,
            user_id: seller,
            parent_product_id: new.parent_product_id.clone(),
            name: name.clone(),
            description: new.description.clone().unwrap_or_default(),
            image: image.clone(),
            quantity,
            is_enabled: new.is_enabled.unwrap_or(true),
            category: category.clone(),
            subcategory: subcategory.clone(),
            tags: tags_json.clone(),
            price_minor: price.minor(),
            currency: currency.code().to_owned(),
            use_seasonal_prices: new.use_seasonal_prices.unwrap_or(false),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        with_conn!(c, c => {
            diesel::insert_into(products::table).values(&product).execute(c).await
        })
        .map_err(DbError::from)?;
        replace_tags(c, tenant, &product.id, &tags).await?;
        let object = object(c, &product).await?;
        feria_events::record(c, tenant, EventType::ProductCreated, &object).await?;
        Ok(object)
    })
    .await
}

/// Applies changes to a product the actor may change, in one transaction.
pub async fn update(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ProductId,
    changes: ProductChanges,
) -> Result<ProductObject, CatalogError> {
    conn.transaction(async |c| -> Result<ProductObject, CatalogError> {
        let current = editable(c, tenant, actor, id).await?;
        let category = match &changes.category {
            Some(new) => new.clone(),
            None => current.category.clone(),
        };
        let subcategory = match &changes.subcategory {
            Some(new) => new.clone(),
            None => current.subcategory.clone(),
        };
        let (category, subcategory) = check_category(category.as_deref(), subcategory.as_deref())?;
        let tags = changes.tags.as_deref().map(normalize_tags).transpose()?;
        let price = changes
            .price
            .map(|p| to_money("price", p, current.currency()))
            .transpose()?;
        let image = match changes.image.clone() {
            Some(image) => Some(check_image(image)?),
            None => None,
        };
        if let Some(Some(parent)) = &changes.parent_product_id {
            check_parent(c, tenant, parent, &current.user_id, Some(&current.id)).await?;
        }
        let name = changes.name.as_deref().map(check_name).transpose()?;
        let changeset = ProductChangeset {
            parent_product_id: changes.parent_product_id.clone(),
            name,
            description: changes.description.clone(),
            image,
            quantity: changes.quantity,
            is_enabled: changes.is_enabled,
            category: Some(category),
            subcategory: Some(subcategory),
            tags: tags.as_ref().map(|(_, json)| json.clone()),
            price_minor: price.map(|p| p.minor()),
            use_seasonal_prices: changes.use_seasonal_prices,
            updated_at: Timestamp::now(),
        };
        with_conn!(c, c => {
            diesel::update(products::table.find(id)).set(&changeset).execute(c).await
        })
        .map_err(DbError::from)?;
        if let Some((tags, _)) = &tags {
            replace_tags(c, tenant, id, tags).await?;
        }
        let current = get(c, tenant, id).await?;
        let object = object(c, &current).await?;
        feria_events::record(c, tenant, EventType::ProductUpdated, &object).await?;
        Ok(object)
    })
    .await
}

/// Sets whether the product is for sale.
pub async fn set_enabled(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ProductId,
    enabled: bool,
) -> Result<ProductObject, CatalogError> {
    conn.transaction(async |c| -> Result<ProductObject, CatalogError> {
        editable(c, tenant, actor, id).await?;
        with_conn!(c, c => {
            diesel::update(products::table.find(id))
                .set((products::is_enabled.eq(enabled), products::updated_at.eq(Timestamp::now())))
                .execute(c)
                .await
        })
        .map_err(DbError::from)?;
        let current = get(c, tenant, id).await?;
        let object = object(c, &current).await?;
        feria_events::record(c, tenant, EventType::ProductUpdated, &object).await?;
        Ok(object)
    })
    .await
}

/// Deletes a product: it disappears from the catalog, while cart lines (and contract
/// items) that point at it keep their snapshot and a valid key (the row stays, marked
/// deleted). A product with live variants is not deleted (409). Returns the product as
/// it was.
pub async fn delete(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ProductId,
) -> Result<ProductObject, CatalogError> {
    conn.transaction(async |c| -> Result<ProductObject, CatalogError> {
        let product = editable(c, tenant, actor, id).await?;
        if has_live_variants(c, tenant, id).await? {
            return Err(CatalogError::HasVariants);
        }
        let now = Timestamp::now();
        with_conn!(c, c => {
            diesel::update(products::table.find(id).filter(products::deleted_at.is_null()))
                .set((products::deleted_at.eq(now), products::updated_at.eq(now)))
                .execute(c)
                .await
        })
        .map_err(DbError::from)?;
        let object = object(c, &product).await?;
        feria_events::record(c, tenant, EventType::ProductDeleted, &object).await?;
        Ok(object)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_have_a_shape() {
        assert_eq!(
            check_category(Some(" Electronics "), Some("Phones")).unwrap(),
            (Some("Electronics".into()), Some("Phones".into()))
        );
        assert!(check_category(None, Some("Phones")).is_err());
        assert!(check_category(Some(""), None).is_err());
        assert!(check_category(Some("a\u{0}b"), None).is_err());
        assert!(check_category(Some(&"x".repeat(101)), None).is_err());
        assert_eq!(check_category(None, None).unwrap(), (None, None));
    }

    #[test]
    fn tags_are_normalised() {
        let (tags, json) =
            normalize_tags(&["Red".into(), " red ".into(), "Cotton".into()]).unwrap();
        assert_eq!(tags, vec!["red", "cotton"]);
        assert_eq!(json, r#"["red","cotton"]"#);
        assert!(normalize_tags(&[" ".into()]).is_err());
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(normalize_tags(&many).is_err());
    }

    #[test]
    fn prices_are_exact_and_not_negative() {
        let dec = |s: &str| Decimal::from_str_exact(s).unwrap();
        assert_eq!(
            to_money("price", dec("299.99"), Currency::USD)
                .unwrap()
                .minor(),
            29999
        );
        assert_eq!(
            to_money("price", dec("0"), Currency::USD).unwrap().minor(),
            0
        );
        assert!(to_money("price", dec("-1"), Currency::USD).is_err());
        assert!(to_money("price", dec("1.001"), Currency::USD).is_err());
        assert!(to_money("price", dec("1.5"), Currency::JPY).is_err());
        assert!(to_money("price", dec("100000000000"), Currency::USD).is_err());
    }
}
