//! Bulk loads of the users table (benchmark seeding, imports): multi-row inserts instead
//! of one domain call per user. They skip the per-row rules of [`crate::user`]
//! (validation, events), so callers hand in rows that already hold them.

use feria_kernel::DbConn;

use crate::error::UserError;
use crate::schema::users;
use crate::user::User;

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
const USER_COLUMNS: usize = 20;

/// Inserts `rows` with multi-row `INSERT`s (as many rows per statement as the bound
/// values allow). Wrap the call in a transaction to make it all-or-nothing.
pub async fn insert_users(conn: &mut DbConn, rows: &[User]) -> Result<(), UserError> {
    for chunk in rows.chunks(MAX_BINDS / USER_COLUMNS) {
        insert!(conn, users, chunk);
    }
    Ok(())
}
