//! The character-template marketplace.
//!
//! - [`workspace`]: each user's default workspace and its character limit (the server's
//!   `WORKSPACE_CHARACTER_LIMIT` unless an admin set one), kept by conditional updates.
//! - [`character`]: characters (`char_`), the templates; clones carry their provenance.
//! - [`listing`]: listings (`mkt_`) with validation, browse (ranked full-text on each
//!   backend's engine), the seller's dashboard, archive on delete.
//! - [`purchase`]: purchases (`pur_`) paid with credits through billing's ledger, one
//!   database transaction, at most once per buyer and listing; the buyer's library.
//! - [`review`]: buyers rate a listing once; the average feeds browse's `rating` filter.
//!
//! Backend-specific SQL (full-text search, row locks) lives in one module, `dialect.rs`.
//!
//! Owns `workspaces`, `characters`, `listings` (on PostgreSQL with its generated `search`
//! column), `purchases`, `reviews` and `listing_search_terms` (browse's postings), and
//! on SQLite `listings_fts` (filled by triggers) and `listings_fts_instances`. Calls
//! `platforms` (the platform's fee), `billing` (settlement), `events` (marketplace
//! events) and the kernel's full-text helpers; see
//! `docs/MARKETPLACE.md`.

pub mod bulk;
pub mod character;
mod dialect;
mod error;
pub mod listing;
pub mod purchase;
pub mod review;
mod schema;
pub mod workspace;

pub use character::{CharacterId, CharacterObject};
pub use error::{MarketplaceCode, MarketplaceError};
pub use listing::{ListingId, ListingObject};
pub use purchase::{PurchaseId, PurchaseObject};
pub use review::{ReviewId, ReviewObject};
pub use workspace::{WorkspaceId, WorkspaceObject};

/// The server's default character limit of a workspace when none is configured.
pub const DEFAULT_CHARACTER_LIMIT: i64 = 25;
