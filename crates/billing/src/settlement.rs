//! Settlement and refunds: the money side of contracts and purchases.
//!
//! [`settle`] charges each buyer's credits into escrow, then releases the escrow to each
//! seller's receivable and the fees to their accounts: two journal entries in one
//! database transaction, so either everything happened or nothing did. It is idempotent
//! by the settlement key: settling again with the same key and parameters returns the
//! first settlement's transactions and moves nothing; with other parameters it is refused.
//!
//! [`refund`] gives a buyer back part or all of a charge. The refund is funded by the
//! accounts that charge's settlement credited (sellers and fees), in proportion to what
//! each received (largest-remainder allocation, so the parts sum exactly to the refund);
//! a seller who no longer holds their share makes the refund fail as a whole.
//! [`refund_card`] refunds a card charge to the card through Stripe, reversing the
//! sellers' transfers for their shares first.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::money::{Currency, MAX_AMOUNT_MINOR, Money};
use feria_kernel::{Db, DbConn, DbError, Tenant, UserId, with_conn};
use rust_decimal::Decimal;

use crate::credits::INTERNAL;
use crate::error::BillingError;
use crate::ledger::{AccountKey, AccountKind, EntryKind, NewEntry, Posted};
use crate::schema::transactions;
use crate::transactions::{FeeKind, NewTransaction, Transaction, TransactionId, TransactionKind};

/// The fees of a settlement, in its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettlementFees {
    pub platform: Money,
    pub service: Money,
    pub processor: Money,
}

impl SettlementFees {
    pub fn zero(currency: Currency) -> SettlementFees {
        SettlementFees {
            platform: Money::zero(currency),
            service: Money::zero(currency),
            processor: Money::zero(currency),
        }
    }
}

/// A settlement to perform.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// At most once per key and tenant (e.g. `contract:<id>` or `purchase:<id>`).
    pub key: String,
    /// Recorded on every transaction (`contract_id`), when it is a contract.
    pub contract_id: Option<String>,
    /// Whose escrow holds the money in between (a contract or purchase id).
    pub escrow_owner: String,
    pub currency: Currency,
    /// What each buyer pays, from their credits.
    pub charges: Vec<(UserId, Money)>,
    /// What each seller receives.
    pub earnings: Vec<(UserId, Money)>,
    pub fees: SettlementFees,
    pub description: Option<String>,
}

/// What a settlement or refund recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub transactions: Vec<Transaction>,
    /// True when the key named an earlier, identical operation: nothing moved now.
    pub replayed: bool,
}

fn invalid(field: &'static str, message: impl Into<String>) -> BillingError {
    BillingError::Invalid {
        field,
        message: message.into(),
    }
}

pub(crate) fn fee_parts(fees: &SettlementFees) -> [(FeeKind, AccountKind, Money); 3] {
    [
        (FeeKind::Platform, AccountKind::PlatformFee, fees.platform),
        (FeeKind::Service, AccountKind::ServiceFee, fees.service),
        (
            FeeKind::Processor,
            AccountKind::ProcessorFee,
            fees.processor,
        ),
    ]
}

/// The release's transactions, whatever the provider: each seller's earning and each
/// fee that is not zero, on the settlement's contract.
pub(crate) fn release_transactions(
    settlement: &Settlement,
    provider: &'static str,
) -> Vec<NewTransaction> {
    let on_contract = |t: NewTransaction| NewTransaction {
        contract_id: settlement.contract_id.clone(),
        description: settlement.description.clone(),
        ..t
    };
    let earnings = settlement
        .earnings
        .iter()
        .map(|(seller, amount)| NewTransaction {
            seller_user_id: Some(seller.clone()),
            ..NewTransaction::new(TransactionKind::Earning, provider, *amount)
        });
    let fees = fee_parts(&settlement.fees)
        .into_iter()
        .filter(|(_, _, fee)| !fee.is_zero())
        .map(|(fee_kind, _, fee)| NewTransaction {
            fee_kind: Some(fee_kind),
            ..NewTransaction::new(TransactionKind::Fee, provider, fee)
        });
    earnings.chain(fees).map(on_contract).collect()
}

