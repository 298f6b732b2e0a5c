//! Backend-specific SQL: the one place in this crate that uses the two-armed
//! [`with_conn!`] (everything else is written once for both backends).
//!
//! Called `dialect`: the SQL here is written in each database's own dialect (FTS5 or
//! tsvector, `FOR UPDATE` or nothing), where the rest of the crate is written once for
//! both. The former name, `backend`, read as "the server side" or diesel's `Backend`
//! trait rather than "per-database SQL".
//!
//! - **Product search.** `GET /products` is one SQL statement built here with its filters
//!   and sort, plus a count. Full-text matching and ranking use each backend's engine:
//!   SQLite's FTS5 table `products_fts` (BM25, name weighted over description over tags)
//!   joined on the product's rowid; PostgreSQL's generated `products.search` tsvector
//!   (weights A, B, C) with its GIN index, ranked by `ts_rank`. Both match every term of
//!   the query (stemmed English); the engines' syntax is the kernel's
//!   [`FullText`](feria_kernel::db::FullText), shared with the template marketplace. The
//!   rest of the statement is the same on both.
//! - **Row locks** for read-then-write transactions: `SELECT ... FOR UPDATE` on
//!   PostgreSQL; nothing on SQLite, whose `BEGIN IMMEDIATE` already serialises writers.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use feria_kernel::db::{DynamicSql as Sql, FullText, SqlArg as Arg};
use feria_kernel::{Backend, DbConn, DbError, PageRequest, Tenant, with_conn};

use crate::cart::CartId;
use crate::error::CatalogError;
use crate::product::{Product, ProductId};
use crate::schema::{carts, products};
use crate::search::{SearchQuery, Sort, Visibility};

/// Locks a product's row until the transaction ends (PostgreSQL); a no-op on SQLite.
pub(crate) async fn lock_product(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &ProductId,
) -> Result<(), CatalogError> {
    with_conn!(conn,
        sqlite: _c => Ok::<_, diesel::result::Error>(()),
        postgres: c => {
            products::table
                .find(id)
                .filter(products::platform_id.eq(&tenant.platform_id))
                .filter(products::mode.eq(tenant.mode))
                .select(products::id)
                .for_update()
                .first::<String>(c)
                .await
                .optional()
                .map(|_| ())
        },
    )
    .map_err(DbError::from)?;
    Ok(())
}

/// Locks a cart's row until the transaction ends (PostgreSQL); a no-op on SQLite.
pub(crate) async fn lock_cart(conn: &mut DbConn, id: &CartId) -> Result<(), CatalogError> {
    with_conn!(conn,
        sqlite: _c => Ok::<_, diesel::result::Error>(()),
        postgres: c => {
            carts::table
                .find(id)
                .select(carts::id)
                .for_update()
                .first::<String>(c)
                .await
                .optional()
                .map(|_| ())
        },
    )
    .map_err(DbError::from)?;
    Ok(())
}

/// Products on each backend's full-text engine: FTS5's `products_fts` (name,
/// description, tags) and the generated `products.search` (weights A, B, C).
const PRODUCTS: FullText = FullText {
    table: "products",
    alias: "p",
    fts5_table: "products_fts",
    bm25_weights: "10.0, 5.0, 2.0",
};

const COLUMNS: &str = "p.id, p.platform_id, p.mode, p.user_id, p.parent_product_id, p.name, \
    p.description, p.image, p.quantity, p.is_enabled, p.category, p.subcategory, p.tags, \
    p.price_minor, p.currency, p.use_seasonal_prices, p.created_at, p.updated_at, p.deleted_at";

