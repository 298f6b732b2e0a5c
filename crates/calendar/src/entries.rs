//! Entries of a user's calendar — what the API calls calendar events: custom ones the
//! user manages, and subscription ones the platform's subscriptions create (the user
//! cannot change or remove those). Exclusive entries never overlap each other within a
//! calendar, even under concurrent writes.
//!
//! Named `entries`, not `events`, so that it is not mistaken for the platform's domain
//! events (the `feria-events` crate: the event log and webhooks). The wire keeps its
//! names: `/calendars/.../events`, `CalendarEvent`, ids `cevt_`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{
    DbConn, DbError, FieldError, Mode, PlatformId, Tenant, Timestamp, UserId, with_conn,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::calendar::{self, CalendarId, CalendarRow};
use crate::error::CalendarError;
use crate::schema::calendar_events;
use crate::tz::Zone;

feria_kernel::define_id!(
    /// An event of a calendar (`evt_` is kept for the platform's event outbox).
    CalendarEventId,
    "cevt"
);

/// Where an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Added by the user; the user may change or remove it.
    Custom,
    /// Created for a subscription by the platform; the user cannot change or remove it.
    Subscription,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Custom => "custom",
            EventKind::Subscription => "subscription",
        }
    }

    fn parse(value: &str) -> EventKind {
        match value {
            "subscription" => EventKind::Subscription,
            _ => EventKind::Custom,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = calendar_events)]
struct EventRow {
    id: CalendarEventId,
    platform_id: PlatformId,
    mode: Mode,
    calendar_id: CalendarId,
    title: String,
    description: Option<String>,
    starts_at: Timestamp,
    ends_at: Timestamp,
    timezone: String,
    kind: String,
    is_exclusive: bool,
    subscription_id: Option<String>,
    contract_id: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// An event as the API shows it. `start` and `end` are UTC; `timezone` is the zone the
/// event is meant to be shown in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "cevt_01HZX6FQJ5N6E7T2M3A4B5C6D7",
    "calendar_id": "cal_01HZX6FQJ5N6E7T2M3A4B5C6D7",
    "title": "Design review",
    "description": null,
    "start": "2026-03-09T14:00:00Z",
    "end": "2026-03-09T15:00:00Z",
    "timezone": "America/New_York",
    "kind": "custom",
    "exclusive": true,
    "subscription_id": null,
    "contract_id": "inv_01HZX6FQJ5N6E7T2M3A4B5C6D7",
    "created": "2026-03-01T10:00:00Z",
    "updated": "2026-03-01T10:00:00Z"
}))]
pub struct CalendarEvent {
    pub id: CalendarEventId,
    pub calendar_id: CalendarId,
    pub title: String,
    pub description: Option<String>,
    pub start: Timestamp,
    pub end: Timestamp,
    /// IANA time zone for the local view of the event.
    pub timezone: String,
    pub kind: EventKind,
    /// Exclusive events never overlap other exclusive events of the calendar.
    pub exclusive: bool,
    /// The subscription it belongs to (`subs_...`), if any.
    pub subscription_id: Option<String>,
    /// The contract it relates to (`inv_...`), if any.
    pub contract_id: Option<String>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

impl From<EventRow> for CalendarEvent {
    fn from(row: EventRow) -> Self {
        CalendarEvent {
            kind: EventKind::parse(&row.kind),
            id: row.id,
            calendar_id: row.calendar_id,
            title: row.title,
            description: row.description,
            start: row.starts_at,
            end: row.ends_at,
            timezone: row.timezone,
            exclusive: row.is_exclusive,
            subscription_id: row.subscription_id,
            contract_id: row.contract_id,
            created: row.created_at,
            updated: row.updated_at,
        }
    }
}

/// An event the signed-in user adds.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Design review",
    "start": "2026-03-09T14:00:00Z",
    "end": "2026-03-09T15:00:00Z",
    "timezone": "America/New_York",
    "exclusive": true
}))]
pub struct NewEvent {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub title: String,
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub description: Option<String>,
    /// UTC instant, RFC 3339.
    pub start: Timestamp,
    /// UTC instant, RFC 3339; after `start`.
    pub end: Timestamp,
    /// IANA time zone for the local view (default: the calendar's).
    pub timezone: Option<String>,
    /// Only `custom` here (the default): `subscription` events come from subscriptions.
    pub kind: Option<EventKind>,
    /// Refuse overlaps with other exclusive events (default false).
    #[serde(default)]
    pub exclusive: bool,
    /// A subscription the event relates to (`subs_...`).
    pub subscription_id: Option<String>,
    /// A contract the event relates to (`inv_...`).
    pub contract_id: Option<String>,
}

