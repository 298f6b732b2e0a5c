//! Stock: taking and returning units atomically.
//!
//! [`reserve`] is one conditional `UPDATE ... SET quantity = quantity - n WHERE
//! quantity >= n RETURNING quantity`: the check and the write are one statement, so
//! concurrent callers (in or out of transactions, on either backend) can never take more
//! than there is, and the quantity never goes below zero (a `CHECK (quantity >= 0)` is the
//! last guard). The contracts crate calls it at settlement, inside its own transaction.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, DbError, Tenant, Timestamp, with_conn};

use crate::error::CatalogError;
use crate::product::{self, MAX_QUANTITY, ProductId};
use crate::sale;
use crate::schema::products;

fn check_units(units: i64) -> Result<(), CatalogError> {
    if (1..=MAX_QUANTITY).contains(&units) {
        Ok(())
    } else {
        Err(CatalogError::invalid(
            "quantity",
            "must be between 1 and 1000000000",
        ))
    }
}

/// Takes `units` from a live, enabled product's stock; returns the quantity left. Fails
/// with `ProductDisabled` when the product may not be sold ([`crate::sale`]: the same
/// rule, checked in the `UPDATE` itself so a concurrent disable is never sold past), with
/// `InsufficientStock` (or `OutOfStock` at zero) when fewer are left, and changes nothing.
pub async fn reserve(
    conn: &mut DbConn,
    tenant: &Tenant,
    product_id: &ProductId,
    units: i64,
) -> Result<i64, CatalogError> {
    check_units(units)?;
    let left: Option<i64> = with_conn!(conn, c => {
        diesel::update(
            products::table
                .find(product_id)
                .filter(products::platform_id.eq(&tenant.platform_id))
                .filter(products::mode.eq(tenant.mode))
                .filter(products::deleted_at.is_null())
                .filter(products::is_enabled.eq(true))
                .filter(products::quantity.ge(units)),
        )
        .set((
            products::quantity.eq(products::quantity - units),
            products::updated_at.eq(Timestamp::now()),
        ))
        .returning(products::quantity)
        .get_result::<i64>(c)
        .await
        .optional()
    })
    .map_err(DbError::from)?;
    match left {
        Some(left) => Ok(left),
        None => {
            let product = product::get(conn, tenant, product_id).await?;
            sale::check(&product)?;
            if product.quantity == 0 {
                Err(CatalogError::OutOfStock)
            } else {
                Err(CatalogError::InsufficientStock {
                    available: product.quantity,
                })
            }
        }
    }
}

/// Puts `units` back into a live product's stock (a cancelled order); returns the new
/// quantity.
pub async fn release(
    conn: &mut DbConn,
    tenant: &Tenant,
    product_id: &ProductId,
    units: i64,
) -> Result<i64, CatalogError> {
    check_units(units)?;
    let quantity: Option<i64> = with_conn!(conn, c => {
        diesel::update(
            products::table
                .find(product_id)
                .filter(products::platform_id.eq(&tenant.platform_id))
                .filter(products::mode.eq(tenant.mode))
                .filter(products::deleted_at.is_null())
                .filter(products::quantity.le(MAX_QUANTITY - units)),
        )
        .set((
            products::quantity.eq(products::quantity + units),
            products::updated_at.eq(Timestamp::now()),
        ))
        .returning(products::quantity)
        .get_result::<i64>(c)
        .await
        .optional()
    })
    .map_err(DbError::from)?;
    match quantity {
        Some(quantity) => Ok(quantity),
        None => {
            // Absent, or the release would pass the largest quantity.
            product::get(conn, tenant, product_id).await?;
            Err(CatalogError::invalid(
                "quantity",
                "the stock would exceed 1000000000",
            ))
        }
    }
}
