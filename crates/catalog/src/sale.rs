//! May this product be sold now? The one rule every path that sells a product applies:
//! adding it to a cart, adding it to a contract, turning a cart into a contract,
//! subscribing to a contract, and taking its stock at settlement (docs/INVARIANTS.md).
//!
//! A product may be sold while it is live (not deleted) and enabled. Stock is checked
//! where units are taken ([`crate::stock::reserve`], whose conditional `UPDATE` repeats
//! this rule in SQL so that a product disabled while a settlement runs is never sold).

use feria_kernel::{DbConn, Tenant};

use crate::error::CatalogError;
use crate::product::{self, Product, ProductId};

/// Whether `product` may be sold now: `ProductNotFound` when it was deleted,
/// `ProductDisabled` when its seller or an admin disabled it.
pub fn check(product: &Product) -> Result<(), CatalogError> {
    if product.deleted_at.is_some() {
        return Err(CatalogError::ProductNotFound);
    }
    if !product.is_enabled {
        return Err(CatalogError::ProductDisabled {
            product: product.id.clone(),
        });
    }
    Ok(())
}

/// The tenant's product `id` if it may be sold now (see [`check`]).
pub async fn sellable(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &ProductId,
) -> Result<Product, CatalogError> {
    let product = product::get(conn, tenant, id).await?;
    check(&product)?;
    Ok(product)
}
