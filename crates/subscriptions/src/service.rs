//! Subscriptions: a contract's terms charged once per cycle (weekly, monthly, yearly).
//!
//! [`subscribe`] reads the contract's terms through `feria_contracts` — the subscriber,
//! what they pay per cycle, what each seller earns and the fees — and copies them into
//! this crate's own tables, so a running subscription keeps the terms agreed. Every
//! charge goes through `feria_billing::settlement::settle` (key
//! `subscription:<id>:<cycle>`) and is recorded as one `subscription_charges` row whose
//! unique `(subscription_id, cycle)` key makes a second charge of a cycle impossible,
//! whoever races for it.
//!
//! [`run_due_renewals`] is the renewal worker's body: it takes "now" as a parameter so
//! tests move time. It leases due rows one at a time (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, see [`backend`]), charges, resumes, ends, and keeps the subscriber's
//! calendar showing the next renewal. Lifecycle and rules: `docs/SUBSCRIPTIONS.md`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_billing::BillingError;
use feria_billing::fees::FeeSchedule;
use feria_billing::settlement::{Settlement, SettlementFees};
use feria_billing::transactions::{CurrencyTotal, TransactionKind};
use feria_contracts::{ContractError, ContractId, SubscriptionTerms};
use feria_events::EventType;
use feria_kernel::money::{Currency, Money};
use feria_kernel::{
    Db, DbConn, DbError, Mode, Page, PageRequest, PlatformId, Tenant, Timestamp, UserId, with_conn,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::SubscriptionError;
use crate::schema::{subscription_charges, subscription_sellers, subscriptions};

feria_kernel::define_id!(
    /// A subscription.
    SubscriptionId,
    "subs"
);

feria_kernel::define_id!(
    /// One charged cycle of a subscription.
    SubscriptionChargeId,
    "subch"
);

/// How often a subscription renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Cycle {
    Weekly,
    #[default]
    Monthly,
    Yearly,
}

impl Cycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Cycle::Weekly => "weekly",
            Cycle::Monthly => "monthly",
            Cycle::Yearly => "yearly",
        }
    }

    fn parse(raw: &str) -> Result<Cycle, SubscriptionError> {
        match raw {
            "weekly" => Ok(Cycle::Weekly),
            "monthly" => Ok(Cycle::Monthly),
            "yearly" => Ok(Cycle::Yearly),
            other => Err(SubscriptionError::Corrupt(format!(
                "unknown cycle `{other}`"
            ))),
        }
    }

    /// `anchor` plus `n` cycles. Months and years are calendar arithmetic from the
    /// anchor (31 January + 1 month = 28/29 February, + 2 months = 31 March), so a
    /// monthly subscription never drifts.
    pub fn add(self, anchor: Timestamp, n: i64) -> Result<Timestamp, SubscriptionError> {
        let out_of_range = || SubscriptionError::Invalid {
            field: "cycle",
            message: "the renewal date is out of range".into(),
        };
        let months = match self {
            Cycle::Weekly => {
                return Ok(anchor.add(time::Duration::weeks(n)));
            }
            Cycle::Monthly => n,
            Cycle::Yearly => n.checked_mul(12).ok_or_else(out_of_range)?,
        };
        let at = anchor.to_offset();
        let index = i64::from(at.year())
            .checked_mul(12)
            .and_then(|m| m.checked_add(i64::from(u8::from(at.month())) - 1))
            .and_then(|m| m.checked_add(months))
            .ok_or_else(out_of_range)?;
        let year = i32::try_from(index.div_euclid(12)).map_err(|_| out_of_range())?;
        let month = u8::try_from(index.rem_euclid(12) + 1)
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .ok_or_else(out_of_range)?;
        let day = at.day().min(time::util::days_in_month(month, year));
        let date = time::Date::from_calendar_date(year, month, day).map_err(|_| out_of_range())?;
        Ok(Timestamp::from_offset(at.replace_date(date)))
    }

    /// Monthly value of one cycle's price: weekly × 52 / 12, monthly as is, yearly / 12.
    fn monthly(self, price: Decimal) -> Decimal {
        match self {
            Cycle::Weekly => price * Decimal::from(52) / Decimal::from(12),
            Cycle::Monthly => price,
            Cycle::Yearly => price / Decimal::from(12),
        }
    }
}

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Charged for the current cycle; renews at `nextRenewal`.
    Active,
    /// Not charged until resumed (by hand, or by the worker once `pausedUntil` passes).
    Paused,
    /// The last renewal could not be charged; the worker retries on each run.
    PaymentFailed,
    /// Over: never charged again.
    Ended,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Paused => "paused",
            SubscriptionStatus::PaymentFailed => "payment_failed",
            SubscriptionStatus::Ended => "ended",
        }
    }

    fn parse(raw: &str) -> Result<SubscriptionStatus, SubscriptionError> {
        match raw {
            "active" => Ok(SubscriptionStatus::Active),
            "paused" => Ok(SubscriptionStatus::Paused),
            "payment_failed" => Ok(SubscriptionStatus::PaymentFailed),
            "ended" => Ok(SubscriptionStatus::Ended),
            other => Err(SubscriptionError::Corrupt(format!(
                "unknown subscription status `{other}`"
            ))),
        }
    }
}

/// What the subscriber chooses when subscribing; the money terms are the contract's.
#[derive(Debug, Clone, Default)]
pub struct NewSubscription {
    /// Contracts have no billing cycle: the subscriber picks one (monthly by default).
    pub cycle: Cycle,
    /// When it ends by itself; `None`: until ended.
    pub ends_at: Option<Timestamp>,
}

