//! Prometheus metrics of one server: requests by route and status, latency histograms,
//! database pool use, the process (`process_*`), and the business: sign-ins, purchases,
//! failed calls to Stripe and chain nodes, the webhook and renewal backlogs. Each server
//! owns its registry (no globals), so several servers in one process — as in the test
//! suite — keep separate counts.
//!
//! Where each business number comes from, and why:
//! - counters the gateway moves where it calls the domain (`feria_signins_total` at the
//!   sign-in route, `feria_purchases_total` at the purchase route, after the domain said
//!   it happened): the domain crates know nothing of metrics;
//! - `feria_provider_errors_total`: the Stripe and JSON-RPC clients report each failed call
//!   to a [`ProviderErrors`] handle (defined in the kernel, no metrics library) that the
//!   server wires to this registry — a global recorder would mix the counts of servers
//!   that share a process;
//! - gauges read from the database at scrape time (`feria_webhook_deliveries`,
//!   `feria_subscription_renewals`), one grouped count each, the queries owned by the
//!   crates that own the tables: they are true whichever server (of several on one
//!   database) did the work, and survive restarts.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use feria_kernel::provider_errors::ProviderErrors;
use feria_kernel::{Db, Timestamp};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Distinct `code` values kept per provider; later ones are counted as `other`, so that a
/// provider sending ever new codes cannot grow the exposition without bound.
const MAX_CODES_PER_PROVIDER: usize = 32;

/// The marketplaces `feria_purchases_total` counts purchases of.
#[derive(Debug, Clone, Copy)]
pub enum Marketplace {
    /// Character templates bought with credits (`POST /marketplace/{id}/purchase`).
    Templates,
}

