//! The transactional outbox: [`record`] writes event rows inside the caller's open
//! database transaction, so an event exists exactly when its change committed.
//!
//! Sequences are per platform and mode, strictly increasing and gap-free, and a consumer
//! of `GET /events?after=` never sees a number that a later read fills in below it.
//!
//! - **PostgreSQL** writes an event *unnumbered*: it holds a negative placeholder (minus a
//!   value of the database sequence `events_pending_order`, in write order) and no
//!   writer touches the tenant's `event_counters` row. The [sequencer](sequence_pending)
//!   numbers the committed placeholders afterwards, in one short transaction that holds
//!   the counter row: it runs before the log is read ([`list`], [`get`]) and in each round
//!   of the delivery worker ([`sequence_all`]). Numbers therefore appear in blocks, each
//!   block committed at once after the one before, in the order the events committed.
//!   Earlier, each event bumped the counter inside the writer's transaction, holding that
//!   row until the writer committed: every purchase, settle and top-up of a tenant waited
//!   for the one before it (docs/EVENTS.md, docs/BENCHMARKS.md).
//! - **SQLite** serialises every write transaction with `BEGIN IMMEDIATE`, so there is no
//!   queue to remove: an event is numbered as it is written (one counter upsert per
//!   batch), and the sequencer has nothing to do.
//!
//! A rolled-back change rolls back its events (and, on SQLite, their numbers) with it.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, with_conn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::EventsError;
use crate::schema::{event_counters, events};

feria_kernel::define_id!(
    /// An event of the outbox.
    EventId,
    "evt"
);

/// Every event type Feria emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "waitlist.granted")]
    WaitlistGranted,
    #[serde(rename = "product.created")]
    ProductCreated,
    #[serde(rename = "product.updated")]
    ProductUpdated,
    #[serde(rename = "product.deleted")]
    ProductDeleted,
    #[serde(rename = "contract.sent")]
    ContractSent,
    #[serde(rename = "contract.paid")]
    ContractPaid,
    #[serde(rename = "contract.settled")]
    ContractSettled,
    #[serde(rename = "contract.voided")]
    ContractVoided,
    #[serde(rename = "transaction.created")]
    TransactionCreated,
    #[serde(rename = "listing.created")]
    ListingCreated,
    #[serde(rename = "listing.updated")]
    ListingUpdated,
    #[serde(rename = "listing.archived")]
    ListingArchived,
    #[serde(rename = "purchase.completed")]
    PurchaseCompleted,
    #[serde(rename = "entitlement.activated")]
    EntitlementActivated,
    #[serde(rename = "entitlement.revoked")]
    EntitlementRevoked,
    #[serde(rename = "credits.topped_up")]
    CreditsToppedUp,
    #[serde(rename = "subscription.created")]
    SubscriptionCreated,
    #[serde(rename = "subscription.renewed")]
    SubscriptionRenewed,
    #[serde(rename = "subscription.paused")]
    SubscriptionPaused,
    #[serde(rename = "subscription.resumed")]
    SubscriptionResumed,
    #[serde(rename = "subscription.ended")]
    SubscriptionEnded,
    #[serde(rename = "subscription.payment_failed")]
    SubscriptionPaymentFailed,
}

impl EventType {
    /// All types, in documentation order.
    pub const ALL: [EventType; 23] = [
        EventType::UserCreated,
        EventType::WaitlistGranted,
        EventType::ProductCreated,
        EventType::ProductUpdated,
        EventType::ProductDeleted,
        EventType::ContractSent,
        EventType::ContractPaid,
        EventType::ContractSettled,
        EventType::ContractVoided,
        EventType::TransactionCreated,
        EventType::ListingCreated,
        EventType::ListingUpdated,
        EventType::ListingArchived,
        EventType::PurchaseCompleted,
        EventType::EntitlementActivated,
        EventType::EntitlementRevoked,
        EventType::CreditsToppedUp,
        EventType::SubscriptionCreated,
        EventType::SubscriptionRenewed,
        EventType::SubscriptionPaused,
        EventType::SubscriptionResumed,
        EventType::SubscriptionEnded,
        EventType::SubscriptionPaymentFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::WaitlistGranted => "waitlist.granted",
            EventType::ProductCreated => "product.created",
            EventType::ProductUpdated => "product.updated",
            EventType::ProductDeleted => "product.deleted",
            EventType::ContractSent => "contract.sent",
            EventType::ContractPaid => "contract.paid",
            EventType::ContractSettled => "contract.settled",
            EventType::ContractVoided => "contract.voided",
            EventType::TransactionCreated => "transaction.created",
            EventType::ListingCreated => "listing.created",
            EventType::ListingUpdated => "listing.updated",
            EventType::ListingArchived => "listing.archived",
            EventType::PurchaseCompleted => "purchase.completed",
            EventType::EntitlementActivated => "entitlement.activated",
            EventType::EntitlementRevoked => "entitlement.revoked",
            EventType::CreditsToppedUp => "credits.topped_up",
            EventType::SubscriptionCreated => "subscription.created",
            EventType::SubscriptionRenewed => "subscription.renewed",
            EventType::SubscriptionPaused => "subscription.paused",
            EventType::SubscriptionResumed => "subscription.resumed",
            EventType::SubscriptionEnded => "subscription.ended",
            EventType::SubscriptionPaymentFailed => "subscription.payment_failed",
        }
    }

    /// The type named `name`, if Feria emits it.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub(crate) struct EventRow {
    pub id: EventId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub sequence: i64,
    pub event_type: String,
    pub data: String,
    pub created_at: Timestamp,
    pub fanned_out: bool,
}

