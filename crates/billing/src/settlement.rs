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

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::money::{Currency, Money};
use feria_kernel::{DbConn, DbError, Tenant, UserId, with_conn};

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
/// [`BillingError::InsufficientFunds`].
pub async fn settle(
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

    conn.transaction(async |c| -> Result<Settled, BillingError> {
        let charged = crate::ledger::post(
            c,
            tenant,
            NewEntry {
                kind: EntryKind::Settlement,
                reference: Some(settlement.escrow_owner.clone()),
                idempotency_key: Some(format!("settle:{}:charge", settlement.key)),
                fingerprint: Some(print.clone()),
                postings: charge_postings,
            },
        )
        .await?;
        let released = crate::ledger::post(
            c,
            tenant,
            NewEntry {
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
                let mut releases: Vec<NewTransaction> = settlement
                    .earnings
                    .iter()
                    .map(|(seller, amount)| {
                        with_contract(NewTransaction {
                            seller_user_id: Some(seller.clone()),
                            ..NewTransaction::new(TransactionKind::Earning, INTERNAL, *amount)
                        })
                    })
                    .collect();
                for (fee_kind, _, fee) in fee_parts(&settlement.fees) {
                    if !fee.is_zero() {
                        releases.push(with_contract(NewTransaction {
                            fee_kind: Some(fee_kind),
                            ..NewTransaction::new(TransactionKind::Fee, INTERNAL, fee)
                        }));
                    }
                }
                recorded.extend(
                    crate::transactions::record(c, tenant, &release_entry, releases).await?,
                );
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
    })
    .await
}

/// Refunds `amount` of a buyer's charge (all that is left when `None`) to the buyer's
/// credits, once per idempotency key.
pub async fn refund(
    conn: &mut DbConn,
    tenant: &Tenant,
    charge_id: &TransactionId,
    amount: Option<Money>,
    idempotency_key: Option<String>,
) -> Result<Settled, BillingError> {
    conn.transaction(async |c| -> Result<Settled, BillingError> {
        let charge = crate::transactions::get_row(c, tenant, charge_id).await?;
        if charge.kind != TransactionKind::Charge.as_str() {
            return Err(BillingError::NotRefundable("only charges are refunded"));
        }
        if charge.provider != INTERNAL {
            // The money went back through the card network, not to credits: refunds of
            // card charges go through the provider, which this does not do yet.
            return Err(BillingError::NotRefundable(
                "card charges are refunded at the payment provider",
            ));
        }
        if charge.status != "succeeded" {
            return Err(BillingError::NotRefundable("the charge did not succeed"));
        }
        let currency = crate::ledger::stored_currency(&charge.currency)?;
        let buyer = charge
            .buyer_user_id
            .clone()
            .ok_or(BillingError::NotRefundable("the charge has no buyer"))?;
        let remaining = charge.amount - charge.refunded_amount;
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
        let key = idempotency_key.map(|key| format!("refund:{key}"));
        let print = format!("refund:{charge_id}:{}", amount.minor());
        // A repeat of an earlier refund: answer before checking what is left.
        if let Some(key) = &key
            && let Some(entry) = crate::ledger::replayed(c, tenant, key, Some(&print)).await?
        {
            return Ok(Settled {
                transactions: crate::transactions::for_entries(c, tenant, &[entry]).await?,
                replayed: true,
            });
        }
        if remaining <= 0 {
            return Err(BillingError::NotRefundable("it is already fully refunded"));
        }
        if amount.minor() > remaining {
            return Err(BillingError::RefundTooLarge { remaining });
        }

        // Who funds the refund: whatever the settlement's release credited.
        let charge_key = crate::ledger::key_of(c, &charge.entry_id)
            .await?
            .ok_or(BillingError::NotRefundable("the charge was not settled through the ledger"))?;
        let release_key = charge_key
            .strip_suffix(":charge")
            .map(|prefix| format!("{prefix}:release"))
            .ok_or(BillingError::NotRefundable("the charge was not settled through the ledger"))?;
        let release_entry = crate::ledger::entry_by_key(c, tenant, &release_key)
            .await?
            .ok_or_else(|| BillingError::Corrupt(format!("settlement `{release_key}` has no release")))?;
        let sources = crate::ledger::credits_of(c, &release_entry).await?;
        let weights: Vec<u64> = sources.iter().map(|(_, a)| u64::try_from(*a).unwrap_or(0)).collect();
        let parts = amount.allocate(&weights)?;

        let mut postings = vec![(AccountKey::new(AccountKind::UserCredit, buyer.as_str(), currency), amount)];
        let mut reversals = Vec::new();
        for ((account, _), part) in sources.iter().zip(parts) {
            if part.is_zero() {
                continue;
            }
            postings.push((account.clone(), part.checked_neg()?));
            let reversal = match account.kind {
                AccountKind::SellerReceivable => NewTransaction {
                    seller_user_id: account.owner_id.parse().ok(),
                    ..NewTransaction::new(TransactionKind::EarningReversal, INTERNAL, part)
                },
                AccountKind::PlatformFee => NewTransaction {
                    fee_kind: Some(FeeKind::Platform),
                    ..NewTransaction::new(TransactionKind::FeeReversal, INTERNAL, part)
                },
                AccountKind::ServiceFee => NewTransaction {
                    fee_kind: Some(FeeKind::Service),
                    ..NewTransaction::new(TransactionKind::FeeReversal, INTERNAL, part)
                },
                AccountKind::ProcessorFee => NewTransaction {
                    fee_kind: Some(FeeKind::Processor),
                    ..NewTransaction::new(TransactionKind::FeeReversal, INTERNAL, part)
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
                reference: Some(charge_id.as_str().to_owned()),
                idempotency_key: key,
                fingerprint: Some(print),
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
        // Never more than the charge, even with concurrent refunds.
        let updated = with_conn!(c, c => {
            diesel::update(
                transactions::table
                    .find(charge_id)
                    .filter((transactions::refunded_amount + amount.minor()).le(transactions::amount)),
            )
            .set(transactions::refunded_amount.eq(transactions::refunded_amount + amount.minor()))
            .execute(c)
            .await
        })
        .map_err(DbError::from)?;
        if updated == 0 {
            return Err(BillingError::RefundTooLarge { remaining });
        }
        let mut new = vec![NewTransaction {
            buyer_user_id: Some(buyer),
            refund_of: Some(charge_id.clone()),
            ..NewTransaction::new(TransactionKind::Refund, INTERNAL, amount)
        }];
        new.extend(reversals);
        let contract_id = charge.contract_id.clone();
        let new = new
            .into_iter()
            .map(|t| NewTransaction { contract_id: contract_id.clone(), ..t })
            .collect();
        Ok(Settled {
            transactions: crate::transactions::record(c, tenant, &entry, new).await?,
            replayed: false,
        })
    })
    .await
}
