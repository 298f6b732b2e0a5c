//! Rate limits kept in memory, per server: a fixed window per client address (sign-in
//! codes, uploads) and a token bucket per client for every write. Limits that must hold
//! across several servers (per email) live in the database instead.
//!
//! Every limiter here holds at most a fixed number of clients ([`Generations`]): a flood
//! of distinct clients costs each request a hash lookup or two, never a sweep, and the
//! memory stays put. That is why these are not `governor`'s keyed limiters: governor's
//! keyed state grows with every distinct key until `retain_recent` is called, a sweep over
//! the whole map (O(n) under the lock of each shard) that something must schedule; a flood
//! of distinct keys between two sweeps grows it without bound. Here forgetting is part of
//! the lookup and costs one deallocation.
//!
//! Each check returns a [`Decision`]: whether the request passes and the quota it leaves,
//! which the middleware answers as the `RateLimit-*` headers of the IETF draft
//! (draft-ietf-httpapi-ratelimit-headers-07; [`apply_headers`], docs/API-CONVENTIONS.md).

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpMessage;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use feria_auth::{Actor, Principal};
use feria_kernel::UserId;
use feria_kernel::time::Clock;

use crate::shared_quota::SharedQuota;

/// What a limiter decided for one request, and the quota it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request passes.
    pub allowed: bool,
    /// Requests the quota holds: a window's count, a bucket's burst (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests that would pass now, after this one (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Seconds until the quota grows again (`RateLimit-Reset`): the end of the window, for
    /// a window; the next token, for a bucket (0 when it is full). When refused, also the
    /// `Retry-After`.
    pub reset: u64,
    /// The policy's window in seconds (`w` of `RateLimit-Policy`): the window, for a
    /// window; for a bucket, the time an empty bucket takes to fill up again.
    pub window: u64,
}

impl Decision {
    /// The seconds to wait when refused (never 0: a client would retry at once).
    pub fn retry_after(&self) -> Option<u64> {
        (!self.allowed).then_some(self.reset.max(1))
    }

    /// `RateLimit-Policy`'s item: `limit;w=window`.
    pub fn policy(&self) -> String {
        format!("{};w={}", self.limit, self.window)
    }
}

/// The limits a request was counted against, kept in its extensions by the handlers that
/// count it ([`record`]); the middleware answers them as headers.
#[derive(Debug, Default, Clone)]
pub struct Counted(pub Vec<Decision>);

/// Keeps `decision` in the request's extensions, for the response's headers.
pub fn record(extensions: &mut actix_web::dev::Extensions, decision: Decision) {
    match extensions.get_mut::<Counted>() {
        Some(counted) => counted.0.push(decision),
        None => {
            extensions.insert(Counted(vec![decision]));
        }
    }
}

/// Keeps `decision` in the extensions of `req`.
pub fn record_on(req: &actix_web::HttpRequest, decision: Decision) {
    record(&mut req.extensions_mut(), decision);
}

pub static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Sets the `RateLimit-*` headers for the limits a request was counted against. A request
/// counted by two (a sign-in code request is also a write) shows the one nearest to
/// refusing it (a refusing one first, then the fewest remaining, then the longest reset)
/// in `RateLimit-Limit`, `-Remaining` and `-Reset`, and every policy in
/// `RateLimit-Policy`, that one first.
pub fn apply_headers(headers: &mut HeaderMap, decisions: &[Decision]) {
    let mut ordered = decisions.to_vec();
    ordered.sort_by_key(|d| (d.allowed, d.remaining, std::cmp::Reverse(d.reset)));
    let Some(binding) = ordered.first() else {
        return;
    };
    let policies: Vec<String> = ordered.iter().map(Decision::policy).collect();
    headers.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(binding.limit));
    headers.insert(
        RATELIMIT_REMAINING.clone(),
        HeaderValue::from(binding.remaining),
    );
    headers.insert(RATELIMIT_RESET.clone(), HeaderValue::from(binding.reset));
    if let Ok(policy) = HeaderValue::from_str(&policies.join(", ")) {
        headers.insert(RATELIMIT_POLICY.clone(), policy);
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// What one address is counted as: an IPv4 address as it is (an IPv4-mapped IPv6 address
/// too), an IPv6 address by its /64 network, since one subscriber is handed a whole /64
/// and could otherwise write from 2^64 addresses with a budget each.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(network.into())
        }
        v4 => v4,
    }
}

