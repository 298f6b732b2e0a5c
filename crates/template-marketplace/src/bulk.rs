//! Bulk loads of this crate's tables (benchmark seeding, imports): multi-row inserts
//! instead of one domain call per row. They skip the per-row rules of the domain
//! functions (validation, workspace limits, events), so callers hand in rows that
//! already hold them (e.g. `workspaces.character_count` equal to the characters
//! inserted into each workspace).

use feria_kernel::db::MAX_BULK_BINDS;
use feria_kernel::{DbConn, bulk_insert};

use crate::character::Character;
use crate::dialect;
use crate::error::MarketplaceError;
use crate::listing::{Listing, ListingId};
use crate::schema::{characters, listings, workspaces};
use crate::workspace::Workspace;

/// Inserts workspaces with multi-row `INSERT`s.
pub async fn insert_workspaces(
    conn: &mut DbConn,
    rows: &[Workspace],
) -> Result<(), MarketplaceError> {
    for chunk in rows.chunks(MAX_BULK_BINDS / 10) {
        bulk_insert!(conn, workspaces, chunk)?;
    }
    Ok(())
}

/// Inserts characters with multi-row `INSERT`s (their workspaces' `character_count` is
/// the caller's to set).
pub async fn insert_characters(
    conn: &mut DbConn,
    rows: &[Character],
) -> Result<(), MarketplaceError> {
    for chunk in rows.chunks(MAX_BULK_BINDS / 18) {
        bulk_insert!(conn, characters, chunk)?;
    }
    Ok(())
}

/// Inserts listings with multi-row `INSERT`s and writes their rows of the browse search
/// index, as the domain's writes do. Call it inside a transaction so a listing is never
/// visible without its index rows.
pub async fn insert_listings(conn: &mut DbConn, rows: &[Listing]) -> Result<(), MarketplaceError> {
    for chunk in rows.chunks(MAX_BULK_BINDS / 21) {
        bulk_insert!(conn, listings, chunk)?;
        let ids: Vec<ListingId> = chunk.iter().map(|l| l.id.clone()).collect();
        dialect::reindex(conn, &ids).await?;
    }
    Ok(())
}

/// Rebuilds the browse search index of every listing whose id is `LIKE id_like`, in one
/// set-based statement per backend (repairs, or a load that bypassed
/// [`insert_listings`]).
pub async fn reindex_listings(conn: &mut DbConn, id_like: &str) -> Result<(), MarketplaceError> {
    dialect::reindex_like(conn, id_like).await
}
