//! Settlement and sync: the money side of a contract.
//!
//! [`settle`] is one database transaction holding the contract's row: it checks the
//! status and that the shares add up (422 before anything moves), takes the products'
//! stock (`feria_catalog::stock::reserve`, which also refuses a product no longer for
//! sale), charges every buyer's `due` from their credits, pays every seller's `owed` and
//! the fees through ONE `feria_billing::settlement::settle` call (key `contract:<id>`),
//! and marks the contract settled. Any failure
//! rolls all of it back; a failed payment is then recorded in `lastPaymentAttempt` and
//! the contract stays open for a retry.
//!
//! [`settle_by_card`] settles the same plan by card through Stripe in three steps (a
//! recorded pending attempt, the Stripe calls with idempotency keys and no transaction
//! open, one finalizing transaction); [`settle_with`] picks the provider.
//!
//! [`sync`] recomputes the contract, rebalances shares that no longer add up (largest
//! remainder, saying who got a rounding unit) and reports what billing recorded for it.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_billing::BillingError;
use feria_billing::card_settlement::{
    Begun, CardFailure, CardPayer, CardSettlement, ConnectedSeller, PendingCard,
};
use feria_billing::fees::FeeSchedule;
use feria_billing::settlement::{Settlement, SettlementFees};
use feria_billing::stripe::StripeClient;
use feria_billing::transactions::{TransactionFilter, TransactionKind};
use feria_catalog::ProductId;
use feria_kernel::{Db, DbConn, DbError, Money, PageRequest, Tenant, Timestamp, UserId, with_conn};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ContractError;
use crate::model::*;
use crate::schema::{contract_buyers, contract_sellers, contracts};
use crate::service::{self, Actor, load, lock, platform_percent};

/// The outcome of a settle call.
#[derive(Debug, Clone)]
pub struct SettleOutcome {
    pub contract: ContractObject,
    /// True when this was a repeat of an earlier settle with the same Idempotency-Key.
    pub replayed: bool,
}

fn mismatch(field: &'static str, what: &str, sum: Money, expected: Money) -> ContractError {
    ContractError::SharesMismatch {
        field,
        message: format!(
            "the {what} add up to {} but must add up to {}",
            sum.to_major_string(),
            expected.to_major_string()
        ),
    }
}

/// What a settlement moves, checked: buyers pay `total`, sellers get `net`.
fn plan(loaded: &Loaded, totals: &Totals) -> Result<Settlement, ContractError> {
    let currency = loaded.row.currency();
    if totals.total.is_zero() {
        return Err(ContractError::invalid(
            "total",
            "a contract of zero has nothing to settle",
        ));
    }
    let mut charged = Money::zero(currency);
    let mut charges = Vec::new();
    for buyer in &loaded.buyers {
        let due = Money::from_minor(buyer.due_minor, currency);
        charged = charged.checked_add(due)?;
        if !due.is_zero() {
            charges.push((buyer.user_id.clone(), due));
        }
    }
    if charged != totals.total {
        return Err(mismatch("buyers", "buyers' dues", charged, totals.total));
    }
    let mut paid = Money::zero(currency);
    let mut earnings = Vec::new();
    for seller in &loaded.sellers {
        let owed = Money::from_minor(seller.owed_minor, currency);
        paid = paid.checked_add(owed)?;
        if !owed.is_zero() {
            earnings.push((seller.user_id.clone(), owed));
        }
    }
    if paid != totals.net {
        return Err(mismatch(
            "sellers",
            "sellers' owed shares",
            paid,
            totals.net,
        ));
    }
    let id = loaded.row.id.as_str().to_owned();
    Ok(Settlement {
        key: settlement_key(&loaded.row.id),
        contract_id: Some(id.clone()),
        escrow_owner: id.clone(),
        currency,
        charges,
        earnings,
        fees: SettlementFees {
            platform: totals.platform_with_custom()?,
            service: totals.service_fee,
            processor: totals.processor_fee,
        },
        description: Some(format!("contract {id}")),
    })
}

/// The products' units a contract takes from stock.
fn units(loaded: &Loaded) -> BTreeMap<ProductId, i64> {
    let mut units: BTreeMap<ProductId, i64> = BTreeMap::new();
    for item in &loaded.items {
        if let Some(product) = &item.product_id {
            *units.entry(product.clone()).or_default() += item.quantity;
        }
    }
    units
}

