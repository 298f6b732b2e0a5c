//! The database layer against real databases: a SQLite file, and PostgreSQL when
//! `FERIA_TEST_BACKEND=postgres` (with `TEST_DATABASE_URL`).

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::db::{Backend, Db, DbConfig, DbConn, DbError};
use feria_kernel::testing::TestDatabase;
use feria_kernel::with_conn;

diesel::table! {
    counters (id) {
        id -> Text,
        value -> BigInt,
    }
}

async fn setup() -> TestDatabase {
    let test_db = TestDatabase::from_env().await.expect("test database");
    let mut conn = test_db.db().conn().await.expect("connection");
    conn.batch_execute("CREATE TABLE counters (id TEXT PRIMARY KEY, value BIGINT NOT NULL)")
        .await
        .expect("create table");
    test_db
}

async fn insert(conn: &mut DbConn, id: &str, value: i64) -> Result<(), DbError> {
    with_conn!(conn, c => {
        diesel::insert_into(counters::table)
            .values((counters::id.eq(id), counters::value.eq(value)))
            .execute(c)
            .await
    })?;
    Ok(())
}

async fn value_of(conn: &mut DbConn, id: &str) -> Result<i64, DbError> {
    let value = with_conn!(conn, c => {
        counters::table.find(id).select(counters::value).first::<i64>(c).await
    })?;
    Ok(value)
}

async fn set_value(conn: &mut DbConn, id: &str, value: i64) -> Result<(), DbError> {
    with_conn!(conn, c => {
        diesel::update(counters::table.find(id)).set(counters::value.eq(value)).execute(c).await
    })?;
    Ok(())
}

/// Read-then-write increment in one transaction, holding the write lock for `hold`:
/// SQLite's `BEGIN IMMEDIATE` serialises writers up front; PostgreSQL locks the row.
async fn increment(conn: &mut DbConn, id: &str, hold: Duration) -> Result<(), DbError> {
    conn.transaction(async |c: &mut DbConn| -> Result<(), DbError> {
        let current: i64 = with_conn!(c,
            sqlite: s => counters::table.find(id).select(counters::value).first(s).await,
            postgres: p => counters::table.find(id).select(counters::value).for_update().first(p).await,
        )?;
        tokio::time::sleep(hold).await;
        set_value(c, id, current + 1).await
    })
    .await
}

#[tokio::test]
async fn write_once_queries_run_and_classify_errors() {
    let test_db = setup().await;
    let mut conn = test_db.db().conn().await.unwrap();
    insert(&mut conn, "a", 1).await.unwrap();
    assert_eq!(value_of(&mut conn, "a").await.unwrap(), 1);
    assert!(matches!(
        value_of(&mut conn, "missing").await,
        Err(DbError::NotFound)
    ));
    let duplicate = insert(&mut conn, "a", 2).await.unwrap_err();
    assert!(duplicate.is_unique_violation("counters"), "{duplicate:?}");
}

#[tokio::test]
async fn transactions_commit_roll_back_and_nest_as_savepoints() {
    let test_db = setup().await;
    let mut conn = test_db.db().conn().await.unwrap();

    let committed: Result<(), DbError> =
        conn.transaction(async |c| insert(c, "kept", 1).await).await;
    committed.unwrap();

    let rolled_back: Result<(), DbError> = conn
        .transaction(async |c| {
            insert(c, "gone", 1).await?;
            Err(DbError::NotFound)
        })
        .await;
    assert!(rolled_back.is_err());

    let nested: Result<(), DbError> = conn
        .transaction(async |c| {
            insert(c, "outer", 1).await?;
            let inner: Result<(), DbError> = c
                .transaction(async |c| {
                    insert(c, "inner", 1).await?;
                    Err(DbError::NotFound)
                })
                .await;
            assert!(inner.is_err());
            Ok(())
        })
        .await;
    nested.unwrap();

    assert_eq!(value_of(&mut conn, "kept").await.unwrap(), 1);
    assert_eq!(value_of(&mut conn, "outer").await.unwrap(), 1);
    assert!(matches!(
        value_of(&mut conn, "gone").await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        value_of(&mut conn, "inner").await,
        Err(DbError::NotFound)
    ));
}

/// Read-then-write increments from concurrent transactions lose no update: SQLite's
/// `BEGIN IMMEDIATE` serialises writers up front; PostgreSQL locks the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_then_write_loses_no_update() {
    let test_db = setup().await;
    let db = test_db.db().clone();
    insert(&mut db.conn().await.unwrap(), "hits", 0)
        .await
        .unwrap();

    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                increment(&mut db.conn().await?, "hits", Duration::from_millis(2)).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        value_of(&mut db.conn().await.unwrap(), "hits")
            .await
            .unwrap(),
        24
    );
}

