//! The delivery worker: runs inside the server, polling the database.
//!
//! Each round it (0) numbers the events committed since the last round
//! ([`sequence_all`](crate::outbox::sequence_all)), (1) fans new events out — one delivery row per matching enabled endpoint
//! of the event's platform and mode, marking the event done in the same transaction —
//! (2) claims due deliveries with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite:
//! the `BEGIN IMMEDIATE` write lock serialises claimers), (3) POSTs each one with no
//! database transaction open, and (4) records the attempt, guarded by the lease token so
//! a worker whose lease ran out cannot overwrite another's result. Several servers may
//! run workers on one database: a claimed attempt is made by one of them only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::sealed::Keyring;
use feria_kernel::{Db, DbConn, DbError, Tenant, Timestamp, with_conn};
use serde::Serialize;

use crate::deliveries::{AttemptRow, DeliveryRow, FAILED, PENDING, SUCCEEDED};
use crate::endpoints::{AttemptId, DeliveryId, EndpointObject, EndpointRow};
use crate::outbox::EventRow;
use crate::schema::{events, webhook_attempts, webhook_deliveries, webhook_endpoints};
use crate::{signature, ssrf};

/// Largest response-body prefix kept per attempt.
pub const RESPONSE_PREFIX_BYTES: usize = 1024;

/// How the worker delivers; parsed from configuration by the gateway.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// How often the worker looks for work.
    pub poll_interval: Duration,
    /// Delay before the first retry; doubles with each further attempt ...
    pub retry_base: Duration,
    /// ... up to this.
    pub retry_max: Duration,
    /// No retry is scheduled later than this after the delivery was created.
    pub retry_window: Duration,
    pub connect_timeout: Duration,
    /// Whole-request limit (connect, send, and reading the response prefix).
    pub timeout: Duration,
    /// An endpoint is disabled when it has failed at least this many attempts in a row ...
    pub disable_after_failures: i64,
    /// ... and its first failure since the last success is at least this old.
    pub disable_after: Duration,
    /// Allow loopback and private targets, and plain http (development and tests only).
    pub allow_private_targets: bool,
    /// Deliveries claimed per round.
    pub batch_size: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(6 * 60 * 60),
            retry_window: Duration::from_secs(3 * 24 * 60 * 60),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            disable_after_failures: 20,
            disable_after: Duration::from_secs(3 * 24 * 60 * 60),
            allow_private_targets: false,
            batch_size: 50,
        }
    }
}

/// A `std` duration as a `time` duration (saturating).
pub(crate) fn duration(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// The delay before attempt `attempt + 1`, after `attempt` failed (1-based):
/// `base × 2^(attempt-1)`, capped at `max`.
pub fn retry_delay(settings: &WebhookSettings, attempt: i64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(40);
    settings
        .retry_base
        .checked_mul(2_u32.saturating_pow(exponent.min(31)))
        .unwrap_or(settings.retry_max)
        .min(settings.retry_max)
}

/// Told when the worker disables an endpoint (the gateway mails the platform's owners).
pub type DisabledNotifier =
    Arc<dyn Fn(Tenant, EndpointObject) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The delivery worker. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    db: Db,
    settings: Arc<WebhookSettings>,
    client: reqwest::Client,
    notifier: Option<DisabledNotifier>,
    /// Opens the endpoints' sealed signing secrets.
    keys: Keyring,
}

/// A delivery this worker holds the lease of, with what it needs to send it.
struct Claimed {
    delivery: DeliveryRow,
    endpoint: EndpointRow,
    event: EventRow,
    token: String,
}

/// The envelope POSTed to endpoints (the event object of the log API).
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    created: Timestamp,
    sequence: i64,
    mode: feria_kernel::Mode,
    data: EnvelopeData<'a>,
}

#[derive(Serialize)]
struct EnvelopeData<'a> {
    object: &'a serde_json::Value,
}

/// What one HTTP attempt came to.
struct Outcome {
    status_code: Option<i32>,
    error: Option<String>,
    body: Option<String>,
}

impl Outcome {
    fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Worker {
    pub fn new(
        db: Db,
        settings: WebhookSettings,
        notifier: Option<DisabledNotifier>,
        keys: Keyring,
    ) -> Result<Worker, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("Feria-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private_targets {
            builder = builder.dns_resolver(Arc::new(ssrf::GuardedResolver));
        }
        Ok(Worker {
            db,
            settings: Arc::new(settings),
            client: builder.build()?,
            notifier,
            keys,
        })
    }

