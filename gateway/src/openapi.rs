//! The OpenAPI document, generated from the handlers' annotations. A committed copy lives
//! in `openapi/openapi.json`; a test fails when it drifts (`make openapi` regenerates it).

use feria_auth::AuthCode;
use feria_kernel::{ErrorBody, FieldError, KernelCode};
use utoipa::OpenApi;

use crate::error::GatewayCode;

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
        routes::media::serve,
        routes::auth::request_code,
        routes::auth::verify_code,
        routes::auth::refresh,
        routes::auth::logout,
        routes::platforms::current,
        routes::platforms::by_domain,
        routes::platforms::update,
        routes::platforms::set_image,
        routes::platforms::membership,
        routes::platforms::list_keys,
        routes::platforms::roll_key,
        routes::users::me,
        routes::users::update_me,
        routes::users::delete_me,
        routes::users::add_my_link,
        routes::users::remove_my_link,
        routes::users::create,
        routes::users::list,
        routes::users::get,
        routes::users::update,
        routes::users::delete,
        routes::users::add_link,
        routes::users::remove_link,
        routes::users::set_my_image,
        routes::users::set_image,
        routes::user_payments::connect_my_bank,
        routes::user_payments::client_secret,
        routes::user_payments::my_methods,
        routes::user_payments::add_my_method,
        routes::user_payments::remove_my_method,
        routes::user_payments::default_my_method,
        routes::user_payments::bank_account,
        routes::user_payments::methods,
        routes::user_payments::remove_method,
        routes::user_payments::default_method,
        routes::usernames::username,
        routes::usernames::username_seed,
        routes::uploads::upload,
        routes::fees::estimate_fee,
        routes::credits::top_up,
        routes::credits::credits,
        routes::credits::my_credits,
        routes::transactions::list,
        routes::transactions::get,
        routes::transactions::refund,
        routes::transactions::revenue,
        routes::transactions::spend,
        routes::transactions::metrics,
        routes::transactions::top_spenders,
        routes::transactions::top_earners,
        routes::events::list_events,
        routes::events::get_event,
        routes::events::create_endpoint,
        routes::events::list_endpoints,
        routes::events::get_endpoint,
        routes::events::update_endpoint,
        routes::events::delete_endpoint,
        routes::events::deliveries,
        routes::events::redeliver,
        routes::waitlists::join,
        routes::waitlists::list,
        routes::waitlists::count,
        routes::waitlists::grant,
        routes::waitlists::remove,
        routes::calendars::my_calendar,
        routes::calendars::set_availability,
        routes::calendars::modify_availability,
        routes::calendars::my_ics,
        routes::calendars::add_event,
        routes::calendars::get_event,
        routes::calendars::update_event,
        routes::calendars::remove_event,
        routes::calendars::user_availability,
        routes::calendars::localtime,
        routes::catalog::create,
        routes::catalog::list,
        routes::catalog::list_by_user,
        routes::catalog::categories,
        routes::catalog::get,
        routes::catalog::update,
        routes::catalog::delete,
        routes::catalog::list_prices,
        routes::catalog::add_price,
        routes::catalog::remove_price,
        routes::catalog::set_price_usage,
        routes::catalog::enable,
        routes::catalog::disable,
        routes::carts::add,
        routes::carts::view,
        routes::carts::remove_item,
        routes::carts::clear,
        routes::contracts::create,
        routes::contracts::from_cart,
        routes::contracts::list,
        routes::contracts::as_buyer,
        routes::contracts::as_seller,
        routes::contracts::mine,
        routes::contracts::get,
        routes::contracts::update,
        routes::contracts::void,
        routes::contracts::add_item,
        routes::contracts::remove_item,
        routes::contracts::add_buyer,
        routes::contracts::set_due,
        routes::contracts::remove_buyer,
        routes::contracts::add_seller,
        routes::contracts::set_owed,
        routes::contracts::remove_seller,
        routes::contracts::add_fee,
        routes::contracts::update_fee,
        routes::contracts::remove_fee,
        routes::contracts::set_fee_inclusion,
        routes::contracts::send,
        routes::contracts::settle,
        routes::contracts::sync,
        routes::subscriptions::subscribe,
        routes::subscriptions::list_for_user,
        routes::subscriptions::get,
        routes::subscriptions::pause,
        routes::subscriptions::resume,
        routes::subscriptions::end,
        routes::marketplace::list_workspaces,
        routes::marketplace::set_workspace_limit,
        routes::marketplace::create_character,
        routes::marketplace::list_characters,
        routes::marketplace::get_character,
        routes::marketplace::update_character,
        routes::marketplace::delete_character,
        routes::marketplace::browse,
        routes::marketplace::get_listing,
        routes::marketplace::purchase,
        routes::marketplace::create_listing,
        routes::marketplace::update_listing,
        routes::marketplace::delete_listing,
        routes::marketplace::my_listings,
        routes::marketplace::my_purchases,
        routes::marketplace::create_review,
        routes::marketplace::list_reviews,
        routes::onchain::list_offers,
        routes::onchain::create_offer,
        routes::onchain::update_offer,
        routes::onchain::retire_offer,
        routes::onchain::quote,
        routes::onchain::confirm,
        routes::onchain::entitlements,
        routes::onchain::revoke,
        routes::onchain::receipt,
        routes::onchain::jwks,
    ),
    components(schemas(ErrorBody, FieldError)),
    modifiers(&SecuritySchemes, &CommonErrors),
    tags(
        (name = "operations", description = "Health, readiness, metrics and the API's own description."),
        (name = "auth", description = "Passwordless sign-in with an emailed code; sessions with rotating refresh tokens."),
        (name = "platforms", description = "The platform (tenant) of the caller: settings, keys, community."),
        (name = "users", description = "The people of a platform."),
        (name = "waitlists", description = "People waiting for access, in order of arrival."),
        (name = "credits", description = "Prepaid credits: the internal payment provider."),
        (name = "transactions", description = "Every movement of money, per-user totals and platform metrics."),
        (name = "events", description = "The event log: every committed change that moves money or access, in order (docs/EVENTS.md)."),
        (name = "webhooks", description = "Webhook endpoints, signed deliveries with retries, delivery history and redelivery (docs/EVENTS.md)."),
        (name = "utils", description = "Helpers that need no credentials: usernames from text, image uploads and the images themselves."),
        (name = "calendars", description = "Each user's calendar: weekly availability and dated overrides in an IANA time zone, free slots in UTC, events, an iCalendar feed, and local-time conversion."),
        (name = "products", description = "The catalog: products and variants, categories, seasonal prices, stock, full-text search."),
        (name = "carts", description = "The signed-in user's cart: lines with snapshot prices, totals."),
        (name = "contracts", description = "Contracts (invoices) between buyers and sellers: lines, shares, fees, send, settle with credits, sync. See docs/CONTRACTS.md."),
        (name = "subscriptions", description = "Subscriptions to a contract's terms: the first cycle is charged from the subscriber's credits at once, then each cycle (weekly, monthly, yearly) by the server's renewal worker; pause (optionally until a date), resume, end. See docs/SUBSCRIPTIONS.md."),
        (name = "marketplace", description = "Two marketplaces under /marketplace. The character-template marketplace (session auth only): workspaces, characters, listings, purchases with credits that clone the character into the buyer's workspace, dashboards, reviews. On-chain entitlements: offers priced in USDC, checkout quotes carrying the exact token transfer, confirmation by transaction hash verified on an EVM chain, entitlements per wallet.")
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

/// The errors any route can answer whatever it does, added to each operation that does
/// not document them itself, so that the document lists every status a client can get
/// (the schema fuzzer holds the server to it): 400 for a body that is not JSON, a query
/// string or header that does not parse; 413 and 415 for a body too large or not JSON;
/// 422 for a body that breaks the rules; 429 on every write (the write rate limit); 503
/// when the database is unreachable or the request took too long
/// (docs/API-CONVENTIONS.md).
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                (false, &mut item.get),
                (true, &mut item.put),
                (true, &mut item.post),
                (true, &mut item.delete),
                (true, &mut item.patch),
            ];
            for (is_write, operation) in operations {
                let Some(operation) = operation else { continue };
                let has_body = operation.request_body.is_some();
                let has_parameters = operation.parameters.iter().flatten().any(|parameter| {
                    matches!(
                        parameter.parameter_in,
                        ParameterIn::Query | ParameterIn::Header
                    )
                });
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description).into());
                };
                if has_body || has_parameters {
                    add(
                        "400",
                        "The body is not valid JSON (`malformed_json`), or a query parameter or header does not parse (`invalid_query`, `invalid_idempotency_key`).",
                    );
                }
                if has_body {
                    add(
                        "413",
                        "The body is larger than the limit (`payload_too_large`).",
                    );
                    add(
                        "415",
                        "The body is not of a documented content type (`unsupported_media_type`).",
                    );
                    add(
                        "422",
                        "The body breaks a rule (`validation_failed`, with one entry per field in `details`).",
                    );
                }
                if is_write {
                    add(
                        "429",
                        "Too many writes from this credential (or, without one, this address): `rate_limited`, with `Retry-After` in seconds.",
                    );
                }
                add(
                    "503",
                    "The database is unreachable or busy, or the request took too long (`database_unavailable`, `database_busy`, `request_timeout`); retry after `Retry-After` seconds.",
                );
                if let Some(utoipa::openapi::RefOr::T(response)) = responses.get_mut("429") {
                    add_rate_limit_headers(response);
                }
            }
        }
    }
}

