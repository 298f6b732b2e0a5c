//! The Feria server: the actix-web gateway over the domain crates.
//!
//! [`Server`] is the real server (configuration → database → migrations → HTTP); `feria
//! serve` runs it, and the test kit starts it in-process on a random port. Only this crate
//! knows actix-web: domain crates expose services and errors, mapped here to HTTP.

pub mod app;
pub mod build_info;
pub mod caller;
pub mod client_address;
pub mod config;
pub mod config_file;
pub mod cors;
pub mod docs;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod payments;
pub mod ratelimit;
pub mod replicas;
pub mod routes;
pub mod secrets;
pub mod shared_quota;
pub mod telemetry;

pub use app::{AppState, ExtraRoutes, Server, build_app};
pub use config::{Cli, Command, Config, LogFormat, Settings};
pub use error::HttpError;
