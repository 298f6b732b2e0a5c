//! Seasonal prices and the price in force.
//!
//! A season is a named price over a half-open interval `[start, end)`. The seasons of one
//! product never overlap (an overlapping one is refused), so at any instant at most one
//! covers it. The price in force at `t` is that season's price when the product's
//! `useSeasonalPrices` is on and a season covers `t`, else the base price:
//! [`price_in_force`] is the rule, [`price_at`] applies it to a stored product (contracts
//! and carts call it).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::db::PgConn;
use feria_kernel::{
    DbConn, DbError, Mode, Money, Page, PageRequest, PlatformId, Tenant, Timestamp, with_conn,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::dialect;
use crate::error::CatalogError;
use crate::product::{self, Actor, Product, ProductId, ProductObject};
use crate::schema::{products, seasonal_prices};

feria_kernel::define_id!(
    /// A seasonal price of a product.
    SeasonalPriceId,
    "price"
);

/// Most seasons on one product.
pub const MAX_SEASONS: i64 = 100;

/// A season as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = seasonal_prices)]
struct SeasonRow {
    id: SeasonalPriceId,
    product_id: ProductId,
    platform_id: PlatformId,
    mode: Mode,
    name: String,
    price_minor: i64,
    start_at: Timestamp,
    end_at: Timestamp,
    created_at: Timestamp,
}

/// A season of a product: `price` from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeasonalPrice {
    pub id: SeasonalPriceId,
    pub name: String,
    pub price: Money,
    pub start: Timestamp,
    pub end: Timestamp,
}

impl SeasonalPrice {
    /// Whether the season covers the instant `at`.
    pub fn covers(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    /// Whether the season shares an instant with `[start, end)`.
    pub fn overlaps(&self, start: Timestamp, end: Timestamp) -> bool {
        self.start < end && start < self.end
    }

    pub fn to_object(&self) -> SeasonalPriceObject {
        SeasonalPriceObject {
            id: self.id.clone(),
            name: self.name.clone(),
            price: self.price.to_decimal(),
            start: self.start,
            end: self.end,
        }
    }
}

/// A season as the API shows it: `{id, name, price, start, end}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = SeasonalPrice)]
pub struct SeasonalPriceObject {
    pub id: SeasonalPriceId,
    pub name: String,
    /// The price during the season, in major units of the product's currency.
    #[schema(value_type = f64, example = 249.99)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub price: Decimal,
    /// First instant of the season.
    pub start: Timestamp,
    /// First instant after the season.
    pub end: Timestamp,
}

/// A new season.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSeasonalPrice {
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub name: String,
    /// In major units of the product's currency; not negative.
    #[schema(value_type = f64, example = 249.99)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub price: Decimal,
    /// RFC 3339, e.g. `2026-12-01T00:00:00Z`.
    pub start: Timestamp,
    /// RFC 3339; after `start`.
    pub end: Timestamp,
}

/// Whether seasons set the product's price.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeasonalPriceUsage {
    pub use_seasonal_prices: bool,
}

/// The price in force, and the season that sets it (none: the base price).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceInForce {
    pub price: Money,
    pub season: Option<SeasonalPriceId>,
}

/// The price rule: the season covering `at` when `use_seasonal` is on, else `base`.
pub fn price_in_force(
    base: Money,
    use_seasonal: bool,
    seasons: &[SeasonalPrice],
    at: Timestamp,
) -> PriceInForce {
    if use_seasonal && let Some(season) = seasons.iter().find(|s| s.covers(at)) {
        return PriceInForce {
            price: Money::from_minor(season.price.minor(), base.currency()),
            season: Some(season.id.clone()),
        };
    }
    PriceInForce {
        price: base,
        season: None,
    }
}

/// The price in force at `at` of a live product of the tenant (for contracts and carts).
pub async fn price_at(
    conn: &mut DbConn,
    tenant: &Tenant,
    product_id: &ProductId,
    at: Timestamp,
) -> Result<PriceInForce, CatalogError> {
    let product = product::get(conn, tenant, product_id).await?;
    price_of(conn, &product, at).await
}