/// Who acts on subscriptions: admins (and API keys) on every subscription of their
/// platform and mode, a user on their own; anyone else finds nothing (404). Subscribing,
/// resuming and ending act as the signed-in user, so an API key may not do them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The signed-in user; `None` for an API key.
    pub user_id: Option<UserId>,
    /// Admins (and API keys) see and change every subscription of their platform and mode.
    pub is_admin: bool,
}

impl Actor {
    /// The platform's API key: an admin that is no user.
    pub fn api_key() -> Actor {
        Actor {
            user_id: None,
            is_admin: true,
        }
    }

    /// A signed-in user; `is_admin` when their role is admin or above.
    pub fn user(user_id: UserId, is_admin: bool) -> Actor {
        Actor {
            user_id: Some(user_id),
            is_admin,
        }
    }

    /// The signed-in user, for what only a user does (subscribe, resume, end): 403
    /// `api_key_not_allowed` for an API key.
    fn subscriber(&self) -> Result<&UserId, SubscriptionError> {
        self.user_id
            .as_ref()
            .ok_or(SubscriptionError::ApiKeyNotAllowed)
    }

    /// Admins see every subscription, a user their own.
    fn may_see(&self, row: &SubscriptionRow) -> bool {
        self.is_admin || self.user_id.as_ref() == Some(&row.user_id)
    }

    /// Admins list anyone's subscriptions, a user their own.
    fn may_list(&self, user: &UserId) -> bool {
        self.is_admin || self.user_id.as_ref() == Some(user)
    }
}

/// A subscription id from the path: one that cannot be a subscription's is as missing as
/// one of another tenant.
fn subscription_id(raw: &str) -> Result<SubscriptionId, SubscriptionError> {
    raw.parse().map_err(|_| SubscriptionError::NotFound)
}

/// The seed's Subscription object, plus what a client needs to follow it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Subscription)]
pub struct SubscriptionObject {
    pub id: SubscriptionId,
    pub platform_id: PlatformId,
    /// The subscriber.
    pub user_id: UserId,
    /// The contract whose terms are charged (`inv_...`).
    pub service_id: String,
    /// Same as `service_id`.
    pub contract_id: String,
    /// Charged per cycle, in major units of `currency`.
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 99.99)]
    pub price: Decimal,
    /// Lower-case ISO 4217 code.
    pub currency: String,
    /// Not ended (active, paused or with a failed renewal).
    #[serde(rename = "isActive")]
    pub is_active: bool,
    #[serde(rename = "isPaused")]
    pub is_paused: bool,
    #[serde(rename = "pausedAt")]
    pub paused_at: Option<Timestamp>,
    /// When a paused subscription resumes by itself (`null`: until resumed).
    #[serde(rename = "pausedUntil")]
    pub paused_until: Option<Timestamp>,
    pub cycle: Cycle,
    #[serde(rename = "startDate")]
    pub start_date: Timestamp,
    /// When it ended, or when it is set to end; `null` while it runs without an end.
    pub ended: Option<Timestamp>,
    pub status: SubscriptionStatus,
    /// When the next cycle is charged (`null` once ended).
    #[serde(rename = "nextRenewal")]
    pub next_renewal: Option<Timestamp>,
    /// Cycles paid so far.
    #[serde(rename = "cyclesCharged")]
    pub cycles_charged: i64,
    /// Failed renewal attempts since the last successful charge.
    #[serde(rename = "failedAttempts")]
    pub failed_attempts: i64,
    /// Why the last renewal attempt failed (`insufficient_funds` ...), if it did.
    #[serde(rename = "lastFailure")]
    pub last_failure: Option<String>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = subscriptions)]
struct SubscriptionRow {
    id: SubscriptionId,
    platform_id: PlatformId,
    mode: Mode,
    user_id: UserId,
    contract_id: String,
    currency: String,
    price_minor: i64,
    platform_fee_minor: i64,
    service_fee_minor: i64,
    processor_fee_minor: i64,
    cycle: String,
    status: String,
    started_at: Timestamp,
    paused_at: Option<Timestamp>,
    paused_until: Option<Timestamp>,
    ends_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
    anchor_at: Timestamp,
    next_period: i64,
    next_renewal_at: Timestamp,
    cycles_charged: i64,
    failed_attempts: i64,
    last_attempt_at: Option<Timestamp>,
    last_failure: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl SubscriptionRow {
    fn tenant(&self) -> Tenant {
        Tenant::new(self.platform_id.clone(), self.mode)
    }

    fn status(&self) -> Result<SubscriptionStatus, SubscriptionError> {
        SubscriptionStatus::parse(&self.status)
    }

    fn cycle(&self) -> Result<Cycle, SubscriptionError> {
        Cycle::parse(&self.cycle)
    }

    fn currency(&self) -> Result<Currency, SubscriptionError> {
        stored_currency(&self.currency)
    }

    fn object(&self) -> Result<SubscriptionObject, SubscriptionError> {
        let status = self.status()?;
        let currency = self.currency()?;
        Ok(SubscriptionObject {
            id: self.id.clone(),
            platform_id: self.platform_id.clone(),
            user_id: self.user_id.clone(),
            service_id: self.contract_id.clone(),
            contract_id: self.contract_id.clone(),
            price: Money::from_minor(self.price_minor, currency).to_decimal(),
            currency: currency.code().to_lowercase(),
            is_active: status != SubscriptionStatus::Ended,
            is_paused: status == SubscriptionStatus::Paused,
            paused_at: self.paused_at,
            paused_until: self.paused_until,
            cycle: self.cycle()?,
            start_date: self.started_at,
            ended: self.ended_at.or(self.ends_at),
            status,
            next_renewal: (status != SubscriptionStatus::Ended).then_some(self.next_renewal_at),
            cycles_charged: self.cycles_charged,
            failed_attempts: self.failed_attempts,
            last_failure: self.last_failure.clone(),
            created: self.created_at,
            updated: self.updated_at,
        })
    }

    /// A renewal is owed now: running, its renewal time has come, before its end.
    fn charge_due(&self, now: Timestamp) -> bool {
        matches!(self.status.as_str(), "active" | "payment_failed")
            && self.next_renewal_at <= now
            && self.ends_at.is_none_or(|end| self.next_renewal_at < end)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = subscription_sellers)]
struct SellerRow {
    subscription_id: SubscriptionId,
    user_id: UserId,
    platform_id: PlatformId,
    mode: Mode,
    amount_minor: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = subscription_charges)]
