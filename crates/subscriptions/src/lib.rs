//! Subscriptions: a contract's terms charged once per cycle (weekly, monthly, yearly).
//!
//! - [`subscribe`]: the whole "subscribe to a contract" use case — who may, the
//!   contract's terms, the first charge, the calendar — in one function.
//! - [`get`], [`list_for_user`], [`pause`], [`resume`], [`end`]: reads and the
//!   lifecycle; who may do what is decided here, by the [`Actor`].
//! - [`run_due_renewals`]: the renewal worker's body (the gateway runs it on a timer;
//!   tests call it with the instant they need).
//! - [`mrr`]: monthly recurring revenue, for `feria_billing::transactions::metrics`.
//!
//! Functions that act on one subscription, contract or user take its id as the client
//! sent it: the actor's checks come first (an API key asking to subscribe, resume or end
//! is 403 whatever the id), and an id that cannot be one is 404 like a missing one.
//!
//! Owns the tables `subscriptions`, `subscription_sellers` and `subscription_charges`
//! (`migrations/*/2026-11-21-000060_subscriptions`). Calls contracts (a contract's
//! terms, which check the catalog's `sale` rule), billing (settlement, fees, the
//! transaction kinds), calendar (the next renewal on the subscriber's calendar), users
//! (a listed user exists) and events, through their public functions. Lifecycle and
//! rules: `docs/SUBSCRIPTIONS.md`.

mod error;
mod schema;
mod service;

pub use error::SubscriptionError;
pub use service::{
    Actor, Cycle, NewSubscription, RenewalBacklog, RenewalReport, SubscriptionChargeId,
    SubscriptionId, SubscriptionObject, SubscriptionStatus, end, get, list_for_user, mrr, pause,
    renewal_backlog, resume, run_due_renewals, subscribe,
};
