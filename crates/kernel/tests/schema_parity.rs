//! The two migration folders build the same schema.
//!
//! `migrations/sqlite` and `migrations/postgres` are written by hand in each dialect
//! (docs/ARCHITECTURE.md), so nothing but this test keeps them alike. It migrates a fresh
//! SQLite database and a fresh PostgreSQL database with the real migrations and compares
//! what each backend reports about itself (SQLite's `sqlite_master` and `pragma_*`
//! functions, PostgreSQL's catalogs): tables, columns with their types and nullability,
//! primary keys, and indexes (with the unique constraints, which both backends keep as
//! unique indexes) by table, columns, uniqueness and whether they are partial.
//!
//! Types are compared after [`normalise_type`]: each backend's spelling of the one kind
//! of value the code reads and writes (SQLite keeps the declared type text, PostgreSQL
//! its canonical name).
//!
//! Left out by design, each backend's own machinery for what the other does differently:
//! - SQLite's FTS5 virtual tables, their shadow tables, and the triggers that fill them
//!   (triggers are not compared at all); PostgreSQL searches a generated `tsvector`
//!   column instead, so its generated `tsvector` columns and GIN indexes are left out too;
//! - the keys and indexes (not the columns) of `listing_search_terms`
//!   ([`KEYS_BY_DESIGN`]);
//! - diesel's `__diesel_schema_migrations` (the same on both, and diesel's, not ours) and
//!   SQLite's internal `sqlite_*` tables.
//!
//! Needs PostgreSQL (`TEST_DATABASE_URL`); without it the test says so and checks only
//! that the SQLite side can be read.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use diesel::QueryableByName;
use diesel::sql_types::{Integer, Text};
use diesel_async::RunQueryDsl;
use feria_kernel::db::{Backend, DbConn};
use feria_kernel::testing::{POSTGRES_URL_ENV, TestDatabase};
use feria_kernel::with_conn;

const DIESEL_MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

/// Tables whose primary key and indexes each backend lays out its own way on purpose;
/// their columns are still compared.
const KEYS_BY_DESIGN: &[(&str, &str)] = &[(
    "listing_search_terms",
    // The template marketplace's browse postings (crates/template-marketplace/src/backend.rs,
    // docs/MARKETPLACE.md): filled from each backend's own full-text engine, and stored
    // the way each reads fastest. On SQLite a WITHOUT ROWID table whose primary key is
    // the browse order (platform, mode, term, niche, score, created_at, listing), so the
    // table is its own browse index, plus an index by listing to replace a listing's
    // rows; on PostgreSQL a heap keyed by (listing, term) with the browse order as a
    // covering index.
    "each backend's physical layout of the browse postings",
)];
/// The tables FTS5 keeps for each virtual table `x`: `x_data`, `x_idx`, ...
const FTS5_SHADOW_SUFFIXES: &[&str] = &["_data", "_idx", "_content", "_docsize", "_config"];

