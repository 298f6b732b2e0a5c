//! The application factory, shared by `feria serve` and the test kit, and the server
//! around it.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use anyhow::Context;
use feria_kernel::{ApiError, Db};

use crate::config::Config;
use crate::error::{HttpError, error_response};
use crate::extract::BodyLimit;
use crate::metrics::Metrics;
use crate::middleware::{RequestTimeout, observe};
use crate::routes::{self, meta::ApiDocuments};

/// Extra routes mounted beside Feria's own, on the same middleware stack. The test kit
/// uses it to exercise shared machinery (extractors, errors) through real HTTP; an
/// embedding service may add its own endpoints.
pub type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// Everything a worker's app needs; cheap to clone (one clone per worker thread).
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    mailer: web::Data<feria_kernel::mail::Mailer>,
    otp_ip_limiter: web::Data<crate::ratelimit::IpRateLimiter>,
    media_ip_limiter: web::Data<crate::routes::uploads::MediaUploadLimiter>,
    write_limit: web::Data<crate::middleware::WriteLimit>,
    /// One cache for all workers: a rolled key or an ended session is forgotten by every
    /// worker at once.
    credentials: web::Data<feria_auth::CredentialCache>,
    media: web::Data<feria_platforms::media::MediaStore>,
    payments: web::Data<crate::payments::PaymentProviders>,
    metrics: web::Data<Metrics>,
    documents: web::Data<ApiDocuments>,
    onchain: web::Data<feria_onchain_entitlements::Onchain>,
    extra_routes: Option<ExtraRoutes>,
    /// The allowed browser origins, shared by all workers (an admin's change applies to
    /// every worker at once).
    cors: web::Data<crate::cors::CorsPolicy>,
    /// Read-only handlers' database: replicas when configured, and the clients' write
    /// positions (read-your-writes).
    reads: web::Data<crate::replicas::Reads>,
    /// Seals and opens the secrets stored in the database (`FERIA_SECRET_KEY`).
    keys: web::Data<feria_kernel::sealed::Keyring>,
}

impl AppState {
    pub fn new(
        db: Db,
        mut config: Config,
        keys: feria_kernel::sealed::Keyring,
        extra_routes: Option<ExtraRoutes>,
    ) -> anyhow::Result<AppState> {
        let spec = serde_json::to_value(<crate::openapi::ApiDoc as utoipa::OpenApi>::openapi())
            .context("serialising the OpenAPI document")?;
        let documents = ApiDocuments {
            json: crate::openapi::spec_json().context("serialising the OpenAPI document")?,
            html: crate::docs::render(&spec),
            allow: ApiDocuments::allow_headers(&spec),
        };
        let mailer = config.mailer().context("setting up outgoing mail")?;
        // One clock for everything the server times (tests hand in a manual one).
        config.auth.clock = config.clock.clone();
        // With REDIS_URL, every node counts against the same budgets.
        let quota = config
            .redis_url
            .as_deref()
            .map(crate::shared_quota::SharedQuota::new)
            .transpose()
            .context("REDIS_URL")?
            .map(Arc::new);
        let otp_ip_limiter = crate::ratelimit::IpRateLimiter::new(
            config.otp_requests_per_ip,
            std::time::Duration::from_secs(600),
            config.clock.clone(),
        )
        .shared(quota.clone(), "otp");
        let media_ip_limiter = crate::routes::uploads::MediaUploadLimiter(
            crate::ratelimit::IpRateLimiter::new(
                config.media_uploads_per_ip,
                std::time::Duration::from_secs(600),
                config.clock.clone(),
            )
            .shared(quota.clone(), "media"),
        );
        // One limiter for all workers: a credential's budget is per server, not per thread
        // (and per deployment with REDIS_URL).
        let write_limit = crate::middleware::WriteLimit(
            crate::ratelimit::WriteRateLimiter::new(
                config.write_rate_limit,
                config.write_rate_burst,
                config.clock.clone(),
            )
            .map(|limiter| limiter.shared(quota.clone())),
        );
        let metrics = Metrics::new().context("registering metrics")?;
        let onchain = feria_onchain_entitlements::Onchain::new(&config.onchain)
            .context("configuring the on-chain marketplace")?
            .with_error_counter(metrics.provider_errors());
        let media = config
            .media_store()
            .context("configuring the media store")?;
        let payments = crate::payments::PaymentProviders::new(
            &config.stripe.api_base,
            config.stripe.test_secret_key.as_deref(),
            config.stripe.live_secret_key.as_deref(),
            metrics.provider_errors(),
        )
        .context("setting up the Stripe client")?;
        let cors = crate::cors::CorsPolicy::new(&config.cors.allowed_origins);
        // The one place the store of write positions is chosen: the one the configuration
        // hands in (shared by the nodes), or this process's.
        // With REDIS_URL every node knows every client's last write.
        let positions = config
            .write_positions
            .clone()
            .or_else(|| {
                quota.clone().map(|quota| {
                    Arc::new(crate::shared_quota::SharedWritePositions(quota))
                        as Arc<dyn feria_kernel::db::WritePositions>
                })
            })
            .unwrap_or_else(|| {
                Arc::new(feria_kernel::db::InProcessWritePositions::default())
                    as Arc<dyn feria_kernel::db::WritePositions>
            });
        let metrics = web::Data::new(metrics);
        let reads = crate::replicas::Reads::new(db.clone(), positions, metrics.clone());
        Ok(AppState {
            keys: web::Data::new(keys),
            reads: web::Data::new(reads),
            db,
            cors: web::Data::new(cors),
            payments: web::Data::new(payments),
            mailer: web::Data::new(mailer),
            otp_ip_limiter: web::Data::new(otp_ip_limiter),
            media_ip_limiter: web::Data::new(media_ip_limiter),
            write_limit: web::Data::new(write_limit),
            credentials: web::Data::new(
                feria_auth::CredentialCache::new(
                    config.api_key_cache_ttl,
                    config.session_cache_ttl,
                )
                .with_clock(config.clock.clone()),
            ),
            media: web::Data::new(media),
            config: Arc::new(config),
            metrics,
            documents: web::Data::new(documents),
            onchain: web::Data::new(onchain),
            extra_routes,
        })
    }
}

