//! Purchases: one database transaction that checks, charges, clones and records.
//!
//! In order, each with its own error: the listing exists and the buyer may see it
//! (404); the buyer is not its seller (`own_listing`); it is available (active, and not
//! an exclusive license already sold: `listing_unavailable`); the buyer has not bought
//! it (`already_purchased`); the buyer's default workspace has room (`workspace_full`);
//! the buyer's credits cover the price (billing's `insufficient_funds`). The character
//! is deep-copied into the buyer's default workspace with its provenance, the purchase
//! recorded, the listing's sales counted, and the money settled through billing's ledger
//! (buyer's credits → escrow → seller less the platform's fee, and the fee to the
//! platform).
//!
//! Concurrency: nothing is locked up front. The rows many purchases share — the
//! listing's sales, the seller's and the platform's ledger accounts — are written last,
//! so a purchase holds them only for its last statements and its commit, and purchases
//! of one listing or one platform overlap instead of queueing behind a lock taken at the
//! start (docs/BENCHMARKS.md, the write path). Each rule holds on its own: the unique
//! indexes on (buyer, listing) and (buyer, idempotency key) — checked by the purchase's
//! insert, before any money moves — the conditional update of the listing's sales (an
//! exclusive listing sells once), the conditional update of the workspace's count, and
//! the ledger's non-negative credit accounts. A purchase that lost a race to a
//! concurrent one with the same Idempotency-Key answers with that one's result.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_billing::fees::{FeeInclusion, FeeSchedule};
use feria_billing::settlement::{Settlement, SettlementFees};
use feria_kernel::{
    Currency, DbConn, Mode, Money, MoneyError, PageRequest, PlatformId, Tenant, Timestamp, UserId,
    with_conn,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::character::{self, CharacterId, CharacterObject};
use crate::dialect;
use crate::error::MarketplaceError;
use crate::listing::{self, LicenseType, Listing, ListingId, ListingStatus};
use crate::schema::{listings, purchases};
use crate::workspace;

feria_kernel::define_id!(
    /// A purchase of a listing.
    PurchaseId,
    "pur"
);

/// A purchase as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = purchases)]
pub struct Purchase {
    pub id: PurchaseId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub listing_id: ListingId,
    pub buyer_id: UserId,
    pub seller_id: UserId,
    /// The buyer's clone.
    pub character_id: CharacterId,
    pub price_minor: i64,
    pub platform_fee_minor: i64,
    pub currency: String,
    pub license_type: String,
    pub idempotency_key: Option<String>,
    pub created_at: Timestamp,
}

impl Purchase {
    pub fn to_object(&self) -> PurchaseObject {
        let currency = Currency::from_code(&self.currency).unwrap_or(Currency::USD);
        PurchaseObject {
            id: self.id.clone(),
            listing_id: self.listing_id.clone(),
            seller_id: self.seller_id.clone(),
            buyer_id: self.buyer_id.clone(),
            character_id: self.character_id.clone(),
            license_type: self.license_type.clone(),
            price: Money::from_minor(self.price_minor, currency).to_decimal(),
            currency: self.currency.clone(),
            created_at: self.created_at,
        }
    }
}

/// A purchase as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Purchase)]
pub struct PurchaseObject {
    #[schema(value_type = String, example = "pur_01HZZ0J7N7P5B4K2V1Q9R8S6T5")]
    pub id: PurchaseId,
    #[schema(value_type = String, example = "mkt_01HZZ0J7N7P5B4K2V1Q9R8S6T5")]
    pub listing_id: ListingId,
    pub seller_id: UserId,
    pub buyer_id: UserId,
    /// The buyer's clone of the character.
    #[schema(value_type = String, example = "char_01HZX6FQJ5N6E7T2M3A4B5C6D7")]
    pub character_id: CharacterId,
    /// The license bought.
    pub license_type: String,
    /// What the buyer paid, in major units.
    #[schema(value_type = f64, example = 250)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub price: Decimal,
    /// Upper-case ISO 4217 code.
    pub currency: String,
    pub created_at: Timestamp,
}

/// The answer to a purchase: the purchase and the buyer's clone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PurchaseResult {
    pub purchase: PurchaseObject,
    pub character: CharacterObject,
}

