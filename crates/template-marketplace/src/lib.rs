//! The character-template marketplace.
//!
//! Workspaces (with a character limit), characters, listings of character templates,
//! purchases paid with credits through the billing ledger (exactly once per buyer and
//! listing), and the clone of the template into the buyer's workspace.
//!
//! Planned surface (template-marketplace issue). May call the crates below it.
