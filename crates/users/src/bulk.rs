//! Bulk loads of the users table (benchmark seeding, imports): multi-row inserts instead
//! of one domain call per user. They skip the per-row rules of [`crate::user`]
//! (validation, events), so callers hand in rows that already hold them.

use feria_kernel::db::MAX_BULK_BINDS;
use feria_kernel::{DbConn, bulk_insert};

use crate::error::UserError;
use crate::schema::users;
use crate::user::User;

const USER_COLUMNS: usize = 20;

/// Inserts `rows` with multi-row `INSERT`s (as many rows per statement as the bound
/// values allow). Wrap the call in a transaction to make it all-or-nothing.
pub async fn insert_users(conn: &mut DbConn, rows: &[User]) -> Result<(), UserError> {
    for chunk in rows.chunks(MAX_BULK_BINDS / USER_COLUMNS) {
        bulk_insert!(conn, users, chunk)?;
    }
    Ok(())
}
