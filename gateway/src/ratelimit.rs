//! Rate limits kept in memory, per server: a fixed window per client IP address (sign-in
//! codes, uploads) and a token bucket per credential for every write. Limits that must
//! hold across several servers (per email) live in the database instead.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct IpRateLimiter {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl IpRateLimiter {
    pub fn new(limit: u32, window: Duration) -> IpRateLimiter {
        IpRateLimiter {
            limit,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request from `ip`; `Err(seconds)` when over the limit, with the time
    /// until its window ends.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > 100_000 {
            // Bound memory: forget windows that have ended.
            windows.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let remaining = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(remaining.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// What a write is counted against: the credential it presents (an API key or a session
/// token, whether valid or not), or the client's address when it presents none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteClient<'a> {
    Credential(&'a str),
    Address(IpAddr),
}

/// A token bucket per client for writes (POST, PUT, PATCH, DELETE): `burst` writes at once,
/// refilled at `per_second`. Reads are not counted: they are cheap and cacheable, while
/// every write takes the database's write path (SQLite's single writer). Clients are
/// stored by a keyed hash of their credential, never the credential itself.
pub struct WriteRateLimiter {
    per_second: f64,
    burst: f64,
    hasher: std::collections::hash_map::RandomState,
    buckets: Mutex<HashMap<u64, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl WriteRateLimiter {
    /// `None` when `per_second` is 0: writes are not limited.
    pub fn new(per_second: u32, burst: u32) -> Option<WriteRateLimiter> {
        (per_second > 0).then(|| WriteRateLimiter {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            hasher: std::collections::hash_map::RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one token for `client`; `Err(seconds)` until the next one is available.
    pub fn check(&self, client: WriteClient<'_>) -> Result<(), u64> {
        self.check_at(client, Instant::now())
    }

    fn check_at(&self, client: WriteClient<'_>, now: Instant) -> Result<(), u64> {
        let key = self.hasher.hash_one(client);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() > 100_000 {
            // Bound memory: a bucket that has refilled is the same as no bucket.
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second
                    < burst
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let refilled = now.duration_since(bucket.updated).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            // Whole seconds for Retry-After, never 0 (a client would retry at once).
            Err((wait.ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address_within_a_window() {
        let limiter = IpRateLimiter::new(2, Duration::from_secs(600));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        let retry = limiter.check(a).unwrap_err();
        assert!((1..=600).contains(&retry));
        assert!(limiter.check(b).is_ok());
    }

    #[test]
    fn writes_are_limited_per_credential_with_a_refilling_burst() {
        let limiter = WriteRateLimiter::new(2, 3).unwrap();
        let start = Instant::now();
        let a = WriteClient::Credential("fer_live_a");
        let b = WriteClient::Credential("fer_live_b");
        for _ in 0..3 {
            assert!(limiter.check_at(a, start).is_ok());
        }
        assert_eq!(limiter.check_at(a, start), Err(1));
        // Another credential has its own bucket; an address too.
        assert!(limiter.check_at(b, start).is_ok());
        assert!(
            limiter
                .check_at(WriteClient::Address([10, 0, 0, 1].into()), start)
                .is_ok()
        );
        // Half a second refills one token at 2 per second, and no more than that.
        let later = start + Duration::from_millis(500);
        assert!(limiter.check_at(a, later).is_ok());
        assert!(limiter.check_at(a, later).is_err());
        // A long pause refills to the burst, not beyond.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check_at(a, much_later).is_ok());
        }
        assert!(limiter.check_at(a, much_later).is_err());
    }

    #[test]
    fn zero_turns_the_write_limit_off() {
        assert!(WriteRateLimiter::new(0, 10).is_none());
    }
}
