//! Listings of character templates: create, change, archive, read, browse and the
//! seller's dashboard.
//!
//! Anyone signed in to the tenant sees active listings; the seller also sees their own
//! drafts, paused and archived listings, and a buyer the listings they bought. An
//! exclusive listing sold once stays visible but is no longer `available`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{
    Currency, DbConn, Mode, Money, PageRequest, PlatformId, Tenant, Timestamp, UserId, with_conn,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use feria_events::EventType;

use crate::character::{self, CharacterId};
use crate::dialect;
use crate::error::MarketplaceError;
use crate::schema::{listings, purchases};

feria_kernel::define_id!(
    /// A listing of the marketplace.
    ListingId,
    "mkt"
);

/// Largest price, in minor units: the bound on every amount
/// ([`feria_kernel::money::MAX_AMOUNT_MINOR`]).
pub const MAX_PRICE_MINOR: i64 = feria_kernel::money::MAX_AMOUNT_MINOR;
const MAX_PREVIEW_IMAGES: usize = 10;

/// What the buyer may do with the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LicenseType {
    /// Personal use.
    Personal,
    /// Commercial use.
    Commercial,
    /// Commercial use by one buyer only: the listing sells once.
    Exclusive,
}

impl LicenseType {
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseType::Personal => "personal",
            LicenseType::Commercial => "commercial",
            LicenseType::Exclusive => "exclusive",
        }
    }

    pub fn parse(value: &str) -> Option<LicenseType> {
        match value {
            "personal" => Some(LicenseType::Personal),
            "commercial" => Some(LicenseType::Commercial),
            "exclusive" => Some(LicenseType::Exclusive),
            _ => None,
        }
    }
}

/// Where a listing is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListingStatus {
    /// Seen by its seller only.
    Draft,
    /// Browsable and purchasable.
    Active,
    /// Seen by its seller only; not purchasable.
    Paused,
    /// Deleted: gone from browse; purchases already made keep working.
    Archived,
}

impl ListingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ListingStatus::Draft => "draft",
            ListingStatus::Active => "active",
            ListingStatus::Paused => "paused",
            ListingStatus::Archived => "archived",
        }
    }
}

