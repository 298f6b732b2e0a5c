//! The database layer: one [`Db`] handle over SQLite (the embedded default) or PostgreSQL
//! (production), chosen at run time by the database URL.
//!
//! Domain code writes a diesel query once and runs it on either backend with
//! [`with_conn!`](crate::with_conn): the macro expands the body once per backend with the
//! concrete connection bound, so the query is type-checked against both. The rare query
//! that must differ (row locks, full-text search) uses the macro's two-armed form, kept in
//! one clearly marked place per crate.
//!
//! ```no_run
//! use diesel::prelude::*;
//! use diesel_async::RunQueryDsl;
//! use feria_kernel::db::{DbConn, DbError};
//!
//! diesel::table! { notes (id) { id -> Text, body -> Text } }
//!
//! async fn note_body(conn: &mut DbConn, id: &str) -> Result<String, DbError> {
//!     let body = feria_kernel::with_conn!(conn, c => {
//!         notes::table.find(id).select(notes::body).first::<String>(c).await
//!     })?;
//!     Ok(body)
//! }
//! ```
//!
//! Transactions ([`DbConn::transaction`]) compose: a domain function that opens one inside
//! another's gets a savepoint. On SQLite the outermost transaction is `BEGIN IMMEDIATE`, so
//! the write lock is taken up front and a read-then-write cannot fail half-way with
//! "database is locked"; the process's writers queue for it in order
//! (`sqlite_writer.rs`).
//!
//! On PostgreSQL a `Db` may also hold streaming read replicas ([`DbConfig::replicas`]):
//! [`Db::read`] runs a read-only call on a replica that is fresh enough and has replayed
//! the caller's last write ([`Lsn`], kept per client by a [`WritePositions`] store), or on
//! the primary; `replicas.rs` has the rules. [`Db::conn`] is always the primary.

mod dynamic;
mod error;
mod full_text;
mod migrate;
pub(crate) mod postgres;
mod replicas;
mod sqlite_runtime;
mod sqlite_writer;

use std::sync::Arc;
use std::time::Duration;

use diesel::SqliteConnection;
use diesel::connection::AnsiTransactionManager as SyncAnsiTransactionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection, TransactionManager,
};

pub use self::dynamic::{DynamicSql, PreparedSql, SqlArg};
pub use self::error::DbError;
pub use self::full_text::FullText;
pub use self::migrate::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
use self::postgres::PgConnector;
pub use self::postgres::{RootCert, SslMode, TlsSettings};
pub use self::replicas::{
    InProcessWritePositions, Lsn, LsnError, ReadConn, ReadSource, ReplicaConfig, ReplicaFallback,
    ReplicaStatus, WritePositions,
};
pub use self::sqlite_writer::WriteTurn;
use self::sqlite_writer::WriterQueue;

/// The SQLite connection type domain code sees inside [`with_conn!`](crate::with_conn).
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, sqlite_runtime::BlockingPool>;
/// The PostgreSQL connection type domain code sees inside [`with_conn!`](crate::with_conn).
pub type PgConn = AsyncPgConnection;

/// Which engine a [`Db`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to reach and pool the database. Its `Debug` shows the URL without its password.
#[derive(Clone)]
pub struct DbConfig {
    /// `sqlite://./data/feria.db`, `sqlite::memory:`, or `postgres://user@host/db`.
    pub url: String,
    /// Pool size; `None` picks a default per backend from the cores (SQLite 2 per core,
    /// at least 4; PostgreSQL 4 per core, at least 8; an in-memory SQLite database is
    /// always 1, as each connection would be its own).
    pub max_connections: Option<usize>,
    /// How long a request waits for a pooled connection before failing with 503.
    pub acquire_timeout: Duration,
    /// SQLite: how long a statement waits for a lock held by another connection.
    pub busy_timeout: Duration,
    /// PostgreSQL: server-side limit for one statement.
    pub statement_timeout: Duration,
    /// PostgreSQL: streaming read replicas for read-only requests ([`Db::read`]); none
    /// by default.
    pub replicas: ReplicaConfig,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &crate::secret::RedactedUrl(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl DbConfig {
    pub fn new(url: impl Into<String>) -> DbConfig {
        DbConfig {
            url: url.into(),
            max_connections: None,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            replicas: ReplicaConfig::default(),
        }
    }
}

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A SQLite file path, or `:memory:`.
    Sqlite { path: String },
    /// A PostgreSQL connection URL, as given.
    Postgres { url: String },
}

impl DatabaseTarget {
    /// Parses `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:` and `postgres[ql]://...`.
    pub fn parse(url: &str) -> Result<DatabaseTarget, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseTarget::Postgres {
                url: url.to_owned(),
            });
        }
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                DbError::Config(format!(
                    "unsupported database URL `{}`: expected sqlite://PATH or postgres://...",
                    redact(url)
                ))
            })?;
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(DbError::Config("the SQLite URL names no file".into()));
        }
        Ok(DatabaseTarget::Sqlite {
            path: path.to_owned(),
        })
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseTarget::Sqlite { .. } => Backend::Sqlite,
            DatabaseTarget::Postgres { .. } => Backend::Postgres,
        }
    }
}