    /// Runs rounds every poll interval for as long as the task lives.
    pub async fn run(self) {
        let mut interval = tokio::time::interval(self.settings.poll_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(error) = self.round().await {
                tracing::warn!(%error, "webhook round failed; retrying next round");
            }
        }
    }

    /// One round: number new events, fan out, claim, deliver (concurrently), record.
    /// Returns the number of attempts made.
    pub async fn round(&self) -> Result<usize, DbError> {
        crate::outbox::sequence_all(&mut self.db.conn().await?).await?;
        self.fan_out().await?;
        let claimed = self.claim().await?;
        let count = claimed.len();
        let mut tasks = tokio::task::JoinSet::new();
        for item in claimed {
            let worker = self.clone();
            tasks.spawn(async move { worker.deliver(item).await });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "recording a webhook attempt failed"),
                Err(error) => tracing::error!(%error, "a webhook delivery task failed"),
            }
        }
        Ok(count)
    }

    /// Makes the deliveries of events not yet fanned out: one transaction per batch of
    /// events (not per event), which marks them, reads the endpoints of their tenants
    /// once, and writes every delivery with one insert. Several workers take disjoint
    /// batches (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the write lock).
    async fn fan_out(&self) -> Result<(), DbError> {
        let mut conn = self.db.conn().await?;
        let window = duration(self.settings.retry_window);
        let batch = self.settings.batch_size * 4;
        loop {
            let marked = conn
                .transaction(async |c| -> Result<usize, DbError> {
                    let pending: Vec<EventRow> = with_conn!(c,
                        sqlite: c => {
                            events::table
                                .filter(events::fanned_out.eq(false))
                                .filter(events::sequence.gt(0_i64))
                                .order((events::created_at.asc(), events::id.asc()))
                                .limit(batch)
                                .select(EventRow::as_select())
                                .load(c)
                                .await
                        },
                        postgres: c => {
                            events::table
                                .filter(events::fanned_out.eq(false))
                                // Numbered events only: a delivery carries the sequence.
                                .filter(events::sequence.gt(0_i64))
                                .order((events::created_at.asc(), events::id.asc()))
                                .limit(batch)
                                .select(EventRow::as_select())
                                .for_update()
                                .skip_locked()
                                .load(c)
                                .await
                        },
                    )?;
                    if pending.is_empty() {
                        return Ok(0);
                    }
                    let ids: Vec<&str> = pending.iter().map(|e| e.id.as_str()).collect();
                    with_conn!(c, c => {
                        diesel::update(events::table.filter(events::id.eq_any(&ids)))
                            .set(events::fanned_out.eq(true))
                            .execute(c)
                            .await
                    })?;
                    let platforms: Vec<&str> = {
                        let mut p: Vec<&str> =
                            pending.iter().map(|e| e.platform_id.as_str()).collect();
                        p.sort_unstable();
                        p.dedup();
                        p
                    };
                    let endpoints: Vec<EndpointRow> = with_conn!(c, c => {
                        webhook_endpoints::table
                            .filter(webhook_endpoints::platform_id.eq_any(&platforms))
                            .filter(webhook_endpoints::enabled.eq(true))
                            .select(EndpointRow::as_select())
                            .load(c)
                            .await
                    })?;
                    let now = Timestamp::now();
                    let rows: Vec<DeliveryRow> = pending
                        .iter()
                        .flat_map(|event| {
                            endpoints
                                .iter()
                                .filter(|e| {
                                    e.platform_id == event.platform_id
                                        && e.mode == event.mode
                                        && e.wants(&event.event_type)
                                })
                                .map(move |endpoint| DeliveryRow {
                                    id: DeliveryId::new(),
                                    platform_id: event.platform_id.clone(),
                                    mode: event.mode,
                                    endpoint_id: endpoint.id.clone(),
                                    event_id: event.id.clone(),
                                    status: PENDING.to_owned(),
                                    attempts: 0,
                                    next_attempt_at: Some(now),
                                    lease_expires_at: None,
                                    lease_token: None,
                                    deadline_at: now.add(window),
                                    created_at: now,
                                    updated_at: now,
                                })
                        })
                        .collect();
                    with_conn!(c,
                        sqlite: c => async {
                            for row in &rows {
                                diesel::insert_into(webhook_deliveries::table)
                                    .values(row)
                                    .execute(c)
                                    .await?;
                            }
                            Ok::<_, diesel::result::Error>(())
                        }
                        .await,
                        postgres: c => {
                            if rows.is_empty() {
                                Ok(())
                            } else {
                                diesel::insert_into(webhook_deliveries::table)
                                    .values(&rows)
                                    .execute(c)
                                    .await
                                    .map(|_| ())
                            }
                        },
                    )?;
                    Ok(pending.len())
                })
                .await?;
            // A full batch: there may be more.
            if i64::try_from(marked).unwrap_or(i64::MAX) < batch {
                return Ok(());
            }
        }
    }

    /// Takes the lease of due deliveries of enabled endpoints.
    async fn claim(&self) -> Result<Vec<Claimed>, DbError> {
        let mut conn = self.db.conn().await?;
        let now = Timestamp::now();
        // Long enough for the whole HTTP call; a crashed worker's lease runs out after it.
        let lease_until = now.add(duration(
            self.settings.timeout + self.settings.connect_timeout + Duration::from_secs(30),
        ));
        let token = feria_kernel::secret::random_token("lease_");
        let limit = self.settings.batch_size;
        conn.transaction(async |c| -> Result<Vec<Claimed>, DbError> {
            let enabled = webhook_endpoints::table
                .filter(webhook_endpoints::enabled.eq(true))
                .select(webhook_endpoints::id);
            let due = webhook_deliveries::table
                .filter(webhook_deliveries::status.eq(PENDING))
                .filter(webhook_deliveries::next_attempt_at.le(now))
                .filter(
                    webhook_deliveries::lease_expires_at
                        .is_null()
                        .or(webhook_deliveries::lease_expires_at.lt(now)),
                )
                .filter(webhook_deliveries::endpoint_id.eq_any(enabled))
                .order(webhook_deliveries::next_attempt_at.asc())
                .limit(limit)
                .select(webhook_deliveries::id);
            // Backend-specific: row locking. SQLite's BEGIN IMMEDIATE already excludes
            // other writers; PostgreSQL skips rows another worker is claiming.
            let ids: Vec<String> = with_conn!(c,
                sqlite: c => due.load(c).await,
                postgres: c => due.for_update().skip_locked().load(c).await,
            )?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            with_conn!(c, c => {
                diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids)))
                    .set((
                        webhook_deliveries::lease_expires_at.eq(Some(lease_until)),
                        webhook_deliveries::lease_token.eq(Some(&token)),
                        webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1_i64),
                        webhook_deliveries::updated_at.eq(now),
                    ))
                    .execute(c)
                    .await
            })?;
            let rows: Vec<(DeliveryRow, EndpointRow, EventRow)> = with_conn!(c, c => {
                webhook_deliveries::table
                    .inner_join(
                        webhook_endpoints::table
                            .on(webhook_endpoints::id.eq(webhook_deliveries::endpoint_id)),
                    )
                    .inner_join(events::table.on(events::id.eq(webhook_deliveries::event_id)))
                    .filter(webhook_deliveries::id.eq_any(&ids))
                    .select((
                        DeliveryRow::as_select(),
                        EndpointRow::as_select(),
                        EventRow::as_select(),
                    ))
                    .load(c)
                    .await
            })?;
            Ok(rows
                .into_iter()
                .map(|(delivery, endpoint, event)| Claimed {
                    delivery,
                    endpoint,
                    event,
                    token: token.clone(),
                })
                .collect())
        })
        .await
    }

    /// Sends one claimed delivery and records the outcome.
    async fn deliver(&self, claimed: Claimed) -> Result<(), DbError> {
        let started = Instant::now();
        let outcome = self.attempt(&claimed).await;
        let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let disabled = self.record(&claimed, outcome, elapsed).await?;
        if let (Some(endpoint), Some(notify)) = (disabled, &self.notifier) {
            let tenant = Tenant::new(claimed.endpoint.platform_id.clone(), claimed.endpoint.mode);
            notify(tenant, endpoint).await;
        }
        Ok(())
    }

    async fn attempt(&self, claimed: &Claimed) -> Outcome {
        let failed = |error: String| Outcome {
            status_code: None,
            error: Some(error),
            body: None,
        };
        let url = match ssrf::parse_url(&claimed.endpoint.url, self.settings.allow_private_targets)
        {
            Ok(url) => url,
            Err(message) => return failed(format!("refused: the URL {message}")),
        };
        if let Err(message) = ssrf::check_target(&url, self.settings.allow_private_targets).await {
            return failed(format!("refused: {message}"));
        }
        let raw: serde_json::Value = match serde_json::from_str(&claimed.event.data) {
            Ok(raw) => raw,
            Err(error) => return failed(format!("the event's data is not JSON: {error}")),
        };
        let envelope = Envelope {
            id: claimed.event.id.as_str(),
            event_type: &claimed.event.event_type,
            created: claimed.event.created_at,
            sequence: claimed.event.sequence,
            mode: claimed.event.mode,
            data: EnvelopeData { object: &raw },
        };
        let body = match serde_json::to_vec(&envelope) {
            Ok(body) => body,
            Err(error) => return failed(format!("cannot serialise the event: {error}")),
        };
        let secret = match claimed.endpoint.secret(&self.keys) {
            Ok(secret) => secret,
            Err(error) => return failed(format!("cannot open the signing secret: {error}")),
        };
        let timestamp = Timestamp::now().unix();
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Feria-Event-Id", claimed.event.id.as_str())
            .header(
                "Feria-Signature",
                signature::header(&secret, timestamp, &body),
            )
            .body(body);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return failed(describe(&error)),
        };
        let status = i32::from(response.status().as_u16());
        let mut prefix: Vec<u8> = Vec::new();
        let mut error = None;
        while prefix.len() < RESPONSE_PREFIX_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => prefix.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    // A 2xx whose body never ends (or breaks) still counts as received;
                    // anything else keeps its status and notes the error.
                    if !(200..300).contains(&status) {
                        error = Some(describe(&e));
                    }
                    break;
                }
            }
        }
        prefix.truncate(RESPONSE_PREFIX_BYTES);
        let mut text = String::from_utf8_lossy(&prefix).into_owned();
        while text.len() > RESPONSE_PREFIX_BYTES {
            text.pop();
        }
        if error.is_none() && !(200..300).contains(&status) {
            error = Some(format!("the endpoint answered {status}"));
        }
        Outcome {
            status_code: Some(status),
            error,
            body: Some(text),
        }
    }

    /// Records an attempt's outcome, if this worker still holds the lease. Returns the
    /// endpoint when this failure disabled it.
    async fn record(
        &self,
        claimed: &Claimed,
        outcome: Outcome,
        duration_ms: i64,
    ) -> Result<Option<EndpointObject>, DbError> {
        let mut conn = self.db.conn().await?;
        let settings = self.settings.clone();
        conn.transaction(async |c| -> Result<Option<EndpointObject>, DbError> {
            let now = Timestamp::now();
            let attempt = claimed.delivery.attempts;
            let success = outcome.succeeded();
            let next_retry = (!success)
                .then(|| now.add(duration(retry_delay(&settings, attempt))))
                .filter(|next| *next <= claimed.delivery.deadline_at);
            let status = match (success, next_retry) {
                (true, _) => SUCCEEDED,
                (false, Some(_)) => PENDING,
                (false, None) => FAILED,
            };
            let updated = with_conn!(c, c => {
                diesel::update(
                    webhook_deliveries::table
                        .find(&claimed.delivery.id)
                        .filter(webhook_deliveries::lease_token.eq(&claimed.token)),
                )
                .set((
                    webhook_deliveries::status.eq(status),
                    webhook_deliveries::next_attempt_at.eq(next_retry),
                    webhook_deliveries::lease_expires_at.eq(None::<Timestamp>),
                    webhook_deliveries::lease_token.eq(None::<String>),
                    webhook_deliveries::updated_at.eq(now),
                ))
                .execute(c)
                .await
            })?;
            if updated == 0 {
                // The lease ran out and another worker took over, or the delivery was
                // redelivered by hand meanwhile: that attempt's record wins.
                tracing::warn!(delivery = %claimed.delivery.id, "webhook lease lost; attempt not recorded");
                return Ok(None);
            }
            let row = AttemptRow {
                id: AttemptId::new(),
                platform_id: claimed.delivery.platform_id.clone(),
                mode: claimed.delivery.mode,
                endpoint_id: claimed.endpoint.id.clone(),
                delivery_id: claimed.delivery.id.clone(),
                event_id: claimed.event.id.clone(),
                attempt,
                status_code: outcome.status_code,
                error: outcome.error.clone(),
                duration_ms,
                response_body: outcome.body.clone(),
                next_retry_at: next_retry,
                created_at: now,
            };
            with_conn!(c, c => {
                diesel::insert_into(webhook_attempts::table).values(&row).execute(c).await
            })?;
            if success {
                with_conn!(c, c => {
                    diesel::update(webhook_endpoints::table.find(&claimed.endpoint.id))
                        .set((
                            webhook_endpoints::consecutive_failures.eq(0_i64),
                            webhook_endpoints::failing_since.eq(None::<Timestamp>),
                        ))
                        .execute(c)
                        .await
                })?;
                return Ok(None);
            }
            failed_attempt(c, &settings, &claimed.endpoint.id, now, &self.keys).await
        })
        .await
    }
}

