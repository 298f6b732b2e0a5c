//! The OpenAPI document, generated from the handlers' annotations. A committed copy lives
//! in `openapi/openapi.json`; a test fails when it drifts (`make openapi` regenerates it).

use feria_kernel::{ErrorBody, FieldError};
use utoipa::OpenApi;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Feria API",
        description = "A multi-tenant marketplace backend: platform API (tenants, users, products, carts, contracts, subscriptions, calendars, transactions), character-template marketplace, on-chain entitlements.\n\nEvery error has one shape: `{\"error\": \"snake_case_code\", \"message\": \"...\", \"details\": [{\"field\": \"...\", \"message\": \"...\"}], \"request_id\": \"...\"}`. Every response carries `X-Request-Id` (a client-supplied one is kept).",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::meta::openapi_json,
        routes::meta::docs,
        routes::meta::metrics,
    ),
    components(schemas(ErrorBody, FieldError)),
    tags((name = "operations", description = "Health, readiness, metrics and the API's own description."))
)]
pub struct ApiDoc;

/// The document as pretty JSON with a trailing newline (the committed form).
pub fn spec_json() -> Result<String, serde_json::Error> {
    let mut json = ApiDoc::openapi().to_pretty_json()?;
    json.push('\n');
    Ok(json)
}