pub(crate) fn check(settlement: &Settlement) -> Result<(), BillingError> {
    if settlement.key.is_empty() || settlement.key.len() > 200 {
        return Err(invalid("key", "must be 1 to 200 characters"));
    }
    if settlement.charges.is_empty() {
        return Err(invalid(
            "charges",
            "a settlement charges at least one buyer",
        ));
    }
    let currency = settlement.currency;
    let mut charged = Money::zero(currency);
    for (_, amount) in &settlement.charges {
        if amount.currency() != currency || amount.minor() <= 0 {
            return Err(invalid(
                "charges",
                format!("each charge must be a positive {currency} amount"),
            ));
        }
        charged = charged.checked_add(*amount)?;
    }
    // One escrow account takes every charge: together they are at most what any balance
    // may hold, and so is each earning and fee (they add up to the same).
    if charged.minor() > MAX_AMOUNT_MINOR {
        return Err(invalid(
            "charges",
            format!(
                "must add up to at most {} {currency}",
                Money::from_minor(MAX_AMOUNT_MINOR, currency).to_major_string()
            ),
        ));
    }
    let mut paid = Money::zero(currency);
    for (_, amount) in &settlement.earnings {
        if amount.currency() != currency || amount.minor() <= 0 {
            return Err(invalid(
                "earnings",
                format!("each earning must be a positive {currency} amount"),
            ));
        }
        paid = paid.checked_add(*amount)?;
    }
    for (_, _, fee) in fee_parts(&settlement.fees) {
        if fee.currency() != currency || fee.is_negative() {
            return Err(invalid(
                "fees",
                format!("fees must be non-negative {currency} amounts"),
            ));
        }
        paid = paid.checked_add(fee)?;
    }
    if paid != charged {
        return Err(invalid(
            "earnings",
            format!(
                "earnings and fees ({}) must equal what buyers are charged ({})",
                paid.to_major_string(),
                charged.to_major_string()
            ),
        ));
    }
    Ok(())
}

/// A digest of everything a settlement moves, to recognise a repeat of the same one.
pub(crate) fn fingerprint(settlement: &Settlement) -> String {
    let mut text = format!(
        "{}|{}|{}|",
        settlement.escrow_owner,
        settlement.contract_id.as_deref().unwrap_or(""),
        settlement.currency.code()
    );
    for (user, amount) in &settlement.charges {
        text.push_str(&format!("c:{user}:{};", amount.minor()));
    }
    for (user, amount) in &settlement.earnings {
        text.push_str(&format!("e:{user}:{};", amount.minor()));
    }
    for (kind, _, fee) in fee_parts(&settlement.fees) {
        text.push_str(&format!("f:{}:{};", kind.as_str(), fee.minor()));
    }
    feria_kernel::secret::digest(&text)
}

/// Charges the buyers, holds the money in escrow and pays sellers and fees, all or
/// nothing, once per key. A buyer without enough credits fails the whole settlement with
/// [`BillingError::InsufficientFunds`]; a seller or fee account it would take past the
/// largest balance, with [`BillingError::BalanceLimitExceeded`]. Charges adding up to more
/// than [`MAX_AMOUNT_MINOR`] are refused before anything is written.
pub async fn settle(
    conn: &mut DbConn,
    tenant: &Tenant,
    settlement: Settlement,
) -> Result<Settled, BillingError> {
    conn.transaction(async |c| settle_in(c, tenant, settlement).await)
        .await
}

