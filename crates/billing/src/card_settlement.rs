//! Settlement through Stripe: buyers pay by card, sellers are paid by Connect transfers.
//!
//! The ledger moves as in [`crate::settlement::settle`], with the outside world at both
//! ends: `external/stripe → escrow` for the card charges (key `settle:<key>:charge`),
//! `escrow → seller receivable + fee accounts` (`settle:<key>:release`) and
//! `seller receivable → external/stripe` for the transfers (`settle:<key>:payout`).
//!
//! No database transaction spans an HTTP call to Stripe, so a settlement takes three
//! steps:
//!
//! 1. [`begin`] (in the caller's transaction): records the intent as a pending
//!    `provider_settlements` row with the plan (customers, payment methods, connected
//!    accounts) and an attempt number, or finds the pending one to resume.
//! 2. [`execute`] (no database): one PaymentIntent per buyer, confirmed off-session
//!    with their saved default payment method, then one transfer per seller. Every call
//!    carries an `Idempotency-Key` derived from the tenant, the settlement key, the
//!    attempt and the party ([`stripe_key`]): a retry after a crash sends the same keys
//!    and Stripe answers with the first results, so nobody is charged twice.
//! 3. [`finalize`] (in one transaction): the three journal entries, the transactions
//!    with Stripe's ids, and the row marked succeeded.
//!
//! A refusal (a declined card) refunds whatever this attempt already charged and
//! [`fail`] marks the attempt failed: no entry, no transaction. The next settle starts
//! the next attempt with new keys (Stripe keeps a declined request's result under its
//! key, so a new card needs a new key). An unreachable Stripe leaves the row pending;
//! the same request later resumes it with the same keys.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::money::Money;
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, UserId, with_conn};
use serde::{Deserialize, Serialize};

use crate::error::BillingError;
use crate::ledger::{AccountKey, AccountKind, EntryKind, NewEntry, Posted};
use crate::schema::provider_settlements;
use crate::settlement::{Settled, Settlement, fee_parts};
use crate::stripe::{
    ChargeOffSession, CreateRefund, CreateTransfer, IdempotencyKey, Metadata, PaymentIntentStatus,
    StripeApiError, StripeClient, StripeError,
};
use crate::transactions::{NewTransaction, TransactionKind};

/// The provider name on accounts and transactions.
pub const STRIPE: &str = "stripe";

feria_kernel::define_id!(
    /// A settlement through a payment provider (its pending / succeeded / failed record).
    ProviderSettlementId,
    "psett"
);

/// A buyer paying by card: their Stripe customer and the saved payment method charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayer {
    pub user_id: UserId,
    /// `cus_...`
    pub customer: String,
    /// `pm_...`, attached to `customer`.
    pub payment_method: String,
}

/// A seller paid by a Connect transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedSeller {
    pub user_id: UserId,
    /// `acct_...`, able to receive transfers.
    pub account: String,
}

/// What the provider row keeps of the plan: who is charged with what, who is paid where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredPlan {
    payers: Vec<CardPayer>,
    sellers: Vec<ConnectedSeller>,
}

/// A settlement to carry out by card: the amounts, and one payer per charge and one
/// connected seller per earning (same users, same order).
#[derive(Debug, Clone)]
pub struct CardSettlement {
    pub settlement: Settlement,
    pub payers: Vec<CardPayer>,
    pub sellers: Vec<ConnectedSeller>,
}

/// A recorded, pending card settlement: what [`execute`] calls Stripe with.
#[derive(Debug, Clone)]
pub struct PendingCard {
    pub id: ProviderSettlementId,
    pub settlement: Settlement,
    pub attempt: i64,
    pub payers: Vec<CardPayer>,
    pub sellers: Vec<ConnectedSeller>,
    platform_id: PlatformId,
    mode: Mode,
}

/// What [`begin`] found.
#[derive(Debug, Clone)]
pub enum Begun {
    /// A new attempt was recorded: call [`execute`].
    Started(PendingCard),
    /// An attempt was pending (a crash, an outage, a concurrent request): call
    /// [`execute`] again; Stripe replays what it already did.
    Resumed(PendingCard),
    /// The settlement is complete already: nothing moves.
    Settled(Settled),
}