/// `FROM ... WHERE ...` of a search: the part the page and the count share.
fn from_where(backend: Backend, query: &SearchQuery) -> Sql {
    let mut sql = Sql::new(backend);
    PRODUCTS.push_from(&mut sql, &query.terms);
    sql.push(" WHERE p.platform_id = ")
        .text_arg(query.tenant.platform_id.as_str())
        .push(" AND p.mode = ")
        .text_arg(query.tenant.mode.as_str())
        .push(" AND p.deleted_at IS NULL");
    PRODUCTS.push_match(&mut sql, &query.terms);
    match &query.visibility {
        Visibility::All => {}
        Visibility::EnabledOrOwn(Some(user)) => {
            sql.push(" AND (p.is_enabled = ")
                .arg(Arg::Bool(true))
                .push(" OR p.user_id = ")
                .text_arg(user.as_str())
                .push(")");
        }
        Visibility::EnabledOrOwn(None) => {
            sql.push(" AND p.is_enabled = ").arg(Arg::Bool(true));
        }
    }
    if let Some(category) = &query.category {
        sql.push(" AND p.category = ").text_arg(category);
    }
    if let Some(subcategory) = &query.subcategory {
        sql.push(" AND p.subcategory = ").text_arg(subcategory);
    }
    if let Some(user) = &query.user_id {
        sql.push(" AND p.user_id = ").text_arg(user.as_str());
    }
    if let Some(parent) = &query.parent_product_id {
        sql.push(" AND p.parent_product_id = ")
            .text_arg(parent.as_str());
    }
    if let Some(currency) = &query.currency {
        sql.push(" AND p.currency = ").text_arg(currency);
    }
    if let Some(min) = query.min_price_minor {
        sql.push(" AND p.price_minor >= ").arg(Arg::BigInt(min));
    }
    if let Some(max) = query.max_price_minor {
        sql.push(" AND p.price_minor <= ").arg(Arg::BigInt(max));
    }
    if let Some(enabled) = query.enabled {
        sql.push(" AND p.is_enabled = ").arg(Arg::Bool(enabled));
    }
    match query.in_stock {
        Some(true) => {
            sql.push(" AND p.quantity > 0");
        }
        Some(false) => {
            sql.push(" AND p.quantity = 0");
        }
        None => {}
    }
    if let Some(tag) = &query.tag {
        // `IN` rather than a correlated `EXISTS`: both engines can then start from the
        // tag's index when the tag is rare (SQLite never turns `EXISTS` into a join).
        sql.push(" AND p.id IN (SELECT t.product_id FROM product_tags t WHERE t.platform_id = ")
            .text_arg(query.tenant.platform_id.as_str())
            .push(" AND t.mode = ")
            .text_arg(query.tenant.mode.as_str())
            .push(" AND t.tag = ")
            .text_arg(tag)
            .push(")");
    }
    sql
}

