//! PostgreSQL streaming read replicas: a pool per replica, a watcher per replica that
//! knows how far it has replayed, and the choice, per read, of a replica that is fresh
//! enough or else the primary.
//!
//! The rules (docs/DEPLOYMENT.md, "Read replicas"):
//!
//! - **Lag.** A sampler asks the primary for its WAL position (`pg_current_wal_lsn()`)
//!   every check interval and keeps the samples of the last `max_lag`. A replica's watcher
//!   asks it how far it has replayed (`pg_last_wal_replay_lsn()`) as often. A replica is
//!   fresh when it has replayed at least what the primary had written `max_lag` ago: "not
//!   lagging by more than `max_lag`", measured in time, whatever the write rate. A replica
//!   whose replay is paused but which has everything the primary wrote is fresh.
//! - **Health.** A replica whose check fails, times out or is older than a few intervals,
//!   or on which a read just failed for want of a connection, is not used until a check
//!   succeeds again. A read that fails on a replica that way is run again on the primary
//!   ([`Db::read`]): the request does not fail because a replica went away.
//! - **Read-your-writes.** A read may name a position it must see (`after`: the primary's
//!   WAL insert position after the client's last write, [`Db::write_position`]); only a
//!   replica that has replayed it serves the read. [`WritePositions`] remembers those
//!   positions per client.
//!
//! Without replicas, [`Db::read`] is [`Db::conn`] and nothing else: no sampler, no extra
//! round trip, and [`Db::write_position`] answers `None` without asking the database.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use diesel::sql_types::{Nullable, Text};
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use futures_util::future::BoxFuture;

use super::postgres::PgConnector;
use super::{Db, DbConfig, DbConn, DbError, PgConn, Pools};
use crate::error::ApiError;

/// A position in PostgreSQL's write-ahead log (`pg_lsn`, written `X/Y`: the high and low
/// 32 bits in hexadecimal). Ordered as the log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Beyond every real position: a read that must see it never goes to a replica (what a
    /// [`WritePositions`] store that cannot answer should say).
    pub const MAX: Lsn = Lsn(u64::MAX);
}

/// A text that is not an `X/Y` WAL position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a WAL position (X/Y, both hexadecimal)")]
pub struct LsnError(String);

impl FromStr for Lsn {
    type Err = LsnError;

    fn from_str(text: &str) -> Result<Lsn, LsnError> {
        let invalid = || LsnError(text.chars().take(40).collect());
        let (high, low) = text.split_once('/').ok_or_else(invalid)?;
        let part = |digits: &str| {
            if digits.is_empty() || digits.len() > 8 {
                return Err(invalid());
            }
            u32::from_str_radix(digits, 16).map_err(|_| invalid())
        };
        Ok(Lsn((u64::from(part(high)?) << 32) | u64::from(part(low)?)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The read replicas of a PostgreSQL primary. Its `Debug` hides the URLs' passwords.
#[derive(Clone)]
pub struct ReplicaConfig {
    /// One PostgreSQL URL per streaming replica of the primary (same `sslmode` and
    /// `sslrootcert` handling as the primary's URL). Empty: no replicas.
    pub urls: Vec<String>,
    /// A replica that has not replayed what the primary had written this long ago is not
    /// used.
    pub max_lag: Duration,
    /// Connections per replica; `None`: the primary's default size.
    pub pool_size: Option<usize>,
    /// How often the primary's position and each replica's replay are read.
    pub check_interval: Duration,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            urls: Vec::new(),
            max_lag: Duration::from_secs(1),
            pool_size: None,
            check_interval: Duration::from_millis(200),
        }
    }
}

impl fmt::Debug for ReplicaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|url| super::redact(url)).collect();
        f.debug_struct("ReplicaConfig")
            .field("urls", &urls)
            .field("max_lag", &self.max_lag)
            .field("pool_size", &self.pool_size)
            .field("check_interval", &self.check_interval)
            .finish()
    }
}