/// [`settle`] inside the caller's open transaction, without a savepoint of its own: when
/// it fails the caller must roll back (what it wrote is not undone here). For use cases
/// whose every error ends their transaction (a purchase, a contract's settle): it saves
/// them the savepoint's two statements.
pub async fn settle_in(
    conn: &mut DbConn,
    tenant: &Tenant,
    settlement: Settlement,
) -> Result<Settled, BillingError> {
    check(&settlement)?;
    let currency = settlement.currency;
    let print = fingerprint(&settlement);
    let escrow = AccountKey::new(
        AccountKind::Escrow,
        settlement.escrow_owner.clone(),
        currency,
    );

    let mut charge_postings = Vec::new();
    for (buyer, amount) in &settlement.charges {
        charge_postings.push((
            AccountKey::new(AccountKind::UserCredit, buyer.as_str(), currency),
            amount.checked_neg()?,
        ));
        charge_postings.push((escrow.clone(), *amount));
    }
    let mut release_postings = Vec::new();
    for (seller, amount) in &settlement.earnings {
        release_postings.push((escrow.clone(), amount.checked_neg()?));
        release_postings.push((
            AccountKey::new(AccountKind::SellerReceivable, seller.as_str(), currency),
            *amount,
        ));
    }
    for (_, kind, fee) in fee_parts(&settlement.fees) {
        if fee.is_zero() {
            continue;
        }
        let owner = match kind {
            AccountKind::ProcessorFee => INTERNAL.to_owned(),
            _ => tenant.platform_id.as_str().to_owned(),
        };
        release_postings.push((escrow.clone(), fee.checked_neg()?));
        release_postings.push((AccountKey::new(kind, owner, currency), fee));
    }

    let c = conn;
    let charged = crate::ledger::post_in(
        c,
        tenant,
        &NewEntry {
            kind: EntryKind::Settlement,
            reference: Some(settlement.escrow_owner.clone()),
            idempotency_key: Some(format!("settle:{}:charge", settlement.key)),
            fingerprint: Some(print.clone()),
            postings: charge_postings,
        },
    )
    .await?;
    let released = crate::ledger::post_in(
        c,
        tenant,
        &NewEntry {
            kind: EntryKind::Settlement,
            reference: Some(settlement.escrow_owner.clone()),
            idempotency_key: Some(format!("settle:{}:release", settlement.key)),
            fingerprint: Some(print.clone()),
            postings: release_postings,
        },
    )
    .await?;
    match (charged, released) {
        (Posted::New(charge_entry), Posted::New(release_entry)) => {
            let with_contract = |t: NewTransaction| NewTransaction {
                contract_id: settlement.contract_id.clone(),
                description: settlement.description.clone(),
                ..t
            };
            let charges = settlement
                .charges
                .iter()
                .map(|(buyer, amount)| {
                    with_contract(NewTransaction {
                        buyer_user_id: Some(buyer.clone()),
                        ..NewTransaction::new(TransactionKind::Charge, INTERNAL, *amount)
                    })
                })
                .collect();
            let mut recorded =
                crate::transactions::record(c, tenant, &charge_entry, charges).await?;
            let releases = release_transactions(&settlement, INTERNAL);
            recorded
                .extend(crate::transactions::record(c, tenant, &release_entry, releases).await?);
            Ok(Settled {
                transactions: recorded,
                replayed: false,
            })
        }
        (Posted::Replayed(charge_entry), Posted::Replayed(release_entry)) => Ok(Settled {
            transactions: crate::transactions::for_entries(
                c,
                tenant,
                &[charge_entry, release_entry],
            )
            .await?,
            replayed: true,
        }),
        _ => Err(BillingError::Corrupt(format!(
            "settlement `{}` is half recorded",
            settlement.key
        ))),
    }
}