/// A listing as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = listings)]
pub struct Listing {
    pub id: ListingId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub seller_id: UserId,
    pub character_id: CharacterId,
    pub title: String,
    pub description: String,
    pub niche: String,
    pub character_name: String,
    pub price_minor: i64,
    /// Upper-case ISO 4217 code.
    pub currency: String,
    pub license_type: String,
    pub status: String,
    /// JSON array of URLs.
    pub preview_images: String,
    pub sales_count: i64,
    pub revenue_minor: i64,
    pub earnings_minor: i64,
    pub rating_sum: i64,
    pub rating_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Listing {
    pub fn currency(&self) -> Currency {
        Currency::from_code(&self.currency).unwrap_or(Currency::USD)
    }

    pub fn price(&self) -> Money {
        Money::from_minor(self.price_minor, self.currency())
    }

    pub fn license(&self) -> LicenseType {
        LicenseType::parse(&self.license_type).unwrap_or(LicenseType::Personal)
    }

    /// Purchasable now: active, and not an exclusive license already sold.
    pub fn is_available(&self) -> bool {
        self.status == ListingStatus::Active.as_str()
            && !(self.license() == LicenseType::Exclusive && self.sales_count > 0)
    }

    /// The average rating, two decimals; `None` before the first review.
    pub fn average_rating(&self) -> Option<Decimal> {
        (self.rating_count > 0).then(|| {
            (Decimal::from(self.rating_sum) / Decimal::from(self.rating_count)).round_dp(2)
        })
    }

    pub fn to_object(&self) -> ListingObject {
        ListingObject {
            id: self.id.clone(),
            character_id: self.character_id.clone(),
            seller_id: self.seller_id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            niche: self.niche.clone(),
            character_name: self.character_name.clone(),
            price: self.price().to_decimal(),
            currency: self.currency.clone(),
            license_type: self.license_type.clone(),
            status: self.status.clone(),
            available: self.is_available(),
            preview_images: serde_json::from_str(&self.preview_images).unwrap_or_default(),
            rating: self.average_rating(),
            rating_count: self.rating_count,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    pub fn to_seller_object(&self) -> SellerListing {
        let currency = self.currency();
        SellerListing {
            listing: self.to_object(),
            sales_count: self.sales_count,
            revenue: Money::from_minor(self.revenue_minor, currency).to_decimal(),
            earnings: Money::from_minor(self.earnings_minor, currency).to_decimal(),
        }
    }
}

/// A listing as the API shows it: the seed's fields plus the listing's text, seller,
/// availability and rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Listing)]
pub struct ListingObject {
    #[schema(value_type = String, example = "mkt_01HZZ0J7N7P5B4K2V1Q9R8S6T5")]
    pub id: ListingId,
    #[schema(value_type = String, example = "char_01HZX6FQJ5N6E7T2M3A4B5C6D7")]
    pub character_id: CharacterId,
    pub seller_id: UserId,
    pub title: String,
    pub description: String,
    /// Lower case.
    pub niche: String,
    pub character_name: String,
    /// In major units of `currency` (`250`, `19.99`).
    #[schema(value_type = f64, example = 250)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub price: Decimal,
    /// Upper-case ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: String,
    /// `personal`, `commercial` or `exclusive`.
    #[schema(example = "commercial")]
    pub license_type: String,
    /// `draft`, `active`, `paused` or `archived`.
    #[schema(example = "active")]
    pub status: String,
    /// Purchasable now: active, and not an exclusive license already sold.
    pub available: bool,
    pub preview_images: Vec<String>,
    /// The average rating (1 to 5, two decimals); `null` before the first review.
    #[schema(value_type = Option<f64>, example = 4.5)]
    #[serde(with = "feria_kernel::money::decimal_number::option")]
    pub rating: Option<Decimal>,
    pub rating_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `{"listing": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListingEnvelope {
    pub listing: ListingObject,
}

/// A page of listings: `{"listings": [...], "page", "page_size", "total"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListingPage {
    pub listings: Vec<ListingObject>,
    pub page: u32,
    pub page_size: u32,
    pub total: u64,
}

/// One of the seller's listings with its sales.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SellerListing {
    #[serde(flatten)]
    pub listing: ListingObject,
    /// Purchases so far.
    pub sales_count: i64,
    /// What buyers paid, in major units of the listing's currency.
    #[schema(value_type = f64, example = 500)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub revenue: Decimal,
    /// What reached the seller after the platform's fee.
    #[schema(value_type = f64, example = 475)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub earnings: Decimal,
}

/// The seller's dashboard: `{"listings": [...], "page", "page_size", "total"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SellerListingPage {
    pub listings: Vec<SellerListing>,
    pub page: u32,
    pub page_size: u32,
    pub total: u64,
}

/// A new listing (the seed's body; `title` and `niche` default to the character's).
/// `character_id`, `price`, `currency` and `license_type` are required (422 naming the
/// field when absent).
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewListing {
    /// One of the seller's own characters (not one bought here).
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "char_01HZX6FQJ5N6E7T2M3A4B5C6D7")]
    pub character_id: Option<CharacterId>,
    /// Above zero, in major units, no finer than the currency's minor unit.
    #[schema(value_type = f64, required = true, example = 250)]
    #[serde(default, with = "feria_kernel::money::decimal_number::option")]
    pub price: Option<Decimal>,
    /// ISO 4217 code, any case.
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "USD")]
    pub currency: Option<String>,
    #[serde(default)]
    #[schema(value_type = LicenseType, required = true)]
    pub license_type: Option<LicenseType>,
    /// `draft` when absent.
    #[serde(default)]
    pub status: Option<ListingStatus>,
    /// Up to 10 image URLs, each `http` or `https` with a host and at most 2000
    /// characters; stored normalised.
    #[serde(default)]
    #[schema(format = "uri", max_length = 2000, max_items = 10)]
    pub preview_images: Option<Vec<String>>,
    /// Up to 5000 characters; the character's description when absent.
    #[serde(default)]
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub description: Option<String>,
    /// 1 to 200 characters; the character's name when absent.
    #[serde(default)]
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub title: Option<String>,
    /// The character's niche when absent.
    #[serde(default)]
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub niche: Option<String>,
}

fn required<T>(field: &'static str, value: Option<T>) -> Result<T, MarketplaceError> {
    value.ok_or_else(|| MarketplaceError::invalid(field, "is required"))
}

