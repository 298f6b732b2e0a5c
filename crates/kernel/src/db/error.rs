//! Database errors, classified so that domain code can react to a constraint by name and
//! the gateway can tell "retry later" from "our bug".

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::error::ApiError;

/// A database failure, classified.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The query expected a row and found none.
    #[error("record not found")]
    NotFound,
    /// A unique constraint refused the write. `constraint` is PostgreSQL's constraint name
    /// or SQLite's `table.column` list; match it with [`DbError::is_unique_violation`].
    #[error("unique constraint violated: {constraint}")]
    UniqueViolation { constraint: String },
    /// A foreign key refused the write.
    #[error("foreign key violated: {constraint}")]
    ForeignKeyViolation { constraint: String },
    /// A check or not-null constraint refused the write.
    #[error("check constraint violated: {constraint}")]
    CheckViolation { constraint: String },
    /// The database could not serialise this transaction against a concurrent one, or was
    /// locked past the busy timeout: safe to retry.
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// No connection could be had (pool exhausted, database down or unreachable).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A write reached a read-only connection: a streaming replica, or a read that needs
    /// to do a little upkeep first (numbering events, crates/events) on a replica. The
    /// same read on the primary succeeds ([`ReplicaFallback::retries_on_primary`]).
    ///
    /// [`ReplicaFallback::retries_on_primary`]: crate::db::ReplicaFallback::retries_on_primary
    #[error("read-only connection: {0}")]
    ReadOnly(String),
    /// The database URL or settings are invalid.
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Anything else: a bug or an unexpected state.
    #[error(transparent)]
    Query(DieselError),
}

impl DbError {
    /// Whether this is a unique violation on a constraint whose name (PostgreSQL) or
    /// column list (SQLite) contains `needle`. Name constraints after their columns so one
    /// needle matches on both backends, e.g. `purchases_buyer_listing` and
    /// `purchases.buyer_id, purchases.listing_id` both contain `purchases`.
    pub fn is_unique_violation(&self, needle: &str) -> bool {
        matches!(self, DbError::UniqueViolation { constraint } if constraint.contains(needle))
    }

    /// Whether retrying the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DbError::Conflict(_) | DbError::Unavailable(_))
    }
}

fn constraint_of(info: &dyn diesel::result::DatabaseErrorInformation) -> String {
    if let Some(name) = info.constraint_name() {
        return name.to_owned();
    }
    // SQLite names no constraint; its message lists the columns:
    // "UNIQUE constraint failed: purchases.buyer_id, purchases.listing_id".
    let message = info.message();
    message
        .split_once(": ")
        .map(|(_, columns)| columns.to_owned())
        .unwrap_or_else(|| message.to_owned())
}

/// Whether an error message says the database server went away or is not accepting work:
/// the socket closed, a restart (SQLSTATE 57P01-57P03: "terminating connection due to
/// administrator command", "the database system is shutting down / starting up / in
/// recovery mode"), or a connection that could not be made.
fn lost_server(message: &str) -> bool {
    const SIGNS: &[&str] = &[
        "connection closed",
        "communicating with the server",
        "error connecting to server",
        "terminating connection",
        "the database system is",
        "server closed the connection",
        "Connection refused",
        "Connection reset",
        "Broken pipe",
    ];
    SIGNS.iter().any(|sign| message.contains(sign))
}

impl From<DieselError> for DbError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::NotFound => DbError::NotFound,
            DieselError::DatabaseError(kind, info) => match kind {
                DatabaseErrorKind::UniqueViolation => DbError::UniqueViolation {
                    constraint: constraint_of(info.as_ref()),
                },
                DatabaseErrorKind::ForeignKeyViolation => DbError::ForeignKeyViolation {
                    constraint: constraint_of(info.as_ref()),
                },
                DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation => {
                    DbError::CheckViolation {
                        constraint: constraint_of(info.as_ref()),
                    }
                }
                DatabaseErrorKind::SerializationFailure => {
                    DbError::Conflict(info.message().to_owned())
                }
                DatabaseErrorKind::ReadOnlyTransaction => {
                    DbError::ReadOnly(info.message().to_owned())
                }
                DatabaseErrorKind::ClosedConnection => {
                    DbError::Unavailable(info.message().to_owned())
                }
                // diesel-async reports PostgreSQL errors without an SQLSTATE (the socket
                // closed under a query, I/O errors) with this kind; they are the server going
                // away, not a bad statement.
                DatabaseErrorKind::UnableToSendCommand if lost_server(info.message()) => {
                    DbError::Unavailable(info.message().to_owned())
                }
                _ => {
                    let message = info.message();
                    // SQLITE_BUSY past busy_timeout; PostgreSQL lock timeout (55P03) and
                    // deadlock (40P01) come through as unknown kinds with these messages.
                    if message.contains("database is locked")
                        || message.contains("deadlock detected")
                        || message.contains("lock timeout")
                    {
                        DbError::Conflict(message.to_owned())
                    } else if message.contains("canceling statement due to statement timeout")
                        || lost_server(message)
                    {
                        DbError::Unavailable(message.to_owned())
                    } else {
                        DbError::Query(DieselError::DatabaseError(kind, info))
                    }
                }
            },
            other => DbError::Query(other),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        // A request turned away because of the database is the operator's business (lock
        // contention, a full pool, an outage), not the client's: it is logged here, where
        // every such answer passes, with the database's reason (the client gets none). Inside
        // a request the line carries the request's id, route, platform and mode.
        match error {
            DbError::NotFound => ApiError::not_found("resource"),
            DbError::Conflict(reason) => {
                // On a read replica (a conflict with recovery) the read runs again on the
                // primary: `Db::read` logs that, and this is not the answer.
                if !super::replicas::note_replica_read_failure(&reason) {
                    tracing::warn!(%reason, "database busy; the request is answered 503 database_busy");
                }
                ApiError::unavailable(
                    "database_busy",
                    "the database is busy with a conflicting change; retry the request",
                )
            }
            DbError::Unavailable(reason) => {
                // Likewise: a replica gone under a read is not the request's answer.
                if !super::replicas::note_replica_read_failure(&reason) {
                    tracing::warn!(
                        %reason,
                        "database unavailable; the request is answered 503 database_unavailable"
                    );
                }
                ApiError::unavailable(
                    "database_unavailable",
                    "the database is unavailable; retry the request shortly",
                )
            }
            DbError::ReadOnly(reason) => {
                // Only a replica refuses writes; a read that needed one is run again on the
                // primary before anything is answered (Db::read), so this reaches a client
                // only if the primary itself is read-only (being demoted, or misconfigured).
                // Debug, not warn: every replica read that needed the primary passes here
                // first (and is then served); the request log shows a 503 that reached a
                // client.
                tracing::debug!(%reason, "read-only database (503 database_read_only unless retried on the primary)");
                ApiError::unavailable(
                    "database_read_only",
                    "the database refused a write as read-only; retry the request shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "database error");
                ApiError::internal()
            }
        }
    }
}
