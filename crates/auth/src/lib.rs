//! Authentication: who is calling.
//!
//! - [`api_keys`]: platform keys (`fer_test_...`, `fer_live_...`), acting as the
//!   platform's admin in their mode;
//! - [`otp`]: passwordless sign-in with an emailed 6-digit code;
//! - [`sessions`]: access and refresh tokens, rotation with reuse detection, logout;
//! - [`Principal`]: the authenticated caller every handler acts for;
//! - [`bootstrap`]: a new platform with its owner and keys (`feria platform create`).
//!
//! Secrets are stored only as SHA-256 digests (keys, tokens) or argon2 hashes (codes), and
//! argon2 never runs on the per-request path: a request authenticates with one indexed
//! lookup of its token's digest, or none for a credential seen within the last moments
//! ([`CredentialCache`]).
//!
//! Owns `api_keys`, `otp_challenges` and `sessions`. Calls `platforms` (the platform a
//! sign-in is for) and `users` (who signs in, their role).

pub mod api_keys;
pub mod bootstrap;
mod credential_cache;
mod error;
pub mod otp;
mod principal;
mod schema;
pub mod sessions;
mod settings;

pub use credential_cache::CredentialCache;
pub use error::{AuthCode, AuthError, BootstrapError};
pub use principal::{Actor, Principal};
pub use settings::AuthSettings;

use feria_kernel::{DbConn, Timestamp};

/// The caller behind a bearer token: an API key, or a live session (with the user's
/// current role). [`CredentialCache::authenticate`] answers the same from memory when it
/// can.
pub async fn authenticate(conn: &mut DbConn, bearer: &str) -> Result<Principal, AuthError> {
    if api_keys::is_api_key(bearer) {
        return api_keys::authenticate(conn, bearer).await;
    }
    if !sessions::is_access_token(bearer) {
        return Err(AuthError::InvalidCredentials);
    }
    Ok(authenticate_session(conn, bearer).await?.0)
}

/// The principal of a live session's access token, and when the token expires.
async fn authenticate_session(
    conn: &mut DbConn,
    access_token: &str,
) -> Result<(Principal, Timestamp), AuthError> {
    let session = sessions::authenticate(conn, access_token).await?;
    let user = feria_users::user::get(conn, &session.tenant, &session.user_id)
        .await
        .map_err(|_| AuthError::InvalidCredentials)?;
    if user.scheduled_deletion_at.is_some() {
        return Err(AuthError::InvalidCredentials);
    }
    let principal = Principal {
        tenant: session.tenant,
        actor: Actor::User {
            user_id: session.user_id,
            role: user.role,
            session_id: session.session_id,
        },
    };
    Ok((principal, session.access_expires_at))
}
