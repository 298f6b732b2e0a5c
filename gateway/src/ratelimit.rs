//! A fixed-window rate limit per client IP address, in memory. Limits that must hold
//! across several servers (per email) live in the database instead.

use std::collections::HashMap;
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
}