/// The headers of a 429 (docs/API-CONVENTIONS.md, "Rate limits"): `Retry-After`, and the
/// `RateLimit-*` headers of draft-ietf-httpapi-ratelimit-headers-07 that every response
/// counted by a limit carries (every write while the write limit is on, sign-in code
/// requests, uploads).
fn add_rate_limit_headers(response: &mut utoipa::openapi::Response) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};

    let headers: [(&str, Type, &str); 5] = [
        (
            "Retry-After",
            Type::Integer,
            "Seconds to wait before retrying, when the request was refused by a rate limit.",
        ),
        (
            "RateLimit-Limit",
            Type::Integer,
            "Requests the quota holds: the count of a window, or the burst of a token bucket.",
        ),
        (
            "RateLimit-Remaining",
            Type::Integer,
            "Requests that would pass now (0 when refused).",
        ),
        (
            "RateLimit-Reset",
            Type::Integer,
            "Seconds until the quota grows again: the end of the window, or the next token of a bucket (0 when the bucket is full).",
        ),
        (
            "RateLimit-Policy",
            Type::String,
            "The quota policies that counted the request, as limit;w=seconds, the one shown in the other headers first: a window of limit requests per w seconds, or a token bucket of limit writes that an empty bucket takes w seconds to refill.",
        ),
    ];
    for (name, schema_type, description) in headers {
        response.headers.entry(name.to_owned()).or_insert_with(|| {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(schema_type))
                .description(Some(description))
                .build()
        });
    }
}

