//! Platforms: the tenants of Feria.
//!
//! A platform is one marketplace: its name, domain, settings (such as its `platformFee`),
//! its waitlist, and the images (logos, profile pictures) uploaded to it. Every tenant
//! row in every crate carries the owning `platform_id` and
//! the mode (test or live) it was written in; this crate is the source of truth for
//! platforms. It is the lowest of the domain crates and calls no other.

mod error;
pub mod media;
pub mod platform;
mod schema;
pub mod waitlist;

pub use error::{PlatformCode, PlatformError};
pub use platform::{NewPlatform, Platform, PlatformChanges, PlatformObject};