/// Changes to a listing; absent fields stay. The character is fixed.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListingChanges {
    #[schema(value_type = Option<f64>, example = 300)]
    #[serde(default, with = "feria_kernel::money::decimal_number::option")]
    pub price: Option<Decimal>,
    /// Changing the currency requires a `price` in the same request.
    pub currency: Option<String>,
    pub license_type: Option<LicenseType>,
    pub status: Option<ListingStatus>,
    /// Replaces the images: up to 10 URLs, each `http` or `https` with a host and at most
    /// 2000 characters.
    #[schema(format = "uri", max_length = 2000, max_items = 10)]
    pub preview_images: Option<Vec<String>>,
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub description: Option<String>,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub title: Option<String>,
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub niche: Option<String>,
}

/// Filters of `GET /marketplace` (the seed's).
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListingFilter {
    /// Full-text query over title, description, niche and character name; every word
    /// must match (English stemming, stop words ignored). Ranked by relevance.
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    pub q: Option<String>,
    /// Exact niche (case-insensitive).
    pub niche: Option<String>,
    /// Lowest price in major units of `currency`.
    #[param(value_type = Option<f64>)]
    pub min_price: Option<String>,
    /// Highest price in major units of `currency`.
    #[param(value_type = Option<f64>)]
    pub max_price: Option<String>,
    /// Only listings priced in this ISO code (`USD` for price bounds when absent).
    pub currency: Option<String>,
    /// Lowest average rating (0 to 5); listings without reviews are left out.
    #[param(value_type = Option<f64>)]
    pub rating: Option<String>,
    #[serde(default)]
    #[param(ignore)]
    pub page: Option<u32>,
    #[serde(default)]
    #[param(ignore)]
    pub page_size: Option<u32>,
}

/// A checked browse, ready for SQL.
#[derive(Debug, Clone)]
pub(crate) struct BrowseQuery {
    pub tenant: Tenant,
    pub terms: Vec<String>,
    pub niche: Option<String>,
    pub currency: Option<String>,
    pub min_price_minor: Option<i64>,
    pub max_price_minor: Option<i64>,
    /// Lowest average rating in hundredths (450 = 4.5).
    pub min_rating_hundredths: Option<i64>,
}

// ---- field rules ---------------------------------------------------------------------

fn parse_currency(code: &str) -> Result<Currency, MarketplaceError> {
    Currency::from_code(code.trim()).map_err(|e| MarketplaceError::money("currency", e))
}

/// A price: above zero, exact in the currency's minor unit, at most [`MAX_PRICE_MINOR`].
fn to_price(amount: Decimal, currency: Currency) -> Result<Money, MarketplaceError> {
    if amount <= Decimal::ZERO {
        return Err(MarketplaceError::invalid(
            "price",
            "must be greater than zero",
        ));
    }
    let money = Money::from_decimal_exact(amount, currency)
        .map_err(|e| MarketplaceError::money("price", e))?;
    if money.minor() > MAX_PRICE_MINOR {
        return Err(MarketplaceError::invalid("price", "is too large"));
    }
    Ok(money)
}

fn clean_text(field: &'static str, value: &str, max: usize) -> Result<String, MarketplaceError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(MarketplaceError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

fn clean_images(images: &[String]) -> Result<String, MarketplaceError> {
    if images.len() > MAX_PREVIEW_IMAGES {
        return Err(MarketplaceError::invalid(
            "preview_images",
            format!("at most {MAX_PREVIEW_IMAGES} images"),
        ));
    }
    // Each through the one check of stored URLs (`feria_kernel::web_url`).
    let out = images
        .iter()
        .map(|image| feria_kernel::web_url::normalize("preview_images", image))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MarketplaceError::invalid(e.field, e.message()))?;
    serde_json::to_string(&out).map_err(|_| MarketplaceError::invalid("preview_images", "invalid"))
}

// ---- reads ---------------------------------------------------------------------------

/// A listing of the tenant, whoever may see it.
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &ListingId,
) -> Result<Listing, MarketplaceError> {
    with_conn!(conn, c => {
        listings::table
            .find(id)
            .filter(listings::platform_id.eq(&tenant.platform_id))
            .filter(listings::mode.eq(tenant.mode))
            .select(Listing::as_select())
            .first(c)
            .await
            .optional()
    })?
    .ok_or(MarketplaceError::ListingNotFound)
}

