//! Events and signed webhooks.
//!
//! - [`outbox`]: [`record`] writes an event inside the caller's transaction (the
//!   transactional outbox): no event for a change that rolled back, exactly one for each
//!   committed change, numbered per platform and mode without gaps; the event log API.
//! - [`endpoints`]: webhook endpoints per platform and mode, with their signing secrets.
//! - [`deliveries`]: the attempt history and manual redelivery.
//! - [`worker`]: the delivery worker the server runs: fan-out, leased claims, signed
//!   POSTs, exponential retries, automatic disabling.
//! - [`signature`]: the `Feria-Signature` header; [`ssrf`]: which targets are allowed.
//!
//! Owns `event_counters`, `events`, `webhook_endpoints`, `webhook_deliveries` and
//! `webhook_attempts`. Calls the kernel only, so every domain crate can record events.
//! See docs/EVENTS.md.

pub mod deliveries;
pub mod endpoints;
mod error;
pub mod outbox;
mod schema;
pub mod signature;
pub mod ssrf;
pub mod worker;

pub use endpoints::{DeliveryId, EndpointId};
pub use error::{EventsCode, EventsError};
pub use outbox::{EventId, EventObject, EventType, NewEvent, record, record_all};
pub use worker::{WebhookSettings, Worker};