/// Where a read was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    Primary,
    /// The replica at this index of [`ReplicaConfig::urls`].
    Replica(usize),
}

impl ReadSource {
    /// `primary` or `replica`, for metrics.
    pub fn label(self) -> &'static str {
        match self {
            ReadSource::Primary => "primary",
            ReadSource::Replica(_) => "replica",
        }
    }
}

/// A connection for reads only, from a replica or the primary ([`Db::read_conn`]); use it
/// as a [`DbConn`]. Never write through it: a replica refuses writes, and the choice of
/// the primary is no promise.
pub struct ReadConn {
    conn: DbConn,
    source: ReadSource,
}

impl ReadConn {
    pub fn source(&self) -> ReadSource {
        self.source
    }
}

impl std::ops::Deref for ReadConn {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        &self.conn
    }
}

impl std::ops::DerefMut for ReadConn {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.conn
    }
}

/// Whether a read that failed on a replica should run again on the primary: the replica
/// went away or turned the connection down (unavailable), or cancelled the statement
/// (a conflict with recovery, reported as a serialisation failure).
pub trait ReplicaFallback {
    /// The replica failed under the read: set it aside and read from the primary.
    fn falls_back(&self) -> bool;
    /// The replica is fine but this read needs the primary (it had to write, see
    /// [`DbError::ReadOnly`]): read from the primary, keep using the replica.
    fn retries_on_primary(&self) -> bool;
}

impl ReplicaFallback for DbError {
    fn falls_back(&self) -> bool {
        matches!(self, DbError::Unavailable(_) | DbError::Conflict(_))
    }
    fn retries_on_primary(&self) -> bool {
        matches!(self, DbError::ReadOnly(_))
    }
}

impl ReplicaFallback for ApiError {
    /// The answers [`DbError::Unavailable`] and [`DbError::Conflict`] become.
    fn falls_back(&self) -> bool {
        self.status() == 503 && matches!(&*self.code, "database_unavailable" | "database_busy")
    }
    /// The answer [`DbError::ReadOnly`] becomes.
    fn retries_on_primary(&self) -> bool {
        self.status() == 503 && &*self.code == "database_read_only"
    }
}

tokio::task_local! {
    /// Set while a read runs on a replica ([`Db::read`]): the reason of a database error
    /// met there. Such an error is not the request's answer (the read runs again on the
    /// primary), so where a database error becomes an answer ([`ApiError`]'s `From`) it is
    /// noted here instead of logged as "answered 503".
    static REPLICA_READ_FAILURE: std::cell::RefCell<Option<String>>;
}

/// Inside a read on a replica, keeps `reason` for [`Db::read`] to log with the fallback
/// and answers `true`; elsewhere `false` (the caller logs the error as the answer).
pub(crate) fn note_replica_read_failure(reason: &str) -> bool {
    REPLICA_READ_FAILURE
        .try_with(|noted| *noted.borrow_mut() = Some(reason.to_owned()))
        .is_ok()
}

/// What a replica is doing, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The replica's URL, password hidden.
    pub url: String,
    /// `usable`, `lagging` (answers, but has not replayed what the primary wrote
    /// `max_lag` ago) or `down` (does not answer, or is not a replica).
    pub state: &'static str,
    /// How far it had replayed at its last successful check.
    pub replayed: Option<Lsn>,
}

/// The primary's WAL insert position after each client's last write, so that the
/// client's reads go only to a replica that has replayed it (read-your-writes).
///
/// [`InProcessWritePositions`] keeps them in this process: a client whose next read lands
/// on another node is not covered. A store shared by the nodes (Redis ...) implements
/// this trait and is handed to the gateway instead (its `Config::write_positions`).
///
/// - `record` keeps the larger of the position it had and the new one (two writes of a
///   client may finish in either order); it reports no error: a store that cannot
///   record should log it.
/// - `get`: the position the client's reads must see, `None` if it has not written (or
///   was forgotten). A store that cannot answer should say [`Lsn::MAX`] (the primary
///   serves the read), not `None`.
///
/// Keys are short opaque strings made by the gateway from the credential (an API key's
/// id, or the platform, mode and user of a session), never a secret.
pub trait WritePositions: Send + Sync + fmt::Debug {
    fn record<'a>(&'a self, client: &'a str, position: Lsn) -> BoxFuture<'a, ()>;
    fn get<'a>(&'a self, client: &'a str) -> BoxFuture<'a, Option<Lsn>>;
}