/// A URL with its password hidden, for logs and errors ([`crate::secret::RedactedUrl`]).
pub fn redact(url: &str) -> String {
    crate::secret::RedactedUrl(url).to_string()
}

/// One PostgreSQL connection outside any pool (administration, tests), made as the pool
/// makes its own: with the URL's `sslmode` and `sslrootcert`.
pub async fn connect_postgres(url: &str) -> Result<PgConn, DbError> {
    PgConnector::new(url)?
        .connect()
        .await
        .map_err(DbError::Unavailable)
}

/// Pool occupancy, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    /// Connections open (idle + in use).
    pub size: usize,
    pub idle: usize,
    pub in_use: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

#[derive(Clone)]
enum Pools {
    Sqlite {
        pool: Pool<SqliteConn>,
        writers: WriterQueue,
    },
    Postgres {
        pool: Pool<PgConn>,
        /// Also makes the migration's own connection, with the pool's TLS settings.
        connector: Arc<PgConnector>,
    },
}

/// The database handle: a connection pool over one backend (and, on PostgreSQL, a pool
/// per streaming read replica). Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pools: Pools,
    /// `None` without replicas: reads cost nothing more than [`Db::conn`].
    replicas: Option<Arc<replicas::Replicas>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// A pooled connection of either backend; domain functions take `&mut DbConn`.
// One lives per request on the stack; boxing the larger variant would cost an allocation
// per checkout for nothing.
#[allow(clippy::large_enum_variant)]
pub enum DbConn {
    /// The connection and its place in the database's queue of writers.
    Sqlite(Object<SqliteConn>, WriteTurn),
    Postgres(Object<PgConn>),
}

/// The pool size when none is configured: a few connections per core, not a fixed
/// number. A connection beyond what the cores can serve does not add throughput; it
/// time-slices the same CPU among more statements, so an expensive one stretches and
/// waits behind the others (the latency tail), while a request queued for a connection
/// waits first-in first-out. Measured at 1,000,000 listings on 2 cores
/// (docs/BENCHMARKS-HOWTO.md, "Pool size"): PostgreSQL browse p99 went from 58-61 ms
/// with 16 connections to 35 ms with 8 and 21 ms with 5, at the same or higher
/// throughput; product lookups, whose statements are short and wait on round trips
/// rather than CPU, keep more of their throughput with more connections (7,100/s with
/// 16, 6,750/s with 8, 5,850/s with 5). SQLite's statements run on the pool's threads,
/// so there the pool is also the number of threads working at once: 4 connections did
/// better than 8 on browse, lookups and memory alike.
fn default_pool_size(backend: Backend) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    match backend {
        Backend::Sqlite => (2 * cores).max(4),
        Backend::Postgres => (4 * cores).max(8),
    }
}