/// The actix-web application: middleware, shared data, every route.
pub fn build_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let extra_routes = state.extra_routes.clone();
    let body_limit = state.config.body_limit_bytes;
    App::new()
        // Inside `observe` (its span and deadline): a write's position for read-your-writes.
        .wrap(from_fn(crate::replicas::remember_writes))
        // Preflights inside `observe` (logged and counted like any request); the CORS
        // headers of other answers outside it, so that its own refusals carry them too.
        .wrap(from_fn(crate::cors::preflight))
        .wrap(from_fn(observe))
        .wrap(from_fn(crate::cors::actual))
        .app_data(state.cors.clone())
        .app_data(web::Data::new(state.db.clone()))
        .app_data(state.metrics.clone())
        .app_data(state.reads.clone())
        .app_data(state.documents.clone())
        .app_data(state.mailer.clone())
        .app_data(state.otp_ip_limiter.clone())
        .app_data(state.media_ip_limiter.clone())
        .app_data(state.write_limit.clone())
        .app_data(web::Data::new(state.config.trusted_proxies.clone()))
        .app_data(state.credentials.clone())
        .app_data(state.media.clone())
        .app_data(state.payments.clone())
        .app_data(state.onchain.clone())
        .app_data(state.keys.clone())
        .app_data(web::Data::new(feria_platforms::media::MediaUrls::new(
            state.config.public_url.as_deref(),
        )))
        .app_data(web::Data::from(state.config.clone()))
        .app_data(web::Data::new(state.config.auth.clone()))
        .app_data(web::Data::new(BodyLimit(body_limit)))
        .app_data(web::Data::new(RequestTimeout(state.config.request_timeout)))
        // The framework's own extractors, where a route uses them, fail in our shape too.
        .app_data(
            web::JsonConfig::default()
                .limit(body_limit)
                .error_handler(|error, _| {
                    framework_error(error.status_code().as_u16(), error.to_string())
                }),
        )
        .app_data(web::PayloadConfig::default().limit(body_limit))
        .app_data(web::QueryConfig::default().error_handler(|error, _| {
            HttpError::new(ApiError::bad_request("invalid_query", error.to_string())).into()
        }))
        .app_data(web::PathConfig::default().error_handler(|_, req| {
            HttpError::new(ApiError::not_found(&format!(
                "no resource at {}",
                req.path()
            )))
            .into()
        }))
        .configure(routes::health::configure)
        .configure(routes::meta::configure)
        .configure(routes::media::configure)
        .configure(routes::onchain::configure_well_known)
        .service(web::scope("/api/v1").configure(routes::configure_api))
        .configure(move |cfg| {
            if let Some(extra) = &extra_routes {
                extra(cfg);
            }
        })
        .default_service(web::to(route_not_found))
}