/// An event written unnumbered (PostgreSQL): `sequence` takes the column's default, a
/// negative placeholder in write order.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
struct UnnumberedEventRow<'a> {
    id: &'a EventId,
    platform_id: &'a PlatformId,
    mode: Mode,
    event_type: &'a str,
    data: &'a str,
    created_at: Timestamp,
    fanned_out: bool,
}

/// An event as the log API shows it and webhooks carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Event)]
pub struct EventObject {
    pub id: EventId,
    /// The event type (`product.created` ...).
    #[serde(rename = "type")]
    #[schema(example = "product.created")]
    pub event_type: String,
    /// When the change committed (to the second).
    pub created: Timestamp,
    /// Position in the platform's (and mode's) event log: strictly increasing, no gaps.
    pub sequence: i64,
    /// `test` or `live`: the mode of the change.
    pub mode: Mode,
    pub data: EventData,
}

/// The event's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventData {
    /// The object as the API showed it right after the change.
    #[schema(value_type = Object)]
    pub object: serde_json::Value,
}

impl EventRow {
    pub(crate) fn to_object(&self) -> EventObject {
        let object = serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null);
        EventObject {
            id: self.id.clone(),
            event_type: self.event_type.clone(),
            created: self.created_at,
            sequence: self.sequence,
            mode: self.mode,
            data: EventData { object },
        }
    }
}

/// One event to record with [`record_all`]: its type and the object as the API shows it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    event_type: EventType,
    data: String,
}

impl NewEvent {
    pub fn new<T: Serialize + ?Sized>(
        event_type: EventType,
        object: &T,
    ) -> Result<NewEvent, DbError> {
        let data = serde_json::to_string(object)
            .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
        Ok(NewEvent { event_type, data })
    }
}

/// Records one event in the caller's open transaction; returns its id.
///
/// Call it inside `conn.transaction(..)`, after the change it describes, with the object
/// as the API shows it: if the transaction rolls back, so does the event. Outside a
/// transaction it still works, but then the change and its event are not atomic.
pub async fn record<T: Serialize + ?Sized>(
    conn: &mut DbConn,
    tenant: &Tenant,
    event_type: EventType,
    object: &T,
) -> Result<EventId, DbError> {
    let mut ids = record_all(conn, tenant, vec![NewEvent::new(event_type, object)?]).await?;
    ids.pop()
        .ok_or_else(|| DbError::Query(diesel::result::Error::NotFound))
}

/// Records several events of one change, in the given order, with one statement on
/// PostgreSQL; returns their ids. See [`record`].
pub async fn record_all(
    conn: &mut DbConn,
    tenant: &Tenant,
    new: Vec<NewEvent>,
) -> Result<Vec<EventId>, DbError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let now = Timestamp::now();
    let ids: Vec<EventId> = new.iter().map(|_| EventId::new()).collect();
    let count = i64::try_from(new.len()).unwrap_or(i64::MAX);
    with_conn!(conn,
        sqlite: c => async {
            // The write lock is ours until commit: number the events now.
            let last: i64 = diesel::insert_into(event_counters::table)
                .values((
                    event_counters::platform_id.eq(&tenant.platform_id),
                    event_counters::mode.eq(tenant.mode),
                    event_counters::last_sequence.eq(count),
                ))
                .on_conflict((event_counters::platform_id, event_counters::mode))
                .do_update()
                .set(event_counters::last_sequence.eq(event_counters::last_sequence + count))
                .returning(event_counters::last_sequence)
                .get_result(c)
                .await?;
            let rows: Vec<EventRow> = new
                .into_iter()
                .zip(&ids)
                .zip(last - count + 1..)
                .map(|((event, id), sequence)| EventRow {
                    id: id.clone(),
                    platform_id: tenant.platform_id.clone(),
                    mode: tenant.mode,
                    sequence,
                    event_type: event.event_type.as_str().to_owned(),
                    data: event.data,
                    created_at: now,
                    fanned_out: false,
                })
                .collect();
            // A statement per row: diesel-async cannot send SQLite a multi-row INSERT, and
            // in-process statements cost microseconds.
            for row in &rows {
                diesel::insert_into(events::table).values(row).execute(c).await?;
            }
            Ok::<_, diesel::result::Error>(rows.len())
        }
        .await,
        postgres: c => {
            let rows: Vec<UnnumberedEventRow<'_>> = new
                .iter()
                .zip(&ids)
                .map(|(event, id)| UnnumberedEventRow {
                    id,
                    platform_id: &tenant.platform_id,
                    mode: tenant.mode,
                    event_type: event.event_type.as_str(),
                    data: &event.data,
                    created_at: now,
                    fanned_out: false,
                })
                .collect();
            diesel::insert_into(events::table).values(&rows).execute(c).await
        },
    )?;
    Ok(ids)
}

