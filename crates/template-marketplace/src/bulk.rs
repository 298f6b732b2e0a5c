//! Bulk loads of this crate's tables (benchmark seeding, imports): multi-row inserts
//! instead of one domain call per row. They skip the per-row rules of the domain
//! functions (validation, workspace limits, events), so callers hand in rows that
//! already hold them (e.g. `workspaces.character_count` equal to the characters
//! inserted into each workspace).

use feria_kernel::DbConn;

use crate::backend;
use crate::character::Character;
use crate::error::MarketplaceError;
use crate::listing::{Listing, ListingId};
use crate::schema::{characters, listings, workspaces};
use crate::workspace::Workspace;

/// A multi-row insert of a slice of owned models into `table`. PostgreSQL takes it as one
/// statement. diesel's SQLite batch insert (one statement, or one per row when `None`
/// means `DEFAULT`) exists only for the synchronous connection, so on SQLite it runs on
/// the connection's blocking thread: one call, every row in native code.
macro_rules! insert {
    ($conn:expr, $table:ident, $rows:expr) => {{
        let rows = $rows.to_vec();
        feria_kernel::with_conn!($conn,
            sqlite: c => {
                c.spawn_blocking(move |inner| {
                    diesel::RunQueryDsl::execute(diesel::insert_into($table::table).values(rows), inner)
                })
                .await
            },
            postgres: c => {
                diesel_async::RunQueryDsl::execute(diesel::insert_into($table::table).values(rows), c)
                    .await
            },
        )
        .map_err(feria_kernel::DbError::from)?;
    }};
}

/// Bound values per statement, under both backends' limits (SQLite 32,766, PostgreSQL
/// 65,535).
const MAX_BINDS: usize = 30_000;

/// Inserts workspaces with multi-row `INSERT`s.
pub async fn insert_workspaces(
    conn: &mut DbConn,
    rows: &[Workspace],
) -> Result<(), MarketplaceError> {
    for chunk in rows.chunks(MAX_BINDS / 10) {
        insert!(conn, workspaces, chunk);
    }
    Ok(())
}

/// Inserts characters with multi-row `INSERT`s (their workspaces' `character_count` is
/// the caller's to set).
pub async fn insert_characters(
    conn: &mut DbConn,
    rows: &[Character],
) -> Result<(), MarketplaceError> {
    for chunk in rows.chunks(MAX_BINDS / 18) {
        insert!(conn, characters, chunk);
    }
    Ok(())
}

/// Inserts listings with multi-row `INSERT`s and writes their rows of the browse search
/// index, as the domain's writes do. Call it inside a transaction so a listing is never
/// visible without its index rows.
pub async fn insert_listings(conn: &mut DbConn, rows: &[Listing]) -> Result<(), MarketplaceError> {
    for chunk in rows.chunks(MAX_BINDS / 21) {
        insert!(conn, listings, chunk);
        let ids: Vec<ListingId> = chunk.iter().map(|l| l.id.clone()).collect();
        backend::reindex(conn, &ids).await?;
    }
    Ok(())
}

/// Rebuilds the browse search index of every listing whose id is `LIKE id_like`, in one
/// set-based statement per backend (repairs, or a load that bypassed
/// [`insert_listings`]).
pub async fn reindex_listings(conn: &mut DbConn, id_like: &str) -> Result<(), MarketplaceError> {
    backend::reindex_like(conn, id_like).await
}
