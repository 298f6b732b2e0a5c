//! Configuration: parsed once from flags and environment, then passed down as typed values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Feria: a multi-tenant marketplace backend.
#[derive(Debug, Parser)]
#[command(name = "feria", version, long_version = crate::build_info::LONG_VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (JSON) and exit.
    Openapi,
    /// Uploaded images and where they are stored.
    Media {
        #[command(subcommand)]
        command: MediaCommand,
    },
    /// Manage platforms (tenants) without any HTTP secret.
    Platform {
        #[command(subcommand)]
        command: PlatformCommand,
    },
    /// The server's secret key: make one, reseal stored secrets under a new one.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Receipt signing keys of the on-chain marketplace.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Inspect the money ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Fill the database with generated benchmark data (platforms, users with credits,
    /// characters, listings, products) and print the keys, session and id scheme a load
    /// generator needs as JSON (docs/BENCHMARKS-HOWTO.md).
    Seed(feria_seed::SeedArgs),
    /// Run the domain query of a benchmarked route in a loop, in-process (no HTTP), and
    /// print its rate and latency as JSON: the baseline of `make bench` on SQLite.
    BenchBaseline(feria_seed::BaselineArgs),
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check that every journal entry balances, every balance equals its postings and no
    /// account that may not go negative is; prints a JSON report and exits 1 on a problem.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a new random key for FERIA_SECRET_KEY (32 bytes, base64).
    GenerateKey,
    /// Reseal every stored secret (webhook signing secrets, receipt signing keys) under
    /// FERIA_SECRET_KEY, opening those sealed under FERIA_SECRET_KEY_PREVIOUS (and sealing
    /// any still in clear); prints a JSON report. Idempotent (docs/DEPLOYMENT.md, "Secrets
    /// at rest").
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Give a platform a new receipt signing key; the old one signs no more but stays in
    /// its JWKS until the receipts it signed have expired. Prints the new key's id as JSON.
    Rotate {
        /// The platform (`plat_...`).
        #[arg(long)]
        platform: String,
        /// `live`, `test`, or `both` (the default).
        #[arg(long, default_value = "both")]
        mode: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// Copy every uploaded image from DATA_DIR/media into the object store MEDIA_STORE
    /// names (`s3://...`), verifying each one's SHA-256; images already there are left
    /// alone, so it can run again. Prints a JSON report and exits 1 when any image was not
    /// copied (docs/DEPLOYMENT.md, "Media storage").
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum PlatformCommand {
    /// Create a platform with its owner and a test and a live API key; prints JSON
    /// `{"platform": {...}, "api_keys": {"test": "fer_test_...", "live": "fer_live_..."}}`.
    Create {
        /// The platform's name.
        #[arg(long)]
        name: String,
        /// The host name it is served at, e.g. market.example.com.
        #[arg(long)]
        domain: String,
        /// The owner's email; the owner signs in with a code sent there.
        #[arg(long)]
        owner_email: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Settings shared by every command; each flag can also come from the environment.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// A TOML file of settings (keys: these flags' names in snake case, e.g.
    /// `database_url`); flags and environment variables override it.
    #[arg(long, env = "FERIA_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (default: sqlite://DATA_DIR/feria.db) or
    /// postgres://...[?sslmode=verify-full&sslrootcert=PATH] (docs/DEPLOYMENT.md).
    // The values of settings that may hold a password are never printed by --help.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: SocketAddr,
    /// Directory for the embedded database and outgoing mail.
    #[arg(long, env = "DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Directory receiving each outgoing mail as an .eml file (default: DATA_DIR/mail).
    #[arg(long, env = "MAIL_DIR", global = true)]
    pub mail_dir: Option<PathBuf>,
    /// Send mail through this SMTP relay (smtp://, smtps://) instead of writing .eml files.
    #[arg(long, env = "SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,
    /// The sender of outgoing mail.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "Feria <no-reply@feria.localhost>",
        global = true
    )]
    pub mail_from: String,
    /// Sign-in code requests allowed per client IP address per 10 minutes.
    #[arg(long, env = "OTP_REQUESTS_PER_IP", default_value_t = 30, global = true)]
    pub otp_requests_per_ip: u32,
    /// Log line format.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,
    /// Database pool size (default: 2 per core and at least 4 on SQLite, 4 per core and
    /// at least 8 on PostgreSQL).
    #[arg(long, env = "DATABASE_POOL_SIZE", global = true)]
    pub database_pool_size: Option<usize>,
    /// PostgreSQL streaming replicas of DATABASE_URL's database that read-only routes may
    /// read from: comma-separated postgres:// URLs (sslmode and sslrootcert as in
    /// DATABASE_URL). Empty: every read goes to the primary (docs/DEPLOYMENT.md, "Read
    /// replicas").
    #[arg(
        long,
        env = "DATABASE_REPLICA_URLS",
        hide_env_values = true,
        hide_default_value = true,
        default_value = "",
        value_parser = parse_replica_urls,
        global = true
    )]
    pub database_replica_urls: ReplicaUrls,
    /// Milliseconds a replica may lag: one that has not replayed what the primary had
    /// written this long ago is not read from.
    #[arg(
        long,
        env = "REPLICA_MAX_LAG_MS",
        default_value_t = 1000,
        global = true
    )]
    pub replica_max_lag_ms: u64,
    /// Connections per read replica (default: as DATABASE_POOL_SIZE).
    #[arg(long, env = "REPLICA_POOL_SIZE", global = true)]
    pub replica_pool_size: Option<usize>,
    /// Seconds a request waits for a database connection before answering 503.
    #[arg(
        long,
        env = "DATABASE_ACQUIRE_TIMEOUT_SECS",
        default_value_t = 5,
        global = true
    )]
    pub database_acquire_timeout_secs: u64,
    /// Seconds a request may take before it is abandoned with 503.
    #[arg(
        long,
        env = "REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_secs: u64,
    /// Seconds a client has to send a request's headers (slow clients are cut off with 408).
    #[arg(
        long,
        env = "CLIENT_HEADER_TIMEOUT_SECS",
        default_value_t = 5,
        global = true
    )]
    pub client_header_timeout_secs: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 256 * 1024, global = true)]
    pub body_limit_bytes: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "WORKERS", global = true)]
    pub workers: Option<usize>,
    /// Largest image accepted by `POST /utils/media/upload`, in bytes.
    #[arg(long, env = "MEDIA_MAX_BYTES", default_value_t = 5 * 1024 * 1024, global = true)]
    pub media_max_bytes: usize,
    /// Uploads one client address may make per 10 minutes (the route needs no credentials).
    #[arg(
        long,
        env = "MEDIA_UPLOADS_PER_IP",
        default_value_t = 60,
        global = true
    )]
    pub media_uploads_per_ip: u32,
    /// Where uploaded images are stored: `file` (DATA_DIR/media on this server) or
    /// `s3://bucket[/prefix]` (an S3-compatible object store that every server shares).
    #[arg(
        long,
        env = "MEDIA_STORE",
        default_value = "file",
        value_parser = parse_media_store,
        global = true
    )]
    pub media_store: feria_platforms::media::MediaLocation,
    /// The S3-compatible server of `MEDIA_STORE=s3://...` (`https://minio.internal:9000`);
    /// unset: AWS S3 in MEDIA_S3_REGION. Plain http only when written `http://`.
    #[arg(long, env = "MEDIA_S3_ENDPOINT", global = true)]
    pub media_s3_endpoint: Option<String>,
    /// The region S3 requests are signed for.
    #[arg(
        long,
        env = "MEDIA_S3_REGION",
        default_value = "us-east-1",
        global = true
    )]
    pub media_s3_region: String,
    /// The access key of the media store (with AWS_SECRET_ACCESS_KEY; neither: the
    /// machine's credentials from the EC2 instance metadata).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true, global = true)]
    pub aws_access_key_id: Option<String>,
    /// The secret of that access key; never printed.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        global = true
    )]
    pub aws_secret_access_key: Option<String>,
    /// Writes (POST, PUT, PATCH, DELETE) per second one credential may make, sustained; an
    /// unauthenticated write counts against its address. 0 turns the limit off.
    #[arg(long, env = "WRITE_RATE_LIMIT", default_value_t = 100, global = true)]
    pub write_rate_limit: u32,
    /// Writes one credential may make at once before the sustained rate applies.
    #[arg(long, env = "WRITE_RATE_BURST", default_value_t = 200, global = true)]
    pub write_rate_burst: u32,
    /// Redis holding what every node shares (redis://; no TLS yet): rate limits, and the
    /// clients' last write positions for replica reads; unset: each node alone
    /// (docs/SCALING.md).
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<String>,
    /// Milliseconds an authenticated API key is trusted without reading it again. A key
    /// rolled on any node stops working at once on every node listening on the same
    /// PostgreSQL database (docs/SCALING.md); this bounds how long a node trusts it
    /// otherwise. 0 reads the key on every request.
    #[arg(long, env = "API_KEY_CACHE_MS", default_value_t = 2000, global = true)]
    pub api_key_cache_ms: u64,
    /// Milliseconds a session's access token (with its user's role) is trusted without
    /// reading it again. A logout, refresh, role change or deletion made on any node takes
    /// effect at once on every node listening on the same PostgreSQL database; this bounds
    /// how long a node trusts it otherwise. 0 reads the session on every request.
    #[arg(long, env = "SESSION_CACHE_MS", default_value_t = 2000, global = true)]
    pub session_cache_ms: u64,
    /// The operator's service fee, percent of each payment (the seed's "Candle fees").
    #[arg(long, env = "SERVICE_FEE_PERCENT", default_value = "1", global = true)]
    pub service_fee_percent: rust_decimal::Decimal,
    /// The card processor's fee: percent of each card charge ...
    #[arg(
        long,
        env = "PROCESSOR_FEE_PERCENT",
        default_value = "2.9",
        global = true
    )]
    pub processor_fee_percent: rust_decimal::Decimal,
    /// ... plus this many minor units (cents) per charge.
    #[arg(long, env = "PROCESSOR_FEE_FIXED", default_value_t = 30, global = true)]
    pub processor_fee_fixed: i64,
    /// Stripe's API (or a Stripe-compatible server, in tests).
    #[arg(
        long,
        env = "STRIPE_API_BASE",
        default_value = "https://api.stripe.com",
        global = true
    )]
    pub stripe_api_base: String,
    /// Stripe secret key for test-mode tenants (`sk_test_...`); unset: no Stripe in test mode.
    #[arg(
        long,
        env = "STRIPE_TEST_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub stripe_test_secret_key: Option<String>,
    /// Stripe secret key for live-mode tenants (`sk_live_...`); unset: no Stripe in live mode.
    #[arg(
        long,
        env = "STRIPE_LIVE_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub stripe_live_secret_key: Option<String>,
    /// Characters a workspace may hold unless an admin set another limit for it.
    #[arg(
        long,
        env = "WORKSPACE_CHARACTER_LIMIT",
        default_value_t = 25,
        global = true
    )]
    pub workspace_character_limit: i64,
    /// The server's public base URL (`https://api.example.com`), the base of image URLs
    /// (made when read: the database keeps media ids); without it they are relative
    /// (`/media/med_...`), never built from the request's `Host`.
    #[arg(long, env = "PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// JSON-RPC URL of the EVM node that verifies on-chain payments; unset: no chain is
    /// configured and checkout answers `unsupported_chain` (docs/ONCHAIN.md).
    // Hosted nodes put their API key in the URL's path.
    #[arg(long, env = "ONCHAIN_RPC_URL", hide_env_values = true, global = true)]
    pub onchain_rpc_url: Option<String>,
    /// The chain id that node serves (8453: Base).
    #[arg(long, env = "ONCHAIN_CHAIN_ID", default_value_t = 8453, global = true)]
    pub onchain_chain_id: i64,
    /// The USDC (ERC-20) contract offers are paid in, on that chain.
    #[arg(long, env = "ONCHAIN_USDC_ADDRESS", global = true)]
    pub onchain_usdc_address: Option<String>,
    /// The address that receives payments.
    #[arg(long, env = "ONCHAIN_TREASURY_ADDRESS", global = true)]
    pub onchain_treasury_address: Option<String>,
    /// Blocks a payment's block needs (itself included) before it grants an entitlement.
    #[arg(
        long,
        env = "ONCHAIN_CONFIRMATIONS",
        default_value_t = 12,
        global = true
    )]
    pub onchain_confirmations: u64,
    /// Seconds a checkout quote may be paid.
    #[arg(
        long,
        env = "ONCHAIN_QUOTE_TTL_SECS",
        default_value_t = 900,
        global = true
    )]
    pub onchain_quote_ttl_secs: u64,
    /// Blocks deep a payment must be to be final when the node serves no `finalized`
    /// block; a reorg before then revokes its entitlement (docs/ONCHAIN.md, "Finality").
    #[arg(
        long,
        env = "ONCHAIN_FINALITY_BLOCKS",
        default_value_t = 64,
        global = true
    )]
    pub onchain_finality_blocks: u64,
    /// Milliseconds between rounds of the finality watcher (re-checks the payments of
    /// entitlements not yet final); 0 turns it off.
    #[arg(
        long,
        env = "ONCHAIN_FINALITY_INTERVAL_MS",
        default_value_t = 15_000,
        global = true
    )]
    pub onchain_finality_interval_ms: u64,
    /// Seconds an entitlement receipt (a signed JWS) is valid; never past the
    /// entitlement's own expiry.
    #[arg(
        long,
        env = "ONCHAIN_RECEIPT_TTL_SECS",
        default_value_t = 86_400,
        global = true
    )]
    pub onchain_receipt_ttl_secs: u64,
    /// The server's secret key (32 bytes: 64 hex digits or base64; `feria secrets
    /// generate-key` makes one): seals webhook signing secrets and receipt signing keys in
    /// the database. Unset: on SQLite, a key generated into DATA_DIR/secret.key; on
    /// PostgreSQL, required (docs/DEPLOYMENT.md, "Secrets at rest").
    #[arg(long, env = "FERIA_SECRET_KEY", hide_env_values = true, global = true)]
    pub feria_secret_key: Option<String>,
    /// The key FERIA_SECRET_KEY replaces, during a rotation: it still opens what it
    /// sealed until `feria secrets rotate` has resealed everything.
    #[arg(
        long,
        env = "FERIA_SECRET_KEY_PREVIOUS",
        hide_env_values = true,
        global = true
    )]
    pub feria_secret_key_previous: Option<String>,
    /// Seconds between runs of the subscription renewal worker; 0 turns it off.
    #[arg(
        long,
        env = "SUBSCRIPTION_RENEWAL_INTERVAL_SECS",
        default_value_t = 300,
        global = true
    )]
    pub subscription_renewal_interval_secs: u64,
    /// Milliseconds between rounds of the webhook delivery worker.
    #[arg(
        long,
        env = "WEBHOOK_POLL_INTERVAL_MS",
        default_value_t = 1000,
        global = true
    )]
    pub webhook_poll_interval_ms: u64,
    /// Milliseconds before the first retry of a failed webhook; doubles per attempt.
    #[arg(
        long,
        env = "WEBHOOK_RETRY_BASE_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub webhook_retry_base_ms: u64,
    /// Longest delay between two webhook attempts, in milliseconds (6 hours).
    #[arg(
        long,
        env = "WEBHOOK_RETRY_MAX_MS",
        default_value_t = 6 * 60 * 60 * 1000,
        global = true
    )]
    pub webhook_retry_max_ms: u64,
    /// Seconds after an event during which its delivery is retried (3 days).
    #[arg(
        long,
        env = "WEBHOOK_RETRY_WINDOW_SECS",
        default_value_t = 3 * 24 * 60 * 60,
        global = true
    )]
    pub webhook_retry_window_secs: u64,
    /// Milliseconds one webhook request may take in all (connect, send, response prefix).
    #[arg(
        long,
        env = "WEBHOOK_TIMEOUT_MS",
        default_value_t = 15_000,
        global = true
    )]
    pub webhook_timeout_ms: u64,
    /// A webhook endpoint is disabled after this many failed attempts in a row ...
    #[arg(
        long,
        env = "WEBHOOK_DISABLE_AFTER_FAILURES",
        default_value_t = 20,
        global = true
    )]
    pub webhook_disable_after_failures: i64,
    /// ... once its first failure since the last success is this many seconds old (3 days).
    #[arg(
        long,
        env = "WEBHOOK_DISABLE_AFTER_SECS",
        default_value_t = 3 * 24 * 60 * 60,
        global = true
    )]
    pub webhook_disable_after_secs: u64,
    /// Allow webhook URLs on loopback or private addresses, and plain http (development
    /// and tests only; see docs/EVENTS.md).
    #[arg(
        long,
        env = "WEBHOOK_ALLOW_PRIVATE_TARGETS",
        default_value_t = false,
        global = true
    )]
    pub webhook_allow_private_targets: bool,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` is believed: comma-separated
    /// CIDR networks (a bare address is a network of one). Empty: the connection's peer is
    /// the client (docs/DEPLOYMENT.md, "Behind a reverse proxy").
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        default_value = "",
        value_parser = crate::client_address::TrustedProxies::parse,
        global = true
    )]
    pub trusted_proxies: crate::client_address::TrustedProxies,
    /// Browser origins allowed to call the API for every platform (CORS), comma-separated,
    /// each as browsers send it (`https://app.example.com,http://localhost:3000`); `*` is
    /// refused. Each platform's admins add their own (`corsAllowedOrigins`).
    #[arg(
        long,
        env = "CORS_ALLOWED_ORIGINS",
        value_parser = parse_cors_origins,
        default_value = "",
        global = true
    )]
    pub cors_allowed_origins: CorsOrigins,
    /// Milliseconds between reloads of every platform's allowed origins: a change made
    /// through another server sharing the database applies to preflights here within this
    /// time (a change made on this server applies at once).
    #[arg(long, env = "CORS_REFRESH_MS", default_value_t = 5000, global = true)]
    pub cors_refresh_ms: u64,
    /// Export the request spans over OTLP/HTTP to this collector (its base URL: spans go
    /// to `{endpoint}/v1/traces`); unset: no export, no exporter built.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// The OTLP encoding: `http/protobuf` or `http/json` (gRPC is not built in).
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        default_value = "http/protobuf",
        global = true
    )]
    pub otel_exporter_otlp_protocol: OtlpProtocol,
    /// `service.name` of the exported spans.
    #[arg(
        long,
        env = "OTEL_SERVICE_NAME",
        default_value = "feria",
        global = true
    )]
    pub otel_service_name: String,
}

