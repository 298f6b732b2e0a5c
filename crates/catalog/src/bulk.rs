//! Bulk loads of the catalog (benchmark seeding, imports): multi-row inserts instead of
//! one domain call per product. They skip the per-row rules of [`crate::product`]
//! (validation, events), so callers hand in rows that already hold them.

use feria_kernel::{DbConn, Mode, PlatformId};

use crate::error::CatalogError;
use crate::product::{Product, ProductId};
use crate::schema::{product_tags, products};

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
const PRODUCT_COLUMNS: usize = 19;
const TAG_COLUMNS: usize = 4;

#[derive(Clone, diesel::Insertable)]
#[diesel(table_name = product_tags)]
struct TagRow {
    product_id: ProductId,
    platform_id: PlatformId,
    mode: Mode,
    tag: String,
}

/// Inserts `rows` and their `product_tags` (one row per distinct tag of `Product::tags`,
/// which the tag filter reads) with multi-row `INSERT`s. Wrap the call in a transaction
/// to make it all-or-nothing.
pub async fn insert_products(conn: &mut DbConn, rows: &[Product]) -> Result<(), CatalogError> {
    for chunk in rows.chunks(MAX_BINDS / PRODUCT_COLUMNS) {
        insert!(conn, products, chunk);
    }
    let mut tags = Vec::new();
    for product in rows {
        let mut list = product.tag_list();
        list.sort();
        list.dedup();
        tags.extend(list.into_iter().map(|tag| TagRow {
            product_id: product.id.clone(),
            platform_id: product.platform_id.clone(),
            mode: product.mode,
            tag,
        }));
    }
    for chunk in tags.chunks(MAX_BINDS / TAG_COLUMNS) {
        insert!(conn, product_tags, chunk);
    }
    Ok(())
}