/// A purchase made now, or the earlier one an `Idempotency-Key` named.
#[derive(Debug, Clone, PartialEq)]
pub struct Purchased {
    pub result: PurchaseResult,
    /// True when the key named an earlier purchase: nothing happened now.
    pub replayed: bool,
}

/// The buyer's library: `{"purchases": [...], "page", "page_size", "total"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PurchasePage {
    pub purchases: Vec<PurchaseObject>,
    pub page: u32,
    pub page_size: u32,
    pub total: u64,
}

/// What a purchase needs from the caller.
#[derive(Debug, Clone)]
pub struct PurchaseRequest {
    pub buyer: UserId,
    pub listing: ListingId,
    pub idempotency_key: Option<String>,
    /// The server's default workspace character limit.
    pub default_character_limit: i64,
}

/// The platform's fee on `price` (the platform's `platformFee` percent, half up).
fn platform_fee(price: Money, percent: Decimal) -> Result<Money, MarketplaceError> {
    let none = FeeSchedule {
        service_percent: Decimal::ZERO,
        processor_percent: Decimal::ZERO,
        processor_fixed_minor: 0,
    };
    let breakdown =
        feria_billing::fees::compute(price, percent, &none, FeeInclusion::default(), false)
            .map_err(feria_billing::BillingError::from)?;
    Ok(breakdown.platform_fee)
}

