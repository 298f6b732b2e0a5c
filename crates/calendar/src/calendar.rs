//! The calendar object: one per user, created on first use; its availability rules, set
//! and modified as a whole; the free slots it offers in a range.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{
    DbConn, DbError, FieldError, Mode, PlatformId, Tenant, Timestamp, UserId, with_conn,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::availability::{self, AvailabilityRule, RuleInput, RuleRow, Slot};
use crate::entries::{self, CalendarEvent};
use crate::error::CalendarError;
use crate::schema::{calendar_availability, calendars};
use crate::tz::Zone;

feria_kernel::define_id!(
    /// A user's calendar.
    CalendarId,
    "cal"
);

/// The name a calendar gets when it is created.
pub const DEFAULT_NAME: &str = "Calendar";
/// Most Google Calendar ids one calendar may list.
pub const MAX_GOOGLE_CALENDAR_IDS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = calendars)]
pub(crate) struct CalendarRow {
    pub id: CalendarId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub user_id: UserId,
    pub name: String,
    pub description: String,
    pub google_calendar_ids: String,
    pub timezone: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl CalendarRow {
    pub(crate) fn zone(&self) -> Zone {
        Zone::parse(&self.timezone).unwrap_or_else(|| {
            tracing::warn!(calendar = %self.id, timezone = %self.timezone, "stored time zone is unknown; using UTC");
            Zone::utc()
        })
    }

    fn google_calendar_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.google_calendar_ids).unwrap_or_default()
    }
}

/// A calendar as the API shows it (the seed's object, plus `timezone`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Calendar, example = json!({
    "id": "cal_01HZX6FQJ5N6E7T2M3A4B5C6D7",
    "platform_id": "plat_01HZX6FQJ5N6E7T2M3A4B5C6D7",
    "user_id": "user_01HZX6FQJ5N6E7T2M3A4B5C6D7",
    "name": "Work Schedule",
    "description": "This calendar contains the user's work schedule.",
    "googleCalendarIds": ["google_cal_1", "google_cal_2"],
    "timezone": "America/New_York",
    "availability": [
        {"id": "avail_01HZX6FQJ5N6E7T2M3A4B5C6D7", "type": "weekly", "weekday": "monday", "date": null, "start": "09:00", "end": "17:00"}
    ],
    "events": [],
    "created": "2023-06-21T10:00:00Z",
    "updated": "2023-06-21T10:00:00Z"
}))]
pub struct CalendarObject {
    pub id: CalendarId,
    #[serde(rename = "platform_id")]
    pub platform_id: PlatformId,
    #[serde(rename = "user_id")]
    pub user_id: UserId,
    pub name: String,
    pub description: String,
    /// Google Calendar ids linked to this calendar (stored; not synchronised yet).
    pub google_calendar_ids: Vec<String>,
    /// The IANA time zone the availability rules are written in.
    pub timezone: String,
    /// Weekly rules and dated overrides, in the order they were given.
    pub availability: Vec<AvailabilityRule>,
    /// The calendar's events, by start.
    pub events: Vec<CalendarEvent>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// The availability a user sets or modifies, with the calendar's descriptive fields.
///
/// `POST` sets the full availability: `availability` absent means no rules. `PUT`
/// modifies: only the fields present change. `timezone`, `name`, `description` and
/// `googleCalendarIds` change only when present, with either method.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({
    "timezone": "America/New_York",
    "availability": [
        {"type": "weekly", "weekday": "monday", "start": "09:00", "end": "17:00"},
        {"type": "weekly", "weekday": "tuesday", "start": "09:00", "end": "12:00"},
        {"type": "extra", "date": "2026-03-14", "start": "10:00", "end": "14:00"},
        {"type": "off", "date": "2026-03-17"}
    ]
}))]
pub struct AvailabilityChanges {
    /// IANA time zone the rules are written in (default: the user's profile time zone,
    /// else UTC).
    pub timezone: Option<String>,
    /// Weekly rules and dated overrides (at most 200); replaces the current ones.
    pub availability: Option<Vec<RuleInput>>,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: Option<String>,
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    pub description: Option<String>,
    /// At most 20 (checked in the service: validator would name the field in snake case).
    pub google_calendar_ids: Option<Vec<String>>,
}