/// The price in force at `at` of a product already loaded.
pub async fn price_of(
    conn: &mut DbConn,
    product: &Product,
    at: Timestamp,
) -> Result<PriceInForce, CatalogError> {
    let seasons = if product.use_seasonal_prices {
        seasons_of(conn, std::slice::from_ref(&product.id))
            .await?
            .remove(&product.id)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(price_in_force(
        product.base_price(),
        product.use_seasonal_prices,
        &seasons,
        at,
    ))
}

/// The statement reading the seasons of `ids` (a slice of [`ProductId`]) with their
/// product's currency, for whichever backend the surrounding code runs on.
macro_rules! seasons_query {
    ($ids:expr) => {{
        let query = seasonal_prices::table
            .inner_join(products::table)
            .order((seasonal_prices::start_at.asc(), seasonal_prices::id.asc()))
            .select((SeasonRow::as_select(), products::currency))
            .into_boxed();
        // One product (a product read, S2 in BENCHMARKS.md) by `=`: PostgreSQL plans an
        // `= ANY($1)` array anew on every execution (its generic plan cannot know the
        // array's length), and that planning was a third of a product read's cost.
        match $ids {
            [one] => query.filter(seasonal_prices::product_id.eq(one)),
            many => query.filter(seasonal_prices::product_id.eq_any(many)),
        }
    }};
}

/// The seasons of these products, by product, each list by start.
pub async fn seasons_of(
    conn: &mut DbConn,
    ids: &[ProductId],
) -> Result<HashMap<ProductId, Vec<SeasonalPrice>>, CatalogError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(SeasonRow, String)> =
        with_conn!(conn, c => seasons_query!(ids).load(c).await).map_err(DbError::from)?;
    Ok(by_product(rows))
}

/// The product `id` of the tenant (deleted ones left out) and its seasons.
///
/// On PostgreSQL both statements go out at once on the one connection (diesel-async
/// pipelines futures polled together), so a product read waits for one round trip
/// instead of two and PostgreSQL reads both from one network read. The seasons do not
/// depend on the product row, only on its id, which the caller has; they are dropped
/// unseen when the product is not there. SQLite runs them one after the other in-process.
pub(crate) async fn product_with_seasons(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &ProductId,
) -> Result<Option<(Product, Vec<SeasonalPrice>)>, CatalogError> {
    let ids = std::slice::from_ref(id);
    let (found, rows) = with_conn!(conn,
        sqlite: c => {
            // Seasons are read only for a product that is there.
            match product::live_query!(tenant, id).first::<Product>(c).await.optional() {
                Ok(Some(product)) => seasons_query!(ids)
                    .load::<(SeasonRow, String)>(c)
                    .await
                    .map(|rows| (Some(product), rows)),
                other => other.map(|_| (None, Vec::new())),
            }
        },
        postgres: c => {
            let c: &PgConn = c;
            futures_util::future::try_join(
                product::live_query!(tenant, id).first::<Product>(&mut &*c),
                seasons_query!(ids).load::<(SeasonRow, String)>(&mut &*c),
            )
            .await
            .optional()
            .map(|found| match found {
                Some((product, rows)) => (Some(product), rows),
                None => (None, Vec::new()),
            })
        },
    )
    .map_err(DbError::from)?;
    Ok(found.map(|product| {
        let seasons = by_product(rows).remove(&product.id).unwrap_or_default();
        (product, seasons)
    }))
}

/// Season rows (with their product's currency) grouped by product, in the rows' order.
fn by_product(rows: Vec<(SeasonRow, String)>) -> HashMap<ProductId, Vec<SeasonalPrice>> {
    let mut out: HashMap<ProductId, Vec<SeasonalPrice>> = HashMap::new();
    for (row, currency) in rows {
        let currency =
            feria_kernel::Currency::from_code(&currency).unwrap_or(feria_kernel::Currency::USD);
        out.entry(row.product_id.clone())
            .or_default()
            .push(SeasonalPrice {
                id: row.id,
                name: row.name,
                price: Money::from_minor(row.price_minor, currency),
                start: row.start_at,
                end: row.end_at,
            });
    }
    out
}

/// The seasons of a product the actor may see, by start.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    product_id: &ProductId,
    page: PageRequest,
) -> Result<Page<SeasonalPriceObject>, CatalogError> {
    let product = product::visible(conn, tenant, actor, product_id).await?;
    let all = seasons_of(conn, std::slice::from_ref(&product.id))
        .await?
        .remove(&product.id)
        .unwrap_or_default();
    let total = all.len() as u64;
    let data = all
        .iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(page.page_size() as usize)
        .map(SeasonalPrice::to_object)
        .collect();
    Ok(Page::new(data, page, total))
}

