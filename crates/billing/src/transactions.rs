//! Transactions: the seed's Transaction object, one row per party's side of a movement
//! (a buyer's charge, a seller's earning, a fee, a refund and its reversals, a payout, a
//! credit top-up), each pointing at the journal entry that moved the money. Reads, lists,
//! per-user totals and platform metrics.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::money::{Currency, Money};
use feria_kernel::{
    DbConn, DbError, Mode, Page, PageRequest, PlatformId, Tenant, Timestamp, UserId, with_conn,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::BillingError;
use crate::ledger::{EntryId, stored_currency};
use crate::schema::transactions;

feria_kernel::define_id!(
    /// A transaction.
    TransactionId,
    "tran"
);

/// What a transaction records.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// A buyer paid (`buyer_user_id`).
    Charge,
    /// A seller earned their share of a charge (`seller_user_id`).
    Earning,
    /// A fee was collected (`feeKind`: platform, service or processor).
    Fee,
    /// A buyer got money back (`refundOf` names the charge).
    Refund,
    /// A seller's share of a refund, taken back from their earnings.
    EarningReversal,
    /// A fee's share of a refund, given back.
    FeeReversal,
    /// Money left to a seller's account at the provider.
    Payout,
    /// Prepaid credits were added to a user.
    CreditTopUp,
}

impl TransactionKind {
    pub const ALL: [TransactionKind; 8] = [
        TransactionKind::Charge,
        TransactionKind::Earning,
        TransactionKind::Fee,
        TransactionKind::Refund,
        TransactionKind::EarningReversal,
        TransactionKind::FeeReversal,
        TransactionKind::Payout,
        TransactionKind::CreditTopUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Charge => "charge",
            TransactionKind::Earning => "earning",
            TransactionKind::Fee => "fee",
            TransactionKind::Refund => "refund",
            TransactionKind::EarningReversal => "earning_reversal",
            TransactionKind::FeeReversal => "fee_reversal",
            TransactionKind::Payout => "payout",
            TransactionKind::CreditTopUp => "credit_top_up",
        }
    }

    fn parse(raw: &str) -> Result<TransactionKind, BillingError> {
        TransactionKind::ALL
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| BillingError::Corrupt(format!("unknown transaction kind `{raw}`")))
    }
}

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    Succeeded,
    Pending,
    Failed,
}

impl TransactionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionStatus::Succeeded => "succeeded",
            TransactionStatus::Pending => "pending",
            TransactionStatus::Failed => "failed",
        }
    }

    fn parse(raw: &str) -> Result<TransactionStatus, BillingError> {
        [
            TransactionStatus::Succeeded,
            TransactionStatus::Pending,
            TransactionStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
        .ok_or_else(|| BillingError::Corrupt(format!("unknown transaction status `{raw}`")))
    }
}

/// Which fee a fee transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeeKind {
    Platform,
    Service,
    Processor,
}

impl FeeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeeKind::Platform => "platform",
            FeeKind::Service => "service",
            FeeKind::Processor => "processor",
        }
    }

    fn parse(raw: &str) -> Result<FeeKind, BillingError> {
        [FeeKind::Platform, FeeKind::Service, FeeKind::Processor]
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| BillingError::Corrupt(format!("unknown fee kind `{raw}`")))
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = transactions)]
pub(crate) struct TransactionRow {
    pub id: TransactionId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub kind: String,
    pub status: String,
    pub provider: String,
    pub amount: i64,
    pub currency: String,
    pub contract_id: Option<String>,
    pub buyer_user_id: Option<UserId>,
    pub seller_user_id: Option<UserId>,
    pub fee_kind: Option<String>,
    pub provider_ref: Option<String>,
    pub entry_id: EntryId,
    pub refund_of: Option<TransactionId>,
    pub refunded_amount: i64,
    pub description: Option<String>,
    pub created_at: Timestamp,
}

/// The fields of a transaction to record (the rest is filled in).
#[derive(Debug, Clone)]
pub(crate) struct NewTransaction {
    pub kind: TransactionKind,
    pub provider: &'static str,
    pub amount: Money,
    pub contract_id: Option<String>,
    pub buyer_user_id: Option<UserId>,
    pub seller_user_id: Option<UserId>,
    pub fee_kind: Option<FeeKind>,
    pub provider_ref: Option<String>,
    pub refund_of: Option<TransactionId>,
    pub description: Option<String>,
}

