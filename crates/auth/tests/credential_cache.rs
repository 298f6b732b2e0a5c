//! The API key cache on a real database (SQLite or PostgreSQL, FERIA_TEST_BACKEND): a key
//! rolled here is refused at once; a key revoked behind the cache's back (as by another
//! server on the same database) is trusted until its entry expires, then refused; a wrong
//! key is never cached; a zero time-to-live reads the key every time.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use feria_auth::{ApiKeyCache, AuthError, api_keys};
use feria_kernel::testing::TestDatabase;
use feria_kernel::{Mode, PlatformId};

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
    let cache = ApiKeyCache::new(Duration::from_millis(400));

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
    assert!(cache.authenticate(db, &new_key).await.is_ok());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(refused(cache.authenticate(db, &new_key).await));
}

#[tokio::test]
async fn wrong_keys_are_not_cached_and_a_zero_ttl_caches_nothing() {
    let test_db = TestDatabase::from_env().await.expect("test database");
    let db = test_db.db();
    let (platform, key) = platform_with_key(&test_db).await;

    let cache = ApiKeyCache::new(Duration::from_secs(60));
    assert!(refused(cache.authenticate(db, "fer_test_not-a-key").await));
    assert!(refused(cache.authenticate(db, "fer_test_not-a-key").await));

    let uncached = ApiKeyCache::new(Duration::ZERO);
    assert!(uncached.authenticate(db, &key).await.is_ok());
    revoke_behind_the_cache(&test_db, &platform).await;
    assert!(refused(uncached.authenticate(db, &key).await));
    // The 60 s cache never saw the key: it reads it, and refuses it too.
    assert!(refused(cache.authenticate(db, &key).await));
}