/// The codes any operation may answer at a status, whatever it documents itself, listed
/// once in the document as `x-common-error-codes`: what the extractors, the middleware
/// and the router answer before or around a handler. An operation answers them at a
/// status it documents (a body route's 422, a secured route's 401, a write's 429); 404,
/// 405 and 500 any request may get.
pub const COMMON_ERROR_CODES: &[(u16, &[&str])] = &[
    // The JSON and query extractors, on any route with a body or a query string.
    (
        400,
        &[
            GatewayCode::MalformedJson.as_str(),
            GatewayCode::InvalidBody.as_str(),
            GatewayCode::InvalidQuery.as_str(),
        ],
    ),
    // The credential extractors, on every secured route.
    (
        401,
        &[
            KernelCode::Unauthorized.as_str(),
            AuthCode::InvalidCredentials.as_str(),
        ],
    ),
    // An unknown route, a path parameter that does not parse, a missing resource.
    (404, &[KernelCode::NotFound.as_str()]),
    (405, &[KernelCode::MethodNotAllowed.as_str()]),
    (413, &[KernelCode::PayloadTooLarge.as_str()]),
    (415, &[KernelCode::UnsupportedMediaType.as_str()]),
    (422, &[KernelCode::ValidationFailed.as_str()]),
    // The write rate limit (middleware).
    (429, &[KernelCode::RateLimited.as_str()]),
    (500, &[KernelCode::Internal.as_str()]),
    // The database (any route that reads it) and the request timeout (middleware).
    (
        503,
        &[
            KernelCode::DatabaseUnavailable.as_str(),
            KernelCode::DatabaseBusy.as_str(),
            KernelCode::DatabaseReadOnly.as_str(),
            GatewayCode::RequestTimeout.as_str(),
        ],
    ),
];

/// The common codes of a status.
pub fn common_codes(status: u16) -> Vec<&'static str> {
    COMMON_ERROR_CODES
        .iter()
        .filter(|(common, _)| *common == status)
        .flat_map(|(_, codes)| codes.iter().copied())
        .collect()
}

/// The document's code lists do not hold: a description names a code the server does
/// not have, or at another status, or an error response names none.
#[derive(Debug, thiserror::Error)]
#[error("the OpenAPI document's error codes are wrong:\n{}", .0.join("\n"))]
pub struct CodeListError(pub Vec<String>);

