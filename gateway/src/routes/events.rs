//! The event log and webhook endpoints (API keys only; the key's platform and mode).
//! See docs/EVENTS.md.

use actix_web::{HttpResponse, web};
use feria_events::deliveries::{AttemptObject, DeliveryObject};
use feria_events::endpoints::{EndpointChanges, EndpointObject, NewEndpoint};
use feria_events::outbox::{DEFAULT_LIMIT, EventList};
use feria_events::{DeliveryId, EndpointId, EventId, EventObject, EventsError};
use feria_kernel::sealed::Keyring;
use feria_kernel::{Db, ErrorBody, Page};
use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

use crate::caller::Caller;
use crate::config::Config;
use crate::error::HttpError;
use crate::extract::{Json, Pagination, Query};
use crate::replicas::Reads;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/events").route(web::get().to(list_events)))
        .service(web::resource("/events/{id}").route(web::get().to(get_event)))
        .service(
            web::resource("/webhook_endpoints")
                .route(web::get().to(list_endpoints))
                .route(web::post().to(create_endpoint)),
        )
        .service(
            web::resource("/webhook_endpoints/{id}")
                .route(web::get().to(get_endpoint))
                .route(web::put().to(update_endpoint))
                .route(web::delete().to(delete_endpoint)),
        )
        .service(
            web::resource("/webhook_endpoints/{id}/deliveries").route(web::get().to(deliveries)),
        )
        .service(
            web::resource("/webhook_endpoints/{id}/deliveries/{delivery_id}/redeliver")
                .route(web::post().to(redeliver)),
        );
}

fn event_id(raw: &str) -> Result<EventId, HttpError> {
    raw.parse().map_err(|_| EventsError::EventNotFound.into())
}

fn endpoint_id(raw: &str) -> Result<EndpointId, HttpError> {
    raw.parse()
        .map_err(|_| EventsError::EndpointNotFound.into())
}

/// Which slice of the event log.
#[derive(Debug, Clone, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events with a sequence above this one (default 0: from the start).
    #[validate(range(min = 0, message = "must be at least 0"))]
    pub after: Option<i64>,
    /// Only events of this type (`product.created` ...).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// At most this many events (default 100, at most 1000).
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    pub limit: Option<i64>,
}

