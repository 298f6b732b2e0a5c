//! State every node shares through Redis, when `REDIS_URL` is set: rate-limit budgets,
//! and each client's last write position for reading its own writes from replicas
//! ([`SharedQuota::write_positions`]).
//!
//! A limit kept in each process lets N nodes behind a balancer give a client N times its
//! budget. With `REDIS_URL`, every check is one Redis script run instead (a token bucket
//! or a fixed window, read and updated atomically on the Redis server, timed by the Redis
//! server's clock so nodes' clocks do not matter), and all nodes count against the same
//! budget. Why Redis and not PostgreSQL: a check is made on every write, and in the
//! database it would be one more row update (and WAL record) per write, on the write path
//! the database is already the ceiling of; docs/SCALING.md gives the measured cost of
//! each.
//!
//! Redis failing must not take the API down: a check that errors or takes longer than
//! [`RESPONSE_TIMEOUT`] is answered by the node's own in-process limiter, and Redis is
//! left alone for [`PAUSE_AFTER_FAILURE`] before it is tried again (so a dead Redis costs
//! requests nothing but a flag read). Limits are then per node until Redis is back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use feria_kernel::db::{Lsn, WritePositions};
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The longest a check waits for Redis before the node's own limiter answers.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long Redis is not asked after a failure.
pub const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// Prefix of the rate limits' keys.
const PREFIX: &str = "feria:rl:";
/// Prefix of the write positions' keys.
const POSITIONS: &str = "feria:wp:";

/// A token bucket: refills at `ARGV[1]` tokens a second up to `ARGV[2]`, takes one if it
/// can. Returns `{allowed, tokens left as a string}` (a Lua number would be truncated).
const TOKEN_BUCKET: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate) * 1000) + 1000)
return {allowed, tostring(tokens)}
";

/// A fixed window of `ARGV[1]` milliseconds: counts one request. Returns `{count in the
/// window, milliseconds until it ends}`.
const FIXED_WINDOW: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
";

/// Keeps the larger of the stored and the given WAL position (16 hex digits, so that
/// string order is number order; a Lua number would round a 64-bit position) for
/// `ARGV[2]` milliseconds.
const RAISE_POSITION: &str = r"
local current = redis.call('GET', KEYS[1])
if (not current) or current < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

/// How long a client's last write position is kept: far past any replica lag a read
/// would accept (`REPLICA_MAX_LAG_MS`), after which the lag rule alone keeps the client
/// off a replica that has not replayed it.
const POSITION_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis is paused after a failure")]
    Paused,
    #[error("Redis answered {0:?}, not a number")]
    Answer(String),
}

/// The connection to the Redis that holds every node's limits.
pub struct SharedQuota {
    connection: ConnectionManager,
    bucket: redis::Script,
    window: redis::Script,
    position: redis::Script,
    /// Set after a failure: Redis is not asked again before this instant.
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for SharedQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedQuota").finish_non_exhaustive()
    }
}

