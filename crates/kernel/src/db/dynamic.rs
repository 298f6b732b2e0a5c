//! SQL built at run time — for the few queries whose shape depends on the request
//! (search with optional filters, backend-specific full-text syntax) — with its values
//! bound, never spliced into the text.
//!
//! ```
//! use feria_kernel::db::{Backend, DynamicSql, SqlArg};
//! let mut sql = DynamicSql::new(Backend::Postgres);
//! sql.push("SELECT id FROM products WHERE platform_id = ").text_arg("plat_1");
//! sql.push(" AND price_minor >= ").arg(SqlArg::BigInt(100));
//! assert_eq!(sql.text, "SELECT id FROM products WHERE platform_id = $1 AND price_minor >= $2");
//! assert_eq!(sql.args.len(), 2);
//! ```
//!
//! Run it with [`bind_dynamic!`](crate::bind_dynamic) inside the two-armed
//! [`with_conn!`](crate::with_conn), once per backend; or, for a statement of a fixed
//! shape run on a hot path, as [`DynamicSql::prepared`], which the connection prepares
//! once and reuses (diesel never caches a `sql_query`).

use diesel::backend::Backend as DieselBackend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Text, Untyped};

use super::Backend;

/// A value bound to a [`DynamicSql`] statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlArg {
    Text(String),
    BigInt(i64),
    Bool(bool),
}

/// SQL text with its bound values, written in the backend's placeholders (`?` on SQLite,
/// `$1, $2 ...` on PostgreSQL).
#[derive(Debug, Clone)]
pub struct DynamicSql {
    backend: Backend,
    pub text: String,
    pub args: Vec<SqlArg>,
}

impl DynamicSql {
    pub fn new(backend: Backend) -> DynamicSql {
        DynamicSql {
            backend,
            text: String::new(),
            args: Vec::new(),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Appends SQL text (never a value: values go through [`DynamicSql::arg`]).
    pub fn push(&mut self, sql: &str) -> &mut DynamicSql {
        self.text.push_str(sql);
        self
    }

    /// Appends a placeholder and binds `arg` to it.
    pub fn arg(&mut self, arg: SqlArg) -> &mut DynamicSql {
        self.args.push(arg);
        match self.backend {
            Backend::Sqlite => self.text.push('?'),
            Backend::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.args.len().to_string());
            }
        }
        self
    }

    pub fn text_arg(&mut self, value: &str) -> &mut DynamicSql {
        self.arg(SqlArg::Text(value.to_owned()))
    }

    /// This statement as a query the connection prepares once and then reuses, keyed by
    /// its text: PostgreSQL parses it once and, after a few runs, keeps a generic plan
    /// instead of planning every execution; SQLite keeps the compiled statement.
    ///
    /// Only for statements of a bounded number of shapes (optional filters, fixed
    /// clauses): each distinct text stays prepared on every pooled connection, so text
    /// that grows with the data (`IN (?, ?, ...)` over a list) must use
    /// [`bind_dynamic!`](crate::bind_dynamic).
    pub fn prepared(self) -> PreparedSql {
        PreparedSql(self)
    }
}

/// A [`DynamicSql`] the connection's statement cache may keep (see
/// [`DynamicSql::prepared`]). Load rows that derive `QueryableByName`.
#[derive(Debug, Clone)]
pub struct PreparedSql(DynamicSql);

impl Query for PreparedSql {
    type SqlType = Untyped;
}

impl QueryId for PreparedSql {
    type QueryId = ();
    // No static id: diesel caches the statement by its text (and bind types).
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> QueryFragment<DB> for PreparedSql
where
    DB: DieselBackend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Bool>,
    String: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    bool: ToSql<Bool, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        // The text between placeholders, then each value through diesel, which writes the
        // backend's placeholder again in the same place and order.
        let pieces = split_at_placeholders(&self.0.text, self.0.backend);
        if pieces.len() != self.0.args.len() + 1 {
            return Err(diesel::result::Error::QueryBuilderError(
                format!(
                    "{} placeholders for {} values in: {}",
                    pieces.len().saturating_sub(1),
                    self.0.args.len(),
                    self.0.text
                )
                .into(),
            ));
        }
        for (piece, arg) in pieces.iter().zip(&self.0.args) {
            out.push_sql(piece);
            match arg {
                SqlArg::Text(value) => out.push_bind_param::<Text, _>(value)?,
                SqlArg::BigInt(value) => out.push_bind_param::<BigInt, _>(value)?,
                SqlArg::Bool(value) => out.push_bind_param::<Bool, _>(value)?,
            }
        }
        if let Some(last) = pieces.last() {
            out.push_sql(last);
        }
        Ok(())
    }
}

