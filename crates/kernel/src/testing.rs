//! Isolated databases for tests (feature `testing`): a fresh, migrated SQLite file in a
//! temporary directory, or a fresh PostgreSQL database created through
//! `TEST_DATABASE_URL` and dropped afterwards. Every test gets its own, so tests run in
//! parallel without sharing state.
//!
//! The backend is chosen by `FERIA_TEST_BACKEND` (`sqlite`, the default, or `postgres`),
//! so one test suite runs on both by running it twice.

use diesel_async::SimpleAsyncConnection;

use crate::db::{Backend, Db, DbConfig, DbError};

/// Environment variable naming the backend tests run on.
pub const BACKEND_ENV: &str = "FERIA_TEST_BACKEND";
/// Environment variable with a PostgreSQL URL whose role may create databases.
pub const POSTGRES_URL_ENV: &str = "TEST_DATABASE_URL";

/// The backend named by `FERIA_TEST_BACKEND` (default SQLite).
pub fn backend_from_env() -> Result<Backend, DbError> {
    match std::env::var(BACKEND_ENV).as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Ok(Backend::Sqlite),
        Ok("postgres") | Ok("postgresql") => Ok(Backend::Postgres),
        Ok(other) => Err(DbError::Config(format!(
            "{BACKEND_ENV}={other} is not a backend: use sqlite or postgres"
        ))),
    }
}

/// A migrated database that exists for one test and is removed when dropped.
pub struct TestDatabase {
    db: Db,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// Held for its `Drop`, which deletes the directory and the database file in it.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
    Done,
}

impl TestDatabase {
    /// A fresh database on the backend named by `FERIA_TEST_BACKEND`.
    pub async fn from_env() -> Result<TestDatabase, DbError> {
        Self::create(backend_from_env()?).await
    }

    /// A fresh, migrated database on `backend`.
    pub async fn create(backend: Backend) -> Result<TestDatabase, DbError> {
        let (url, cleanup) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("feria-test-")
                    .tempdir()
                    .map_err(|e| {
                        DbError::Unavailable(format!("cannot create a temporary directory: {e}"))
                    })?;
                let url = format!("sqlite://{}", dir.path().join("feria.db").display());
                (url, Cleanup::Sqlite(dir))
            }
            Backend::Postgres => {
                let admin_url = std::env::var(POSTGRES_URL_ENV).map_err(|_| {
                    DbError::Config(format!(
                        "{POSTGRES_URL_ENV} must be set to run tests on PostgreSQL"
                    ))
                })?;
                return Self::create_postgres(&admin_url).await;
            }
        };
        Self::connect(url, cleanup, true).await
    }

    /// A fresh, migrated database on the PostgreSQL server `admin_url` points at (a
    /// server the test runs itself, say), whatever `TEST_DATABASE_URL` says.
    pub async fn create_postgres(admin_url: &str) -> Result<TestDatabase, DbError> {
        Self::new_postgres_database(admin_url, true).await
    }

    /// A fresh database with no tables at all on the PostgreSQL server `admin_url` points
    /// at: the target of a restore, say.
    pub async fn create_empty_postgres(admin_url: &str) -> Result<TestDatabase, DbError> {
        Self::new_postgres_database(admin_url, false).await
    }

    async fn new_postgres_database(
        admin_url: &str,
        migrate: bool,
    ) -> Result<TestDatabase, DbError> {
        let admin_url = admin_url.to_owned();
        let name = format!(
            "feria_test_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let mut admin = crate::db::connect_postgres(&admin_url).await.map_err(|e| {
            DbError::Unavailable(format!(
                "cannot reach {}: {e}",
                crate::db::redact(&admin_url)
            ))
        })?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        let url = with_database(&admin_url, &name);
        Self::connect(url, Cleanup::Postgres { admin_url, name }, migrate).await
    }

    async fn connect(
        url: String,
        cleanup: Cleanup,
        migrate: bool,
    ) -> Result<TestDatabase, DbError> {
        // Build the value first so that its Drop removes the database if set-up fails.
        let mut config = DbConfig::new(url.clone());
        config.max_connections = Some(4);
        let test_db = TestDatabase {
            db: match Db::connect(&config).await {
                Ok(db) => db,
                Err(e) => {
                    drop(PendingCleanup(cleanup));
                    return Err(e);
                }
            },
            url,
            cleanup,
        };
        if migrate {
            test_db.db.migrate().await?;
        }
        Ok(test_db)
    }

    /// The handle to use in the test.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The database URL, e.g. to start a server on it.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.db.close();
        let cleanup = std::mem::replace(&mut self.cleanup, Cleanup::Done);
        drop(PendingCleanup(cleanup));
    }
}

/// Runs a cleanup when dropped (also on the set-up error path).
struct PendingCleanup(Cleanup);

impl Drop for PendingCleanup {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = std::mem::replace(&mut self.0, Cleanup::Done)
        {
            // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
            // thread with its own runtime removes the database before the test returns.
            let handle = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(async move {
                        if let Ok(mut admin) = crate::db::connect_postgres(&admin_url).await {
                            let _ = admin
                                .batch_execute(&format!(
                                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                                ))
                                .await;
                        }
                    });
                }
            });
            let _ = handle.join();
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