/// Changes to an event; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventChanges {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub title: Option<String>,
    /// An empty string clears it.
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub description: Option<String>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub timezone: Option<String>,
    pub exclusive: Option<bool>,
    /// `subs_...`; an empty string clears it.
    pub subscription_id: Option<String>,
    /// `inv_...`; an empty string clears it.
    pub contract_id: Option<String>,
}

/// An event a subscription puts on its subscriber's (or provider's) calendar. For the
/// subscriptions work: it calls [`add_subscription_event`].
#[derive(Debug, Clone)]
pub struct NewSubscriptionEvent {
    pub title: String,
    pub description: Option<String>,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Default: the calendar's zone.
    pub timezone: Option<String>,
    /// `subs_...`, required.
    pub subscription_id: String,
    pub contract_id: Option<String>,
    pub exclusive: bool,
}

/// What is about to be written, once checked.
struct Draft {
    title: String,
    description: Option<String>,
    start: Timestamp,
    end: Timestamp,
    timezone: Option<Zone>,
    kind: EventKind,
    exclusive: bool,
    subscription_id: Option<String>,
    contract_id: Option<String>,
}

/// Whole seconds: the wire has second precision, and so do stored events.
fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_unix(at.unix()).unwrap_or(at)
}

fn check_reference(
    errors: &mut Vec<FieldError>,
    field: &str,
    prefix: &'static str,
    value: Option<&str>,
) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    match feria_kernel::id::parse_prefixed(prefix, value) {
        Ok(id) => Some(id),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                format!("must be an id of the form {prefix}_<ULID>"),
            ));
            None
        }
    }
}

fn check_zone(errors: &mut Vec<FieldError>, value: Option<&str>) -> Option<Zone> {
    let name = value?;
    let zone = Zone::parse(name);
    if zone.is_none() {
        errors.push(FieldError::new(
            "timezone",
            format!("`{name}` is not a known IANA time zone (e.g. America/New_York)"),
        ));
    }
    zone
}

fn check_times(errors: &mut Vec<FieldError>, start: Timestamp, end: Timestamp) {
    if end <= start {
        errors.push(FieldError::new("end", "must be after start"));
    }
}

fn check_title(errors: &mut Vec<FieldError>, title: &str) -> String {
    let title = title.trim();
    if title.is_empty() {
        errors.push(FieldError::new("title", "must not be blank"));
    }
    title.to_owned()
}

fn clean_description(description: Option<String>) -> Option<String> {
    description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
}

fn finish(mut errors: Vec<FieldError>) -> Result<(), CalendarError> {
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Err(CalendarError::Invalid(errors))
    }
}

