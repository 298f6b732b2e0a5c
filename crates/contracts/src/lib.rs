//! Contracts: multi-party invoices.
//!
//! Contracts with items (from the catalog or custom lines), buyers, sellers and fees, a
//! documented lifecycle (draft, open, paid, settled, void), sending, settlement through the
//! billing ledger, and provider sync. Totals are always derived, never taken from input.
//!
//! Planned surface (contracts issue). May call the crates below it.