impl Marketplace {
    fn label(self) -> &'static str {
        match self {
            Marketplace::Templates => "templates",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    signins: IntCounter,
    purchases: IntCounterVec,
    provider_errors: IntCounterVec,
    /// The codes seen so far, per provider (bounded by [`MAX_CODES_PER_PROVIDER`]).
    provider_codes: Arc<Mutex<HashSet<(&'static str, String)>>>,
    webhook_deliveries: IntGaugeVec,
    subscription_renewals: IntGaugeVec,
    reads: IntCounterVec,
    replicas: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "feria_http_requests_total",
                "HTTP requests served, by route pattern and status.",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "feria_http_request_duration_seconds",
                "HTTP request latency, by route pattern.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["method", "route"],
        )?;
        let pool = IntGaugeVec::new(
            Opts::new(
                "feria_db_pool_connections",
                "Database pool connections, by state.",
            ),
            &["state"],
        )?;
        let signins = IntCounter::new(
            "feria_signins_total",
            "Successful sign-ins (a sign-in code accepted), since the server started.",
        )?;
        let purchases = IntCounterVec::new(
            Opts::new(
                "feria_purchases_total",
                "Purchases made (replays of an Idempotency-Key not counted), by marketplace, \
                 since the server started.",
            ),
            &["marketplace"],
        )?;
        let provider_errors = IntCounterVec::new(
            Opts::new(
                "feria_provider_errors_total",
                "Failed calls to outside providers (stripe, chain_rpc), by the provider's \
                 error code or the transport failure, since the server started.",
            ),
            &["provider", "code"],
        )?;
        let webhook_deliveries = IntGaugeVec::new(
            Opts::new(
                "feria_webhook_deliveries",
                "Webhook deliveries waiting to be made (pending) or given up (failed), \
                 read from the database at scrape time.",
            ),
            &["state"],
        )?;
        let subscription_renewals = IntGaugeVec::new(
            Opts::new(
                "feria_subscription_renewals",
                "Subscription renewals owed now and not yet charged (due), and subscriptions \
                 whose last renewal could not be charged (failed), read from the database at \
                 scrape time.",
            ),
            &["state"],
        )?;
        let reads = IntCounterVec::new(
            Opts::new(
                "feria_db_reads_total",
                "Read-only requests' database work, by where it was served (replica or \
                 primary), since the server started.",
            ),
            &["served_by"],
        )?;
        let replicas = IntGaugeVec::new(
            Opts::new(
                "feria_db_replicas",
                "Read replicas by state: usable, lagging (past REPLICA_MAX_LAG_MS) or down.",
            ),
            &["state"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(reads.clone()))?;
        registry.register(Box::new(replicas.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        registry.register(Box::new(signins.clone()))?;
        registry.register(Box::new(purchases.clone()))?;
        registry.register(Box::new(provider_errors.clone()))?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        registry.register(Box::new(subscription_renewals.clone()))?;
        // The process's memory, CPU time, open files and threads, read from /proc at
        // scrape time (Linux only; elsewhere the metrics are absent).
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            pool,
            signins,
            purchases,
            provider_errors,
            provider_codes: Arc::default(),
            webhook_deliveries,
            subscription_renewals,
            reads,
            replicas,
        })
    }

    /// Records one finished request. `route` is the matched pattern (`/api/v1/products/{id}`),
    /// never the raw path, so label cardinality stays bounded.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// One read-only request's database work, served by `source`.
    pub fn read_served(&self, source: feria_kernel::db::ReadSource) {
        self.reads.with_label_values(&[source.label()]).inc();
    }

    /// One successful sign-in.
    pub fn signed_in(&self) {
        self.signins.inc();
    }

    /// One purchase made (not a replay).
    pub fn purchased(&self, marketplace: Marketplace) {
        self.purchases
            .with_label_values(&[marketplace.label()])
            .inc();
    }

    /// The handle the Stripe and JSON-RPC clients report failed calls to: each increments
    /// `feria_provider_errors_total{provider, code}` here.
    pub fn provider_errors(&self) -> ProviderErrors {
        let counter = self.provider_errors.clone();
        let codes = self.provider_codes.clone();
        ProviderErrors::new(move |provider, code| {
            let kept = match codes.lock() {
                Ok(mut seen) => {
                    let key = (provider, code.to_owned());
                    if seen.contains(&key) {
                        true
                    } else if seen.iter().filter(|(p, _)| *p == provider).count()
                        < MAX_CODES_PER_PROVIDER
                    {
                        seen.insert(key);
                        true
                    } else {
                        false
                    }
                }
                // A panic elsewhere while holding the lock: count, bounded.
                Err(_) => false,
            };
            let code = if kept { code } else { "other" };
            counter.with_label_values(&[provider, code]).inc();
        })
    }

    /// The text exposition, with the pool gauges and the backlogs read now. A backlog the
    /// database does not answer for is left out (logged), not shown stale: the rest still
    /// renders, so a scrape during a database outage still shows the process and pool.
    /// `now` is the server's clock (the instant renewals are due by).
    pub async fn render(&self, db: &Db, now: Timestamp) -> Result<String, prometheus::Error> {
        let status = db.pool_status();
        for (state, value) in [
            ("max", status.max_size),
            ("open", status.size),
            ("idle", status.idle),
            ("in_use", status.in_use),
            ("waiting", status.waiting),
        ] {
            self.pool
                .with_label_values(&[state])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        if db.has_replicas() {
            let statuses = db.replica_statuses();
            for state in ["usable", "lagging", "down"] {
                let count = statuses.iter().filter(|s| s.state == state).count();
                self.replicas
                    .with_label_values(&[state])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        self.read_backlogs(db, now).await;
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    async fn read_backlogs(&self, db: &Db, now: Timestamp) {
        let mut conn = match db.conn().await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "metrics: no database connection for the backlogs");
                self.webhook_deliveries.reset();
                self.subscription_renewals.reset();
                return;
            }
        };
        match feria_events::deliveries::backlog(&mut conn).await {
            Ok(backlog) => {
                self.webhook_deliveries
                    .with_label_values(&["pending"])
                    .set(backlog.pending);
                self.webhook_deliveries
                    .with_label_values(&["failed"])
                    .set(backlog.failed);
            }
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot count webhook deliveries");
                self.webhook_deliveries.reset();
            }
        }
        match feria_subscriptions::renewal_backlog(&mut conn, now).await {
            Ok(backlog) => {
                self.subscription_renewals
                    .with_label_values(&["due"])
                    .set(backlog.due);
                self.subscription_renewals
                    .with_label_values(&["failed"])
                    .set(backlog.failed);
            }
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot count subscription renewals");
                self.subscription_renewals.reset();
            }
        }
    }
}
