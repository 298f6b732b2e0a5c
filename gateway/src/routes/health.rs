//! Liveness and readiness for orchestrators and load balancers.

use std::time::Instant;

use actix_web::{HttpResponse, web};
use feria_kernel::{ApiError, Db, ErrorBody};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::HttpError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // `web::resource` (not `cfg.route`) so that a wrong method is 405, not 404.
    cfg.service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)));
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// The server's version.
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// The git commit the binary was built from (`unknown` for a build outside a checkout).
    #[schema(example = "5bee479c1a2b")]
    pub commit: &'static str,
    /// The date of that commit.
    #[schema(example = "2026-12-07")]
    pub commit_date: &'static str,
}

/// Readiness: the database answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    #[schema(example = "sqlite")]
    pub database: &'static str,
    /// Round trip of the readiness query, in milliseconds.
    pub database_latency_ms: f64,
}

/// Is the process up? Touches nothing else.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses((status = 200, description = "The process is up.", body = Health))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        version: crate::build_info::VERSION,
        commit: crate::build_info::COMMIT,
        commit_date: crate::build_info::COMMIT_DATE,
    })
}

/// Can the server do work? Checks that the database answers a query.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "The database answered.", body = Readiness),
        (status = 503, description = "The database is unavailable (`database_unavailable`).", body = ErrorBody)
    )
)]
pub async fn readyz(db: web::Data<Db>) -> Result<HttpResponse, HttpError> {
    let started = Instant::now();
    db.ping().await.map_err(|error| {
        tracing::warn!(%error, "readiness check failed");
        ApiError::unavailable("database_unavailable", "the database is unavailable")
    })?;
    Ok(HttpResponse::Ok().json(Readiness {
        status: "ready",
        database: db.backend().name(),
        database_latency_ms: started.elapsed().as_secs_f64() * 1000.0,
    }))
}
