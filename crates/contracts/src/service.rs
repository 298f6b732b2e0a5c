//! Contract operations: create (also from a cart), read, list, edit lines and parties,
//! void, send.
//!
//! Every change is one transaction that first holds the contract's row (`FOR UPDATE` on
//! PostgreSQL, `BEGIN IMMEDIATE` on SQLite) and then checks who may change it and that
//! its status allows the change: settlement and voiding take the same row, so a change
//! never slips in beside them.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_billing::fees::FeeSchedule;
use feria_catalog::{CartId, ProductId};
use feria_events::EventType;
use feria_kernel::mail::{Mailer, OutgoingMail};
use feria_kernel::{
    Currency, DbConn, DbError, Money, Page, PageRequest, Tenant, Timestamp, UserId, with_conn,
};
use rust_decimal::Decimal;

use crate::error::ContractError;
use crate::model::*;
use crate::schema::{contract_buyers, contract_fees, contract_items, contract_sellers, contracts};

/// Who acts on contracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The signed-in user; `None` for an API key.
    pub user_id: Option<UserId>,
    /// Admins (and API keys) see and change every contract of their platform and mode.
    pub is_admin: bool,
}

impl Actor {
    pub fn api_key() -> Actor {
        Actor {
            user_id: None,
            is_admin: true,
        }
    }

    pub fn user(user_id: UserId, is_admin: bool) -> Actor {
        Actor {
            user_id: Some(user_id),
            is_admin,
        }
    }

    fn is_creator(&self, contract: &Loaded) -> bool {
        self.user_id.is_some() && self.user_id == contract.row.user_id
    }

    fn is_party(&self, contract: &Loaded) -> bool {
        let Some(me) = &self.user_id else {
            return false;
        };
        contract.buyers.iter().any(|b| &b.user_id == me)
            || contract.sellers.iter().any(|s| &s.user_id == me)
    }

    /// Admins, the creator, buyers and sellers read a contract.
    pub(crate) fn can_read(&self, contract: &Loaded) -> bool {
        self.is_admin || self.is_creator(contract) || self.is_party(contract)
    }

    /// Admins and the creator change it.
    pub(crate) fn can_change(&self, contract: &Loaded) -> bool {
        self.is_admin || self.is_creator(contract)
    }
}

/// The platform's fee percent, and the operator's schedule: what totals are made of.
pub(crate) async fn platform_percent(
    conn: &mut DbConn,
    tenant: &Tenant,
) -> Result<Decimal, ContractError> {
    Ok(feria_platforms::platform::fee_percent(conn, &tenant.platform_id).await?)
}

// ---- reads ---------------------------------------------------------------------------

