//! Calendars: the signed-in user's calendar, availability and events
//! (`/calendars/auth...`), anyone's free slots (`/calendars/user/{user_id}/availability`),
//! the `.ics` feed, and local-time conversion (`/calendar/localtime`).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use feria_calendar::{
    AvailabilityChanges, AvailabilityView, CalendarError, CalendarEvent, CalendarEventId,
    CalendarObject, EventChanges, LocalTime, NewEvent, WriteMode,
};
use feria_kernel::{Db, ErrorBody, UserId};
use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

use crate::caller::Caller;
use crate::error::HttpError;
use crate::extract::{Json, Query};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Static segments before `{id}` ones.
    cfg.service(web::resource("/calendars/auth").route(web::get().to(my_calendar)))
        .service(
            web::resource("/calendars/auth/availability")
                .route(web::post().to(set_availability))
                .route(web::put().to(modify_availability)),
        )
        .service(web::resource("/calendars/auth/ics").route(web::get().to(my_ics)))
        .service(web::resource("/calendars/auth/event").route(web::post().to(add_event)))
        .service(
            web::resource("/calendars/auth/event/{event_id}")
                .route(web::get().to(get_event))
                .route(web::put().to(update_event))
                .route(web::delete().to(remove_event)),
        )
        .service(
            web::resource("/calendars/user/{user_id}/availability")
                .route(web::get().to(user_availability)),
        )
        .service(web::resource("/calendar/localtime").route(web::get().to(localtime)));
}

fn event_id(raw: &str) -> Result<CalendarEventId, HttpError> {
    raw.parse().map_err(|_| CalendarError::EventNotFound.into())
}

fn user_id(raw: &str) -> Result<UserId, HttpError> {
    raw.parse().map_err(|_| CalendarError::UserNotFound.into())
}

/// A time range in the query string (RFC 3339 instants).
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start of the range (default: now).
    #[param(example = "2026-03-06T00:00:00Z")]
    pub from: Option<String>,
    /// End of the range, after `from` (default: seven days after `from`).
    #[param(example = "2026-03-13T00:00:00Z")]
    pub to: Option<String>,
}

/// Optional filter of the events shown with the calendar.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventWindowQuery {
    /// Only events ending after this instant (RFC 3339).
    pub from: Option<String>,
    /// Only events starting before this instant (RFC 3339).
    pub to: Option<String>,
}

/// The signed-in user's calendar (created on first use): rules and events.
#[utoipa::path(
    get,
    path = "/api/v1/calendars/auth",
    tag = "calendars",
    operation_id = "calendars_me",
    security(("session" = [])),
    params(EventWindowQuery),
    responses(
        (status = 200, description = "The calendar; `events` are all of them, or those overlapping `from`–`to` when given.", body = CalendarObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "`from` or `to` is not an RFC 3339 instant, or `to` is not after `from`.", body = ErrorBody)
    )
)]
pub async fn my_calendar(
    caller: Caller,
    query: Query<EventWindowQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let window =
        feria_calendar::calendar::parse_window(query.from.as_deref(), query.to.as_deref())?;
    let mut conn = db.conn().await?;
    let calendar =
        feria_calendar::calendar::get(&mut conn, &caller.tenant, user_id, window).await?;
    Ok(HttpResponse::Ok().json(calendar))
}

/// Sets the signed-in user's full availability: the rules given replace all current
/// ones (none given: no rules). Also sets `timezone`, `name`, `description` and
/// `googleCalendarIds` when present.
#[utoipa::path(
    post,
    path = "/api/v1/calendars/auth/availability",
    tag = "calendars",
    operation_id = "calendars_set_availability",
    security(("session" = [])),
    request_body = AvailabilityChanges,
    responses(
        (status = 200, description = "The calendar with its new availability.", body = CalendarObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "Invalid rules (`availability[i].field`: times, end before start, overlaps) or an unknown `timezone`.", body = ErrorBody)
    )
)]
pub async fn set_availability(
    caller: Caller,
    body: Json<AvailabilityChanges>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    let calendar = feria_calendar::calendar::write_availability(
        &mut conn,
        &caller.tenant,
        user_id,
        body.into_inner(),
        WriteMode::Set,
    )
    .await?;
    Ok(HttpResponse::Ok().json(calendar))
}