/// Writers that come back for the lock at once do not starve the ones already waiting:
/// every connection of the pool runs back-to-back write transactions, each holding the
/// lock 10 ms, and none waits out the 1 s busy timeout, though together they hold the
/// lock for 2 s. (SQLite's own busy handler retries after sleeps of up to 100 ms, and a
/// connection that has just committed asks again at once and wins: waiters failed with
/// `database is locked`. The process's writers now queue first-come, first-served.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn back_to_back_writers_take_turns_and_none_times_out() {
    let test_db = setup().await;
    let mut config = DbConfig::new(test_db.url());
    config.max_connections = Some(4);
    config.busy_timeout = Duration::from_secs(1);
    let db = Db::connect(&config).await.unwrap();
    insert(&mut db.conn().await.unwrap(), "turns", 0)
        .await
        .unwrap();

    let writers: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut conn = db.conn().await?;
                for _ in 0..50 {
                    increment(&mut conn, "turns", Duration::from_millis(10)).await?;
                }
                Ok::<_, DbError>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    assert_eq!(
        value_of(&mut db.conn().await.unwrap(), "turns")
            .await
            .unwrap(),
        200
    );
    db.close();
}

/// A conditional update never overdraws, however many withdraw at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_update_never_overdraws() {
    let test_db = setup().await;
    let db = test_db.db().clone();
    insert(&mut db.conn().await.unwrap(), "balance", 100)
        .await
        .unwrap();

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut conn = db.conn().await?;
                let rows = with_conn!(&mut conn, c => {
                    diesel::update(counters::table.find("balance").filter(counters::value.ge(30)))
                        .set(counters::value.eq(counters::value - 30))
                        .returning(counters::value)
                        .get_results::<i64>(c)
                        .await
                })?;
                Ok::<_, DbError>(rows.len())
            })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        succeeded += task.await.unwrap().unwrap();
    }
    assert_eq!(succeeded, 3);
    assert_eq!(
        value_of(&mut db.conn().await.unwrap(), "balance")
            .await
            .unwrap(),
        10
    );
}

#[tokio::test]
async fn an_exhausted_pool_fails_fast_as_unavailable() {
    let test_db = setup().await;
    let mut config = DbConfig::new(test_db.url());
    config.max_connections = Some(1);
    config.acquire_timeout = Duration::from_millis(200);
    let db = Db::connect(&config).await.unwrap();
    let _held = db.conn().await.unwrap();
    let started = std::time::Instant::now();
    let error = db.conn().await.err().expect("second connection must fail");
    assert!(matches!(error, DbError::Unavailable(_)), "{error:?}");
    assert!(error.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(db.pool_status().in_use, 1);
}

#[tokio::test]
async fn migrations_are_idempotent_and_data_survives_reconnecting() {
    let test_db = setup().await;
    assert!(test_db.db().migrate().await.unwrap().is_empty());
    insert(&mut test_db.db().conn().await.unwrap(), "durable", 7)
        .await
        .unwrap();

    let reopened = Db::connect(&DbConfig::new(test_db.url())).await.unwrap();
    assert!(reopened.migrate().await.unwrap().is_empty());
    assert_eq!(
        value_of(&mut reopened.conn().await.unwrap(), "durable")
            .await
            .unwrap(),
        7
    );
    reopened.close();
}

#[tokio::test]
async fn connections_enforce_foreign_keys_and_sqlite_uses_wal() {
    let test_db = setup().await;
    let mut conn = test_db.db().conn().await.unwrap();
    conn.batch_execute(
        "CREATE TABLE parents (id TEXT PRIMARY KEY); \
         CREATE TABLE children (id TEXT PRIMARY KEY, parent_id TEXT NOT NULL REFERENCES parents(id))",
    )
    .await
    .unwrap();
    let orphan = conn
        .batch_execute("INSERT INTO children (id, parent_id) VALUES ('c', 'nobody')")
        .await;
    assert!(
        matches!(orphan, Err(DbError::ForeignKeyViolation { .. })),
        "{orphan:?}"
    );

    #[derive(QueryableByName)]
    struct Pragma {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let sqlite_journal_mode = with_conn!(&mut conn,
        sqlite: c => Some(diesel::sql_query("PRAGMA journal_mode").get_result::<Pragma>(c).await.unwrap().journal_mode),
        postgres: _c => None,
    );
    match test_db.backend() {
        Backend::Sqlite => assert_eq!(sqlite_journal_mode.as_deref(), Some("wal")),
        Backend::Postgres => assert_eq!(sqlite_journal_mode, None),
    }
}
