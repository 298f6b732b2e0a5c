//! API keys recently authenticated, kept in memory so that a request with a key does not
//! read the key again: the lookup was one of three round trips of a product read (S2 in
//! BENCHMARKS.md).
//!
//! Correctness rests on two rules:
//! - an entry lives at most `ttl` (`API_KEY_CACHE_MS`, default 2 s; 0 turns the cache off);
//! - rolling a key ([`crate::api_keys::roll`]) clears every cache of the process the moment
//!   its transaction has committed, through a process-wide epoch: an entry remembers the
//!   epoch read *before* its key was looked up, so a lookup that raced a roll is never
//!   trusted afterwards.
//!
//! So a rolled key stops working at once on the instance that rolled it, and within `ttl`
//! on other instances serving the same database. Failed lookups are not cached: a wrong
//! key always costs a database read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use feria_kernel::{Db, secret};

use crate::error::AuthError;
use crate::principal::Principal;

/// Bumped after a key is rolled; entries of an older epoch are ignored.
static KEYS_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Called after a transaction that revoked keys has committed.
pub(crate) fn keys_changed() {
    KEYS_EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// Most keys a cache holds; past it the cache starts again empty (platforms have one
/// active key per mode, so this is reached only by very many tenants at once).
const CAPACITY: usize = 10_000;

struct Entry {
    principal: Principal,
    until: Instant,
    epoch: u64,
}

/// Principals of recently authenticated API keys, by the key's digest (never the key).
pub struct ApiKeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for ApiKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyCache")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl ApiKeyCache {
    /// A cache whose entries live `ttl`; `Duration::ZERO` caches nothing.
    pub fn new(ttl: Duration) -> ApiKeyCache {
        ApiKeyCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of an API key: from the cache when it was authenticated within `ttl`
    /// and no key was rolled since, otherwise from the database (and remembered).
    pub async fn authenticate(&self, db: &Db, key: &str) -> Result<Principal, AuthError> {
        let digest = secret::digest(key);
        let epoch = KEYS_EPOCH.load(Ordering::Acquire);
        if let Some(principal) = self.get(&digest, epoch) {
            return Ok(principal);
        }
        let mut conn = db.conn().await?;
        let principal = crate::api_keys::authenticate(&mut conn, key).await?;
        self.remember(digest, &principal, epoch);
        Ok(principal)
    }

    fn get(&self, digest: &str, epoch: u64) -> Option<Principal> {
        if self.ttl.is_zero() {
            return None;
        }
        // A poisoned lock only means another request panicked mid-insert: the map is
        // still a valid map, and the worst it holds is an entry that expires.
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(digest)
            .filter(|entry| entry.epoch == epoch && entry.until > Instant::now())
            .map(|entry| entry.principal.clone())
    }

    fn remember(&self, digest: String, principal: &Principal, epoch: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            digest,
            Entry {
                principal: principal.clone(),
                until: Instant::now() + self.ttl,
                epoch,
            },
        );
    }
}