/// Most events one sequencer transaction numbers; the rest wait for the next.
const SEQUENCE_BATCH: i64 = 10_000;

/// Numbers the tenant's committed, unnumbered events after the last number handed out,
/// in the order they were written; answers how many it numbered. Holds the tenant's
/// counter row for one short transaction, so concurrent sequencers (other readers, other
/// nodes' workers) take turns and each block of numbers commits after the one before.
/// With `wait = false` it gives up at once (0) when another sequencer holds the row: that
/// one numbers what there is. Nothing to do on SQLite (events are numbered as written).
/// On a read-only connection (a replica) it fails with [`DbError::ReadOnly`].
pub async fn sequence_pending(
    conn: &mut DbConn,
    tenant: &Tenant,
    wait: bool,
) -> Result<i64, DbError> {
    if matches!(conn, DbConn::Sqlite(..)) {
        return Ok(0);
    }
    conn.transaction(async |c| -> Result<i64, DbError> {
        let Some(last) = lock_counter(c, tenant, wait).await? else {
            return Ok(0);
        };
        // A fresh statement, so a fresh snapshot: it sees every event numbered by the
        // sequencer that held the row before us (READ COMMITTED), and numbers only rows
        // committed when it starts.
        let numbered: Vec<LastNumber> = with_conn!(c,
            sqlite: _c => Ok::<_, diesel::result::Error>(Vec::new()),
            postgres: c => {
                diesel::sql_query(
                    "WITH pending AS ( \
                         SELECT id, row_number() OVER (ORDER BY sequence DESC) AS n \
                         FROM events \
                         WHERE platform_id = $1 AND mode = $2 AND sequence < 0 \
                         ORDER BY sequence DESC LIMIT $4 \
                     ), numbered AS ( \
                         UPDATE events SET sequence = $3 + pending.n \
                         FROM pending WHERE events.id = pending.id \
                         AND events.platform_id = $1 AND events.mode = $2 \
                         RETURNING events.sequence \
                     ) \
                     UPDATE event_counters SET last_sequence = (SELECT max(sequence) FROM numbered) \
                     WHERE platform_id = $1 AND mode = $2 AND EXISTS (SELECT 1 FROM numbered) \
                     RETURNING last_sequence",
                )
                .bind::<Text, _>(tenant.platform_id.as_str())
                .bind::<Text, _>(tenant.mode.as_str())
                .bind::<BigInt, _>(last)
                .bind::<BigInt, _>(SEQUENCE_BATCH)
                .load(c)
                .await
            },
        )?;
        Ok(numbered.into_iter().next().map_or(0, |n| n.last_sequence - last))
    })
    .await
}

#[derive(QueryableByName)]
struct LastNumber {
    #[diesel(sql_type = BigInt)]
    last_sequence: i64,
}

