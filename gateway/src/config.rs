//! Configuration: parsed once from flags and environment, then passed down as typed values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Feria: a multi-tenant marketplace backend.
#[derive(Debug, Parser)]
#[command(name = "feria", version, about)]
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
    /// Manage platforms (tenants) without any HTTP secret.
    Platform {
        #[command(subcommand)]
        command: PlatformCommand,
    },
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
    /// Database URL: sqlite://PATH (default: sqlite://DATA_DIR/feria.db) or postgres://...
    #[arg(long, env = "DATABASE_URL", global = true)]
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
    #[arg(long, env = "SMTP_URL", global = true)]
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
    /// Database pool size (default: 8 on SQLite, 16 on PostgreSQL).
    #[arg(long, env = "DATABASE_POOL_SIZE", global = true)]
    pub database_pool_size: Option<usize>,
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
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 256 * 1024, global = true)]
    pub body_limit_bytes: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "WORKERS", global = true)]
    pub workers: Option<usize>,
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
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    pub workers: Option<usize>,
    /// Whether the server handles SIGTERM (graceful stop) and SIGINT/SIGQUIT (immediate stop);
    /// off for servers embedded in tests.
    pub handle_signals: bool,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout_secs: u64,
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
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            body_limit_bytes: self.body_limit_bytes,
            workers: self.workers,
            handle_signals: true,
            shutdown_timeout_secs: 30,
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
            data_dir,
            smtp_url: None,
            mail_from: "Feria <no-reply@feria.localhost>".into(),
            otp_requests_per_ip: 30,
            auth: feria_auth::AuthSettings::default(),
            log_format: LogFormat::Pretty,
            database_pool_size: None,
            database_acquire_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            body_limit_bytes: 256 * 1024,
            workers: None,
            handle_signals: true,
            shutdown_timeout_secs: 30,
        }
    }

    /// The mailer: SMTP when `smtp_url` is set, otherwise `.eml` files in `mail_dir`.
    pub fn mailer(&self) -> Result<feria_kernel::mail::Mailer, feria_kernel::mail::MailError> {
        match &self.smtp_url {
            Some(url) => feria_kernel::mail::Mailer::smtp(url, &self.mail_from),
            None => feria_kernel::mail::Mailer::directory(&self.mail_dir, &self.mail_from),
        }
    }

    pub fn db_config(&self) -> feria_kernel::DbConfig {
        let mut db = feria_kernel::DbConfig::new(self.database_url.clone());
        db.max_connections = self.database_pool_size;
        db.acquire_timeout = self.database_acquire_timeout;
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
    }

    #[test]
    fn flags_after_the_subcommand_are_accepted() {
        let cli = Cli::try_parse_from(["feria", "migrate", "--database-url", "postgres://x@y/z"])
            .unwrap();
        assert!(matches!(cli.command, Some(Command::Migrate)));
        assert_eq!(cli.settings.resolve().database_url, "postgres://x@y/z");
    }
}
