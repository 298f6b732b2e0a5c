//! Prepaid credits: the `internal` payment provider. Admins top a user's credits up;
//! charges debit them (see [`crate::settlement`]); they never go below zero.

use feria_kernel::money::{Currency, MAX_AMOUNT_MINOR, Money};
use feria_kernel::{DbConn, Tenant, UserId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::BillingError;
use crate::ledger::{AccountKey, AccountKind, EntryKind, NewEntry, Posted};
use crate::transactions::{NewTransaction, Transaction, TransactionKind};

/// The provider name of prepaid credits.
pub const INTERNAL: &str = "internal";

/// One balance of a user's credits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreditBalance {
    /// Lower-case ISO 4217 code.
    pub currency: String,
    /// In major units.
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub amount: Decimal,
}

impl From<Money> for CreditBalance {
    fn from(money: Money) -> Self {
        CreditBalance {
            currency: money.currency().code().to_lowercase(),
            amount: money.to_decimal(),
        }
    }
}

/// A user's credits, one balance per currency they ever held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Credits {
    pub user_id: UserId,
    pub balances: Vec<CreditBalance>,
}

/// A user's credits.
pub async fn of_user(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
) -> Result<Credits, BillingError> {
    let balances =
        crate::ledger::balances(conn, tenant, AccountKind::UserCredit, user.as_str()).await?;
    Ok(Credits {
        user_id: user.clone(),
        balances: balances.into_iter().map(CreditBalance::from).collect(),
    })
}

/// The balance of a user's credits in one currency.
pub async fn balance(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
    currency: Currency,
) -> Result<Money, BillingError> {
    crate::ledger::balance(
        conn,
        tenant,
        &AccountKey::new(AccountKind::UserCredit, user.as_str(), currency),
    )
    .await
}

/// The outcome of a top-up.
#[derive(Debug, Clone, PartialEq)]
pub struct TopUp {
    pub transaction: Transaction,
    /// True when the idempotency key named an earlier, identical top-up: nothing moved.
    pub replayed: bool,
}

/// The user's credits after a top-up, and the top-up's transaction.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopUpResult {
    pub credits: Credits,
    pub transaction: Transaction,
}

/// The user a path names (`raw`, as the client sent it): an id that cannot be a user's is
/// not found, as a user of another platform or mode is.
fn user_id(raw: &str) -> Result<UserId, BillingError> {
    Ok(raw.parse().map_err(|_| feria_users::UserError::NotFound)?)
}

/// A user's credits, read by an admin (403 first, whatever the id).
pub async fn of_user_as(
    conn: &mut DbConn,
    actor: &crate::Actor,
    tenant: &Tenant,
    user: &str,
) -> Result<Credits, BillingError> {
    actor.require_admin()?;
    let user = user_id(user)?;
    feria_users::user::get(conn, tenant, &user).await?;
    of_user(conn, tenant, &user).await
}

/// An admin's top-up (403 first, whatever the id) of `amount`, in major units of
/// `currency`, to a user, once per idempotency key; the user's credits after it.
pub async fn top_up_as(
    conn: &mut DbConn,
    actor: &crate::Actor,
    tenant: &Tenant,
    user: &str,
    amount: Decimal,
    currency: Currency,
    idempotency_key: Option<String>,
) -> Result<TopUpResult, BillingError> {
    actor.require_admin()?;
    let user = user_id(user)?;
    let amount = Money::from_decimal_exact(amount, currency)?;
    feria_users::user::get(conn, tenant, &user).await?;
    let topped = top_up(conn, tenant, &user, amount, idempotency_key).await?;
    Ok(TopUpResult {
        credits: of_user(conn, tenant, &user).await?,
        transaction: topped.transaction,
    })
}

/// Adds credits to a user: money enters from the outside world (`external/internal`)
/// into the user's credit account, with a `credit_top_up` transaction, atomically.
/// The caller checks that the user exists in the tenant. The amount is at most
/// [`MAX_AMOUNT_MINOR`] (422 otherwise), and so is the balance it makes
/// ([`BillingError::BalanceLimitExceeded`] otherwise): nothing is added then.
pub async fn top_up(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
    amount: Money,
    idempotency_key: Option<String>,
) -> Result<TopUp, BillingError> {
    if amount.minor() <= 0 {
        return Err(BillingError::Invalid {
            field: "amount",
            message: "must be greater than zero".into(),
        });
    }
    let currency = amount.currency();
    if amount.minor() > MAX_AMOUNT_MINOR {
        return Err(BillingError::Invalid {
            field: "amount",
            message: format!(
                "must be at most {}",
                Money::from_minor(MAX_AMOUNT_MINOR, currency).to_major_string()
            ),
        });
    }
    let entry = NewEntry {
        kind: EntryKind::CreditTopUp,
        reference: Some(user.as_str().to_owned()),
        fingerprint: idempotency_key
            .as_ref()
            .map(|_| format!("top_up:{user}:{}:{}", amount.minor(), currency.code())),
        idempotency_key: idempotency_key.map(|key| format!("top_up:{key}")),
        postings: vec![
            (
                AccountKey::new(AccountKind::External, INTERNAL, currency),
                amount.checked_neg()?,
            ),
            (
                AccountKey::new(AccountKind::UserCredit, user.as_str(), currency),
                amount,
            ),
        ],
    };
    conn.transaction(async |c| -> Result<TopUp, BillingError> {
        match crate::ledger::post(c, tenant, entry).await? {
            Posted::New(entry_id) => {
                let mut recorded = crate::transactions::record(
                    c,
                    tenant,
                    &entry_id,
                    vec![NewTransaction {
                        buyer_user_id: Some(user.clone()),
                        description: Some("credit top-up".into()),
                        ..NewTransaction::new(TransactionKind::CreditTopUp, INTERNAL, amount)
                    }],
                )
                .await?;
                let transaction = recorded.pop().ok_or_else(|| {
                    BillingError::Corrupt("a top-up without its transaction".into())
                })?;
                feria_events::record(
                    c,
                    tenant,
                    feria_events::EventType::CreditsToppedUp,
                    &transaction,
                )
                .await?;
                Ok(TopUp {
                    transaction,
                    replayed: false,
                })
            }
            Posted::Replayed(entry_id) => {
                let mut found = crate::transactions::for_entries(c, tenant, &[entry_id]).await?;
                let transaction = found.pop().ok_or_else(|| {
                    BillingError::Corrupt("a top-up without its transaction".into())
                })?;
                Ok(TopUp {
                    transaction,
                    replayed: true,
                })
            }
        }
    })
    .await
}