/// Adds a season to a product the actor may change. Refused (422 `season_overlap`) when
/// it overlaps one of the product's seasons; the check and the insert are one transaction
/// holding the product's row, so two overlapping seasons added at once cannot both land.
pub async fn add(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    product_id: &ProductId,
    new: NewSeasonalPrice,
) -> Result<ProductObject, CatalogError> {
    let name = new.name.trim().to_owned();
    if name.is_empty() {
        return Err(CatalogError::invalid("name", "must be 1 to 100 characters"));
    }
    if new.end <= new.start {
        return Err(CatalogError::invalid("end", "must be after start"));
    }
    let product = conn
        .transaction(async |c| -> Result<Product, CatalogError> {
            dialect::lock_product(c, tenant, product_id).await?;
            let product = product::editable(c, tenant, actor, product_id).await?;
            let price = product::to_money("price", new.price, product.currency())?;
            let seasons = seasons_of(c, std::slice::from_ref(&product.id))
                .await?
                .remove(&product.id)
                .unwrap_or_default();
            if seasons.len() as i64 >= MAX_SEASONS {
                return Err(CatalogError::invalid(
                    "seasonalPrices",
                    format!("a product has at most {MAX_SEASONS} seasons"),
                ));
            }
            if let Some(clash) = seasons.iter().find(|s| s.overlaps(new.start, new.end)) {
                return Err(CatalogError::SeasonOverlap {
                    id: clash.id.clone(),
                    name: clash.name.clone(),
                });
            }
            let now = Timestamp::now();
            let row = SeasonRow {
                id: SeasonalPriceId::new(),
                product_id: product.id.clone(),
                platform_id: tenant.platform_id.clone(),
                mode: tenant.mode,
                name: name.clone(),
                price_minor: price.minor(),
                start_at: new.start,
                end_at: new.end,
                created_at: now,
            };
            with_conn!(c, c => async {
                diesel::insert_into(seasonal_prices::table).values(&row).execute(c).await?;
                diesel::update(products::table.find(&product.id))
                    .set(products::updated_at.eq(now))
                    .execute(c)
                    .await
            }
            .await)
            .map_err(DbError::from)?;
            product::get(c, tenant, product_id).await
        })
        .await?;
    product::object(conn, &product).await
}

