//! The credential cache on a real database (SQLite or PostgreSQL, FERIA_TEST_BACKEND):
//! - API keys: a key rolled here is refused at once; a key revoked behind the cache's back
//!   (as by another server on the same database) is trusted until its entry expires, then
//!   refused; a wrong key is never cached; a zero time-to-live reads the key every time.
//! - Sessions: a refresh, a logout, a role change and a scheduled deletion made through the
//!   domain crates take effect at once; a revocation behind the cache's back, when the
//!   entry expires; an entry never outlives its access token.
//!
//! Entries expire by the cache's clock: a manual one here, moved past an entry's lifetime
//! instead of sleeping through it, so that no step races the wall clock.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use feria_auth::{Actor, AuthError, AuthSettings, CredentialCache, api_keys, sessions};
use feria_kernel::testing::TestDatabase;
use feria_kernel::time::ManualClock;
use feria_kernel::{Mode, PlatformId, Tenant};
use feria_users::{Role, UserChanges};

async fn platform_with_key(test_db: &TestDatabase) -> (PlatformId, String) {
    let mut conn = test_db.db().conn().await.unwrap();
    let platform = feria_platforms::platform::create(
        &mut conn,
        feria_platforms::NewPlatform {
            name: "Keys".into(),
            domain: "keys.example.com".into(),
            description: None,
            url: None,
        },
    )
    .await
    .unwrap();
    let key = api_keys::issue(&mut conn, &platform.id, Mode::Test)
        .await
        .unwrap();
    (platform.id, key)
}

/// Revokes every key of the platform without going through `roll`: what another server
/// sharing the database does, as far as this process can tell.
async fn revoke_behind_the_cache(test_db: &TestDatabase, platform: &PlatformId) {
    let mut conn = test_db.db().conn().await.unwrap();
    let sql = format!(
        "UPDATE api_keys SET revoked_at = created_at WHERE platform_id = '{}'",
        platform.as_str()
    );
    conn.batch_execute(&sql).await.unwrap();
}

fn refused(result: Result<feria_auth::Principal, AuthError>) -> bool {
    matches!(result, Err(AuthError::InvalidCredentials))
}

#[tokio::test]
async fn a_rolled_key_is_refused_at_once_and_a_revoked_one_when_its_entry_expires() {
    let test_db = TestDatabase::from_env().await.expect("test database");
    let db = test_db.db();
    let (platform, key) = platform_with_key(&test_db).await;
    let time = ManualClock::new();
    let cache =
        CredentialCache::new(Duration::from_secs(60), Duration::ZERO).with_clock(time.clock());

    let principal = cache.authenticate(db, &key).await.unwrap();
    assert_eq!(principal.tenant.platform_id, platform);

    // Rolled through the auth crate: the cached entry is dropped with the commit.
    let mut conn = db.conn().await.unwrap();
    let new_key = api_keys::roll(&mut conn, &platform, Mode::Test)
        .await
        .unwrap();
    drop(conn);
    assert!(refused(cache.authenticate(db, &key).await));
    assert!(cache.authenticate(db, &new_key).await.is_ok());

    // Revoked behind its back: trusted for what is left of the entry's time, then read
    // again and refused.
    revoke_behind_the_cache(&test_db, &platform).await;
    time.advance(Duration::from_secs(59));
    assert!(cache.authenticate(db, &new_key).await.is_ok());
    time.advance(Duration::from_secs(1));
    assert!(refused(cache.authenticate(db, &new_key).await));
}

#[tokio::test]
async fn wrong_keys_are_not_cached_and_a_zero_ttl_caches_nothing() {
    let test_db = TestDatabase::from_env().await.expect("test database");
    let db = test_db.db();
    let (platform, key) = platform_with_key(&test_db).await;

    let cache = CredentialCache::new(Duration::from_secs(60), Duration::ZERO);
    assert!(refused(cache.authenticate(db, "fer_test_not-a-key").await));
    assert!(refused(cache.authenticate(db, "fer_test_not-a-key").await));

    let uncached = CredentialCache::new(Duration::ZERO, Duration::ZERO);
    assert!(uncached.authenticate(db, &key).await.is_ok());
    revoke_behind_the_cache(&test_db, &platform).await;
    assert!(refused(uncached.authenticate(db, &key).await));
    // The 60 s cache never saw the key: it reads it, and refuses it too.
    assert!(refused(cache.authenticate(db, &key).await));
}

/// A platform, a member of it signed in (a session), and the member's id.
async fn member_session(
    test_db: &TestDatabase,
    settings: &AuthSettings,
) -> (Tenant, feria_kernel::UserId, sessions::SessionTokens) {
    let (platform, _) = platform_with_key(test_db).await;
    let tenant = Tenant::new(platform, Mode::Test);
    let mut conn = test_db.db().conn().await.unwrap();
    let user = feria_users::user::sign_in(&mut conn, &tenant, "ana@example.com")
        .await
        .unwrap();
    let tokens = sessions::create(&mut conn, settings, &tenant, &user.id, None)
        .await
        .unwrap();
    (tenant, user.id, tokens)
}

