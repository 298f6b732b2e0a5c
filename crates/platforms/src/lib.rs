//! Platforms: the tenants of Feria.
//!
//! A platform is one marketplace: its name, domains, settings (such as its `platformFee`),
//! its test and live modes, its waitlist and its community membership. Every tenant table in
//! every crate carries the owning `platform_id`; this crate is the source of truth for it.
//!
//! Planned surface (identity issue): platform lookup by id and by domain, settings updates,
//! logo, waitlist entries with ordered positions and grants, community membership checks.
//! Lowest of the domain crates: it calls no other.