/// Most clients a limiter remembers: about 4 MB of buckets, whatever the traffic.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// A map holding at most `capacity` entries in two generations. An entry used goes to
/// (or stays in) the current generation; when the current one holds half the capacity, the
/// previous generation is dropped whole and the current one becomes the previous. So a
/// lookup costs a hash lookup or two, and forgetting costs one deallocation (values are
/// plain data), never a sweep.
///
/// Forgotten are the entries not used while half the capacity of other keys were: for a
/// rate limit that is a client given a fresh budget, never one refused wrongly, and a
/// client can make that happen to itself only by sending the writes of `capacity / 2`
/// other clients (distinct credentials or networks) in between.
struct Generations<V> {
    current: HashMap<u64, V>,
    previous: HashMap<u64, V>,
    half: usize,
}

impl<V: Copy> Generations<V> {
    fn new(capacity: usize) -> Generations<V> {
        Generations {
            current: HashMap::new(),
            previous: HashMap::new(),
            half: (capacity / 2).max(1),
        }
    }

    /// The entry of `key`, made with `fresh` if it was not remembered.
    fn entry(&mut self, key: u64, fresh: impl FnOnce() -> V) -> &mut V {
        if !self.current.contains_key(&key) {
            let value = self.previous.remove(&key).unwrap_or_else(fresh);
            if self.current.len() >= self.half {
                self.previous = std::mem::take(&mut self.current);
            }
            return self.current.entry(key).or_insert(value);
        }
        self.current.entry(key).or_insert_with(fresh)
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another request panicked while holding it: the map is
    // still a valid map, and the worst it holds is a count one off.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fixed window per client address: `limit` requests per `window`.
pub struct IpRateLimiter {
    limit: u32,
    window: Duration,
    hasher: RandomState,
    clock: Clock,
    windows: Mutex<Generations<(Instant, u32)>>,
    /// Every node's count, in Redis under this name (`REDIS_URL`).
    shared: Option<(Arc<SharedQuota>, &'static str)>,
}

impl IpRateLimiter {
    pub fn new(limit: u32, window: Duration, clock: Clock) -> IpRateLimiter {
        IpRateLimiter {
            limit,
            window,
            hasher: RandomState::new(),
            clock,
            windows: Mutex::new(Generations::new(DEFAULT_CAPACITY)),
            shared: None,
        }
    }

    /// The same limit counted for all nodes together in `quota`, under `name`.
    pub fn shared(mut self, quota: Option<Arc<SharedQuota>>, name: &'static str) -> Self {
        self.shared = quota.map(|quota| (quota, name));
        self
    }

    /// Counts one request from `ip`, unless it is refused: against every node's count
    /// when the limit is shared (and Redis answers), else this node's ([`Self::check`]).
    pub async fn decide(&self, ip: IpAddr) -> Decision {
        if let Some((quota, name)) = &self.shared {
            let key = format!("{name}:{}", address_key(ip));
            if let Ok((count, left)) = quota.count(&key, self.window).await {
                let counted = u32::try_from(count).unwrap_or(u32::MAX);
                return Decision {
                    allowed: counted <= self.limit,
                    limit: self.limit,
                    remaining: self.limit.saturating_sub(counted),
                    reset: ceil_secs(left).max(1),
                    window: ceil_secs(self.window),
                };
            }
        }
        self.check(ip)
    }

    /// Counts one request from `ip` on this node alone, unless it is refused.
    pub fn check(&self, ip: IpAddr) -> Decision {
        let now = self.clock.instant();
        let key = self.hasher.hash_one(address_key(ip));
        let mut windows = lock(&self.windows);
        let entry = windows.entry(key, || (now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        let allowed = entry.1 < self.limit;
        if allowed {
            entry.1 += 1;
        }
        let ends_in = self.window.saturating_sub(now.duration_since(entry.0));
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(entry.1),
            reset: ceil_secs(ends_in).max(1),
            window: ceil_secs(self.window),
        }
    }
}

/// What a write is counted against: the credential it authenticated with (an API key, or
/// the signed-in user, across their sessions), or, for a write without a credential or
/// with one that did not authenticate, the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteClient<'a> {
    ApiKey(&'a str),
    User(&'a UserId),
    Address(IpAddr),
}

impl<'a> WriteClient<'a> {
    /// The client of an authenticated caller.
    pub fn of(principal: &'a Principal) -> WriteClient<'a> {
        match &principal.actor {
            Actor::ApiKey { key_id } => WriteClient::ApiKey(key_id),
            Actor::User { user_id, .. } => WriteClient::User(user_id),
        }
    }

    /// The key it is kept under in the shared store: the same on every node.
    fn shared_key(self) -> String {
        match self {
            WriteClient::ApiKey(key_id) => format!("w:k:{key_id}"),
            WriteClient::User(user_id) => format!("w:u:{user_id}"),
            WriteClient::Address(ip) => format!("w:a:{}", address_key(ip)),
        }
    }

    /// The key it is remembered by: addresses by their network ([`address_key`]).
    fn key(self, hasher: &RandomState) -> u64 {
        match self {
            WriteClient::Address(ip) => hasher.hash_one(WriteClient::Address(address_key(ip))),
            other => hasher.hash_one(other),
        }
    }
}

/// A token bucket per client for writes (POST, PUT, PATCH, DELETE): `burst` writes at once,
/// refilled at `per_second`. Reads are not counted: they are cheap and cacheable, while
/// every write takes the database's write path (SQLite's single writer). Clients are
/// stored by a keyed hash, at most [`DEFAULT_CAPACITY`] of them ([`Generations`]).
pub struct WriteRateLimiter {
    per_second: f64,
    burst: f64,
    hasher: RandomState,
    clock: Clock,
    buckets: Mutex<Generations<Bucket>>,
    /// Every node's buckets, in Redis (`REDIS_URL`).
    shared: Option<Arc<SharedQuota>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl WriteRateLimiter {
    /// `None` when `per_second` is 0: writes are not limited.
    pub fn new(per_second: u32, burst: u32, clock: Clock) -> Option<WriteRateLimiter> {
        Self::with_capacity(per_second, burst, clock, DEFAULT_CAPACITY)
    }

    /// [`WriteRateLimiter::new`] remembering at most `capacity` clients.
    pub fn with_capacity(
        per_second: u32,
        burst: u32,
        clock: Clock,
        capacity: usize,
    ) -> Option<WriteRateLimiter> {
        (per_second > 0).then(|| WriteRateLimiter {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            hasher: RandomState::new(),
            clock,
            buckets: Mutex::new(Generations::new(capacity)),
            shared: None,
        })
    }

    /// The same buckets kept for all nodes together in `quota`.
    pub fn shared(mut self, quota: Option<Arc<SharedQuota>>) -> Self {
        self.shared = quota;
        self
    }

    /// Takes one token for `client`, unless it is refused: from the bucket every node
    /// shares when there is one (and Redis answers), else from this node's
    /// ([`Self::check`]).
    pub async fn decide(&self, client: WriteClient<'_>) -> Decision {
        if let Some(quota) = &self.shared
            && let Ok((allowed, tokens)) = quota
                .take_token(&client.shared_key(), self.per_second, self.burst)
                .await
        {
            return self.decision(allowed, tokens);
        }
        self.check(client)
    }

    /// Takes one token for `client` from this node's bucket, unless it is refused.
    pub fn check(&self, client: WriteClient<'_>) -> Decision {
        let now = self.clock.instant();
        let key = client.key(&self.hasher);
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry(key, || Bucket {
            tokens: self.burst,
            updated: now,
        });
        let refilled = now.duration_since(bucket.updated).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(self.burst);
        bucket.updated = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let tokens = bucket.tokens;
        drop(buckets);
        self.decision(allowed, tokens)
    }

    /// The decision for a bucket left with `tokens` after a take that was `allowed`.
    fn decision(&self, allowed: bool, tokens: f64) -> Decision {
        let whole = tokens.floor();
        // Seconds until the next whole token, in whole seconds, never 0 unless full.
        let reset = if whole >= self.burst {
            0
        } else {
            (((whole + 1.0 - tokens) / self.per_second).ceil() as u64).max(1)
        };
        Decision {
            allowed,
            limit: self.burst as u32,
            remaining: whole as u32,
            reset,
            window: ((self.burst / self.per_second).ceil() as u64).max(1),
        }
    }

    /// How many clients it remembers (at most its capacity).
    pub fn len(&self) -> usize {
        lock(&self.buckets).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use feria_kernel::time::ManualClock;

    use super::*;

    #[test]
    fn limits_per_address_within_a_window() {
        let time = ManualClock::new();
        let limiter = IpRateLimiter::new(2, Duration::from_secs(600), time.clock());
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let decision = |allowed, remaining, reset| Decision {
            allowed,
            limit: 2,
            remaining,
            reset,
            window: 600,
        };
        assert_eq!(limiter.check(a), decision(true, 1, 600));
        time.advance(Duration::from_millis(1500));
        assert_eq!(limiter.check(a), decision(true, 0, 599));
        let refused = limiter.check(a);
        assert_eq!(refused, decision(false, 0, 599));
        assert_eq!(refused.retry_after(), Some(599));
        assert_eq!(refused.policy(), "2;w=600");
        assert_eq!(limiter.check(b), decision(true, 1, 600));
        time.advance(Duration::from_millis(597_500));
        assert_eq!(limiter.check(a), decision(false, 0, 1));
        time.advance(Duration::from_secs(1));
        assert_eq!(limiter.check(a), decision(true, 1, 600));
    }

    #[test]
    fn an_ipv6_network_is_one_address() {
        let time = ManualClock::new();
        let limiter = IpRateLimiter::new(2, Duration::from_secs(600), time.clock());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(limiter.check(ip("2001:db8:1:2::1")).allowed);
        assert!(limiter.check(ip("2001:db8:1:2:ffff:1:2:3")).allowed);
        assert!(!limiter.check(ip("2001:db8:1:2::99")).allowed);
        // The next /64 is another subscriber.
        assert!(limiter.check(ip("2001:db8:1:3::1")).allowed);
        // An IPv4-mapped address is its IPv4 address.
        assert!(limiter.check(ip("192.0.2.7")).allowed);
        assert!(limiter.check(ip("::ffff:192.0.2.7")).allowed);
        assert!(!limiter.check(ip("192.0.2.7")).allowed);
    }

    #[test]
    fn writes_are_limited_per_client_with_a_refilling_burst() {
        let time = ManualClock::new();
        let limiter = WriteRateLimiter::new(2, 3, time.clock()).unwrap();
        let (user_a, user_b) = (UserId::new(), UserId::new());
        let a = WriteClient::User(&user_a);
        for _ in 0..3 {
            assert!(limiter.check(a).allowed);
        }
        let refused = limiter.check(a);
        assert_eq!(
            refused,
            Decision {
                allowed: false,
                limit: 3,
                remaining: 0,
                reset: 1,
                window: 2,
            }
        );
        assert_eq!(
            (refused.retry_after(), refused.policy().as_str()),
            (Some(1), "3;w=2")
        );
        // Another user has its own bucket; a key and an address too.
        assert!(limiter.check(WriteClient::User(&user_b)).allowed);
        assert!(limiter.check(WriteClient::ApiKey("key_1")).allowed);
        assert!(
            limiter
                .check(WriteClient::Address([10, 0, 0, 1].into()))
                .allowed
        );
        // Half a second refills one token at 2 per second, and no more than that.
        time.advance(Duration::from_millis(500));
        assert!(limiter.check(a).allowed);
        assert!(!limiter.check(a).allowed);
        // A long pause refills to the burst, not beyond.
        time.advance(Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limiter.check(a).allowed);
        }
        assert!(!limiter.check(a).allowed);
    }

    #[test]
    fn a_flood_of_distinct_clients_keeps_the_limiter_bounded() {
        let time = ManualClock::new();
        let capacity = 1_000;
        let limiter = WriteRateLimiter::with_capacity(5, 5, time.clock(), capacity).unwrap();
        let spent = WriteClient::ApiKey("key_spent");
        for _ in 0..5 {
            assert!(limiter.check(spent).allowed);
        }
        assert!(!limiter.check(spent).allowed);
        // 20,000 clients that never come back (every IPv6 network of a /48 the flood has,
        // say), with the spent key writing now and then: the map never holds more than
        // its capacity, and a client in use is not forgotten.
        for n in 0u32..20_000 {
            let network = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | (u128::from(n) << 64);
            let client = WriteClient::Address(std::net::Ipv6Addr::from(network).into());
            assert!(limiter.check(client).allowed);
            assert!(limiter.len() <= capacity, "{} clients", limiter.len());
            if n % 100 == 0 {
                assert!(!limiter.check(spent).allowed, "forgotten at {n}");
            }
        }
        assert!(limiter.len() >= capacity / 2);
        // The default capacity is what the server uses.
        let server = WriteRateLimiter::new(100, 200, Clock::system()).unwrap();
        assert!(server.is_empty());
        let mut generations: Generations<Bucket> = Generations::new(DEFAULT_CAPACITY);
        assert_eq!(generations.half * 2, DEFAULT_CAPACITY);
        let now = Instant::now();
        for key in 0..(3 * DEFAULT_CAPACITY as u64) {
            generations.entry(key, || Bucket {
                tokens: 0.0,
                updated: now,
            });
        }
        assert!(generations.len() <= DEFAULT_CAPACITY);
    }

    #[test]
    fn a_bucket_counts_down_and_the_headers_show_the_limit_nearest_to_refusing() {
        let time = ManualClock::new();
        let limiter = WriteRateLimiter::new(100, 200, time.clock()).unwrap();
        let user = UserId::new();
        let first = limiter.check(WriteClient::User(&user));
        let expected = Decision {
            allowed: true,
            limit: 200,
            remaining: 199,
            reset: 1,
            window: 2,
        };
        assert_eq!(first, expected);
        assert_eq!(
            (first.policy().as_str(), first.retry_after()),
            ("200;w=2", None)
        );
        let second = limiter.check(WriteClient::User(&user));
        assert_eq!(second.remaining, 198);
        // Refilled to the burst: full, nothing to wait for.
        time.advance(Duration::from_secs(60));
        assert_eq!(limiter.check(WriteClient::User(&user)).remaining, 199);
        let full = WriteRateLimiter::new(1, 1, time.clock()).unwrap();
        time.advance(Duration::from_secs(1));
        let spent = full.check(WriteClient::ApiKey("k"));
        assert_eq!((spent.remaining, spent.reset), (0, 1));

        // A sign-in code request is a write too: the headers show the nearer limit.
        let code = Decision {
            allowed: true,
            limit: 30,
            remaining: 29,
            reset: 600,
            window: 600,
        };
        let mut headers = HeaderMap::new();
        apply_headers(&mut headers, &[second, code]);
        let header = |headers: &HeaderMap, name: &str| {
            headers.get(name).unwrap().to_str().unwrap().to_owned()
        };
        assert_eq!(header(&headers, "ratelimit-limit"), "30");
        assert_eq!(header(&headers, "ratelimit-remaining"), "29");
        assert_eq!(header(&headers, "ratelimit-reset"), "600");
        assert_eq!(header(&headers, "ratelimit-policy"), "30;w=600, 200;w=2");
        // A refusing limit comes first, whatever the other leaves.
        let refused = Decision {
            allowed: false,
            remaining: 0,
            reset: 1,
            ..second
        };
        let mut headers = HeaderMap::new();
        apply_headers(&mut headers, &[code, refused]);
        assert_eq!(header(&headers, "ratelimit-limit"), "200");
        assert_eq!(header(&headers, "ratelimit-remaining"), "0");
        assert_eq!(header(&headers, "ratelimit-policy"), "200;w=2, 30;w=600");
        let mut headers = HeaderMap::new();
        apply_headers(&mut headers, &[]);
        assert!(headers.is_empty());
    }

    #[test]
    fn zero_turns_the_write_limit_off() {
        assert!(WriteRateLimiter::new(0, 10, Clock::system()).is_none());
    }
}