/// Whether absent `availability` keeps the rules or clears them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// `POST`: the body is the full availability.
    Set,
    /// `PUT`: only what the body names changes.
    Modify,
}

/// The zone a user's new calendar starts in: the profile's, when it is a known IANA
/// name, else UTC.
fn default_zone(user: &feria_users::User) -> Zone {
    user.timezone
        .as_deref()
        .and_then(Zone::parse)
        .unwrap_or_else(Zone::utc)
}

/// The user's calendar, if it exists.
pub(crate) async fn find(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
) -> Result<Option<CalendarRow>, CalendarError> {
    let found = with_conn!(conn, c => {
        calendars::table
            .filter(calendars::platform_id.eq(&tenant.platform_id))
            .filter(calendars::mode.eq(tenant.mode))
            .filter(calendars::user_id.eq(user_id))
            .select(CalendarRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    Ok(found)
}

/// The user's calendar, created on first use. Safe when two first uses race: the insert
/// does nothing on the unique (platform, mode, user) key and the row is read back.
pub(crate) async fn ensure(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &feria_users::User,
) -> Result<CalendarRow, CalendarError> {
    if let Some(found) = find(conn, tenant, &user.id).await? {
        return Ok(found);
    }
    let now = Timestamp::now();
    let row = CalendarRow {
        id: CalendarId::new(),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        user_id: user.id.clone(),
        name: DEFAULT_NAME.to_owned(),
        description: String::new(),
        google_calendar_ids: "[]".to_owned(),
        timezone: default_zone(user).name().to_owned(),
        created_at: now,
        updated_at: now,
    };
    with_conn!(conn, c => {
        diesel::insert_into(calendars::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    find(conn, tenant, &user.id)
        .await?
        .ok_or(CalendarError::Db(DbError::NotFound))
}

/// Locks the calendar's row until the transaction ends, serialising writers of one
/// calendar (exclusive-event checks, rule replacement).
///
/// Backend-specific: row locking. PostgreSQL takes `FOR UPDATE` on the calendar row;
/// SQLite needs nothing, as its transactions begin `IMMEDIATE` (one writer at a time).
pub(crate) async fn lock(conn: &mut DbConn, id: &CalendarId) -> Result<(), CalendarError> {
    with_conn!(conn,
        sqlite: _c => Ok::<_, diesel::result::Error>(()),
        postgres: c => {
            calendars::table
                .find(id)
                .select(calendars::id)
                .for_update()
                .first::<String>(c)
                .await
                .map(|_| ())
        },
    )
    .map_err(DbError::from)?;
    Ok(())
}

pub(crate) async fn rules(
    conn: &mut DbConn,
    calendar_id: &CalendarId,
) -> Result<Vec<RuleRow>, CalendarError> {
    let rows = with_conn!(conn, c => {
        calendar_availability::table
            .filter(calendar_availability::calendar_id.eq(calendar_id))
            .order(calendar_availability::position.asc())
            .select(RuleRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(rows)
}

fn readable_rules(rows: &[RuleRow]) -> Vec<availability::Rule> {
    rows.iter()
        .filter_map(|row| {
            let rule = row.rule();
            if rule.is_none() {
                tracing::warn!(rule = %row.id, "unreadable availability rule skipped");
            }
            rule
        })
        .collect()
}

pub(crate) async fn object(
    conn: &mut DbConn,
    row: CalendarRow,
    window: Option<(Timestamp, Timestamp)>,
) -> Result<CalendarObject, CalendarError> {
    let rules = rules(conn, &row.id).await?;
    let events = entries::for_calendar(conn, &row.id, window).await?;
    Ok(CalendarObject {
        google_calendar_ids: row.google_calendar_ids(),
        availability: rules.iter().filter_map(RuleRow::to_api).collect(),
        events,
        id: row.id,
        platform_id: row.platform_id,
        user_id: row.user_id,
        name: row.name,
        description: row.description,
        timezone: row.timezone,
        created: row.created_at,
        updated: row.updated_at,
    })
}

/// The user's calendar (created on first use) with its rules and events; `window`
/// limits the events to those overlapping it.
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    window: Option<(Timestamp, Timestamp)>,
) -> Result<CalendarObject, CalendarError> {
    let user = feria_users::user::get(conn, tenant, user_id).await?;
    let row = ensure(conn, tenant, &user).await?;
    object(conn, row, window).await
}

/// Sets (`WriteMode::Set`) or modifies (`WriteMode::Modify`) the user's availability and the
/// calendar's descriptive fields, in one transaction; returns the calendar.
pub async fn write_availability(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    changes: AvailabilityChanges,
    write: WriteMode,
) -> Result<CalendarObject, CalendarError> {
    let user = feria_users::user::get(conn, tenant, user_id).await?;
    let mut errors = Vec::new();
    let zone = match changes.timezone.as_deref() {
        Some(name) => match Zone::parse(name) {
            Some(zone) => Some(zone),
            None => {
                errors.push(FieldError::new(
                    "timezone",
                    format!("`{name}` is not a known IANA time zone (e.g. America/New_York)"),
                ));
                None
            }
        },
        None => None,
    };
    let rules = match (&changes.availability, write) {
        (Some(inputs), _) => match availability::validate_rules(inputs) {
            Ok(rules) => Some(rules),
            Err(CalendarError::Invalid(details)) => {
                errors.extend(details);
                None
            }
            Err(other) => return Err(other),
        },
        (None, WriteMode::Set) => Some(Vec::new()),
        (None, WriteMode::Modify) => None,
    };
    let google_ids = match &changes.google_calendar_ids {
        Some(ids) if ids.len() > MAX_GOOGLE_CALENDAR_IDS => {
            errors.push(FieldError::new(
                "googleCalendarIds",
                format!("at most {MAX_GOOGLE_CALENDAR_IDS} ids"),
            ));
            None
        }
        Some(ids) => {
            let mut clean = Vec::with_capacity(ids.len());
            for (index, id) in ids.iter().enumerate() {
                let id = id.trim();
                if id.is_empty() || id.len() > 255 {
                    errors.push(FieldError::new(
                        format!("googleCalendarIds[{index}]"),
                        "must be 1 to 255 characters",
                    ));
                } else if !clean.iter().any(|c: &String| c == id) {
                    clean.push(id.to_owned());
                }
            }
            // A list of strings always encodes.
            Some(serde_json::to_string(&clean).unwrap_or_else(|_| "[]".to_owned()))
        }
        None => None,
    };
    let name = match changes.name.as_deref().map(str::trim) {
        Some("") => {
            errors.push(FieldError::new("name", "must not be blank"));
            None
        }
        other => other.map(str::to_owned),
    };
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        return Err(CalendarError::Invalid(errors));
    }
    let description = changes.description.map(|d| d.trim().to_owned());
    let row = conn
        .transaction(async |c| -> Result<CalendarRow, CalendarError> {
            let row = ensure(c, tenant, &user).await?;
            lock(c, &row.id).await?;
            let now = Timestamp::now();
            if let Some(rules) = &rules {
                with_conn!(c, c => {
                    diesel::delete(
                        calendar_availability::table
                            .filter(calendar_availability::calendar_id.eq(&row.id)),
                    )
                    .execute(c)
                    .await
                })
                .map_err(DbError::from)?;
                let rows: Vec<RuleRow> = rules
                    .iter()
                    .enumerate()
                    .map(|(position, rule)| RuleRow::new(tenant, &row.id, position, rule, now))
                    .collect();
                // One statement per rule: SQLite has no multi-row insert in diesel for
                // rows with nullable columns; there are at most 200.
                for rule_row in &rows {
                    with_conn!(c, c => {
                        diesel::insert_into(calendar_availability::table)
                            .values(rule_row)
                            .execute(c)
                            .await
                    })
                    .map_err(DbError::from)?;
                }
            }
            let updated = CalendarRow {
                name: name.clone().unwrap_or(row.name.clone()),
                description: description.clone().unwrap_or(row.description.clone()),
                google_calendar_ids: google_ids
                    .clone()
                    .unwrap_or(row.google_calendar_ids.clone()),
                timezone: zone
                    .as_ref()
                    .map(|z| z.name().to_owned())
                    .unwrap_or(row.timezone.clone()),
                updated_at: now,
                ..row
            };
            with_conn!(c, c => {
                diesel::update(calendars::table.find(&updated.id))
                    .set((
                        calendars::name.eq(&updated.name),
                        calendars::description.eq(&updated.description),
                        calendars::google_calendar_ids.eq(&updated.google_calendar_ids),
                        calendars::timezone.eq(&updated.timezone),
                        calendars::updated_at.eq(updated.updated_at),
                    ))
                    .execute(c)
                    .await
            })
            .map_err(DbError::from)?;
            Ok(updated)
        })
        .await?;
    object(conn, row, None).await
}

/// A user's availability in a range, as `GET /calendars/user/{user_id}/availability`
/// shows it: the rules, and the free slots in UTC.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "user_id": "user_01HZX6FQJ5N6E7T2M3A4B5C6D7",
    "timezone": "America/New_York",
    "from": "2026-03-06T00:00:00Z",
    "to": "2026-03-10T00:00:00Z",
    "availability": [
        {"id": "avail_01HZX6FQJ5N6E7T2M3A4B5C6D7", "type": "weekly", "weekday": "monday", "date": null, "start": "09:00", "end": "17:00"}
    ],
    "slots": [{"start": "2026-03-09T13:00:00Z", "end": "2026-03-09T21:00:00Z"}]
}))]
pub struct AvailabilityView {
    pub user_id: UserId,
    /// The zone the rules are written in.
    pub timezone: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub availability: Vec<AvailabilityRule>,
    /// Free intervals in `[from, to)`, in UTC, by start: the rules' hours minus hours
    /// off and minus the calendar's events.
    pub slots: Vec<Slot>,
}

/// The `from`/`to` query of a range: RFC 3339 instants. `from` defaults to now, `to` to
/// seven days after `from`; `to` must be after `from` and at most `max_days` later.
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    max_days: Option<i64>,
) -> Result<(Timestamp, Timestamp), CalendarError> {
    let parse =
        |field: &'static str, raw: Option<&str>| -> Result<Option<Timestamp>, CalendarError> {
            match raw {
                None => Ok(None),
                Some(raw) => Timestamp::parse(raw.trim())
                    .map(|t| Some(Timestamp::from_unix(t.unix()).unwrap_or(t)))
                    .map_err(|_| {
                        CalendarError::invalid(
                            field,
                            "must be an RFC 3339 date-time such as 2023-06-21T10:00:00Z",
                        )
                    }),
            }
        };
    let from_value = parse("from", from)?;
    let to_value = parse("to", to)?;
    let start = match from_value {
        Some(start) => start,
        None => {
            let now = Timestamp::now();
            Timestamp::from_unix(now.unix()).unwrap_or(now)
        }
    };
    let end = match to_value {
        Some(end) => end,
        None => start.add(time::Duration::days(7)),
    };
    if end <= start {
        return Err(CalendarError::invalid("to", "must be after from"));
    }
    if let Some(max_days) = max_days
        && end.since(start) > time::Duration::days(max_days)
    {
        return Err(CalendarError::invalid(
            "to",
            format!("the range may span at most {max_days} days"),
        ));
    }
    Ok((start, end))
}

/// An optional filter window: `None` when neither bound is given; an absent bound is
/// open (the earliest or latest representable instant).
pub fn parse_window(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Option<(Timestamp, Timestamp)>, CalendarError> {
    if from.is_none() && to.is_none() {
        return Ok(None);
    }
    // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    let earliest = Timestamp::from_unix(-62_135_596_800);
    let latest = Timestamp::from_unix(253_402_300_799);
    let (Some(earliest), Some(latest)) = (earliest, latest) else {
        return Ok(None);
    };
    let earliest = earliest.to_rfc3339();
    let latest = latest.to_rfc3339();
    parse_range(
        Some(from.unwrap_or(&earliest)),
        Some(to.unwrap_or(&latest)),
        None,
    )
    .map(Some)
}

/// A user's rules and free slots in `[from, to)`. Any caller of the tenant may ask (it
/// is how others book the user); events are subtracted, never shown. A user without a
/// calendar has no rules and no slots; nothing is created by this read.
pub async fn availability_of(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    from: Timestamp,
    to: Timestamp,
) -> Result<AvailabilityView, CalendarError> {
    let user = feria_users::user::get(conn, tenant, user_id).await?;
    let Some(row) = find(conn, tenant, &user.id).await? else {
        return Ok(AvailabilityView {
            user_id: user.id.clone(),
            timezone: default_zone(&user).name().to_owned(),
            from,
            to,
            availability: Vec::new(),
            slots: Vec::new(),
        });
    };
    let rule_rows = rules(conn, &row.id).await?;
    let busy = entries::busy(conn, &row.id, from, to).await?;
    let zone = row.zone();
    let slots = availability::free_slots(
        &zone,
        &readable_rules(&rule_rows),
        &busy,
        from.unix(),
        to.unix(),
    )
    .into_iter()
    .filter_map(|(start, end)| {
        Some(Slot {
            start: Timestamp::from_unix(start)?,
            end: Timestamp::from_unix(end)?,
        })
    })
    .collect();
    Ok(AvailabilityView {
        user_id: user.id,
        timezone: zone.name().to_owned(),
        from,
        to,
        availability: rule_rows.iter().filter_map(RuleRow::to_api).collect(),
        slots,
    })
}

/// An instant (`date`, RFC 3339) in local time: in `timezone` when given, else in the
/// signed-in user's zone ([`zone_of_user`]); an API key (no `user`) must name the zone.
/// `db` is used only for the user's zone, so a request that names its zone needs no
/// connection.
pub async fn local_time(
    db: &feria_kernel::Db,
    tenant: &Tenant,
    user: Option<&UserId>,
    date: Option<&str>,
    timezone: Option<&str>,
) -> Result<crate::tz::LocalTime, CalendarError> {
    let date = match date {
        Some(raw) => Timestamp::parse(raw.trim()).map_err(|_| {
            CalendarError::invalid(
                "date",
                "must be an RFC 3339 date-time such as 2023-06-21T10:00:00Z",
            )
        })?,
        None => return Err(CalendarError::invalid("date", "is required")),
    };
    let zone = match (timezone, user) {
        (Some(name), _) => Zone::parse(name).ok_or_else(|| {
            CalendarError::invalid(
                "timezone",
                format!("`{name}` is not a known IANA time zone (e.g. America/New_York)"),
            )
        })?,
        (None, Some(user_id)) => zone_of_user(&mut db.conn().await?, tenant, user_id).await?,
        (None, None) => {
            return Err(CalendarError::invalid(
                "timezone",
                "is required with an API key (there is no signed-in user)",
            ));
        }
    };
    zone.local_time(date)
        .ok_or_else(|| CalendarError::invalid("date", "is out of range"))
}

/// The zone `GET /calendar/localtime` shows a user's times in: the profile's time zone
/// when it is a known IANA name, else the calendar's, else UTC.
pub async fn zone_of_user(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
) -> Result<Zone, CalendarError> {
    let user = feria_users::user::get(conn, tenant, user_id).await?;
    if let Some(zone) = user.timezone.as_deref().and_then(Zone::parse) {
        return Ok(zone);
    }
    Ok(match find(conn, tenant, user_id).await? {
        Some(row) => row.zone(),
        None => Zone::utc(),
    })
}