fn framework_error(status: u16, message: String) -> actix_web::Error {
    let kind = feria_kernel::ErrorKind::from_status(status);
    let code = match status {
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        _ => "malformed_json",
    };
    HttpError::new(ApiError::new(kind, code, message)).into()
}

async fn route_not_found(req: HttpRequest) -> HttpResponse {
    let error = crate::error::error_for_status(
        actix_web::http::StatusCode::NOT_FOUND,
        req.method().as_str(),
        req.path(),
    );
    error_response(&error, crate::error::current_request_id())
}

/// A bound, migrated server, ready to run.
pub struct Server {
    server: actix_web::dev::Server,
    addr: SocketAddr,
    db: Db,
    purge: tokio::task::JoinHandle<()>,
    renewals: Option<tokio::task::JoinHandle<()>>,
    webhooks: tokio::task::JoinHandle<()>,
    finality: Option<tokio::task::JoinHandle<()>>,
    cors_refresh: tokio::task::JoinHandle<()>,
    coherence: Option<tokio::task::JoinHandle<()>>,
}

/// How often accounts due for deletion are erased.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Erases the personal data of accounts whose scheduled deletion is due, now and then
/// every hour, for as long as the server runs.
async fn purge_deleted_accounts(db: Db) {
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    loop {
        interval.tick().await;
        let outcome = async {
            let mut conn = db.conn().await?;
            feria_users::user::purge_due(&mut conn, feria_kernel::Timestamp::now()).await
        }
        .await;
        match outcome {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "erased accounts due for deletion"),
            Err(error) => tracing::warn!(%error, "purging deleted accounts failed; retrying later"),
        }
    }
}

/// Charges due subscription renewals (and resumes and ends subscriptions on time), now
/// and then every `every`, for as long as the server runs. Several servers on one
/// database may run it at once: each cycle is charged once (docs/SUBSCRIPTIONS.md).
async fn renew_subscriptions(db: Db, every: std::time::Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match feria_subscriptions::run_due_renewals(&db, feria_kernel::Timestamp::now()).await {
            Ok(report) if report == Default::default() => {}
            Ok(report) => tracing::info!(?report, "subscription renewals"),
            Err(error) => {
                tracing::warn!(%error, "subscription renewals failed; retrying later");
            }
        }
    }
}

/// Mails the platform's owners (in the endpoint's mode) that the delivery worker
/// disabled one of their webhook endpoints; users writes the mail, this only wires it in.
fn endpoint_disabled_notifier(
    db: Db,
    mailer: feria_kernel::mail::Mailer,
) -> feria_events::worker::DisabledNotifier {
    Arc::new(move |tenant, endpoint| {
        let db = db.clone();
        let mailer = mailer.clone();
        Box::pin(async move {
            if let Err(error) =
                feria_users::notices::webhook_endpoint_disabled(&db, &mailer, &tenant, &endpoint)
                    .await
            {
                tracing::warn!(%error, "cannot find the owners to tell of a disabled webhook endpoint");
            }
        })
    })
}