impl NewTransaction {
    pub(crate) fn new(
        kind: TransactionKind,
        provider: &'static str,
        amount: Money,
    ) -> NewTransaction {
        NewTransaction {
            kind,
            provider,
            amount,
            contract_id: None,
            buyer_user_id: None,
            seller_user_id: None,
            fee_kind: None,
            provider_ref: None,
            refund_of: None,
            description: None,
        }
    }
}

/// Records transactions for a journal entry (inside the caller's database transaction).
pub(crate) async fn record(
    conn: &mut DbConn,
    tenant: &Tenant,
    entry_id: &EntryId,
    new: Vec<NewTransaction>,
) -> Result<Vec<Transaction>, BillingError> {
    let now = Timestamp::now();
    let rows: Vec<TransactionRow> = new
        .into_iter()
        .map(|t| TransactionRow {
            id: TransactionId::new(),
            platform_id: tenant.platform_id.clone(),
            mode: tenant.mode,
            kind: t.kind.as_str().to_owned(),
            status: TransactionStatus::Succeeded.as_str().to_owned(),
            provider: t.provider.to_owned(),
            amount: t.amount.minor(),
            currency: t.amount.currency().code().to_owned(),
            contract_id: t.contract_id,
            buyer_user_id: t.buyer_user_id,
            seller_user_id: t.seller_user_id,
            fee_kind: t.fee_kind.map(|k| k.as_str().to_owned()),
            provider_ref: t.provider_ref,
            entry_id: entry_id.clone(),
            refund_of: t.refund_of,
            refunded_amount: 0,
            description: t.description,
            created_at: now,
        })
        .collect();
    // One statement on PostgreSQL; one per row on SQLite (diesel-async cannot send it a
    // multi-row INSERT, and in-process statements cost microseconds).
    with_conn!(conn,
        sqlite: c => async {
            for row in &rows {
                diesel::insert_into(transactions::table).values(row).execute(c).await?;
            }
            Ok::<_, diesel::result::Error>(())
        }
        .await,
        postgres: c => diesel::insert_into(transactions::table)
            .values(&rows)
            .execute(c)
            .await
            .map(|_| ()),
    )
    .map_err(DbError::from)?;
    let recorded = in_canonical_order(rows)?;
    let events = recorded
        .iter()
        .map(|t| feria_events::NewEvent::new(feria_events::EventType::TransactionCreated, t))
        .collect::<Result<Vec<_>, _>>()?;
    feria_events::record_all(conn, tenant, events).await?;
    Ok(recorded)
}

/// Transactions of one operation in a stable order, the same when first written and
/// when read back for a replay: by kind (charges before earnings before fees; refunds
/// before reversals), then by id.
fn in_canonical_order(rows: Vec<TransactionRow>) -> Result<Vec<Transaction>, BillingError> {
    let mut transactions = rows
        .into_iter()
        .map(Transaction::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    transactions.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| a.id.cmp(&b.id)));
    Ok(transactions)
}

/// The transactions of some entries, in canonical order.
pub(crate) async fn for_entries(
    conn: &mut DbConn,
    tenant: &Tenant,
    entries: &[EntryId],
) -> Result<Vec<Transaction>, BillingError> {
    let rows: Vec<TransactionRow> = with_conn!(conn, c => {
        transactions::table
            .filter(transactions::platform_id.eq(&tenant.platform_id))
            .filter(transactions::mode.eq(tenant.mode))
            .filter(transactions::entry_id.eq_any(entries))
            .select(TransactionRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    in_canonical_order(rows)
}

/// A transaction as the API shows it: the seed's fields, plus what makes it readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Transaction {
    pub id: TransactionId,
    pub platform_id: PlatformId,
    pub contract_id: Option<String>,
    pub buyer_user_id: Option<UserId>,
    pub seller_user_id: Option<UserId>,
    /// In major units of `currency` (`150.25`).
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub amount: Decimal,
    /// Lower-case ISO 4217 code, as the seed shows it (`usd`).
    pub currency: String,
    /// The provider's charge (or refund, transfer) id, for Stripe payments.
    #[serde(rename = "stripeChargeId")]
    pub stripe_charge_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: TransactionKind,
    pub status: TransactionStatus,
    /// `internal` (prepaid credits) or `stripe`.
    pub provider: String,
    #[serde(rename = "feeKind")]
    pub fee_kind: Option<FeeKind>,
    /// For refunds: the charge refunded.
    #[serde(rename = "refundOf")]
    pub refund_of: Option<TransactionId>,
    /// For charges: how much has been refunded so far, in major units.
    #[serde(
        rename = "refundedAmount",
        with = "feria_kernel::money::decimal_number"
    )]
    #[schema(value_type = f64)]
    pub refunded_amount: Decimal,
    pub description: Option<String>,
    pub created: Timestamp,
}

