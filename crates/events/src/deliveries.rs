//! Delivery history (one row per HTTP attempt) and manual redelivery.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{
    DbConn, DbError, Mode, Page, PageRequest, PlatformId, Tenant, Timestamp, with_conn,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::endpoints::{AttemptId, DeliveryId, EndpointId};
use crate::error::EventsError;
use crate::outbox::EventId;
use crate::schema::{webhook_attempts, webhook_deliveries};

/// Delivery states.
pub(crate) const PENDING: &str = "pending";
pub(crate) const SUCCEEDED: &str = "succeeded";
pub(crate) const FAILED: &str = "failed";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub(crate) struct DeliveryRow {
    pub id: DeliveryId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub endpoint_id: EndpointId,
    pub event_id: EventId,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub lease_expires_at: Option<Timestamp>,
    pub lease_token: Option<String>,
    pub deadline_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub(crate) struct AttemptRow {
    pub id: AttemptId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub endpoint_id: EndpointId,
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub attempt: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub response_body: Option<String>,
    pub next_retry_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// One HTTP attempt to deliver an event to an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = WebhookAttempt)]
pub struct AttemptObject {
    pub id: AttemptId,
    /// The delivery (event × endpoint) this attempt belongs to; redeliver by this id.
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    /// 1 for the first attempt of a delivery, then 2, 3 ...
    pub attempt: i64,
    /// The endpoint's HTTP status; `null` when no response came.
    pub status_code: Option<i32>,
    /// Why the attempt failed, when it did without (or despite) a response.
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The first bytes (at most 1 KiB) of the response body.
    pub response_body: Option<String>,
    /// When the next attempt is due; `null` when none will be made.
    pub next_retry_at: Option<Timestamp>,
    pub created: Timestamp,
}

impl From<AttemptRow> for AttemptObject {
    fn from(row: AttemptRow) -> Self {
        AttemptObject {
            id: row.id,
            delivery_id: row.delivery_id,
            event_id: row.event_id,
            attempt: row.attempt,
            status_code: row.status_code,
            error: row.error,
            duration_ms: row.duration_ms,
            response_body: row.response_body,
            next_retry_at: row.next_retry_at,
            created: row.created_at,
        }
    }
}

/// A delivery's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryObject {
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    pub event_id: EventId,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub created: Timestamp,
}

impl From<DeliveryRow> for DeliveryObject {
    fn from(row: DeliveryRow) -> Self {
        DeliveryObject {
            id: row.id,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            created: row.created_at,
        }
    }
}

/// The endpoint's attempts, newest first.
pub async fn attempts(
    conn: &mut DbConn,
    tenant: &Tenant,
    endpoint: &EndpointId,
    page: PageRequest,
) -> Result<Page<AttemptObject>, EventsError> {
    crate::endpoints::get_row(conn, tenant, endpoint).await?;
    let (rows, total) = with_conn!(conn, c => async {
        let rows: Vec<AttemptRow> = webhook_attempts::table
            .filter(webhook_attempts::endpoint_id.eq(endpoint))
            .filter(webhook_attempts::platform_id.eq(&tenant.platform_id))
            .filter(webhook_attempts::mode.eq(tenant.mode))
            .order((webhook_attempts::created_at.desc(), webhook_attempts::id.desc()))
            .limit(page.limit())
            .offset(page.offset())
            .select(AttemptRow::as_select())
            .load(c)
            .await?;
        let total: i64 = webhook_attempts::table
            .filter(webhook_attempts::endpoint_id.eq(endpoint))
            .filter(webhook_attempts::platform_id.eq(&tenant.platform_id))
            .filter(webhook_attempts::mode.eq(tenant.mode))
            .count()
            .get_result(c)
            .await?;
        Ok::<_, diesel::result::Error>((rows, total))
    }
    .await)
    .map_err(DbError::from)?;
    Ok(Page::new(
        rows.into_iter().map(AttemptObject::from).collect(),
        page,
        u64::try_from(total).unwrap_or(0),
    ))
}

/// Schedules another attempt of a delivery now, with a fresh retry window (whatever its
/// state: a succeeded delivery is sent again). The endpoint must be enabled.
pub async fn redeliver(
    conn: &mut DbConn,
    tenant: &Tenant,
    endpoint: &EndpointId,
    delivery: &DeliveryId,
    retry_window: std::time::Duration,
) -> Result<DeliveryObject, EventsError> {
    conn.transaction(async |c| -> Result<DeliveryObject, EventsError> {
        let endpoint_row = crate::endpoints::get_row(c, tenant, endpoint).await?;
        if !endpoint_row.enabled {
            return Err(EventsError::EndpointDisabled);
        }
        let now = Timestamp::now();
        let deadline = now.add(crate::worker::duration(retry_window));
        let updated = with_conn!(c, c => {
            diesel::update(
                webhook_deliveries::table
                    .find(delivery)
                    .filter(webhook_deliveries::endpoint_id.eq(endpoint))
                    .filter(webhook_deliveries::platform_id.eq(&tenant.platform_id))
                    .filter(webhook_deliveries::mode.eq(tenant.mode)),
            )
            .set((
                webhook_deliveries::status.eq(PENDING),
                webhook_deliveries::next_attempt_at.eq(Some(now)),
                webhook_deliveries::deadline_at.eq(deadline),
                webhook_deliveries::lease_expires_at.eq(None::<Timestamp>),
                webhook_deliveries::lease_token.eq(None::<String>),
                webhook_deliveries::updated_at.eq(now),
            ))
            .execute(c)
            .await
        })
        .map_err(DbError::from)?;
        if updated == 0 {
            return Err(EventsError::DeliveryNotFound);
        }
        let row: DeliveryRow = with_conn!(c, c => {
            webhook_deliveries::table
                .find(delivery)
                .select(DeliveryRow::as_select())
                .first(c)
                .await
        })
        .map_err(DbError::from)?;
        Ok(row.into())
    })
    .await
}

/// How many webhook deliveries, over every tenant, are still to be made (`pending`:
/// waiting for their first attempt or a retry) and how many were given up (`failed`).
/// One grouped count, read by the server's `/metrics` at scrape time: an operator watches
/// a growing backlog or a rise in failures without a worker of its own to count them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryBacklog {
    pub pending: i64,
    pub failed: i64,
}

pub async fn backlog(conn: &mut DbConn) -> Result<DeliveryBacklog, EventsError> {
    let counts: Vec<(String, i64)> = with_conn!(conn, c => {
        webhook_deliveries::table
            .filter(webhook_deliveries::status.eq_any([PENDING, FAILED]))
            .group_by(webhook_deliveries::status)
            .select((webhook_deliveries::status, diesel::dsl::count_star()))
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let mut backlog = DeliveryBacklog::default();
    for (status, count) in counts {
        match status.as_str() {
            PENDING => backlog.pending = count,
            _ => backlog.failed = count,
        }
    }
    Ok(backlog)
}
