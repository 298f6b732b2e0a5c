//! Logging: `RUST_LOG` filters (default `info`), `LOG_FORMAT` picks pretty or JSON lines.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Where log lines go: the server logs to stdout (a service's stream); commands whose
/// stdout is their result (`platform create`, `ledger verify` print JSON) log to stderr,
/// so that `feria platform create ... | jq` works at any log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    Stdout,
    Stderr,
}

/// Installs the global subscriber; a second call (tests) keeps the first.
pub fn init(format: LogFormat) {
    init_to(format, LogTo::Stdout);
}

/// Installs the global subscriber writing to `to`; a second call keeps the first.
pub fn init_to(format: LogFormat, to: LogTo) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match (format, to) {
        (LogFormat::Pretty, LogTo::Stdout) => builder.try_init(),
        (LogFormat::Pretty, LogTo::Stderr) => builder.with_writer(std::io::stderr).try_init(),
        (LogFormat::Json, LogTo::Stdout) => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        (LogFormat::Json, LogTo::Stderr) => builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