/// Refunds a charge the way it was paid (admins only): a credits charge to the buyer's
/// credits ([`refund`]), a card charge to the card ([`refund_card`], which needs `stripe`,
/// the client of the tenant's mode). `amount` is in major units of the charge's
/// currency; `None` refunds all that is left. `charge_id` is taken as the client sent
/// it: one that cannot be an id is not found, after the admin check.
pub async fn refund_charge(
    db: &Db,
    stripe: Option<&crate::stripe::StripeClient>,
    actor: &crate::Actor,
    tenant: &Tenant,
    charge_id: &str,
    amount: Option<Decimal>,
    idempotency_key: Option<String>,
) -> Result<Settled, BillingError> {
    actor.require_admin()?;
    let id: TransactionId = charge_id
        .parse()
        .map_err(|_| BillingError::TransactionNotFound)?;
    let mut conn = db.conn().await?;
    let charge = crate::transactions::get(&mut conn, tenant, &id).await?;
    let amount = match amount {
        Some(amount) => {
            let currency: Currency = charge.currency.parse()?;
            Some(Money::from_decimal_exact(amount, currency)?)
        }
        None => None,
    };
    if charge.provider != crate::card_settlement::STRIPE {
        return refund(&mut conn, tenant, &id, amount, idempotency_key).await;
    }
    // Back to the card: Stripe refunds the buyer after the sellers' transfers are
    // reversed; no connection is held while Stripe answers.
    drop(conn);
    let stripe = stripe.ok_or(BillingError::ProviderNotConfigured(tenant.mode))?;
    let mut conn = db.conn().await?;
    refund_card(&mut conn, stripe, tenant, &id, amount, idempotency_key).await
}

/// Refunds `amount` of a buyer's credits charge (all that is left when `None`) to the
/// buyer's credits, once per idempotency key. Card charges go through [`refund_card`].
pub async fn refund(
    conn: &mut DbConn,
    tenant: &Tenant,
    charge_id: &TransactionId,
    amount: Option<Money>,
    idempotency_key: Option<String>,
) -> Result<Settled, BillingError> {
    conn.transaction(async |c| -> Result<Settled, BillingError> {
        let plan = match plan_refund(c, tenant, charge_id, amount, idempotency_key).await? {
            Planned::Replayed(settled) => return Ok(settled),
            Planned::New(plan) => plan,
        };
        if plan.provider != INTERNAL {
            // The money went out through the card network, not from credits.
            return Err(BillingError::NotRefundable(
                "card charges are refunded through the payment provider",
            ));
        }
        record_refund(c, tenant, &plan, &Funding::Credits).await
    })
    .await
}

/// Refunds `amount` of a buyer's card charge (all that is left when `None`) to the card,
/// once per idempotency key: each seller's share is taken back from their connected
/// account by reversing the transfer that paid them, then Stripe refunds the buyer, then
/// one database transaction records it. No transaction is held across Stripe's calls;
/// they carry idempotency keys derived from the refund's key (or, without one, from the
/// charge's refunded amount so far), so a retry after a crash replays them instead of
/// moving money twice.
pub async fn refund_card(
    conn: &mut DbConn,
    stripe: &crate::stripe::StripeClient,
    tenant: &Tenant,
    charge_id: &TransactionId,
    amount: Option<Money>,
    idempotency_key: Option<String>,
) -> Result<Settled, BillingError> {
    use crate::stripe::{CreateRefund, CreateTransferReversal, IdempotencyKey};

    let plan = match plan_refund(conn, tenant, charge_id, amount, idempotency_key).await? {
        Planned::Replayed(settled) => return Ok(settled),
        Planned::New(plan) => plan,
    };
    if plan.provider != crate::card_settlement::STRIPE {
        return Err(BillingError::NotRefundable(
            "credit charges are refunded to credits",
        ));
    }
    let stripe_key = |step: &str| {
        IdempotencyKey::new(format!(
            "feria:{}:{}:{}:{step}",
            tenant.platform_id, tenant.mode, plan.key
        ))
        .map_err(BillingError::Provider)
    };
    // The sellers' shares first: the refund is never paid before the money is back.
    let mut reversals = Vec::new();
    for (account, part) in &plan.sources {
        if account.kind != AccountKind::SellerReceivable {
            continue;
        }
        let transfer = payout_transfer(conn, tenant, &plan, &account.owner_id).await?;
        let reversal = stripe
            .create_transfer_reversal(
                &CreateTransferReversal {
                    transfer,
                    amount: *part,
                    metadata: Default::default(),
                },
                &stripe_key(&format!("reversal:{}", account.owner_id))?,
            )
            .await
            .map_err(BillingError::Provider)?;
        reversals.push((account.owner_id.clone(), reversal.id));
    }
    let payment_intent = match plan.provider_ref.as_deref() {
        Some(id) if id.starts_with("pi_") => id.to_owned(),
        Some(id) => stripe
            .retrieve_charge(id)
            .await
            .map_err(BillingError::Provider)?
            .payment_intent
            .ok_or(BillingError::NotRefundable(
                "the card charge has no payment intent",
            ))?,
        None => {
            return Err(BillingError::NotRefundable(
                "the card charge has no reference at the provider",
            ));
        }
    };
    let refund = stripe
        .create_refund(
            &CreateRefund {
                payment_intent,
                amount: Some(plan.amount),
                reason: None,
                metadata: Default::default(),
            },
            &stripe_key("refund")?,
        )
        .await
        .map_err(BillingError::Provider)?;
    let funding = Funding::Card {
        refund: refund.id,
        reversals,
    };
    conn.transaction(async |c| record_refund(c, tenant, &plan, &funding).await)
        .await
}

