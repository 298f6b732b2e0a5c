//! Listing and searching products, and the category tree with counts.
//!
//! Filters and sorts map onto indexes led by `(platform_id, mode)` (see the migration);
//! full-text search uses each backend's engine (see `dialect.rs`). Price filters and
//! price sorts use the base price: the price in force moves with the clock, an index
//! cannot. Categories and tags match exactly (tags are stored lower-case, so the `tag`
//! filter is lower-cased too).

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::db::FullText;
use feria_kernel::{DbConn, DbError, Page, PageRequest, Tenant, Timestamp, UserId, with_conn};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::dialect;
use crate::error::CatalogError;
use crate::product::{self, Actor, ProductId, ProductObject};
use crate::schema::products;

/// The order of a product list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Best match of `q` first (the default with `q`); without `q`, newest first.
    Relevance,
    /// Newest first (the default without `q`).
    Newest,
    /// Cheapest base price first.
    PriceAsc,
    /// Dearest base price first.
    PriceDesc,
}

/// Filters and order of `GET /products`.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductFilter {
    /// Full-text query over name, description and tags; every word must match (English
    /// stemming: `phones` finds `phone`; stop words such as `the` are ignored). Ranked by
    /// relevance unless `sort` says otherwise.
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    pub q: Option<String>,
    /// Exact category.
    pub category: Option<String>,
    /// Exact subcategory.
    pub subcategory: Option<String>,
    /// A tag (case-insensitive).
    pub tag: Option<String>,
    /// The seller.
    #[param(value_type = Option<String>)]
    pub user_id: Option<UserId>,
    /// Variants of this product.
    #[param(value_type = Option<String>)]
    pub parent_product_id: Option<ProductId>,
    /// Lowest base price, in major units of `currency`; limits the list to that currency.
    #[param(value_type = Option<f64>)]
    pub min_price: Option<String>,
    /// Highest base price, in major units of `currency`; limits the list to that currency.
    #[param(value_type = Option<f64>)]
    pub max_price: Option<String>,
    /// ISO 4217 code: only products priced in it (`usd` for price filters when absent).
    pub currency: Option<String>,
    /// Enabled (`true`) or disabled (`false`) products only. Users see disabled
    /// products only when they sell them.
    pub enabled: Option<bool>,
    /// In stock (`true`: quantity > 0) or out of stock (`false`).
    pub in_stock: Option<bool>,
    /// `relevance`, `newest`, `price_asc` or `price_desc`.
    #[param(inline)]
    pub sort: Option<Sort>,
    #[serde(default)]
    #[param(ignore)]
    pub page: Option<u32>,
    #[serde(default)]
    #[param(ignore)]
    pub page_size: Option<u32>,
}

/// Which products a caller may list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// Admins: every live product.
    All,
    /// Users: enabled products and their own.
    EnabledOrOwn(Option<UserId>),
}

impl Visibility {
    fn of(actor: &Actor) -> Visibility {
        if actor.manages_catalog {
            Visibility::All
        } else {
            Visibility::EnabledOrOwn(actor.user_id.clone())
        }
    }
}

/// A checked search, ready for SQL.
#[derive(Debug, Clone)]
pub(crate) struct SearchQuery {
    pub tenant: Tenant,
    pub visibility: Visibility,
    /// Lower-case words of letters and digits; empty: no full-text condition.
    pub terms: Vec<String>,
    pub category: Option<String>,
    pub subcategory: Option<String>,
    pub tag: Option<String>,
    pub user_id: Option<UserId>,
    pub parent_product_id: Option<ProductId>,
    /// Upper-case ISO code.
    pub currency: Option<String>,
    pub min_price_minor: Option<i64>,
    pub max_price_minor: Option<i64>,
    pub enabled: Option<bool>,
    pub in_stock: Option<bool>,
    pub sort: Sort,
}

fn price_bound(
    field: &'static str,
    raw: Option<&str>,
    currency: feria_kernel::Currency,
) -> Result<Option<i64>, CatalogError> {
    let Some(raw) = raw else { return Ok(None) };
    let amount = Decimal::from_str_exact(raw.trim())
        .map_err(|_| CatalogError::invalid(field, "must be a decimal number such as 19.99"))?;
    Ok(Some(product::to_money(field, amount, currency)?.minor()))
}

