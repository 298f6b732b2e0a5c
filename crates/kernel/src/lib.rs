//! Shared foundation of Feria, below every domain crate:
//!
//! - [`id`]: prefixed ULID identifiers (`user_01HZX6FQJ5N6E7T2M3A4B5C6D7`);
//! - [`money`]: integer minor units with an ISO 4217 currency and explicit rounding;
//! - [`time`]: UTC timestamps, on the wire as `2023-06-21T10:00:00Z`;
//! - [`error`]: the one error shape on the wire and its status mapping;
//! - [`pagination`]: `page` / `page_size` and the list envelope;
//! - [`tenant`]: platform and mode, the scope of every tenant row;
//! - [`secret`]: random tokens stored as SHA-256 digests;
//! - [`mail`]: outgoing mail as `.eml` files or through SMTP;
//! - [`provider_errors`]: failed calls to Stripe or a chain node, counted where the
//!   server says;
//! - [`web_url`]: the one check of the `http`/`https` URLs clients store;
//! - [`coherence`]: caches kept true across nodes (PostgreSQL `LISTEN`/`NOTIFY`);
//! - [`db`]: one database handle over SQLite or PostgreSQL, write-once queries,
//!   transactions, embedded migrations, and PostgreSQL read replicas with read-your-writes
//!   ([`Db::read`], [`db::WritePositions`]).
//!
//! The kernel knows no HTTP framework: statuses are plain numbers, mapped by the gateway.
//!
//! Owns no tables. It embeds and applies every crate's migrations (`migrations/`), and
//! diesel keeps its `__diesel_schema_migrations` there. Calls no Feria crate: it is the
//! bottom of the ladder in docs/ARCHITECTURE.md.

pub mod coherence;
pub mod db;
pub mod error;
pub mod id;
pub mod mail;
pub mod money;
pub mod pagination;
pub mod provider_errors;
pub mod sealed;
pub mod secret;
pub mod tenant;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod web_url;

pub use db::{Backend, Db, DbConfig, DbConn, DbError};
pub use error::{ApiError, ErrorBody, ErrorCode, ErrorKind, FieldError, KernelCode};
pub use money::{Currency, Money, MoneyError, Rounding};
pub use pagination::{Page, PageQuery, PageRequest};
pub use tenant::{Mode, PlatformId, Tenant, UserId};
pub use time::Timestamp;

/// Re-exports used by this crate's macros, so that callers need not name these crates.
#[doc(hidden)]
pub mod __private {
    pub use diesel;
    pub use diesel_async;
    pub use utoipa;
}