/// Modifies the signed-in user's availability: only the fields present change
/// (`availability`, when present, replaces the rules).
#[utoipa::path(
    put,
    path = "/api/v1/calendars/auth/availability",
    tag = "calendars",
    operation_id = "calendars_modify_availability",
    security(("session" = [])),
    request_body = AvailabilityChanges,
    responses(
        (status = 200, description = "The calendar with its availability.", body = CalendarObject),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 422, description = "Invalid rules or an unknown `timezone`.", body = ErrorBody)
    )
)]
pub async fn modify_availability(
    caller: Caller,
    body: Json<AvailabilityChanges>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    let calendar = feria_calendar::calendar::write_availability(
        &mut conn,
        &caller.tenant,
        user_id,
        body.into_inner(),
        WriteMode::Modify,
    )
    .await?;
    Ok(HttpResponse::Ok().json(calendar))
}

/// The signed-in user's events as an iCalendar (RFC 5545) document, for calendar apps to
/// import. Times are UTC.
#[utoipa::path(
    get,
    path = "/api/v1/calendars/auth/ics",
    tag = "calendars",
    operation_id = "calendars_ics",
    security(("session" = [])),
    responses(
        (status = 200, description = "The iCalendar document.", content_type = "text/calendar", body = String),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody)
    )
)]
pub async fn my_ics(caller: Caller, db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    let document = feria_calendar::ics::for_user(&mut conn, &caller.tenant, user_id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, feria_calendar::ics::CONTENT_TYPE))
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"calendar.ics\"",
        ))
        .body(document))
}

/// Adds a custom event to the signed-in user's calendar. An `exclusive` event may not
/// overlap another exclusive event (409 `event_overlap`), also under concurrent requests.
#[utoipa::path(
    post,
    path = "/api/v1/calendars/auth/event",
    tag = "calendars",
    operation_id = "calendars_add_event",
    security(("session" = [])),
    request_body = NewEvent,
    responses(
        (status = 201, description = "The new event.", body = CalendarEvent),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 409, description = "An exclusive event would overlap another exclusive event (`event_overlap`).", body = ErrorBody),
        (status = 422, description = "Invalid fields: blank title, `end` not after `start`, unknown `timezone`, `kind: subscription`, malformed `subscription_id`/`contract_id`.", body = ErrorBody)
    )
)]
pub async fn add_event(
    caller: Caller,
    body: Json<NewEvent>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let mut conn = db.conn().await?;
    let event =
        feria_calendar::entries::create(&mut conn, &caller.tenant, user_id, body.into_inner())
            .await?;
    Ok(HttpResponse::Created().json(event))
}

/// One of the signed-in user's events.
#[utoipa::path(
    get,
    path = "/api/v1/calendars/auth/event/{event_id}",
    tag = "calendars",
    operation_id = "calendars_get_event",
    security(("session" = [])),
    params(("event_id" = String, Path, description = "The event's id (`cevt_...`).")),
    responses(
        (status = 200, description = "The event.", body = CalendarEvent),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such event on the user's calendar (another user's event included).", body = ErrorBody)
    )
)]
pub async fn get_event(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let id = event_id(&path)?;
    let mut conn = db.conn().await?;
    let event = feria_calendar::entries::get(&mut conn, &caller.tenant, user_id, &id).await?;
    Ok(HttpResponse::Ok().json(event))
}

