//! Sessions: an access token (short-lived) and a refresh token (long-lived), both random
//! and stored as SHA-256 digests. Refreshing rotates both; presenting a refresh token that
//! was already rotated revokes the whole session family (it was stolen, or replayed).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::coherence::{self, Topic};
use feria_kernel::secret;
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, UserId, with_conn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AuthError;
use crate::principal::{Actor, Principal};
use crate::schema::sessions;
use crate::settings::AuthSettings;

const ACCESS_PREFIX: &str = "fer_at_";
const REFRESH_PREFIX: &str = "fer_rt_";

/// Whether a bearer token looks like a session access token.
pub fn is_access_token(token: &str) -> bool {
    token.starts_with(ACCESS_PREFIX)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
struct SessionRow {
    id: String,
    family_id: String,
    platform_id: PlatformId,
    mode: Mode,
    user_id: UserId,
    access_digest: String,
    refresh_digest: String,
    access_expires_at: Timestamp,
    refresh_expires_at: Timestamp,
    rotated_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
    created_at: Timestamp,
}

/// A fresh pair of tokens.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionTokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// A session for `user_id`, in a new family or continuing `family_id`.
pub async fn create(
    conn: &mut DbConn,
    settings: &AuthSettings,
    tenant: &Tenant,
    user_id: &UserId,
    family_id: Option<String>,
) -> Result<SessionTokens, AuthError> {
    let now = Timestamp::now();
    let access_token = secret::random_token(ACCESS_PREFIX);
    let refresh_token = secret::random_token(REFRESH_PREFIX);
    let access_ttl = time_duration(settings.access_ttl);
    let row = SessionRow {
        id: feria_kernel::id::new_prefixed("sess"),
        family_id: family_id.unwrap_or_else(|| feria_kernel::id::new_prefixed("sfam")),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        user_id: user_id.clone(),
        access_digest: secret::digest(&access_token),
        refresh_digest: secret::digest(&refresh_token),
        access_expires_at: now.add(access_ttl),
        refresh_expires_at: now.add(time_duration(settings.refresh_ttl)),
        rotated_at: None,
        revoked_at: None,
        created_at: now,
    };
    with_conn!(conn, c => diesel::insert_into(sessions::table).values(&row).execute(c).await)
        .map_err(DbError::from)?;
    Ok(SessionTokens {
        access_token,
        refresh_token,
        token_type: "Bearer".into(),
        expires_in: access_ttl.whole_seconds(),
    })
}

fn time_duration(duration: std::time::Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

/// A live session, as its access token finds it.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub tenant: Tenant,
    pub user_id: UserId,
    pub session_id: String,
    pub access_expires_at: Timestamp,
}

/// The session of an access token, if it is live. The user's current role is read by the
/// caller (the users crate owns it).
pub async fn authenticate(conn: &mut DbConn, access_token: &str) -> Result<LiveSession, AuthError> {
    let digest = secret::digest(access_token);
    let now = Timestamp::now();
    let row = with_conn!(conn, c => {
        sessions::table
            .filter(sessions::access_digest.eq(&digest))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::rotated_at.is_null())
            .filter(sessions::access_expires_at.gt(now))
            .select(SessionRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?
    .ok_or(AuthError::InvalidCredentials)?;
    Ok(LiveSession {
        tenant: Tenant::new(row.platform_id, row.mode),
        user_id: row.user_id,
        session_id: row.id,
        access_expires_at: row.access_expires_at,
    })
}

/// What a refresh did.
enum RefreshOutcome {
    /// Tenant, user, family, and the rotated access token's digest.
    Rotated(Tenant, UserId, String, String),
    Reused(String),
}

/// Rotates a session: the presented refresh token (and its access token) stop working and
/// a new pair is issued in the same family. A rotated or revoked token is refused; a rotated
/// one also revokes its family.
pub async fn refresh(
    conn: &mut DbConn,
    settings: &AuthSettings,
    refresh_token: &str,
) -> Result<(Tenant, UserId, SessionTokens), AuthError> {
    let digest = secret::digest(refresh_token);
    let outcome = conn
        .transaction(async |c| -> Result<RefreshOutcome, AuthError> {
            let now = Timestamp::now();
            let row = with_conn!(c, c => {
                sessions::table
                    .filter(sessions::refresh_digest.eq(&digest))
                    .select(SessionRow::as_select())
                    .first(c)
                    .await
                    .optional()
            })
            .map_err(DbError::from)?
            .ok_or(AuthError::InvalidCredentials)?;
            if row.revoked_at.is_some() || row.refresh_expires_at <= now {
                return Err(AuthError::InvalidCredentials);
            }
            if row.rotated_at.is_some() {
                return Ok(RefreshOutcome::Reused(row.family_id));
            }
            // Conditional: of two concurrent refreshes with one token, one wins.
            let claimed = with_conn!(c, c => {
                diesel::update(
                    sessions::table
                        .find(&row.id)
                        .filter(sessions::rotated_at.is_null())
                        .filter(sessions::revoked_at.is_null()),
                )
                .set(sessions::rotated_at.eq(now))
                .execute(c)
                .await
            })
            .map_err(DbError::from)?;
            if claimed == 0 {
                return Ok(RefreshOutcome::Reused(row.family_id));
            }
            coherence::announce(c, Topic::access_shard(&row.access_digest)).await?;
            Ok(RefreshOutcome::Rotated(
                Tenant::new(row.platform_id, row.mode),
                row.user_id,
                row.family_id,
                row.access_digest,
            ))
        })
        .await?;
    match outcome {
        RefreshOutcome::Rotated(tenant, user_id, family_id, old_access_digest) => {
            // Committed: the old access token must not be trusted from a cache either.
            crate::credential_cache::access_token_rotated(&old_access_digest);
            let tokens = create(conn, settings, &tenant, &user_id, Some(family_id)).await?;
            Ok((tenant, user_id, tokens))
        }
        RefreshOutcome::Reused(family_id) => {
            // Committed on its own: the revocation must stand although the call fails.
            revoke_family(conn, &family_id).await?;
            tracing::warn!(family = %family_id, "refresh token reused; session family revoked");
            Err(AuthError::RefreshTokenReused)
        }
    }
}

async fn revoke_family(conn: &mut DbConn, family_id: &str) -> Result<(), AuthError> {
    let now = Timestamp::now();
    conn.transaction(async |c| -> Result<(), AuthError> {
        with_conn!(c, c => {
            diesel::update(
                sessions::table
                    .filter(sessions::family_id.eq(family_id))
                    .filter(sessions::revoked_at.is_null()),
            )
            .set(sessions::revoked_at.eq(now))
            .execute(c)
            .await
        })
        .map_err(DbError::from)?;
        coherence::announce(c, Topic::Credentials).await?;
        Ok(())
    })
    .await?;
    // Committed on its own (never called inside a transaction).
    crate::credential_cache::credentials_changed();
    Ok(())
}

/// Signs out: revokes the session's whole family (its past and future tokens).
pub async fn logout(conn: &mut DbConn, principal: &Principal) -> Result<(), AuthError> {
    let Actor::User { session_id, .. } = &principal.actor else {
        return Err(AuthError::ApiKeyNotAllowed);
    };
    let family_id = with_conn!(conn, c => {
        sessions::table.find(session_id).select(sessions::family_id).first::<String>(c).await
    })
    .map_err(DbError::from)?;
    revoke_family(conn, &family_id).await
}

/// Revokes every session of a user (account deletion). Inside a transaction, call
/// [`sessions_revoked`] again once it has committed: until then a concurrent request may
/// still read (and cache) the sessions as live.
pub async fn revoke_all_for_user(conn: &mut DbConn, user_id: &UserId) -> Result<(), AuthError> {
    let now = Timestamp::now();
    with_conn!(conn, c => {
        diesel::update(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::revoked_at.is_null()),
        )
        .set(sessions::revoked_at.eq(now))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    coherence::announce(conn, Topic::Credentials).await?;
    sessions_revoked();
    Ok(())
}

/// How long a scheduled deletion waits before the personal data is erased.
pub const DELETION_GRACE_DAYS: i64 = 30;

/// Schedules a user's account for deletion ([`DELETION_GRACE_DAYS`] from now) by an
/// actor of role `actor` (the ownership rules: only an owner deletes an owner, never the
/// last) and signs them out everywhere, in one transaction; once committed, no credential
/// cache goes on trusting what it read before. The user as shown.
pub async fn schedule_account_deletion(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &UserId,
    actor: feria_users::Role,
    media: &feria_platforms::media::MediaUrls,
) -> Result<feria_users::UserObject, AuthError> {
    let user = conn
        .transaction(async |c| -> Result<feria_users::User, AuthError> {
            let user = feria_users::user::schedule_deletion(
                c,
                tenant,
                id,
                time::Duration::days(DELETION_GRACE_DAYS),
                actor,
            )
            .await?;
            revoke_all_for_user(c, id).await?;
            Ok(user)
        })
        .await?;
    sessions_revoked();
    feria_users::user::authorization_changed();
    Ok(feria_users::user::object(conn, tenant, &user, media).await?)
}

/// Tells this process's credential caches that sessions were revoked by a transaction
/// that has just committed (see [`revoke_all_for_user`]).
pub fn sessions_revoked() {
    crate::credential_cache::credentials_changed();
}