struct ChargeRow {
    id: SubscriptionChargeId,
    subscription_id: SubscriptionId,
    platform_id: PlatformId,
    mode: Mode,
    cycle: i64,
    period_start: Timestamp,
    period_end: Timestamp,
    amount_minor: i64,
    currency: String,
    transaction_id: String,
    charged_at: Timestamp,
}

/// The currency of a stored code; an unknown one is corrupt data.
fn stored_currency(code: &str) -> Result<Currency, SubscriptionError> {
    Currency::from_code(code)
        .map_err(|_| SubscriptionError::Corrupt(format!("unknown currency `{code}`")))
}

fn invalid(field: &'static str, message: impl Into<String>) -> SubscriptionError {
    SubscriptionError::invalid(field, message)
}

fn conflict(code: &'static str, message: &'static str) -> SubscriptionError {
    SubscriptionError::Conflict { code, message }
}

// ---- backend-specific SQL ------------------------------------------------------------
//
// The one place in this module where the backends differ: leasing due rows.

/// Row leasing for the renewal worker.
mod backend {
    use super::*;

    /// Takes the next row a renewal run at `now` has to look at, and holds it until the
    /// caller's transaction ends. PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent
    /// runs (other tasks, other servers) each take different rows and never wait on one
    /// another; a row another run holds is skipped and, once that run commits, no longer
    /// due. SQLite: the transaction began `IMMEDIATE`, so writers are already serialised
    /// and a plain select is enough.
    ///
    /// Due: not ended, not yet looked at by this run (`last_attempt_at < now`), and a
    /// renewal is due, a pause is over, or its end has come.
    pub(super) async fn lease_due(
        conn: &mut DbConn,
        now: Timestamp,
    ) -> Result<Option<SubscriptionRow>, SubscriptionError> {
        macro_rules! due {
            () => {
                subscriptions::table
                    .filter(subscriptions::status.ne(SubscriptionStatus::Ended.as_str()))
                    .filter(
                        subscriptions::last_attempt_at
                            .is_null()
                            .or(subscriptions::last_attempt_at.lt(now)),
                    )
                    .filter(
                        subscriptions::status
                            .eq_any([
                                SubscriptionStatus::Active.as_str(),
                                SubscriptionStatus::PaymentFailed.as_str(),
                            ])
                            .and(subscriptions::next_renewal_at.le(now))
                            .or(subscriptions::status
                                .eq(SubscriptionStatus::Paused.as_str())
                                .and(subscriptions::paused_until.le(now)))
                            .or(subscriptions::ends_at.le(now)),
                    )
                    .order((
                        subscriptions::next_renewal_at.asc(),
                        subscriptions::id.asc(),
                    ))
                    .select(SubscriptionRow::as_select())
            };
        }
        let row = with_conn!(conn,
            sqlite: c => due!().first(c).await.optional(),
            postgres: c => due!().for_update().skip_locked().first(c).await.optional(),
        )
        .map_err(DbError::from)?;
        Ok(row)
    }

    /// Holds one subscription's row until the transaction ends (PostgreSQL; SQLite's
    /// `BEGIN IMMEDIATE` already serialises writers), so a pause, a resume, an end and a
    /// renewal of one subscription never interleave.
    pub(super) async fn lock(
        conn: &mut DbConn,
        id: &SubscriptionId,
    ) -> Result<(), SubscriptionError> {
        with_conn!(conn,
            sqlite: _c => Ok::<_, diesel::result::Error>(()),
            postgres: c => {
                subscriptions::table
                    .find(id)
                    .select(subscriptions::id)
                    .for_update()
                    .first::<SubscriptionId>(c)
                    .await
                    .optional()
                    .map(|_| ())
            },
        )
        .map_err(DbError::from)?;
        Ok(())
    }
}

// ---- reads ---------------------------------------------------------------------------