async fn has_purchased(
    conn: &mut DbConn,
    buyer: &UserId,
    listing: &ListingId,
) -> Result<bool, MarketplaceError> {
    let count: i64 = with_conn!(conn, c => {
        purchases::table
            .filter(purchases::buyer_id.eq(buyer))
            .filter(purchases::listing_id.eq(listing))
            .count()
            .get_result(c)
            .await
    })?;
    Ok(count > 0)
}

/// A listing the user may see: active ones, their own, and those they bought.
pub async fn visible(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
    id: &ListingId,
) -> Result<Listing, MarketplaceError> {
    let listing = get(conn, tenant, id).await?;
    if listing.status == ListingStatus::Active.as_str()
        || &listing.seller_id == user
        || has_purchased(conn, user, id).await?
    {
        Ok(listing)
    } else {
        Err(MarketplaceError::ListingNotFound)
    }
}

/// The listing as the API shows it, to a user who may see it.
pub async fn read(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
    id: &ListingId,
) -> Result<ListingObject, MarketplaceError> {
    Ok(visible(conn, tenant, user, id).await?.to_object())
}

fn price_bound(
    field: &'static str,
    raw: Option<&str>,
    currency: Currency,
) -> Result<Option<i64>, MarketplaceError> {
    let Some(raw) = raw else { return Ok(None) };
    let amount = Decimal::from_str_exact(raw.trim())
        .map_err(|_| MarketplaceError::invalid(field, "must be a decimal number such as 19.99"))?;
    if amount.is_sign_negative() && !amount.is_zero() {
        return Err(MarketplaceError::invalid(field, "must not be negative"));
    }
    Money::from_decimal_exact(amount, currency)
        .map(|m| Some(m.minor()))
        .map_err(|e| MarketplaceError::money(field, e))
}

impl BrowseQuery {
    fn new(tenant: &Tenant, filter: &ListingFilter) -> Result<BrowseQuery, MarketplaceError> {
        let price_filtered = filter.min_price.is_some() || filter.max_price.is_some();
        let currency = match (&filter.currency, price_filtered) {
            (Some(code), _) => Some(parse_currency(code)?),
            (None, true) => Some(Currency::USD),
            (None, false) => None,
        };
        let bound_currency = currency.unwrap_or(Currency::USD);
        let min_price_minor =
            price_bound("min_price", filter.min_price.as_deref(), bound_currency)?;
        let max_price_minor =
            price_bound("max_price", filter.max_price.as_deref(), bound_currency)?;
        if let (Some(min), Some(max)) = (min_price_minor, max_price_minor)
            && min > max
        {
            return Err(MarketplaceError::invalid(
                "max_price",
                "must not be below min_price",
            ));
        }
        let min_rating_hundredths = match filter.rating.as_deref() {
            None => None,
            Some(raw) => {
                let rating = Decimal::from_str_exact(raw.trim())
                    .ok()
                    .filter(|r| *r >= Decimal::ZERO && *r <= Decimal::from(5))
                    .ok_or_else(|| {
                        MarketplaceError::invalid("rating", "must be a number from 0 to 5")
                    })?;
                let hundredths = (rating * Decimal::ONE_HUNDRED).ceil();
                Some(i64::try_from(hundredths).unwrap_or(500))
            }
        };
        let niche = filter
            .niche
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_lowercase);
        Ok(BrowseQuery {
            tenant: tenant.clone(),
            terms: filter
                .q
                .as_deref()
                .map(feria_kernel::db::FullText::terms)
                .unwrap_or_default(),
            niche,
            currency: currency.map(|c| c.code().to_owned()),
            min_price_minor,
            max_price_minor,
            min_rating_hundredths,
        })
    }
}

/// One page of the active, available listings matching the filter; best match first
/// with `q`, newest first without.
pub async fn browse(
    conn: &mut DbConn,
    tenant: &Tenant,
    filter: &ListingFilter,
    page: PageRequest,
) -> Result<ListingPage, MarketplaceError> {
    let query = BrowseQuery::new(tenant, filter)?;
    let (rows, total) = dialect::browse(conn, &query, page).await?;
    Ok(ListingPage {
        listings: rows.iter().map(Listing::to_object).collect(),
        page: page.page(),
        page_size: page.page_size(),
        total,
    })
}

