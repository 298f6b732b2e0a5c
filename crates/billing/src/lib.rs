//! Billing: every cent that moves in Feria moves through here.
//!
//! - [`ledger`]: the double-entry ledger. Balanced journal entries written in the same
//!   transaction as the change that caused them; accounts that must not go negative
//!   cannot, even under concurrent writers; [`ledger::verify`] checks the whole ledger.
//! - [`fees`]: platform, service and processor fees with one rounding rule.
//! - [`credits`]: prepaid credits, the `internal` payment provider.
//! - [`settlement`]: charge buyers, hold in escrow, pay sellers and fees — all or
//!   nothing, idempotent by key — and refunds.
//! - [`card_settlement`]: the same settlement with buyers' cards charged and sellers
//!   paid through Stripe: recorded intent → Stripe calls with idempotency keys → one
//!   finalizing transaction.
//! - [`transactions`]: the Transaction objects, per-user totals and platform metrics.
//! - [`payment_methods`]: a user's payout account, saved cards and Stripe customer, kept
//!   in step with Stripe.
//! - [`stripe`]: the Stripe REST client of the `stripe` payment provider (see
//!   `docs/STRIPE.md`); tested against a local Stripe-compatible server.
//!
//! Calls no other domain crate but platforms (a fee estimate reads the platform's fee) and
//! users (whose payment references [`payment_methods`] keeps in step with Stripe):
//! otherwise callers pass in what it needs (the platform's fee, the user ids they have
//! checked, what a settlement moves, the MRR of [`transactions::metrics`]). Subscriptions,
//! which charge through [`settlement::settle`], live above it in `feria-subscriptions`.

mod actor;
pub mod card_settlement;
pub mod credits;
mod error;
pub mod fees;
pub mod ledger;
pub mod payment_methods;
mod schema;
pub mod settlement;
pub mod stripe;
pub mod transactions;

pub use actor::Actor;
pub use error::{BillingCode, BillingError};