async fn row(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &ContractId,
) -> Result<ContractRow, ContractError> {
    let found = with_conn!(conn, c => {
        contracts::table
            .find(id)
            .filter(contracts::platform_id.eq(&tenant.platform_id))
            .filter(contracts::mode.eq(tenant.mode))
            .select(ContractRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    found.ok_or(ContractError::NotFound)
}

pub(crate) async fn load(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &ContractId,
) -> Result<Loaded, ContractError> {
    let row = row(conn, tenant, id).await?;
    let items: Vec<ItemRow> = with_conn!(conn, c => {
        contract_items::table
            .filter(contract_items::contract_id.eq(id))
            .order((contract_items::created_at.asc(), contract_items::id.asc()))
            .select(ItemRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let buyers: Vec<BuyerRow> = with_conn!(conn, c => {
        contract_buyers::table
            .filter(contract_buyers::contract_id.eq(id))
            .order((contract_buyers::created_at.asc(), contract_buyers::user_id.asc()))
            .select(BuyerRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let sellers: Vec<SellerRow> = with_conn!(conn, c => {
        contract_sellers::table
            .filter(contract_sellers::contract_id.eq(id))
            .order((contract_sellers::created_at.asc(), contract_sellers::user_id.asc()))
            .select(SellerRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let fees: Vec<FeeRow> = with_conn!(conn, c => {
        contract_fees::table
            .filter(contract_fees::contract_id.eq(id))
            .order((contract_fees::created_at.asc(), contract_fees::id.asc()))
            .select(FeeRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(Loaded {
        row,
        items,
        buyers,
        sellers,
        fees,
    })
}

/// Holds the contract's row until the transaction ends (PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers). The one backend-specific query here.
pub(crate) async fn lock(conn: &mut DbConn, id: &ContractId) -> Result<(), ContractError> {
    with_conn!(conn,
        sqlite: _c => Ok::<_, diesel::result::Error>(()),
        postgres: c => {
            contracts::table
                .find(id)
                .select(contracts::id)
                .for_update()
                .first::<String>(c)
                .await
                .optional()
                .map(|_| ())
        },
    )
    .map_err(DbError::from)?;
    Ok(())
}

/// A contract the actor may read (others: not found).
pub(crate) async fn readable(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ContractId,
) -> Result<Loaded, ContractError> {
    let loaded = load(conn, tenant, id).await?;
    if actor.can_read(&loaded) {
        Ok(loaded)
    } else {
        Err(ContractError::NotFound)
    }
}

/// Inside a transaction: holds the row, checks the actor may change the contract (404
/// for strangers, 403 for parties) and that its status allows changes (409).
async fn editable(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ContractId,
) -> Result<Loaded, ContractError> {
    lock(conn, id).await?;
    let loaded = readable(conn, tenant, actor, id).await?;
    if !actor.can_change(&loaded) {
        return Err(ContractError::NotOwner);
    }
    let status = loaded.row.status();
    if !status.is_editable() {
        return Err(ContractError::Locked {
            status: status.as_str(),
        });
    }
    // Stripe may have charged the terms of a pending card settlement: they stay as they
    // are until the settlement is finished (or refused).
    if status == Status::Open
        && feria_billing::card_settlement::is_pending(conn, tenant, &format!("contract:{id}"))
            .await?
    {
        return Err(ContractError::SettlementPending);
    }
    Ok(loaded)
}

async fn touch(conn: &mut DbConn, id: &ContractId) -> Result<(), ContractError> {
    with_conn!(conn, c => {
        diesel::update(contracts::table.find(id))
            .set(contracts::updated_at.eq(Timestamp::now()))
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(())
}

/// The API object of a stored contract.
pub(crate) async fn render(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    id: &ContractId,
) -> Result<ContractObject, ContractError> {
    let loaded = load(conn, tenant, id).await?;
    let percent = platform_percent(conn, tenant).await?;
    loaded.object(percent, schedule)
}

/// One contract the actor may read.
pub async fn read(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
) -> Result<ContractObject, ContractError> {
    let loaded = readable(conn, tenant, actor, id).await?;
    let percent = platform_percent(conn, tenant).await?;
    loaded.object(percent, schedule)
}

/// Which contracts a list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFilter {
    /// Every contract of the tenant (admins).
    All,
    /// Where the user is a buyer.
    Buyer(UserId),
    /// Where the user is a seller.
    Seller(UserId),
    /// Where the user is the creator, a buyer or a seller.
    Involving(UserId),
}

/// [`list`] as `actor` may see it. A user's contracts as a buyer or a seller
/// ([`ListFilter::Buyer`], [`ListFilter::Seller`]): admins anyone's, a user their own
/// (403 otherwise, before anything is read); a user of another platform or mode is
/// unknown here (404), not a user without contracts. The other filters are checked by
/// their callers (admins only, or the signed-in user's own).
pub async fn list_as(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    filter: &ListFilter,
    page: PageRequest,
) -> Result<Page<ContractObject>, ContractError> {
    if let ListFilter::Buyer(user) | ListFilter::Seller(user) = filter {
        if !actor.is_admin && actor.user_id.as_ref() != Some(user) {
            return Err(ContractError::NotYourList);
        }
        feria_users::user::get(conn, tenant, user).await?;
    }
    list(conn, tenant, schedule, filter, page).await
}

/// A page of contracts, newest first.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    filter: &ListFilter,
    page: PageRequest,
) -> Result<Page<ContractObject>, ContractError> {
    macro_rules! filtered {
        () => {{
            let mut query = contracts::table
                .filter(contracts::platform_id.eq(&tenant.platform_id))
                .filter(contracts::mode.eq(tenant.mode))
                .into_boxed();
            let buyer_of = |user: &UserId| {
                contract_buyers::table
                    .filter(contract_buyers::platform_id.eq(tenant.platform_id.clone()))
                    .filter(contract_buyers::mode.eq(tenant.mode))
                    .filter(contract_buyers::user_id.eq(user.clone()))
                    .select(contract_buyers::contract_id)
            };
            let seller_of = |user: &UserId| {
                contract_sellers::table
                    .filter(contract_sellers::platform_id.eq(tenant.platform_id.clone()))
                    .filter(contract_sellers::mode.eq(tenant.mode))
                    .filter(contract_sellers::user_id.eq(user.clone()))
                    .select(contract_sellers::contract_id)
            };
            match filter {
                ListFilter::All => {}
                ListFilter::Buyer(user) => {
                    query = query.filter(contracts::id.eq_any(buyer_of(user)));
                }
                ListFilter::Seller(user) => {
                    query = query.filter(contracts::id.eq_any(seller_of(user)));
                }
                ListFilter::Involving(user) => {
                    query = query.filter(
                        contracts::user_id
                            .eq(user.clone())
                            .or(contracts::id.eq_any(buyer_of(user)))
                            .or(contracts::id.eq_any(seller_of(user))),
                    );
                }
            }
            query
        }};
    }
    let ids: Vec<ContractId> = with_conn!(conn, c => {
        filtered!()
            .order((contracts::created_at.desc(), contracts::id.desc()))
            .limit(page.limit())
            .offset(page.offset())
            .select(contracts::id)
            .load::<ContractId>(c)
            .await
    })
    .map_err(DbError::from)?;
    let total: i64 =
        with_conn!(conn, c => filtered!().count().get_result(c).await).map_err(DbError::from)?;
    let percent = platform_percent(conn, tenant).await?;
    let mut data = Vec::with_capacity(ids.len());
    for id in &ids {
        data.push(load(conn, tenant, id).await?.object(percent, schedule)?);
    }
    Ok(Page::new(data, page, u64::try_from(total).unwrap_or(0)))
}

// ---- create --------------------------------------------------------------------------

async fn check_user(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
    field: &'static str,
) -> Result<(), ContractError> {
    match feria_users::user::get(conn, tenant, user).await {
        Ok(_) => Ok(()),
        Err(feria_users::UserError::NotFound) => Err(ContractError::invalid(
            field,
            "no such user on this platform",
        )),
        Err(other) => Err(other.into()),
    }
}

fn new_row(
    tenant: &Tenant,
    creator: Option<UserId>,
    currency: Currency,
    now: Timestamp,
) -> ContractRow {
    ContractRow {
        id: ContractId::new(),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        user_id: creator,
        notes: String::new(),
        status: Status::Draft.as_str().to_owned(),
        currency: currency.code().to_owned(),
        include_processor_fees: true,
        include_service_fees: true,
        include_platform_fees: true,
        due_at: None,
        sent_at: None,
        last_sent_at: None,
        last_payment_attempt_at: None,
        paid_at: None,
        settle_key: None,
        created_at: now,
        updated_at: now,
    }
}

/// Creates a draft contract. A user creates in their own name; admins may name another.
pub async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    new: NewContract,
) -> Result<ContractObject, ContractError> {
    let creator = match (&new.user_id, actor.is_admin) {
        (Some(named), true) => {
            check_user(conn, tenant, named, "user_id").await?;
            Some(named.clone())
        }
        (Some(named), false) if Some(named) != actor.user_id.as_ref() => {
            return Err(ContractError::invalid(
                "user_id",
                "only admins create contracts in another user's name",
            ));
        }
        _ => actor.user_id.clone(),
    };
    let now = Timestamp::now();
    let row = ContractRow {
        notes: new.notes.unwrap_or_default(),
        due_at: new.due,
        include_processor_fees: new.include_stripe_fees.unwrap_or(true),
        include_service_fees: new.include_candle_fees.unwrap_or(true),
        include_platform_fees: new.include_platform_fees.unwrap_or(true),
        ..new_row(tenant, creator, new.currency.unwrap_or(Currency::USD), now)
    };
    with_conn!(conn, c => {
        diesel::insert_into(contracts::table).values(&row).execute(c).await
    })
    .map_err(DbError::from)?;
    render(conn, tenant, schedule, &row.id).await
}

/// Turns a cart into a draft contract, in one transaction that locks and empties the cart
/// (a cart is checked out at most once, however many requests race) and refuses lines
/// whose product may no longer be sold (`product_disabled`):
/// the cart's lines become product lines at the cart's snapshot prices (what the shopper
/// was shown), the cart's owner the one buyer owing the total, and the products' sellers
/// the sellers, each owed the share of `net` their lines make (largest remainder).
/// The cart's owner or an admin may do it.
pub async fn from_cart(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    cart_id: &CartId,
) -> Result<ContractObject, ContractError> {
    let percent = platform_percent(conn, tenant).await?;
    let id = conn
        .transaction(async |c| -> Result<ContractId, ContractError> {
            let cart = feria_catalog::cart::lock_for_checkout(c, tenant, cart_id)
                .await?
                .ok_or(ContractError::CartNotFound)?;
            if !actor.is_admin && actor.user_id.as_ref() != Some(&cart.user_id) {
                return Err(ContractError::CartNotFound);
            }
            let Some(code) = cart.currency.as_deref() else {
                return Err(ContractError::CartEmpty);
            };
            if cart.items.is_empty() {
                return Err(ContractError::CartEmpty);
            }
            let currency = Currency::from_code(code).map_err(ContractError::from)?;
            let product_ids: Vec<ProductId> =
                cart.items.iter().map(|i| i.product_id.clone()).collect();
            let products =
                feria_catalog::product::get_many_any_state(c, tenant, &product_ids).await?;
            let now = Timestamp::now();
            let row = new_row(
                tenant,
                actor.user_id.clone().or(Some(cart.user_id.clone())),
                currency,
                now,
            );
            let mut items = Vec::new();
            // Each seller's part of the subtotal, in first-seen order.
            let mut sellers: Vec<(UserId, u64)> = Vec::new();
            for (position, line) in cart.items.iter().enumerate() {
                let unit = Money::from_decimal_exact(line.unit_price, currency)?;
                let product = products
                    .get(&line.product_id)
                    .ok_or(ContractError::invalid(
                        "cart",
                        "a line's product no longer exists",
                    ))?;
                match feria_catalog::sale::check(product) {
                    Ok(()) => {}
                    Err(feria_catalog::CatalogError::ProductNotFound) => {
                        return Err(ContractError::invalid(
                            "cart",
                            "a line's product no longer exists",
                        ));
                    }
                    Err(other) => return Err(other.into()),
                }
                let line_total = unit.checked_mul(line.quantity)?;
                let weight = u64::try_from(line_total.minor()).unwrap_or(0);
                match sellers.iter_mut().find(|(u, _)| u == &product.user_id) {
                    Some((_, sum)) => {
                        *sum = sum.checked_add(weight).ok_or_else(|| {
                            ContractError::invalid("cart", "the cart's total is out of range")
                        })?;
                    }
                    None => sellers.push((product.user_id.clone(), weight)),
                }
                items.push(ItemRow {
                    id: ContractItemId::new(),
                    contract_id: row.id.clone(),
                    platform_id: tenant.platform_id.clone(),
                    mode: tenant.mode,
                    product_id: Some(line.product_id.clone()),
                    name: line.name.clone(),
                    unit_price_minor: unit.minor(),
                    quantity: line.quantity,
                    // Keep the cart's order: created_at breaks ties by id, so offset by position.
                    created_at: now.add(time_offset(position)),
                });
            }
            let mut loaded = Loaded {
                row: row.clone(),
                items: items.clone(),
                buyers: Vec::new(),
                sellers: Vec::new(),
                fees: Vec::new(),
            };
            let totals = loaded.totals(percent, schedule)?;
            let weights: Vec<u64> = sellers.iter().map(|(_, w)| *w).collect();
            let owed = if weights.iter().all(|w| *w == 0) {
                vec![Money::zero(currency); sellers.len()]
            } else {
                totals.net.allocate(&weights)?
            };
            loaded.buyers.push(BuyerRow {
                contract_id: row.id.clone(),
                user_id: cart.user_id.clone(),
                platform_id: tenant.platform_id.clone(),
                mode: tenant.mode,
                due_minor: totals.total.minor(),
                created_at: now,
            });
            for ((seller, _), share) in sellers.iter().zip(owed) {
                loaded.sellers.push(SellerRow {
                    contract_id: row.id.clone(),
                    user_id: seller.clone(),
                    platform_id: tenant.platform_id.clone(),
                    mode: tenant.mode,
                    owed_minor: share.minor(),
                    created_at: now,
                });
            }
            // One row per statement: diesel-async has no batch insert on SQLite.
            with_conn!(c, c => {
                diesel::insert_into(contracts::table).values(&loaded.row).execute(c).await?;
                for item in &loaded.items {
                    diesel::insert_into(contract_items::table).values(item).execute(c).await?;
                }
                for buyer in &loaded.buyers {
                    diesel::insert_into(contract_buyers::table).values(buyer).execute(c).await?;
                }
                for seller in &loaded.sellers {
                    diesel::insert_into(contract_sellers::table).values(seller).execute(c).await?;
                }
                Ok::<_, diesel::result::Error>(())
            })
            .map_err(DbError::from)?;
            feria_catalog::cart::clear(c, tenant, &cart.user_id).await?;
            Ok(row.id)
        })
        .await?;
    render(conn, tenant, schedule, &id).await
}

fn time_offset(position: usize) -> time::Duration {
    time::Duration::microseconds(i64::try_from(position).unwrap_or(0))
}

// ---- details -------------------------------------------------------------------------

/// Changes notes, due date or (while there are no items) the currency.
pub async fn update(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    changes: ContractChanges,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| -> Result<(), ContractError> {
        let loaded = editable(c, tenant, actor, id).await?;
        let mut row = loaded.row.clone();
        if let Some(notes) = changes.notes {
            row.notes = notes;
        }
        if let Some(due) = changes.due {
            row.due_at = Some(due);
        }
        if let Some(currency) = changes.currency
            && currency.code() != row.currency
        {
            if !loaded.items.is_empty() || !loaded.fees.is_empty() {
                return Err(ContractError::invalid(
                    "currency",
                    "cannot change once the contract has items or fees",
                ));
            }
            row.currency = currency.code().to_owned();
        }
        with_conn!(c, c => {
            diesel::update(contracts::table.find(id))
                .set((
                    contracts::notes.eq(&row.notes),
                    contracts::due_at.eq(row.due_at),
                    contracts::currency.eq(&row.currency),
                    contracts::updated_at.eq(Timestamp::now()),
                ))
                .execute(c)
                .await
        })
        .map_err(DbError::from)?;
        Ok(())
    })
    .await?;
    render(conn, tenant, schedule, id).await
}

/// Which fees the buyers pay on top (see `ContractRow::inclusion`).
pub async fn set_fee_inclusion(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    changes: FeeInclusionChanges,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| -> Result<(), ContractError> {
        let loaded = editable(c, tenant, actor, id).await?;
        let row = &loaded.row;
        with_conn!(c, c => {
            diesel::update(contracts::table.find(id))
                .set((
                    contracts::include_processor_fees
                        .eq(changes.include_stripe_fees.unwrap_or(row.include_processor_fees)),
                    contracts::include_service_fees
                        .eq(changes.include_candle_fees.unwrap_or(row.include_service_fees)),
                    contracts::include_platform_fees
                        .eq(changes.include_platform_fees.unwrap_or(row.include_platform_fees)),
                    contracts::updated_at.eq(Timestamp::now()),
                ))
                .execute(c)
                .await
        })
        .map_err(DbError::from)?;
        Ok(())
    })
    .await?;
    render(conn, tenant, schedule, id).await
}

/// Voids a draft or open contract (it stays readable); voiding again changes nothing.
/// A settled contract cannot be voided (409).
pub async fn void(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
) -> Result<(), ContractError> {
    conn.transaction(async |c| -> Result<(), ContractError> {
        lock(c, id).await?;
        let loaded = readable(c, tenant, actor, id).await?;
        if !actor.can_change(&loaded) {
            return Err(ContractError::NotOwner);
        }
        match loaded.row.status() {
            Status::Void => Ok(()),
            Status::Settled => Err(ContractError::Locked { status: "settled" }),
            Status::Open
                if feria_billing::card_settlement::is_pending(
                    c,
                    tenant,
                    &format!("contract:{id}"),
                )
                .await? =>
            {
                Err(ContractError::SettlementPending)
            }
            Status::Draft | Status::Open => {
                with_conn!(c, c => {
                    diesel::update(contracts::table.find(id))
                        .set((
                            contracts::status.eq(Status::Void.as_str()),
                            contracts::updated_at.eq(Timestamp::now()),
                        ))
                        .execute(c)
                        .await
                })
                .map_err(DbError::from)?;
                let object = render(c, tenant, schedule, id).await?;
                feria_events::record(c, tenant, EventType::ContractVoided, &object).await?;
                Ok(())
            }
        }
    })
    .await
}

// ---- items ---------------------------------------------------------------------------

/// Adds a line: a product at its price in force now (catalog), or a custom line.
pub async fn add_item(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    new: NewItem,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| -> Result<(), ContractError> {
        let loaded = editable(c, tenant, actor, id).await?;
        if loaded.items.len() >= MAX_LINES {
            return Err(ContractError::invalid(
                "items",
                format!("a contract holds at most {MAX_LINES} items"),
            ));
        }
        let currency = loaded.row.currency();
        let quantity = new.quantity.unwrap_or(1);
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(ContractError::invalid(
                "quantity",
                "must be between 1 and 1000000",
            ));
        }
        let now = Timestamp::now();
        let (product_id, name, unit) = match (new.product_id, new.name, new.unit_price) {
            (Some(product_id), None, None) => {
                let product = match feria_catalog::sale::sellable(c, tenant, &product_id).await {
                    Ok(product) => product,
                    Err(feria_catalog::CatalogError::ProductNotFound) => {
                        return Err(ContractError::invalid("product_id", "no such product"));
                    }
                    Err(other) => return Err(other.into()),
                };
                if product.currency() != currency {
                    return Err(ContractError::CurrencyMismatch {
                        contract: currency.code().to_ascii_lowercase(),
                        product: product.currency.to_ascii_lowercase(),
                    });
                }
                let price = feria_catalog::pricing::price_of(c, &product, now).await?;
                (Some(product_id), product.name, price.price)
            }
            (Some(_), _, _) => {
                return Err(ContractError::invalid(
                    "unit_price",
                    "a product line takes its name and price from the catalog",
                ));
            }
            (None, Some(name), Some(price)) => (None, name, amount("unit_price", price, currency)?),
            (None, None, _) => {
                return Err(ContractError::invalid(
                    "name",
                    "required for a custom line (or give product_id)",
                ));
            }
            (None, Some(_), None) => {
                return Err(ContractError::invalid(
                    "unit_price",
                    "required for a custom line",
                ));
            }
        };
        unit.checked_mul(quantity)?;
        let item = ItemRow {
            id: ContractItemId::new(),
            contract_id: id.clone(),
            platform_id: tenant.platform_id.clone(),
            mode: tenant.mode,
            product_id,
            name,
            unit_price_minor: unit.minor(),
            quantity,
            created_at: now,
        };
        with_conn!(c, c => {
            diesel::insert_into(contract_items::table).values(&item).execute(c).await
        })
        .map_err(DbError::from)?;
        touch(c, id).await
    })
    .await?;
    render(conn, tenant, schedule, id).await
}

pub async fn remove_item(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    item: &ContractItemId,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| -> Result<(), ContractError> {
        editable(c, tenant, actor, id).await?;
        let deleted = with_conn!(c, c => {
            diesel::delete(contract_items::table.find(item).filter(contract_items::contract_id.eq(id)))
                .execute(c)
                .await
        })
        .map_err(DbError::from)?;
        if deleted == 0 {
            return Err(ContractError::ItemNotFound);
        }
        touch(c, id).await
    })
    .await?;
    render(conn, tenant, schedule, id).await
}

// ---- buyers and sellers ------------------------------------------------------------
//
// Buyers and sellers are alike: a user of the tenant with a share (a buyer's `due` of the
// total, a seller's `owed` of the net) in tables of the same shape. One implementation
// serves both sides, told apart by [`Party`], so a rule added to one cannot be missed on
// the other; the public functions keep their per-side names and signatures.

/// Which side of a contract a party is on.
#[derive(Debug, Clone, Copy)]
enum Party {
    Buyer,
    Seller,
}

impl Party {
    /// The role as errors name it.
    fn role(self) -> &'static str {
        match self {
            Party::Buyer => "buyer",
            Party::Seller => "seller",
        }
    }

    /// The field that carries the party's share in request bodies.
    fn share_field(self) -> &'static str {
        match self {
            Party::Buyer => "due",
            Party::Seller => "owed",
        }
    }

    fn not_found(self) -> ContractError {
        match self {
            Party::Buyer => ContractError::BuyerNotFound,
            Party::Seller => ContractError::SellerNotFound,
        }
    }

    /// The users already on this side of the contract.
    fn members(self, contract: &Loaded) -> Vec<&UserId> {
        match self {
            Party::Buyer => contract.buyers.iter().map(|b| &b.user_id).collect(),
            Party::Seller => contract.sellers.iter().map(|s| &s.user_id).collect(),
        }
    }
}

/// Inside a transaction: adds `user` on `party`'s side with `share` (0 when absent).
async fn add_party(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ContractId,
    party: Party,
    user: UserId,
    share: Option<Decimal>,
) -> Result<(), ContractError> {
    let loaded = editable(conn, tenant, actor, id).await?;
    let members = party.members(&loaded);
    if members.contains(&&user) {
        return Err(ContractError::AlreadyParty(party.role()));
    }
    if members.len() >= MAX_LINES {
        return Err(ContractError::invalid(
            "user_id",
            format!("a contract has at most {MAX_LINES} {}s", party.role()),
        ));
    }
    check_user(conn, tenant, &user, "user_id").await?;
    let share = match share {
        Some(share) => amount(party.share_field(), share, loaded.row.currency())?.minor(),
        None => 0,
    };
    let created_at = Timestamp::now();
    match party {
        Party::Buyer => {
            let buyer = BuyerRow {
                contract_id: id.clone(),
                user_id: user,
                platform_id: tenant.platform_id.clone(),
                mode: tenant.mode,
                due_minor: share,
                created_at,
            };
            with_conn!(conn, c => {
                diesel::insert_into(contract_buyers::table).values(&buyer).execute(c).await
            })
        }
        Party::Seller => {
            let seller = SellerRow {
                contract_id: id.clone(),
                user_id: user,
                platform_id: tenant.platform_id.clone(),
                mode: tenant.mode,
                owed_minor: share,
                created_at,
            };
            with_conn!(conn, c => {
                diesel::insert_into(contract_sellers::table).values(&seller).execute(c).await
            })
        }
    }
    .map_err(DbError::from)?;
    touch(conn, id).await
}

/// Inside a transaction: sets the share of `user` on `party`'s side.
async fn set_share(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ContractId,
    party: Party,
    user: &UserId,
    share: Decimal,
) -> Result<(), ContractError> {
    let loaded = editable(conn, tenant, actor, id).await?;
    let share = amount(party.share_field(), share, loaded.row.currency())?.minor();
    let updated = with_conn!(conn, c => {
        match party {
            Party::Buyer => {
                diesel::update(
                    contract_buyers::table
                        .filter(contract_buyers::contract_id.eq(id))
                        .filter(contract_buyers::user_id.eq(user)),
                )
                .set(contract_buyers::due_minor.eq(share))
                .execute(c)
                .await
            }
            Party::Seller => {
                diesel::update(
                    contract_sellers::table
                        .filter(contract_sellers::contract_id.eq(id))
                        .filter(contract_sellers::user_id.eq(user)),
                )
                .set(contract_sellers::owed_minor.eq(share))
                .execute(c)
                .await
            }
        }
    })
    .map_err(DbError::from)?;
    if updated == 0 {
        return Err(party.not_found());
    }
    touch(conn, id).await
}

/// Inside a transaction: removes `user` from `party`'s side.
async fn remove_party(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &ContractId,
    party: Party,
    user: &UserId,
) -> Result<(), ContractError> {
    editable(conn, tenant, actor, id).await?;
    let deleted = with_conn!(conn, c => {
        match party {
            Party::Buyer => {
                diesel::delete(
                    contract_buyers::table
                        .filter(contract_buyers::contract_id.eq(id))
                        .filter(contract_buyers::user_id.eq(user)),
                )
                .execute(c)
                .await
            }
            Party::Seller => {
                diesel::delete(
                    contract_sellers::table
                        .filter(contract_sellers::contract_id.eq(id))
                        .filter(contract_sellers::user_id.eq(user)),
                )
                .execute(c)
                .await
            }
        }
    })
    .map_err(DbError::from)?;
    if deleted == 0 {
        return Err(party.not_found());
    }
    touch(conn, id).await
}

/// Adds a buyer (a user of the tenant) with their share of the total.
pub async fn add_buyer(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    new: NewBuyer,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| {
        add_party(c, tenant, actor, id, Party::Buyer, new.user_id, new.due).await
    })
    .await?;
    render(conn, tenant, schedule, id).await
}

pub async fn set_due(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    buyer: &UserId,
    due: Decimal,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| set_share(c, tenant, actor, id, Party::Buyer, buyer, due).await)
        .await?;
    render(conn, tenant, schedule, id).await
}

pub async fn remove_buyer(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    buyer: &UserId,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| remove_party(c, tenant, actor, id, Party::Buyer, buyer).await)
        .await?;
    render(conn, tenant, schedule, id).await
}

/// Adds a seller (a user of the tenant) with their share of the net.
pub async fn add_seller(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    new: NewSeller,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| {
        add_party(c, tenant, actor, id, Party::Seller, new.user_id, new.owed).await
    })
    .await?;
    render(conn, tenant, schedule, id).await
}

pub async fn set_owed(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    seller: &UserId,
    owed: Decimal,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| set_share(c, tenant, actor, id, Party::Seller, seller, owed).await)
        .await?;
    render(conn, tenant, schedule, id).await
}

pub async fn remove_seller(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    seller: &UserId,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| remove_party(c, tenant, actor, id, Party::Seller, seller).await)
        .await?;
    render(conn, tenant, schedule, id).await
}

// ---- custom fees ---------------------------------------------------------------------

pub async fn add_fee(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    new: NewFee,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| -> Result<(), ContractError> {
        let loaded = editable(c, tenant, actor, id).await?;
        if loaded.fees.len() >= MAX_LINES {
            return Err(ContractError::invalid(
                "fees",
                format!("a contract has at most {MAX_LINES} fees"),
            ));
        }
        let fee = FeeRow {
            id: ContractFeeId::new(),
            contract_id: id.clone(),
            platform_id: tenant.platform_id.clone(),
            mode: tenant.mode,
            name: new.name,
            amount_minor: amount("amount", new.amount, loaded.row.currency())?.minor(),
            created_at: Timestamp::now(),
        };
        with_conn!(c, c => {
            diesel::insert_into(contract_fees::table).values(&fee).execute(c).await
        })
        .map_err(DbError::from)?;
        touch(c, id).await
    })
    .await?;
    render(conn, tenant, schedule, id).await
}

