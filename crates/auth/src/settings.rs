//! Tunables of sign-in and sessions, set once by the gateway.

use std::time::Duration;

use feria_kernel::time::Clock;

/// How sign-in codes and sessions behave.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// How long an emailed code is valid.
    pub otp_ttl: Duration,
    /// Guesses allowed per code (the right one included).
    pub otp_max_attempts: i32,
    /// Codes that may be requested for one email within `otp_window`.
    pub otp_requests_per_window: i64,
    pub otp_window: Duration,
    /// Lifetime of an access token (`expires_in`).
    pub access_ttl: Duration,
    /// Lifetime of a refresh token.
    pub refresh_ttl: Duration,
    /// argon2 memory cost in KiB and passes, for hashing codes.
    pub argon2_memory_kib: u32,
    pub argon2_passes: u32,
    /// Where sign-in codes read the time (their expiry, the per-email window). The
    /// gateway hands its own clock in; tests move a manual one instead of sleeping.
    pub clock: Clock,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            otp_ttl: Duration::from_secs(10 * 60),
            otp_max_attempts: 5,
            otp_requests_per_window: 5,
            otp_window: Duration::from_secs(10 * 60),
            access_ttl: Duration::from_secs(60 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            // OWASP's argon2id recommendations are five equivalent (memory, passes) pairs,
            // from 46 MiB x 1 to 7 MiB x 5, at about the same CPU cost. The server holds
            // one block per core while sign-ins run, so the smallest memory wins: 7 MiB x 5
            // instead of 19 MiB x 2 keeps a sign-in burst 24 MiB lower on two cores.
            argon2_memory_kib: 7 * 1024,
            argon2_passes: 5,
            clock: Clock::system(),
        }
    }
}