/// The read replicas' URLs; its `Debug` hides their passwords.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ReplicaUrls(pub Vec<String>);

impl std::fmt::Debug for ReplicaUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|url| feria_kernel::db::redact(url)))
            .finish()
    }
}

/// Comma-separated PostgreSQL URLs (a comma inside a URL is written `%2C`). Anything but a
/// `postgres://` URL stops the start, named without its password.
fn parse_replica_urls(value: &str) -> Result<ReplicaUrls, String> {
    let mut urls = Vec::new();
    for url in value
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
    {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!(
                "`{}` is not a PostgreSQL URL (postgres://...)",
                feria_kernel::db::redact(url)
            ));
        }
        urls.push(url.to_owned());
    }
    Ok(ReplicaUrls(urls))
}

/// The server-wide list of allowed browser origins, checked when read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsOrigins(pub Vec<String>);

/// A bad entry stops the server at start-up, naming it.
fn parse_cors_origins(value: &str) -> Result<CorsOrigins, String> {
    feria_platforms::cors::parse_origin_list(value).map(CorsOrigins)
}

/// A bad `MEDIA_STORE` stops the server at start-up, saying what to write.
fn parse_media_store(value: &str) -> Result<feria_platforms::media::MediaLocation, String> {
    value.parse().map_err(|error| format!("{error}"))
}