pub async fn update_fee(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    fee: &ContractFeeId,
    changes: FeeChanges,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| -> Result<(), ContractError> {
        let loaded = editable(c, tenant, actor, id).await?;
        let existing = loaded
            .fees
            .iter()
            .find(|f| &f.id == fee)
            .ok_or(ContractError::FeeNotFound)?;
        let name = changes.name.unwrap_or_else(|| existing.name.clone());
        let amount_minor = match changes.amount {
            Some(value) => amount("amount", value, loaded.row.currency())?.minor(),
            None => existing.amount_minor,
        };
        with_conn!(c, c => {
            diesel::update(contract_fees::table.find(fee))
                .set((contract_fees::name.eq(&name), contract_fees::amount_minor.eq(amount_minor)))
                .execute(c)
                .await
        })
        .map_err(DbError::from)?;
        touch(c, id).await
    })
    .await?;
    render(conn, tenant, schedule, id).await
}

pub async fn remove_fee(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
    fee: &ContractFeeId,
) -> Result<ContractObject, ContractError> {
    conn.transaction(async |c| -> Result<(), ContractError> {
        editable(c, tenant, actor, id).await?;
        let deleted = with_conn!(c, c => {
            diesel::delete(contract_fees::table.find(fee).filter(contract_fees::contract_id.eq(id)))
                .execute(c)
                .await
        })
        .map_err(DbError::from)?;
        if deleted == 0 {
            return Err(ContractError::FeeNotFound);
        }
        touch(c, id).await
    })
    .await?;
    render(conn, tenant, schedule, id).await
}