impl Db {
    /// Opens the pool and checks that one connection works. Does not migrate.
    pub async fn connect(config: &DbConfig) -> Result<Db, DbError> {
        let pools = match DatabaseTarget::parse(&config.url)? {
            DatabaseTarget::Sqlite { path } => {
                let memory = path == ":memory:";
                if !memory
                    && let Some(parent) = std::path::Path::new(&path)
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        DbError::Unavailable(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                let size = if memory {
                    1
                } else {
                    config
                        .max_connections
                        .unwrap_or_else(|| default_pool_size(Backend::Sqlite))
                };
                let threads = sqlite_runtime::BlockingPool::for_pool(size).map_err(|e| {
                    DbError::Config(format!("cannot start the SQLite threads: {e}"))
                })?;
                let pragmas = sqlite_pragmas(config.busy_timeout);
                let mut manager_config = ManagerConfig::<SqliteConn>::default();
                manager_config.recycling_method = RecyclingMethod::Fast;
                manager_config.custom_setup = Box::new(move |url| {
                    let url = url.to_owned();
                    let pragmas = pragmas.clone();
                    let mut threads = threads.clone();
                    Box::pin(async move {
                        let inner = threads
                            .spawn_blocking(move || {
                                <SqliteConnection as diesel::Connection>::establish(&url)
                            })
                            .await
                            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))??;
                        let mut conn = SqliteConn::with_runtime(inner, threads);
                        conn.batch_execute(&pragmas)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    })
                });
                let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(
                    path,
                    manager_config,
                );
                Pools::Sqlite {
                    pool: build_pool(manager, size, config.acquire_timeout)?,
                    writers: WriterQueue::new(config.busy_timeout),
                }
            }
            DatabaseTarget::Postgres { url } => {
                let connector = Arc::new(PgConnector::new(&url)?);
                let size = config
                    .max_connections
                    .unwrap_or_else(|| default_pool_size(Backend::Postgres));
                tracing::debug!(
                    sslmode = %connector.settings().mode,
                    sslrootcert = ?connector.settings().root_cert,
                    "PostgreSQL TLS settings"
                );
                Pools::Postgres {
                    pool: postgres_pool(
                        connector.clone(),
                        config.statement_timeout,
                        size,
                        config.acquire_timeout,
                        config.acquire_timeout,
                    )?,
                    connector,
                }
            }
        };
        let replicas = match (&pools, config.replicas.urls.is_empty()) {
            (_, true) => None,
            (Pools::Sqlite { .. }, false) => {
                return Err(DbError::Config(
                    "read replicas (DATABASE_REPLICA_URLS) need a PostgreSQL primary; \
                     DATABASE_URL names a SQLite database"
                        .into(),
                ));
            }
            (Pools::Postgres { connector, .. }, false) => Some(Arc::new(
                replicas::Replicas::start(connector.clone(), config)?,
            )),
        };
        let db = Db { pools, replicas };
        db.ping().await?;
        Ok(db)
    }

    /// The connector of a PostgreSQL database, for connections outside the pool (the
    /// cache-change listener, `crate::coherence`).
    pub(crate) fn pg_connector(&self) -> Option<Arc<PgConnector>> {
        match &self.pools {
            Pools::Sqlite { .. } => None,
            Pools::Postgres { connector, .. } => Some(connector.clone()),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres { .. } => Backend::Postgres,
        }
    }

    /// A connection from the pool; waits at most the configured acquire timeout.
    pub async fn conn(&self) -> Result<DbConn, DbError> {
        match &self.pools {
            Pools::Sqlite { pool, writers } => match pool.get().await {
                Ok(conn) => Ok(DbConn::Sqlite(conn, writers.for_connection())),
                Err(e) => Err(pool_error(e)),
            },
            Pools::Postgres { pool, .. } => {
                pool.get().await.map(DbConn::Postgres).map_err(pool_error)
            }
        }
    }

    /// Runs `f` in a transaction on a fresh connection; see [`DbConn::transaction`].
    pub async fn transaction<R, E, F>(&self, f: F) -> Result<R, E>
    where
        for<'r> F: AsyncFnOnce(&'r mut DbConn) -> Result<R, E>
            + AsyncFunc<&'r mut DbConn, Result<R, E>, Fut: Send>
            + Send,
        E: From<DbError> + Send,
        R: Send,
    {
        let mut conn = self.conn().await?;
        conn.transaction(f).await
    }

    /// Checks that the database answers a query.
    pub async fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.conn().await?;
        let one: i32 = crate::with_conn!(&mut conn, c => {
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1")).get_result(c).await
        })
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
        if one == 1 {
            Ok(())
        } else {
            Err(DbError::Unavailable("unexpected answer to SELECT 1".into()))
        }
    }

    /// Pool occupancy now.
    pub fn pool_status(&self) -> PoolStatus {
        let status = match &self.pools {
            Pools::Sqlite { pool, .. } => pool.status(),
            Pools::Postgres { pool, .. } => pool.status(),
        };
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            idle: status.available,
            in_use: status.size.saturating_sub(status.available),
            waiting: status.waiting,
        }
    }

    /// Closes the pool: waiting and future `conn()` calls fail; open connections close
    /// when returned.
    pub fn close(&self) {
        match &self.pools {
            Pools::Sqlite { pool, .. } => pool.close(),
            Pools::Postgres { pool, .. } => pool.close(),
        }
        if let Some(replicas) = &self.replicas {
            replicas.close();
        }
    }
}

