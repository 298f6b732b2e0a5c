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
        routes::auth::request_code,
        routes::auth::verify_code,
        routes::auth::refresh,
        routes::auth::logout,
        routes::platforms::current,
        routes::platforms::by_domain,
        routes::platforms::update,
        routes::platforms::membership,
        routes::platforms::list_keys,
        routes::platforms::roll_key,
        routes::users::me,
        routes::users::update_me,
        routes::waitlists::join,
        routes::waitlists::list,
        routes::waitlists::count,
        routes::waitlists::grant,
        routes::waitlists::remove,
    ),
    components(schemas(ErrorBody, FieldError)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "operations", description = "Health, readiness, metrics and the API's own description."),
        (name = "auth", description = "Passwordless sign-in with an emailed code; sessions with rotating refresh tokens."),
        (name = "platforms", description = "The platform (tenant) of the caller: settings, keys, community."),
        (name = "users", description = "The people of a platform."),
        (name = "waitlists", description = "People waiting for access, in order of arrival.")
    )
)]
pub struct ApiDoc;

/// Two ways to authenticate: the platform's API key (`fer_test_...` / `fer_live_...`, acts as
/// admin) or a user's session access token (`fer_at_...`).
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The platform's secret key: `Authorization: Bearer fer_test_...` or `fer_live_...`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A signed-in user's access token: `Authorization: Bearer fer_at_...`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a trailing newline (the committed form).
pub fn spec_json() -> Result<String, serde_json::Error> {
    let mut json = ApiDoc::openapi().to_pretty_json()?;
    json.push('\n');
    Ok(json)
}