/// A refund checked and allocated, not yet recorded.
struct RefundPlan {
    charge_id: TransactionId,
    provider: String,
    provider_ref: Option<String>,
    contract_id: Option<String>,
    buyer: UserId,
    currency: Currency,
    amount: Money,
    remaining: i64,
    /// The ledger key of the refund (`refund:<key>`), and its fingerprint.
    key: String,
    print: String,
    /// The settlement's ledger key prefix (`settle:<key>`).
    settlement_key: String,
    /// Who gives back what: the accounts the settlement's release credited.
    sources: Vec<(AccountKey, Money)>,
}

enum Planned {
    New(Box<RefundPlan>),
    Replayed(Settled),
}

/// Where the refund goes: back to credits, or to the card (with Stripe's ids).
enum Funding {
    Credits,
    Card {
        refund: String,
        reversals: Vec<(String, String)>,
    },
}

/// Checks a refund of `amount` of a charge and allocates it over the accounts that
/// charge's settlement credited, in proportion to what each received.
async fn plan_refund(
    c: &mut DbConn,
    tenant: &Tenant,
    charge_id: &TransactionId,
    amount: Option<Money>,
    idempotency_key: Option<String>,
) -> Result<Planned, BillingError> {
    let charge = crate::transactions::get_row(c, tenant, charge_id).await?;
    if charge.kind != TransactionKind::Charge.as_str() {
        return Err(BillingError::NotRefundable("only charges are refunded"));
    }
    if charge.status != "succeeded" {
        return Err(BillingError::NotRefundable("the charge did not succeed"));
    }
    let currency = crate::ledger::stored_currency(&charge.currency)?;
    let buyer = charge
        .buyer_user_id
        .clone()
        .ok_or(BillingError::NotRefundable("the charge has no buyer"))?;
    let remaining = charge
        .amount
        .checked_sub(charge.refunded_amount)
        .ok_or_else(|| BillingError::Corrupt(format!("charge {charge_id}: refunded amount")))?;
    let amount = match amount {
        Some(amount) if amount.currency() != currency => {
            return Err(invalid("currency", format!("the charge is in {currency}")));
        }
        Some(amount) if amount.minor() <= 0 => {
            return Err(invalid("amount", "must be greater than zero"));
        }
        Some(amount) => amount,
        None => Money::from_minor(remaining, currency),
    };
    let print = format!("refund:{charge_id}:{}", amount.minor());
    // Without a key, the refund is named by the state it starts from: a retry of the same
    // request after a crash finds the same name (and Stripe the same keys); a new refund
    // after this one committed gets a new one.
    let key = match idempotency_key {
        Some(key) => format!("refund:{key}"),
        None => format!(
            "refund:{charge_id}:{}:{}",
            charge.refunded_amount,
            amount.minor()
        ),
    };
    // A repeat of an earlier refund: answer before checking what is left.
    if let Some(entry) = crate::ledger::replayed(c, tenant, &key, Some(&print)).await? {
        return Ok(Planned::Replayed(Settled {
            transactions: crate::transactions::for_entries(c, tenant, &[entry]).await?,
            replayed: true,
        }));
    }
    if remaining <= 0 {
        return Err(BillingError::NotRefundable("it is already fully refunded"));
    }
    if amount.minor() > remaining {
        return Err(BillingError::RefundTooLarge { remaining });
    }

    let not_settled =
        || BillingError::NotRefundable("the charge was not settled through the ledger");
    let charge_key = crate::ledger::key_of(c, &charge.entry_id)
        .await?
        .ok_or_else(not_settled)?;
    let settlement_key = charge_key
        .strip_suffix(":charge")
        .ok_or_else(not_settled)?
        .to_owned();
    let release_key = format!("{settlement_key}:release");
    let release_entry = crate::ledger::entry_by_key(c, tenant, &release_key)
        .await?
        .ok_or_else(|| {
            BillingError::Corrupt(format!("settlement `{release_key}` has no release"))
        })?;
    let credited = crate::ledger::credits_of(c, &release_entry).await?;
    let weights: Vec<u64> = credited
        .iter()
        .map(|(_, a)| u64::try_from(*a).unwrap_or(0))
        .collect();
    let parts = amount.allocate(&weights)?;
    let sources = credited
        .into_iter()
        .zip(parts)
        .filter(|(_, part)| !part.is_zero())
        .map(|((account, _), part)| (account, part))
        .collect();
    Ok(Planned::New(Box::new(RefundPlan {
        charge_id: charge_id.clone(),
        provider: charge.provider.clone(),
        provider_ref: charge.provider_ref.clone(),
        contract_id: charge.contract_id.clone(),
        buyer,
        currency,
        amount,
        remaining,
        key,
        print,
        settlement_key,
        sources,
    })))
}