fn order_by(backend: Backend, query: &SearchQuery) -> String {
    match query.sort {
        Sort::Relevance if !query.terms.is_empty() => format!(
            " ORDER BY {}, p.created_at DESC, p.id DESC",
            PRODUCTS.rank_order(backend)
        ),
        Sort::Relevance | Sort::Newest => " ORDER BY p.created_at DESC, p.id DESC".into(),
        Sort::PriceAsc => " ORDER BY p.price_minor ASC, p.id ASC".into(),
        Sort::PriceDesc => " ORDER BY p.price_minor DESC, p.id DESC".into(),
    }
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// A product row with the number of rows of the whole result (a window count).
#[derive(QueryableByName)]
struct Counted {
    #[diesel(embed)]
    product: Product,
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// One page of the products matching `query`, and how many match in all.
pub(crate) async fn search(
    conn: &mut DbConn,
    query: &SearchQuery,
    page: PageRequest,
) -> Result<(Vec<Product>, u64), CatalogError> {
    let backend = conn.backend();
    let shared = from_where(backend, query);
    // A full-text query on PostgreSQL reads every match anyway (to rank or sort them), so
    // the page counts them in the same pass. SQLite cannot use bm25() beside a window
    // function, and elsewhere a separate count lets the page stop after `LIMIT` rows.
    let window_count = backend == Backend::Postgres && !query.terms.is_empty();
    let mut rows_sql = Sql::new(backend);
    rows_sql.args = shared.args.clone();
    rows_sql.push("SELECT ").push(COLUMNS);
    if window_count {
        rows_sql.push(", COUNT(*) OVER () AS total");
    }
    rows_sql
        .push(&shared.text)
        .push(&order_by(backend, query))
        .push(" LIMIT ")
        .arg(Arg::BigInt(page.limit()))
        .push(" OFFSET ")
        .arg(Arg::BigInt(page.offset()));
    let (rows, counted): (Vec<Product>, Option<i64>) = if window_count {
        let counted: Vec<Counted> = with_conn!(conn,
            sqlite: c => feria_kernel::bind_dynamic!(rows_sql, diesel::sqlite::Sqlite).load(c).await,
            postgres: c => feria_kernel::bind_dynamic!(rows_sql, diesel::pg::Pg).load(c).await,
        )
        .map_err(DbError::from)?;
        let total = counted.as_slice().first().map(|c| c.total);
        (counted.into_iter().map(|c| c.product).collect(), total)
    } else {
        let rows: Vec<Product> = with_conn!(conn,
            sqlite: c => feria_kernel::bind_dynamic!(rows_sql, diesel::sqlite::Sqlite).load(c).await,
            postgres: c => feria_kernel::bind_dynamic!(rows_sql, diesel::pg::Pg).load(c).await,
        )
        .map_err(DbError::from)?;
        (rows, None)
    };
    if let Some(total) = counted {
        return Ok((rows, u64::try_from(total).unwrap_or(0)));
    }
    if let Some(total) = page.total_of_short_page(rows.len()) {
        return Ok((rows, total));
    }
    let mut count_sql = Sql::new(backend);
    count_sql.args = shared.args;
    count_sql
        .push("SELECT COUNT(*) AS total")
        .push(&shared.text);
    let total: Total = with_conn!(conn,
        sqlite: c => feria_kernel::bind_dynamic!(count_sql, diesel::sqlite::Sqlite).get_result(c).await,
        postgres: c => feria_kernel::bind_dynamic!(count_sql, diesel::pg::Pg).get_result(c).await,
    )
    .map_err(DbError::from)?;
    Ok((rows, u64::try_from(total.total).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use feria_kernel::{Mode, PlatformId, UserId};

    fn query(terms: &[&str]) -> SearchQuery {
        SearchQuery {
            tenant: Tenant::new(PlatformId::new(), Mode::Test),
            visibility: Visibility::EnabledOrOwn(Some(UserId::new())),
            terms: terms.iter().map(|t| (*t).to_owned()).collect(),
            category: Some("Books".into()),
            subcategory: None,
            tag: Some("red".into()),
            user_id: None,
            parent_product_id: None,
            currency: None,
            min_price_minor: Some(100),
            max_price_minor: None,
            enabled: None,
            in_stock: Some(true),
            sort: Sort::Relevance,
        }
    }

    #[test]
    fn placeholders_follow_the_backend_and_count_the_arguments() {
        let sqlite = from_where(Backend::Sqlite, &query(&["blue", "shirt"]));
        assert!(
            sqlite.text.contains("products_fts MATCH ?"),
            "{}",
            sqlite.text
        );
        assert!(!sqlite.text.contains('$'));
        assert_eq!(sqlite.args.len(), sqlite.text.matches('?').count());
        match &sqlite.args[2] {
            Arg::Text(fts) => assert_eq!(fts, "\"blue\" \"shirt\""),
            other => panic!("{other:?}"),
        }

        let pg = from_where(Backend::Postgres, &query(&["blue"]));
        assert!(
            pg.text.contains("plainto_tsquery('english', $1)"),
            "{}",
            pg.text
        );
        assert!(pg.text.contains("p.search @@ query"));
        let last = format!("${}", pg.args.len());
        assert!(pg.text.contains(&last));
        assert!(!pg.text.contains(&format!("${}", pg.args.len() + 1)));
    }

    #[test]
    fn relevance_without_terms_is_newest() {
        let q = query(&[]);
        assert_eq!(
            order_by(Backend::Postgres, &q),
            " ORDER BY p.created_at DESC, p.id DESC"
        );
        assert!(order_by(Backend::Sqlite, &query(&["x"])).contains("bm25"));
    }
}
