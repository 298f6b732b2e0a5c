//! Catalog: products, prices, stock and carts.
//!
//! - [`product`]: products with variants (`parent_product_id`, one level), categories
//!   and subcategories, tags, stock quantity, enabled flag; who may see and change them
//!   ([`Actor`]); soft deletion that keeps cart snapshots valid.
//! - [`pricing`]: seasonal prices that never overlap, and the price in force at an
//!   instant ([`pricing::price_in_force`], [`pricing::price_at`]) for carts and contracts.
//! - [`sale`]: whether a product may be sold now, the one check of every selling path.
//! - [`stock`]: atomic reserve and release; stock never goes negative.
//! - [`search`]: filtered, sorted, paginated listing with full-text search on each
//!   backend's own engine, and the category tree with counts.
//! - [`cart`]: the signed-in user's cart, with snapshots of name and price.
//!
//! Backend-specific SQL (full-text search, row locks) lives in one module, `dialect.rs`.
//!
//! Owns `products` (on PostgreSQL with its generated `search` column), `product_tags`,
//! `seasonal_prices`, `carts` and `cart_items`, and on SQLite `products_fts` with the
//! triggers that fill it. Calls `users` (to check a named seller) and `events` (product
//! events); its rows refer to `platforms` and `users` rows, which those crates own.

pub mod bulk;
pub mod cart;
mod dialect;
mod error;
pub mod pricing;
pub mod product;
pub mod sale;
mod schema;
pub mod search;
pub mod stock;

pub use cart::{CartId, CartItemId, CartObject};
pub use error::{CatalogCode, CatalogError};
pub use pricing::{PriceInForce, SeasonalPriceId, price_at, price_in_force};
pub use product::{Actor, Product, ProductId, ProductObject};