// ---- send ----------------------------------------------------------------------------

/// Mails every buyer their share and opens the contract (`sent` the first time,
/// `lastSent` every time). Needs at least one item and one buyer. Mail goes out before
/// the contract is marked: a mail failure (503) leaves it as it was.
pub async fn send(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    mailer: &Mailer,
    id: &ContractId,
) -> Result<ContractObject, ContractError> {
    let loaded = readable(conn, tenant, actor, id).await?;
    if !actor.can_change(&loaded) {
        return Err(ContractError::NotOwner);
    }
    let status = loaded.row.status();
    if !status.is_editable() {
        return Err(ContractError::Locked {
            status: status.as_str(),
        });
    }
    if loaded.items.is_empty() {
        return Err(ContractError::Incomplete("it has no items"));
    }
    if loaded.buyers.is_empty() {
        return Err(ContractError::Incomplete("it has no buyers"));
    }
    let percent = platform_percent(conn, tenant).await?;
    let object = loaded.object(percent, schedule)?;
    let platform = feria_platforms::platform::get(conn, &tenant.platform_id).await?;
    let mut recipients = BTreeMap::new();
    for buyer in &loaded.buyers {
        let user = feria_users::user::get(conn, tenant, &buyer.user_id).await?;
        recipients.insert(user.email, buyer.due_minor);
    }
    let currency = loaded.row.currency();
    let due_date = object
        .due
        .map(|d| format!("Payment is due by {d}.\n"))
        .unwrap_or_default();
    for (email, due) in recipients {
        mailer
            .send(OutgoingMail {
                to: email,
                subject: format!("Contract {} from {}", object.id, platform.name),
                body: format!(
                    "Hello,\n\n{platform} sent you contract {id}.\n\
                     Total: {total} {code}\nYour share: {due} {code}\n{due_date}",
                    platform = platform.name,
                    id = object.id,
                    total = object.total,
                    due = Money::from_minor(due, currency).to_major_string(),
                    code = currency.code(),
                ),
            })
            .await?;
    }
    conn.transaction(async |c| -> Result<ContractObject, ContractError> {
        let loaded = editable(c, tenant, actor, id).await?;
        let now = Timestamp::now();
        with_conn!(c, c => {
            diesel::update(contracts::table.find(id))
                .set((
                    contracts::status.eq(Status::Open.as_str()),
                    contracts::sent_at.eq(loaded.row.sent_at.unwrap_or(now)),
                    contracts::last_sent_at.eq(now),
                    contracts::updated_at.eq(now),
                ))
                .execute(c)
                .await
        })
        .map_err(DbError::from)?;
        let object = render(c, tenant, schedule, id).await?;
        feria_events::record(c, tenant, EventType::ContractSent, &object).await?;
        Ok(object)
    })
    .await
}
