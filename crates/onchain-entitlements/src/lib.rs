//! On-chain entitlements: access bought with USDC.
//!
//! Offers priced in USDC, checkout quotes carrying transaction calldata, confirmation by
//! transaction hash verified against an EVM JSON-RPC node (at most one entitlement per
//! hash), entitlements per wallet and memberships.
//!
//! Planned surface (on-chain issue). Highest of the domain crates: it may call all others.
