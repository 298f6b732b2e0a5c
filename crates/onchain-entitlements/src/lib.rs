//! On-chain entitlements: access bought with a token (USDC) on an EVM chain.
//!
//! - [`offer`]: offers priced in atomic units on one chain, with policies (member only,
//!   workspace bound, transferable), a membership flag and a duration; operator CRUD.
//! - [`quote`]: checkout quotes (`cq_...`) carrying the exact ERC-20 transfer to send,
//!   with the quote id bound into the calldata.
//! - [`entitlement`]: confirmation by transaction hash verified through JSON-RPC, one
//!   entitlement per hash (a unique constraint), entitlements per wallet, revocation.
//! - [`finality`]: the watcher re-checking payments until final, revoking those a reorg
//!   removed (`payment_reorged`).
//! - [`receipt`]: signed receipts (compact JWS, EdDSA) and the platform's JWKS; signing
//!   keys sealed at rest.
//! - [`chain`]: configured chains (node, token, treasury, confirmations); [`rpc`]: the
//!   JSON-RPC client; [`evm`]: addresses, Keccak, calldata and log decoding by hand.
//!
//! Owns `onchain_offers`, `onchain_quotes`, `onchain_entitlements` and
//! `onchain_receipt_keys`. Highest of the
//! domain crates; it calls only `events` (an entitlement's activation) and the kernel.
//! See docs/ONCHAIN.md.

pub mod chain;
pub mod entitlement;
mod error;
pub mod evm;
pub mod finality;
pub mod offer;
pub mod quote;
pub mod receipt;
pub mod rpc;
mod schema;

pub use chain::{ChainConfig, Onchain, OnchainConfigError, OnchainSettings};
pub use entitlement::{Confirmation, Entitlement, EntitlementObject, EntitlementState, Finality};
pub use error::{OnchainCode, OnchainError};
pub use offer::{Offer, OfferObject};
pub use quote::{Quote, QuoteId, QuoteObject};
