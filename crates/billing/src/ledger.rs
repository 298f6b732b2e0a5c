//! The double-entry ledger.
//!
//! An account belongs to a tenant (platform and mode), has a kind, an owner and one
//! currency; its balance is the sum of its postings. Money moves only as a journal entry:
//! postings that sum to zero in every currency, written together with the balance updates
//! in one database transaction (a savepoint when the caller already holds one, so that the
//! entry commits or rolls back with the change that caused it).
//!
//! Accounts of every kind but `external` may not go negative, nor hold more than
//! [`MAX_AMOUNT_MINOR`]; `external` accounts stay within [`EXTERNAL_LIMIT_MINOR`] either
//! way. Each balance changes by a conditional update that checks the bound in the
//! database without computing past it (`SET balance = balance + d WHERE balance <=
//! ceiling - d` for a credit, `WHERE balance >= floor - d` for a debit), atomic on both
//! backends, so concurrent writers can neither overdraw an account nor take it past its
//! bound, and no sum ever saturates (SQLite) or overflows (PostgreSQL); a `CHECK`
//! constraint backs the floor. Accounts are updated in a fixed order (by kind, owner and
//! currency) so that two entries touching the same accounts cannot deadlock.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::money::{Currency, MAX_AMOUNT_MINOR, Money, MoneyError};
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, with_conn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::BillingError;
use crate::schema::{journal_entries, ledger_accounts, ledger_postings};

feria_kernel::define_id!(
    /// A ledger account.
    AccountId,
    "lacc"
);
feria_kernel::define_id!(
    /// A journal entry: one balanced movement of money.
    EntryId,
    "jrnl"
);
feria_kernel::define_id!(
    /// One line of a journal entry.
    PostingId,
    "lpst"
);

/// What an account holds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A user's prepaid credits (owner: the user).
    UserCredit,
    /// Money held between charging buyers and paying sellers (owner: the contract or
    /// purchase).
    Escrow,
    /// What the platform owes a seller (owner: the user).
    SellerReceivable,
    /// The platform's fee income (owner: the platform).
    PlatformFee,
    /// The operator's service fee income (owner: the platform it was earned on).
    ServiceFee,
    /// The payment processor's fees (owner: the provider).
    ProcessorFee,
    /// The world outside Feria: money entering or leaving through a provider (owner: the
    /// provider). Its balance is the negative of what came in; it may go negative.
    External,
}

impl AccountKind {
    pub const ALL: [AccountKind; 7] = [
        AccountKind::UserCredit,
        AccountKind::Escrow,
        AccountKind::SellerReceivable,
        AccountKind::PlatformFee,
        AccountKind::ServiceFee,
        AccountKind::ProcessorFee,
        AccountKind::External,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::UserCredit => "user_credit",
            AccountKind::Escrow => "escrow",
            AccountKind::SellerReceivable => "seller_receivable",
            AccountKind::PlatformFee => "platform_fee",
            AccountKind::ServiceFee => "service_fee",
            AccountKind::ProcessorFee => "processor_fee",
            AccountKind::External => "external",
        }
    }

    /// Only the outside world may be "owed" money.
    pub fn allows_negative(self) -> bool {
        matches!(self, AccountKind::External)
    }

    /// The lowest and the highest balance an account of this kind may hold.
    pub fn limits(self) -> (i64, i64) {
        limits(self.allows_negative())
    }
}

/// How far an `external` account (the outside world, which may go negative) may go
/// either way: a million times the largest amount. Its running total of everything that
/// ever came in or went out is refused long before it could overflow `i64`, and `limit -
/// delta` is computed in the database without overflowing for any delta within it.
pub const EXTERNAL_LIMIT_MINOR: i64 = 1_000_000 * MAX_AMOUNT_MINOR;

fn limits(allow_negative: bool) -> (i64, i64) {
    if allow_negative {
        (-EXTERNAL_LIMIT_MINOR, EXTERNAL_LIMIT_MINOR)
    } else {
        (0, MAX_AMOUNT_MINOR)
    }
}