fn sqlite_pragmas(busy_timeout: Duration) -> String {
    // WAL lets readers proceed beside the one writer; synchronous=FULL keeps every
    // committed transaction across a power loss, not only a process crash.
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        busy_timeout.as_millis()
    )
}

/// A pool of PostgreSQL connections made by `connector`, each with the statement timeout
/// and UTC; the primary's and each read replica's.
pub(crate) fn postgres_pool(
    connector: Arc<PgConnector>,
    statement_timeout: Duration,
    size: usize,
    acquire_timeout: Duration,
    create_timeout: Duration,
) -> Result<Pool<PgConn>, DbError> {
    let statement_timeout_ms = statement_timeout.as_millis();
    let mut manager_config = ManagerConfig::<PgConn>::default();
    // Checked-out connections are not pinged (diesel-async's default runs `SELECT 1`
    // first, a round trip per checkout: 2 of S2's 5). A connection whose socket the server
    // closed is still dropped at checkout (`is_closed`), and one that fails mid-request is
    // broken and discarded; tests/tests/db_faults.rs restarts PostgreSQL under load to
    // hold us to it.
    manager_config.recycling_method = RecyclingMethod::Fast;
    // diesel-async's own establish knows no TLS; the connector makes the connection (its
    // URL is the one the manager would pass here).
    manager_config.custom_setup = Box::new(move |_url| {
        let connector = connector.clone();
        Box::pin(async move {
            let mut conn = connector
                .connect()
                .await
                .map_err(diesel::ConnectionError::BadConnection)?;
            conn.batch_execute(&format!(
                "SET statement_timeout = {statement_timeout_ms}; SET TIME ZONE 'UTC'"
            ))
            .await
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    // The manager keeps its URL only to hand it to `custom_setup`, which does not read it:
    // hand it none, so no copy of the password lives there.
    let manager =
        AsyncDieselConnectionManager::<PgConn>::new_with_config(String::new(), manager_config);
    Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(acquire_timeout))
        .create_timeout(Some(create_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Config(format!("cannot build the connection pool: {e}")))
}

fn build_pool<C>(
    manager: AsyncDieselConnectionManager<C>,
    size: usize,
    acquire_timeout: Duration,
) -> Result<Pool<C>, DbError>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager,
{
    Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(acquire_timeout))
        .create_timeout(Some(acquire_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Config(format!("cannot build the connection pool: {e}")))
}

fn pool_error(
    error: deadpool::managed::PoolError<diesel_async::pooled_connection::PoolError>,
) -> DbError {
    use deadpool::managed::PoolError;
    match error {
        PoolError::Timeout(_) => {
            DbError::Unavailable("timed out waiting for a database connection".into())
        }
        PoolError::Closed => DbError::Unavailable("the connection pool is closed".into()),
        PoolError::Backend(e) => DbError::Unavailable(e.to_string()),
        other => DbError::Unavailable(other.to_string()),
    }
}

/// An async closure whose future's type can be named, so that it can be required `Send`
/// (the same device diesel-async uses for its own `transaction`).
pub trait AsyncFunc<T, R>:
    AsyncFnOnce(T) -> R + FnOnce(T) -> <Self as AsyncFunc<T, R>>::Fut
{
    type Fut: Future<Output = R>;
}

impl<F, T, Fut, R> AsyncFunc<T, R> for F
where
    F: AsyncFnOnce(T) -> R + FnOnce(T) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
}

impl DbConn {
    pub fn backend(&self) -> Backend {
        match self {
            DbConn::Sqlite(..) => Backend::Sqlite,
            DbConn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs `f` inside a transaction: committed if it returns `Ok`, rolled back if `Err`.
    /// Called inside another transaction it uses a savepoint, so domain functions compose.
    /// On SQLite the outermost level is `BEGIN IMMEDIATE` (the write lock up front), after
    /// the connection's turn in the process's queue of writers (`sqlite_writer.rs`).
    ///
    /// If the future is dropped half-way (a client went away), the connection is left
    /// inside the transaction and the pool discards it instead of reusing it: nothing
    /// half-written is committed.
    pub async fn transaction<R, E, F>(&mut self, f: F) -> Result<R, E>
    where
        for<'r> F: AsyncFnOnce(&'r mut DbConn) -> Result<R, E>
            + AsyncFunc<&'r mut DbConn, Result<R, E>, Fut: Send>
            + Send,
        E: From<DbError> + Send,
        R: Send,
    {
        // SQLite: the writer's turn first (none for a savepoint: the outer level holds it),
        // ended here whatever happens after it.
        let took_turn = match self {
            DbConn::Sqlite(_, turn) => turn.take().await?,
            DbConn::Postgres(_) => false,
        };
        let outcome = match self.begin().await {
            Err(e) => Err(E::from(e)),
            Ok(()) => match f(&mut *self).await {
                Ok(value) => self.commit().await.map(|()| value).map_err(E::from),
                Err(user_error) => {
                    if let Err(rollback_error) = self.rollback().await {
                        // The caller's error says why; the rollback failure is logged, and the
                        // pool will discard this connection as broken. A server that went away
                        // rolls the transaction back itself: that is a warning, not a bug.
                        if matches!(rollback_error, DbError::Unavailable(_)) {
                            tracing::warn!(error = %rollback_error, "rollback failed");
                        } else {
                            tracing::error!(error = %rollback_error, "rollback failed");
                        }
                    }
                    Err(user_error)
                }
            },
        };
        if took_turn && let DbConn::Sqlite(_, turn) = self {
            turn.end();
        }
        outcome
    }

    /// Begins a transaction, or a savepoint inside one.
    async fn begin(&mut self) -> Result<(), DbError> {
        match self {
            DbConn::Sqlite(conn, _) => {
                let conn: &mut SqliteConn = conn;
                let outermost = conn
                    .spawn_blocking(|inner| {
                        SyncAnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")
                    })
                    .await;
                match outermost {
                    Ok(()) => Ok(()),
                    Err(diesel::result::Error::AlreadyInTransaction) => {
                        <SqliteConn as AsyncConnection>::TransactionManager::begin_transaction(
                            conn,
                        )
                        .await?;
                        Ok(())
                    }
                    Err(other) => Err(other.into()),
                }
            }
            DbConn::Postgres(conn) => {
                let conn: &mut PgConn = conn;
                <PgConn as AsyncConnection>::TransactionManager::begin_transaction(conn).await?;
                Ok(())
            }
        }
    }

    async fn commit(&mut self) -> Result<(), DbError> {
        match self {
            DbConn::Sqlite(conn, _) => {
                let conn: &mut SqliteConn = conn;
                <SqliteConn as AsyncConnection>::TransactionManager::commit_transaction(conn)
                    .await?;
            }
            DbConn::Postgres(conn) => {
                let conn: &mut PgConn = conn;
                <PgConn as AsyncConnection>::TransactionManager::commit_transaction(conn).await?;
            }
        }
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), DbError> {
        match self {
            DbConn::Sqlite(conn, _) => {
                let conn: &mut SqliteConn = conn;
                <SqliteConn as AsyncConnection>::TransactionManager::rollback_transaction(conn)
                    .await?;
            }
            DbConn::Postgres(conn) => {
                let conn: &mut PgConn = conn;
                <PgConn as AsyncConnection>::TransactionManager::rollback_transaction(conn).await?;
            }
        }
        Ok(())
    }

    /// Runs raw SQL statements (`;`-separated, no results), e.g. for test set-up.
    pub async fn batch_execute(&mut self, sql: &str) -> Result<(), DbError> {
        crate::with_conn!(self, c => c.batch_execute(sql).await)?;
        Ok(())
    }

    /// Rewrites the storage of `tables` so that the values their rows held before an
    /// update no longer linger in the database's files (secrets stored in clear before
    /// they were sealed, or sealed under a retired key): an overwritten row stays in
    /// SQLite's free space and WAL, and as a dead tuple in PostgreSQL, until this.
    /// SQLite: `VACUUM` (the whole file; it has no per-table form) and a truncating WAL
    /// checkpoint. PostgreSQL: `VACUUM FULL` of the tables. Outside a transaction; takes
    /// locks, so meant for start-up and maintenance commands. What the database has
    /// already shipped elsewhere (WAL archives, replicas' history, backups) is not reached.
    pub async fn scrub(&mut self, tables: &[&str]) -> Result<(), DbError> {
        match self.backend() {
            Backend::Sqlite => {
                self.batch_execute("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
                    .await
            }
            Backend::Postgres => {
                if tables.is_empty() {
                    return Ok(());
                }
                let quoted: Vec<String> = tables
                    .iter()
                    .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                    .collect();
                self.batch_execute(&format!("VACUUM FULL {}", quoted.join(", ")))
                    .await
            }
        }
    }
}

/// Bound values per multi-row statement, under both backends' limits (SQLite 32,766,
/// PostgreSQL 65,535): a bulk insert of rows of N columns sends `MAX_BULK_BINDS / N` rows
/// per statement.
pub const MAX_BULK_BINDS: usize = 30_000;

/// `bulk_insert!(conn, table, rows)`: one multi-row `INSERT` of a slice of owned models
/// into the diesel `table` (in scope by name), as `Result<usize, DbError>`. Chunk the
/// rows by [`MAX_BULK_BINDS`]. PostgreSQL takes it as one statement; diesel's SQLite
/// batch insert exists only for the synchronous connection, so on SQLite it runs on the
/// connection's blocking thread: one call, every row in native code. For bulk loads
/// (benchmark seeding, imports), which skip the domain functions' per-row rules.
#[macro_export]
macro_rules! bulk_insert {
    ($conn:expr, $table:ident, $rows:expr) => {{
        let rows = $rows.to_vec();
        $crate::with_conn!($conn,
            sqlite: c => {
                c.spawn_blocking(move |inner| {
                    $crate::__private::diesel::RunQueryDsl::execute(
                        $crate::__private::diesel::insert_into($table::table).values(rows),
                        inner,
                    )
                })
                .await
            },
            postgres: c => {
                $crate::__private::diesel_async::RunQueryDsl::execute(
                    $crate::__private::diesel::insert_into($table::table).values(rows),
                    c,
                )
                .await
            },
        )
        .map_err($crate::DbError::from)
    }};
}

/// Runs a diesel query body once per backend with the concrete connection bound.
///
/// One-armed: `with_conn!(conn, c => body)` — the body is compiled for both
/// [`SqliteConn`] and [`PgConn`]. Two-armed, for backend-specific SQL:
/// `with_conn!(conn, sqlite: c => body, postgres: c => body)`.
/// `conn` is a `&mut DbConn`.
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match &mut *$conn {
            $crate::db::DbConn::Sqlite(__pooled, _) => {
                let $c: &mut $crate::db::SqliteConn = &mut **__pooled;
                $body
            }
            $crate::db::DbConn::Postgres(__pooled) => {
                let $c: &mut $crate::db::PgConn = &mut **__pooled;
                $body
            }
        }
    };
    ($conn:expr, sqlite: $s:ident => $sqlite_body:expr, postgres: $p:ident => $pg_body:expr $(,)?) => {
        match &mut *$conn {
            $crate::db::DbConn::Sqlite(__pooled, _) => {
                let $s: &mut $crate::db::SqliteConn = &mut **__pooled;
                $sqlite_body
            }
            $crate::db::DbConn::Postgres(__pooled) => {
                let $p: &mut $crate::db::PgConn = &mut **__pooled;
                $pg_body
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_backends() {
        assert_eq!(
            DatabaseTarget::parse("sqlite://./data/feria.db").unwrap(),
            DatabaseTarget::Sqlite {
                path: "./data/feria.db".into()
            }
        );
        assert_eq!(
            DatabaseTarget::parse("sqlite:///var/lib/feria.db?mode=rwc").unwrap(),
            DatabaseTarget::Sqlite {
                path: "/var/lib/feria.db".into()
            }
        );
        assert_eq!(
            DatabaseTarget::parse("sqlite::memory:").unwrap(),
            DatabaseTarget::Sqlite {
                path: ":memory:".into()
            }
        );
        assert_eq!(
            DatabaseTarget::parse("postgresql://u@h/db")
                .unwrap()
                .backend(),
            Backend::Postgres
        );
        assert!(DatabaseTarget::parse("mysql://x").is_err());
        assert!(DatabaseTarget::parse("sqlite://").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://feria:secret@db:5432/feria"),
            "postgres://feria:***@db:5432/feria"
        );
        assert_eq!(
            redact("postgres://feria@db/feria"),
            "postgres://feria@db/feria"
        );
        assert_eq!(redact("sqlite://./x.db"), "sqlite://./x.db");
        let config = DbConfig::new("postgres://feria:secret@db/feria");
        assert!(!format!("{config:?}").contains("secret"));
    }
}
