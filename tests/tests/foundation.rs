//! The foundation through real HTTP: health, readiness, request ids, the error shape for
//! every kind of bad request, metrics, the API's own description, timeouts and shutdown.
//! Runs on the backend `FERIA_TEST_BACKEND` names.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use feria::HttpError;
use feria::extract::{Json, Pagination};
use feria_kernel::db::DbError;
use feria_testkit::{Method, TestApp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;
use validator::Validate;

#[derive(Debug, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
struct Sample {
    #[validate(length(min = 1, message = "must not be empty"))]
    name: String,
    #[validate(range(min = 1, message = "must be positive"))]
    price: i64,
}

async fn echo_sample(body: Json<Sample>) -> HttpResponse {
    HttpResponse::Ok().json(body.into_inner())
}

async fn echo_page(page: Pagination) -> HttpResponse {
    HttpResponse::Ok().json(
        json!({"page": page.0.page(), "page_size": page.0.page_size(), "offset": page.0.offset()}),
    )
}

async fn slow() -> HttpResponse {
    tokio::time::sleep(Duration::from_millis(600)).await;
    HttpResponse::Ok().json(json!({"done": true}))
}

async fn failing() -> Result<HttpResponse, HttpError> {
    Err(DbError::Query(diesel_like_error()).into())
}

fn diesel_like_error() -> feria_kernel::__private::diesel::result::Error {
    feria_kernel::__private::diesel::result::Error::QueryBuilderError(
        "secret table feria_internal broke".into(),
    )
}

/// A server with a few probe routes that use the gateway's shared machinery.
async fn app_with_probes() -> TestApp {
    TestApp::builder()
        .config(|config| {
            config.body_limit_bytes = 1024;
            config.request_timeout = Duration::from_millis(300);
        })
        .routes(|cfg| {
            cfg.service(web::resource("/probe/sample").route(web::post().to(echo_sample)))
                .service(web::resource("/probe/page").route(web::get().to(echo_page)))
                .service(web::resource("/probe/slow").route(web::get().to(slow)))
                .service(web::resource("/probe/failing").route(web::get().to(failing)));
        })
        .spawn()
        .await
}

#[tokio::test]
async fn healthz_answers_ok_with_version() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").await.assert_status(200);
    let body = response.json_value();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    // The build: the commit git says this checkout is at (when it is one) and its date.
    let commit = body["commit"].as_str().unwrap();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(commit, head),
        None => assert_eq!(commit, "unknown"),
    }
    let date = body["commit_date"].as_str().unwrap();
    assert!(date == "unknown" || date.len() == 10, "{date}");
}