async fn by_key(
    conn: &mut DbConn,
    buyer: &UserId,
    key: &str,
) -> Result<Option<Purchase>, MarketplaceError> {
    Ok(with_conn!(conn, c => {
        purchases::table
            .filter(purchases::buyer_id.eq(buyer))
            .filter(purchases::idempotency_key.eq(key))
            .select(Purchase::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

async fn by_buyer_and_listing(
    conn: &mut DbConn,
    buyer: &UserId,
    listing: &ListingId,
) -> Result<Option<Purchase>, MarketplaceError> {
    Ok(with_conn!(conn, c => {
        purchases::table
            .filter(purchases::buyer_id.eq(buyer))
            .filter(purchases::listing_id.eq(listing))
            .select(Purchase::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

async fn result_of(
    conn: &mut DbConn,
    tenant: &Tenant,
    purchase: &Purchase,
) -> Result<PurchaseResult, MarketplaceError> {
    // The clone may have been deleted since; the purchase still answers with it.
    let clone: character::Character = with_conn!(conn, c => {
        crate::schema::characters::table
            .find(&purchase.character_id)
            .filter(crate::schema::characters::platform_id.eq(&tenant.platform_id))
            .select(character::Character::as_select())
            .first(c)
            .await
    })?;
    Ok(PurchaseResult {
        purchase: purchase.to_object(),
        character: clone.to_object(),
    })
}

/// Buys a listing: see the module's documentation for the checks and their order.
pub async fn purchase(
    conn: &mut DbConn,
    tenant: &Tenant,
    request: PurchaseRequest,
) -> Result<Purchased, MarketplaceError> {
    let outcome = conn
        .transaction(async |c| buy(c, tenant, &request).await)
        .await;
    match outcome {
        // A concurrent purchase with the same key (a client's retry racing its first try)
        // committed first, and its unique key refused ours: nothing of ours was kept, and
        // the answer is the first one's, as for any retry.
        Err(MarketplaceError::AlreadyPurchased | MarketplaceError::IdempotencyKeyReused) => {
            if let Some(key) = &request.idempotency_key
                && let Some(earlier) = by_key(conn, &request.buyer, key).await?
                && earlier.listing_id == request.listing
            {
                return Ok(Purchased {
                    result: result_of(conn, tenant, &earlier).await?,
                    replayed: true,
                });
            }
            outcome
        }
        other => other,
    }
}

/// The purchase's transaction: see the module's documentation.
async fn buy(
    c: &mut DbConn,
    tenant: &Tenant,
    request: &PurchaseRequest,
) -> Result<Purchased, MarketplaceError> {
    let PurchaseRequest {
        buyer,
        listing: listing_id,
        idempotency_key,
        default_character_limit,
    } = request;
    // A retry of an earlier purchase with the same key: its result, nothing more.
    if let Some(key) = idempotency_key
        && let Some(earlier) = by_key(c, buyer, key).await?
    {
        if earlier.listing_id != *listing_id {
            return Err(MarketplaceError::IdempotencyKeyReused);
        }
        return Ok(Purchased {
            result: result_of(c, tenant, &earlier).await?,
            replayed: true,
        });
    }
    let listing: Listing = listing::get(c, tenant, listing_id).await?;
    if listing.seller_id == *buyer {
        return Err(MarketplaceError::OwnListing);
    }
    if !listing.is_available() {
        return Err(MarketplaceError::ListingUnavailable);
    }
    if by_buyer_and_listing(c, buyer, listing_id).await?.is_some() {
        return Err(MarketplaceError::AlreadyPurchased);
    }

    let purchase_id = PurchaseId::new();
    let price = listing.price();
    let percent = feria_platforms::platform::fee_percent(c, &tenant.platform_id).await?;
    let fee = platform_fee(price, percent)?;
    let earning = price
        .checked_sub(fee)
        .map_err(feria_billing::BillingError::from)?;

    // A place in the buyer's default workspace, then the clone: the buyer's own rows.
    let workspace = workspace::default_for(c, tenant, buyer).await?;
    workspace::take_place(c, &workspace, *default_character_limit).await?;
    let source = character::get_any_state(c, tenant, &listing.character_id).await?;
    let clone = character::clone_into(
        c,
        &source,
        &workspace.id,
        buyer,
        listing_id,
        listing.license(),
    )
    .await?;

    // The purchase itself: its unique keys refuse a concurrent second purchase of the
    // listing by this buyer (or a second use of the key) before any money moves.
    let purchase = Purchase {
        id: purchase_id,
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        listing_id: listing_id.clone(),
        buyer_id: buyer.clone(),
        seller_id: listing.seller_id.clone(),
        character_id: clone.id.clone(),
        price_minor: price.minor(),
        platform_fee_minor: fee.minor(),
        currency: listing.currency.clone(),
        license_type: listing.license_type.clone(),
        idempotency_key: idempotency_key.clone(),
        created_at: Timestamp::now(),
    };
    let inserted = with_conn!(c, c => {
        diesel::insert_into(purchases::table)
            .values(&purchase)
            .execute(c)
            .await
    });
    match inserted.map_err(feria_kernel::DbError::from) {
        Ok(_) => {}
        Err(e) if e.is_unique_violation("idempotency_key") => {
            return Err(MarketplaceError::IdempotencyKeyReused);
        }
        Err(e) if e.is_unique_violation("purchases") => {
            return Err(MarketplaceError::AlreadyPurchased);
        }
        Err(e) => return Err(e.into()),
    }

    // From here on, rows other purchases share: the listing's sales, then the ledger's
    // accounts (billing locks them in one fixed order). An exclusive listing sells once,
    // whatever raced us: the update's conditions are evaluated on the row as it is when
    // our turn comes, and they keep the running totals inside `i64` whatever happens.
    let out_of_range =
        || MarketplaceError::Billing(feria_billing::BillingError::Money(MoneyError::Overflow));
    let revenue_below = i64::MAX
        .checked_sub(price.minor())
        .ok_or_else(out_of_range)?;
    let earnings_below = i64::MAX
        .checked_sub(earning.minor())
        .ok_or_else(out_of_range)?;
    let sold = with_conn!(c, c => {
        diesel::update(
            listings::table
                .find(listing_id)
                .filter(listings::platform_id.eq(&tenant.platform_id))
                .filter(listings::status.eq(ListingStatus::Active.as_str()))
                .filter(
                    listings::license_type
                        .ne(LicenseType::Exclusive.as_str())
                        .or(listings::sales_count.eq(0)),
                )
                .filter(listings::sales_count.lt(i64::MAX))
                .filter(listings::revenue_minor.le(revenue_below))
                .filter(listings::earnings_minor.le(earnings_below)),
        )
        .set((
            listings::sales_count.eq(listings::sales_count + 1),
            listings::revenue_minor.eq(listings::revenue_minor + price.minor()),
            listings::earnings_minor.eq(listings::earnings_minor + earning.minor()),
        ))
        .execute(c)
        .await
    })?;
    if sold == 0 {
        // Sold out (exclusive), archived meanwhile, or its totals at their bound.
        let now: Listing = listing::get(c, tenant, listing_id).await?;
        return Err(if now.is_available() {
            out_of_range()
        } else {
            MarketplaceError::ListingUnavailable
        });
    }
    if listing.license() == LicenseType::Exclusive {
        // Sold once, an exclusive license leaves browse: so do its index rows.
        dialect::reindex(c, std::slice::from_ref(listing_id)).await?;
    }

    // Money: the buyer's credits into escrow, out to the seller and the platform. Any
    // error ends the purchase's transaction, so no savepoint of its own.
    let mut fees = SettlementFees::zero(price.currency());
    fees.platform = fee;
    feria_billing::settlement::settle_in(
        c,
        tenant,
        Settlement {
            key: format!("purchase:{listing_id}:{buyer}"),
            contract_id: None,
            escrow_owner: purchase.id.as_str().to_owned(),
            currency: price.currency(),
            charges: vec![(buyer.clone(), price)],
            earnings: if earning.is_zero() {
                Vec::new()
            } else {
                vec![(listing.seller_id.clone(), earning)]
            },
            fees,
            description: Some(format!("marketplace purchase of {listing_id}")),
        },
    )
    .await?;

    let result = PurchaseResult {
        purchase: purchase.to_object(),
        character: clone.to_object(),
    };
    feria_events::record(
        c,
        tenant,
        feria_events::EventType::PurchaseCompleted,
        &result,
    )
    .await?;
    Ok(Purchased {
        result,
        replayed: false,
    })
}

/// The buyer's purchases, newest first, each with the clone's id and the license.
pub async fn mine(
    conn: &mut DbConn,
    tenant: &Tenant,
    buyer: &UserId,
    page: PageRequest,
) -> Result<PurchasePage, MarketplaceError> {
    let scoped = || {
        purchases::table
            .filter(purchases::platform_id.eq(tenant.platform_id.clone()))
            .filter(purchases::mode.eq(tenant.mode))
            .filter(purchases::buyer_id.eq(buyer.clone()))
    };
    let (rows, total): (Vec<Purchase>, i64) = with_conn!(conn, c => {
        let rows = scoped()
            .order((purchases::created_at.desc(), purchases::id.desc()))
            .limit(page.limit())
            .offset(page.offset())
            .select(Purchase::as_select())
            .load(c)
            .await?;
        let total = scoped().count().get_result(c).await?;
        Ok::<_, diesel::result::Error>((rows, total))
    })?;
    Ok(PurchasePage {
        purchases: rows.iter().map(Purchase::to_object).collect(),
        page: page.page(),
        page_size: page.page_size(),
        total: u64::try_from(total).unwrap_or(0),
    })
}

/// Whether the user bought the listing.
pub async fn has_bought(
    conn: &mut DbConn,
    buyer: &UserId,
    listing: &ListingId,
) -> Result<bool, MarketplaceError> {
    Ok(by_buyer_and_listing(conn, buyer, listing).await?.is_some())
}