/// The transfer that paid `seller` out of the refund's settlement (`tr_...`).
async fn payout_transfer(
    c: &mut DbConn,
    tenant: &Tenant,
    plan: &RefundPlan,
    seller: &str,
) -> Result<String, BillingError> {
    let payout_key = format!("{}:payout", plan.settlement_key);
    let missing = || BillingError::NotRefundable("the seller was not paid out by transfer");
    let entry = crate::ledger::entry_by_key(c, tenant, &payout_key)
        .await?
        .ok_or_else(missing)?;
    crate::transactions::for_entries(c, tenant, &[entry])
        .await?
        .into_iter()
        .find(|t| {
            t.kind == TransactionKind::Payout
                && t.seller_user_id
                    .as_ref()
                    .is_some_and(|s| s.as_str() == seller)
        })
        .and_then(|t| t.stripe_charge_id)
        .ok_or_else(missing)
}

/// Writes a planned refund: its journal entries (for a card, first the reversals that
/// brought the sellers' shares back from the provider), the charge's refunded amount
/// (never beyond the charge, even against concurrent refunds) and its transactions.
async fn record_refund(
    c: &mut DbConn,
    tenant: &Tenant,
    plan: &RefundPlan,
    funding: &Funding,
) -> Result<Settled, BillingError> {
    let currency = plan.currency;
    let external = AccountKey::new(
        AccountKind::External,
        crate::card_settlement::STRIPE,
        currency,
    );
    let (provider, destination) = match funding {
        Funding::Credits => (
            INTERNAL,
            AccountKey::new(AccountKind::UserCredit, plan.buyer.as_str(), currency),
        ),
        Funding::Card { .. } => (crate::card_settlement::STRIPE, external.clone()),
    };
    if let Funding::Card { reversals, .. } = funding
        && !reversals.is_empty()
    {
        // The sellers' shares came back from their connected accounts.
        let mut postings = Vec::new();
        for (account, part) in &plan.sources {
            if account.kind == AccountKind::SellerReceivable {
                postings.push((external.clone(), part.checked_neg()?));
                postings.push((account.clone(), *part));
            }
        }
        crate::ledger::post(
            c,
            tenant,
            NewEntry {
                kind: EntryKind::Refund,
                reference: Some(plan.charge_id.as_str().to_owned()),
                idempotency_key: Some(format!("{}:reversal", plan.key)),
                fingerprint: Some(plan.print.clone()),
                postings,
            },
        )
        .await?;
    }
    let mut postings = vec![(destination, plan.amount)];
    let mut reversals = Vec::new();
    for (account, part) in &plan.sources {
        postings.push((account.clone(), part.checked_neg()?));
        let reversal = match account.kind {
            AccountKind::SellerReceivable => NewTransaction {
                seller_user_id: account.owner_id.parse().ok(),
                provider_ref: match funding {
                    Funding::Card { reversals, .. } => reversals
                        .iter()
                        .find(|(seller, _)| *seller == account.owner_id)
                        .map(|(_, id)| id.clone()),
                    Funding::Credits => None,
                },
                ..NewTransaction::new(TransactionKind::EarningReversal, provider, *part)
            },
            AccountKind::PlatformFee => NewTransaction {
                fee_kind: Some(FeeKind::Platform),
                ..NewTransaction::new(TransactionKind::FeeReversal, provider, *part)
            },
            AccountKind::ServiceFee => NewTransaction {
                fee_kind: Some(FeeKind::Service),
                ..NewTransaction::new(TransactionKind::FeeReversal, provider, *part)
            },
            AccountKind::ProcessorFee => NewTransaction {
                fee_kind: Some(FeeKind::Processor),
                ..NewTransaction::new(TransactionKind::FeeReversal, provider, *part)
            },
            _ => continue,
        };
        reversals.push(reversal);
    }
    let posted = crate::ledger::post(
        c,
        tenant,
        NewEntry {
            kind: EntryKind::Refund,
            reference: Some(plan.charge_id.as_str().to_owned()),
            idempotency_key: Some(plan.key.clone()),
            fingerprint: Some(plan.print.clone()),
            postings,
        },
    )
    .await?;
    let entry = match posted {
        Posted::New(entry) => entry,
        Posted::Replayed(entry) => {
            return Ok(Settled {
                transactions: crate::transactions::for_entries(c, tenant, &[entry]).await?,
                replayed: true,
            });
        }
    };
    // refunded + amount <= charged, compared as refunded <= charged - amount: both are
    // non-negative, so neither side can overflow, and the sum is only written when it
    // stays within the charge.
    let updated = with_conn!(c, c => {
        diesel::update(
            transactions::table
                .find(&plan.charge_id)
                .filter(transactions::refunded_amount.le(transactions::amount - plan.amount.minor())),
        )
        .set(transactions::refunded_amount.eq(transactions::refunded_amount + plan.amount.minor()))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if updated == 0 {
        return Err(BillingError::RefundTooLarge {
            remaining: plan.remaining,
        });
    }
    let mut new = vec![NewTransaction {
        buyer_user_id: Some(plan.buyer.clone()),
        refund_of: Some(plan.charge_id.clone()),
        provider_ref: match funding {
            Funding::Card { refund, .. } => Some(refund.clone()),
            Funding::Credits => None,
        },
        ..NewTransaction::new(TransactionKind::Refund, provider, plan.amount)
    }];
    new.extend(reversals);
    let new = new
        .into_iter()
        .map(|t| NewTransaction {
            contract_id: plan.contract_id.clone(),
            ..t
        })
        .collect();
    Ok(Settled {
        transactions: crate::transactions::record(c, tenant, &entry, new).await?,
        replayed: false,
    })
}