impl TryFrom<TransactionRow> for Transaction {
    type Error = BillingError;
    fn try_from(row: TransactionRow) -> Result<Self, BillingError> {
        let currency = stored_currency(&row.currency)?;
        Ok(Transaction {
            id: row.id,
            platform_id: row.platform_id,
            contract_id: row.contract_id,
            buyer_user_id: row.buyer_user_id,
            seller_user_id: row.seller_user_id,
            amount: Money::from_minor(row.amount, currency).to_decimal(),
            currency: currency.code().to_lowercase(),
            stripe_charge_id: row.provider_ref,
            kind: TransactionKind::parse(&row.kind)?,
            status: TransactionStatus::parse(&row.status)?,
            provider: row.provider,
            fee_kind: row.fee_kind.as_deref().map(FeeKind::parse).transpose()?,
            refund_of: row.refund_of,
            refunded_amount: Money::from_minor(row.refunded_amount, currency).to_decimal(),
            description: row.description,
            created: row.created_at,
        })
    }
}

pub(crate) async fn get_row(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &TransactionId,
) -> Result<TransactionRow, BillingError> {
    with_conn!(conn, c => {
        transactions::table
            .find(id)
            .filter(transactions::platform_id.eq(&tenant.platform_id))
            .filter(transactions::mode.eq(tenant.mode))
            .select(TransactionRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?
    .ok_or(BillingError::TransactionNotFound)
}

/// One transaction of the tenant.
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &TransactionId,
) -> Result<Transaction, BillingError> {
    get_row(conn, tenant, id).await?.try_into()
}

/// One transaction as `actor` may see it: admins any of the tenant's, a user those they
/// are the buyer or seller of (others are not found, as if they did not exist).
pub async fn get_as(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &crate::Actor,
    id: &TransactionId,
) -> Result<Transaction, BillingError> {
    let transaction = get(conn, tenant, id).await?;
    let party = actor.is(transaction.buyer_user_id.as_ref())
        || actor.is(transaction.seller_user_id.as_ref());
    if actor.is_admin || party {
        Ok(transaction)
    } else {
        Err(BillingError::TransactionNotFound)
    }
}

/// Filters of `GET /transactions`; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    /// Buyer or seller.
    pub user_id: Option<UserId>,
    pub contract_id: Option<String>,
    pub kind: Option<TransactionKind>,
    pub status: Option<TransactionStatus>,
    /// Inclusive.
    pub from: Option<Timestamp>,
    /// Exclusive.
    pub to: Option<Timestamp>,
}

/// The tenant's transactions, newest first.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    filter: &TransactionFilter,
    page: PageRequest,
) -> Result<Page<Transaction>, BillingError> {
    macro_rules! filtered {
        () => {{
            let mut query = transactions::table
                .filter(transactions::platform_id.eq(&tenant.platform_id))
                .filter(transactions::mode.eq(tenant.mode))
                .into_boxed();
            if let Some(user) = &filter.user_id {
                query = query.filter(
                    transactions::buyer_user_id
                        .eq(user)
                        .or(transactions::seller_user_id.eq(user)),
                );
            }
            if let Some(contract) = &filter.contract_id {
                query = query.filter(transactions::contract_id.eq(contract));
            }
            if let Some(kind) = filter.kind {
                query = query.filter(transactions::kind.eq(kind.as_str()));
            }
            if let Some(status) = filter.status {
                query = query.filter(transactions::status.eq(status.as_str()));
            }
            if let Some(from) = filter.from {
                query = query.filter(transactions::created_at.ge(from));
            }
            if let Some(to) = filter.to {
                query = query.filter(transactions::created_at.lt(to));
            }
            query
        }};
    }
    let rows: Vec<TransactionRow> = with_conn!(conn, c => {
        filtered!()
            .order((transactions::created_at.desc(), transactions::id.desc()))
            .limit(page.limit())
            .offset(page.offset())
            .select(TransactionRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let total: i64 =
        with_conn!(conn, c => filtered!().count().get_result(c).await).map_err(DbError::from)?;
    let data = rows
        .into_iter()
        .map(Transaction::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::new(data, page, u64::try_from(total).unwrap_or(0)))
}

/// A period `[from, to)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// A total in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CurrencyTotal {
    /// Lower-case ISO 4217 code.
    pub currency: String,
    /// In major units.
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub amount: Decimal,
    /// Transactions counted (reversals included).
    pub count: u64,
}

fn to_totals(sums: BTreeMap<String, (i64, u64)>) -> Result<Vec<CurrencyTotal>, BillingError> {
    sums.into_iter()
        .map(|(code, (minor, count))| {
            let currency = stored_currency(&code)?;
            Ok(CurrencyTotal {
                currency: currency.code().to_lowercase(),
                amount: Money::from_minor(minor, currency).to_decimal(),
                count,
            })
        })
        .collect()
}

/// Signed sums per currency of a user's transactions of one kind (`+`) minus another
/// (`-`), with the number of transactions counted: one `GROUP BY currency` query.
async fn net_totals(
    conn: &mut DbConn,
    tenant: &Tenant,
    side: Side,
    user: &UserId,
    plus: TransactionKind,
    minus: TransactionKind,
    period: Period,
) -> Result<Vec<CurrencyTotal>, BillingError> {
    use diesel::dsl::{count_star, sql};
    use diesel::sql_types::BigInt;

    let Period { from, to } = period;
    let kinds = [plus.as_str(), minus.as_str()];
    let net = signed_sum(plus);
    let rows: Vec<(String, i64, i64)> = with_conn!(conn, c => {
        let mut query = transactions::table
            .group_by(transactions::currency)
            .select((transactions::currency, sql::<BigInt>(&net), count_star()))
            .filter(transactions::platform_id.eq(&tenant.platform_id))
            .filter(transactions::mode.eq(tenant.mode))
            .filter(transactions::status.eq(TransactionStatus::Succeeded.as_str()))
            .filter(transactions::kind.eq_any(kinds))
            .into_boxed();
        query = match side {
            Side::Buyer => query.filter(transactions::buyer_user_id.eq(user)),
            Side::Seller => query.filter(transactions::seller_user_id.eq(user)),
        };
        if let Some(from) = from {
            query = query.filter(transactions::created_at.ge(from));
        }
        if let Some(to) = to {
            query = query.filter(transactions::created_at.lt(to));
        }
        query.load(c).await
    })
    .map_err(DbError::from)?;
    to_totals(
        rows.into_iter()
            .map(|(currency, sum, count)| (currency, (sum, u64::try_from(count).unwrap_or(0))))
            .collect(),
    )
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Buyer,
    Seller,
}

/// What a user earned as a seller (earnings minus their share of refunds), per currency.
pub async fn revenue(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
    period: Period,
) -> Result<Vec<CurrencyTotal>, BillingError> {
    net_totals(
        conn,
        tenant,
        Side::Seller,
        user,
        TransactionKind::Earning,
        TransactionKind::EarningReversal,
        period,
    )
    .await
}

/// What a user spent as a buyer (charges minus refunds), per currency.
pub async fn spend(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
    period: Period,
) -> Result<Vec<CurrencyTotal>, BillingError> {
    net_totals(
        conn,
        tenant,
        Side::Buyer,
        user,
        TransactionKind::Charge,
        TransactionKind::Refund,
        period,
    )
    .await
}

/// Which of a user's totals: what they earned as a seller ([`revenue`]) or spent as a
/// buyer ([`spend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSide {
    Earned,
    Spent,
}

/// A user's totals as `actor` may read them: admins anyone's, a user their own (403
/// otherwise). A user who does not exist in the tenant is not found, for anyone.
pub async fn user_totals(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &crate::Actor,
    user: &UserId,
    side: UserSide,
    period: Period,
) -> Result<Vec<CurrencyTotal>, BillingError> {
    feria_users::user::get(conn, tenant, user).await?;
    if !actor.is_admin && !actor.is(Some(user)) {
        return Err(BillingError::NotYourTotals);
    }
    match side {
        UserSide::Earned => revenue(conn, tenant, user, period).await,
        UserSide::Spent => spend(conn, tenant, user, period).await,
    }
}

/// Platform metrics over a period, per currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Metrics {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// What buyers paid, net of refunds.
    pub volume: Vec<CurrencyTotal>,
    /// Gross volume divided by the number of distinct payments (contracts or purchases)
    /// that charged buyers: what one checkout is worth on average.
    pub average_cart_value: Vec<CurrencyTotal>,
    /// Monthly recurring revenue of the running subscriptions, now (not limited to the
    /// period): weekly × 52 / 12, monthly, yearly / 12; `count` is the subscriptions.
    pub mrr: Vec<CurrencyTotal>,
    /// `12 × mrr`.
    pub arr: Vec<CurrencyTotal>,
    /// Fees collected by the platform, net of reversals.
    pub platform_fees: Vec<CurrencyTotal>,
}