/// [`WritePositions`] in this process's memory, for at most `capacity` clients: past half
/// of it, the clients not seen since the last turn are forgotten (two generations, as the
/// write rate limiter's). A forgotten client's reads may go to a replica that has not
/// replayed its last write yet: with replicas a few milliseconds behind, that takes
/// `capacity / 2` other clients writing in those milliseconds.
#[derive(Debug)]
pub struct InProcessWritePositions {
    half: usize,
    generations: Mutex<[HashMap<String, Lsn>; 2]>,
}

impl InProcessWritePositions {
    pub const DEFAULT_CAPACITY: usize = 100_000;

    pub fn new(capacity: usize) -> InProcessWritePositions {
        InProcessWritePositions {
            half: (capacity / 2).max(1),
            generations: Mutex::new([HashMap::new(), HashMap::new()]),
        }
    }

    fn record_now(&self, client: &str, position: Lsn) {
        let mut generations = lock(&self.generations);
        let [current, previous] = &mut *generations;
        let known = current
            .get(client)
            .or_else(|| previous.get(client))
            .copied();
        let position = known.map_or(position, |known| known.max(position));
        if !current.contains_key(client) && current.len() >= self.half {
            *previous = std::mem::take(current);
        }
        current.insert(client.to_owned(), position);
    }

    fn get_now(&self, client: &str) -> Option<Lsn> {
        let generations = lock(&self.generations);
        generations[0]
            .get(client)
            .or_else(|| generations[1].get(client))
            .copied()
    }
}

impl Default for InProcessWritePositions {
    fn default() -> Self {
        InProcessWritePositions::new(InProcessWritePositions::DEFAULT_CAPACITY)
    }
}

impl WritePositions for InProcessWritePositions {
    fn record<'a>(&'a self, client: &'a str, position: Lsn) -> BoxFuture<'a, ()> {
        self.record_now(client, position);
        Box::pin(std::future::ready(()))
    }