/// The same page as [`browse`] from the full-text engine alone (PostgreSQL: GIN match,
/// `ORDER BY ts_rank`; SQLite: FTS5 `MATCH`, `ORDER BY bm25`), never from the search
/// index: the reference the index is measured against (`feria bench-baseline
/// --scenario overlap`). Browse itself uses it for queries of several words.
pub async fn browse_full_text(
    conn: &mut DbConn,
    tenant: &Tenant,
    filter: &ListingFilter,
    page: PageRequest,
) -> Result<ListingPage, MarketplaceError> {
    let query = BrowseQuery::new(tenant, filter)?;
    let (rows, total) = dialect::browse_full_text(conn, &query, page).await?;
    Ok(ListingPage {
        listings: rows.iter().map(Listing::to_object).collect(),
        page: page.page(),
        page_size: page.page_size(),
        total,
    })
}

/// The seller's listings (every status), newest first, with sales and revenue.
pub async fn mine(
    conn: &mut DbConn,
    tenant: &Tenant,
    seller: &UserId,
    page: PageRequest,
) -> Result<SellerListingPage, MarketplaceError> {
    let scoped = || {
        listings::table
            .filter(listings::platform_id.eq(tenant.platform_id.clone()))
            .filter(listings::mode.eq(tenant.mode))
            .filter(listings::seller_id.eq(seller.clone()))
    };
    let (rows, total): (Vec<Listing>, i64) = with_conn!(conn, c => {
        let rows = scoped()
            .order((listings::created_at.desc(), listings::id.desc()))
            .limit(page.limit())
            .offset(page.offset())
            .select(Listing::as_select())
            .load(c)
            .await?;
        let total = scoped().count().get_result(c).await?;
        Ok::<_, diesel::result::Error>((rows, total))
    })?;
    Ok(SellerListingPage {
        listings: rows.iter().map(Listing::to_seller_object).collect(),
        page: page.page(),
        page_size: page.page_size(),
        total: u64::try_from(total).unwrap_or(0),
    })
}

// ---- writes --------------------------------------------------------------------------

/// Lists one of the seller's characters.
pub async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    seller: &UserId,
    new: NewListing,
) -> Result<ListingObject, MarketplaceError> {
    // In the seed's order: character, price, currency, license, status.
    let character_id = required("character_id", new.character_id)?;
    let amount = required("price", new.price)?;
    let currency = parse_currency(&required("currency", new.currency)?)?;
    let price = to_price(amount, currency)?;
    let license_type = required("license_type", new.license_type)?;
    let images = clean_images(&new.preview_images.unwrap_or_default())?;
    let character = match character::owned(conn, tenant, seller, &character_id).await {
        Err(MarketplaceError::CharacterNotFound) => {
            return Err(MarketplaceError::invalid(
                "character_id",
                "no such character of yours",
            ));
        }
        other => other?,
    };
    if character.source_listing_id.is_some() {
        return Err(MarketplaceError::invalid(
            "character_id",
            "was bought on the marketplace: its license does not allow listing it again",
        ));
    }
    let title = match &new.title {
        Some(title) => clean_text("title", title, 200)?,
        None => character.name.clone(),
    };
    let niche = match &new.niche {
        Some(niche) => character::clean_niche(niche)?,
        None => character.niche.clone(),
    };
    let description = new
        .description
        .map(|d| d.trim().to_owned())
        .unwrap_or_else(|| character.description.clone());
    let now = Timestamp::now();
    let listing = Listing {
        id: ListingId::new(),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        seller_id: seller.clone(),
        character_id: character.id.clone(),
        title,
        description,
        niche,
        character_name: character.name.clone(),
        price_minor: price.minor(),
        currency: currency.code().to_owned(),
        license_type: license_type.as_str().to_owned(),
        status: new
            .status
            .unwrap_or(ListingStatus::Draft)
            .as_str()
            .to_owned(),
        preview_images: images,
        sales_count: 0,
        revenue_minor: 0,
        earnings_minor: 0,
        rating_sum: 0,
        rating_count: 0,
        created_at: now,
        updated_at: now,
    };
    conn.transaction(async |c| -> Result<ListingObject, MarketplaceError> {
        with_conn!(c, c => {
            diesel::insert_into(listings::table)
                .values(&listing)
                .execute(c)
                .await
        })?;
        dialect::reindex(c, std::slice::from_ref(&listing.id)).await?;
        let object = listing.to_object();
        feria_events::record(c, tenant, EventType::ListingCreated, &object).await?;
        Ok(object)
    })
    .await
}