impl fmt::Display for AccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccountKind {
    type Err = BillingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccountKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| BillingError::Corrupt(format!("unknown account kind `{s}`")))
    }
}

/// Which account: kind, owner and currency (the tenant comes from the caller).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountKey {
    pub kind: AccountKind,
    pub owner_id: String,
    pub currency: Currency,
}

impl AccountKey {
    pub fn new(kind: AccountKind, owner_id: impl Into<String>, currency: Currency) -> AccountKey {
        AccountKey {
            kind,
            owner_id: owner_id.into(),
            currency,
        }
    }
}

/// Why an entry is written (for reading the ledger; amounts say what happened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    CreditTopUp,
    Settlement,
    Refund,
    Payout,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::CreditTopUp => "credit_top_up",
            EntryKind::Settlement => "settlement",
            EntryKind::Refund => "refund",
            EntryKind::Payout => "payout",
        }
    }
}

/// A journal entry to write.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub kind: EntryKind,
    /// What caused it (a contract, purchase or transaction id).
    pub reference: Option<String>,
    /// Makes the entry at-most-once per tenant: see [`post`].
    pub idempotency_key: Option<String>,
    /// A digest of the operation's parameters, compared on a repeated key.
    pub fingerprint: Option<String>,
    /// `(account, signed amount)`: positive adds to the account's balance.
    pub postings: Vec<(AccountKey, Money)>,
}

/// What [`post`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// The entry was written.
    New(EntryId),
    /// An entry with this idempotency key and fingerprint already existed: nothing moved.
    Replayed(EntryId),
}

impl Posted {
    pub fn entry_id(&self) -> &EntryId {
        match self {
            Posted::New(id) | Posted::Replayed(id) => id,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger_accounts)]
struct AccountRow {
    id: AccountId,
    platform_id: PlatformId,
    mode: Mode,
    kind: String,
    owner_id: String,
    currency: String,
    balance: i64,
    allow_negative: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = journal_entries)]
struct EntryRow {
    id: EntryId,
    platform_id: PlatformId,
    mode: Mode,
    kind: String,
    reference: Option<String>,
    idempotency_key: Option<String>,
    fingerprint: Option<String>,
    created_at: Timestamp,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger_postings)]
struct PostingRow {
    id: PostingId,
    entry_id: EntryId,
    account_id: AccountId,
    amount: i64,
    currency: String,
    created_at: Timestamp,
}

/// Checks that the postings balance per currency and merges postings to one account.
fn balanced(postings: &[(AccountKey, Money)]) -> Result<BTreeMap<AccountKey, i64>, BillingError> {
    let mut per_currency: BTreeMap<Currency, i128> = BTreeMap::new();
    let mut per_account: BTreeMap<AccountKey, i64> = BTreeMap::new();
    for (key, amount) in postings {
        if amount.currency() != key.currency {
            return Err(BillingError::Unbalanced(format!(
                "a {} posting to a {} account",
                amount.currency(),
                key.currency
            )));
        }
        let summed = per_currency.entry(key.currency).or_default();
        *summed = summed
            .checked_add(i128::from(amount.minor()))
            .ok_or(BillingError::Money(MoneyError::Overflow))?;
        let merged = per_account.entry(key.clone()).or_default();
        *merged = merged
            .checked_add(amount.minor())
            .ok_or(BillingError::Money(MoneyError::Overflow))?;
    }
    // No account may move by more than the widest bound: this keeps `bound - delta` in
    // `apply` inside `i64`, and refuses what no account could take anyway.
    if per_account
        .values()
        .any(|delta| delta.unsigned_abs() > EXTERNAL_LIMIT_MINOR.unsigned_abs())
    {
        return Err(BillingError::Money(MoneyError::Overflow));
    }
    if let Some((currency, sum)) = per_currency.iter().find(|(_, sum)| **sum != 0) {
        return Err(BillingError::Unbalanced(format!(
            "{currency} postings sum to {sum}, not zero"
        )));
    }
    per_account.retain(|_, amount| *amount != 0);
    if per_account.is_empty() {
        return Err(BillingError::Unbalanced("an entry must move money".into()));
    }
    Ok(per_account)
}