/// `CAST(SUM(amount) AS BIGINT)`: PostgreSQL sums a BIGINT column as NUMERIC (so that
/// it cannot overflow), SQLite as an integer; the cast gives both the same type. A sum
/// beyond the BIGINT range fails the query on PostgreSQL (SQLite raises "integer
/// overflow"), which is right: no amount in the ledger can be that large.
const SUM_AMOUNT: &str = "CAST(SUM(amount) AS BIGINT)";

/// The signed sum of a user's `plus` transactions minus their `minus` ones, as SQL.
/// `plus` is one of [`TransactionKind::as_str`]'s constants, never input, so it is
/// written into the fragment rather than bound (the fragment appears in SELECT, HAVING
/// and ORDER BY; a bound value would have to be bound three times).
fn signed_sum(plus: TransactionKind) -> String {
    format!(
        "CAST(SUM(CASE WHEN kind = '{}' THEN amount ELSE -amount END) AS BIGINT)",
        plus.as_str()
    )
}

/// One group of [`metrics`]'s query: a currency, a kind and a fee kind.
type MetricsGroup = (String, String, Option<String>, i64, i64, i64);

/// Volume, average cart value and fees over `[from, to)`, with `mrr` (the running
/// subscriptions' monthly recurring revenue, which billing does not know: the caller
/// gets it from `feria_subscriptions::mrr`) and the ARR made from it.
///
/// One `GROUP BY currency, kind, fee_kind` query sums the amounts, counts the rows and
/// counts the distinct journal entries (a settlement's charges share one entry: one
/// cart); the few groups it returns are combined here.
pub async fn metrics(
    conn: &mut DbConn,
    tenant: &Tenant,
    period: Period,
    mrr: Vec<CurrencyTotal>,
) -> Result<Metrics, BillingError> {
    use diesel::dsl::{count, count_star, sql};
    use diesel::sql_types::BigInt;

    let Period { from, to } = period;
    let groups: Vec<MetricsGroup> = with_conn!(conn, c => {
        let mut query = transactions::table
            .group_by((transactions::currency, transactions::kind, transactions::fee_kind))
            .select((
                transactions::currency,
                transactions::kind,
                transactions::fee_kind,
                sql::<BigInt>(SUM_AMOUNT),
                count_star(),
                count(transactions::entry_id).aggregate_distinct(),
            ))
            .filter(transactions::platform_id.eq(&tenant.platform_id))
            .filter(transactions::mode.eq(tenant.mode))
            .filter(transactions::status.eq(TransactionStatus::Succeeded.as_str()))
            .filter(transactions::kind.eq_any([
                TransactionKind::Charge.as_str(),
                TransactionKind::Refund.as_str(),
                TransactionKind::Fee.as_str(),
                TransactionKind::FeeReversal.as_str(),
            ]))
            .into_boxed();
        if let Some(from) = from {
            query = query.filter(transactions::created_at.ge(from));
        }
        if let Some(to) = to {
            query = query.filter(transactions::created_at.lt(to));
        }
        query.load(c).await
    })
    .map_err(DbError::from)?;

    let overflow = || BillingError::Money(feria_kernel::money::MoneyError::Overflow);
    let add = |total: &mut (i64, u64), sum: i64, rows: i64| -> Result<(), BillingError> {
        total.0 = total.0.checked_add(sum).ok_or_else(overflow)?;
        total.1 = total
            .1
            .checked_add(u64::try_from(rows).unwrap_or(0))
            .ok_or_else(overflow)?;
        Ok(())
    };
    let mut volume: BTreeMap<String, (i64, u64)> = BTreeMap::new();
    // Gross charges and the number of distinct carts (charge entries) per currency.
    let mut gross: BTreeMap<String, (i64, u64)> = BTreeMap::new();
    let mut fees: BTreeMap<String, (i64, u64)> = BTreeMap::new();
    for (currency, kind, fee_kind, sum, rows, entries) in groups {
        match kind.as_str() {
            "charge" => {
                add(volume.entry(currency.clone()).or_default(), sum, rows)?;
                add(gross.entry(currency).or_default(), sum, entries)?;
            }
            "refund" => {
                let negated = sum.checked_neg().ok_or_else(overflow)?;
                add(volume.entry(currency).or_default(), negated, rows)?;
            }
            "fee" if fee_kind.as_deref() == Some(FeeKind::Platform.as_str()) => {
                add(fees.entry(currency).or_default(), sum, rows)?;
            }
            "fee_reversal" if fee_kind.as_deref() == Some(FeeKind::Platform.as_str()) => {
                let negated = sum.checked_neg().ok_or_else(overflow)?;
                add(fees.entry(currency).or_default(), negated, rows)?;
            }
            _ => {}
        }
    }
    let average = gross
        .into_iter()
        .map(|(code, (sum, count))| {
            let currency = stored_currency(&code)?;
            let average = if count == 0 {
                Decimal::ZERO
            } else {
                // Exact average in major units, rounded half-up to the minor unit.
                Money::from_decimal(
                    Money::from_minor(sum, currency).to_decimal() / Decimal::from(count),
                    currency,
                    feria_kernel::money::Rounding::HalfUp,
                )?
                .to_decimal()
            };
            Ok(CurrencyTotal {
                currency: currency.code().to_lowercase(),
                amount: average,
                count,
            })
        })
        .collect::<Result<Vec<_>, BillingError>>()?;
    Ok(Metrics {
        from,
        to,
        volume: to_totals(volume)?,
        average_cart_value: average,
        arr: mrr
            .iter()
            .map(|m| {
                Ok(CurrencyTotal {
                    amount: m
                        .amount
                        .checked_mul(Decimal::from(12))
                        .ok_or_else(overflow)?,
                    ..m.clone()
                })
            })
            .collect::<Result<_, BillingError>>()?,
        mrr,
        platform_fees: to_totals(fees)?,
    })
}