    fn get<'a>(&'a self, client: &'a str) -> BoxFuture<'a, Option<Lsn>> {
        Box::pin(std::future::ready(self.get_now(client)))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere while holding it: the data is whole.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The replicas of one [`Db`], their watchers and the primary's sampler. The tasks stop
/// when it is dropped or closed.
pub(crate) struct Replicas {
    replicas: Vec<Arc<Replica>>,
    samples: Arc<Samples>,
    max_lag: Duration,
    /// A replica whose last successful check is older than this is not used.
    stale_after: Duration,
    next: AtomicUsize,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Replica {
    url: String,
    pool: Pool<PgConn>,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    replayed: Option<Lsn>,
    checked_at: Option<Instant>,
    /// Why it is not used, since when it is not.
    down: Option<String>,
}

/// The primary's WAL positions, oldest first, each with the instant just before it was
/// asked: the newest one at least `max_lag` old and every later one.
#[derive(Default)]
struct Samples {
    samples: Mutex<VecDeque<(Instant, Lsn)>>,
}

/// Enough for a lag budget of an hour at 10 samples a second.
const MAX_SAMPLES: usize = 40_000;

impl Samples {
    fn push(&self, at: Instant, position: Lsn, max_lag: Duration) {
        let mut samples = lock(&self.samples);
        samples.push_back((at, position));
        let cutoff = at.checked_sub(max_lag);
        while samples.len() > MAX_SAMPLES
            || (samples.len() >= 2 && cutoff.is_some_and(|cutoff| samples[1].0 <= cutoff))
        {
            samples.pop_front();
        }
    }

    /// What a replica must have replayed at `now` to be fresh: the primary's position
    /// `max_lag` ago (the oldest known while the sampler is younger than that). `None`
    /// before the first sample: no replica can be judged.
    fn reference(&self, now: Instant, max_lag: Duration) -> Option<Lsn> {
        let samples = lock(&self.samples);
        let cutoff = now.checked_sub(max_lag);
        let older = match cutoff {
            Some(cutoff) => samples.partition_point(|(at, _)| *at <= cutoff),
            None => 0,
        };
        match older {
            0 => samples.front().map(|(_, position)| *position),
            n => samples.get(n - 1).map(|(_, position)| *position),
        }
    }
}

impl Replicas {
    /// Builds a pool per replica (connections are made on first use: a replica that is
    /// down at start-up is only skipped) and starts the sampler and the watchers. A URL
    /// that does not parse, or an unreadable `sslrootcert`, stops the start.
    pub(crate) fn start(primary: Arc<PgConnector>, config: &DbConfig) -> Result<Replicas, DbError> {
        let settings = &config.replicas;
        let interval = settings.check_interval.max(Duration::from_millis(10));
        let check_timeout = (interval * 2).max(Duration::from_secs(2));
        let size = settings
            .pool_size
            .or(config.max_connections)
            .unwrap_or_else(|| super::default_pool_size(super::Backend::Postgres));
        let mut replicas = Vec::new();
        let mut connectors = Vec::new();
        for url in &settings.urls {
            let connector = Arc::new(PgConnector::new(url).map_err(|error| match error {
                DbError::Config(reason) => {
                    DbError::Config(format!("read replica {}: {reason}", super::redact(url)))
                }
                other => other,
            })?);
            let pool = super::postgres_pool(
                connector.clone(),
                config.statement_timeout,
                size,
                config.acquire_timeout,
                // A replica that does not answer is given up on sooner than the primary:
                // the read then goes to the primary.
                config.acquire_timeout.min(Duration::from_secs(2)),
            )?;
            replicas.push(Arc::new(Replica {
                url: super::redact(url),
                pool,
                health: Mutex::new(Health {
                    down: Some("not checked yet".into()),
                    ..Health::default()
                }),
            }));
            connectors.push(connector);
        }
        let samples = Arc::new(Samples::default());
        let mut tasks = vec![tokio::spawn(sample_primary(
            primary,
            samples.clone(),
            interval,
            check_timeout,
            settings.max_lag,
        ))];
        for (replica, connector) in replicas.iter().zip(connectors) {
            tasks.push(tokio::spawn(watch_replica(
                replica.clone(),
                connector,
                interval,
                check_timeout,
            )));
        }
        tracing::info!(
            replicas = replicas.len(),
            max_lag_ms = settings.max_lag.as_millis() as u64,
            "read replicas configured"
        );
        Ok(Replicas {
            replicas,
            samples,
            max_lag: settings.max_lag,
            stale_after: interval * 3 + Duration::from_secs(1),
            next: AtomicUsize::new(0),
            tasks,
        })
    }

    pub(crate) fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
        for replica in &self.replicas {
            replica.pool.close();
        }
    }

    /// The replicas that may serve a read that must see `after`, in turn from a rotating
    /// start so that the load spreads.
    fn candidates(&self, after: Option<Lsn>) -> Vec<usize> {
        let now = Instant::now();
        let Some(reference) = self.samples.reference(now, self.max_lag) else {
            return Vec::new();
        };
        let needed = after.map_or(reference, |after| after.max(reference));
        let count = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| (start + offset) % count)
            .filter(|&index| {
                let health = lock(&self.replicas[index].health);
                health.down.is_none()
                    && health
                        .checked_at
                        .is_some_and(|at| now.duration_since(at) <= self.stale_after)
                    && health.replayed.is_some_and(|replayed| replayed >= needed)
            })
            .collect()
    }

    /// A connection of a replica that may serve the read, if one can be had.
    async fn checkout(&self, after: Option<Lsn>) -> Option<(usize, Object<PgConn>)> {
        for index in self.candidates(after) {
            match self.replicas[index].pool.get().await {
                Ok(conn) => return Some((index, conn)),
                Err(error) => self.failed(index, &super::pool_error(error).to_string()),
            }
        }
        None
    }

    /// A read on the replica failed for want of it: it is not used until a check succeeds.
    fn failed(&self, index: usize, reason: &str) {
        let replica = &self.replicas[index];
        let mut health = lock(&replica.health);
        if health.down.is_none() {
            tracing::warn!(
                replica = %replica.url,
                %reason,
                "a read failed on a read replica: it is not used until it answers again; \
                 the read goes to the primary"
            );
            health.down = Some(reason.to_owned());
        }
    }

    fn statuses(&self) -> Vec<ReplicaStatus> {
        let now = Instant::now();
        let reference = self.samples.reference(now, self.max_lag);
        self.replicas
            .iter()
            .map(|replica| {
                let health = lock(&replica.health);
                let answering = health.down.is_none()
                    && health
                        .checked_at
                        .is_some_and(|at| now.duration_since(at) <= self.stale_after);
                let state = match (answering, health.replayed, reference) {
                    (false, _, _) | (_, None, _) => "down",
                    (true, Some(replayed), Some(reference)) if replayed >= reference => "usable",
                    _ => "lagging",
                };
                ReplicaStatus {
                    url: replica.url.clone(),
                    state,
                    replayed: health.replayed,
                }
            })
            .collect()
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One `SELECT` of an `X/Y` position (NULL: `None`) on a connection of the task's own.
async fn ask_position(conn: &mut PgConn, function: &str) -> Result<Option<Lsn>, String> {
    let text: Option<String> = diesel::select(diesel::dsl::sql::<Nullable<Text>>(&format!(
        "{function}::text"
    )))
    .get_result(conn)
    .await
    .map_err(|e| e.to_string())?;
    text.map(|text| text.parse::<Lsn>().map_err(|e| e.to_string()))
        .transpose()
}

/// Asks `function` on the task's connection, connecting first if it has none; a failure
/// drops the connection (the next round connects again).
async fn ask(
    connector: &PgConnector,
    conn: &mut Option<PgConn>,
    function: &str,
    timeout: Duration,
) -> Result<Option<Lsn>, String> {
    let outcome = tokio::time::timeout(timeout, async {
        if conn.is_none() {
            *conn = Some(connector.connect().await?);
        }
        match conn.as_mut() {
            Some(connection) => ask_position(connection, function).await,
            None => Err("no connection".to_owned()),
        }
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())));
    if outcome.is_err() {
        *conn = None;
    }
    outcome
}

async fn sample_primary(
    connector: Arc<PgConnector>,
    samples: Arc<Samples>,
    interval: Duration,
    timeout: Duration,
    max_lag: Duration,
) {
    let mut conn = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        let asked_at = Instant::now();
        match ask(&connector, &mut conn, "pg_current_wal_lsn()", timeout).await {
            Ok(Some(position)) => {
                if failing {
                    tracing::info!("the primary answers for its WAL position again");
                    failing = false;
                }
                samples.push(asked_at, position, max_lag);
            }
            Ok(None) => {}
            Err(reason) => {
                if !failing {
                    tracing::warn!(%reason, "cannot read the primary's WAL position; replicas are judged by the last one known");
                    failing = true;
                }
            }
        }
    }
}

async fn watch_replica(
    replica: Arc<Replica>,
    connector: Arc<PgConnector>,
    interval: Duration,
    timeout: Duration,
) {
    let mut conn = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let outcome = ask(&connector, &mut conn, "pg_last_wal_replay_lsn()", timeout).await;
        let checked_at = Instant::now();
        let mut health = lock(&replica.health);
        match outcome {
            Ok(Some(replayed)) => {
                if let Some(reason) = health.down.take() {
                    tracing::info!(replica = %replica.url, was = %reason, "read replica in use");
                }
                health.replayed = Some(replayed);
                health.checked_at = Some(checked_at);
            }
            Ok(None) => {
                let reason = "it is not in recovery (not a streaming replica)".to_owned();
                if health.down.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(replica = %replica.url, %reason, "read replica not used");
                }
                health.down = Some(reason);
            }
            Err(reason) => {
                if health.down.is_none() {
                    tracing::warn!(replica = %replica.url, %reason, "read replica not used until it answers");
                }
                health.down = Some(reason);
            }
        }
    }
}