/// How spans travel to the OTLP collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    #[value(name = "http/json")]
    HttpJson,
}

/// Where and how traces are exported (`OTEL_EXPORTER_OTLP_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The collector's base URL.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub service_name: String,
}

impl OtlpSettings {
    /// The traces URL of the endpoint, as the OTLP/HTTP specification derives it.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.endpoint.trim_end_matches('/'))
    }
}

/// The resolved configuration of one server.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub mail_dir: PathBuf,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub otp_requests_per_ip: u32,
    /// Sign-in and session settings (code lifetime, attempts, token lifetimes).
    pub auth: feria_auth::AuthSettings,
    pub log_format: LogFormat,
    pub database_pool_size: Option<usize>,
    pub database_acquire_timeout: Duration,
    /// PostgreSQL read replicas (none by default); used by the server only, not by the
    /// other commands.
    pub replicas: feria_kernel::db::ReplicaConfig,
    /// Where the clients' write positions are kept for read-your-writes on replicas;
    /// `None`: in this process ([`feria_kernel::db::InProcessWritePositions`]). A store
    /// shared by several nodes is handed in here.
    pub write_positions: Option<std::sync::Arc<dyn feria_kernel::db::WritePositions>>,
    pub request_timeout: Duration,
    /// Time a client has to send a request's headers.
    pub client_header_timeout: Duration,
    pub body_limit_bytes: usize,
    pub workers: Option<usize>,
    pub media_dir: PathBuf,
    /// Where uploads are stored (`MEDIA_STORE`), and how the S3 store is reached.
    pub media_store: feria_platforms::media::MediaLocation,
    pub media_s3: feria_platforms::media::S3Settings,
    pub media_max_bytes: usize,
    pub media_uploads_per_ip: u32,
    /// Writes per second per credential (0: no limit), and the burst.
    pub write_rate_limit: u32,
    pub write_rate_burst: u32,
    /// The Redis of the shared rate limits (`None`: each node counts alone).
    pub redis_url: Option<String>,
    /// How long an authenticated API key is trusted without reading it again.
    pub api_key_cache_ttl: Duration,
    /// How long a session (and its user's role) is trusted without reading it again.
    pub session_cache_ttl: Duration,
    pub public_url: Option<String>,
    pub fees: feria_billing::fees::FeeSchedule,
    pub stripe: StripeSettings,
    /// Characters a workspace may hold unless an admin set another limit for it.
    pub workspace_character_limit: i64,
    /// Chains, token, treasury and quote lifetime of the on-chain marketplace.
    pub onchain: feria_onchain_entitlements::OnchainSettings,
    /// The webhook delivery worker: polling, retries, timeouts, auto-disable, targets.
    pub webhooks: feria_events::WebhookSettings,
    /// `FERIA_SECRET_KEY` and `FERIA_SECRET_KEY_PREVIOUS` as given (checked when the keyring
    /// is made: [`crate::secrets::keyring`]).
    pub secret_keys: SecretKeySettings,
    /// Whether the server handles SIGTERM (graceful stop) and SIGINT/SIGQUIT (immediate stop);
    /// off for servers embedded in tests.
    pub handle_signals: bool,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// How often the subscription renewal worker runs; `None`: it does not run.
    pub subscription_renewal_interval: Option<Duration>,
    /// Where the server reads the time for its rate limits, its credential cache and
    /// sign-in codes: the system's clock; tests hand in a manual one and move it.
    pub clock: feria_kernel::time::Clock,
    /// The reverse proxies whose forwarding headers name the client.
    pub trusted_proxies: crate::client_address::TrustedProxies,
    /// Browser origins allowed to call the API for every platform (CORS), and how often
    /// every platform's own list is reloaded.
    pub cors: CorsSettings,
    /// Where request spans are exported; `None`: they are not.
    pub otlp: Option<OtlpSettings>,
}

