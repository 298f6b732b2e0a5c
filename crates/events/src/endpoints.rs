//! Webhook endpoints: where a platform wants its events, which types, and the secret
//! that signs them. Test and live endpoints are separate (the mode of the API key).
//!
//! Signing needs the secret back, so a digest would not do: it is stored sealed under the
//! server's secret key (`FERIA_SECRET_KEY`, [`feria_kernel::sealed`]), with the endpoint's
//! id as the associated data, so a database dump alone does not reveal it. It is shown in
//! full once, on creation; reads show a masked form. Rows written in clear (before
//! secrets were sealed) are sealed at start-up ([`seal_secrets`]) and still read until
//! then (docs/EVENTS.md).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::sealed::{Keyring, SealError};
use feria_kernel::{
    DbConn, DbError, Mode, Page, PageRequest, PlatformId, Tenant, Timestamp, with_conn,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::EventsError;
use crate::outbox::EventType;
use crate::schema::{webhook_attempts, webhook_deliveries, webhook_endpoints};
use crate::ssrf;

feria_kernel::define_id!(
    /// A webhook endpoint.
    EndpointId,
    "we"
);

feria_kernel::define_id!(
    /// One event's delivery to one endpoint.
    DeliveryId,
    "whd"
);

feria_kernel::define_id!(
    /// One HTTP attempt of a delivery.
    AttemptId,
    "wha"
);

/// Most endpoints per platform and mode.
pub const MAX_ENDPOINTS: i64 = 20;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_EVENT_TYPES: usize = 50;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub(crate) struct EndpointRow {
    pub id: EndpointId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub url: String,
    pub description: String,
    pub event_types: String,
    pub enabled: bool,
    pub secret: String,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: i64,
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl EndpointRow {
    pub(crate) fn event_type_list(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }

    /// Whether this endpoint wants events of `event_type`.
    pub(crate) fn wants(&self, event_type: &str) -> bool {
        self.event_type_list()
            .iter()
            .any(|t| t == "*" || t == event_type)
    }

    /// The associated data the secret is sealed with: the row it belongs to.
    fn seal_context(id: &EndpointId) -> String {
        format!("webhook_endpoint:{id}")
    }

    /// The signing secret in clear: opened, or as stored when it was written in clear.
    pub(crate) fn secret(&self, keys: &Keyring) -> Result<String, SealError> {
        if feria_kernel::sealed::is_sealed(&self.secret) {
            keys.open_str(&self.secret, &Self::seal_context(&self.id))
        } else {
            Ok(self.secret.clone())
        }
    }

    /// The object; `with_secret`: the whole secret (on creation only), else masked.
    pub(crate) fn to_object(&self, keys: &Keyring, with_secret: bool) -> EndpointObject {
        let secret = match self.secret(keys) {
            Ok(secret) if with_secret => secret,
            Ok(secret) => feria_kernel::secret::mask(&secret, "whsec_".len()),
            // A secret sealed under a key this server does not hold: say so, masked.
            Err(_) => "whsec_…????".to_owned(),
        };
        EndpointObject {
            id: self.id.clone(),
            url: self.url.clone(),
            description: self.description.clone(),
            enabled_events: self.event_type_list(),
            enabled: self.enabled,
            mode: self.mode,
            disabled_reason: self.disabled_reason.clone(),
            secret,
            created: self.created_at,
            updated: self.updated_at,
        }
    }
}

/// A webhook endpoint as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = WebhookEndpoint)]
pub struct EndpointObject {
    pub id: EndpointId,
    /// Where events are POSTed.
    pub url: String,
    pub description: String,
    /// Event types sent here, or `["*"]` for all.
    pub enabled_events: Vec<String>,
    /// Off: nothing is sent (set by hand, or automatically after sustained failure).
    pub enabled: bool,
    pub mode: Mode,
    /// Why Feria disabled the endpoint, when it did.
    pub disabled_reason: Option<String>,
    /// The signing secret: in full in the response to the creation only, masked
    /// (`whsec_…9f3a`) afterwards.
    #[schema(example = "whsec_…9f3a")]
    pub secret: String,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A new webhook endpoint.
#[derive(Debug, Clone, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(as = NewWebhookEndpoint)]
pub struct NewEndpoint {
    /// `https://...` (plain `http` only when the server allows private targets).
    pub url: String,
    /// Event types to send, or `["*"]` for all.
    pub enabled_events: Vec<String>,
    pub description: Option<String>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

/// Changes to a webhook endpoint; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookEndpointChanges)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub enabled_events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Enabling an endpoint clears its failure count and `disabled_reason`.
    pub enabled: Option<bool>,
}

fn check_event_types(types: &[String]) -> Result<String, EventsError> {
    if types.is_empty() {
        return Err(EventsError::invalid(
            "enabled_events",
            "must name at least one event type, or `*`",
        ));
    }
    if types.len() > MAX_EVENT_TYPES {
        return Err(EventsError::invalid(
            "enabled_events",
            format!("must name at most {MAX_EVENT_TYPES} event types"),
        ));
    }
    let mut unique: Vec<String> = Vec::new();
    for name in types {
        if name != "*" && EventType::parse(name).is_none() {
            return Err(EventsError::invalid(
                "enabled_events",
                format!("`{name}` is not an event type"),
            ));
        }
        if !unique.contains(name) {
            unique.push(name.clone());
        }
    }
    serde_json::to_string(&unique).map_err(|e| {
        EventsError::Db(DbError::Query(diesel::result::Error::SerializationError(
            Box::new(e),
        )))
    })
}

fn check_description(description: &str) -> Result<String, EventsError> {
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(EventsError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(description.to_owned())
}

async fn check_url(raw: &str, allow_private: bool) -> Result<String, EventsError> {
    let url =
        ssrf::parse_url(raw.trim(), allow_private).map_err(|m| EventsError::invalid("url", m))?;
    ssrf::check_target(&url, allow_private)
        .await
        .map_err(|m| EventsError::invalid("url", m))?;
    Ok(url.to_string())
}

/// Creates an endpoint with a fresh signing secret, returned in full this once.
pub async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    new: NewEndpoint,
    allow_private: bool,
    keys: &Keyring,
) -> Result<EndpointObject, EventsError> {
    let event_types = check_event_types(&new.enabled_events)?;
    let description = check_description(new.description.as_deref().unwrap_or_default())?;
    let url = check_url(&new.url, allow_private).await?;
    let now = Timestamp::now();
    let id = EndpointId::new();
    let secret = feria_kernel::secret::random_token("whsec_");
    let row = EndpointRow {
        secret: keys.seal_str(&secret, &EndpointRow::seal_context(&id)),
        id,
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        url,
        description,
        event_types,
        enabled: new.enabled.unwrap_or(true),
        disabled_reason: None,
        consecutive_failures: 0,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    conn.transaction(async |c| -> Result<(), EventsError> {
        let count: i64 = with_conn!(c, c => {
            webhook_endpoints::table
                .filter(webhook_endpoints::platform_id.eq(&tenant.platform_id))
                .filter(webhook_endpoints::mode.eq(tenant.mode))
                .count()
                .get_result(c)
                .await
        })
        .map_err(DbError::from)?;
        if count >= MAX_ENDPOINTS {
            return Err(EventsError::invalid(
                "url",
                format!("a platform has at most {MAX_ENDPOINTS} webhook endpoints per mode"),
            ));
        }
        with_conn!(c, c => diesel::insert_into(webhook_endpoints::table).values(&row).execute(c).await)
            .map_err(DbError::from)?;
        Ok(())
    })
    .await?;
    let mut object = row.to_object(keys, false);
    object.secret = secret;
    Ok(object)
}

pub(crate) async fn get_row(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &EndpointId,
) -> Result<EndpointRow, EventsError> {
    let row = with_conn!(conn, c => {
        webhook_endpoints::table
            .find(id)
            .filter(webhook_endpoints::platform_id.eq(&tenant.platform_id))
            .filter(webhook_endpoints::mode.eq(tenant.mode))
            .select(EndpointRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    row.ok_or(EventsError::EndpointNotFound)
}

/// One endpoint of the tenant (secret masked).
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &EndpointId,
    keys: &Keyring,
) -> Result<EndpointObject, EventsError> {
    Ok(get_row(conn, tenant, id).await?.to_object(keys, false))
}

/// The tenant's endpoints, oldest first (secrets masked).
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    page: PageRequest,
    keys: &Keyring,
) -> Result<Page<EndpointObject>, EventsError> {
    let (rows, total) = with_conn!(conn, c => async {
        let rows: Vec<EndpointRow> = webhook_endpoints::table
            .filter(webhook_endpoints::platform_id.eq(&tenant.platform_id))
            .filter(webhook_endpoints::mode.eq(tenant.mode))
            .order((webhook_endpoints::created_at.asc(), webhook_endpoints::id.asc()))
            .limit(page.limit())
            .offset(page.offset())
            .select(EndpointRow::as_select())
            .load(c)
            .await?;
        let total: i64 = webhook_endpoints::table
            .filter(webhook_endpoints::platform_id.eq(&tenant.platform_id))
            .filter(webhook_endpoints::mode.eq(tenant.mode))
            .count()
            .get_result(c)
            .await?;
        Ok::<_, diesel::result::Error>((rows, total))
    }
    .await)
    .map_err(DbError::from)?;
    Ok(Page::new(
        rows.iter().map(|r| r.to_object(keys, false)).collect(),
        page,
        u64::try_from(total).unwrap_or(0),
    ))
}

#[derive(AsChangeset)]
#[diesel(table_name = webhook_endpoints)]
struct EndpointChangeset {
    url: Option<String>,
    description: Option<String>,
    event_types: Option<String>,
    enabled: Option<bool>,
    disabled_reason: Option<Option<String>>,
    consecutive_failures: Option<i64>,
    failing_since: Option<Option<Timestamp>>,
    updated_at: Timestamp,
}

/// Applies changes to an endpoint.
pub async fn update(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &EndpointId,
    changes: EndpointChanges,
    allow_private: bool,
    keys: &Keyring,
) -> Result<EndpointObject, EventsError> {
    get_row(conn, tenant, id).await?;
    let url = match &changes.url {
        Some(url) => Some(check_url(url, allow_private).await?),
        None => None,
    };
    let event_types = changes
        .enabled_events
        .as_deref()
        .map(check_event_types)
        .transpose()?;
    let description = changes
        .description
        .as_deref()
        .map(check_description)
        .transpose()?;
    let enabling = changes.enabled == Some(true);
    let changeset = EndpointChangeset {
        url,
        description,
        event_types,
        enabled: changes.enabled,
        disabled_reason: changes.enabled.map(|_| None),
        consecutive_failures: enabling.then_some(0),
        failing_since: enabling.then_some(None),
        updated_at: Timestamp::now(),
    };
    let updated = with_conn!(conn, c => {
        diesel::update(
            webhook_endpoints::table
                .find(id)
                .filter(webhook_endpoints::platform_id.eq(&tenant.platform_id))
                .filter(webhook_endpoints::mode.eq(tenant.mode)),
        )
        .set(&changeset)
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if updated == 0 {
        return Err(EventsError::EndpointNotFound);
    }
    get(conn, tenant, id, keys).await
}

/// Deletes an endpoint with its delivery history.
pub async fn delete(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &EndpointId,
) -> Result<(), EventsError> {
    conn.transaction(async |c| -> Result<(), EventsError> {
        get_row(c, tenant, id).await?;
        with_conn!(c, c => async {
            diesel::delete(webhook_attempts::table.filter(webhook_attempts::endpoint_id.eq(id)))
                .execute(c)
                .await?;
            diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::endpoint_id.eq(id)))
                .execute(c)
                .await?;
            diesel::delete(webhook_endpoints::table.find(id)).execute(c).await
        }
        .await)
        .map_err(DbError::from)?;
        Ok(())
    })
    .await
}

/// The table holding sealed secrets (for [`feria_kernel::DbConn::scrub`]).
pub const SEALED_TABLE: &str = "webhook_endpoints";

/// What [`seal_secrets`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SealReport {
    /// Secrets that were stored in clear, now sealed.
    pub sealed_from_clear: u64,
    /// Secrets sealed under the previous key, now under the current one.
    pub resealed: u64,
    /// Already under the current key.
    pub unchanged: u64,
}

/// Seals every webhook signing secret stored in clear (`all`: also reseals the ones
/// sealed under another key than the current one: `feria secrets rotate`). Each row is
/// updated only if it still holds what was read, so a concurrent change is not undone.
/// Fails on a secret sealed under a key the keyring does not hold.
pub async fn seal_secrets(
    conn: &mut DbConn,
    keys: &Keyring,
    all: bool,
) -> Result<SealReport, EventsError> {
    let rows: Vec<(EndpointId, String)> = with_conn!(conn, c => {
        webhook_endpoints::table
            .select((webhook_endpoints::id, webhook_endpoints::secret))
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let mut report = SealReport::default();
    for (id, stored) in rows {
        let context = EndpointRow::seal_context(&id);
        let clear = if feria_kernel::sealed::is_sealed(&stored) {
            if !all || !keys.needs_reseal(&stored) {
                report.unchanged += 1;
                continue;
            }
            keys.open_str(&stored, &context)
                .map_err(|e| EventsError::Sealed(format!("webhook endpoint {id}: {e}")))?
        } else {
            stored.clone()
        };
        let sealed = keys.seal_str(&clear, &context);
        with_conn!(conn, c => {
            diesel::update(
                webhook_endpoints::table
                    .find(&id)
                    .filter(webhook_endpoints::secret.eq(&stored)),
            )
            .set(webhook_endpoints::secret.eq(&sealed))
            .execute(c)
            .await
        })
        .map_err(DbError::from)?;
        if feria_kernel::sealed::is_sealed(&stored) {
            report.resealed += 1;
        } else {
            report.sealed_from_clear += 1;
        }
    }
    Ok(report)
}
