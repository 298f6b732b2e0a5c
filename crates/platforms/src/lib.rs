//! Platforms: the tenants of Feria.
//!
//! A platform is one marketplace: its name, domain, settings (such as its `platformFee`
//! and the browser origins allowed to call the API for it, `corsAllowedOrigins`),
//! its waitlist, and the images (logos, profile pictures) uploaded to it. Every tenant
//! row in every crate carries the owning `platform_id` and
//! the mode (test or live) it was written in; this crate is the source of truth for
//! platforms.
//!
//! Uploaded images ([`media`]) keep their bytes in a [`media::MediaStore`]: a local
//! directory (the embedded default, for one server) or a bucket of an S3-compatible object
//! store that several servers share (`MEDIA_STORE=s3://bucket/prefix`), reached through
//! the `object_store` crate; [`media::migrate`] copies a directory's images into a bucket.
//!
//! Owns `platforms`, `waitlist_entries` and `media`. The lowest of the domain crates:
//! calls only `events` (to record a waitlist grant).

pub mod cors;
mod error;
pub mod media;
pub mod platform;
mod schema;
pub mod waitlist;

pub use error::{PlatformCode, PlatformError};
pub use platform::{NewPlatform, Platform, PlatformChanges, PlatformObject};