impl SharedQuota {
    /// A client of the Redis at `url` (`redis://`, `unix://`). The URL is checked
    /// now; the connection is made on first use and remade after a failure, so a node
    /// starts (with its own limits) while Redis is down.
    pub fn new(url: &str) -> Result<SharedQuota, QuotaError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(PAUSE_AFTER_FAILURE);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(SharedQuota {
            connection,
            bucket: redis::Script::new(TOKEN_BUCKET),
            window: redis::Script::new(FIXED_WINDOW),
            position: redis::Script::new(RAISE_POSITION),
            paused_until: Mutex::new(None),
        })
    }

    /// Takes a token from the bucket `key` (refilled at `per_second`, holding at most
    /// `burst`): whether one was taken, and the tokens left.
    pub async fn take_token(
        &self,
        key: &str,
        per_second: f64,
        burst: f64,
    ) -> Result<(bool, f64), QuotaError> {
        let mut invocation = self.bucket.prepare_invoke();
        invocation
            .key(format!("{PREFIX}{key}"))
            .arg(per_second)
            .arg(burst);
        let (allowed, tokens): (i64, String) = self
            .guarded(async {
                let mut connection = self.connection.clone();
                invocation.invoke_async(&mut connection).await
            })
            .await?;
        let tokens = tokens
            .parse::<f64>()
            .map_err(|_| QuotaError::Answer(tokens.clone()))?;
        Ok((allowed == 1, tokens))
    }

    /// Counts one request in the fixed window `key` of length `window`: the count so far
    /// (this one included) and the time until the window ends.
    pub async fn count(&self, key: &str, window: Duration) -> Result<(u64, Duration), QuotaError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.window.prepare_invoke();
        invocation.key(format!("{PREFIX}{key}")).arg(window_ms);
        let (count, left_ms): (u64, i64) = self
            .guarded(async {
                let mut connection = self.connection.clone();
                invocation.invoke_async(&mut connection).await
            })
            .await?;
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(window_ms));
        Ok((count, left))
    }

    /// Raises the client's last write position to `position`.
    pub async fn record_position(&self, client: &str, position: Lsn) -> Result<(), QuotaError> {
        let mut invocation = self.position.prepare_invoke();
        invocation
            .key(format!("{POSITIONS}{client}"))
            .arg(format!("{:016x}", position.0))
            .arg(u64::try_from(POSITION_TTL.as_millis()).unwrap_or(u64::MAX));
        let _: i64 = self
            .guarded(async {
                let mut connection = self.connection.clone();
                invocation.invoke_async(&mut connection).await
            })
            .await?;
        Ok(())
    }

    /// The client's last write position, if one is kept.
    pub async fn position(&self, client: &str) -> Result<Option<Lsn>, QuotaError> {
        let key = format!("{POSITIONS}{client}");
        let stored: Option<String> = self
            .guarded(async {
                let mut connection = self.connection.clone();
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        stored
            .map(|hex| {
                u64::from_str_radix(&hex, 16)
                    .map(Lsn)
                    .map_err(|_| QuotaError::Answer(hex.clone()))
            })
            .transpose()
    }

    /// Runs `call` unless Redis is paused, within [`RESPONSE_TIMEOUT`]; a failure pauses
    /// Redis for [`PAUSE_AFTER_FAILURE`] and is logged once per pause.
    async fn guarded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, QuotaError> {
        if self.paused() {
            return Err(QuotaError::Paused);
        }
        let outcome = match tokio::time::timeout(RESPONSE_TIMEOUT, call).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => QuotaError::Redis(error),
            Err(_) => QuotaError::Timeout(RESPONSE_TIMEOUT),
        };
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if paused.is_none_or(|until| until <= Instant::now()) {
            tracing::warn!(error = %outcome, "shared rate limits unavailable; this node counts alone for now");
        }
        *paused = Some(Instant::now() + PAUSE_AFTER_FAILURE);
        Err(outcome)
    }

    fn paused(&self) -> bool {
        self.paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|until| until > Instant::now())
    }
}

/// Each client's last write position kept in Redis, so that a client's reads stay off a
/// replica that has not replayed its write whichever node served the write (the
/// in-process store knows only this node's writes). A Redis that cannot answer sends the
/// client's reads to the primary ([`Lsn::MAX`]): never a stale read.
#[derive(Debug)]
pub struct SharedWritePositions(pub Arc<SharedQuota>);

impl WritePositions for SharedWritePositions {
    fn record<'a>(&'a self, client: &'a str, position: Lsn) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // A failure is logged by `guarded`; the next read of this client goes to
            // the primary only if Redis is still down (`get`).
            let _ = self.0.record_position(client, position).await;
        })
    }

    fn get<'a>(&'a self, client: &'a str) -> BoxFuture<'a, Option<Lsn>> {
        Box::pin(async move { self.0.position(client).await.unwrap_or(Some(Lsn::MAX)) })
    }
}