/// Writes a balanced journal entry and updates the balances, atomically.
///
/// With an idempotency key: when the tenant already has an entry with that key, nothing
/// is written and `Posted::Replayed` names it — if its fingerprint matches; otherwise
/// [`BillingError::IdempotencyKeyReused`]. A non-negative account that would go below
/// zero fails the whole entry with [`BillingError::InsufficientFunds`]; an account that
/// would pass its bound ([`AccountKind::limits`]) with
/// [`BillingError::BalanceLimitExceeded`]. Inside a caller's transaction this is a
/// savepoint: a failed entry leaves the caller's transaction usable.
pub async fn post(
    conn: &mut DbConn,
    tenant: &Tenant,
    entry: NewEntry,
) -> Result<Posted, BillingError> {
    conn.transaction(async |c| post_in(c, tenant, &entry).await)
        .await
}

/// [`post`] inside the caller's open transaction, without a savepoint of its own: when it
/// fails, the caller must roll back (a settlement does, a purchase does), since the
/// entry's row may already be written.
///
/// The entry's row goes first, `ON CONFLICT DO NOTHING`: an entry already written under
/// the key (or being written by a concurrent transaction, whose outcome PostgreSQL waits
/// for) makes it write nothing, and then the existing entry is the answer. No look-up
/// before, and no savepoint to recover from a unique violation.
pub(crate) async fn post_in(
    conn: &mut DbConn,
    tenant: &Tenant,
    entry: &NewEntry,
) -> Result<Posted, BillingError> {
    let changes = balanced(&entry.postings)?;
    let now = Timestamp::now();
    let row = EntryRow {
        id: EntryId::new(),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        kind: entry.kind.as_str().to_owned(),
        reference: entry.reference.clone(),
        idempotency_key: entry.idempotency_key.clone(),
        fingerprint: entry.fingerprint.clone(),
        created_at: now,
    };
    let inserted = with_conn!(conn, c => {
        diesel::insert_into(journal_entries::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    if inserted == 0 {
        let key = entry.idempotency_key.as_deref().ok_or_else(|| {
            BillingError::Corrupt("a journal entry without a key was not written".into())
        })?;
        let existing = find_by_key(conn, tenant, key)
            .await?
            .ok_or_else(|| BillingError::Corrupt(format!("journal entry `{key}` vanished")))?;
        return replay(existing, entry.fingerprint.as_deref());
    }
    let accounts = account_ids(conn, tenant, &changes, now).await?;
    // BTreeMap order: kind, owner, currency — the same lock order for every writer.
    let mut postings = Vec::with_capacity(changes.len());
    for (key, delta) in &changes {
        let account_id = accounts
            .get(key)
            .ok_or_else(|| BillingError::Corrupt("a ledger account vanished".into()))?;
        apply(conn, account_id, key, *delta, now).await?;
        postings.push(PostingRow {
            id: PostingId::new(),
            entry_id: row.id.clone(),
            account_id: account_id.clone(),
            amount: *delta,
            currency: key.currency.code().to_owned(),
            created_at: now,
        });
    }
    with_conn!(conn,
        sqlite: c => async {
            // diesel-async sends SQLite one row per INSERT (in-process: microseconds).
            for posting in &postings {
                diesel::insert_into(ledger_postings::table).values(posting).execute(c).await?;
            }
            Ok::<_, diesel::result::Error>(())
        }
        .await,
        postgres: c => diesel::insert_into(ledger_postings::table)
            .values(&postings)
            .execute(c)
            .await
            .map(|_| ()),
    )
    .map_err(DbError::from)?;
    Ok(Posted::New(row.id))
}

fn replay(existing: EntryRow, fingerprint: Option<&str>) -> Result<Posted, BillingError> {
    if existing.fingerprint.as_deref() == fingerprint {
        Ok(Posted::Replayed(existing.id))
    } else {
        Err(BillingError::IdempotencyKeyReused)
    }
}

async fn find_by_key(
    conn: &mut DbConn,
    tenant: &Tenant,
    key: &str,
) -> Result<Option<EntryRow>, BillingError> {
    Ok(with_conn!(conn, c => {
        journal_entries::table
            .filter(journal_entries::platform_id.eq(&tenant.platform_id))
            .filter(journal_entries::mode.eq(tenant.mode))
            .filter(journal_entries::idempotency_key.eq(key))
            .select(EntryRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?)
}

/// The ids of the entry's accounts, creating those used for the first time (balance
/// zero): one look-up for all of them, and one insert for the new ones (a concurrent
/// first use may create one too: the unique key keeps one, and a second look-up finds it).
async fn account_ids(
    conn: &mut DbConn,
    tenant: &Tenant,
    changes: &BTreeMap<AccountKey, i64>,
    now: Timestamp,
) -> Result<BTreeMap<AccountKey, AccountId>, BillingError> {
    let mut found = find_accounts(conn, tenant, changes).await?;
    let missing: Vec<AccountRow> = changes
        .keys()
        .filter(|key| !found.contains_key(*key))
        .map(|key| AccountRow {
            id: AccountId::new(),
            platform_id: tenant.platform_id.clone(),
            mode: tenant.mode,
            kind: key.kind.as_str().to_owned(),
            owner_id: key.owner_id.clone(),
            currency: key.currency.code().to_owned(),
            balance: 0,
            allow_negative: key.kind.allows_negative(),
            created_at: now,
            updated_at: now,
        })
        .collect();
    if missing.is_empty() {
        return Ok(found);
    }
    with_conn!(conn,
        sqlite: c => async {
            for row in &missing {
                diesel::insert_into(ledger_accounts::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await?;
            }
            Ok::<_, diesel::result::Error>(())
        }
        .await,
        postgres: c => diesel::insert_into(ledger_accounts::table)
            .values(&missing)
            .on_conflict_do_nothing()
            .execute(c)
            .await
            .map(|_| ()),
    )
    .map_err(DbError::from)?;
    found = find_accounts(conn, tenant, changes).await?;
    if found.len() != changes.len() {
        return Err(BillingError::Corrupt("a ledger account vanished".into()));
    }
    Ok(found)
}

/// The existing accounts among `changes`' keys, by key.
async fn find_accounts(
    conn: &mut DbConn,
    tenant: &Tenant,
    changes: &BTreeMap<AccountKey, i64>,
) -> Result<BTreeMap<AccountKey, AccountId>, BillingError> {
    // Kinds and owners both, so the look-up is a few probes of the accounts' unique index
    // (platform, mode, kind, owner, currency), not a scan of the tenant's accounts.
    let kinds: Vec<&str> = changes.keys().map(|k| k.kind.as_str()).collect();
    let owners: Vec<&str> = changes.keys().map(|k| k.owner_id.as_str()).collect();
    let rows: Vec<(AccountId, String, String, String)> = with_conn!(conn, c => {
        ledger_accounts::table
            .filter(ledger_accounts::platform_id.eq(&tenant.platform_id))
            .filter(ledger_accounts::mode.eq(tenant.mode))
            .filter(ledger_accounts::kind.eq_any(&kinds))
            .filter(ledger_accounts::owner_id.eq_any(&owners))
            .select((
                ledger_accounts::id,
                ledger_accounts::kind,
                ledger_accounts::owner_id,
                ledger_accounts::currency,
            ))
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let mut found = BTreeMap::new();
    for (id, kind, owner_id, currency) in rows {
        // Other kinds and currencies of the same owners come back too: keep the asked.
        if let Some(key) = changes.keys().find(|k| {
            k.kind.as_str() == kind && k.owner_id == owner_id && k.currency.code() == currency
        }) {
            found.insert(key.clone(), id);
        }
    }
    Ok(found)
}

/// Adds `delta` to the balance unless that takes the account outside its limits (below
/// zero for all but the outside world, past [`MAX_AMOUNT_MINOR`] for those, past
/// [`EXTERNAL_LIMIT_MINOR`] either way for the outside world). The condition compares
/// the balance with `bound - delta`, computed here without overflow (`delta` is within
/// [`EXTERNAL_LIMIT_MINOR`], see [`balanced`]), so the database never computes a sum past
/// the bound: nothing saturates on SQLite or overflows on PostgreSQL.
async fn apply(
    conn: &mut DbConn,
    id: &AccountId,
    key: &AccountKey,
    delta: i64,
    now: Timestamp,
) -> Result<(), BillingError> {
    let (floor, ceiling) = key.kind.limits();
    let out_of_range = || BillingError::Money(MoneyError::Overflow);
    let updated = if delta > 0 {
        // balance + delta <= ceiling
        let highest = ceiling.checked_sub(delta).ok_or_else(out_of_range)?;
        with_conn!(conn, c => {
            diesel::update(
                ledger_accounts::table
                    .find(id)
                    .filter(ledger_accounts::balance.le(highest)),
            )
            .set((
                ledger_accounts::balance.eq(ledger_accounts::balance + delta),
                ledger_accounts::updated_at.eq(now),
            ))
            .execute(c)
            .await
        })
    } else {
        // balance + delta >= floor
        let lowest = floor.checked_sub(delta).ok_or_else(out_of_range)?;
        with_conn!(conn, c => {
            diesel::update(
                ledger_accounts::table
                    .find(id)
                    .filter(ledger_accounts::balance.ge(lowest)),
            )
            .set((
                ledger_accounts::balance.eq(ledger_accounts::balance + delta),
                ledger_accounts::updated_at.eq(now),
            ))
            .execute(c)
            .await
        })
    }
    .map_err(DbError::from)?;
    if updated == 0 {
        let (kind, owner_id, currency) = (key.kind, key.owner_id.clone(), key.currency);
        return Err(if delta < 0 && !kind.allows_negative() {
            BillingError::InsufficientFunds {
                kind,
                owner_id,
                currency,
            }
        } else {
            BillingError::BalanceLimitExceeded {
                kind,
                owner_id,
                currency,
            }
        });
    }
    Ok(())
}

/// The entry written earlier under this idempotency key, if any: `Ok(Some)` when its
/// fingerprint matches, [`BillingError::IdempotencyKeyReused`] when it does not.
pub(crate) async fn replayed(
    conn: &mut DbConn,
    tenant: &Tenant,
    key: &str,
    fingerprint: Option<&str>,
) -> Result<Option<EntryId>, BillingError> {
    match find_by_key(conn, tenant, key).await? {
        Some(existing) => {
            replay(existing, fingerprint).map(|posted| Some(posted.entry_id().clone()))
        }
        None => Ok(None),
    }
}

/// The entry a tenant wrote with this idempotency key.
pub(crate) async fn entry_by_key(
    conn: &mut DbConn,
    tenant: &Tenant,
    key: &str,
) -> Result<Option<EntryId>, BillingError> {
    Ok(find_by_key(conn, tenant, key).await?.map(|row| row.id))
}

/// The idempotency key an entry was written with.
pub(crate) async fn key_of(
    conn: &mut DbConn,
    id: &EntryId,
) -> Result<Option<String>, BillingError> {
    let key: Option<Option<String>> = with_conn!(conn, c => {
        journal_entries::table
            .find(id)
            .select(journal_entries::idempotency_key)
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    Ok(key.flatten())
}

/// The postings of an entry that added to an account (positive amounts), with the
/// accounts they went to, in posting order.
pub(crate) async fn credits_of(
    conn: &mut DbConn,
    id: &EntryId,
) -> Result<Vec<(AccountKey, i64)>, BillingError> {
    let rows: Vec<(String, String, String, i64)> = with_conn!(conn, c => {
        ledger_postings::table
            .inner_join(ledger_accounts::table)
            .filter(ledger_postings::entry_id.eq(id))
            .filter(ledger_postings::amount.gt(0))
            .order(ledger_postings::id.asc())
            .select((
                ledger_accounts::kind,
                ledger_accounts::owner_id,
                ledger_accounts::currency,
                ledger_postings::amount,
            ))
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    rows.into_iter()
        .map(|(kind, owner, currency, amount)| {
            Ok((
                AccountKey::new(kind.parse()?, owner, stored_currency(&currency)?),
                amount,
            ))
        })
        .collect()
}

/// The balance of an account (zero when it was never used).
pub async fn balance(
    conn: &mut DbConn,
    tenant: &Tenant,
    key: &AccountKey,
) -> Result<Money, BillingError> {
    let minor: Option<i64> = with_conn!(conn, c => {
        ledger_accounts::table
            .filter(ledger_accounts::platform_id.eq(&tenant.platform_id))
            .filter(ledger_accounts::mode.eq(tenant.mode))
            .filter(ledger_accounts::kind.eq(key.kind.as_str()))
            .filter(ledger_accounts::owner_id.eq(&key.owner_id))
            .filter(ledger_accounts::currency.eq(key.currency.code()))
            .select(ledger_accounts::balance)
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    Ok(Money::from_minor(minor.unwrap_or(0), key.currency))
}

/// The balances of one owner's accounts of a kind, one per currency, in code order.
pub async fn balances(
    conn: &mut DbConn,
    tenant: &Tenant,
    kind: AccountKind,
    owner_id: &str,
) -> Result<Vec<Money>, BillingError> {
    let rows: Vec<(String, i64)> = with_conn!(conn, c => {
        ledger_accounts::table
            .filter(ledger_accounts::platform_id.eq(&tenant.platform_id))
            .filter(ledger_accounts::mode.eq(tenant.mode))
            .filter(ledger_accounts::kind.eq(kind.as_str()))
            .filter(ledger_accounts::owner_id.eq(owner_id))
            .order(ledger_accounts::currency.asc())
            .select((ledger_accounts::currency, ledger_accounts::balance))
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    rows.into_iter()
        .map(|(currency, minor)| Ok(Money::from_minor(minor, stored_currency(&currency)?)))
        .collect()
}

pub(crate) fn stored_currency(code: &str) -> Result<Currency, BillingError> {
    Currency::from_code(code)
        .map_err(|_| BillingError::Corrupt(format!("unknown currency `{code}` in the ledger")))
}

/// What `feria ledger verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub accounts: u64,
    pub entries: u64,
    pub postings: u64,
    /// Entries whose postings do not sum to zero in some currency.
    pub unbalanced_entries: Vec<String>,
    /// Accounts whose stored balance differs from the sum of their postings.
    pub drifted_accounts: Vec<String>,
    /// Accounts that may not go negative but are.
    pub negative_accounts: Vec<String>,
    /// Accounts past the largest balance they may hold ([`AccountKind::limits`]).
    pub over_limit_accounts: Vec<String>,
    /// Postings in another currency than their account's.
    pub currency_mismatches: Vec<String>,
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        self.unbalanced_entries.is_empty()
            && self.drifted_accounts.is_empty()
            && self.negative_accounts.is_empty()
            && self.over_limit_accounts.is_empty()
            && self.currency_mismatches.is_empty()
    }
}

/// Checks the whole ledger (every tenant): entries balance, balances equal their
/// postings, no forbidden negative balance, no balance past its bound. Reads everything
/// in one pass per table, in one transaction so that it sees one consistent state.
pub async fn verify(conn: &mut DbConn) -> Result<Verification, BillingError> {
    conn.transaction(async |c| -> Result<Verification, BillingError> {
        let accounts: Vec<(AccountId, String, i64, bool)> = with_conn!(c, c => {
            ledger_accounts::table
                .select((
                    ledger_accounts::id,
                    ledger_accounts::currency,
                    ledger_accounts::balance,
                    ledger_accounts::allow_negative,
                ))
                .load(c)
                .await
        })
        .map_err(DbError::from)?;
        let postings: Vec<(EntryId, AccountId, i64, String)> = with_conn!(c, c => {
            ledger_postings::table
                .select((
                    ledger_postings::entry_id,
                    ledger_postings::account_id,
                    ledger_postings::amount,
                    ledger_postings::currency,
                ))
                .load(c)
                .await
        })
        .map_err(DbError::from)?;
        let entries: i64 = with_conn!(c, c => journal_entries::table.count().get_result(c).await)
            .map_err(DbError::from)?;

        let mut report = Verification {
            accounts: accounts.len() as u64,
            entries: u64::try_from(entries).unwrap_or(0),
            postings: postings.len() as u64,
            ..Verification::default()
        };
        let account_currency: BTreeMap<&AccountId, &str> = accounts
            .iter()
            .map(|(id, currency, _, _)| (id, currency.as_str()))
            .collect();
        let mut per_entry: BTreeMap<(&EntryId, &str), i128> = BTreeMap::new();
        let mut per_account: BTreeMap<&AccountId, i128> = BTreeMap::new();
        for (entry, account, amount, currency) in &postings {
            *per_entry.entry((entry, currency.as_str())).or_default() += i128::from(*amount);
            *per_account.entry(account).or_default() += i128::from(*amount);
            if account_currency
                .get(account)
                .is_some_and(|c| *c != currency.as_str())
            {
                report
                    .currency_mismatches
                    .push(format!("{entry} → {account}"));
            }
        }
        for ((entry, currency), sum) in per_entry {
            if sum != 0 {
                report
                    .unbalanced_entries
                    .push(format!("{entry} ({currency} {sum:+})"));
            }
        }
        for (id, _, balance, allow_negative) in &accounts {
            let summed = per_account.get(id).copied().unwrap_or(0);
            if i128::from(*balance) != summed {
                report
                    .drifted_accounts
                    .push(format!("{id} (balance {balance}, postings {summed})"));
            }
            if *balance < 0 && !allow_negative {
                report.negative_accounts.push(format!("{id} ({balance})"));
            }
            let (floor, ceiling) = limits(*allow_negative);
            if *balance > ceiling || (*allow_negative && *balance < floor) {
                report.over_limit_accounts.push(format!("{id} ({balance})"));
            }
        }
        Ok(report)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_must_balance_per_currency_and_move_something() {
        let usd = |m| Money::from_minor(m, Currency::USD);
        let a = AccountKey::new(AccountKind::External, "internal", Currency::USD);
        let b = AccountKey::new(AccountKind::UserCredit, "user_1", Currency::USD);
        let merged = balanced(&[
            (a.clone(), usd(-500)),
            (b.clone(), usd(300)),
            (b.clone(), usd(200)),
        ])
        .unwrap();
        assert_eq!(merged.get(&b), Some(&500));
        assert!(matches!(
            balanced(&[(a.clone(), usd(-500)), (b.clone(), usd(499))]),
            Err(BillingError::Unbalanced(_))
        ));
        assert!(matches!(
            balanced(&[(a.clone(), usd(5)), (a.clone(), usd(-5))]),
            Err(BillingError::Unbalanced(_))
        ));
        let eur = Money::from_minor(500, Currency::EUR);
        assert!(matches!(
            balanced(&[(a, usd(-500)), (b, eur)]),
            Err(BillingError::Unbalanced(_))
        ));
    }
}