/// The tenant's last handed-out number, its counter row locked until the transaction
/// ends (created at 0 on first use); `None` when `wait` is false and another holds it.
async fn lock_counter(c: &mut DbConn, tenant: &Tenant, wait: bool) -> Result<Option<i64>, DbError> {
    let scoped = || {
        event_counters::table
            .filter(event_counters::platform_id.eq(&tenant.platform_id))
            .filter(event_counters::mode.eq(tenant.mode))
            .select(event_counters::last_sequence)
    };
    let locked: Option<i64> = with_conn!(c,
        sqlite: _c => Ok::<_, diesel::result::Error>(None),
        postgres: c => {
            if wait {
                scoped().for_update().first(c).await.optional()
            } else {
                scoped().for_update().skip_locked().first(c).await.optional()
            }
        },
    )?;
    if locked.is_some() {
        return Ok(locked);
    }
    // No row, or (without waiting) a row another sequencer holds. Creating it is ours to
    // do only if it is missing; then our insert holds it until we commit.
    let created = with_conn!(c, c => {
        diesel::insert_into(event_counters::table)
            .values((
                event_counters::platform_id.eq(&tenant.platform_id),
                event_counters::mode.eq(tenant.mode),
                event_counters::last_sequence.eq(0_i64),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })?;
    if created == 1 {
        return Ok(Some(0));
    }
    if !wait {
        return Ok(None);
    }
    // A concurrent first sequencer created it between our look and our insert.
    Ok(with_conn!(c,
        sqlite: _c => Ok::<_, diesel::result::Error>(None),
        postgres: c => scoped().for_update().first(c).await.map(Some),
    )?)
}

/// Whether the tenant has committed events not yet numbered (always false on SQLite).
async fn has_pending(conn: &mut DbConn, tenant: &Tenant) -> Result<bool, DbError> {
    if matches!(conn, DbConn::Sqlite(..)) {
        return Ok(false);
    }
    Ok(with_conn!(conn, c => {
        diesel::select(diesel::dsl::exists(
            events::table
                .filter(events::platform_id.eq(&tenant.platform_id))
                .filter(events::mode.eq(tenant.mode))
                .filter(events::sequence.lt(0_i64)),
        ))
        .get_result(c)
        .await
    })?)
}

/// Numbers what a reader is about to read: a client reads its own events at once. On a
/// replica with events to number this fails with [`DbError::ReadOnly`], and the read
/// runs again on the primary (`Db::read`).
async fn sequence_before_reading(conn: &mut DbConn, tenant: &Tenant) -> Result<(), DbError> {
    if has_pending(conn, tenant).await? {
        sequence_pending(conn, tenant, true).await?;
    }
    Ok(())
}

/// Numbers the committed events of every tenant (the delivery worker's first step each
/// round); tenants another sequencer is numbering are skipped. Answers how many.
pub async fn sequence_all(conn: &mut DbConn) -> Result<i64, DbError> {
    if matches!(conn, DbConn::Sqlite(..)) {
        return Ok(0);
    }
    let tenants: Vec<(PlatformId, Mode)> = with_conn!(conn, c => {
        events::table
            .filter(events::sequence.lt(0_i64))
            .select((events::platform_id, events::mode))
            .distinct()
            .limit(1000)
            .load(c)
            .await
    })?;
    let mut numbered = 0;
    for (platform_id, mode) in tenants {
        let tenant = Tenant { platform_id, mode };
        numbered += sequence_pending(conn, &tenant, false).await?;
    }
    Ok(numbered)
}

/// Largest page of the event log.
pub const MAX_LIMIT: i64 = 1000;
/// Default page of the event log.
pub const DEFAULT_LIMIT: i64 = 100;

/// A slice of the event log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    /// Events with `sequence > after`, in sequence order.
    pub data: Vec<EventObject>,
    /// Whether more events follow the last one returned.
    pub has_more: bool,
    /// The sequence to pass as `after` for the next slice (the last returned, or `after`).
    pub next_after: i64,
}

/// The tenant's events after `after` (exclusive), in sequence order, optionally of one type.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    after: i64,
    event_type: Option<&str>,
    limit: i64,
) -> Result<EventList, EventsError> {
    if let Some(name) = event_type
        && EventType::parse(name).is_none()
    {
        return Err(EventsError::invalid(
            "type",
            format!("`{name}` is not an event type"),
        ));
    }
    if after < 0 {
        return Err(EventsError::invalid("after", "must be at least 0"));
    }
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(EventsError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    sequence_before_reading(conn, tenant).await?;
    let rows: Vec<EventRow> = with_conn!(conn, c => {
        let mut query = events::table
            .filter(events::platform_id.eq(&tenant.platform_id))
            .filter(events::mode.eq(tenant.mode))
            .filter(events::sequence.gt(after))
            .into_boxed();
        if let Some(name) = event_type {
            query = query.filter(events::event_type.eq(name));
        }
        query
            .order(events::sequence.asc())
            .limit(limit + 1)
            .select(EventRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let has_more = rows.len() as i64 > limit;
    let data: Vec<EventObject> = rows
        .iter()
        .take(limit as usize)
        .map(EventRow::to_object)
        .collect();
    let next_after = data.last().map_or(after, |e| e.sequence);
    Ok(EventList {
        data,
        has_more,
        next_after,
    })
}

/// One event of the tenant; another tenant's or mode's is "not found".
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &EventId,
) -> Result<EventObject, EventsError> {
    get_row(conn, tenant, id).await.map(|row| row.to_object())
}

pub(crate) async fn get_row(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &EventId,
) -> Result<EventRow, EventsError> {
    sequence_before_reading(conn, tenant).await?;
    let row = with_conn!(conn, c => {
        events::table
            .find(id)
            .filter(events::platform_id.eq(&tenant.platform_id))
            .filter(events::mode.eq(tenant.mode))
            .select(EventRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    row.ok_or(EventsError::EventNotFound)
}
