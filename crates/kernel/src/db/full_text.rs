//! Full-text search on each backend's own engine, for statements built as
//! [`DynamicSql`]: on SQLite an FTS5 table over the searched table, joined on its rowid
//! and ranked by `bm25`; on PostgreSQL a generated `search` tsvector with its GIN index,
//! ranked by `ts_rank`. Both require every term of the query (stemmed English).
//!
//! The catalog's product search and the template marketplace's browse both search this
//! way; what they search (table, FTS5 table, weights) and filter is theirs, the engines'
//! syntax is written here once.
//!
//! ```
//! use feria_kernel::db::{Backend, DynamicSql, FullText};
//! const PRODUCTS: FullText = FullText {
//!     table: "products",
//!     alias: "p",
//!     fts5_table: "products_fts",
//!     bm25_weights: "10.0, 5.0, 2.0",
//! };
//! let terms = FullText::terms("Blue shirts");
//! let mut sql = DynamicSql::new(Backend::Postgres);
//! sql.push("SELECT p.id");
//! PRODUCTS.push_from(&mut sql, &terms);
//! sql.push(" WHERE p.deleted_at IS NULL");
//! PRODUCTS.push_match(&mut sql, &terms);
//! assert_eq!(
//!     sql.text,
//!     "SELECT p.id FROM products p, plainto_tsquery('english', $1) AS query \
//!      WHERE p.deleted_at IS NULL AND p.search @@ query"
//! );
//! ```

use super::{Backend, DynamicSql};

/// Most terms of a full-text query that count.
const MAX_TERMS: usize = 16;

/// PostgreSQL's English stop words (`tsearch_data/english.stop`). Dropped from queries
/// on both backends, so that SQLite (whose FTS5 index keeps them) and PostgreSQL (which
/// ignores them) require the same words.
#[rustfmt::skip]
const STOP_WORDS: &[&str] = &[
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours",
    "yourself", "yourselves", "he", "him", "his", "himself", "she", "her", "hers",
    "herself", "it", "its", "itself", "they", "them", "their", "theirs", "themselves",
    "what", "which", "who", "whom", "this", "that", "these", "those", "am", "is", "are",
    "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does",
    "did", "doing", "a", "an", "the", "and", "but", "if", "or", "because", "as", "until",
    "while", "of", "at", "by", "for", "with", "about", "against", "between", "into",
    "through", "during", "before", "after", "above", "below", "to", "from", "up", "down",
    "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here",
    "there", "when", "where", "why", "how", "all", "any", "both", "each", "few", "more",
    "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so",
    "than", "too", "very", "s", "t", "can", "will", "just", "don", "should", "now",
];

/// A table searchable on both backends' full-text engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullText {
    /// The searched table (`products`).
    pub table: &'static str,
    /// Its alias in the statement (`p`); PostgreSQL's tsvector is `<alias>.search`.
    pub alias: &'static str,
    /// SQLite: the FTS5 table over it, whose rowid is the searched row's rowid.
    pub fts5_table: &'static str,
    /// SQLite: bm25's column weights in the FTS5 table's column order (`10.0, 5.0, 2.0`).
    /// PostgreSQL's weights are in the generated `search` column (`setweight`).
    pub bm25_weights: &'static str,
}

impl FullText {
    /// The words of a full-text query: runs of letters and digits, lower-cased, English
    /// stop words dropped, at most 16. No words left means no full-text
    /// condition. Both backends then require the same words, and neither engine's query
    /// syntax ever reaches them.
    pub fn terms(q: &str) -> Vec<String> {
        q.split(|c: char| !c.is_alphanumeric())
            .filter(|word| !word.is_empty())
            .map(|word| word.chars().take(64).collect::<String>().to_lowercase())
            .filter(|word| !STOP_WORDS.contains(&word.as_str()))
            .take(MAX_TERMS)
            .collect()
    }

