//! Settlement and sync: the money side of a contract.
//!
//! [`settle`] is one database transaction holding the contract's row: it checks the
//! status and that the shares add up (422 before anything moves), charges every buyer's
//! `due` from their credits, pays every seller's `owed` and the fees through ONE
//! `feria_billing::settlement::settle` call (key `contract:<id>`), takes the products'
//! stock (`feria_catalog::stock::reserve`), and marks the contract settled. Any failure
//! rolls all of it back; a failed payment is then recorded in `lastPaymentAttempt` and
//! the contract stays open for a retry.
//!
//! [`sync`] recomputes the contract, rebalances shares that no longer add up (largest
//! remainder, saying who got a rounding unit) and reports what billing recorded for it.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_billing::fees::FeeSchedule;
use feria_billing::settlement::{Settlement, SettlementFees};
use feria_billing::transactions::{TransactionFilter, TransactionKind};
use feria_catalog::ProductId;
use feria_kernel::{DbConn, DbError, Money, PageRequest, Tenant, Timestamp, UserId, with_conn};
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
        key: format!("contract:{id}"),
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
        .transaction(async |c| -> Result<bool, ContractError> {
            lock(c, id).await?;
            let loaded = load(c, tenant, id).await?;
            match loaded.row.status() {
                Status::Settled => {
                    return if idempotency_key.is_some() && loaded.row.settle_key == idempotency_key
                    {
                        Ok(true)
                    } else {
                        Err(ContractError::AlreadySettled)
                    };
                }
                Status::Void => return Err(ContractError::Locked { status: "void" }),
                Status::Draft => return Err(ContractError::NotSent),
                Status::Open => {}
            }
            let totals = loaded.totals(percent, schedule)?;
            let settlement = plan(&loaded, &totals)?;
            feria_billing::settlement::settle(c, tenant, settlement).await?;
            let mut units: BTreeMap<ProductId, i64> = BTreeMap::new();
            for item in &loaded.items {
                if let Some(product) = &item.product_id {
                    *units.entry(product.clone()).or_default() += item.quantity;
                }
            }
            for (product, quantity) in units {
                match feria_catalog::stock::reserve(c, tenant, &product, quantity).await {
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
            let now = Timestamp::now();
            with_conn!(c, c => {
                diesel::update(contracts::table.find(id))
                    .set((
                        contracts::status.eq(Status::Settled.as_str()),
                        contracts::paid_at.eq(now),
                        contracts::last_payment_attempt_at.eq(now),
                        contracts::settle_key.eq(&idempotency_key),
                        contracts::updated_at.eq(now),
                    ))
                    .execute(c)
                    .await
            })
            .map_err(DbError::from)?;
            // Payment and settlement are one step here: both events, in this order.
            let object = service::render(c, tenant, schedule, id).await?;
            feria_events::record(c, tenant, feria_events::EventType::ContractPaid, &object).await?;
            feria_events::record(c, tenant, feria_events::EventType::ContractSettled, &object)
                .await?;
            Ok(false)
        })
        .await;
    match result {
        Ok(replayed) => Ok(SettleOutcome {
            contract: service::render(conn, tenant, schedule, id).await?,
            replayed,
        }),
        Err(error) if error.is_payment_failure() => {
            // Nothing moved; remember that payment was tried.
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
            Err(error)
        }
        Err(error) => Err(error),
    }
}

/// The terms a subscription to this contract charges every cycle, for
/// `feria_billing::subscriptions::create`: the signed-in subscriber pays the contract's
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
) -> Result<feria_billing::subscriptions::SubscriptionTerms, ContractError> {
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
    let percent = platform_percent(conn, tenant).await?;
    let totals = loaded.totals(percent, schedule)?;
    let planned = plan(&loaded, &totals)?;
    Ok(feria_billing::subscriptions::SubscriptionTerms {
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
