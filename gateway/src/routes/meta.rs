//! The API describing itself: the OpenAPI document, a human-readable page, and metrics.

use std::collections::HashMap;

use actix_web::http::header::{ContentType, HeaderValue};
use actix_web::{HttpResponse, web};
use feria_kernel::{ApiError, Db};

use crate::error::HttpError;
use crate::metrics::Metrics;

/// The OpenAPI document and its HTML rendering, made once at start-up.
pub struct ApiDocuments {
    pub json: String,
    pub html: String,
    /// The `Allow` header of each documented path (`GET, PUT`), by its route pattern:
    /// a 405 names the methods the path does accept (RFC 9110 §15.5.6).
    pub allow: HashMap<String, HeaderValue>,
}

impl ApiDocuments {
    /// The `Allow` value of every path of an OpenAPI document (its `paths` object).
    pub fn allow_headers(spec: &serde_json::Value) -> HashMap<String, HeaderValue> {
        let Some(paths) = spec["paths"].as_object() else {
            return HashMap::new();
        };
        paths
            .iter()
            .filter_map(|(path, operations)| {
                let mut methods: Vec<String> = operations
                    .as_object()?
                    .keys()
                    .filter(|key| HTTP_METHODS.contains(&key.as_str()))
                    .map(|method| method.to_ascii_uppercase())
                    .collect();
                methods.sort();
                let value = HeaderValue::from_str(&methods.join(", ")).ok()?;
                Some((path.clone(), value))
            })
            .collect()
    }
}

/// The keys of an OpenAPI path item that are operations.
const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").route(web::get().to(openapi_json)))
        .service(web::resource("/docs").route(web::get().to(docs)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

/// The OpenAPI 3.1 document of this server.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(documents: web::Data<ApiDocuments>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(documents.json.clone())
}

/// The API reference as a page for people.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    operation_id = "docs",
    responses((status = 200, description = "The API reference.", content_type = "text/html", body = String))
)]
pub async fn docs(documents: web::Data<ApiDocuments>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(documents.html.clone())
}

/// Metrics in the Prometheus text format: requests by route and status, latency
/// histograms, database pool use, the process, and business counters and backlogs
/// (docs/DEPLOYMENT.md, Observability).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition (version 0.0.4).", content_type = "text/plain", body = String))
)]
pub async fn metrics(
    metrics: web::Data<Metrics>,
    db: web::Data<Db>,
    config: web::Data<crate::config::Config>,
) -> Result<HttpResponse, HttpError> {
    let text = metrics
        .render(&db, config.clock.now())
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot render metrics");
            ApiError::internal()
        })?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_each_paths_operations_sorted() {
        let spec = serde_json::json!({"paths": {
            "/a/{id}": {"put": {}, "get": {}, "parameters": [], "delete": {}},
            "/b": {"post": {}},
        }});
        let allow = ApiDocuments::allow_headers(&spec);
        assert_eq!(allow["/a/{id}"], "DELETE, GET, PUT");
        assert_eq!(allow["/b"], "POST");
        assert!(ApiDocuments::allow_headers(&serde_json::json!({})).is_empty());
    }
}