impl Db {
    /// Whether read replicas are configured (PostgreSQL only).
    pub fn has_replicas(&self) -> bool {
        self.replicas.is_some()
    }

    /// A connection for a read that must see `after` (the caller's last write; `None`:
    /// anything fresh enough): a replica's when one is healthy, not lagging past the
    /// configured `max_lag` and has replayed `after`, the primary's otherwise. A replica
    /// whose connection cannot be had is skipped. Prefer [`Db::read`], which also runs
    /// the read again on the primary when the replica fails under it.
    pub async fn read_conn(&self, after: Option<Lsn>) -> Result<ReadConn, DbError> {
        if let Some(replicas) = &self.replicas
            && let Some((index, conn)) = replicas.checkout(after).await
        {
            return Ok(ReadConn {
                conn: DbConn::Postgres(conn),
                source: ReadSource::Replica(index),
            });
        }
        Ok(ReadConn {
            conn: self.conn().await?,
            source: ReadSource::Primary,
        })
    }

    /// Runs the read-only `f` on a connection from [`Db::read_conn`]; when it fails on a
    /// replica with an error that [falls back](ReplicaFallback) (the replica went away,
    /// or cancelled the statement), the replica is set aside until its next good check
    /// and `f` runs again on the primary. Answers `f`'s outcome (a refusal such as "not
    /// found" included) and where it was served. `f` must not write.
    pub async fn read<R, E, F>(&self, after: Option<Lsn>, mut f: F) -> (Result<R, E>, ReadSource)
    where
        F: AsyncFnMut(&mut DbConn) -> Result<R, E>,
        E: From<DbError> + ReplicaFallback,
    {
        if let Some(replicas) = &self.replicas
            && let Some((index, conn)) = replicas.checkout(after).await
        {
            let mut conn = DbConn::Postgres(conn);
            let (outcome, noted) = REPLICA_READ_FAILURE
                .scope(std::cell::RefCell::new(None), async {
                    let outcome = f(&mut conn).await;
                    let noted = REPLICA_READ_FAILURE.with(|noted| noted.borrow_mut().take());
                    (outcome, noted)
                })
                .await;
            match outcome {
                Err(error) if error.falls_back() => {
                    let reason = noted.unwrap_or_else(|| "a database error".to_owned());
                    tracing::info!(
                        replica = %replicas.replicas[index].url,
                        %reason,
                        "a read failed on a read replica; it runs again on the primary"
                    );
                    replicas.failed(index, &reason);
                }
                Err(error) if error.retries_on_primary() => {}
                outcome => return (outcome, ReadSource::Replica(index)),
            }
        }
        let outcome = match self.conn().await {
            Ok(mut conn) => f(&mut conn).await,
            Err(error) => Err(E::from(error)),
        };
        (outcome, ReadSource::Primary)
    }