/// Why the document cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Codes(#[from] CodeListError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// The document, with each error response's codes listed as data: `x-error-codes` on the
/// response (the backticked codes of its description) and `x-common-error-codes` on the
/// document. Fails when a description backticks a snake_case word that is neither a
/// known code nor a field or parameter of the document, names a code of another status,
/// or when an error response has no code of its own and its status no common one.
pub fn document() -> Result<utoipa::openapi::OpenApi, SpecError> {
    let mut openapi = ApiDoc::openapi();
    let names = field_names(&serde_json::to_value(&openapi)?);
    let known = crate::error::known_codes();
    let mut problems = Vec::new();
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            for (status, response) in operation.responses.responses.iter_mut() {
                let utoipa::openapi::RefOr::T(response) = response else {
                    continue;
                };
                let Ok(status) = status.parse::<u16>() else {
                    continue;
                };
                if status < 400 {
                    continue;
                }
                let mut codes: Vec<&str> = Vec::new();
                for word in backticked(&response.description) {
                    match known.iter().find(|(code, _)| *code == word) {
                        Some((code, kind)) if kind.status() == status && !codes.contains(code) => {
                            codes.push(code);
                        }
                        Some((_, kind)) if kind.status() == status => {}
                        Some((code, kind)) => problems.push(format!(
                            "{method} {path} {status}: `{code}` is answered with {}",
                            kind.status()
                        )),
                        None if feria_kernel::error::is_snake_case_code(word)
                            && !names.contains(word) =>
                        {
                            problems.push(format!(
                                "{method} {path} {status}: `{word}` is not a known code \
                                 (crate error enums, gateway/src/error.rs) nor a field"
                            ))
                        }
                        None => {}
                    }
                }
                if codes.is_empty() && common_codes(status).is_empty() {
                    problems.push(format!(
                        "{method} {path} {status}: the description names no code (in backticks)"
                    ));
                }
                if !codes.is_empty() {
                    response
                        .extensions
                        .get_or_insert_with(Default::default)
                        .insert("x-error-codes".to_owned(), codes.into());
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(CodeListError(problems).into());
    }
    let common: serde_json::Map<String, serde_json::Value> = COMMON_ERROR_CODES
        .iter()
        .map(|(status, _)| (status.to_string(), common_codes(*status).into()))
        .collect();
    openapi
        .extensions
        .get_or_insert_with(Default::default)
        .insert("x-common-error-codes".to_owned(), common.into());
    Ok(openapi)
}

/// The words between backticks in a description.
fn backticked(description: &str) -> impl Iterator<Item = &str> {
    let pieces: Vec<&str> = description.split('`').collect();
    // An odd piece is inside backticks only when a closing backtick follows it: the last
    // piece of an unclosed one is plain text.
    let closed = pieces.len().saturating_sub(1) / 2 * 2;
    pieces.into_iter().take(closed).skip(1).step_by(2)
}

/// Every property and parameter name in the document: descriptions backtick field names
/// as well as codes.
fn field_names(document: &serde_json::Value) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    let mut stack = vec![document];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(properties)) = map.get("properties") {
                    names.extend(properties.keys().cloned());
                }
                if let (Some(serde_json::Value::String(name)), Some(_)) =
                    (map.get("name"), map.get("in"))
                {
                    names.insert(name.clone());
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    names
}

/// The document as pretty JSON with a trailing newline (the committed form).
pub fn spec_json() -> Result<String, SpecError> {
    let mut json = document()?.to_pretty_json()?;
    json.push('\n');
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_codes_are_known_at_their_status() {
        for (status, codes) in COMMON_ERROR_CODES {
            for code in codes.iter() {
                let kind = crate::error::kind_of(code);
                assert_eq!(kind.map(|k| k.status()), Some(*status), "{code:?}");
            }
        }
    }

    #[test]
    fn the_document_lists_codes() {
        let document = match document() {
            Ok(document) => document,
            Err(error) => panic!("{error}"),
        };
        let json = serde_json::to_value(&document).unwrap_or_default();
        let send = &json["paths"]["/api/v1/contracts/{id}/send"]["post"]["responses"]["409"];
        assert_eq!(
            send["x-error-codes"],
            serde_json::json!(["contract_locked", "contract_incomplete"])
        );
        assert_eq!(
            json["x-common-error-codes"]["404"],
            serde_json::json!(["not_found"])
        );
    }

    #[test]
    fn backticked_words_are_found() {
        let words: Vec<&str> = backticked("a `b` c `d_e` and `f").collect();
        assert_eq!(words, ["b", "d_e"]);
    }
}
