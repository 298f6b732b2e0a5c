//! Backend-specific SQL: the one place in this crate that uses the two-armed
//! [`with_conn!`] (everything else is written once for both backends).
//!
//! - **Browse.** `GET /marketplace` is one SQL statement built here with its filters,
//!   plus a count when the page is full. Full-text matching and ranking use each
//!   backend's engine, as the catalog does: SQLite's FTS5 table `listings_fts` (BM25:
//!   title and character name over niche over description) joined on the listing's
//!   rowid; PostgreSQL's generated `listings.search` tsvector (weights A, A, B, C) with
//!   its GIN index, ranked by `ts_rank`. Both match every term of the query.
//! - **Row locks** for read-then-write transactions: `SELECT ... FOR UPDATE` on
//!   PostgreSQL; nothing on SQLite, whose `BEGIN IMMEDIATE` already serialises writers.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use feria_kernel::db::{DynamicSql as Sql, SqlArg as Arg};
use feria_kernel::{Backend, DbConn, DbError, PageRequest, Tenant, with_conn};

use crate::error::MarketplaceError;
use crate::listing::{BrowseQuery, LicenseType, Listing, ListingId, ListingStatus};
use crate::schema::listings;

/// Locks a listing's row until the transaction ends (PostgreSQL); a no-op on SQLite.
pub(crate) async fn lock_listing(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &ListingId,
) -> Result<(), MarketplaceError> {
    with_conn!(conn,
        sqlite: _c => Ok::<_, diesel::result::Error>(()),
        postgres: c => {
            listings::table
                .find(id)
                .filter(listings::platform_id.eq(&tenant.platform_id))
                .filter(listings::mode.eq(tenant.mode))
                .select(listings::id)
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

const COLUMNS: &str = "l.id, l.platform_id, l.mode, l.seller_id, l.character_id, l.title, \
    l.description, l.niche, l.character_name, l.price_minor, l.currency, l.license_type, \
    l.status, l.preview_images, l.sales_count, l.revenue_minor, l.earnings_minor, \
    l.rating_sum, l.rating_count, l.created_at, l.updated_at";

/// `FROM ... WHERE ...` of a browse: what the page and the count share.
fn from_where(backend: Backend, query: &BrowseQuery) -> Sql {
    let mut sql = Sql::new(backend);
    let searching = !query.terms.is_empty();
    match (searching, backend) {
        (true, Backend::Sqlite) => {
            // CROSS JOIN fixes the order: matches first (see the catalog's measurements).
            sql.push(" FROM listings_fts CROSS JOIN listings l ON l.rowid = listings_fts.rowid");
        }
        (true, Backend::Postgres) => {
            sql.push(" FROM listings l, plainto_tsquery('english', ")
                .text_arg(&query.terms.join(" "))
                .push(") AS query");
        }
        (false, _) => {
            sql.push(" FROM listings l");
        }
    }
    sql.push(" WHERE l.platform_id = ")
        .text_arg(query.tenant.platform_id.as_str())
        .push(" AND l.mode = ")
        .text_arg(query.tenant.mode.as_str())
        .push(" AND l.status = ")
        .text_arg(ListingStatus::Active.as_str())
        // An exclusive license sold once is no longer for sale.
        .push(" AND (l.license_type <> ")
        .text_arg(LicenseType::Exclusive.as_str())
        .push(" OR l.sales_count = 0)");
    if searching {
        match backend {
            Backend::Sqlite => {
                let fts: Vec<String> = query.terms.iter().map(|t| format!("\"{t}\"")).collect();
                sql.push(" AND listings_fts MATCH ")
                    .text_arg(&fts.join(" "));
            }
            Backend::Postgres => {
                sql.push(" AND l.search @@ query");
            }
        }
    }
    if let Some(niche) = &query.niche {
        sql.push(" AND l.niche = ").text_arg(niche);
    }
    if let Some(currency) = &query.currency {
        sql.push(" AND l.currency = ").text_arg(currency);
    }
    if let Some(min) = query.min_price_minor {
        sql.push(" AND l.price_minor >= ").arg(Arg::BigInt(min));
    }
    if let Some(max) = query.max_price_minor {
        sql.push(" AND l.price_minor <= ").arg(Arg::BigInt(max));
    }
    if let Some(hundredths) = query.min_rating_hundredths {
        // average >= rating, in integers: sum * 100 >= rating_hundredths * count.
        sql.push(" AND l.rating_count > 0 AND l.rating_sum * 100 >= l.rating_count * ")
            .arg(Arg::BigInt(hundredths));
    }
    sql
}

fn order_by(backend: Backend, query: &BrowseQuery) -> &'static str {
    match backend {
        Backend::Sqlite if !query.terms.is_empty() => {
            // bm25: lower is better; weights for title, character name, niche, description.
            " ORDER BY bm25(listings_fts, 10.0, 10.0, 5.0, 2.0), l.created_at DESC, l.id DESC"
        }
        Backend::Postgres if !query.terms.is_empty() => {
            " ORDER BY ts_rank(l.search, query) DESC, l.created_at DESC, l.id DESC"
        }
        _ => " ORDER BY l.created_at DESC, l.id DESC",
    }
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// One page of the listings matching `query`, and how many match in all.
pub(crate) async fn browse(
    conn: &mut DbConn,
    query: &BrowseQuery,
    page: PageRequest,
) -> Result<(Vec<Listing>, u64), MarketplaceError> {
    let backend = conn.backend();
    let shared = from_where(backend, query);
    let mut rows_sql = Sql::new(backend);
    rows_sql.args = shared.args.clone();
    rows_sql
        .push("SELECT ")
        .push(COLUMNS)
        .push(&shared.text)
        .push(order_by(backend, query))
        .push(" LIMIT ")
        .arg(Arg::BigInt(page.limit()))
        .push(" OFFSET ")
        .arg(Arg::BigInt(page.offset()));
    let rows: Vec<Listing> = with_conn!(conn,
        sqlite: c => feria_kernel::bind_dynamic!(rows_sql, diesel::sqlite::Sqlite).load(c).await,
        postgres: c => feria_kernel::bind_dynamic!(rows_sql, diesel::pg::Pg).load(c).await,
    )
    .map_err(DbError::from)?;
    // A short page that is not past the end tells the total without counting.
    let fetched = rows.len() as u64;
    if fetched < u64::from(page.page_size()) && (fetched > 0 || page.offset() == 0) {
        let offset = u64::try_from(page.offset()).unwrap_or(0);
        return Ok((rows, offset + fetched));
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
