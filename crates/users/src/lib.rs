//! Users: the people of a platform.
//!
//! One account per platform, mode and email, with a role (owner, admin, editor, member),
//! a profile, and references to payment-provider objects.
//!
//! Owns `users`, `user_links` and `user_payment_methods`. Calls `platforms` (images are
//! media ids, shown as URLs by `feria_platforms::media`) and `events` (user events).

pub mod bulk;
mod error;
pub mod links;
pub mod notices;
pub mod payments;
pub mod role;
mod schema;
pub mod user;
pub mod usernames;

pub use error::{UserCode, UserError};
pub use role::Role;
pub use user::{User, UserChanges, UserObject};
