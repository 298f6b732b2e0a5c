//! The transactional outbox: [`record`] writes one event row inside the caller's open
//! database transaction, so an event exists exactly when its change committed.
//!
//! Sequences are per platform and mode, strictly increasing and gap-free: [`record`]
//! bumps the tenant's row in `event_counters` with one upsert in the same transaction.
//! On PostgreSQL that row stays locked until the transaction ends, which orders the
//! tenant's event-writing transactions (other tenants are untouched); on SQLite every
//! write transaction is serialised by `BEGIN IMMEDIATE` anyway. Callers record their
//! events at the end of their transaction where they can, to hold the lock briefly.

use diesel::prelude::*;
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

/// Records one event in the caller's open transaction; returns its id.
///
/// Call it inside `conn.transaction(..)`, after the change it describes, with the object
/// as the API shows it: if the transaction rolls back, so does the event (and its
/// sequence number). Outside a transaction it still works, but then the change and its
/// event are not atomic.
pub async fn record<T: Serialize + ?Sized>(
    conn: &mut DbConn,
    tenant: &Tenant,
    event_type: EventType,
    object: &T,
) -> Result<EventId, DbError> {
    let data = serde_json::to_string(object)
        .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
    let row = with_conn!(conn, c => async {
        let sequence: i64 = diesel::insert_into(event_counters::table)
            .values((
                event_counters::platform_id.eq(&tenant.platform_id),
                event_counters::mode.eq(tenant.mode),
                event_counters::last_sequence.eq(1_i64),
            ))
            .on_conflict((event_counters::platform_id, event_counters::mode))
            .do_update()
            .set(event_counters::last_sequence.eq(event_counters::last_sequence + 1_i64))
            .returning(event_counters::last_sequence)
            .get_result(c)
            .await?;
        let row = EventRow {
            id: EventId::new(),
            platform_id: tenant.platform_id.clone(),
            mode: tenant.mode,
            sequence,
            event_type: event_type.as_str().to_owned(),
            data,
            created_at: Timestamp::now(),
            fanned_out: false,
        };
        diesel::insert_into(events::table).values(&row).execute(c).await?;
        Ok::<_, diesel::result::Error>(row)
    }
    .await)?;
    Ok(row.id)
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