/// The first exclusive event of the calendar overlapping `[start, end)`, other than
/// `except`.
async fn exclusive_clash(
    conn: &mut DbConn,
    calendar_id: &CalendarId,
    start: Timestamp,
    end: Timestamp,
    except: Option<&CalendarEventId>,
) -> Result<Option<CalendarEventId>, CalendarError> {
    let clash = with_conn!(conn, c => {
        let mut query = calendar_events::table
            .filter(calendar_events::calendar_id.eq(calendar_id))
            .filter(calendar_events::is_exclusive.eq(true))
            .filter(calendar_events::starts_at.lt(end))
            .filter(calendar_events::ends_at.gt(start))
            .into_boxed();
        if let Some(except) = except {
            query = query.filter(calendar_events::id.ne(except));
        }
        query
            .order(calendar_events::starts_at.asc())
            .select(calendar_events::id)
            .first::<CalendarEventId>(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    Ok(clash)
}

/// Inserts a checked draft into the user's calendar (created on first use), in one
/// transaction that holds the calendar's lock while it checks for exclusive overlaps.
async fn insert(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    draft: Draft,
) -> Result<CalendarEvent, CalendarError> {
    let user = feria_users::user::get(conn, tenant, user_id).await?;
    let row = conn
        .transaction(async |c| -> Result<EventRow, CalendarError> {
            let calendar = calendar::ensure(c, tenant, &user).await?;
            calendar::lock(c, &calendar.id).await?;
            if draft.exclusive
                && let Some(other) =
                    exclusive_clash(c, &calendar.id, draft.start, draft.end, None).await?
            {
                return Err(CalendarError::ExclusiveOverlap(other));
            }
            let now = Timestamp::now();
            let row = EventRow {
                id: CalendarEventId::new(),
                platform_id: tenant.platform_id.clone(),
                mode: tenant.mode,
                calendar_id: calendar.id.clone(),
                title: draft.title.clone(),
                description: draft.description.clone(),
                starts_at: draft.start,
                ends_at: draft.end,
                timezone: draft
                    .timezone
                    .as_ref()
                    .map(|z| z.name().to_owned())
                    .unwrap_or_else(|| calendar.zone().name().to_owned()),
                kind: draft.kind.as_str().to_owned(),
                is_exclusive: draft.exclusive,
                subscription_id: draft.subscription_id.clone(),
                contract_id: draft.contract_id.clone(),
                created_at: now,
                updated_at: now,
            };
            with_conn!(c, c => diesel::insert_into(calendar_events::table).values(&row).execute(c).await)
                .map_err(DbError::from)?;
            Ok(row)
        })
        .await?;
    Ok(row.into())
}

/// Adds a custom event to the user's calendar (created on first use). `kind:
/// subscription` is refused here: those come from [`add_subscription_event`].
pub async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    new: NewEvent,
) -> Result<CalendarEvent, CalendarError> {
    let mut errors = Vec::new();
    let title = check_title(&mut errors, &new.title);
    if new.kind == Some(EventKind::Subscription) {
        errors.push(FieldError::new(
            "kind",
            "subscription events are created by the platform's subscriptions; use custom",
        ));
    }
    let (start, end) = (whole_seconds(new.start), whole_seconds(new.end));
    check_times(&mut errors, start, end);
    let timezone = check_zone(&mut errors, new.timezone.as_deref());
    let subscription_id = check_reference(
        &mut errors,
        "subscription_id",
        "subs",
        new.subscription_id.as_deref(),
    );
    let contract_id = check_reference(
        &mut errors,
        "contract_id",
        "inv",
        new.contract_id.as_deref(),
    );
    finish(errors)?;
    insert(
        conn,
        tenant,
        user_id,
        Draft {
            title,
            description: clean_description(new.description),
            start,
            end,
            timezone,
            kind: EventKind::Custom,
            exclusive: new.exclusive,
            subscription_id,
            contract_id,
        },
    )
    .await
}

/// Puts a subscription's event on a user's calendar (created on first use). Public for
/// the subscriptions work; no HTTP route calls it (see `docs/CALENDAR.md`). The user
/// cannot change or remove the event; [`remove_subscription_events`] does, when the
/// subscription ends.
pub async fn add_subscription_event(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    new: NewSubscriptionEvent,
) -> Result<CalendarEvent, CalendarError> {
    let mut errors = Vec::new();
    let title = check_title(&mut errors, &new.title);
    if title.chars().count() > 200 {
        errors.push(FieldError::new("title", "must be 1 to 200 characters"));
    }
    let (start, end) = (whole_seconds(new.start), whole_seconds(new.end));
    check_times(&mut errors, start, end);
    let timezone = check_zone(&mut errors, new.timezone.as_deref());
    let subscription_id = check_reference(
        &mut errors,
        "subscription_id",
        "subs",
        Some(&new.subscription_id),
    );
    if subscription_id.is_none() && errors.iter().all(|e| e.field != "subscription_id") {
        errors.push(FieldError::new("subscription_id", "is required"));
    }
    let contract_id = check_reference(
        &mut errors,
        "contract_id",
        "inv",
        new.contract_id.as_deref(),
    );
    finish(errors)?;
    insert(
        conn,
        tenant,
        user_id,
        Draft {
            title,
            description: clean_description(new.description),
            start,
            end,
            timezone,
            kind: EventKind::Subscription,
            exclusive: new.exclusive,
            subscription_id,
            contract_id,
        },
    )
    .await
}

/// Removes every event of a subscription (in the tenant), whoever's calendar it is on;
/// returns how many. For the subscriptions work, when a subscription ends.
pub async fn remove_subscription_events(
    conn: &mut DbConn,
    tenant: &Tenant,
    subscription_id: &str,
) -> Result<usize, CalendarError> {
    // Stored ids are normalised (upper-case ULID); so is the one asked for.
    let subscription_id = feria_kernel::id::parse_prefixed("subs", subscription_id.trim())
        .map_err(|_| {
            CalendarError::invalid("subscription_id", "must be an id of the form subs_<ULID>")
        })?;
    let removed = with_conn!(conn, c => {
        diesel::delete(
            calendar_events::table
                .filter(calendar_events::platform_id.eq(&tenant.platform_id))
                .filter(calendar_events::mode.eq(tenant.mode))
                .filter(calendar_events::kind.eq(EventKind::Subscription.as_str()))
                .filter(calendar_events::subscription_id.eq(&subscription_id)),
        )
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    Ok(removed)
}

/// The event, if it is on this calendar.
async fn find_on(
    conn: &mut DbConn,
    calendar: &CalendarRow,
    id: &CalendarEventId,
) -> Result<EventRow, CalendarError> {
    with_conn!(conn, c => {
        calendar_events::table
            .find(id)
            .filter(calendar_events::calendar_id.eq(&calendar.id))
            .filter(calendar_events::platform_id.eq(&calendar.platform_id))
            .filter(calendar_events::mode.eq(calendar.mode))
            .select(EventRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?
    .ok_or(CalendarError::EventNotFound)
}

/// The user's calendar, or "event not found" when the user has none (so another user's
/// event id is never distinguishable from a missing one).
async fn calendar_of(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
) -> Result<CalendarRow, CalendarError> {
    calendar::find(conn, tenant, user_id)
        .await?
        .ok_or(CalendarError::EventNotFound)
}

/// One of the user's events; another user's event is "not found".
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    id: &CalendarEventId,
) -> Result<CalendarEvent, CalendarError> {
    let calendar = calendar_of(conn, tenant, user_id).await?;
    Ok(find_on(conn, &calendar, id).await?.into())
}

/// Changes one of the user's custom events; re-checks times, zone and exclusivity under
/// the calendar's lock. Subscription events are refused (409).
pub async fn update(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    id: &CalendarEventId,
    changes: EventChanges,
) -> Result<CalendarEvent, CalendarError> {
    let calendar = calendar_of(conn, tenant, user_id).await?;
    let row = conn
        .transaction(async |c| -> Result<EventRow, CalendarError> {
            calendar::lock(c, &calendar.id).await?;
            let current = find_on(c, &calendar, id).await?;
            if EventKind::parse(&current.kind) == EventKind::Subscription {
                return Err(CalendarError::SubscriptionEventLocked("changed"));
            }
            let mut errors = Vec::new();
            let title = match changes.title.as_deref() {
                Some(title) => check_title(&mut errors, title),
                None => current.title.clone(),
            };
            let start = changes
                .start
                .map(whole_seconds)
                .unwrap_or(current.starts_at);
            let end = changes.end.map(whole_seconds).unwrap_or(current.ends_at);
            check_times(&mut errors, start, end);
            let timezone = match check_zone(&mut errors, changes.timezone.as_deref()) {
                Some(zone) => zone.name().to_owned(),
                None => current.timezone.clone(),
            };
            let subscription_id = match changes.subscription_id.as_deref() {
                Some(raw) => check_reference(&mut errors, "subscription_id", "subs", Some(raw)),
                None => current.subscription_id.clone(),
            };
            let contract_id = match changes.contract_id.as_deref() {
                Some(raw) => check_reference(&mut errors, "contract_id", "inv", Some(raw)),
                None => current.contract_id.clone(),
            };
            let description = match changes.description.clone() {
                Some(description) => clean_description(Some(description)),
                None => current.description.clone(),
            };
            finish(errors)?;
            let exclusive = changes.exclusive.unwrap_or(current.is_exclusive);
            if exclusive
                && let Some(other) = exclusive_clash(c, &calendar.id, start, end, Some(id)).await?
            {
                return Err(CalendarError::ExclusiveOverlap(other));
            }
            let updated = EventRow {
                title,
                description,
                starts_at: start,
                ends_at: end,
                timezone,
                is_exclusive: exclusive,
                subscription_id,
                contract_id,
                updated_at: Timestamp::now(),
                ..current
            };
            with_conn!(c, c => {
                diesel::update(calendar_events::table.find(&updated.id))
                    .set((
                        calendar_events::title.eq(&updated.title),
                        calendar_events::description.eq(&updated.description),
                        calendar_events::starts_at.eq(updated.starts_at),
                        calendar_events::ends_at.eq(updated.ends_at),
                        calendar_events::timezone.eq(&updated.timezone),
                        calendar_events::is_exclusive.eq(updated.is_exclusive),
                        calendar_events::subscription_id.eq(&updated.subscription_id),
                        calendar_events::contract_id.eq(&updated.contract_id),
                        calendar_events::updated_at.eq(updated.updated_at),
                    ))
                    .execute(c)
                    .await
            })
            .map_err(DbError::from)?;
            Ok(updated)
        })
        .await?;
    Ok(row.into())
}

/// Removes one of the user's custom events. Subscription events are refused (409).
pub async fn remove(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    id: &CalendarEventId,
) -> Result<(), CalendarError> {
    let calendar = calendar_of(conn, tenant, user_id).await?;
    let current = find_on(conn, &calendar, id).await?;
    if EventKind::parse(&current.kind) == EventKind::Subscription {
        return Err(CalendarError::SubscriptionEventLocked("removed"));
    }
    // The kind is part of the condition: a row cannot turn into a subscription event
    // between the read and the delete, but the guard costs nothing.
    let deleted = with_conn!(conn, c => {
        diesel::delete(
            calendar_events::table
                .find(id)
                .filter(calendar_events::calendar_id.eq(&calendar.id))
                .filter(calendar_events::kind.eq(EventKind::Custom.as_str())),
        )
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if deleted == 0 {
        return Err(CalendarError::EventNotFound);
    }
    Ok(())
}

/// The calendar's events by start; `window` keeps those overlapping it.
pub(crate) async fn for_calendar(
    conn: &mut DbConn,
    calendar_id: &CalendarId,
    window: Option<(Timestamp, Timestamp)>,
) -> Result<Vec<CalendarEvent>, CalendarError> {
    let rows = with_conn!(conn, c => {
        let mut query = calendar_events::table
            .filter(calendar_events::calendar_id.eq(calendar_id))
            .into_boxed();
        if let Some((from, to)) = window {
            query = query
                .filter(calendar_events::starts_at.lt(to))
                .filter(calendar_events::ends_at.gt(from));
        }
        query
            .order((calendar_events::starts_at.asc(), calendar_events::id.asc()))
            .select(EventRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The busy intervals (unix seconds) of the calendar's events overlapping `[from, to)`.
pub(crate) async fn busy(
    conn: &mut DbConn,
    calendar_id: &CalendarId,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<(i64, i64)>, CalendarError> {
    let rows: Vec<(Timestamp, Timestamp)> = with_conn!(conn, c => {
        calendar_events::table
            .filter(calendar_events::calendar_id.eq(calendar_id))
            .filter(calendar_events::starts_at.lt(to))
            .filter(calendar_events::ends_at.gt(from))
            .select((calendar_events::starts_at, calendar_events::ends_at))
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(rows
        .into_iter()
        .map(|(start, end)| (start.unix(), end.unix()))
        .collect())
}
