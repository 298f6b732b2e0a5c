//! `catalog-service DATABASE_URL`: a small service that embeds Feria's catalog without
//! the Feria server.
//!
//! It links two Feria crates, `feria-kernel` (the database handle, ids, money) and
//! `feria-catalog` (products and search), and runs what an embedding service runs:
//!
//! 1. its own pool: [`Db::connect`] on the URL it is given (SQLite or PostgreSQL);
//! 2. the migrations: [`Db::migrate`] applies Feria's whole schema, which the catalog's
//!    tables are part of (a product references its platform and its seller);
//! 3. the catalog's service functions on a pooled connection, in a platform context
//!    ([`Tenant`]) and as an [`Actor`].
//!
//! A product belongs to a platform and is sold by a user; those rows are owned by the
//! `platforms` and `users` crates, which this service does not call (its tenants and
//! sellers would come from its own systems). So it registers one platform and one seller
//! itself, with plain SQL through the kernel ([`DbConn::batch_execute`]), writing only
//! values it made (fresh ids, fixed text, the current time): the columns those crates
//! require, nothing more. Then it creates products and searches them, printing:
//!
//! ```text
//! migrated: 19 migrations applied
//! platform: plat_01... (test mode)
//! created: prod_01... Brass lantern 24.00 USD
//! search "lantern": 1 found
//! found: prod_01... Brass lantern 24.00 USD
//! ```

use anyhow::{Context, bail};
use feria_catalog::product::{self, NewProduct};
use feria_catalog::search::{self, ProductFilter};
use feria_catalog::{Actor, ProductObject};
use feria_kernel::{
    Currency, Db, DbConfig, DbConn, Mode, Money, PageRequest, PlatformId, Tenant, Timestamp, UserId,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(url) = std::env::args().nth(1) else {
        bail!("usage: catalog-service DATABASE_URL (sqlite://PATH or postgres://...)");
    };

    // 1. The service's own pool.
    let db = Db::connect(&DbConfig::new(url))
        .await
        .context("connecting to the database")?;
    // 2. Feria's schema; on a database migrated before, nothing is applied.
    let applied = db.migrate().await.context("migrating")?;
    println!("migrated: {} migrations applied", applied.len());

    let mut conn = db.conn().await.context("a pooled connection")?;
    let tenant = Tenant::new(PlatformId::new(), Mode::Test);
    let seller = UserId::new();
    register_platform_and_seller(&mut conn, &tenant, &seller).await?;
    println!("platform: {} ({} mode)", tenant.platform_id, tenant.mode);

    // 3. The catalog's services. The seller acts for itself and manages the catalog.
    let actor = Actor::user(seller, true);
    let usd = Currency::from_code("USD").context("USD")?;
    let mut created = Vec::new();
    for (name, price) in [("Brass lantern", "24.00"), ("Oak stool", "89.50")] {
        let new = NewProduct {
            user_id: None,
            parent_product_id: None,
            name: name.to_owned(),
            description: Some(format!("{name}, made by hand.")),
            image: None,
            quantity: Some(5),
            is_enabled: Some(true),
            category: Some("Home".to_owned()),
            subcategory: None,
            tags: Some(vec!["handmade".to_owned()]),
            price: Money::parse(price, usd)
                .context("a price in USD")?
                .to_decimal(),
            currency: Some("USD".to_owned()),
            use_seasonal_prices: None,
        };
        let product = product::create(&mut conn, &tenant, &actor, new)
            .await
            .context("creating a product")?;
        println!("created: {}", describe(&product));
        created.push(product);
    }

    let filter = ProductFilter {
        q: Some("lantern".to_owned()),
        ..ProductFilter::default()
    };
    let page = PageRequest::new(1, 20).context("a page")?;
    let found = search::list(&mut conn, &tenant, &actor, &filter, page)
        .await
        .context("searching")?;
    println!("search \"lantern\": {} found", found.data.len());
    for product in &found.data {
        println!("found: {}", describe(product));
    }
    Ok(())
}

fn describe(product: &ProductObject) -> String {
    format!(
        "{} {} {} {}",
        product.id,
        product.name,
        product.price,
        product.currency.to_uppercase()
    )
}

/// The platform and the seller the catalog's rows refer to, in the columns the
/// `platforms` and `users` crates require. The values are this program's own (ids it
/// just made, fixed text), so writing them into the statement is safe; the kernel has no
/// other way to run SQL for a crate that links no query builder. Timestamps are written
/// in the form diesel writes (`YYYY-MM-DD HH:MM:SS`, UTC), which both backends read.
async fn register_platform_and_seller(
    conn: &mut DbConn,
    tenant: &Tenant,
    seller: &UserId,
) -> anyhow::Result<()> {
    let now = sql_timestamp(Timestamp::now());
    let platform = &tenant.platform_id;
    let mode = tenant.mode;
    let domain = format!("{}.example.invalid", platform.to_string().to_lowercase());
    conn.batch_execute(&format!(
        "INSERT INTO platforms (id, name, domain, created_at, updated_at) \
             VALUES ('{platform}', 'Example market', '{domain}', '{now}', '{now}'); \
         INSERT INTO users (id, platform_id, mode, email, role, created_at, updated_at) \
             VALUES ('{seller}', '{platform}', '{mode}', 'seller@example.invalid', 'owner', \
                     '{now}', '{now}')",
    ))
    .await
    .context("registering the platform and the seller")?;
    Ok(())
}

/// `2026-12-07T14:00:00Z` as `2026-12-07 14:00:00`.
fn sql_timestamp(at: Timestamp) -> String {
    at.to_rfc3339().replace('T', " ").replace('Z', "")
}