/// The text around the placeholders [`DynamicSql::arg`] wrote (`$n` or `?`), outside
/// quoted literals and identifiers; the whole text alone when PostgreSQL's are not
/// `$1, $2, ...` in order.
fn split_at_placeholders(text: &str, backend: Backend) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let (mut start, mut i, mut quote) = (0, 0, None::<u8>);
    while i < bytes.len() {
        let byte = bytes[i];
        match quote {
            Some(open) if byte == open => quote = None,
            Some(_) => {}
            None if byte == b'\'' || byte == b'"' => quote = Some(byte),
            None => {
                let end = match backend {
                    Backend::Sqlite if byte == b'?' => Some(i + 1),
                    Backend::Postgres if byte == b'$' => {
                        let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit());
                        let end = i + 1 + digits.count();
                        // Values are bound in order: `$n` must be the n-th placeholder,
                        // or a value would land in another's place. Out of order (or
                        // reused), nothing is split and the caller refuses the count.
                        if end > i + 1 && text[i + 1..end] != (pieces.len() + 1).to_string() {
                            return vec![text];
                        }
                        Some(end).filter(|end| *end > i + 1)
                    }
                    _ => None,
                };
                if let Some(end) = end {
                    pieces.push(&text[start..i]);
                    start = end;
                    i = end;
                    continue;
                }
            }
        }
        i += 1;
    }
    pieces.push(&text[start..]);
    pieces
}

/// A boxed `diesel::sql_query` of one backend (`diesel::sqlite::Sqlite` or
/// `diesel::pg::Pg`) with every value of a [`DynamicSql`] bound in order.
#[macro_export]
macro_rules! bind_dynamic {
    ($sql:expr, $db:ty) => {{
        let sql: $crate::db::DynamicSql = $sql;
        let mut query = $crate::__private::diesel::sql_query(sql.text).into_boxed::<$db>();
        for arg in sql.args {
            query = match arg {
                $crate::db::SqlArg::Text(value) => {
                    query.bind::<$crate::__private::diesel::sql_types::Text, _>(value)
                }
                $crate::db::SqlArg::BigInt(value) => {
                    query.bind::<$crate::__private::diesel::sql_types::BigInt, _>(value)
                }
                $crate::db::SqlArg::Bool(value) => {
                    query.bind::<$crate::__private::diesel::sql_types::Bool, _>(value)
                }
            };
        }
        query
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_split_outside_quotes_only() {
        let mut sql = DynamicSql::new(Backend::Postgres);
        sql.push("SELECT '$1', \"a$2\" FROM t WHERE a = ")
            .text_arg("x")
            .push(" AND b = ")
            .arg(SqlArg::BigInt(2));
        assert_eq!(
            split_at_placeholders(&sql.text, Backend::Postgres),
            vec!["SELECT '$1', \"a$2\" FROM t WHERE a = ", " AND b = ", ""]
        );
        // Out of order or reused: not split (the statement is refused).
        assert_eq!(
            split_at_placeholders("SELECT $2, $1", Backend::Postgres),
            vec!["SELECT $2, $1"]
        );
        assert_eq!(
            split_at_placeholders("SELECT $1, $1", Backend::Postgres),
            vec!["SELECT $1, $1"]
        );
        let mut sql = DynamicSql::new(Backend::Sqlite);
        sql.push("SELECT '?' WHERE a = ")
            .text_arg("x")
            .push(" LIMIT 1");
        assert_eq!(
            split_at_placeholders(&sql.text, Backend::Sqlite),
            vec!["SELECT '?' WHERE a = ", " LIMIT 1"]
        );
    }
}