#[tokio::test]
async fn readyz_checks_the_database_and_names_the_backend() {
    let app = TestApp::spawn().await;
    let body = app.get("/readyz").await.assert_status(200).json_value();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], app.backend().name());
    assert!(body["database_latency_ms"].as_f64().is_some());

    app.server_db().close();
    let response = app.get("/readyz").await;
    response.assert_error(503, "database_unavailable");
    assert_eq!(response.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_plain_client_one() {
    let app = TestApp::spawn().await;
    let made = app.get("/healthz").await;
    let id = made.header("x-request-id").expect("a request id");
    assert_eq!(id.len(), 26, "a ULID: {id}");

    let kept = app
        .send(
            app.request(Method::GET, "/healthz")
                .header("X-Request-Id", "client-42.a:b_c"),
        )
        .await;
    assert_eq!(kept.header("x-request-id"), Some("client-42.a:b_c"));

    let replaced = app
        .send(
            app.request(Method::GET, "/healthz")
                .header("X-Request-Id", "bad id <script>"),
        )
        .await;
    assert_ne!(replaced.header("x-request-id"), Some("bad id <script>"));
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let (app, platform) = TestApp::spawn_with_platform().await;
    let success = app
        .get_as(&platform.api_keys.test, "/api/v1/platforms")
        .await;
    let refused = app.get("/api/v1/platforms").await;
    let missing = app.get("/api/v1/no-such-route").await;
    for response in [&success, &refused, &missing] {
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
        assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(
            response.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
        assert_eq!(response.header("cache-control"), Some("no-store"));
    }
    assert_eq!(success.status.as_u16(), 200);
    assert_eq!(refused.status.as_u16(), 401);
    assert_eq!(missing.status.as_u16(), 404);
    // The documentation page keeps the policy it needs to render.
    let docs = app.get("/docs").await.assert_status(200);
    assert_eq!(docs.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_error_shape() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/does-not-exist",
        "/nothing/here",
        "/api/v2/products",
    ] {
        let body = app.get(path).await.assert_error(404, "not_found");
        assert!(body.message.contains(path), "{}", body.message);
        assert!(body.details.is_empty());
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let response = app.send(app.request(Method::DELETE, "/healthz")).await;
    response.assert_error(405, "method_not_allowed");
    assert_eq!(response.header("Allow"), Some("GET"));
}

/// RFC 9110: a 405 names the methods the path accepts. Every documented path, asked with a
/// method it does not document, answers 405 with exactly its documented methods.
#[tokio::test]
async fn every_405_names_the_documented_methods_in_allow() {
    let app = TestApp::builder()
        .config(|c| c.write_rate_limit = 0)
        .spawn()
        .await;
    let spec = app
        .get("/openapi.json")
        .await
        .assert_status(200)
        .json_value();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        let mut documented: Vec<String> = operations
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.as_str() != "parameters")
            .map(|m| m.to_ascii_uppercase())
            .collect();
        documented.sort();
        let Some(undocumented) = ["PATCH", "PUT", "DELETE", "POST"]
            .into_iter()
            .find(|m| !documented.iter().any(|d| d == m))
        else {
            continue;
        };
        // Any value for a path parameter reaches the route's methods check.
        let concrete: String = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(undocumented.as_bytes()).unwrap();
        let response = app.send(app.request(method, &concrete)).await;
        checked += 1;
        let allow = response.header("Allow").map(str::to_owned);
        if response.status.as_u16() != 405 || allow.as_deref() != Some(&documented.join(", ")) {
            wrong.push(format!(
                "{undocumented} {concrete}: {} Allow {allow:?}, documented {documented:?}",
                response.status.as_u16()
            ));
        }
    }
    assert!(checked > 100, "only {checked} paths checked");
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = app_with_probes().await;
    let response = app
        .send(
            app.request(Method::POST, "/probe/sample")
                .header("content-type", "application/json")
                .body("{\"name\": \"x\", "),
        )
        .await;
    let body = response.assert_error(400, "malformed_json");
    assert!(body.message.contains("not valid JSON"), "{}", body.message);
}

#[tokio::test]
async fn an_oversized_body_is_413_whether_declared_or_streamed() {
    let app = app_with_probes().await;
    let big = json!({"name": "x".repeat(4096), "price": 1});
    app.post_json("/probe/sample", &big)
        .await
        .assert_error(413, "payload_too_large");

    // Chunked, with no Content-Length: the limit holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b' '; 512])).collect();
    let stream = futures_util::stream::iter(chunks);
    let response = app
        .send(
            app.request(Method::POST, "/probe/sample")
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    response.assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = app_with_probes().await;
    let response = app
        .send(
            app.request(Method::POST, "/probe/sample")
                .header("content-type", "text/plain")
                .body("name=x"),
        )
        .await;
    response.assert_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn field_problems_are_422_with_details_per_field() {
    let app = app_with_probes().await;

    let rules = app
        .post_json("/probe/sample", &json!({"name": "", "price": 0}))
        .await;
    let body = rules.assert_error(422, "validation_failed");
    let fields: Vec<_> = body
        .details
        .iter()
        .map(|d| (d.field.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![("name", "must not be empty"), ("price", "must be positive")]
    );

    let wrong_type = app
        .post_json("/probe/sample", &json!({"name": "x", "price": "ten"}))
        .await;
    let body = wrong_type.assert_error(422, "validation_failed");
    assert_eq!(body.details[0].field, "price");

    let unknown = app
        .post_json(
            "/probe/sample",
            &json!({"name": "x", "price": 1, "admin": true}),
        )
        .await;
    let body = unknown.assert_error(422, "validation_failed");
    assert!(
        body.details[0].message.contains("unknown field `admin`"),
        "{body:?}"
    );

    let ok = app
        .post_json("/probe/sample", &json!({"name": "mila", "price": 250}))
        .await;
    assert_eq!(
        ok.assert_status(200).json_value(),
        json!({"name": "mila", "price": 250})
    );
}

#[tokio::test]
async fn pagination_defaults_and_bounds() {
    let app = app_with_probes().await;
    let body = app.get("/probe/page").await.assert_status(200).json_value();
    assert_eq!(body, json!({"page": 1, "page_size": 20, "offset": 0}));
    let body = app
        .get("/probe/page?page=3&page_size=100")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(body, json!({"page": 3, "page_size": 100, "offset": 200}));

    let too_big = app
        .get("/probe/page?page_size=101")
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(too_big.details[0].field, "page_size");
    let zero = app
        .get("/probe/page?page=0")
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(zero.details[0].field, "page");
    app.get("/probe/page?page=-1")
        .await
        .assert_error(422, "validation_failed");
}

#[tokio::test]
async fn internal_errors_are_500_without_internals() {
    let app = app_with_probes().await;
    let response = app.get("/probe/failing").await;
    let body = response.assert_error(500, "internal_error");
    assert!(
        !response.text().contains("feria_internal"),
        "{}",
        response.text()
    );
    assert_eq!(body.message, "an internal error occurred");
}

#[tokio::test]
async fn a_request_past_the_timeout_is_503_in_the_error_shape() {
    let app = app_with_probes().await;
    let response = app.get("/probe/slow").await;
    response.assert_error(503, "request_timeout");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_report_the_pool() {
    let app = TestApp::spawn().await;
    app.get("/healthz").await.assert_status(200);
    app.get("/healthz").await.assert_status(200);
    app.get("/missing").await.assert_status(404);
    let response = app.get("/metrics").await.assert_status(200);
    assert!(
        response
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    let text = response.text();
    assert!(
        text.contains(r#"feria_http_requests_total{method="GET",route="/healthz",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"feria_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"feria_http_request_duration_seconds_bucket{method="GET",route="/healthz""#
        )
    );
    assert!(
        text.contains(r#"feria_db_pool_connections{state="max"} 8"#),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_as_committed_and_rendered_for_people() {
    let app = TestApp::spawn().await;
    let served = app.get("/openapi.json").await.assert_status(200);
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json"))
            .expect("committed spec parses");
    assert_eq!(
        served.json_value(),
        committed,
        "run `make openapi` to refresh openapi/openapi.json"
    );
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"] {
        assert!(committed["paths"][path].is_object(), "{path} is documented");
    }

    let docs = app.get("/docs").await.assert_status(200);
    assert!(
        docs.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let html = docs.text();
    assert!(html.contains("<code>/readyz</code>"));
    assert!(html.contains("schema-ErrorBody"));
}

#[tokio::test]
async fn a_graceful_stop_lets_in_flight_requests_finish() {
    // The handler says when it has started, so the stop is sent while it is in flight.
    let started = Arc::new(Notify::new());
    let signal = started.clone();
    let mut app = TestApp::builder()
        .routes(move |cfg| {
            let signal = signal.clone();
            cfg.service(web::resource("/probe/slow").route(web::get().to(move || {
                let signal = signal.clone();
                async move {
                    signal.notify_one();
                    slow().await
                }
            })));
        })
        .spawn()
        .await;
    // `Connection: close`, so that no idle keep-alive connection holds the shutdown open.
    let in_flight = tokio::spawn(
        app.client
            .get(app.url("/probe/slow"))
            .header("connection", "close")
            .send(),
    );
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the request reaches the handler");
    app.stop(true).await;
    let response = in_flight
        .await
        .expect("task")
        .expect("the in-flight request completes");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        app.client.get(app.url("/healthz")).send().await.is_err(),
        "no longer accepting"
    );
}

/// A statement that takes about a second on either backend.
async fn slow_query(db: web::Data<feria_kernel::Db>) -> Result<HttpResponse, HttpError> {
    let mut conn = db.conn().await?;
    conn.batch_execute(match db.backend() {
        feria_kernel::Backend::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000000) SELECT count(*) FROM n"
        }
        feria_kernel::Backend::Postgres => "SELECT pg_sleep(0.6)",
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"done": true})))
}

#[tokio::test]
async fn abandoning_a_request_mid_query_leaves_the_server_serving() {
    let app = TestApp::builder()
        .config(|config| {
            config.request_timeout = Duration::from_millis(300);
            config.workers = Some(1);
        })
        .routes(|cfg| {
            cfg.service(web::resource("/probe/slow-query").route(web::get().to(slow_query)));
        })
        .spawn()
        .await;
    // The server abandons the query's future at the timeout (as it would for a client
    // that went away); the worker must survive it and keep its connections usable.
    app.get("/probe/slow-query")
        .await
        .assert_error(503, "request_timeout");
    // On PostgreSQL the abandoned statement still runs out on its connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        app.get("/readyz").await.assert_status(200);
    }
}
