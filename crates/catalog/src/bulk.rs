//! Bulk loads of the catalog (benchmark seeding, imports): multi-row inserts instead of
//! one domain call per product. They skip the per-row rules of [`crate::product`]
//! (validation, events), so callers hand in rows that already hold them.

use feria_kernel::db::MAX_BULK_BINDS;
use feria_kernel::{DbConn, Mode, PlatformId, bulk_insert};

use crate::error::CatalogError;
use crate::product::{Product, ProductId};
use crate::schema::{product_tags, products};

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
    for chunk in rows.chunks(MAX_BULK_BINDS / PRODUCT_COLUMNS) {
        bulk_insert!(conn, products, chunk)?;
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
    for chunk in tags.chunks(MAX_BULK_BINDS / TAG_COLUMNS) {
        bulk_insert!(conn, product_tags, chunk)?;
    }
    Ok(())
}
