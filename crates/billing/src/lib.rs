//! Billing: every cent that moves in Feria moves through here.
//!
//! A double-entry ledger (balanced journal entries written in the same transaction as the
//! change that caused them; accounts that must not go negative cannot), the fee schedule
//! (platform, service and processor fees with one rounding rule), payment providers behind
//! one client, transactions, metrics and subscriptions.
//!
//! Planned surface (money and subscriptions issues). May call the crates below it.