/// The one name both backends' spellings of a column type map to.
///
/// - `TEXT`, `VARCHAR(n)`, `CHARACTER VARYING`, `CHAR` → `text`;
/// - `INTEGER`, `INT`, `BIGINT`, `INT8`, `INT4`, `SMALLINT` → `integer`: SQLite has one
///   64-bit integer storage class whatever the declaration says;
/// - `TIMESTAMP` and PostgreSQL's `timestamp without time zone` → `timestamp` (UTC by
///   convention, docs/ARCHITECTURE.md); `timestamp with time zone` stays `timestamptz`,
///   so a column declared with a zone on one side only shows up;
/// - `BOOLEAN`, `BOOL` → `boolean`;
/// - `REAL`, `DOUBLE PRECISION`, `FLOAT` → `real`; `NUMERIC`, `DECIMAL` → `numeric`;
///   `BLOB`, `BYTEA` → `blob`;
/// - anything else is kept, lower-cased, so an unknown type fails loudly rather than
///   matching by accident.
fn normalise_type(declared: &str) -> String {
    let lower = declared.trim().to_lowercase();
    // `varchar(200)`, `numeric(20, 0)`: the size is not compared.
    let base = lower.split('(').next().unwrap_or("").trim();
    match base {
        "text" | "varchar" | "character varying" | "char" | "character" => "text",
        "integer" | "int" | "bigint" | "int8" | "int4" | "smallint" | "int2" => "integer",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "timestamptz" | "timestamp with time zone" => "timestamptz",
        "boolean" | "bool" => "boolean",
        "real" | "double precision" | "float" | "float8" | "float4" => "real",
        "numeric" | "decimal" => "numeric",
        "blob" | "bytea" => "blob",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// One backend's schema, in comparable form.
#[derive(Debug, Default)]
struct Schema {
    /// table -> column -> (normalised type, not null)
    columns: BTreeMap<String, BTreeMap<String, (String, bool)>>,
    /// table -> primary key columns in key order
    primary_keys: BTreeMap<String, Vec<String>>,
    /// table -> index shapes (name not compared: SQLite names constraint indexes
    /// `sqlite_autoindex_*`, PostgreSQL `*_key`) -> index names, for the report
    indexes: BTreeMap<String, BTreeMap<IndexShape, Vec<String>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct IndexShape {
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

impl std::fmt::Display for IndexShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}index ({}){}",
            if self.unique { "unique " } else { "" },
            self.columns.join(", "),
            if self.partial { " WHERE ..." } else { "" }
        )
    }
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
    /// Position in the primary key, 0 when not part of it.
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct IndexRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    index_name: String,
    /// Comma-separated, in index order; `<expression>` for an expression.
    #[diesel(sql_type = Text)]
    columns: String,
    #[diesel(sql_type = Integer)]
    is_unique: i32,
    #[diesel(sql_type = Integer)]
    is_partial: i32,
    #[diesel(sql_type = Integer)]
    is_primary: i32,
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

/// SQLite: the tables to compare are the ordinary tables that are neither FTS5 machinery
/// nor internal.
async fn sqlite_schema(conn: &mut DbConn) -> Schema {
    let (virtual_tables, columns, indexes) = with_conn!(conn,
        sqlite: c => {
            let virtual_tables: Vec<NameRow> = diesel::sql_query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'",
            )
            .load(c)
            .await
            .expect("virtual tables");
            let columns: Vec<ColumnRow> = diesel::sql_query(
                "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
                        p.\"notnull\" AS not_null, p.pk AS pk \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' \
                 ORDER BY m.name, p.cid",
            )
            .load(c)
            .await
            .expect("columns");
            let indexes: Vec<IndexRow> = diesel::sql_query(
                "SELECT m.name AS table_name, il.name AS index_name, \
                        (SELECT group_concat(coalesce(ii.name, '<expression>'), ',') \
                           FROM (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno) ii) AS columns, \
                        il.\"unique\" AS is_unique, il.partial AS is_partial, \
                        (il.origin = 'pk') AS is_primary \
                 FROM sqlite_master m JOIN pragma_index_list(m.name) il \
                 WHERE m.type = 'table' \
                 ORDER BY m.name, il.name",
            )
            .load(c)
            .await
            .expect("indexes");
            (virtual_tables, columns, indexes)
        },
        postgres: _c => unreachable!("a SQLite connection"),
    );
    let virtual_tables: BTreeSet<String> = virtual_tables.into_iter().map(|r| r.name).collect();
    let left_out = |table: &str| {
        table == DIESEL_MIGRATIONS_TABLE
            || table.starts_with("sqlite_")
            || virtual_tables.contains(table)
            || virtual_tables.iter().any(|vt| {
                FTS5_SHADOW_SUFFIXES
                    .iter()
                    .any(|suffix| table == format!("{vt}{suffix}"))
            })
    };
    build_schema(
        columns.into_iter().filter(|r| !left_out(&r.table_name)),
        indexes.into_iter().filter(|r| !left_out(&r.table_name)),
    )
}