/// The server's secret keys as configured; never printed.
#[derive(Clone, Default)]
pub struct SecretKeySettings {
    pub current: Option<String>,
    pub previous: Option<String>,
}

impl std::fmt::Debug for SecretKeySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeySettings")
            .field("current", &self.current.as_ref().map(|_| "***"))
            .field("previous", &self.previous.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Server-wide CORS settings (docs/DEPLOYMENT.md, `## CORS`).
#[derive(Debug, Clone)]
pub struct CorsSettings {
    /// Allowed for every platform, checked by [`feria_platforms::cors::parse_origin`].
    pub allowed_origins: Vec<String>,
    /// How often every platform's allowed origins are read again.
    pub refresh: Duration,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            allowed_origins: Vec::new(),
            refresh: Duration::from_secs(5),
        }
    }
}

/// Where Stripe is and the keys per mode.
#[derive(Clone)]
pub struct StripeSettings {
    pub api_base: String,
    pub test_secret_key: Option<String>,
    pub live_secret_key: Option<String>,
}

impl Default for StripeSettings {
    fn default() -> Self {
        StripeSettings {
            api_base: feria_billing::stripe::DEFAULT_BASE_URL.to_owned(),
            test_secret_key: None,
            live_secret_key: None,
        }
    }
}

impl std::fmt::Debug for StripeSettings {
    /// Never prints the keys, only whether they are set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("api_base", &self.api_base)
            .field(
                "test_secret_key",
                &self.test_secret_key.as_ref().map(|_| "***"),
            )
            .field(
                "live_secret_key",
                &self.live_secret_key.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl Settings {
    pub fn resolve(&self) -> Config {
        let database_url = self
            .database_url
            .clone()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("feria.db").display()));
        Config {
            bind: self.bind,
            database_url,
            data_dir: self.data_dir.clone(),
            mail_dir: self
                .mail_dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("mail")),
            smtp_url: self.smtp_url.clone().filter(|url| !url.is_empty()),
            mail_from: self.mail_from.clone(),
            otp_requests_per_ip: self.otp_requests_per_ip,
            auth: feria_auth::AuthSettings::default(),
            log_format: self.log_format,
            database_pool_size: self.database_pool_size,
            database_acquire_timeout: Duration::from_secs(self.database_acquire_timeout_secs),
            replicas: feria_kernel::db::ReplicaConfig {
                urls: self.database_replica_urls.0.clone(),
                max_lag: Duration::from_millis(self.replica_max_lag_ms),
                pool_size: self.replica_pool_size,
                ..feria_kernel::db::ReplicaConfig::default()
            },
            write_positions: None,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            client_header_timeout: Duration::from_secs(self.client_header_timeout_secs),
            body_limit_bytes: self.body_limit_bytes,
            workers: self.workers,
            media_dir: self.data_dir.join("media"),
            media_store: self.media_store.clone(),
            media_s3: feria_platforms::media::S3Settings {
                endpoint: self
                    .media_s3_endpoint
                    .clone()
                    .filter(|url| !url.trim().is_empty()),
                region: self.media_s3_region.clone(),
                access_key_id: self.aws_access_key_id.clone().filter(|k| !k.is_empty()),
                secret_access_key: self.aws_secret_access_key.clone().filter(|k| !k.is_empty()),
            },
            media_max_bytes: self.media_max_bytes,
            media_uploads_per_ip: self.media_uploads_per_ip,
            write_rate_limit: self.write_rate_limit,
            write_rate_burst: self.write_rate_burst,
            redis_url: self.redis_url.clone().filter(|url| !url.is_empty()),
            api_key_cache_ttl: Duration::from_millis(self.api_key_cache_ms),
            session_cache_ttl: Duration::from_millis(self.session_cache_ms),
            public_url: self
                .public_url
                .as_deref()
                .map(|url| url.trim_end_matches('/').to_owned())
                .filter(|url| !url.is_empty()),
            fees: feria_billing::fees::FeeSchedule {
                service_percent: self.service_fee_percent,
                processor_percent: self.processor_fee_percent,
                processor_fixed_minor: self.processor_fee_fixed,
            },
            stripe: StripeSettings {
                api_base: self.stripe_api_base.trim_end_matches('/').to_owned(),
                test_secret_key: self
                    .stripe_test_secret_key
                    .clone()
                    .filter(|k| !k.is_empty()),
                live_secret_key: self
                    .stripe_live_secret_key
                    .clone()
                    .filter(|k| !k.is_empty()),
            },
            workspace_character_limit: self.workspace_character_limit.max(0),
            onchain: self.onchain_settings(),
            webhooks: self.webhook_settings(),
            secret_keys: SecretKeySettings {
                current: self
                    .feria_secret_key
                    .clone()
                    .filter(|k| !k.trim().is_empty()),
                previous: self
                    .feria_secret_key_previous
                    .clone()
                    .filter(|k| !k.trim().is_empty()),
            },
            handle_signals: true,
            shutdown_timeout_secs: 30,
            subscription_renewal_interval: (self.subscription_renewal_interval_secs > 0)
                .then(|| Duration::from_secs(self.subscription_renewal_interval_secs)),
            clock: feria_kernel::time::Clock::system(),
            trusted_proxies: self.trusted_proxies.clone(),
            cors: CorsSettings {
                allowed_origins: self.cors_allowed_origins.0.clone(),
                // A floor, so that a mistaken 0 does not turn the reload into a busy loop.
                refresh: Duration::from_millis(self.cors_refresh_ms.max(100)),
            },
            otlp: self
                .otel_exporter_otlp_endpoint
                .as_deref()
                .map(str::trim)
                .filter(|endpoint| !endpoint.is_empty())
                .map(|endpoint| OtlpSettings {
                    endpoint: endpoint.to_owned(),
                    protocol: self.otel_exporter_otlp_protocol,
                    service_name: self.otel_service_name.clone(),
                }),
        }
    }

    fn webhook_settings(&self) -> feria_events::WebhookSettings {
        feria_events::WebhookSettings {
            poll_interval: Duration::from_millis(self.webhook_poll_interval_ms.max(10)),
            retry_base: Duration::from_millis(self.webhook_retry_base_ms),
            retry_max: Duration::from_millis(self.webhook_retry_max_ms),
            retry_window: Duration::from_secs(self.webhook_retry_window_secs),
            timeout: Duration::from_millis(self.webhook_timeout_ms.max(1)),
            disable_after_failures: self.webhook_disable_after_failures.max(1),
            disable_after: Duration::from_secs(self.webhook_disable_after_secs),
            allow_private_targets: self.webhook_allow_private_targets,
            ..feria_events::WebhookSettings::default()
        }
    }

    /// One chain when `ONCHAIN_RPC_URL` is set; its addresses are checked at start-up.
    fn onchain_settings(&self) -> feria_onchain_entitlements::OnchainSettings {
        let chains = self
            .onchain_rpc_url
            .as_deref()
            .filter(|url| !url.is_empty())
            .map(|url| feria_onchain_entitlements::ChainConfig {
                chain_id: self.onchain_chain_id,
                rpc_url: url.to_owned(),
                token_address: self.onchain_usdc_address.clone().unwrap_or_default(),
                treasury_address: self.onchain_treasury_address.clone().unwrap_or_default(),
                confirmations: self.onchain_confirmations,
                finality_blocks: self.onchain_finality_blocks,
            })
            .into_iter()
            .collect();
        feria_onchain_entitlements::OnchainSettings {
            chains,
            quote_ttl: Duration::from_secs(self.onchain_quote_ttl_secs),
            receipt_ttl: Duration::from_secs(self.onchain_receipt_ttl_secs.max(1)),
            finality_interval: (self.onchain_finality_interval_ms > 0)
                .then(|| Duration::from_millis(self.onchain_finality_interval_ms.max(10))),
            ..Default::default()
        }
    }
}