/// Stripe's ids of a settlement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardOutcome {
    pub charges: Vec<StripeCharge>,
    pub transfers: Vec<StripeTransfer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeCharge {
    pub user_id: UserId,
    /// `pi_...`
    pub payment_intent: String,
    /// `ch_...` (the seed's `stripeChargeId`), when Stripe reported it.
    pub charge: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeTransfer {
    pub user_id: UserId,
    /// `tr_...`
    pub transfer: String,
}

/// Why [`execute`] stopped.
#[derive(Debug)]
pub enum CardFailure {
    /// Stripe refused (a declined card, a refused transfer before any seller was paid);
    /// what this attempt charged was refunded. Record it with [`fail`].
    Rejected(StripeError),
    /// Stripe could not be reached or asked for a retry: the attempt stays pending and
    /// the same request resumes it.
    Unavailable(StripeError),
    /// The buyers were charged and some sellers paid, then a transfer was refused: the
    /// attempt stays pending until the seller's account is fixed and the request
    /// repeated.
    Incomplete(StripeError),
}

impl From<CardFailure> for BillingError {
    fn from(failure: CardFailure) -> Self {
        match failure {
            CardFailure::Rejected(error) | CardFailure::Unavailable(error) => {
                BillingError::Provider(error)
            }
            CardFailure::Incomplete(error) => BillingError::ProviderIncomplete(error),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = provider_settlements)]
struct Row {
    id: ProviderSettlementId,
    platform_id: PlatformId,
    mode: Mode,
    settlement_key: String,
    provider: String,
    fingerprint: String,
    attempt: i64,
    status: String,
    plan: String,
    provider_refs: Option<String>,
    last_error: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

const PENDING: &str = "pending";
const SUCCEEDED: &str = "succeeded";
const FAILED: &str = "failed";

/// The `Idempotency-Key` of one Stripe call of a settlement: unique per tenant,
/// settlement key, attempt, step and party, and the same on every retry. Keys longer
/// than Stripe's 255 characters are replaced by their digest.
pub fn stripe_key(
    tenant: &Tenant,
    settlement_key: &str,
    attempt: i64,
    step: &str,
    user: &UserId,
) -> Result<IdempotencyKey, StripeError> {
    let key = format!(
        "feria:{}:{}:{settlement_key}:{attempt}:{step}:{user}",
        tenant.platform_id, tenant.mode
    );
    if key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()) {
        IdempotencyKey::new(key)
    } else {
        IdempotencyKey::new(format!("feria:{}", feria_kernel::secret::digest(&key)))
    }
}

fn plan_matches(card: &CardSettlement) -> Result<(), BillingError> {
    let s = &card.settlement;
    let payers_match = card.payers.len() == s.charges.len()
        && card
            .payers
            .iter()
            .zip(&s.charges)
            .all(|(p, (user, _))| &p.user_id == user);
    let sellers_match = card.sellers.len() == s.earnings.len()
        && card
            .sellers
            .iter()
            .zip(&s.earnings)
            .all(|(p, (user, _))| &p.user_id == user);
    if payers_match && sellers_match {
        Ok(())
    } else {
        Err(BillingError::Invalid {
            field: "payers",
            message: "one payment method per charge and one account per earning".into(),
        })
    }
}

async fn find(conn: &mut DbConn, tenant: &Tenant, key: &str) -> Result<Option<Row>, BillingError> {
    Ok(with_conn!(conn, c => {
        provider_settlements::table
            .filter(provider_settlements::platform_id.eq(&tenant.platform_id))
            .filter(provider_settlements::mode.eq(tenant.mode))
            .filter(provider_settlements::settlement_key.eq(key))
            .select(Row::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?)
}

/// Whether a card settlement with this key is pending (its terms must not change).
pub async fn is_pending(
    conn: &mut DbConn,
    tenant: &Tenant,
    settlement_key: &str,
) -> Result<bool, BillingError> {
    Ok(find(conn, tenant, settlement_key)
        .await?
        .is_some_and(|row| row.status == PENDING))
}

/// The settlement's entries, when it was completed (by card or from credits).
async fn completed(
    conn: &mut DbConn,
    tenant: &Tenant,
    settlement: &Settlement,
    fingerprint: &str,
) -> Result<Option<Settled>, BillingError> {
    let charge_key = format!("settle:{}:charge", settlement.key);
    let Some(charge) =
        crate::ledger::replayed(conn, tenant, &charge_key, Some(fingerprint)).await?
    else {
        return Ok(None);
    };
    let mut entries = vec![charge];
    for step in ["release", "payout"] {
        let key = format!("settle:{}:{step}", settlement.key);
        if let Some(entry) = crate::ledger::replayed(conn, tenant, &key, Some(fingerprint)).await? {
            entries.push(entry);
        }
    }
    Ok(Some(Settled {
        transactions: crate::transactions::for_entries(conn, tenant, &entries).await?,
        replayed: true,
    }))
}

/// Step 1, inside the caller's transaction: records a new attempt, or finds the pending
/// one (resumed with the plan it was started with), or the completed settlement.
pub async fn begin(
    conn: &mut DbConn,
    tenant: &Tenant,
    card: CardSettlement,
) -> Result<Begun, BillingError> {
    crate::settlement::check(&card.settlement)?;
    plan_matches(&card)?;
    let print = crate::settlement::fingerprint(&card.settlement);
    if let Some(settled) = completed(conn, tenant, &card.settlement, &print).await? {
        return Ok(Begun::Settled(settled));
    }
    let plan = serde_json::to_string(&StoredPlan {
        payers: card.payers.clone(),
        sellers: card.sellers.clone(),
    })
    .map_err(|e| BillingError::Corrupt(format!("a settlement plan: {e}")))?;
    let now = Timestamp::now();
    let pending = |id: ProviderSettlementId, attempt: i64, stored: StoredPlan| PendingCard {
        id,
        settlement: card.settlement.clone(),
        attempt,
        payers: stored.payers,
        sellers: stored.sellers,
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
    };
    match find(conn, tenant, &card.settlement.key).await? {
        None => {
            let row = Row {
                id: ProviderSettlementId::new(),
                platform_id: tenant.platform_id.clone(),
                mode: tenant.mode,
                settlement_key: card.settlement.key.clone(),
                provider: STRIPE.to_owned(),
                fingerprint: print,
                attempt: 1,
                status: PENDING.to_owned(),
                plan,
                provider_refs: None,
                last_error: None,
                created_at: now,
                updated_at: now,
            };
            let inserted = with_conn!(conn, c => {
                diesel::insert_into(provider_settlements::table).values(&row).execute(c).await
            })
            .map_err(DbError::from);
            match inserted {
                Ok(_) => {}
                // A concurrent request recorded it first (callers hold a lock on what
                // they settle, so this is rare): that request carries it out.
                Err(error) if error.is_unique_violation("provider_settlements") => {
                    return Err(BillingError::SettlementInProgress);
                }
                Err(error) => return Err(error.into()),
            }
            Ok(Begun::Started(pending(
                row.id,
                1,
                StoredPlan {
                    payers: card.payers,
                    sellers: card.sellers,
                },
            )))
        }
        Some(row) if row.status == PENDING => {
            if row.fingerprint != print {
                // The terms changed while Stripe may have charged the old ones.
                return Err(BillingError::SettlementInProgress);
            }
            let stored: StoredPlan = serde_json::from_str(&row.plan)
                .map_err(|e| BillingError::Corrupt(format!("settlement plan: {e}")))?;
            Ok(Begun::Resumed(pending(row.id, row.attempt, stored)))
        }
        Some(row) if row.status == FAILED => {
            let attempt = row.attempt.checked_add(1).ok_or_else(|| {
                BillingError::Corrupt(format!("settlement {} has run out of attempts", row.id))
            })?;
            with_conn!(conn, c => {
                diesel::update(provider_settlements::table.find(&row.id))
                    .set((
                        provider_settlements::attempt.eq(attempt),
                        provider_settlements::status.eq(PENDING),
                        provider_settlements::fingerprint.eq(&print),
                        provider_settlements::plan.eq(&plan),
                        provider_settlements::provider_refs.eq(None::<String>),
                        provider_settlements::updated_at.eq(now),
                    ))
                    .execute(c)
                    .await
            })
            .map_err(DbError::from)?;
            Ok(Begun::Started(pending(
                row.id,
                attempt,
                StoredPlan {
                    payers: card.payers,
                    sellers: card.sellers,
                },
            )))
        }
        // Succeeded, yet its entries were not found with this fingerprint: other terms.
        Some(_) => Err(BillingError::IdempotencyKeyReused),
    }
}

fn classify(error: StripeError) -> CardFailure {
    if error.is_retryable() {
        CardFailure::Unavailable(error)
    } else {
        CardFailure::Rejected(error)
    }
}

/// A payment intent that did not end `succeeded` as a Stripe-shaped refusal.
fn not_completed(status: PaymentIntentStatus) -> CardFailure {
    let (code, message, retry) = match status {
        PaymentIntentStatus::RequiresAction => (
            "authentication_required",
            "the card needs the customer to authenticate the payment",
            false,
        ),
        PaymentIntentStatus::RequiresPaymentMethod | PaymentIntentStatus::Canceled => {
            ("card_declined", "the card was declined", false)
        }
        _ => (
            "payment_processing",
            "the payment is still being processed",
            true,
        ),
    };
    let error = StripeError::api(StripeApiError {
        status: if retry { 409 } else { 402 },
        kind: "card_error".to_owned(),
        code: Some(code.to_owned()),
        message: message.to_owned(),
        param: None,
        decline_code: None,
        charge: None,
        request_id: None,
        should_retry: Some(retry),
    });
    classify(error)
}

/// Step 2, without the database: charges every buyer, then pays every seller. See the
/// module documentation for what each failure leaves behind.
pub async fn execute(
    stripe: &StripeClient,
    pending: &PendingCard,
) -> Result<CardOutcome, CardFailure> {
    let tenant = Tenant::new(pending.platform_id.clone(), pending.mode);
    let settlement = &pending.settlement;
    let key = |step: &str, user: &UserId| {
        stripe_key(&tenant, &settlement.key, pending.attempt, step, user)
            .map_err(CardFailure::Rejected)
    };
    // The transfers are tied to the charges they pay out of.
    let group = format!("feria_{}", settlement.escrow_owner);
    let mut metadata = Metadata::new();
    metadata.insert("feria_platform_id".into(), tenant.platform_id.to_string());
    metadata.insert("feria_settlement".into(), settlement.key.clone());
    let mut outcome = CardOutcome::default();

    for (payer, (_, amount)) in pending.payers.iter().zip(&settlement.charges) {
        let charged = stripe
            .charge_off_session(
                &ChargeOffSession {
                    amount: *amount,
                    customer: payer.customer.clone(),
                    payment_method: payer.payment_method.clone(),
                    description: settlement.description.clone(),
                    transfer_group: Some(group.clone()),
                    metadata: metadata.clone(),
                },
                &key("charge", &payer.user_id)?,
            )
            .await;
        let failure = match charged {
            Ok(intent) if intent.status == PaymentIntentStatus::Succeeded => {
                outcome.charges.push(StripeCharge {
                    user_id: payer.user_id.clone(),
                    payment_intent: intent.id,
                    charge: intent.latest_charge,
                });
                continue;
            }
            Ok(intent) => not_completed(intent.status),
            Err(error) => classify(error),
        };
        if let CardFailure::Rejected(_) = failure {
            refund_all(stripe, &tenant, pending, &outcome).await?;
        }
        return Err(failure);
    }

    for (seller, (_, amount)) in pending.sellers.iter().zip(&settlement.earnings) {
        let paid = stripe
            .create_transfer(
                &CreateTransfer {
                    amount: *amount,
                    destination: seller.account.clone(),
                    transfer_group: Some(group.clone()),
                    description: settlement.description.clone(),
                    metadata: metadata.clone(),
                },
                &key("transfer", &seller.user_id)?,
            )
            .await;
        match paid {
            Ok(transfer) => outcome.transfers.push(StripeTransfer {
                user_id: seller.user_id.clone(),
                transfer: transfer.id,
            }),
            Err(error) if error.is_retryable() => return Err(CardFailure::Unavailable(error)),
            // Nobody paid yet: give the buyers their money back and fail the attempt.
            Err(error) if outcome.transfers.is_empty() => {
                refund_all(stripe, &tenant, pending, &outcome).await?;
                return Err(CardFailure::Rejected(error));
            }
            // Transfers cannot be undone here; keep the attempt for a repeat.
            Err(error) => return Err(CardFailure::Incomplete(error)),
        }
    }
    Ok(outcome)
}

/// Gives back everything this attempt charged (idempotent per buyer and attempt). A
/// refund Stripe cannot make now keeps the attempt pending: repeating the request
/// replays the charges and the refunds, then fails the attempt.
async fn refund_all(
    stripe: &StripeClient,
    tenant: &Tenant,
    pending: &PendingCard,
    outcome: &CardOutcome,
) -> Result<(), CardFailure> {
    for charge in &outcome.charges {
        let key = stripe_key(
            tenant,
            &pending.settlement.key,
            pending.attempt,
            "refund",
            &charge.user_id,
        )
        .map_err(CardFailure::Unavailable)?;
        stripe
            .create_refund(
                &CreateRefund {
                    payment_intent: charge.payment_intent.clone(),
                    amount: None,
                    reason: None,
                    metadata: Metadata::new(),
                },
                &key,
            )
            .await
            .map_err(CardFailure::Unavailable)?;
    }
    Ok(())
}

/// Records a refused attempt (nothing moved in the ledger): the next settle starts the
/// next attempt. True when this call failed it; false when a concurrent request that
/// resumed the same attempt already did (so what the attempt held, such as stock, is
/// given back once).
pub async fn fail(
    conn: &mut DbConn,
    pending: &PendingCard,
    error: &StripeError,
) -> Result<bool, BillingError> {
    let updated = with_conn!(conn, c => {
        diesel::update(
            provider_settlements::table
                .find(&pending.id)
                .filter(provider_settlements::attempt.eq(pending.attempt))
                .filter(provider_settlements::status.eq(PENDING)),
        )
        .set((
            provider_settlements::status.eq(FAILED),
            provider_settlements::last_error.eq(error.to_string()),
            provider_settlements::updated_at.eq(Timestamp::now()),
        ))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    Ok(updated == 1)
}

/// Step 3, in one database transaction: the charge, release and payout entries, the
/// transactions with Stripe's ids, the attempt marked succeeded. Finalizing twice (two
/// requests resumed the same attempt) returns the first result.
pub async fn finalize(
    conn: &mut DbConn,
    pending: &PendingCard,
    outcome: &CardOutcome,
) -> Result<Settled, BillingError> {
    let tenant = Tenant::new(pending.platform_id.clone(), pending.mode);
    let tenant = &tenant;
    let settlement = &pending.settlement;
    let currency = settlement.currency;
    let print = crate::settlement::fingerprint(settlement);
    let escrow = AccountKey::new(
        AccountKind::Escrow,
        settlement.escrow_owner.clone(),
        currency,
    );
    let external = AccountKey::new(AccountKind::External, STRIPE, currency);

    let mut charge_postings = Vec::new();
    for (_, amount) in &settlement.charges {
        charge_postings.push((external.clone(), amount.checked_neg()?));
        charge_postings.push((escrow.clone(), *amount));
    }
    let mut release_postings = Vec::new();
    let mut payout_postings = Vec::new();
    for (seller, amount) in &settlement.earnings {
        let receivable = AccountKey::new(AccountKind::SellerReceivable, seller.as_str(), currency);
        release_postings.push((escrow.clone(), amount.checked_neg()?));
        release_postings.push((receivable.clone(), *amount));
        payout_postings.push((receivable, amount.checked_neg()?));
        payout_postings.push((external.clone(), *amount));
    }
    for (_, kind, fee) in fee_parts(&settlement.fees) {
        if fee.is_zero() {
            continue;
        }
        let owner = match kind {
            AccountKind::ProcessorFee => STRIPE.to_owned(),
            _ => tenant.platform_id.as_str().to_owned(),
        };
        release_postings.push((escrow.clone(), fee.checked_neg()?));
        release_postings.push((AccountKey::new(kind, owner, currency), fee));
    }
    let refs = serde_json::to_string(outcome)
        .map_err(|e| BillingError::Corrupt(format!("provider ids: {e}")))?;

    conn.transaction(async |c| -> Result<Settled, BillingError> {
        let entry = |step: &str, postings: Vec<(AccountKey, Money)>| NewEntry {
            kind: if step == "payout" {
                EntryKind::Payout
            } else {
                EntryKind::Settlement
            },
            reference: Some(settlement.escrow_owner.clone()),
            idempotency_key: Some(format!("settle:{}:{step}", settlement.key)),
            fingerprint: Some(print.clone()),
            postings,
        };
        let charged = crate::ledger::post(c, tenant, entry("charge", charge_postings)).await?;
        let released = crate::ledger::post(c, tenant, entry("release", release_postings)).await?;
        let paid_out = if payout_postings.is_empty() {
            None
        } else {
            Some(crate::ledger::post(c, tenant, entry("payout", payout_postings)).await?)
        };
        let (charge_entry, release_entry, payout_entry) = match (charged, released, paid_out) {
            (Posted::New(a), Posted::New(b), Some(Posted::New(p))) => (a, b, Some(p)),
            (Posted::New(a), Posted::New(b), None) => (a, b, None),
            (Posted::Replayed(a), Posted::Replayed(b), p) => {
                let mut entries = vec![a, b];
                entries.extend(p.map(|p| p.entry_id().clone()));
                return Ok(Settled {
                    transactions: crate::transactions::for_entries(c, tenant, &entries).await?,
                    replayed: true,
                });
            }
            _ => {
                return Err(BillingError::Corrupt(format!(
                    "card settlement `{}` is half recorded",
                    settlement.key
                )));
            }
        };
        let with_contract = |t: NewTransaction| NewTransaction {
            contract_id: settlement.contract_id.clone(),
            description: settlement.description.clone(),
            ..t
        };
        let charges = settlement
            .charges
            .iter()
            .map(|(buyer, amount)| {
                let stripe = outcome.charges.iter().find(|c| &c.user_id == buyer);
                with_contract(NewTransaction {
                    buyer_user_id: Some(buyer.clone()),
                    provider_ref: stripe
                        .map(|s| s.charge.clone().unwrap_or_else(|| s.payment_intent.clone())),
                    ..NewTransaction::new(TransactionKind::Charge, STRIPE, *amount)
                })
            })
            .collect();
        let mut recorded = crate::transactions::record(c, tenant, &charge_entry, charges).await?;
        let releases = crate::settlement::release_transactions(settlement, STRIPE);
        recorded.extend(crate::transactions::record(c, tenant, &release_entry, releases).await?);
        if let Some(payout_entry) = payout_entry {
            let payouts = settlement
                .earnings
                .iter()
                .map(|(seller, amount)| {
                    with_contract(NewTransaction {
                        seller_user_id: Some(seller.clone()),
                        provider_ref: outcome
                            .transfers
                            .iter()
                            .find(|t| &t.user_id == seller)
                            .map(|t| t.transfer.clone()),
                        ..NewTransaction::new(TransactionKind::Payout, STRIPE, *amount)
                    })
                })
                .collect();
            recorded.extend(crate::transactions::record(c, tenant, &payout_entry, payouts).await?);
        }
        with_conn!(c, c => {
            diesel::update(provider_settlements::table.find(&pending.id))
                .set((
                    provider_settlements::status.eq(SUCCEEDED),
                    provider_settlements::provider_refs.eq(&refs),
                    provider_settlements::last_error.eq(None::<String>),
                    provider_settlements::updated_at.eq(Timestamp::now()),
                ))
                .execute(c)
                .await
        })
        .map_err(DbError::from)?;
        Ok(Settled {
            transactions: recorded,
            replayed: false,
        })
    })
    .await
}