    /// ` FROM <table> <alias>`, and with `terms` what matching them needs: the FTS5
    /// table first (SQLite), or the parsed query as `query` (PostgreSQL).
    pub fn push_from(&self, sql: &mut DynamicSql, terms: &[String]) {
        let FullText {
            table,
            alias,
            fts5_table,
            ..
        } = *self;
        if terms.is_empty() {
            sql.push(&format!(" FROM {table} {alias}"));
            return;
        }
        match sql.backend() {
            Backend::Sqlite => {
                // CROSS JOIN fixes the order: matches first, then their rows. Left to
                // itself (without ANALYZE statistics) SQLite may walk every row of the
                // tenant and probe the index per row, which takes seconds at a million.
                sql.push(&format!(
                    " FROM {fts5_table} CROSS JOIN {table} {alias} \
                     ON {alias}.rowid = {fts5_table}.rowid"
                ));
            }
            Backend::Postgres => {
                sql.push(&format!(
                    " FROM {table} {alias}, plainto_tsquery('english', "
                ))
                .text_arg(&terms.join(" "))
                .push(") AS query");
            }
        }
    }

    /// ` AND <every term matches>`; nothing without terms. Goes with
    /// [`FullText::push_from`] given the same terms.
    pub fn push_match(&self, sql: &mut DynamicSql, terms: &[String]) {
        if terms.is_empty() {
            return;
        }
        match sql.backend() {
            Backend::Sqlite => {
                // Each term quoted (terms are letters and digits only): all must match.
                let fts: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
                sql.push(&format!(" AND {} MATCH ", self.fts5_table))
                    .text_arg(&fts.join(" "));
            }
            Backend::Postgres => {
                sql.push(&format!(" AND {}.search @@ query", self.alias));
            }
        }
    }

    /// The rank for `ORDER BY`, best first, of a statement with terms.
    pub fn rank_order(&self, backend: Backend) -> String {
        match backend {
            // bm25: lower is better.
            Backend::Sqlite => format!("bm25({}, {})", self.fts5_table, self.bm25_weights),
            Backend::Postgres => format!("ts_rank({}.search, query) DESC", self.alias),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTINGS: FullText = FullText {
        table: "listings",
        alias: "l",
        fts5_table: "listings_fts",
        bm25_weights: "10.0, 10.0, 5.0, 2.0",
    };

    #[test]
    fn terms_are_words_of_letters_and_digits() {
        assert_eq!(
            FullText::terms("  Blue  tee-shirt, XL!"),
            vec!["blue", "tee", "shirt", "xl"]
        );
        assert_eq!(
            FullText::terms("\"; DROP TABLE products; --"),
            vec!["drop", "table", "products"]
        );
        assert!(FullText::terms("!!!").is_empty());
        assert_eq!(
            FullText::terms("The lamp of the year"),
            vec!["lamp", "year"]
        );
        assert!(FullText::terms("to be or not to be").is_empty());
        assert_eq!(FullText::terms(&"ab ".repeat(40)).len(), MAX_TERMS);
        assert_eq!(FullText::terms("Café"), vec!["café"]);
    }

    #[test]
    fn each_backend_gets_its_engine() {
        let terms = FullText::terms("red dragon");
        let mut sqlite = DynamicSql::new(Backend::Sqlite);
        LISTINGS.push_from(&mut sqlite, &terms);
        LISTINGS.push_match(&mut sqlite, &terms);
        assert_eq!(
            sqlite.text,
            " FROM listings_fts CROSS JOIN listings l ON l.rowid = listings_fts.rowid \
             AND listings_fts MATCH ?"
        );
        assert_eq!(
            sqlite.args,
            vec![super::super::SqlArg::Text("\"red\" \"dragon\"".into())]
        );
        assert_eq!(
            LISTINGS.rank_order(Backend::Sqlite),
            "bm25(listings_fts, 10.0, 10.0, 5.0, 2.0)"
        );
        assert_eq!(
            LISTINGS.rank_order(Backend::Postgres),
            "ts_rank(l.search, query) DESC"
        );
    }

    #[test]
    fn no_terms_no_full_text() {
        let mut pg = DynamicSql::new(Backend::Postgres);
        LISTINGS.push_from(&mut pg, &[]);
        LISTINGS.push_match(&mut pg, &[]);
        assert_eq!(pg.text, " FROM listings l");
        assert!(pg.args.is_empty());
    }
}