#[derive(AsChangeset)]
#[diesel(table_name = listings)]
struct ListingChangeset {
    price_minor: Option<i64>,
    currency: Option<String>,
    license_type: Option<String>,
    status: Option<String>,
    preview_images: Option<String>,
    description: Option<String>,
    title: Option<String>,
    niche: Option<String>,
    updated_at: Timestamp,
}

/// Changes one of the seller's listings. The seller's own listing only (403
/// `not_listing_owner` for a listing the user may see but does not sell). A listing
/// with sales cannot become exclusive (it sold to more than one already, or may have).
pub async fn update(
    conn: &mut DbConn,
    tenant: &Tenant,
    seller: &UserId,
    id: &ListingId,
    changes: ListingChanges,
) -> Result<ListingObject, MarketplaceError> {
    conn.transaction(async |c| -> Result<ListingObject, MarketplaceError> {
        dialect::lock_listing(c, tenant, id).await?;
        let listing = editable(c, tenant, seller, id).await?;
        let currency = match &changes.currency {
            Some(code) => {
                let currency = parse_currency(code)?;
                if currency.code() != listing.currency && changes.price.is_none() {
                    return Err(MarketplaceError::invalid(
                        "price",
                        "is required when the currency changes",
                    ));
                }
                currency
            }
            None => listing.currency(),
        };
        let price_minor = changes
            .price
            .map(|p| to_price(p, currency).map(|m| m.minor()))
            .transpose()?;
        if changes.license_type == Some(LicenseType::Exclusive)
            && listing.license() != LicenseType::Exclusive
            && listing.sales_count > 0
        {
            return Err(MarketplaceError::invalid(
                "license_type",
                "a listing that has sold cannot become exclusive",
            ));
        }
        let changeset = ListingChangeset {
            price_minor,
            currency: changes
                .currency
                .as_ref()
                .map(|_| currency.code().to_owned()),
            license_type: changes.license_type.map(|l| l.as_str().to_owned()),
            status: changes.status.map(|s| s.as_str().to_owned()),
            preview_images: changes
                .preview_images
                .as_deref()
                .map(clean_images)
                .transpose()?,
            description: changes.description.as_ref().map(|d| d.trim().to_owned()),
            title: changes
                .title
                .as_deref()
                .map(|t| clean_text("title", t, 200))
                .transpose()?,
            niche: changes
                .niche
                .as_deref()
                .map(character::clean_niche)
                .transpose()?,
            updated_at: Timestamp::now(),
        };
        with_conn!(c, c => {
            diesel::update(listings::table.find(id))
                .set(&changeset)
                .execute(c)
                .await
        })?;
        // Any change may move the listing in or out of browse, or change its text,
        // niche or price: its search-index rows are rewritten with it.
        dialect::reindex(c, std::slice::from_ref(id)).await?;
        let object = get(c, tenant, id).await?.to_object();
        let archived = ListingStatus::Archived.as_str();
        let event = if changes.status == Some(ListingStatus::Archived) && listing.status != archived
        {
            EventType::ListingArchived
        } else {
            EventType::ListingUpdated
        };
        feria_events::record(c, tenant, event, &object).await?;
        Ok(object)
    })
    .await
}

/// Deletes a listing: archives it. Purchases already made (and their clones) stay.
pub async fn archive(
    conn: &mut DbConn,
    tenant: &Tenant,
    seller: &UserId,
    id: &ListingId,
) -> Result<ListingObject, MarketplaceError> {
    update(
        conn,
        tenant,
        seller,
        id,
        ListingChanges {
            status: Some(ListingStatus::Archived),
            ..ListingChanges::default()
        },
    )
    .await
}

async fn editable(
    conn: &mut DbConn,
    tenant: &Tenant,
    seller: &UserId,
    id: &ListingId,
) -> Result<Listing, MarketplaceError> {
    let listing = visible(conn, tenant, seller, id).await?;
    if &listing.seller_id == seller {
        Ok(listing)
    } else {
        Err(MarketplaceError::NotListingOwner)
    }
}