/// The event log of the key's platform and mode, in sequence order.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "events_list",
    security(("api_key" = [])),
    params(EventsQuery),
    responses(
        (status = 200, description = "Events after `after`, in sequence order.", body = EventList),
        (status = 400, description = "The query string is malformed.", body = ErrorBody),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an API key (`api_key_required`).", body = ErrorBody),
        (status = 422, description = "`after`, `type` or `limit` is invalid.", body = ErrorBody)
    )
)]
pub async fn list_events(
    caller: Caller,
    query: Query<EventsQuery>,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    caller.require_api_key()?;
    let query = query.0;
    let list = reads
        .run(&caller, async |conn| {
            Ok(feria_events::outbox::list(
                conn,
                &caller.tenant,
                query.after.unwrap_or(0),
                query.event_type.as_deref(),
                query.limit.unwrap_or(DEFAULT_LIMIT),
            )
            .await?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// One event.
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}",
    tag = "events",
    operation_id = "events_get",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The event's id (`evt_...`).")),
    responses(
        (status = 200, description = "The event.", body = EventObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an API key (`api_key_required`).", body = ErrorBody),
        (status = 404, description = "No such event in this platform and mode.", body = ErrorBody)
    )
)]
pub async fn get_event(
    caller: Caller,
    id: web::Path<String>,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    caller.require_api_key()?;
    let id = event_id(&id)?;
    let event = reads
        .run(&caller, async |conn| {
            Ok(feria_events::outbox::get(conn, &caller.tenant, &id).await?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(event))
}

/// Creates a webhook endpoint; the response carries its signing secret, shown this once.
#[utoipa::path(
    post,
    path = "/api/v1/webhook_endpoints",
    tag = "webhooks",
    operation_id = "webhook_endpoints_create",
    security(("api_key" = [])),
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "The endpoint, with its full `secret`.", body = EndpointObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an API key (`api_key_required`).", body = ErrorBody),
        (status = 422, description = "Invalid URL (not https, or a private or local target), unknown event type, or too many endpoints.", body = ErrorBody)
    )
)]
pub async fn create_endpoint(
    caller: Caller,
    body: Json<NewEndpoint>,
    db: web::Data<Db>,
    config: web::Data<Config>,
    keys: web::Data<Keyring>,
) -> Result<HttpResponse, HttpError> {
    caller.require_api_key()?;
    let mut conn = db.conn().await?;
    let endpoint = feria_events::endpoints::create(
        &mut conn,
        &caller.tenant,
        body.into_inner(),
        config.webhooks.allow_private_targets,
        &keys,
    )
    .await?;
    Ok(HttpResponse::Created().json(endpoint))
}

/// The webhook endpoints of the key's platform and mode, oldest first (secrets masked).
#[utoipa::path(
    get,
    path = "/api/v1/webhook_endpoints",
    tag = "webhooks",
    operation_id = "webhook_endpoints_list",
    security(("api_key" = [])),
    params(feria_kernel::PageQuery),
    responses(
        (status = 200, description = "A page of endpoints.", body = Page<EndpointObject>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an API key (`api_key_required`).", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn list_endpoints(
    caller: Caller,
    page: Pagination,
    reads: web::Data<Reads>,
    keys: web::Data<Keyring>,
) -> Result<HttpResponse, HttpError> {
    caller.require_api_key()?;
    let page = reads
        .run(&caller, async |conn| {
            Ok(feria_events::endpoints::list(conn, &caller.tenant, page.0, &keys).await?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One webhook endpoint (secret masked).
#[utoipa::path(
    get,
    path = "/api/v1/webhook_endpoints/{id}",
    tag = "webhooks",
    operation_id = "webhook_endpoints_get",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`we_...`).")),
    responses(
        (status = 200, description = "The endpoint.", body = EndpointObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an API key (`api_key_required`).", body = ErrorBody),
        (status = 404, description = "No such endpoint in this platform and mode.", body = ErrorBody)
    )
)]
pub async fn get_endpoint(
    caller: Caller,
    id: web::Path<String>,
    reads: web::Data<Reads>,
    keys: web::Data<Keyring>,
) -> Result<HttpResponse, HttpError> {
    caller.require_api_key()?;
    let id = endpoint_id(&id)?;
    let endpoint = reads
        .run(&caller, async |conn| {
            Ok(feria_events::endpoints::get(conn, &caller.tenant, &id, &keys).await?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(endpoint))
}

/// Changes a webhook endpoint; `"enabled": true` re-enables one Feria disabled.
#[utoipa::path(
    put,
    path = "/api/v1/webhook_endpoints/{id}",
    tag = "webhooks",
    operation_id = "webhook_endpoints_update",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`we_...`).")),
    request_body = EndpointChanges,
    responses(
        (status = 200, description = "The endpoint as changed.", body = EndpointObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an API key (`api_key_required`).", body = ErrorBody),
        (status = 404, description = "No such endpoint in this platform and mode.", body = ErrorBody),
        (status = 422, description = "Invalid URL or event type.", body = ErrorBody)
    )
)]
pub async fn update_endpoint(
    caller: Caller,
    id: web::Path<String>,
    body: Json<EndpointChanges>,
    db: web::Data<Db>,
    config: web::Data<Config>,
    keys: web::Data<Keyring>,
) -> Result<HttpResponse, HttpError> {
    caller.require_api_key()?;
    let id = endpoint_id(&id)?;
    let mut conn = db.conn().await?;
    let endpoint = feria_events::endpoints::update(
        &mut conn,
        &caller.tenant,
        &id,
        body.into_inner(),
        config.webhooks.allow_private_targets,
        &keys,
    )
    .await?;
    Ok(HttpResponse::Ok().json(endpoint))
}

/// Deletes a webhook endpoint and its delivery history.
#[utoipa::path(
    delete,
    path = "/api/v1/webhook_endpoints/{id}",
    tag = "webhooks",
    operation_id = "webhook_endpoints_delete",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`we_...`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an API key (`api_key_required`).", body = ErrorBody),
        (status = 404, description = "No such endpoint in this platform and mode.", body = ErrorBody)
    )
)]
pub async fn delete_endpoint(
    caller: Caller,
    id: web::Path<String>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    caller.require_api_key()?;
    let id = endpoint_id(&id)?;
    let mut conn = db.conn().await?;
    feria_events::endpoints::delete(&mut conn, &caller.tenant, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The endpoint's delivery attempts, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhook_endpoints/{id}/deliveries",
    tag = "webhooks",
    operation_id = "webhook_endpoints_deliveries",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id (`we_...`)."),
        feria_kernel::PageQuery
    ),
    responses(
        (status = 200, description = "A page of attempts.", body = Page<AttemptObject>),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an API key (`api_key_required`).", body = ErrorBody),
        (status = 404, description = "No such endpoint in this platform and mode.", body = ErrorBody),
        (status = 422, description = "Invalid page or page_size.", body = ErrorBody)
    )
)]
pub async fn deliveries(
    caller: Caller,
    id: web::Path<String>,
    page: Pagination,
    reads: web::Data<Reads>,
) -> Result<HttpResponse, HttpError> {
    caller.require_api_key()?;
    let id = endpoint_id(&id)?;
    let page = reads
        .run(&caller, async |conn| {
            Ok(feria_events::deliveries::attempts(conn, &caller.tenant, &id, page.0).await?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Sends a delivery again now (with a fresh retry window), whatever its state.
#[utoipa::path(
    post,
    path = "/api/v1/webhook_endpoints/{id}/deliveries/{delivery_id}/redeliver",
    tag = "webhooks",
    operation_id = "webhook_endpoints_redeliver",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id (`we_...`)."),
        ("delivery_id" = String, Path, description = "The delivery's id (`whd_...`), from an attempt's `delivery_id`.")
    ),
    responses(
        (status = 202, description = "Scheduled: the worker sends it on its next round.", body = DeliveryObject),
        (status = 401, description = "No or invalid credentials.", body = ErrorBody),
        (status = 403, description = "Not an API key (`api_key_required`).", body = ErrorBody),
        (status = 404, description = "No such endpoint or delivery in this platform and mode.", body = ErrorBody),
        (status = 409, description = "The endpoint is disabled (`webhook_endpoint_disabled`).", body = ErrorBody)
    )
)]
pub async fn redeliver(
    caller: Caller,
    path: web::Path<(String, String)>,
    db: web::Data<Db>,
    config: web::Data<Config>,
) -> Result<HttpResponse, HttpError> {
    caller.require_api_key()?;
    let (endpoint, delivery) = path.into_inner();
    let endpoint = endpoint_id(&endpoint)?;
    let delivery: DeliveryId = delivery
        .parse()
        .map_err(|_| HttpError::from(EventsError::DeliveryNotFound))?;
    let mut conn = db.conn().await?;
    let delivery = feria_events::deliveries::redeliver(
        &mut conn,
        &caller.tenant,
        &endpoint,
        &delivery,
        config.webhooks.retry_window,
    )
    .await?;
    Ok(HttpResponse::Accepted().json(delivery))
}
