//! Catalog: products, prices, stock and carts.
//!
//! Products with variants, categories and subcategories, tags, seasonal prices, stock
//! (never oversold), full-text search on each backend's own engine, and the signed-in user's
//! cart.
//!
//! Planned surface (catalog issue). May call the crates below it.