/// Counts a failed attempt against its endpoint and disables the endpoint when it has
/// failed long and often enough. Returns the endpoint when this call disabled it.
async fn failed_attempt(
    c: &mut DbConn,
    settings: &WebhookSettings,
    endpoint: &crate::endpoints::EndpointId,
    now: Timestamp,
    keys: &Keyring,
) -> Result<Option<EndpointObject>, DbError> {
    let current: EndpointRow = with_conn!(c, c => {
        webhook_endpoints::table
            .find(endpoint)
            .select(EndpointRow::as_select())
            .first(c)
            .await
    })?;
    let failures = current.consecutive_failures + 1;
    let since = current.failing_since.unwrap_or(now);
    let disable = current.enabled
        && failures >= settings.disable_after_failures
        && now.since(since) >= duration(settings.disable_after);
    let reason = disable.then(|| {
        format!("disabled automatically after {failures} failed attempts in a row since {since}")
    });
    with_conn!(c, c => {
        diesel::update(webhook_endpoints::table.find(endpoint))
            .set((
                webhook_endpoints::consecutive_failures.eq(failures),
                webhook_endpoints::failing_since.eq(Some(since)),
            ))
            .execute(c)
            .await
    })?;
    let Some(reason) = reason else {
        return Ok(None);
    };
    // Conditional: of two workers failing at once, one disables (and notifies).
    let switched = with_conn!(c, c => {
        diesel::update(
            webhook_endpoints::table
                .find(endpoint)
                .filter(webhook_endpoints::enabled.eq(true)),
        )
        .set((
            webhook_endpoints::enabled.eq(false),
            webhook_endpoints::disabled_reason.eq(Some(&reason)),
            webhook_endpoints::updated_at.eq(now),
        ))
        .execute(c)
        .await
    })?;
    if switched == 0 {
        return Ok(None);
    }
    tracing::warn!(%endpoint, %reason, "webhook endpoint disabled");
    let row: EndpointRow = with_conn!(c, c => {
        webhook_endpoints::table
            .find(endpoint)
            .select(EndpointRow::as_select())
            .first(c)
            .await
    })?;
    Ok(Some(row.to_object(keys, false)))
}

/// An HTTP client error in a sentence, without the URL's query string.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_redirect() {
        "redirect refused"
    } else if error.is_body() || error.is_decode() {
        "the response body could not be read"
    } else {
        "request failed"
    };
    let mut message = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_base_up_to_the_cap() {
        let settings = WebhookSettings::default();
        assert_eq!(retry_delay(&settings, 1), Duration::from_secs(30));
        assert_eq!(retry_delay(&settings, 2), Duration::from_secs(60));
        assert_eq!(retry_delay(&settings, 3), Duration::from_secs(120));
        assert_eq!(retry_delay(&settings, 10), Duration::from_secs(15_360));
        assert_eq!(retry_delay(&settings, 11), Duration::from_secs(6 * 60 * 60));
        assert_eq!(
            retry_delay(&settings, 1000),
            Duration::from_secs(6 * 60 * 60)
        );
    }
}
