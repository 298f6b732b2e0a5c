//! Contracts: multi-party invoices between buyers and sellers.
//!
//! - [`model`]: the stored rows, the API objects and request bodies, and the derived
//!   totals (`subTotal`, fees, `total`, `net`), never taken from input.
//! - [`service`]: create (also from a cart), read, list, edit items, buyers, sellers,
//!   fees and fee inclusion, void, send (mail to every buyer); who may do what.
//! - [`settle`]: settlement through billing (all or nothing, once) with stock taken in
//!   the same transaction, and sync (rebalance + payment state).
//!
//! Lifecycle and rules: `docs/CONTRACTS.md`. Owns `contracts`, `contract_items`,
//! `contract_buyers`, `contract_sellers` and `contract_fees`. Calls platforms (fee
//! percent), users (parties), billing (fees, settlement, transactions), catalog (prices,
//! carts, stock) and events (contract events) through their public functions; reads and
//! writes only its own tables.

mod error;
pub mod model;
mod schema;
pub mod service;
pub mod settle;

pub use error::{ContractCode, ContractError};
pub use model::{
    ContractChanges, ContractFeeId, ContractId, ContractItemId, ContractObject, DueChange,
    FeeChanges, FeeInclusionChanges, NewBuyer, NewContract, NewFee, NewItem, NewSeller, OwedChange,
    Status,
};
pub use service::{Actor, ListFilter};
pub use settle::{SettleOutcome, SubscriptionTerms, SyncObject};
