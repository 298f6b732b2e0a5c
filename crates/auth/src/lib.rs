//! Authentication: who is calling.
//!
//! Email one-time codes (argon2-hashed, expiring, few attempts), sessions (random access
//! and refresh tokens stored as SHA-256 digests, refresh rotation with reuse detection),
//! platform API keys (`fer_test_...` / `fer_live_...`), and the `Principal` every request acts
//! as: platform, mode, and a user with a role or an API key.
//!
//! Planned surface (identity issue). May call `platforms` and `users`.