/// One user's total in one currency, for the top spenders and earners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserTotal {
    pub user_id: UserId,
    /// Lower-case ISO 4217 code.
    pub currency: String,
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub amount: Decimal,
}

/// The users who spent (buyers) or earned (sellers) most over a period, in one currency,
/// largest first, at most `limit`; ties by user id. Users whose net is zero or less
/// (everything refunded) are left out.
///
/// One query: `GROUP BY` the buyer (or seller), the signed sum in `HAVING` and
/// `ORDER BY`, `LIMIT` in SQL, so the database returns `limit` rows however many
/// transactions the period holds.
pub async fn top_users(
    conn: &mut DbConn,
    tenant: &Tenant,
    earners: bool,
    currency: Currency,
    period: Period,
    limit: usize,
) -> Result<Vec<UserTotal>, BillingError> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Bool};

    let Period { from, to } = period;
    let (plus, minus) = if earners {
        (TransactionKind::Earning, TransactionKind::EarningReversal)
    } else {
        (TransactionKind::Charge, TransactionKind::Refund)
    };
    let net = signed_sum(plus);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    macro_rules! ranked {
        ($user:expr) => {{
            let mut query = transactions::table
                .group_by($user)
                .select(($user, sql::<BigInt>(&net)))
                .filter(transactions::platform_id.eq(&tenant.platform_id))
                .filter(transactions::mode.eq(tenant.mode))
                .filter(transactions::status.eq(TransactionStatus::Succeeded.as_str()))
                .filter(transactions::currency.eq(currency.code()))
                .filter(transactions::kind.eq_any([plus.as_str(), minus.as_str()]))
                .filter($user.is_not_null())
                .into_boxed();
            if let Some(from) = from {
                query = query.filter(transactions::created_at.ge(from));
            }
            if let Some(to) = to {
                query = query.filter(transactions::created_at.lt(to));
            }
            query
                .having(sql::<Bool>(&format!("{net} > 0")))
                .order((sql::<BigInt>(&net).desc(), $user.asc()))
                .limit(limit)
        }};
    }
    let rows: Vec<(Option<UserId>, i64)> = with_conn!(conn, c => {
        if earners {
            ranked!(transactions::seller_user_id).load(c).await
        } else {
            ranked!(transactions::buyer_user_id).load(c).await
        }
    })
    .map_err(DbError::from)?;
    Ok(rows
        .into_iter()
        .filter_map(|(user, minor)| {
            user.map(|user_id| UserTotal {
                user_id,
                currency: currency.code().to_lowercase(),
                amount: Money::from_minor(minor, currency).to_decimal(),
            })
        })
        .collect())
}