/// Removes a season from a product the actor may change.
pub async fn remove(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    product_id: &ProductId,
    price_id: &SeasonalPriceId,
) -> Result<ProductObject, CatalogError> {
    let product = product::editable(conn, tenant, actor, product_id).await?;
    let deleted = with_conn!(conn, c => {
        diesel::delete(
            seasonal_prices::table
                .find(price_id)
                .filter(seasonal_prices::product_id.eq(&product.id))
                .filter(seasonal_prices::platform_id.eq(&tenant.platform_id))
                .filter(seasonal_prices::mode.eq(tenant.mode)),
        )
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if deleted == 0 {
        return Err(CatalogError::SeasonalPriceNotFound);
    }
    with_conn!(conn, c => {
        diesel::update(products::table.find(&product.id))
            .set(products::updated_at.eq(Timestamp::now()))
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    let product = product::get(conn, tenant, product_id).await?;
    product::object(conn, &product).await
}

/// Turns seasonal pricing on or off for a product the actor may change.
pub async fn set_usage(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    product_id: &ProductId,
    usage: SeasonalPriceUsage,
) -> Result<ProductObject, CatalogError> {
    let product = product::editable(conn, tenant, actor, product_id).await?;
    with_conn!(conn, c => {
        diesel::update(products::table.find(&product.id))
            .set((
                products::use_seasonal_prices.eq(usage.use_seasonal_prices),
                products::updated_at.eq(Timestamp::now()),
            ))
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    let product = product::get(conn, tenant, product_id).await?;
    product::object(conn, &product).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use feria_kernel::Currency;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn season(price: i64, start: &str, end: &str) -> SeasonalPrice {
        SeasonalPrice {
            id: SeasonalPriceId::new(),
            name: "s".into(),
            price: Money::from_minor(price, Currency::USD),
            start: at(start),
            end: at(end),
        }
    }

    #[test]
    fn the_covering_season_sets_the_price_only_when_in_use() {
        let base = Money::from_minor(1000, Currency::USD);
        let winter = season(800, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z");
        let seasons = vec![winter.clone()];
        let inside = at("2026-12-15T00:00:00Z");
        let in_force = price_in_force(base, true, &seasons, inside);
        assert_eq!(in_force.price.minor(), 800);
        assert_eq!(in_force.season, Some(winter.id.clone()));
        assert_eq!(price_in_force(base, false, &seasons, inside).price, base);
        // Start inclusive, end exclusive.
        assert_eq!(
            price_in_force(base, true, &seasons, at("2026-12-01T00:00:00Z"))
                .price
                .minor(),
            800
        );
        assert_eq!(
            price_in_force(base, true, &seasons, at("2027-01-01T00:00:00Z")).price,
            base
        );
    }

    #[test]
    fn overlap_is_a_shared_instant() {
        let s = season(1, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z");
        assert!(s.overlaps(at("2026-12-31T00:00:00Z"), at("2027-02-01T00:00:00Z")));
        assert!(s.overlaps(at("2026-11-01T00:00:00Z"), at("2027-02-01T00:00:00Z")));
        // Touching ends do not overlap.
        assert!(!s.overlaps(at("2027-01-01T00:00:00Z"), at("2027-02-01T00:00:00Z")));
        assert!(!s.overlaps(at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z")));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// `seconds` after 2026-01-01T00:00:00Z.
        fn instant(seconds: i64) -> Timestamp {
            Timestamp::from_unix(1_767_225_600 + seconds).unwrap()
        }

        /// Seasons that never overlap (the store refuses overlaps): boundaries drawn as
        /// increasing offsets in seconds from a fixed instant, every other gap a season.
        fn seasons() -> impl Strategy<Value = Vec<SeasonalPrice>> {
            prop::collection::vec((1i64..100_000, 0i64..1_000_000, any::<bool>()), 0..8).prop_map(
                |gaps| {
                    let mut cursor = 0i64;
                    let mut seasons = Vec::new();
                    for (length, price, is_season) in gaps {
                        let start = cursor;
                        cursor += length;
                        if is_season {
                            seasons.push(SeasonalPrice {
                                id: SeasonalPriceId::new(),
                                name: format!("s{start}"),
                                price: Money::from_minor(price, Currency::USD),
                                start: instant(start),
                                end: instant(cursor),
                            });
                        }
                    }
                    seasons
                },
            )
        }

        proptest! {
            #[test]
            fn the_price_is_the_one_season_covering_the_instant_else_the_base(
                seasons in seasons(),
                offset in -10i64..900_000,
                use_seasonal in any::<bool>(),
                base_minor in 0i64..1_000_000,
            ) {
                let base = Money::from_minor(base_minor, Currency::USD);
                let instant = instant(offset);
                let in_force = price_in_force(base, use_seasonal, &seasons, instant);
                let covering: Vec<&SeasonalPrice> =
                    seasons.iter().filter(|s| s.start <= instant && instant < s.end).collect();
                prop_assert!(covering.len() <= 1);
                match (use_seasonal, <[_]>::first(&covering)) {
                    (true, Some(season)) => {
                        prop_assert_eq!(in_force.price.minor(), season.price.minor());
                        prop_assert_eq!(in_force.season.as_ref(), Some(&season.id));
                    }
                    _ => {
                        prop_assert_eq!(in_force.price, base);
                        prop_assert!(in_force.season.is_none());
                    }
                }
                // The price keeps the product's currency whatever the season says.
                prop_assert_eq!(in_force.price.currency(), base.currency());
            }

            #[test]
            fn a_season_starts_at_its_start_and_has_ended_at_its_end(seasons in seasons()) {
                let base = Money::from_minor(1, Currency::USD);
                for season in &seasons {
                    let at_start = price_in_force(base, true, &seasons, season.start);
                    prop_assert_eq!(at_start.season.as_ref(), Some(&season.id));
                    let at_end = price_in_force(base, true, &seasons, season.end);
                    prop_assert_ne!(at_end.season.as_ref(), Some(&season.id));
                }
            }
        }
    }
}