fn role_of(principal: &feria_auth::Principal) -> Role {
    match &principal.actor {
        Actor::User { role, .. } => *role,
        Actor::ApiKey { .. } => panic!("a session's principal is a user"),
    }
}

#[tokio::test]
async fn session_changes_through_the_domain_take_effect_at_once() {
    let test_db = TestDatabase::from_env().await.expect("test database");
    let db = test_db.db();
    let settings = AuthSettings::default();
    let (tenant, user_id, tokens) = member_session(&test_db, &settings).await;
    let cache = CredentialCache::new(Duration::ZERO, Duration::from_secs(60));

    let principal = cache.authenticate(db, &tokens.access_token).await.unwrap();
    assert_eq!(principal.tenant, tenant);
    assert_eq!(role_of(&principal), Role::Member);

    // A role change: the cached principal is not trusted any more.
    let mut conn = db.conn().await.unwrap();
    let promote = UserChanges {
        role: Some(Role::Admin),
        ..UserChanges::default()
    };
    feria_users::user::update(&mut conn, &tenant, &user_id, promote)
        .await
        .unwrap();
    let principal = cache.authenticate(db, &tokens.access_token).await.unwrap();
    assert_eq!(role_of(&principal), Role::Admin);

    // A refresh: the old access token is refused at once, the new one works.
    let (_, _, rotated) = sessions::refresh(&mut conn, &settings, &tokens.refresh_token)
        .await
        .unwrap();
    assert!(refused(cache.authenticate(db, &tokens.access_token).await));
    let principal = cache.authenticate(db, &rotated.access_token).await.unwrap();

    // A logout: refused at once.
    sessions::logout(&mut conn, &principal).await.unwrap();
    assert!(refused(cache.authenticate(db, &rotated.access_token).await));

    // A scheduled deletion of a user signed in again, with its sessions revoked in the
    // same transaction (as the gateway does), then told to the caches after the commit.
    let again = sessions::create(&mut conn, &settings, &tenant, &user_id, None)
        .await
        .unwrap();
    assert!(cache.authenticate(db, &again.access_token).await.is_ok());
    conn.transaction(async |c| -> Result<(), AuthError> {
        feria_users::user::schedule_deletion(
            c,
            &tenant,
            &user_id,
            time::Duration::days(30),
            Role::Member,
        )
        .await
        .map_err(|_| AuthError::InvalidCredentials)?;
        sessions::revoke_all_for_user(c, &user_id).await
    })
    .await
    .unwrap();
    sessions::sessions_revoked();
    assert!(refused(cache.authenticate(db, &again.access_token).await));
}

#[tokio::test]
async fn a_session_revoked_behind_the_cache_is_refused_when_its_entry_expires() {
    let test_db = TestDatabase::from_env().await.expect("test database");
    let db = test_db.db();
    let settings = AuthSettings::default();
    let (_, user_id, tokens) = member_session(&test_db, &settings).await;
    let time = ManualClock::new();
    let cache =
        CredentialCache::new(Duration::ZERO, Duration::from_secs(60)).with_clock(time.clock());

    assert!(cache.authenticate(db, &tokens.access_token).await.is_ok());
    let mut conn = db.conn().await.unwrap();
    let sql = format!(
        "UPDATE sessions SET revoked_at = created_at WHERE user_id = '{}'",
        user_id.as_str()
    );
    conn.batch_execute(&sql).await.unwrap();
    drop(conn);
    time.advance(Duration::from_secs(59));
    assert!(cache.authenticate(db, &tokens.access_token).await.is_ok());
    time.advance(Duration::from_secs(1));
    assert!(refused(cache.authenticate(db, &tokens.access_token).await));

    // Without a cache for sessions, every request reads the session.
    let uncached = CredentialCache::new(Duration::from_secs(60), Duration::ZERO);
    assert!(refused(
        uncached.authenticate(db, &tokens.access_token).await
    ));
}

#[tokio::test]
async fn a_cached_session_never_outlives_its_access_token() {
    let test_db = TestDatabase::from_env().await.expect("test database");
    let db = test_db.db();
    // Tokens live an hour, the cache would keep them ten.
    let settings = AuthSettings::default();
    assert_eq!(settings.access_ttl, Duration::from_secs(60 * 60));
    let (_, user_id, tokens) = member_session(&test_db, &settings).await;
    let time = ManualClock::new();
    let cache = CredentialCache::new(Duration::ZERO, Duration::from_secs(10 * 60 * 60))
        .with_clock(time.clock());
    assert!(cache.authenticate(db, &tokens.access_token).await.is_ok());

    // Revoked behind the cache's back: within the token's hour the entry is still trusted;
    // past its expiry the cache reads the session again (and finds it revoked), although
    // its own ten hours are far from over.
    let mut conn = db.conn().await.unwrap();
    let sql = format!(
        "UPDATE sessions SET revoked_at = created_at WHERE user_id = '{}'",
        user_id.as_str()
    );
    conn.batch_execute(&sql).await.unwrap();
    drop(conn);
    time.advance(Duration::from_secs(50 * 60));
    assert!(cache.authenticate(db, &tokens.access_token).await.is_ok());
    time.advance(Duration::from_secs(11 * 60));
    assert!(refused(cache.authenticate(db, &tokens.access_token).await));
}