/// PostgreSQL: the ordinary tables of the `public` schema.
async fn postgres_schema(conn: &mut DbConn) -> Schema {
    let (columns, indexes) = with_conn!(conn,
        sqlite: _c => unreachable!("a PostgreSQL connection"),
        postgres: c => {
            let columns: Vec<ColumnRow> = diesel::sql_query(
                "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, \
                        c.data_type::text AS data_type, \
                        (c.is_nullable = 'NO')::int4 AS not_null, \
                        coalesce((SELECT k.ord::int4 \
                                    FROM pg_index ix \
                                    JOIN pg_class t ON t.oid = ix.indrelid \
                                    JOIN pg_namespace n ON n.oid = t.relnamespace \
                                    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attname = c.column_name \
                                    CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                                   WHERE ix.indisprimary AND n.nspname = c.table_schema \
                                     AND t.relname = c.table_name AND k.attnum = a.attnum), 0) AS pk \
                 FROM information_schema.columns c \
                 JOIN information_schema.tables tb \
                   ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name \
                 WHERE c.table_schema = 'public' AND tb.table_type = 'BASE TABLE' \
                   AND NOT (c.data_type = 'tsvector' AND c.is_generated = 'ALWAYS') \
                 ORDER BY c.table_name, c.ordinal_position",
            )
            .load(c)
            .await
            .expect("columns");
            let indexes: Vec<IndexRow> = diesel::sql_query(
                "SELECT t.relname::text AS table_name, i.relname::text AS index_name, \
                        (SELECT string_agg(coalesce(a.attname::text, '<expression>'), ',' ORDER BY k.ord) \
                           FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                           LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                          WHERE k.ord <= ix.indnkeyatts) AS columns, \
                        ix.indisunique::int4 AS is_unique, \
                        (ix.indpred IS NOT NULL)::int4 AS is_partial, \
                        ix.indisprimary::int4 AS is_primary \
                 FROM pg_index ix \
                 JOIN pg_class i ON i.oid = ix.indexrelid \
                 JOIN pg_class t ON t.oid = ix.indrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 JOIN pg_am am ON am.oid = i.relam \
                 WHERE n.nspname = 'public' AND t.relkind = 'r' AND am.amname <> 'gin' \
                 ORDER BY t.relname, i.relname",
            )
            .load(c)
            .await
            .expect("indexes");
            (columns, indexes)
        },
    );
    build_schema(
        columns
            .into_iter()
            .filter(|r| r.table_name != DIESEL_MIGRATIONS_TABLE),
        indexes
            .into_iter()
            .filter(|r| r.table_name != DIESEL_MIGRATIONS_TABLE),
    )
}

fn build_schema(
    columns: impl Iterator<Item = ColumnRow>,
    indexes: impl Iterator<Item = IndexRow>,
) -> Schema {
    let mut schema = Schema::default();
    let mut keys: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    for row in columns {
        if row.pk > 0 {
            keys.entry(row.table_name.clone())
                .or_default()
                .push((row.pk, row.column_name.clone()));
        }
        schema.columns.entry(row.table_name).or_default().insert(
            row.column_name,
            (normalise_type(&row.data_type), row.not_null != 0),
        );
    }
    for (table, mut columns) in keys {
        columns.sort();
        schema
            .primary_keys
            .insert(table, columns.into_iter().map(|(_, c)| c).collect());
    }
    for row in indexes {
        // The primary key is compared as such above; SQLite has no index for an
        // `INTEGER PRIMARY KEY` (the rowid), PostgreSQL always has one.
        if row.is_primary != 0 {
            continue;
        }
        let shape = IndexShape {
            columns: row.columns.split(',').map(str::to_owned).collect(),
            unique: row.is_unique != 0,
            partial: row.is_partial != 0,
        };
        schema
            .indexes
            .entry(row.table_name)
            .or_default()
            .entry(shape)
            .or_default()
            .push(row.index_name);
    }
    schema
}

