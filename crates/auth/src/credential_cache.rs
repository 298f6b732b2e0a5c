//! Credentials recently authenticated (API keys and session access tokens), kept in
//! memory so that a request does not read them again: a key lookup was one of three round
//! trips of a product read (S2 in BENCHMARKS.md), and a session's two lookups (session,
//! then the user's role) were two of a browse's three (S1).
//!
//! Correctness rests on three rules:
//! - an entry lives at most its kind's time to live (`API_KEY_CACHE_MS`,
//!   `SESSION_CACHE_MS`; default 2 s; 0 turns that kind off), and never past its access
//!   token's expiry;
//! - every change that can end a credential or lower what it may do, made through the
//!   domain crates, moves an epoch of `feria_kernel::coherence` once it has committed:
//!   rolling a key, a logout, a reused refresh token, revoking a user's sessions (this
//!   crate), and a change of a user's role or a scheduled deletion (feria-users). Rotating
//!   one session moves only the epoch of its access token's shard, so sign-ins elsewhere
//!   do not empty the cache. The change's transaction also announces it, and every other
//!   node listening on the database moves the same epoch when the notification arrives;
//! - an entry remembers the epochs read *before* its credential was looked up, and is
//!   trusted only while they are unchanged: a lookup that raced a change is never trusted
//!   afterwards.
//!
//! So a revoked credential or a demoted user stops working at once on the node that made
//! the change, and on the other nodes serving the same PostgreSQL database as soon as the
//! notification reaches them (milliseconds; `gateway/tests/multi_node.rs` measures it).
//! A node whose listener is down trusts no entry until it is back. Failed lookups are not cached: a wrong credential always costs a database
//! read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use feria_kernel::coherence::{self, Topic};
use feria_kernel::time::Clock;
use feria_kernel::{Db, secret};

use crate::error::AuthError;
use crate::principal::Principal;
use crate::{api_keys, sessions};

/// Called after a transaction that revoked keys or sessions has committed (the
/// transaction itself announced it to the other nodes, [`coherence::announce`]).
pub(crate) fn credentials_changed() {
    coherence::changed(Topic::Credentials);
}

/// Called after the rotation of the session whose access token has `access_digest` has
/// committed.
pub(crate) fn access_token_rotated(access_digest: &str) {
    coherence::changed(Topic::access_shard(access_digest));
}

/// The epochs an entry depends on, read before its credential is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    credentials: u64,
    shard: u64,
    users: u64,
}

impl Stamp {
    fn now(digest: &str) -> Stamp {
        Stamp {
            credentials: coherence::epoch(Topic::Credentials),
            shard: coherence::epoch(Topic::access_shard(digest)),
            users: coherence::epoch(Topic::Authorization),
        }
    }
}

/// Most credentials a cache holds; past it the cache starts again empty.
const CAPACITY: usize = 10_000;

struct Entry {
    principal: Principal,
    until: Instant,
    stamp: Stamp,
}

/// Principals of recently authenticated credentials, by the credential's digest (never
/// the credential).
pub struct CredentialCache {
    key_ttl: Duration,
    session_ttl: Duration,
    clock: Clock,
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("key_ttl", &self.key_ttl)
            .field("session_ttl", &self.session_ttl)
            .finish()
    }
}

impl CredentialCache {
    /// A cache whose API key entries live `key_ttl` and session entries `session_ttl`;
    /// `Duration::ZERO` caches nothing of that kind.
    pub fn new(key_ttl: Duration, session_ttl: Duration) -> CredentialCache {
        CredentialCache {
            key_ttl,
            session_ttl,
            clock: Clock::system(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The same cache timing its entries by `clock` (tests move a manual one).
    pub fn with_clock(mut self, clock: Clock) -> CredentialCache {
        self.clock = clock;
        self
    }

    /// The caller behind a bearer token, as [`crate::authenticate`] finds it: from the
    /// cache when it was authenticated within its time to live and nothing that could end
    /// it changed since, otherwise from the database (and remembered).
    pub async fn authenticate(&self, db: &Db, bearer: &str) -> Result<Principal, AuthError> {
        let is_key = api_keys::is_api_key(bearer);
        if !is_key && !sessions::is_access_token(bearer) {
            return Err(AuthError::InvalidCredentials);
        }
        let ttl = if is_key {
            self.key_ttl
        } else {
            self.session_ttl
        };
        if ttl.is_zero() {
            return crate::authenticate(&mut db.conn().await?, bearer).await;
        }
        let digest = secret::digest(bearer);
        let stamp = Stamp::now(&digest);
        if let Some(principal) = self.get(&digest, stamp) {
            return Ok(principal);
        }
        let mut conn = db.conn().await?;
        let (principal, ttl) = if is_key {
            (api_keys::authenticate(&mut conn, bearer).await?, ttl)
        } else {
            let (principal, expires_at) = crate::authenticate_session(&mut conn, bearer).await?;
            let left = std::time::Duration::try_from(expires_at.since(self.clock.now()))
                .unwrap_or(Duration::ZERO);
            (principal, ttl.min(left))
        };
        drop(conn);
        self.remember(digest, &principal, ttl, stamp);
        Ok(principal)
    }

    fn get(&self, digest: &str, stamp: Stamp) -> Option<Principal> {
        // A node that cannot hear the others' changes answers nothing from memory.
        if !coherence::trusted() {
            return None;
        }
        // A poisoned lock only means another request panicked mid-insert: the map is
        // still a valid map, and the worst it holds is an entry that expires.
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(digest)
            .filter(|entry| entry.stamp == stamp && entry.until > self.clock.instant())
            .map(|entry| entry.principal.clone())
    }

    fn remember(&self, digest: String, principal: &Principal, ttl: Duration, stamp: Stamp) {
        if ttl.is_zero() {
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
                until: self.clock.instant() + ttl,
                stamp,
            },
        );
    }
}