/// Changes one of the signed-in user's custom events; absent fields stay.
#[utoipa::path(
    put,
    path = "/api/v1/calendars/auth/event/{event_id}",
    tag = "calendars",
    operation_id = "calendars_update_event",
    security(("session" = [])),
    params(("event_id" = String, Path, description = "The event's id (`cevt_...`).")),
    request_body = EventChanges,
    responses(
        (status = 200, description = "The updated event.", body = CalendarEvent),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such event on the user's calendar.", body = ErrorBody),
        (status = 409, description = "A subscription event (`subscription_event_locked`), or an overlap of exclusive events (`event_overlap`).", body = ErrorBody),
        (status = 422, description = "Invalid fields.", body = ErrorBody)
    )
)]
pub async fn update_event(
    caller: Caller,
    path: web::Path<String>,
    body: Json<EventChanges>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let id = event_id(&path)?;
    let mut conn = db.conn().await?;
    let event =
        feria_calendar::entries::update(&mut conn, &caller.tenant, user_id, &id, body.into_inner())
            .await?;
    Ok(HttpResponse::Ok().json(event))
}

/// Removes one of the signed-in user's events; subscription events cannot be removed.
#[utoipa::path(
    delete,
    path = "/api/v1/calendars/auth/event/{event_id}",
    tag = "calendars",
    operation_id = "calendars_remove_event",
    security(("session" = [])),
    params(("event_id" = String, Path, description = "The event's id (`cevt_...`).")),
    responses(
        (status = 204, description = "Removed."),
        (status = 401, description = "No or invalid session.", body = ErrorBody),
        (status = 403, description = "An API key is not a user (`api_key_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such event on the user's calendar.", body = ErrorBody),
        (status = 409, description = "A subscription event (`subscription_event_locked`).", body = ErrorBody)
    )
)]
pub async fn remove_event(
    caller: Caller,
    path: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let user_id = caller.require_user()?;
    let id = event_id(&path)?;
    let mut conn = db.conn().await?;
    feria_calendar::entries::remove(&mut conn, &caller.tenant, user_id, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A user's availability rules and free slots in a range, in UTC, with events
/// subtracted (never shown). Any caller of the platform: a signed-in user or the API key.
#[utoipa::path(
    get,
    path = "/api/v1/calendars/user/{user_id}/availability",
    tag = "calendars",
    operation_id = "calendars_user_availability",
    security(("api_key" = []), ("session" = [])),
    params(
        ("user_id" = String, Path, description = "The user's id (`user_...`)."),
        RangeQuery
    ),
    responses(
        (status = 200, description = "Rules and free slots.", body = AvailabilityView),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 404, description = "No such user on this platform and mode.", body = ErrorBody),
        (status = 422, description = "`from`/`to` not RFC 3339, `to` not after `from`, or a range over 62 days.", body = ErrorBody)
    )
)]
pub async fn user_availability(
    caller: Caller,
    path: web::Path<String>,
    query: Query<RangeQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let id = user_id(&path)?;
    let (from, to) = feria_calendar::calendar::parse_range(
        query.from.as_deref(),
        query.to.as_deref(),
        Some(feria_calendar::availability::MAX_RANGE_DAYS),
    )?;
    let mut conn = db.conn().await?;
    let view =
        feria_calendar::calendar::availability_of(&mut conn, &caller.tenant, &id, from, to).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The instant to convert and, optionally, the zone.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LocalTimeQuery {
    /// A UTC instant, RFC 3339.
    #[param(example = "2023-06-21T10:00:00Z")]
    pub date: Option<String>,
    /// IANA time zone (default: the signed-in user's; required with an API key).
    #[param(example = "Europe/Madrid")]
    pub timezone: Option<String>,
}

/// Converts a UTC instant to local time: in `timezone` when given, else in the signed-in
/// user's time zone (the profile's, else the calendar's, else UTC).
#[utoipa::path(
    get,
    path = "/api/v1/calendar/localtime",
    tag = "calendars",
    operation_id = "calendar_localtime",
    security(("api_key" = []), ("session" = [])),
    params(LocalTimeQuery),
    responses(
        (status = 200, description = "The local view of the instant.", body = LocalTime),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 422, description = "`date` missing or not RFC 3339; unknown `timezone`; no `timezone` with an API key.", body = ErrorBody)
    )
)]
pub async fn localtime(
    caller: Caller,
    query: Query<LocalTimeQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let local = feria_calendar::calendar::local_time(
        &db,
        &caller.tenant,
        caller.user_id(),
        query.date.as_deref(),
        query.timezone.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(local))
}