impl Server {
    /// Connects to the database, applies migrations, binds the address.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        Self::build_with_routes(config, None).await
    }

    /// [`Server::build`] with extra routes mounted beside Feria's own.
    pub async fn build_with_routes(
        config: Config,
        extra_routes: Option<ExtraRoutes>,
    ) -> anyhow::Result<Server> {
        let db = Db::connect(&config.server_db_config())
            .await
            .with_context(|| {
                format!(
                    "connecting to the database at {}",
                    feria_kernel::db::redact(&config.database_url)
                )
            })?;
        let applied = db.migrate().await.context("applying database migrations")?;
        tracing::info!(
            backend = %db.backend(),
            applied = applied.len(),
            "database ready"
        );
        let listener =
            TcpListener::bind(config.bind).with_context(|| format!("binding {}", config.bind))?;
        let addr = listener.local_addr()?;
        let workers = config.workers;
        let handle_signals = config.handle_signals;
        let shutdown_timeout = config.shutdown_timeout_secs;
        let client_header_timeout = config.client_header_timeout;
        let renewal_interval = config.subscription_renewal_interval;
        let keys = crate::secrets::keyring(&config.secret_keys, db.backend(), &config.data_dir)?;
        tracing::info!(
            key = keys.current_id(),
            previous = keys.previous_id(),
            "secret key ready"
        );
        // Webhook secrets stored in clear (before they were sealed, or by an older node
        // during a rolling upgrade) are sealed now; `feria secrets rotate` does the rest.
        {
            let mut conn = db.conn().await.context("connecting to the database")?;
            let sealed = feria_events::endpoints::seal_secrets(&mut conn, &keys, false)
                .await
                .map_err(|e| anyhow::anyhow!("sealing webhook secrets: {e}"))?;
            if sealed.sealed_from_clear > 0 {
                // The clear values would otherwise linger in free space and the WAL.
                conn.scrub(&[feria_events::endpoints::SEALED_TABLE])
                    .await
                    .context("rewriting the table of the sealed secrets")?;
                tracing::info!(
                    count = sealed.sealed_from_clear,
                    "sealed webhook signing secrets stored in clear"
                );
            }
        }
        let worker = feria_events::Worker::new(
            db.clone(),
            config.webhooks.clone(),
            Some(endpoint_disabled_notifier(
                db.clone(),
                config.mailer().context("setting up outgoing mail")?,
            )),
            keys.clone(),
        )
        .context("setting up the webhook HTTP client")?;
        // Blocking threads per worker: argon2 (one per core) and a few file writes; SQLite
        // statements run on threads of their own, shared by the workers
        // (feria_kernel::db::sqlite_runtime). Past that they queue; actix's default
        // (512 / cores) let a load grow 60 threads, each keeping its allocator's pages.
        let blocking_threads = std::thread::available_parallelism().map_or(2, |n| n.get()) + 2;
        let cors_refresh_every = config.cors.refresh;
        let state = AppState::new(db.clone(), config, keys, extra_routes)?;
        // Only with a chain to ask (entitlements of a chain no longer configured wait).
        let watched = state.onchain.chains().next().is_some();
        let finality = state
            .onchain
            .finality_interval
            .filter(|_| watched)
            .map(|every| {
                tokio::spawn(feria_onchain_entitlements::finality::watch(
                    db.clone(),
                    state.onchain.get_ref().clone(),
                    every,
                ))
            });
        // A store that does not answer (unreachable, no such bucket, refused credentials)
        // stops the start here rather than failing every upload later.
        state.media.check().await.with_context(|| {
            format!("the media store {} cannot be used", state.media.describe())
        })?;
        tracing::info!(store = %state.media.describe(), "media store ready");
        state
            .cors
            .reload(&db)
            .await
            .context("reading the platforms' CORS origins")?;
        let cors_refresh = tokio::spawn(crate::cors::refresh(
            state.cors.clone(),
            db.clone(),
            cors_refresh_every,
        ));
        let mut server = HttpServer::new(move || build_app(state.clone()))
            .worker_max_blocking_threads(blocking_threads)
            .listen(listener)?
            .shutdown_timeout(shutdown_timeout)
            // Slow clients: the headers must arrive within this (then 408 and the
            // connection is closed); a body that trickles in is bounded by the request
            // timeout (503 `request_timeout`); an idle kept-alive connection is closed.
            .client_request_timeout(client_header_timeout)
            .client_disconnect_timeout(std::time::Duration::from_secs(1))
            .keep_alive(std::time::Duration::from_secs(30));
        if let Some(workers) = workers {
            server = server.workers(workers.max(1));
        }
        if !handle_signals {
            server = server.disable_signals();
        }
        tracing::info!(%addr, "listening");
        let purge = tokio::spawn(purge_deleted_accounts(db.clone()));
        let renewals =
            renewal_interval.map(|every| tokio::spawn(renew_subscriptions(db.clone(), every)));
        let webhooks = tokio::spawn(worker.run());
        // Other nodes' credential and settings changes (PostgreSQL; none on SQLite).
        let coherence = feria_kernel::coherence::listen(&db);
        Ok(Server {
            server: server.run(),
            addr,
            db,
            purge,
            renewals,
            webhooks,
            finality,
            cors_refresh,
            coherence,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's database handle (shares its pool).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A handle to stop the server (gracefully or not) from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM gracefully, SIGINT/SIGQUIT at once, or the handle),
    /// letting in-flight requests finish, then closes the database pool.
    pub async fn run(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.purge.abort();
        if let Some(renewals) = &self.renewals {
            renewals.abort();
        }
        self.webhooks.abort();
        if let Some(finality) = &self.finality {
            finality.abort();
        }
        self.cors_refresh.abort();
        if let Some(coherence) = &self.coherence {
            coherence.abort();
        }
        self.db.close();
        tracing::info!("stopped");
        result
    }
}