impl SearchQuery {
    fn new(
        tenant: &Tenant,
        actor: &Actor,
        filter: &ProductFilter,
    ) -> Result<SearchQuery, CatalogError> {
        let price_filtered = filter.min_price.is_some() || filter.max_price.is_some();
        let currency = if filter.currency.is_some() || price_filtered {
            Some(product::parse_currency(filter.currency.as_deref())?)
        } else {
            None
        };
        let bound_currency = currency.unwrap_or(feria_kernel::Currency::USD);
        let min_price_minor =
            price_bound("min_price", filter.min_price.as_deref(), bound_currency)?;
        let max_price_minor =
            price_bound("max_price", filter.max_price.as_deref(), bound_currency)?;
        if let (Some(min), Some(max)) = (min_price_minor, max_price_minor)
            && min > max
        {
            return Err(CatalogError::invalid(
                "max_price",
                "must not be below min_price",
            ));
        }
        let terms = filter.q.as_deref().map(FullText::terms).unwrap_or_default();
        let sort = filter.sort.unwrap_or(if terms.is_empty() {
            Sort::Newest
        } else {
            Sort::Relevance
        });
        let trimmed = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Ok(SearchQuery {
            tenant: tenant.clone(),
            visibility: Visibility::of(actor),
            terms,
            category: trimmed(&filter.category),
            subcategory: trimmed(&filter.subcategory),
            tag: trimmed(&filter.tag).map(|t| t.to_lowercase()),
            user_id: filter.user_id.clone(),
            parent_product_id: filter.parent_product_id.clone(),
            currency: currency.map(|c| c.code().to_owned()),
            min_price_minor,
            max_price_minor,
            enabled: filter.enabled,
            in_stock: filter.in_stock,
            sort,
        })
    }
}

/// One page of the products the actor may see that match the filter.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    filter: &ProductFilter,
    page: PageRequest,
) -> Result<Page<ProductObject>, CatalogError> {
    let query = SearchQuery::new(tenant, actor, filter)?;
    let (rows, total) = dialect::search(conn, &query, page).await?;
    let objects = product::objects(conn, &rows, Timestamp::now()).await?;
    Ok(Page::new(objects, page, total))
}

/// A category, how many products it holds, and its subcategories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Category {
    pub name: String,
    /// Products in the category (with or without a subcategory).
    pub count: u64,
    /// By name.
    pub subcategories: Vec<Subcategory>,
}

/// A subcategory and how many products it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Subcategory {
    pub name: String,
    pub count: u64,
}

/// The categories of the products the actor may see, by name, with their subcategories
/// and counts. Products without a category are not counted.
pub async fn categories(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    page: PageRequest,
) -> Result<Page<Category>, CatalogError> {
    let visibility = Visibility::of(actor);
    let groups: Vec<(Option<String>, Option<String>, i64)> = with_conn!(conn, c => {
        let mut query = products::table
            .filter(products::platform_id.eq(&tenant.platform_id))
            .filter(products::mode.eq(tenant.mode))
            .filter(products::deleted_at.is_null())
            .filter(products::category.is_not_null())
            .group_by((products::category, products::subcategory))
            .select((products::category, products::subcategory, diesel::dsl::count_star()))
            .into_boxed();
        match &visibility {
            Visibility::All => {}
            Visibility::EnabledOrOwn(Some(user)) => {
                query = query.filter(
                    products::is_enabled.eq(true).or(products::user_id.eq(user.clone())),
                );
            }
            Visibility::EnabledOrOwn(None) => {
                query = query.filter(products::is_enabled.eq(true));
            }
        }
        query
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let mut tree: BTreeMap<String, (u64, BTreeMap<String, u64>)> = BTreeMap::new();
    for (category, subcategory, count) in groups {
        let Some(category) = category else { continue };
        let count = u64::try_from(count).unwrap_or(0);
        let entry = tree.entry(category).or_default();
        entry.0 += count;
        if let Some(subcategory) = subcategory {
            *entry.1.entry(subcategory).or_default() += count;
        }
    }
    let total = tree.len() as u64;
    let data = tree
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(page.page_size() as usize)
        .map(|(name, (count, subs))| Category {
            name,
            count,
            subcategories: subs
                .into_iter()
                .map(|(name, count)| Subcategory { name, count })
                .collect(),
        })
        .collect();
    Ok(Page::new(data, page, total))
}
