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
//! [`with_conn!`](crate::with_conn), once per backend.

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