impl Config {
    /// Defaults for a server keeping its data under `data_dir`, on `database_url`.
    pub fn new(data_dir: impl Into<PathBuf>, database_url: impl Into<String>) -> Config {
        let data_dir = data_dir.into();
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: database_url.into(),
            mail_dir: data_dir.join("mail"),
            smtp_url: None,
            mail_from: "Feria <no-reply@feria.localhost>".into(),
            otp_requests_per_ip: 30,
            auth: feria_auth::AuthSettings::default(),
            log_format: LogFormat::Pretty,
            database_pool_size: None,
            database_acquire_timeout: Duration::from_secs(5),
            replicas: feria_kernel::db::ReplicaConfig::default(),
            write_positions: None,
            request_timeout: Duration::from_secs(30),
            client_header_timeout: Duration::from_secs(5),
            body_limit_bytes: 256 * 1024,
            workers: None,
            media_dir: data_dir.join("media"),
            media_store: feria_platforms::media::MediaLocation::File,
            media_s3: feria_platforms::media::S3Settings {
                region: "us-east-1".into(),
                ..Default::default()
            },
            media_max_bytes: 5 * 1024 * 1024,
            media_uploads_per_ip: 60,
            write_rate_limit: 100,
            write_rate_burst: 200,
            redis_url: None,
            api_key_cache_ttl: Duration::from_secs(2),
            session_cache_ttl: Duration::from_secs(2),
            public_url: None,
            fees: feria_billing::fees::FeeSchedule::default(),
            stripe: StripeSettings::default(),
            workspace_character_limit: feria_template_marketplace::DEFAULT_CHARACTER_LIMIT,
            onchain: feria_onchain_entitlements::OnchainSettings::default(),
            webhooks: feria_events::WebhookSettings::default(),
            secret_keys: SecretKeySettings::default(),
            handle_signals: true,
            shutdown_timeout_secs: 30,
            subscription_renewal_interval: Some(Duration::from_secs(300)),
            clock: feria_kernel::time::Clock::system(),
            trusted_proxies: crate::client_address::TrustedProxies::default(),
            otlp: None,
            data_dir,
            cors: CorsSettings::default(),
        }
    }

    /// The mailer: SMTP when `smtp_url` is set, otherwise `.eml` files in `mail_dir`.
    pub fn mailer(&self) -> Result<feria_kernel::mail::Mailer, feria_kernel::mail::MailError> {
        match &self.smtp_url {
            Some(url) => feria_kernel::mail::Mailer::smtp(url, &self.mail_from),
            None => feria_kernel::mail::Mailer::directory(&self.mail_dir, &self.mail_from),
        }
    }

    /// The media store the settings name; not yet checked to answer
    /// ([`feria_platforms::media::MediaStore::check`]).
    pub fn media_store(
        &self,
    ) -> Result<feria_platforms::media::MediaStore, feria_platforms::media::MediaConfigError> {
        feria_platforms::media::MediaStore::configured(
            &self.media_store,
            &self.media_dir,
            &self.media_s3,
            self.media_max_bytes,
        )
    }

    pub fn db_config(&self) -> feria_kernel::DbConfig {
        let mut db = feria_kernel::DbConfig::new(self.database_url.clone());
        db.max_connections = self.database_pool_size;
        db.acquire_timeout = self.database_acquire_timeout;
        db
    }

    /// [`Config::db_config`] with the read replicas: the server's database (the other
    /// commands read and write the primary only).
    pub fn server_db_config(&self) -> feria_kernel::DbConfig {
        let mut db = self.db_config();
        db.replicas = self.replicas.clone();
        db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_put_everything_under_the_data_dir() {
        let cli = Cli::try_parse_from(["feria", "--data-dir", "/srv/feria"]).unwrap();
        assert!(cli.command.is_none());
        let config = cli.settings.resolve();
        assert_eq!(config.database_url, "sqlite:///srv/feria/feria.db");
        assert_eq!(config.mail_dir, PathBuf::from("/srv/feria/mail"));
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.workspace_character_limit, 25);
    }

    #[test]
    fn the_workspace_character_limit_is_a_setting() {
        let cli = Cli::try_parse_from(["feria", "--workspace-character-limit", "40"]).unwrap();
        assert_eq!(cli.settings.resolve().workspace_character_limit, 40);
        assert!(Cli::try_parse_from(["feria", "--workspace-character-limit", "many"]).is_err());
    }

    #[test]
    fn onchain_settings_configure_one_chain_when_a_node_is_named() {
        let cli = Cli::try_parse_from(["feria"]).unwrap();
        let config = cli.settings.resolve();
        assert!(config.onchain.chains.is_empty());
        assert_eq!(config.onchain.quote_ttl, Duration::from_secs(900));

        let cli = Cli::try_parse_from([
            "feria",
            "--onchain-rpc-url",
            "http://127.0.0.1:8545",
            "--onchain-usdc-address",
            "0x2222222222222222222222222222222222222222",
            "--onchain-treasury-address",
            "0x3333333333333333333333333333333333333333",
            "--onchain-confirmations",
            "3",
            "--onchain-quote-ttl-secs",
            "60",
        ])
        .unwrap();
        let onchain = cli.settings.resolve().onchain;
        assert_eq!(onchain.quote_ttl, Duration::from_secs(60));
        assert_eq!(
            onchain.chains,
            vec![feria_onchain_entitlements::ChainConfig {
                chain_id: 8453,
                rpc_url: "http://127.0.0.1:8545".into(),
                token_address: "0x2222222222222222222222222222222222222222".into(),
                treasury_address: "0x3333333333333333333333333333333333333333".into(),
                confirmations: 3,
                finality_blocks: 64,
            }]
        );
        assert!(feria_onchain_entitlements::Onchain::new(&onchain).is_ok());
    }

    #[test]
    fn a_named_node_without_addresses_is_refused_at_start_up() {
        let cli =
            Cli::try_parse_from(["feria", "--onchain-rpc-url", "http://127.0.0.1:8545"]).unwrap();
        let onchain = cli.settings.resolve().onchain;
        let error = feria_onchain_entitlements::Onchain::new(&onchain).unwrap_err();
        assert!(error.to_string().contains("token address"), "{error}");
    }

    #[test]
    fn trusted_proxies_are_networks_and_a_bad_entry_stops_the_start() {
        let config = Cli::try_parse_from(["feria"]).unwrap().settings.resolve();
        assert!(config.trusted_proxies.is_empty());
        let cli =
            Cli::try_parse_from(["feria", "--trusted-proxies", "10.0.0.0/8, 192.0.2.1"]).unwrap();
        let config = cli.settings.resolve();
        assert!(config.trusted_proxies.contains([10, 1, 2, 3].into()));
        assert!(config.trusted_proxies.contains([192, 0, 2, 1].into()));
        assert!(!config.trusted_proxies.contains([192, 0, 2, 2].into()));
        let error = Cli::try_parse_from(["feria", "--trusted-proxies", "10.0.0.0/8,lb.internal"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("`lb.internal`"), "{error}");
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list_checked_at_start_up() {
        let cli = Cli::try_parse_from(["feria"]).unwrap();
        assert!(cli.settings.resolve().cors.allowed_origins.is_empty());
        let cli = Cli::try_parse_from([
            "feria",
            "--cors-allowed-origins",
            "https://app.example.com, http://localhost:3000",
        ])
        .unwrap();
        assert_eq!(
            cli.settings.resolve().cors.allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        for bad in ["*", "https://app.example.com/", "app.example.com"] {
            let error = Cli::try_parse_from(["feria", "--cors-allowed-origins", bad]).unwrap_err();
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn the_media_store_is_a_directory_by_default_or_a_checked_s3_location() {
        use feria_platforms::media::MediaLocation;
        let config = Cli::try_parse_from(["feria"]).unwrap().settings.resolve();
        assert_eq!(config.media_store, MediaLocation::File);
        assert!(!config.media_store().unwrap().is_object_store());
        let cli = Cli::try_parse_from([
            "feria",
            "media",
            "migrate",
            "--media-store",
            "s3://feria-media/prod",
            "--media-s3-endpoint",
            "http://127.0.0.1:9000",
            "--aws-access-key-id",
            "AKID",
            "--aws-secret-access-key",
            "SECRET",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Media {
                command: MediaCommand::Migrate
            })
        ));
        let config = cli.settings.resolve();
        assert_eq!(config.media_store.to_string(), "s3://feria-media/prod");
        assert!(config.media_store().unwrap().is_object_store());
        assert!(!format!("{config:?}").contains("SECRET"));
        let error = Cli::try_parse_from(["feria", "--media-store", "/srv/media"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("s3://bucket"), "{error}");
    }

    #[test]
    fn replica_urls_are_a_comma_separated_list_of_postgres_urls() {
        let config = Cli::try_parse_from(["feria"]).unwrap().settings.resolve();
        assert!(config.replicas.urls.is_empty());
        assert_eq!(config.replicas.max_lag, Duration::from_millis(1000));
        let cli = Cli::try_parse_from([
            "feria",
            "--database-replica-urls",
            "postgres://feria:hunter2@r1/feria?sslmode=require, postgres://feria@r2/feria",
            "--replica-max-lag-ms",
            "250",
        ])
        .unwrap();
        let config = cli.settings.resolve();
        assert_eq!(
            config.replicas.urls,
            [
                "postgres://feria:hunter2@r1/feria?sslmode=require",
                "postgres://feria@r2/feria"
            ]
        );
        assert_eq!(config.replicas.max_lag, Duration::from_millis(250));
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(config.db_config().replicas.urls.is_empty());
        assert_eq!(config.server_db_config().replicas.urls.len(), 2);
        let error = Cli::try_parse_from([
            "feria",
            "--database-replica-urls",
            "sqlite://x.db,mysql://u:pw@h/db",
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("sqlite://x.db"), "{error}");
    }

    #[test]
    fn flags_after_the_subcommand_are_accepted() {
        let cli = Cli::try_parse_from(["feria", "migrate", "--database-url", "postgres://x@y/z"])
            .unwrap();
        assert!(matches!(cli.command, Some(Command::Migrate)));
        assert_eq!(cli.settings.resolve().database_url, "postgres://x@y/z");
    }
}
