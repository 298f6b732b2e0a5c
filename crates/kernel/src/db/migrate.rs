//! Embedded migrations for both backends, applied at start-up and by `feria migrate`.
//!
//! `migrations/sqlite` and `migrations/postgres` hold the same tables in the same order;
//! each backend's dialect is written out rather than generated, so each can use its own
//! types and indexes where they differ (full-text search).

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{Db, DbError, PgConn, Pools};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Serialises concurrent start-ups of several servers on one PostgreSQL database.
const MIGRATION_LOCK_KEY: i64 = 0x0066_6572_6961; // "feria"

impl Db {
    /// Applies pending migrations; returns the versions applied now (empty if none).
    ///
    /// diesel's migration harness is synchronous, so it runs on a blocking thread: on
    /// SQLite through a pooled connection (an in-memory database exists only there), on
    /// PostgreSQL through its own connection holding an advisory lock.
    pub async fn migrate(&self) -> Result<Vec<String>, DbError> {
        match &self.pools {
            Pools::Sqlite { pool, .. } => {
                let mut conn = pool.get().await.map_err(super::pool_error)?;
                conn.spawn_blocking(|inner| {
                    inner
                        .run_pending_migrations(SQLITE_MIGRATIONS)
                        .map(|versions| versions.iter().map(ToString::to_string).collect())
                        .map_err(diesel::result::Error::QueryBuilderError)
                })
                .await
                .map_err(|e| DbError::Migration(e.to_string()))
            }
            Pools::Postgres { connector, .. } => {
                // Connected here, on the runtime, with the pool's TLS settings; the
                // wrapper then drives it from the blocking thread.
                let conn = connector.connect().await.map_err(DbError::Unavailable)?;
                tokio::task::spawn_blocking(move || -> Result<Vec<String>, DbError> {
                    let mut conn = AsyncConnectionWrapper::<PgConn>::from(conn);
                    diesel::connection::SimpleConnection::batch_execute(
                        &mut conn,
                        &format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"),
                    )?;
                    let applied = conn
                        .run_pending_migrations(POSTGRES_MIGRATIONS)
                        .map(|versions| versions.iter().map(ToString::to_string).collect())
                        .map_err(|e| DbError::Migration(e.to_string()));
                    // The lock is per session; closing the connection would release it too.
                    diesel::connection::SimpleConnection::batch_execute(
                        &mut conn,
                        &format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"),
                    )?;
                    applied
                })
                .await
                .map_err(|e| DbError::Migration(format!("migration task failed: {e}")))?
            }
        }
    }
}