/// Every difference between the two schemas, one line each.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let tables: BTreeSet<&String> = sqlite
        .columns
        .keys()
        .chain(postgres.columns.keys())
        .collect();
    for table in tables {
        let (Some(s_cols), Some(p_cols)) = (sqlite.columns.get(table), postgres.columns.get(table))
        else {
            let only = if sqlite.columns.contains_key(table) {
                "SQLite"
            } else {
                "PostgreSQL"
            };
            out.push(format!("table {table}: only on {only}"));
            continue;
        };
        let names: BTreeSet<&String> = s_cols.keys().chain(p_cols.keys()).collect();
        for column in names {
            match (s_cols.get(column), p_cols.get(column)) {
                (Some(s), Some(p)) if s == p => {}
                (Some((s_type, s_nn)), Some((p_type, p_nn))) => out.push(format!(
                    "column {table}.{column}: SQLite {s_type}{}, PostgreSQL {p_type}{}",
                    if *s_nn { " NOT NULL" } else { " NULL" },
                    if *p_nn { " NOT NULL" } else { " NULL" },
                )),
                (Some(_), None) => out.push(format!("column {table}.{column}: only on SQLite")),
                (None, _) => out.push(format!("column {table}.{column}: only on PostgreSQL")),
            }
        }
        if KEYS_BY_DESIGN.iter().any(|(t, _)| t == table) {
            continue;
        }
        let s_pk = sqlite.primary_keys.get(table);
        let p_pk = postgres.primary_keys.get(table);
        if s_pk != p_pk {
            out.push(format!(
                "primary key of {table}: SQLite {s_pk:?}, PostgreSQL {p_pk:?}"
            ));
        }
        let empty = BTreeMap::new();
        let s_idx = sqlite.indexes.get(table).unwrap_or(&empty);
        let p_idx = postgres.indexes.get(table).unwrap_or(&empty);
        let shapes: BTreeSet<&IndexShape> = s_idx.keys().chain(p_idx.keys()).collect();
        for shape in shapes {
            let s_names = s_idx.get(shape).map(Vec::len).unwrap_or(0);
            let p_names = p_idx.get(shape).map(Vec::len).unwrap_or(0);
            if s_names != p_names {
                out.push(format!(
                    "{shape} on {table}: SQLite {:?}, PostgreSQL {:?}",
                    s_idx.get(shape).cloned().unwrap_or_default(),
                    p_idx.get(shape).cloned().unwrap_or_default(),
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let sqlite_db = TestDatabase::create(Backend::Sqlite)
        .await
        .expect("a migrated SQLite database");
    let sqlite = sqlite_schema(&mut sqlite_db.db().conn().await.expect("connection")).await;
    assert!(
        sqlite.columns.contains_key("platforms") && sqlite.columns.contains_key("products"),
        "the SQLite schema was not read: {:?}",
        sqlite.columns.keys().collect::<Vec<_>>()
    );

    let Ok(admin_url) = std::env::var(POSTGRES_URL_ENV) else {
        eprintln!(
            "SKIPPED the PostgreSQL side of the schema parity check: {POSTGRES_URL_ENV} is not set \
             (only the SQLite schema was read)"
        );
        return;
    };
    let postgres_db = TestDatabase::create_postgres(&admin_url)
        .await
        .expect("a migrated PostgreSQL database");
    let postgres = postgres_schema(&mut postgres_db.db().conn().await.expect("connection")).await;

    for (table, why) in KEYS_BY_DESIGN {
        eprintln!("keys and indexes of {table} not compared: {why}");
    }
    eprintln!(
        "compared {} tables, {} columns, {} indexes",
        sqlite.columns.len(),
        sqlite.columns.values().map(BTreeMap::len).sum::<usize>(),
        sqlite.indexes.values().map(BTreeMap::len).sum::<usize>()
    );
    let differences = differences(&sqlite, &postgres);
    assert!(
        differences.is_empty(),
        "migrations/sqlite and migrations/postgres build different schemas \
         (fix with a new migration pair, or teach this test a spelling):\n  {}",
        differences.join("\n  ")
    );
}

#[test]
fn types_normalise_to_one_name_per_kind() {
    for (declared, normal) in [
        ("TEXT", "text"),
        ("character varying", "text"),
        ("VARCHAR(200)", "text"),
        ("BIGINT", "integer"),
        ("integer", "integer"),
        ("TIMESTAMP", "timestamp"),
        ("timestamp without time zone", "timestamp"),
        ("timestamp with time zone", "timestamptz"),
        ("BOOLEAN", "boolean"),
        ("numeric(20,0)", "numeric"),
        ("tsvector", "tsvector"),
    ] {
        assert_eq!(normalise_type(declared), normal, "{declared}");
    }
}
