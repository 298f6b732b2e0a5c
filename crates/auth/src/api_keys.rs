//! Platform API keys: `fer_test_...` and `fer_live_...`, one active per mode, shown once,
//! stored as SHA-256 digests.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::coherence::{self, Topic};
use feria_kernel::secret;
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, with_conn};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AuthError;
use crate::principal::{Actor, Principal};
use crate::schema::api_keys;

/// The secret prefix of keys of a mode.
pub fn key_prefix(mode: Mode) -> &'static str {
    match mode {
        Mode::Test => "fer_test_",
        Mode::Live => "fer_live_",
    }
}

/// Whether a bearer token looks like an API key (rather than a session token).
pub fn is_api_key(token: &str) -> bool {
    token.starts_with("fer_test_") || token.starts_with("fer_live_")
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
struct ApiKeyRow {
    id: String,
    platform_id: PlatformId,
    mode: Mode,
    digest: String,
    masked: String,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
}

/// A key as listed: never the secret, only a masked form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiKeySummary {
    pub id: String,
    pub mode: Mode,
    /// The key's prefix and last four characters, e.g. `fer_live_…9f3a`.
    pub masked: String,
    pub created: Timestamp,
}

/// Issues a new key for the platform and mode; returns the secret (shown once).
pub async fn issue(
    conn: &mut DbConn,
    platform_id: &PlatformId,
    mode: Mode,
) -> Result<String, AuthError> {
    let prefix = key_prefix(mode);
    let secret = secret::random_token(prefix);
    let row = ApiKeyRow {
        id: feria_kernel::id::new_prefixed("key"),
        platform_id: platform_id.clone(),
        mode,
        digest: secret::digest(&secret),
        masked: secret::mask(&secret, prefix.len()),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    with_conn!(conn, c => diesel::insert_into(api_keys::table).values(&row).execute(c).await)
        .map_err(DbError::from)?;
    Ok(secret)
}

/// Revokes the mode's active keys and issues a new one, in one transaction: the old key
/// stops working the moment the new one exists, on every node (their
/// [`crate::CredentialCache`]s hear of it through `feria_kernel::coherence`).
pub async fn roll(
    conn: &mut DbConn,
    platform_id: &PlatformId,
    mode: Mode,
) -> Result<String, AuthError> {
    let platform_id = platform_id.clone();
    let rolled = conn
        .transaction(async move |c| {
            let now = Timestamp::now();
            with_conn!(c, c => {
                diesel::update(
                    api_keys::table
                        .filter(api_keys::platform_id.eq(&platform_id))
                        .filter(api_keys::mode.eq(mode))
                        .filter(api_keys::revoked_at.is_null()),
                )
                .set(api_keys::revoked_at.eq(now))
                .execute(c)
                .await
            })
            .map_err(DbError::from)?;
            // Delivered to the other nodes when this transaction commits.
            coherence::announce(c, Topic::Credentials).await?;
            issue(c, &platform_id, mode).await
        })
        .await;
    // Committed (or failed): either way no cache may keep trusting what it read before.
    crate::credential_cache::credentials_changed();
    rolled
}

/// The platform's active keys (both modes), oldest first.
pub async fn list(
    conn: &mut DbConn,
    platform_id: &PlatformId,
) -> Result<Vec<ApiKeySummary>, AuthError> {
    let rows = with_conn!(conn, c => {
        api_keys::table
            .filter(api_keys::platform_id.eq(platform_id))
            .filter(api_keys::revoked_at.is_null())
            .order(api_keys::created_at.asc())
            .select(ApiKeyRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(rows
        .into_iter()
        .map(|row| ApiKeySummary {
            id: row.id,
            mode: row.mode,
            masked: row.masked,
            created: row.created_at,
        })
        .collect())
}

/// The principal of an API key, if it is active.
pub async fn authenticate(conn: &mut DbConn, secret: &str) -> Result<Principal, AuthError> {
    let digest = secret::digest(secret);
    let row = with_conn!(conn, c => {
        api_keys::table
            .filter(api_keys::digest.eq(&digest))
            .filter(api_keys::revoked_at.is_null())
            .select(ApiKeyRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?
    .ok_or(AuthError::InvalidCredentials)?;
    Ok(Principal {
        tenant: Tenant::new(row.platform_id, row.mode),
        actor: Actor::ApiKey { key_id: row.id },
    })
}
