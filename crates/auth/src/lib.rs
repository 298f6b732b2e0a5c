//! Authentication: who is calling.
//!
//! - [`api_keys`]: platform keys (`fer_test_...`, `fer_live_...`), acting as the
//!   platform's admin in their mode;
//! - [`otp`]: passwordless sign-in with an emailed 6-digit code;
//! - [`sessions`]: access and refresh tokens, rotation with reuse detection, logout;
//! - [`Principal`]: the authenticated caller every handler acts for.
//!
//! Secrets are stored only as SHA-256 digests (keys, tokens) or argon2 hashes (codes), and
//! argon2 never runs on the per-request path: a request authenticates with one indexed
//! lookup of its token's digest, or none for an API key seen within the last moments
//! ([`ApiKeyCache`]). Calls `platforms` and `users`.

pub mod api_keys;
mod error;
mod key_cache;
pub mod otp;
mod principal;
mod schema;
pub mod sessions;
mod settings;

pub use error::AuthError;
pub use key_cache::ApiKeyCache;
pub use principal::{Actor, Principal};
pub use settings::AuthSettings;

use feria_kernel::{Db, DbConn};

/// The caller behind a bearer token, as [`authenticate`] finds it, with API keys
/// answered from `keys` when it holds them.
pub async fn authenticate_cached(
    db: &Db,
    keys: &ApiKeyCache,
    bearer: &str,
) -> Result<Principal, AuthError> {
    if api_keys::is_api_key(bearer) {
        return keys.authenticate(db, bearer).await;
    }
    authenticate(&mut db.conn().await?, bearer).await
}

/// The caller behind a bearer token: an API key, or a live session (with the user's
/// current role).
pub async fn authenticate(conn: &mut DbConn, bearer: &str) -> Result<Principal, AuthError> {
    if api_keys::is_api_key(bearer) {
        return api_keys::authenticate(conn, bearer).await;
    }
    if !sessions::is_access_token(bearer) {
        return Err(AuthError::InvalidCredentials);
    }
    let (tenant, user_id, session_id) = sessions::authenticate(conn, bearer).await?;
    let user = feria_users::user::get(conn, &tenant, &user_id)
        .await
        .map_err(|_| AuthError::InvalidCredentials)?;
    if user.scheduled_deletion_at.is_some() {
        return Err(AuthError::InvalidCredentials);
    }
    Ok(Principal {
        tenant,
        actor: Actor::User {
            user_id,
            role: user.role,
            session_id,
        },
    })
}