/// Takes the contract's products from stock (inside the settling transaction).
async fn take_stock(
    conn: &mut DbConn,
    tenant: &Tenant,
    loaded: &Loaded,
) -> Result<(), ContractError> {
    for (product, quantity) in units(loaded) {
        match feria_catalog::stock::reserve(conn, tenant, &product, quantity).await {
            Ok(_) => {}
            Err(
                feria_catalog::CatalogError::OutOfStock
                | feria_catalog::CatalogError::InsufficientStock { .. }
                | feria_catalog::CatalogError::ProductNotFound,
            ) => {
                return Err(ContractError::InsufficientStock {
                    product: product.to_string(),
                });
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

/// Puts back what [`take_stock`] took, when a card payment was refused.
async fn return_stock(
    conn: &mut DbConn,
    tenant: &Tenant,
    loaded: &Loaded,
) -> Result<(), ContractError> {
    for (product, quantity) in units(loaded) {
        match feria_catalog::stock::release(conn, tenant, &product, quantity).await {
            // A product deleted meanwhile has no stock to give back to.
            Ok(_) | Err(feria_catalog::CatalogError::ProductNotFound) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

/// Marks the contract settled and records `contract.paid` and `contract.settled`;
/// answers the contract as they show it.
async fn mark_settled(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    id: &ContractId,
    idempotency_key: &Option<String>,
) -> Result<ContractObject, ContractError> {
    let now = Timestamp::now();
    with_conn!(conn, c => {
        diesel::update(contracts::table.find(id))
            .set((
                contracts::status.eq(Status::Settled.as_str()),
                contracts::paid_at.eq(now),
                contracts::last_payment_attempt_at.eq(now),
                contracts::settle_key.eq(idempotency_key),
                contracts::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    // Payment and settlement are one step here: both events, in this order.
    let object = service::render(conn, tenant, schedule, id).await?;
    feria_events::record_all(
        conn,
        tenant,
        vec![
            feria_events::NewEvent::new(feria_events::EventType::ContractPaid, &object)?,
            feria_events::NewEvent::new(feria_events::EventType::ContractSettled, &object)?,
        ],
    )
    .await?;
    Ok(object)
}

/// Remembers that payment was tried (the contract stays open).
async fn note_attempt(conn: &mut DbConn, id: &ContractId) -> Result<(), ContractError> {
    with_conn!(conn, c => {
        diesel::update(
            contracts::table
                .find(id)
                .filter(contracts::status.eq(Status::Open.as_str())),
        )
        .set(contracts::last_payment_attempt_at.eq(Timestamp::now()))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    Ok(())
}

/// The status check of settling: `Ok(true)` for a settled contract repeated with its
/// Idempotency-Key (answer as the first time), `Ok(false)` for an open one.
fn settleable(loaded: &Loaded, idempotency_key: &Option<String>) -> Result<bool, ContractError> {
    match loaded.row.status() {
        Status::Settled => {
            if idempotency_key.is_some() && loaded.row.settle_key == *idempotency_key {
                Ok(true)
            } else {
                Err(ContractError::AlreadySettled)
            }
        }
        Status::Void => Err(ContractError::Locked { status: "void" }),
        Status::Draft => Err(ContractError::NotSent),
        Status::Open => Ok(false),
    }
}

/// Settles an open contract (admins): see the module documentation. Settling a settled
/// contract again with the Idempotency-Key it was settled with answers as the first time
/// and moves nothing; without it (or with another key) it is 409 `already_settled`.
pub async fn settle(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    id: &ContractId,
    idempotency_key: Option<String>,
) -> Result<SettleOutcome, ContractError> {
    let percent = platform_percent(conn, tenant).await?;
    let result = conn
        .transaction(async |c| -> Result<Option<ContractObject>, ContractError> {
            lock(c, id).await?;
            let loaded = load(c, tenant, id).await?;
            if settleable(&loaded, &idempotency_key)? {
                return Ok(None);
            }
            // Stripe may already have charged a pending card settlement: finish that one
            // (repeat the settle without `provider=internal`), never pay twice.
            if feria_billing::card_settlement::is_pending(c, tenant, &settlement_key(id)).await? {
                return Err(ContractError::SettlementPending);
            }
            let totals = loaded.totals(percent, schedule)?;
            let settlement = plan(&loaded, &totals)?;
            // Stock first: the products' rows are locked before billing writes its event
            // rows, the order a product's disable takes them in too (its row, then its
            // event), so a settle racing a disable waits instead of deadlocking.
            take_stock(c, tenant, &loaded).await?;
            // Every error rolls the whole settle back: no savepoint of billing's own.
            feria_billing::settlement::settle_in(c, tenant, settlement).await?;
            Ok(Some(
                mark_settled(c, tenant, schedule, id, &idempotency_key).await?,
            ))
        })
        .await;
    match result {
        Ok(Some(contract)) => Ok(SettleOutcome {
            contract,
            replayed: false,
        }),
        Ok(None) => Ok(SettleOutcome {
            contract: service::render(conn, tenant, schedule, id).await?,
            replayed: true,
        }),
        Err(error) if error.is_payment_failure() => {
            // Nothing moved; remember that payment was tried.
            note_attempt(conn, id).await?;
            Err(error)
        }
        Err(error) => Err(error),
    }
}

/// How a settlement is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentProvider {
    /// The buyers' prepaid credits.
    Internal,
    /// The buyers' default saved cards, sellers paid by Stripe Connect transfers.
    Stripe,
}

/// The settlement key of a contract: billing's records of its settlement carry it.
fn settlement_key(id: &ContractId) -> String {
    format!("contract:{id}")
}

/// Settles an open contract through the chosen provider, or the one the contract's
/// parties can pay with (see `docs/MONEY.md`, "Choosing the provider"):
///
/// - `internal`: [`settle`], from the buyers' credits.
/// - `stripe`: [`settle_by_card`]; needs a Stripe client for the tenant's mode.
/// - none given: `internal` without a Stripe client, when a card settlement of this
///   contract is pending it is resumed, when every buyer's credits cover their due it is
///   `internal`, when every buyer has a saved default card it is `stripe`, otherwise
///   `internal` (which answers `insufficient_funds`).
pub async fn settle_with(
    db: &Db,
    stripe: Option<&StripeClient>,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    id: &ContractId,
    idempotency_key: Option<String>,
    provider: Option<PaymentProvider>,
) -> Result<SettleOutcome, ContractError> {
    let provider = match (provider, stripe) {
        (Some(PaymentProvider::Stripe), None) => return Err(ContractError::ProviderNotConfigured),
        (Some(chosen), _) => chosen,
        (None, None) => PaymentProvider::Internal,
        (None, Some(_)) => choose(&mut db.conn().await?, tenant, schedule, id).await?,
    };
    match (provider, stripe) {
        (PaymentProvider::Stripe, Some(stripe)) => {
            settle_by_card(db, stripe, tenant, schedule, id, idempotency_key).await
        }
        _ => settle(&mut db.conn().await?, tenant, schedule, id, idempotency_key).await,
    }
}

/// The provider a settle without one uses (see [`settle_with`]).
async fn choose(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    id: &ContractId,
) -> Result<PaymentProvider, ContractError> {
    if feria_billing::card_settlement::is_pending(conn, tenant, &settlement_key(id)).await? {
        return Ok(PaymentProvider::Stripe);
    }
    let loaded = load(conn, tenant, id).await?;
    if loaded.row.status() != Status::Open {
        // Settled, void or draft: the credits path gives the answer.
        return Ok(PaymentProvider::Internal);
    }
    let percent = platform_percent(conn, tenant).await?;
    let Ok(planned) = loaded
        .totals(percent, schedule)
        .and_then(|t| plan(&loaded, &t))
    else {
        return Ok(PaymentProvider::Internal);
    };
    let mut credits_cover = true;
    let mut cards_cover = true;
    for (buyer, due) in &planned.charges {
        let credits =
            feria_billing::credits::balance(conn, tenant, buyer, planned.currency).await?;
        credits_cover &= credits.minor() >= due.minor();
        cards_cover &= card_of(conn, tenant, buyer).await?.is_some();
    }
    Ok(if !credits_cover && cards_cover {
        PaymentProvider::Stripe
    } else {
        PaymentProvider::Internal
    })
}

/// A buyer's Stripe customer and default saved payment method, if they have both.
async fn card_of(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
) -> Result<Option<CardPayer>, ContractError> {
    let user = feria_users::user::get(conn, tenant, user_id).await?;
    let Some(customer) = user.stripe_customer_id else {
        return Ok(None);
    };
    let methods = feria_users::payments::list(conn, tenant, user_id).await?;
    Ok(methods
        .into_iter()
        .find(|m| m.is_default && m.provider == feria_users::payments::STRIPE)
        .map(|m| CardPayer {
            user_id: user_id.clone(),
            customer,
            payment_method: m.provider_ref,
        }))
}

/// What a card settlement needs before anything is charged: every buyer's card, every
/// seller's connected account.
async fn card_plan(
    conn: &mut DbConn,
    tenant: &Tenant,
    settlement: Settlement,
) -> Result<CardSettlement, ContractError> {
    let mut payers = Vec::new();
    for (buyer, _) in &settlement.charges {
        payers.push(card_of(conn, tenant, buyer).await?.ok_or_else(|| {
            ContractError::PaymentMethodRequired {
                user: buyer.to_string(),
            }
        })?);
    }
    let mut sellers = Vec::new();
    for (seller, _) in &settlement.earnings {
        let user = feria_users::user::get(conn, tenant, seller).await?;
        let account = user
            .stripe_connect_id
            .ok_or_else(|| ContractError::SellerNotConnected {
                user: seller.to_string(),
            })?;
        sellers.push(ConnectedSeller {
            user_id: seller.clone(),
            account,
        });
    }
    Ok(CardSettlement {
        settlement,
        payers,
        sellers,
    })
}

/// What the first step of a card settlement found.
enum Prepared {
    /// Answer with the contract as it is: settled, nothing moves.
    Done(bool),
    /// Call Stripe for this attempt; `started` when this call took the stock.
    Charge {
        pending: Box<PendingCard>,
        started: bool,
    },
}

/// Settles an open contract by card through Stripe (admins): each buyer's default saved
/// card is charged into escrow, each seller paid by a Connect transfer, the fees kept —
/// without holding a database transaction across Stripe's answers:
///
/// 1. checks (a buyer without a card: 409 `payment_method_required`; a seller without a
///    connected account: 409 `seller_not_connected`; one Stripe will not pay yet: 409
///    `seller_account_not_ready`), then one transaction takes the stock and records the
///    pending attempt (`feria_billing::card_settlement::begin`);
/// 2. Stripe is called with idempotency keys derived from `contract:<id>` and the
///    attempt: a refusal (declined card) fails the attempt, puts the stock back and
///    answers 422 `payment_provider_rejected` with Stripe's details — nothing in the
///    ledger; Stripe unreachable answers 503 and leaves the attempt pending;
/// 3. one transaction writes the ledger entries and transactions with Stripe's ids and
///    marks the contract settled.
///
/// Repeating the request resumes a pending attempt with the same keys: Stripe answers
/// the calls it already carried out with their first results, so nobody pays twice.
pub async fn settle_by_card(
    db: &Db,
    stripe: &StripeClient,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    id: &ContractId,
    idempotency_key: Option<String>,
) -> Result<SettleOutcome, ContractError> {
    // Checks that need no lock, so that Stripe's account look-ups hold no connection.
    let card = {
        let mut conn = db.conn().await?;
        let percent = platform_percent(&mut conn, tenant).await?;
        let loaded = load(&mut conn, tenant, id).await?;
        if settleable(&loaded, &idempotency_key)? {
            return Ok(SettleOutcome {
                contract: service::render(&mut conn, tenant, schedule, id).await?,
                replayed: true,
            });
        }
        let totals = loaded.totals(percent, schedule)?;
        card_plan(&mut conn, tenant, plan(&loaded, &totals)?).await?
    };
    for seller in &card.sellers {
        let account = stripe
            .retrieve_account(&seller.account)
            .await
            .map_err(|e| ContractError::Billing(BillingError::Provider(e)))?;
        if !account.can_receive_transfers() {
            return Err(ContractError::SellerAccountNotReady {
                user: seller.user_id.to_string(),
            });
        }
    }

    let mut conn = db.conn().await?;
    let percent = platform_percent(&mut conn, tenant).await?;
    let prepared = conn
        .transaction(async |c| -> Result<Prepared, ContractError> {
            lock(c, id).await?;
            let loaded = load(c, tenant, id).await?;
            if settleable(&loaded, &idempotency_key)? {
                return Ok(Prepared::Done(true));
            }
            let totals = loaded.totals(percent, schedule)?;
            let settlement = plan(&loaded, &totals)?;
            let card = CardSettlement { settlement, ..card };
            match feria_billing::card_settlement::begin(c, tenant, card).await? {
                Begun::Started(pending) => {
                    take_stock(c, tenant, &loaded).await?;
                    Ok(Prepared::Charge {
                        pending: Box::new(pending),
                        started: true,
                    })
                }
                Begun::Resumed(pending) => Ok(Prepared::Charge {
                    pending: Box::new(pending),
                    started: false,
                }),
                // Completed in the ledger, yet the contract is open: finish it.
                Begun::Settled(_) => {
                    mark_settled(c, tenant, schedule, id, &idempotency_key).await?;
                    Ok(Prepared::Done(false))
                }
            }
        })
        .await;
    let pending = match prepared {
        Ok(Prepared::Done(replayed)) => {
            return Ok(SettleOutcome {
                contract: service::render(&mut conn, tenant, schedule, id).await?,
                replayed,
            });
        }
        Ok(Prepared::Charge { pending, started }) => {
            tracing::info!(contract = %id, attempt = pending.attempt, started, "settling by card");
            pending
        }
        Err(error) => {
            if error.is_payment_failure() {
                note_attempt(&mut conn, id).await?;
            }
            return Err(error);
        }
    };
    // No connection is held while Stripe answers.
    drop(conn);

    let outcome = match feria_billing::card_settlement::execute(stripe, &pending).await {
        Ok(outcome) => outcome,
        Err(CardFailure::Rejected(error)) => {
            let mut conn = db.conn().await?;
            conn.transaction(async |c| -> Result<(), ContractError> {
                lock(c, id).await?;
                let loaded = load(c, tenant, id).await?;
                if feria_billing::card_settlement::fail(c, &pending, &error).await? {
                    return_stock(c, tenant, &loaded).await?;
                }
                note_attempt(c, id).await
            })
            .await?;
            return Err(ContractError::Billing(BillingError::Provider(error)));
        }
        Err(other) => return Err(ContractError::Billing(other.into())),
    };

    let mut conn = db.conn().await?;
    let replayed = conn
        .transaction(async |c| -> Result<bool, ContractError> {
            lock(c, id).await?;
            let loaded = load(c, tenant, id).await?;
            if settleable(&loaded, &idempotency_key)? {
                // A concurrent repeat of this request finished first.
                return Ok(true);
            }
            feria_billing::card_settlement::finalize(c, &pending, &outcome).await?;
            mark_settled(c, tenant, schedule, id, &idempotency_key).await?;
            Ok(false)
        })
        .await?;
    Ok(SettleOutcome {
        contract: service::render(&mut conn, tenant, schedule, id).await?,
        replayed,
    })
}

/// What a subscription to a contract charges every cycle: a snapshot of the contract's
/// terms, which `feria-subscriptions` (above this crate) copies into its own tables.
#[derive(Debug, Clone)]
pub struct SubscriptionTerms {
    /// The contract (`inv_...`) the terms come from; the wire's `service_id`.
    pub contract_id: String,
    /// The subscriber: the one buyer, who pays `price` every cycle.
    pub buyer: UserId,
    pub currency: feria_kernel::money::Currency,
    /// What the subscriber pays per cycle.
    pub price: Money,
    /// What each seller receives per cycle.
    pub earnings: Vec<(UserId, Money)>,
    /// The fees per cycle; earnings plus fees equal `price`.
    pub fees: SettlementFees,
}

/// The terms a subscription to this contract charges every cycle, for
/// `feria_subscriptions::subscribe`: the signed-in subscriber pays the contract's
/// `total`, each seller earns their `owed`, the fees are the contract's (custom fee lines
/// with the platform's). The subscriber must be the contract's one buyer (403
/// `not_contract_buyer` for another party, 409 `contract_not_subscribable` when there are
/// several buyers); a draft is 409 `contract_not_sent`, a void contract 409
/// `contract_locked`; shares that do not add up are 422 as for settling. Stock is not
/// taken: a subscription charges the terms, it does not ship the products again.
pub async fn subscription_terms(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
) -> Result<SubscriptionTerms, ContractError> {
    let loaded = service::readable(conn, tenant, actor, id).await?;
    let subscriber = actor.user_id.clone().ok_or(ContractError::NotBuyer)?;
    match loaded.row.status() {
        Status::Draft => return Err(ContractError::NotSent),
        Status::Void => return Err(ContractError::Locked { status: "void" }),
        Status::Open | Status::Settled => {}
    }
    if !loaded.buyers.iter().any(|b| b.user_id == subscriber) {
        return Err(ContractError::NotBuyer);
    }
    if loaded.buyers.len() != 1 {
        return Err(ContractError::NotSubscribable(
            "a subscription has one payer and this contract has several buyers",
        ));
    }
    // Subscribing sells the contract's products again every cycle: they must be for sale
    // now. Renewals charge these terms as agreed (see docs/INVARIANTS.md).
    for product in units(&loaded).keys() {
        feria_catalog::sale::sellable(conn, tenant, product).await?;
    }
    let percent = platform_percent(conn, tenant).await?;
    let totals = loaded.totals(percent, schedule)?;
    let planned = plan(&loaded, &totals)?;
    Ok(SubscriptionTerms {
        contract_id: loaded.row.id.as_str().to_owned(),
        buyer: subscriber,
        currency: planned.currency,
        price: totals.total,
        earnings: planned.earnings,
        fees: planned.fees,
    })
}

/// Where a rounding unit went when shares were rebalanced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoundingNote {
    /// `buyer` or `seller`.
    pub role: String,
    pub user_id: UserId,
    /// What the largest-remainder split gave this party beyond its exact share, rounded
    /// down (one minor unit or none).
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 0.01)]
    pub amount: Decimal,
}

/// What billing recorded for a contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PaymentState {
    /// `unpaid`, `paid`, `partially_refunded` or `refunded`.
    pub state: String,
    /// Charged to the buyers.
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub charged: Decimal,
    /// Paid to the sellers.
    #[serde(rename = "paidOut", with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub paid_out: Decimal,
    /// Taken as fees.
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub fees: Decimal,
    /// Given back to the buyers.
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub refunded: Decimal,
    /// How many transactions carry this contract's id.
    pub transactions: u64,
}

/// A contract recomputed: the contract object, its payment state from billing, whether
/// its shares were rebalanced, and where rounding units went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ContractSync)]
pub struct SyncObject {
    #[serde(flatten)]
    pub contract: ContractObject,
    pub payment: PaymentState,
    pub rebalanced: bool,
    pub rounding: Vec<RoundingNote>,
}

/// Splits `whole` over parties in proportion to their current shares (equally when all
/// are zero); returns the new shares and the rounding notes.
fn rebalance(
    role: &str,
    whole: Money,
    parties: &[(UserId, i64)],
) -> Result<(Vec<i64>, Vec<RoundingNote>), ContractError> {
    let mut weights: Vec<u64> = parties
        .iter()
        .map(|(_, share)| u64::try_from(*share).unwrap_or(0))
        .collect();
    if weights.iter().all(|w| *w == 0) {
        weights = vec![1; parties.len()];
    }
    let parts = whole.allocate(&weights)?;
    let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    let mut notes = Vec::new();
    let whole_minor = u128::try_from(whole.minor()).unwrap_or(0);
    for ((user, _), (part, weight)) in parties.iter().zip(parts.iter().zip(&weights)) {
        let floor = i64::try_from(whole_minor * u128::from(*weight) / sum).unwrap_or(0);
        let extra = part.minor() - floor;
        if extra != 0 {
            notes.push(RoundingNote {
                role: role.to_owned(),
                user_id: user.clone(),
                amount: Money::from_minor(extra, whole.currency()).to_decimal(),
            });
        }
    }
    Ok((parts.iter().map(Money::minor).collect(), notes))
}

/// Recomputes the contract: while it is still editable, shares that do not add up (the
/// buyers' dues to `total`, the sellers' owed to `net`) are rebalanced in proportion and
/// stored; then the payment state is read from billing's transactions of the contract.
pub async fn sync(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    id: &ContractId,
) -> Result<SyncObject, ContractError> {
    let percent = platform_percent(conn, tenant).await?;
    let (rebalanced, rounding) = conn
        .transaction(
            async |c| -> Result<(bool, Vec<RoundingNote>), ContractError> {
                lock(c, id).await?;
                let loaded = service::readable(c, tenant, actor, id).await?;
                let may_change = actor.can_change(&loaded);
                if !loaded.row.status().is_editable() || !may_change {
                    return Ok((false, Vec::new()));
                }
                let totals = loaded.totals(percent, schedule)?;
                let mut notes = Vec::new();
                let mut changed = false;
                let dues: i64 = loaded.buyers.iter().map(|b| b.due_minor).sum();
                if !loaded.buyers.is_empty() && dues != totals.total.minor() {
                    let parties: Vec<(UserId, i64)> = loaded
                        .buyers
                        .iter()
                        .map(|b| (b.user_id.clone(), b.due_minor))
                        .collect();
                    let (shares, mut more) = rebalance("buyer", totals.total, &parties)?;
                    for ((user, _), share) in parties.iter().zip(shares) {
                        with_conn!(c, c => {
                            diesel::update(
                                contract_buyers::table
                                    .filter(contract_buyers::contract_id.eq(id))
                                    .filter(contract_buyers::user_id.eq(user)),
                            )
                            .set(contract_buyers::due_minor.eq(share))
                            .execute(c)
                            .await
                        })
                        .map_err(DbError::from)?;
                    }
                    notes.append(&mut more);
                    changed = true;
                }
                let owed: i64 = loaded.sellers.iter().map(|s| s.owed_minor).sum();
                if !loaded.sellers.is_empty() && owed != totals.net.minor() {
                    let parties: Vec<(UserId, i64)> = loaded
                        .sellers
                        .iter()
                        .map(|s| (s.user_id.clone(), s.owed_minor))
                        .collect();
                    let (shares, mut more) = rebalance("seller", totals.net, &parties)?;
                    for ((user, _), share) in parties.iter().zip(shares) {
                        with_conn!(c, c => {
                            diesel::update(
                                contract_sellers::table
                                    .filter(contract_sellers::contract_id.eq(id))
                                    .filter(contract_sellers::user_id.eq(user)),
                            )
                            .set(contract_sellers::owed_minor.eq(share))
                            .execute(c)
                            .await
                        })
                        .map_err(DbError::from)?;
                    }
                    notes.append(&mut more);
                    changed = true;
                }
                if changed {
                    with_conn!(c, c => {
                        diesel::update(contracts::table.find(id))
                            .set(contracts::updated_at.eq(Timestamp::now()))
                            .execute(c)
                            .await
                    })
                    .map_err(DbError::from)?;
                }
                Ok((changed, notes))
            },
        )
        .await?;
    let contract = service::render(conn, tenant, schedule, id).await?;
    let payment = payment_state(conn, tenant, &contract).await?;
    Ok(SyncObject {
        contract,
        payment,
        rebalanced,
        rounding,
    })
}

async fn payment_state(
    conn: &mut DbConn,
    tenant: &Tenant,
    contract: &ContractObject,
) -> Result<PaymentState, ContractError> {
    let filter = TransactionFilter {
        contract_id: Some(contract.id.as_str().to_owned()),
        ..TransactionFilter::default()
    };
    let mut charged = Decimal::ZERO;
    let mut paid_out = Decimal::ZERO;
    let mut fees = Decimal::ZERO;
    let mut refunded = Decimal::ZERO;
    let mut count = 0u64;
    let mut page_number = 1;
    loop {
        let request = PageRequest::new(page_number, 100)
            .map_err(|_| ContractError::invalid("page", "out of range"))?;
        let page = feria_billing::transactions::list(conn, tenant, &filter, request).await?;
        for transaction in &page.data {
            count += 1;
            match transaction.kind {
                TransactionKind::Charge => charged += transaction.amount,
                TransactionKind::Earning => paid_out += transaction.amount,
                TransactionKind::EarningReversal => paid_out -= transaction.amount,
                TransactionKind::Fee => fees += transaction.amount,
                TransactionKind::FeeReversal => fees -= transaction.amount,
                TransactionKind::Refund => refunded += transaction.amount,
                _ => {}
            }
        }
        if page.data.len() < 100 || count >= page.total {
            break;
        }
        page_number += 1;
    }
    let state = if charged.is_zero() {
        "unpaid"
    } else if refunded.is_zero() {
        "paid"
    } else if refunded < charged {
        "partially_refunded"
    } else {
        "refunded"
    };
    Ok(PaymentState {
        state: state.to_owned(),
        charged,
        paid_out,
        fees,
        refunded,
        transactions: count,
    })
}