async fn row(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &SubscriptionId,
) -> Result<SubscriptionRow, SubscriptionError> {
    let found = with_conn!(conn, c => {
        subscriptions::table
            .find(id)
            .filter(subscriptions::platform_id.eq(&tenant.platform_id))
            .filter(subscriptions::mode.eq(tenant.mode))
            .select(SubscriptionRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    found.ok_or(SubscriptionError::NotFound)
}

async fn visible(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &SubscriptionId,
) -> Result<SubscriptionRow, SubscriptionError> {
    let row = row(conn, tenant, id).await?;
    if actor.may_see(&row) {
        Ok(row)
    } else {
        Err(SubscriptionError::NotFound)
    }
}

async fn sellers(
    conn: &mut DbConn,
    id: &SubscriptionId,
) -> Result<Vec<(UserId, i64)>, SubscriptionError> {
    let rows: Vec<(UserId, i64)> = with_conn!(conn, c => {
        subscription_sellers::table
            .filter(subscription_sellers::subscription_id.eq(id))
            .order(subscription_sellers::user_id.asc())
            .select((subscription_sellers::user_id, subscription_sellers::amount_minor))
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(rows)
}

/// One subscription the actor may see (`id` as the client sent it).
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &str,
) -> Result<SubscriptionObject, SubscriptionError> {
    let id = subscription_id(id)?;
    visible(conn, tenant, actor, &id).await?.object()
}

/// A user's subscriptions, newest first (`user` as the client sent it): admins list
/// anyone's (403 `forbidden` for another user's), and the user must exist on the
/// platform (404).
pub async fn list_for_user(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    user: &str,
    page: PageRequest,
) -> Result<Page<SubscriptionObject>, SubscriptionError> {
    let user: UserId = user
        .parse()
        .map_err(|_| SubscriptionError::User(feria_users::UserError::NotFound))?;
    if !actor.may_list(&user) {
        return Err(SubscriptionError::NotYours);
    }
    feria_users::user::get(conn, tenant, &user).await?;
    let user = &user;
    macro_rules! mine {
        () => {
            subscriptions::table
                .filter(subscriptions::platform_id.eq(&tenant.platform_id))
                .filter(subscriptions::mode.eq(tenant.mode))
                .filter(subscriptions::user_id.eq(user))
        };
    }
    let rows: Vec<SubscriptionRow> = with_conn!(conn, c => {
        mine!()
            .order((subscriptions::created_at.desc(), subscriptions::id.desc()))
            .limit(page.limit())
            .offset(page.offset())
            .select(SubscriptionRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let total: i64 =
        with_conn!(conn, c => mine!().count().get_result(c).await).map_err(DbError::from)?;
    let data = rows
        .iter()
        .map(SubscriptionRow::object)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::new(data, page, u64::try_from(total).unwrap_or(0)))
}

// ---- writes --------------------------------------------------------------------------

async fn save(conn: &mut DbConn, row: &SubscriptionRow) -> Result<(), SubscriptionError> {
    with_conn!(conn, c => {
        diesel::update(subscriptions::table.find(&row.id))
            .set((
                subscriptions::status.eq(&row.status),
                subscriptions::paused_at.eq(row.paused_at),
                subscriptions::paused_until.eq(row.paused_until),
                subscriptions::ended_at.eq(row.ended_at),
                subscriptions::anchor_at.eq(row.anchor_at),
                subscriptions::next_period.eq(row.next_period),
                subscriptions::next_renewal_at.eq(row.next_renewal_at),
                subscriptions::cycles_charged.eq(row.cycles_charged),
                subscriptions::failed_attempts.eq(row.failed_attempts),
                subscriptions::last_attempt_at.eq(row.last_attempt_at),
                subscriptions::last_failure.eq(&row.last_failure),
                subscriptions::updated_at.eq(row.updated_at),
            ))
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(())
}

/// Shows the next renewal on the subscriber's calendar: one `subscription` event per
/// subscription, replaced on each renewal and removed while paused or once ended.
async fn show_next_renewal(
    conn: &mut DbConn,
    row: &SubscriptionRow,
) -> Result<(), SubscriptionError> {
    let tenant = row.tenant();
    feria_calendar::entries::remove_subscription_events(conn, &tenant, row.id.as_str()).await?;
    if row.status()? == SubscriptionStatus::Ended || row.status()? == SubscriptionStatus::Paused {
        return Ok(());
    }
    let price = Money::from_minor(row.price_minor, row.currency()?);
    feria_calendar::entries::add_subscription_event(
        conn,
        &tenant,
        &row.user_id,
        feria_calendar::NewSubscriptionEvent {
            title: "Subscription renewal".into(),
            description: Some(format!(
                "{} {} {} renewal of subscription {}",
                price.to_major_string(),
                row.currency.to_lowercase(),
                row.cycle,
                row.id
            )),
            start: row.next_renewal_at,
            end: row.next_renewal_at.add(RENEWAL_EVENT_LENGTH),
            timezone: None,
            subscription_id: row.id.as_str().to_owned(),
            contract_id: Some(row.contract_id.clone()),
            exclusive: false,
        },
    )
    .await?;
    Ok(())
}

/// How long the renewal event on the subscriber's calendar lasts.
const RENEWAL_EVENT_LENGTH: time::Duration = time::Duration::minutes(15);

/// Charges cycle `cycle` (the period `[start, end)`) in a savepoint: the charge row first
/// (its unique key refuses a second charge of the cycle), then one settlement. A failure
/// leaves nothing behind.
async fn charge_cycle(
    conn: &mut DbConn,
    row: &SubscriptionRow,
    cycle: i64,
    start: Timestamp,
    end: Timestamp,
    now: Timestamp,
) -> Result<(), SubscriptionError> {
    let tenant = row.tenant();
    let currency = row.currency()?;
    let sellers = sellers(conn, &row.id).await?;
    conn.transaction(async |c| -> Result<(), SubscriptionError> {
        let charge_id = SubscriptionChargeId::new();
        let inserted = with_conn!(c, c => {
            diesel::insert_into(subscription_charges::table)
                .values(ChargeRow {
                    id: charge_id.clone(),
                    subscription_id: row.id.clone(),
                    platform_id: row.platform_id.clone(),
                    mode: row.mode,
                    cycle,
                    period_start: start,
                    period_end: end,
                    amount_minor: row.price_minor,
                    currency: row.currency.clone(),
                    transaction_id: String::new(),
                    charged_at: now,
                })
                .execute(c)
                .await
        })
        .map_err(DbError::from);
        match inserted {
            Err(error) if error.is_unique_violation("subscription_charges") => {
                return Err(SubscriptionError::CycleAlreadyCharged { cycle });
            }
            other => {
                other?;
            }
        }
        let settled = feria_billing::settlement::settle(
            c,
            &tenant,
            Settlement {
                key: format!("subscription:{}:{cycle}", row.id),
                contract_id: None,
                escrow_owner: row.id.as_str().to_owned(),
                currency,
                charges: vec![(
                    row.user_id.clone(),
                    Money::from_minor(row.price_minor, currency),
                )],
                earnings: sellers
                    .iter()
                    .map(|(user, minor)| (user.clone(), Money::from_minor(*minor, currency)))
                    .collect(),
                fees: SettlementFees {
                    platform: Money::from_minor(row.platform_fee_minor, currency),
                    service: Money::from_minor(row.service_fee_minor, currency),
                    processor: Money::from_minor(row.processor_fee_minor, currency),
                },
                description: Some(format!("subscription {} cycle {cycle}", row.id)),
            },
        )
        .await?;
        if settled.replayed {
            return Err(SubscriptionError::CycleAlreadyCharged { cycle });
        }
        let transaction = settled
            .transactions
            .iter()
            .find(|t| t.kind == TransactionKind::Charge)
            .map(|t| t.id.as_str().to_owned())
            .ok_or_else(|| SubscriptionError::Corrupt("a settlement without its charge".into()))?;
        with_conn!(c, c => {
            diesel::update(subscription_charges::table.find(&charge_id))
                .set(subscription_charges::transaction_id.eq(&transaction))
                .execute(c)
                .await
        })
        .map_err(DbError::from)?;
        Ok(())
    })
    .await
}

/// Charges the next cycle of `row` and moves it on by one period.
async fn renew(
    conn: &mut DbConn,
    row: &mut SubscriptionRow,
    now: Timestamp,
) -> Result<(), SubscriptionError> {
    let cycle = row.cycle()?;
    let number = row.cycles_charged + 1;
    let start = row.next_renewal_at;
    let end = cycle.add(row.anchor_at, row.next_period + 1)?;
    charge_cycle(conn, row, number, start, end, now).await?;
    row.cycles_charged = number;
    row.next_period += 1;
    row.next_renewal_at = end;
    row.status = SubscriptionStatus::Active.as_str().to_owned();
    row.failed_attempts = 0;
    row.last_failure = None;
    Ok(())
}

/// Subscribes the signed-in user to a contract (`contract` as the client sent it): the
/// whole use case, in the order its answers are given.
///
/// 1. Only a signed-in user subscribes (403 `api_key_not_allowed` for an API key).
/// 2. The contract's terms, through `feria_contracts::settle::subscription_terms`: the
///    user must see the contract (404) and be its one buyer (403 `not_contract_buyer`,
///    409 `contract_not_subscribable`); it must be sent and not void (409); its products
///    must be for sale now (`feria_catalog::sale`); its shares must add up (422).
/// 3. The terms are checked and copied into this crate's tables, the first cycle is
///    charged through `feria_billing::settlement::settle` and the next renewal is put on
///    the subscriber's calendar, all in one transaction: a subscriber short of credits
///    is 409 `insufficient_funds` and nothing is kept.
pub async fn subscribe(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &FeeSchedule,
    actor: &Actor,
    contract: &str,
    new: NewSubscription,
    now: Timestamp,
) -> Result<SubscriptionObject, SubscriptionError> {
    let subscriber = actor.subscriber()?.clone();
    let contract: ContractId = contract
        .parse()
        .map_err(|_| SubscriptionError::Contract(ContractError::NotFound))?;
    let as_party = feria_contracts::Actor::user(subscriber, actor.is_admin);
    let terms =
        feria_contracts::settle::subscription_terms(conn, tenant, schedule, &as_party, &contract)
            .await?;
    create(conn, tenant, terms, new, now).await
}

/// Records a subscription to `terms` and charges its first cycle, in one transaction.
async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    terms: SubscriptionTerms,
    new: NewSubscription,
    now: Timestamp,
) -> Result<SubscriptionObject, SubscriptionError> {
    let NewSubscription { cycle, ends_at } = new;
    let currency = terms.currency;
    if terms.price.currency() != currency || terms.price.minor() <= 0 {
        return Err(invalid("price", "a subscription charges a positive amount"));
    }
    let mut paid = Money::zero(currency);
    for (_, amount) in &terms.earnings {
        if amount.currency() != currency || amount.minor() <= 0 {
            return Err(invalid("sellers", "each seller's share must be positive"));
        }
        paid = paid.checked_add(*amount)?;
    }
    for fee in [
        terms.fees.platform,
        terms.fees.service,
        terms.fees.processor,
    ] {
        if fee.currency() != currency || fee.is_negative() {
            return Err(invalid("fees", "fees must be non-negative"));
        }
        paid = paid.checked_add(fee)?;
    }
    if paid != terms.price {
        return Err(invalid(
            "sellers",
            format!(
                "sellers' shares and fees ({}) must equal the price ({})",
                paid.to_major_string(),
                terms.price.to_major_string()
            ),
        ));
    }
    if let Some(end) = ends_at
        && end <= now
    {
        return Err(invalid("endDate", "must be in the future"));
    }
    let first_end = cycle.add(now, 1)?;
    let id = SubscriptionId::new();
    let mut row = SubscriptionRow {
        id: id.clone(),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        user_id: terms.buyer.clone(),
        contract_id: terms.contract_id.clone(),
        currency: currency.code().to_owned(),
        price_minor: terms.price.minor(),
        platform_fee_minor: terms.fees.platform.minor(),
        service_fee_minor: terms.fees.service.minor(),
        processor_fee_minor: terms.fees.processor.minor(),
        cycle: cycle.as_str().to_owned(),
        status: SubscriptionStatus::Active.as_str().to_owned(),
        started_at: now,
        paused_at: None,
        paused_until: None,
        ends_at,
        ended_at: None,
        anchor_at: now,
        next_period: 0,
        next_renewal_at: now,
        cycles_charged: 0,
        failed_attempts: 0,
        last_attempt_at: None,
        last_failure: None,
        created_at: now,
        updated_at: now,
    };
    conn.transaction(async |c| -> Result<(), SubscriptionError> {
        let running: i64 = with_conn!(c, c => {
            subscriptions::table
                .filter(subscriptions::platform_id.eq(&tenant.platform_id))
                .filter(subscriptions::mode.eq(tenant.mode))
                .filter(subscriptions::user_id.eq(&terms.buyer))
                .filter(subscriptions::contract_id.eq(&terms.contract_id))
                .filter(subscriptions::status.ne(SubscriptionStatus::Ended.as_str()))
                .count()
                .get_result(c)
                .await
        })
        .map_err(DbError::from)?;
        if running > 0 {
            return Err(already_subscribed());
        }
        let inserted = with_conn!(c, c => {
            diesel::insert_into(subscriptions::table).values(&row).execute(c).await
        })
        .map_err(DbError::from);
        match inserted {
            Err(error) if error.is_unique_violation("subscriptions") => {
                return Err(already_subscribed());
            }
            other => {
                other?;
            }
        }
        let sellers: Vec<SellerRow> = terms
            .earnings
            .iter()
            .map(|(user, amount)| SellerRow {
                subscription_id: id.clone(),
                user_id: user.clone(),
                platform_id: tenant.platform_id.clone(),
                mode: tenant.mode,
                amount_minor: amount.minor(),
            })
            .collect();
        for seller in &sellers {
            with_conn!(c, c => {
                diesel::insert_into(subscription_sellers::table)
                    .values(seller)
                    .execute(c)
                    .await
            })
            .map_err(DbError::from)?;
        }
        renew(c, &mut row, now).await?;
        debug_assert_eq!(row.next_renewal_at, first_end);
        save(c, &row).await?;
        show_next_renewal(c, &row).await?;
        emit(c, &row, EventType::SubscriptionCreated).await
    })
    .await?;
    row.object()
}

/// Records `event` with the subscription as it now is, in the caller's transaction
/// (docs/EVENTS.md).
async fn emit(
    conn: &mut DbConn,
    row: &SubscriptionRow,
    event: EventType,
) -> Result<(), SubscriptionError> {
    feria_events::record(conn, &row.tenant(), event, &row.object()?).await?;
    Ok(())
}

fn already_subscribed() -> SubscriptionError {
    conflict(
        "already_subscribed",
        "the user already has a running subscription to this contract",
    )
}

/// Runs `change` on the subscription's row under its lock, saves it and updates the
/// calendar, in one transaction.
async fn change<F>(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &SubscriptionId,
    now: Timestamp,
    event: EventType,
    change: F,
) -> Result<SubscriptionObject, SubscriptionError>
where
    F: FnOnce(&mut SubscriptionRow) -> Result<(), SubscriptionError> + Send,
{
    conn.transaction(async |c| -> Result<SubscriptionObject, SubscriptionError> {
        backend::lock(c, id).await?;
        let mut row = visible(c, tenant, actor, id).await?;
        change(&mut row)?;
        row.updated_at = now;
        save(c, &row).await?;
        show_next_renewal(c, &row).await?;
        emit(c, &row, event).await?;
        row.object()
    })
    .await
}

/// Moves a subscription out of a pause: when its paid period ran out while it was
/// paused, a new period starts now (due at once: the worker charges it on its next run);
/// otherwise the schedule is unchanged.
fn unpause(row: &mut SubscriptionRow, now: Timestamp) {
    row.status = SubscriptionStatus::Active.as_str().to_owned();
    row.paused_at = None;
    row.paused_until = None;
    if row.next_renewal_at <= now {
        row.anchor_at = now;
        row.next_period = 0;
        row.next_renewal_at = now;
    }
}

/// Pauses an active subscription until `until` (or until resumed): admins (and API
/// keys), or its owner. 409 when it is already paused, ended, or its last renewal failed.
pub async fn pause(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &str,
    until: Option<Timestamp>,
    now: Timestamp,
) -> Result<SubscriptionObject, SubscriptionError> {
    let id = subscription_id(id)?;
    if let Some(until) = until
        && until <= now
    {
        return Err(invalid("pausedUntil", "must be in the future"));
    }
    change(
        conn,
        tenant,
        actor,
        &id,
        now,
        EventType::SubscriptionPaused,
        |row| {
            match row.status()? {
                SubscriptionStatus::Active => {}
                SubscriptionStatus::Paused => {
                    return Err(conflict(
                        "already_paused",
                        "the subscription is already paused",
                    ));
                }
                SubscriptionStatus::PaymentFailed => {
                    return Err(conflict(
                        "payment_failed",
                        "the subscription's last renewal failed: it can be paused once paid",
                    ));
                }
                SubscriptionStatus::Ended => return Err(ended()),
            }
            row.status = SubscriptionStatus::Paused.as_str().to_owned();
            row.paused_at = Some(now);
            row.paused_until = until;
            Ok(())
        },
    )
    .await
}

/// Resumes a paused subscription, as the signed-in user (403 `api_key_not_allowed` for
/// an API key): their own, or any as an admin. 409 when it is not paused or has ended.
pub async fn resume(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &str,
    now: Timestamp,
) -> Result<SubscriptionObject, SubscriptionError> {
    actor.subscriber()?;
    let id = subscription_id(id)?;
    change(
        conn,
        tenant,
        actor,
        &id,
        now,
        EventType::SubscriptionResumed,
        |row| {
            match row.status()? {
                SubscriptionStatus::Paused => {}
                SubscriptionStatus::Ended => return Err(ended()),
                SubscriptionStatus::Active | SubscriptionStatus::PaymentFailed => {
                    return Err(conflict("not_paused", "the subscription is not paused"));
                }
            }
            unpause(row, now);
            Ok(())
        },
    )
    .await
}

/// Ends a subscription now, as the signed-in user (403 `api_key_not_allowed` for an API
/// key): their own, or any as an admin. It is never charged again. 409 when it has
/// already ended.
pub async fn end(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &str,
    now: Timestamp,
) -> Result<SubscriptionObject, SubscriptionError> {
    actor.subscriber()?;
    let id = subscription_id(id)?;
    change(
        conn,
        tenant,
        actor,
        &id,
        now,
        EventType::SubscriptionEnded,
        |row| {
            if row.status()? == SubscriptionStatus::Ended {
                return Err(ended());
            }
            finish(row, now);
            Ok(())
        },
    )
    .await
}

fn finish(row: &mut SubscriptionRow, now: Timestamp) {
    row.status = SubscriptionStatus::Ended.as_str().to_owned();
    row.ended_at = Some(row.ends_at.map_or(now, |end| end.min(now)));
    row.paused_at = None;
    row.paused_until = None;
}

fn ended() -> SubscriptionError {
    conflict("subscription_ended", "the subscription has ended")
}

// ---- renewals ------------------------------------------------------------------------

/// What one renewal run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RenewalReport {
    /// Cycles charged.
    pub charged: u64,
    /// Renewals that could not be charged (retried on the next run).
    pub failed: u64,
    /// Pauses that ran out.
    pub resumed: u64,
    /// Subscriptions that reached their end.
    pub ended: u64,
    /// Rows whose handling failed unexpectedly (logged, retried on the next run).
    pub errors: u64,
}

/// Looks at one leased row: resumes it if its pause is over, charges a due renewal
/// (once: the row is marked as seen by this run), ends it once its end has come.
async fn advance(
    conn: &mut DbConn,
    row: &mut SubscriptionRow,
    now: Timestamp,
    report: &mut RenewalReport,
) -> Result<(), SubscriptionError> {
    let mut changed_schedule = false;
    // What happened to it, in order, recorded as events with the final state.
    let mut events = Vec::new();
    if row.status()? == SubscriptionStatus::Paused && row.paused_until.is_some_and(|u| u <= now) {
        unpause(row, now);
        report.resumed += 1;
        changed_schedule = true;
        events.push(EventType::SubscriptionResumed);
    }
    let mut failed = false;
    if row.charge_due(now) {
        match renew(conn, row, now).await {
            Ok(()) => {
                report.charged += 1;
                changed_schedule = true;
                events.push(EventType::SubscriptionRenewed);
            }
            // The subscriber is short of credits, or the charge would take the seller's
            // (or a fee) account past the largest balance: nothing moved, retried later.
            Err(SubscriptionError::Billing(
                error @ (BillingError::InsufficientFunds { .. }
                | BillingError::BalanceLimitExceeded { .. }),
            )) => {
                row.status = SubscriptionStatus::PaymentFailed.as_str().to_owned();
                row.failed_attempts += 1;
                row.last_failure = Some(
                    match error {
                        BillingError::InsufficientFunds { .. } => "insufficient_funds",
                        _ => "balance_limit_exceeded",
                    }
                    .into(),
                );
                report.failed += 1;
                failed = true;
                events.push(EventType::SubscriptionPaymentFailed);
            }
            Err(SubscriptionError::CycleAlreadyCharged { cycle }) => {
                // Someone else charged it: the row we hold is stale. Never charge twice.
                return Err(SubscriptionError::Corrupt(format!(
                    "cycle {cycle} of {} is already charged but the subscription was due",
                    row.id
                )));
            }
            Err(other) => return Err(other),
        }
    }
    if row.ends_at.is_some_and(|end| end <= now) && (failed || !row.charge_due(now)) {
        finish(row, now);
        report.ended += 1;
        changed_schedule = true;
        events.push(EventType::SubscriptionEnded);
    }
    row.last_attempt_at = Some(now);
    row.updated_at = now;
    save(conn, row).await?;
    if changed_schedule {
        show_next_renewal(conn, row).await?;
    }
    for event in events {
        emit(conn, row, event).await?;
    }
    Ok(())
}

/// Most rows one run looks at; the rest wait for the next run.
const MAX_ROWS_PER_RUN: usize = 10_000;

/// The renewal worker's body, at the instant `now` (the worker passes
/// `Timestamp::now()`; tests pass the instant they need). Each due subscription is looked
/// at once per run, in its own transaction: at most one cycle is charged per run, so a
/// backlog (a server that was down for several cycles) is caught up one cycle per run.
/// Safe to run concurrently, in one process or several on one database.
pub async fn run_due_renewals(db: &Db, now: Timestamp) -> Result<RenewalReport, SubscriptionError> {
    let mut report = RenewalReport::default();
    for _ in 0..MAX_ROWS_PER_RUN {
        let mut step = RenewalReport::default();
        let leased = db
            .transaction(async |c| -> Result<bool, SubscriptionError> {
                let Some(row) = backend::lease_due(c, now).await? else {
                    return Ok(false);
                };
                let mut working = row.clone();
                let outcome = c
                    .transaction(async |c| -> Result<(), SubscriptionError> {
                        advance(c, &mut working, now, &mut step).await
                    })
                    .await;
                match outcome {
                    Ok(()) => {}
                    Err(error) if error.is_retryable() => return Err(error),
                    Err(error) => {
                        tracing::error!(subscription = %row.id, %error, "renewal failed");
                        step = RenewalReport {
                            errors: 1,
                            ..RenewalReport::default()
                        };
                        let mut seen = row;
                        seen.last_attempt_at = Some(now);
                        seen.last_failure = Some("internal_error".into());
                        save(c, &seen).await?;
                    }
                }
                Ok(true)
            })
            .await?;
        if !leased {
            break;
        }
        report.charged += step.charged;
        report.failed += step.failed;
        report.resumed += step.resumed;
        report.ended += step.ended;
        report.errors += step.errors;
    }
    Ok(report)
}

// ---- metrics -------------------------------------------------------------------------

/// Renewals over every tenant, for the server's `/metrics` (read at scrape time): `due`
/// are owed now and not yet charged (running, renewal time come, before the end: what the
/// next worker run charges; a growing number says the worker is not keeping up or not
/// running), `failed` are subscriptions whose last renewal could not be charged
/// (`payment_failed`, retried on each run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenewalBacklog {
    pub due: i64,
    pub failed: i64,
}

pub async fn renewal_backlog(
    conn: &mut DbConn,
    now: Timestamp,
) -> Result<RenewalBacklog, SubscriptionError> {
    let (due, failed) = with_conn!(conn, c => async {
        let due = subscriptions::table
            .filter(subscriptions::status.eq_any([
                SubscriptionStatus::Active.as_str(),
                SubscriptionStatus::PaymentFailed.as_str(),
            ]))
            .filter(subscriptions::next_renewal_at.le(now))
            .filter(
                subscriptions::ends_at
                    .is_null()
                    .or(subscriptions::ends_at.gt(subscriptions::next_renewal_at.nullable())),
            )
            .count()
            .get_result::<i64>(c)
            .await?;
        let failed = subscriptions::table
            .filter(subscriptions::status.eq(SubscriptionStatus::PaymentFailed.as_str()))
            .count()
            .get_result::<i64>(c)
            .await?;
        Ok::<_, diesel::result::Error>((due, failed))
    }
    .await)
    .map_err(DbError::from)?;
    Ok(RenewalBacklog { due, failed })
}

/// Monthly recurring revenue of the tenant's running subscriptions (active or with a
/// failed renewal being retried; paused and ended ones bring nothing), per currency:
/// weekly prices × 52 / 12, monthly as they are, yearly / 12, rounded half-up to the
/// minor unit once per currency.
pub async fn mrr(
    conn: &mut DbConn,
    tenant: &Tenant,
) -> Result<Vec<CurrencyTotal>, SubscriptionError> {
    let rows: Vec<(String, String, i64)> = with_conn!(conn, c => {
        subscriptions::table
            .filter(subscriptions::platform_id.eq(&tenant.platform_id))
            .filter(subscriptions::mode.eq(tenant.mode))
            .filter(subscriptions::status.eq_any([
                SubscriptionStatus::Active.as_str(),
                SubscriptionStatus::PaymentFailed.as_str(),
            ]))
            .select((subscriptions::currency, subscriptions::cycle, subscriptions::price_minor))
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let mut sums: std::collections::BTreeMap<String, (Decimal, u64)> = Default::default();
    for (code, cycle, minor) in rows {
        let currency = stored_currency(&code)?;
        let price = Money::from_minor(minor, currency).to_decimal();
        let sum = sums.entry(code).or_default();
        sum.0 += Cycle::parse(&cycle)?.monthly(price);
        sum.1 += 1;
    }
    sums.into_iter()
        .map(|(code, (amount, count))| {
            let currency = stored_currency(&code)?;
            let rounded =
                Money::from_decimal(amount, currency, feria_kernel::money::Rounding::HalfUp)?;
            Ok(CurrencyTotal {
                currency: currency.code().to_lowercase(),
                amount: rounded.to_decimal(),
                count,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> Timestamp {
        Timestamp::parse(raw).unwrap()
    }

    #[test]
    fn months_are_calendar_arithmetic_from_the_anchor() {
        let jan31 = at("2026-01-31T10:00:00Z");
        assert_eq!(
            Cycle::Monthly.add(jan31, 1).unwrap(),
            at("2026-02-28T10:00:00Z")
        );
        assert_eq!(
            Cycle::Monthly.add(jan31, 2).unwrap(),
            at("2026-03-31T10:00:00Z")
        );
        assert_eq!(
            Cycle::Monthly.add(jan31, 13).unwrap(),
            at("2027-02-28T10:00:00Z")
        );
        assert_eq!(
            Cycle::Yearly.add(at("2028-02-29T00:00:00Z"), 1).unwrap(),
            at("2029-02-28T00:00:00Z")
        );
        assert_eq!(
            Cycle::Weekly.add(jan31, 2).unwrap(),
            at("2026-02-14T10:00:00Z")
        );
        assert_eq!(Cycle::Monthly.add(jan31, 0).unwrap(), jan31);
    }

    #[test]
    fn monthly_value_of_each_cycle() {
        let price = Decimal::from(12);
        assert_eq!(Cycle::Weekly.monthly(price), Decimal::from(52));
        assert_eq!(Cycle::Monthly.monthly(price), Decimal::from(12));
        assert_eq!(Cycle::Yearly.monthly(price), Decimal::from(1));
    }
}
