//! Backend-specific SQL: the one place in this crate that uses the two-armed
//! [`with_conn!`] (everything else is written once for both backends).
//!
//! Called `dialect`: the SQL here is written in each database's own dialect (FTS5 or
//! tsvector, `FOR UPDATE` or nothing), where the rest of the crate is written once for
//! both. The former name, `backend`, read as "the server side" or diesel's `Backend`
//! trait rather than "per-database SQL".
//!
//! - **Browse.** `GET /marketplace` is one SQL statement built here with its filters,
//!   plus a count when the page is full. Full-text matching and ranking use each
//!   backend's engine through the kernel's [`FullText`](feria_kernel::db::FullText), as
//!   the catalog does: SQLite's FTS5 table `listings_fts` (BM25:
//!   title and character name over niche over description) joined on the listing's
//!   rowid; PostgreSQL's generated `listings.search` tsvector (weights A, A, B, C) with
//!   its GIN index, ranked by `ts_rank`. Both match every term of the query.
//!   A one-word query (the common case) reads the crate's own search index instead:
//!   `listing_search_terms`, one row per (browsable listing, term) with the listing's
//!   single-term rank precomputed, scanned in rank order through one index range; see
//!   [`reindex`] and docs/MARKETPLACE.md.
//! - **Row locks** for read-then-write transactions: `SELECT ... FOR UPDATE` on
//!   PostgreSQL; nothing on SQLite, whose `BEGIN IMMEDIATE` already serialises writers.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use feria_kernel::db::PgConn;
use feria_kernel::db::{DynamicSql as Sql, FullText, SqlArg as Arg};
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

/// Listings on each backend's full-text engine: FTS5's `listings_fts` (title, character
/// name, niche, description) and the generated `listings.search` (weights A, A, B, C).
const LISTINGS: FullText = FullText {
    table: "listings",
    alias: "l",
    fts5_table: "listings_fts",
    bm25_weights: "10.0, 10.0, 5.0, 2.0",
};

const COLUMNS: &str = "l.id, l.platform_id, l.mode, l.seller_id, l.character_id, l.title, \
    l.description, l.niche, l.character_name, l.price_minor, l.currency, l.license_type, \
    l.status, l.preview_images, l.sales_count, l.revenue_minor, l.earnings_minor, \
    l.rating_sum, l.rating_count, l.created_at, l.updated_at";