    /// The primary's WAL insert position now: after a write has committed, what a replica
    /// must have replayed to show it. `None` without replicas (no query is made).
    pub async fn write_position(&self) -> Result<Option<Lsn>, DbError> {
        if self.replicas.is_none() {
            return Ok(None);
        }
        let Pools::Postgres { pool, .. } = &self.pools else {
            return Ok(None);
        };
        let mut conn = pool.get().await.map_err(super::pool_error)?;
        ask_position(&mut conn, "pg_current_wal_insert_lsn()")
            .await
            .map_err(DbError::Unavailable)
    }

    /// Each replica's state now (empty without replicas).
    pub fn replica_statuses(&self) -> Vec<ReplicaStatus> {
        self.replicas
            .as_ref()
            .map(|replicas| replicas.statuses())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_print_and_order_as_the_log() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
        assert!("0/FFFFFFFF".parse::<Lsn>().unwrap() < "1/0".parse::<Lsn>().unwrap());
        assert!("0/3000060".parse::<Lsn>().unwrap() > "0/300005F".parse::<Lsn>().unwrap());
        assert_eq!(Lsn::MAX.to_string(), "FFFFFFFF/FFFFFFFF");
        for bad in ["", "16", "/1", "1/", "G/1", "1/2/3", "123456789/0", " 1/2"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_reference_is_the_primary_position_max_lag_ago() {
        let samples = Samples::default();
        let lag = Duration::from_millis(1000);
        let start = Instant::now();
        assert_eq!(samples.reference(start, lag), None);
        for step in 0..20u64 {
            samples.push(start + Duration::from_millis(step * 100), Lsn(step), lag);
        }
        let now = start + Duration::from_millis(1900);
        // The newest sample at or before now - 1 s (900 ms: position 9).
        assert_eq!(samples.reference(now, lag), Some(Lsn(9)));
        // Older samples were pruned, but one at or before the cutoff is kept.
        assert!(lock(&samples.samples).len() <= 12);
        // Younger than max_lag: the oldest known.
        let fresh = Samples::default();
        fresh.push(start, Lsn(5), lag);
        fresh.push(start + Duration::from_millis(100), Lsn(6), lag);
        assert_eq!(
            fresh.reference(start + Duration::from_millis(150), lag),
            Some(Lsn(5))
        );
    }

    #[tokio::test]
    async fn write_positions_keep_the_largest_and_are_bounded() {
        let positions = InProcessWritePositions::new(4);
        assert_eq!(positions.get("a").await, None);
        positions.record("a", Lsn(10)).await;
        positions.record("a", Lsn(7)).await;
        assert_eq!(positions.get("a").await, Some(Lsn(10)));
        for client in ["b", "c", "d", "e", "f"] {
            positions.record(client, Lsn(1)).await;
        }
        // Two generations of two: "a" has been forgotten, the latest are kept.
        assert_eq!(positions.get("a").await, None);
        assert_eq!(positions.get("f").await, Some(Lsn(1)));
        assert_eq!(positions.get("e").await, Some(Lsn(1)));
    }

    #[test]
    fn api_errors_of_an_unavailable_database_fall_back() {
        assert!(ApiError::from(DbError::Unavailable("gone".into())).falls_back());
        assert!(ApiError::from(DbError::Conflict("recovery".into())).falls_back());
        assert!(!ApiError::from(DbError::NotFound).falls_back());
        assert!(DbError::Unavailable("x".into()).falls_back());
        assert!(!DbError::NotFound.falls_back());
    }

    #[tokio::test]
    async fn a_database_error_on_a_replica_is_noted_for_the_fallback_not_logged_as_the_answer() {
        // Outside a replica read the error is the answer: the caller logs it.
        assert!(!note_replica_read_failure("gone"));
        let noted = REPLICA_READ_FAILURE
            .scope(std::cell::RefCell::new(None), async {
                let answer = ApiError::from(DbError::Unavailable("replica gone".into()));
                assert!(answer.falls_back());
                REPLICA_READ_FAILURE.with(|noted| noted.borrow_mut().take())
            })
            .await;
        assert_eq!(noted.as_deref(), Some("replica gone"));
    }
}