/// `FROM ... WHERE ...` of a browse: what the page and the count share.
fn from_where(backend: Backend, query: &BrowseQuery) -> Sql {
    let mut sql = Sql::new(backend);
    LISTINGS.push_from(&mut sql, &query.terms);
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
    LISTINGS.push_match(&mut sql, &query.terms);
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

fn order_by(backend: Backend, query: &BrowseQuery) -> String {
    if query.terms.is_empty() {
        return " ORDER BY l.created_at DESC, l.id DESC".into();
    }
    format!(
        " ORDER BY {}, l.created_at DESC, l.id DESC",
        LISTINGS.rank_order(backend)
    )
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// One page of the listings matching `query`, and how many match in all: from the search
/// index for a one-word query, from the full-text engine otherwise.
pub(crate) async fn browse(
    conn: &mut DbConn,
    query: &BrowseQuery,
    page: PageRequest,
) -> Result<(Vec<Listing>, u64), MarketplaceError> {
    if let [word] = query.terms.as_slice() {
        match conn.backend() {
            Backend::Postgres => {
                let term = IndexTerm::LexemeOf(word.clone());
                return browse_indexed(conn, query, term, page).await;
            }
            Backend::Sqlite => {
                // FTS5's term for the word; a word FTS5 splits in several is left to it.
                if let [term] = sqlite_terms(conn, word).await?.as_slice() {
                    return browse_indexed(conn, query, IndexTerm::Value(term.clone()), page).await;
                }
            }
        }
    }
    browse_full_text(conn, query, page).await
}

/// The same page from the full-text engine alone (GIN + `ts_rank`, FTS5 + `bm25`): what
/// browse runs for several words, and the reference the search index is measured
/// against (`feria bench-baseline --scenario overlap`).
pub(crate) async fn browse_full_text(
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
        .push(&order_by(backend, query))
        .push(" LIMIT ")
        .arg(Arg::BigInt(page.limit()))
        .push(" OFFSET ")
        .arg(Arg::BigInt(page.offset()));
    let rows: Vec<Listing> =
        with_conn!(conn, c => rows_sql.clone().prepared().load(c).await).map_err(DbError::from)?;
    if let Some(total) = page.total_of_short_page(rows.len()) {
        return Ok((rows, total));
    }
    let mut count_sql = Sql::new(backend);
    count_sql.args = shared.args;
    count_sql
        .push("SELECT COUNT(*) AS total")
        .push(&shared.text);
    let total: Total = with_conn!(conn, c => count_sql.clone().prepared().get_result(c).await)
        .map_err(DbError::from)?;
    Ok((rows, u64::try_from(total.total).unwrap_or(0)))
}

// ---- the search index ----------------------------------------------------------------
//
// `listing_search_terms` holds one row per (browsable listing, term of its text) with the
// listing's rank for that term alone and copies of the columns browse filters on
// (niche, currency, price). Browse with one word reads the top of the index range
// (platform, mode, term, niche) backwards — score, created_at, listing_id descending —
// filtering currency and price inside the index, and joins the page's 20 listings; the
// count reads the same range. Nothing fetches or ranks the thousands of full-text
// matches. Rows exist only for listings browse shows (active, not an exclusive license
// already sold), so no status check is needed at read time.
//
// Kept in step by [`reindex`] inside the transaction of every write that changes what
// the rows hold: listing create and update (status, price, currency, niche, text),
// a character's rename (its listings' `character_name`), and the sale of an exclusive
// license. [`reindex_like`] rebuilds many listings set-based (bulk loads).
//
// Scores:
// - PostgreSQL: `ts_rank(search, '<lexeme>'::tsquery)` computed by PostgreSQL itself,
//   stored as float4 (what ts_rank returns): the order and ties are exactly those of the
//   full-text query `ORDER BY ts_rank(search, plainto_tsquery('english', word)) DESC`,
//   whose lexeme is the word's single lexeme.
// - SQLite: FTS5's own terms (porter unicode61, read back through fts5vocab, so a term
//   here is what `listings_fts MATCH` matches) and FTS5's bm25 term component for the
//   listing: f (k1 + 1) / (f + k1 (1 - b + b |D| / avgdl)), f the column-weighted count
//   (10, 10, 5, 2), |D| the listing's tokens, k1 = 1.2, b = 0.75. bm25 multiplies it by
//   the term's IDF, the same for every listing of a one-word query, so the order is
//   bm25's except that avgdl is fixed (AVG_TOKENS) instead of the live average: a
//   listing's score never goes stale when others are written.

/// The listings browse can show, as SQL over `listings l`.
const BROWSABLE: &str =
    "l.status = 'active' AND (l.license_type <> 'exclusive' OR l.sales_count = 0)";

/// SQLite's fixed average listing length in tokens for bm25's length normalisation.
const AVG_TOKENS: f64 = 64.0;

/// A private FTS5 table (per connection, in `temp`) with `listings_fts`'s tokenizer, and
/// its token instances: how SQLite tells the terms of a few listings or of a query word
/// exactly as FTS5 makes them, without scanning the whole index.
const SQLITE_TOKENIZER: &str = "CREATE VIRTUAL TABLE IF NOT EXISTS temp.listing_tokens \
    USING fts5 (title, character_name, niche, description, \
    tokenize = 'porter unicode61 remove_diacritics 2'); \
    CREATE VIRTUAL TABLE IF NOT EXISTS temp.listing_tokens_instances \
    USING fts5vocab (temp, listing_tokens, instance); \
    DELETE FROM temp.listing_tokens;";

/// `INSERT INTO listing_search_terms` from the token instances of FTS5 table
/// `instances` (rowid = the listing's rowid), for browsable listings matching `filter`.
fn sqlite_insert_postings(instances: &str, filter: &str) -> String {
    let k1 = 1.2;
    let b = 0.75;
    format!(
        "INSERT INTO listing_search_terms (platform_id, mode, term, niche, score, created_at, \
         listing_id, currency, price_minor) \
         SELECT l.platform_id, l.mode, v.term, l.niche, \
         (v.f * {k1p1}) / (v.f + {k1} * ({one_b} + {b} * d.n / {AVG_TOKENS:.1})), \
         l.created_at, l.id, l.currency, l.price_minor \
         FROM (SELECT doc, term, SUM(CASE col WHEN 'title' THEN 10.0 \
         WHEN 'character_name' THEN 10.0 WHEN 'niche' THEN 5.0 ELSE 2.0 END) AS f \
         FROM {instances} GROUP BY doc, term) AS v \
         JOIN (SELECT doc, COUNT(*) AS n FROM {instances} GROUP BY doc) AS d ON d.doc = v.doc \
         JOIN listings l ON l.rowid = v.doc \
         WHERE {BROWSABLE}{filter}",
        k1p1 = k1 + 1.0,
        one_b = 1.0 - b,
    )
}

/// `INSERT INTO listing_search_terms` of the browsable listings matching `filter`.
fn pg_insert_postings(filter: &str) -> String {
    format!(
        "INSERT INTO listing_search_terms (listing_id, term, platform_id, mode, niche, score, \
         created_at, currency, price_minor) \
         SELECT l.id, t.lexeme, l.platform_id, l.mode, l.niche, \
         ts_rank(l.search, quote_literal(t.lexeme)::tsquery), l.created_at, l.currency, \
         l.price_minor \
         FROM listings l, unnest(tsvector_to_array(l.search)) AS t(lexeme) \
         WHERE {BROWSABLE}{filter}"
    )
}

/// ` IN (?, ?, ...)` over `ids`.
fn push_in(sql: &mut Sql, ids: &[ListingId]) {
    sql.push(" IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.text_arg(id.as_str());
    }
    sql.push(")");
}

async fn execute(conn: &mut DbConn, sql: Sql) -> Result<usize, MarketplaceError> {
    let done = with_conn!(conn,
        sqlite: c => feria_kernel::bind_dynamic!(sql, diesel::sqlite::Sqlite).execute(c).await,
        postgres: c => feria_kernel::bind_dynamic!(sql, diesel::pg::Pg).execute(c).await,
    )
    .map_err(DbError::from)?;
    Ok(done)
}

/// Rewrites the search-index rows of `ids` from their listings as they are now (none
/// for a listing browse does not show). Call it in the transaction that changed them.
pub(crate) async fn reindex(conn: &mut DbConn, ids: &[ListingId]) -> Result<(), MarketplaceError> {
    if ids.is_empty() {
        return Ok(());
    }
    let backend = conn.backend();
    let mut delete = Sql::new(backend);
    delete.push("DELETE FROM listing_search_terms WHERE listing_id");
    push_in(&mut delete, ids);
    execute(conn, delete).await?;
    match backend {
        Backend::Postgres => {
            let mut insert = Sql::new(backend);
            insert.push(&pg_insert_postings(" AND l.id"));
            push_in(&mut insert, ids);
            execute(conn, insert).await?;
        }
        Backend::Sqlite => {
            conn.batch_execute(SQLITE_TOKENIZER).await?;
            let mut tokens = Sql::new(backend);
            tokens
                .push(
                    "INSERT INTO temp.listing_tokens (rowid, title, character_name, niche, \
                     description) SELECT l.rowid, l.title, l.character_name, l.niche, \
                     l.description FROM listings l WHERE ",
                )
                .push(BROWSABLE)
                .push(" AND l.id");
            push_in(&mut tokens, ids);
            execute(conn, tokens).await?;
            let insert = sqlite_insert_postings("temp.listing_tokens_instances", "");
            execute(conn, Sql::new(backend).push(&insert).clone()).await?;
            conn.batch_execute("DELETE FROM temp.listing_tokens;")
                .await?;
        }
    }
    Ok(())
}

/// Rebuilds the search-index rows of every listing whose id is `LIKE id_like`, set-based
/// (bulk loads: one statement over all of them). On SQLite it reads every token of the
/// full-text index once (`listings_fts_instances`).
pub(crate) async fn reindex_like(conn: &mut DbConn, id_like: &str) -> Result<(), MarketplaceError> {
    let backend = conn.backend();
    let mut delete = Sql::new(backend);
    delete
        .push("DELETE FROM listing_search_terms WHERE listing_id LIKE ")
        .text_arg(id_like);
    execute(conn, delete).await?;
    let mut insert = Sql::new(backend);
    match backend {
        Backend::Postgres => insert.push(&pg_insert_postings(" AND l.id LIKE ")),
        Backend::Sqlite => insert.push(&sqlite_insert_postings(
            "listings_fts_instances",
            " AND l.id LIKE ",
        )),
    };
    insert.text_arg(id_like);
    execute(conn, insert).await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Term {
    #[diesel(sql_type = diesel::sql_types::Text)]
    term: String,
}

/// Words whose FTS5 terms were computed already, with those terms. The tokenizer is fixed
/// in code (`SQLITE_TOKENIZER`), so a word's terms never change: remembering them saves a
/// browse four statements on a temporary table (a write each time). Bounded: emptied
/// when full, which costs only a recomputation per word.
static SQLITE_TERMS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, Vec<String>>>> =
    std::sync::LazyLock::new(Default::default);
const SQLITE_TERMS_CAPACITY: usize = 4096;
/// Longer words are computed every time instead of being remembered.
const SQLITE_TERMS_MAX_WORD: usize = 64;

/// FTS5's terms of `word` (SQLite): what `listings_fts MATCH` would look up.
async fn sqlite_terms(conn: &mut DbConn, word: &str) -> Result<Vec<String>, MarketplaceError> {
    let remembered = SQLITE_TERMS
        .lock()
        .ok()
        .and_then(|terms| terms.get(word).cloned());
    if let Some(terms) = remembered {
        return Ok(terms);
    }
    let terms = sqlite_tokenize(conn, word).await?;
    if word.len() <= SQLITE_TERMS_MAX_WORD
        && let Ok(mut remembered) = SQLITE_TERMS.lock()
    {
        if remembered.len() >= SQLITE_TERMS_CAPACITY {
            remembered.clear();
        }
        remembered.insert(word.to_owned(), terms.clone());
    }
    Ok(terms)
}

/// FTS5's terms of `word`, computed by FTS5's tokenizer on a temporary table.
async fn sqlite_tokenize(conn: &mut DbConn, word: &str) -> Result<Vec<String>, MarketplaceError> {
    conn.batch_execute(SQLITE_TOKENIZER).await?;
    let mut put = Sql::new(Backend::Sqlite);
    put.push(
        "INSERT INTO temp.listing_tokens (rowid, title, character_name, niche, description) \
         VALUES (1, ",
    )
    .text_arg(word)
    .push(", '', '', '')");
    execute(conn, put).await?;
    let read = Sql::new(Backend::Sqlite)
        .push("SELECT DISTINCT term FROM temp.listing_tokens_instances")
        .clone();
    let terms: Vec<Term> =
        with_conn!(conn, c => read.clone().prepared().load(c).await).map_err(DbError::from)?;
    conn.batch_execute("DELETE FROM temp.listing_tokens;")
        .await?;
    Ok(terms.into_iter().map(|t| t.term).collect())
}

/// How a browse names its term in SQL.
enum IndexTerm {
    /// The term itself (SQLite: FTS5's term, computed before).
    Value(String),
    /// PostgreSQL: the English lexeme of this word, computed inside the statement (an
    /// immutable expression of a bound value, folded before planning, so the planner
    /// sees the lexeme); NULL for a stop word, which then matches nothing, as
    /// `plainto_tsquery` does.
    LexemeOf(String),
}

/// Which index a one-word browse statement is meant to read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IndexUse {
    /// The page: the rank-ordered range (`listing_search_terms_browse_idx` on PostgreSQL,
    /// the primary key on SQLite), read backwards until the page is full. Its price
    /// conditions are written so that no index can use them (`t.price_minor + 0` on
    /// PostgreSQL; `+t.price_minor` and `+t.currency` on SQLite): otherwise both planners
    /// may prefer the price index for its tighter range and then fetch and sort every
    /// match in the window, thousands of rows, for the top 20 (7.6 s measured with
    /// PostgreSQL's generic plan at 1,000,000 listings, against 0.5 ms). PostgreSQL's
    /// currency stays a plain column: its statistics then estimate the range well, where
    /// a hidden equality would count as 0.5 % of it and make the sort look cheap.
    Page,
    /// The count: the price-ordered range (`listing_search_terms_price_idx`), only the
    /// entries inside the price window.
    Count,
}

/// A column of `listing_search_terms t` as `use` wants it: plain for the count, hidden
/// from the planner's index choice for the page.
fn filter_column(backend: Backend, use_: IndexUse, column: &str) -> String {
    match (use_, backend) {
        (IndexUse::Count, _) => format!("t.{column}"),
        (IndexUse::Page, Backend::Sqlite) => format!("+t.{column}"),
        (IndexUse::Page, Backend::Postgres) if column == "price_minor" => {
            format!("(t.{column} + 0)")
        }
        (IndexUse::Page, Backend::Postgres) => format!("t.{column}"),
    }
}

/// `FROM listing_search_terms t ... WHERE ...` of a one-word browse; `join` adds the
/// listing (for the page's columns or the rating filter).
fn index_from_where(
    backend: Backend,
    query: &BrowseQuery,
    term: &IndexTerm,
    use_: IndexUse,
    join: bool,
) -> Sql {
    let mut sql = Sql::new(backend);
    sql.push(" FROM listing_search_terms t");
    if join {
        // CROSS JOIN (SQLite) keeps the index scan outermost; PostgreSQL plans it so.
        sql.push(match backend {
            Backend::Sqlite => " CROSS JOIN listings l ON l.id = t.listing_id",
            Backend::Postgres => " JOIN listings l ON l.id = t.listing_id",
        });
    }
    sql.push(" WHERE t.platform_id = ")
        .text_arg(query.tenant.platform_id.as_str())
        .push(" AND t.mode = ")
        .text_arg(query.tenant.mode.as_str())
        .push(" AND t.term = ");
    match term {
        IndexTerm::Value(value) => {
            sql.text_arg(value);
        }
        IndexTerm::LexemeOf(word) => {
            sql.push("(tsvector_to_array(to_tsvector('english'::regconfig, ")
                .text_arg(word)
                .push(")))[1]");
        }
    }
    if let Some(niche) = &query.niche {
        sql.push(" AND t.niche = ").text_arg(niche);
    }
    if let Some(currency) = &query.currency {
        let column = filter_column(backend, use_, "currency");
        sql.push(&format!(" AND {column} = ")).text_arg(currency);
    }
    let price = filter_column(backend, use_, "price_minor");
    if let Some(min) = query.min_price_minor {
        sql.push(&format!(" AND {price} >= ")).arg(Arg::BigInt(min));
    }
    if let Some(max) = query.max_price_minor {
        sql.push(&format!(" AND {price} <= ")).arg(Arg::BigInt(max));
    }
    if let Some(hundredths) = query.min_rating_hundredths {
        sql.push(" AND l.rating_count > 0 AND l.rating_sum * 100 >= l.rating_count * ")
            .arg(Arg::BigInt(hundredths));
    }
    sql
}

async fn browse_indexed(
    conn: &mut DbConn,
    query: &BrowseQuery,
    term: IndexTerm,
    page: PageRequest,
) -> Result<(Vec<Listing>, u64), MarketplaceError> {
    let backend = conn.backend();
    let shared = index_from_where(backend, query, &term, IndexUse::Page, true);
    let mut rows_sql = Sql::new(backend);
    rows_sql.args = shared.args.clone();
    rows_sql
        .push("SELECT ")
        .push(COLUMNS)
        .push(&shared.text)
        // The full-text query's order: rank, then newest, then id.
        .push(" ORDER BY t.score DESC, t.created_at DESC, t.listing_id DESC LIMIT ")
        .arg(Arg::BigInt(page.limit()))
        .push(" OFFSET ")
        .arg(Arg::BigInt(page.offset()));
    // The count reads the price index alone unless the rating filter needs the listing.
    let counted = index_from_where(
        backend,
        query,
        &term,
        IndexUse::Count,
        query.min_rating_hundredths.is_some(),
    );
    let mut count_sql = Sql::new(backend);
    count_sql.args = counted.args;
    count_sql
        .push("SELECT COUNT(*) AS total")
        .push(&counted.text);
    let (rows, total) = with_conn!(conn,
        sqlite: c => {
            let rows: Vec<Listing> = rows_sql.prepared().load(c).await.map_err(DbError::from)?;
            if let Some(total) = page.total_of_short_page(rows.len()) {
                return Ok((rows, total));
            }
            let total: Total = count_sql.prepared().get_result(c).await.map_err(DbError::from)?;
            (rows, total)
        },
        postgres: c => {
            // Page and count sent together (pipelined): one round trip instead of two. The
            // count is cheap whenever the page is short (its window holds few entries).
            let c: &PgConn = c;
            futures_util::future::try_join(
                rows_sql.prepared().load::<Listing>(&mut &*c),
                count_sql.prepared().get_result::<Total>(&mut &*c),
            )
            .await
            .map_err(DbError::from)?
        },
    );
    Ok((rows, u64::try_from(total.total).unwrap_or(0)))
}
