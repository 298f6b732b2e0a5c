//! The `RateLimit-*` headers (draft-ietf-httpapi-ratelimit-headers-07) through real HTTP
//! on both backends: every response a limit counted carries `RateLimit-Limit`,
//! `-Remaining`, `-Reset` and `-Policy`, counting down, and a 429 carries them with
//! `Retry-After`: on writes (the write limit), on sign-in code requests and on uploads.
//! Reads, and writes while the write limit is off, carry none.
//!
//! The servers run on a manual clock: nothing refills while a test runs, so the counts are
//! exact on a machine of any speed.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use feria_kernel::time::ManualClock;
use feria_testkit::{Method, TestApp, TestResponse};
use serde_json::json;

const FEE: &str = "/api/v1/utils/estimate/fee";
const CODES: &str = "/api/v1/auth/otp/email";
const UPLOAD: &str = "/api/v1/utils/media/upload";

/// (limit, remaining, reset, policy) of a response's `RateLimit-*` headers.
fn quota(response: &TestResponse) -> (u64, u64, u64, String) {
    let number = |name: &str| -> u64 {
        response
            .header(name)
            .unwrap_or_else(|| panic!("no {name} header (status {})", response.status))
            .parse()
            .unwrap()
    };
    (
        number("ratelimit-limit"),
        number("ratelimit-remaining"),
        number("ratelimit-reset"),
        response.header("ratelimit-policy").unwrap().to_owned(),
    )
}

fn has_no_quota(response: &TestResponse) -> bool {
    [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "ratelimit-policy",
    ]
    .iter()
    .all(|name| response.header(name).is_none())
}

fn retry_after(response: &TestResponse) -> u64 {
    response
        .header("retry-after")
        .expect("Retry-After on a 429")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn writes_count_down_in_the_headers_and_the_429_carries_them_with_retry_after() {
    let time = ManualClock::new();
    let clock = time.clock();
    let app = TestApp::builder()
        .config(move |c| {
            // 3 writes at once, then one a second: an empty bucket is full after 3.
            c.write_rate_limit = 1;
            c.write_rate_burst = 3;
            c.clock = clock;
        })
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let fee = || {
        app.request(Method::POST, FEE)
            .json(&json!({"amount": 1000}))
    };
    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = app.send(fee()).await.assert_status(200);
        seen.push(quota(&response));
    }
    assert_eq!(
        seen,
        [
            (3, 2, 1, "3;w=3".to_owned()),
            (3, 1, 1, "3;w=3".to_owned()),
            (3, 0, 1, "3;w=3".to_owned()),
        ]
    );
    let refused = app.send(fee()).await;
    refused.assert_error(429, "rate_limited");
    assert_eq!(quota(&refused), (3, 0, 1, "3;w=3".to_owned()));
    assert_eq!(retry_after(&refused), 1);

    // A token back after the reset the client was told.
    time.advance(Duration::from_secs(1));
    let again = app.send(fee()).await.assert_status(200);
    assert_eq!(quota(&again), (3, 0, 1, "3;w=3".to_owned()));

    // A credential has its own bucket, shown the same way; on an error a write answers
    // too (the write was counted), and a read carries no quota.
    let key = &acme.api_keys.live;
    let created = app
        .call(
            key,
            Method::POST,
            "/api/v1/users",
            Some(&json!({"email": "ana@example.com"})),
        )
        .await
        .assert_status(201);
    assert_eq!(quota(&created), (3, 2, 1, "3;w=3".to_owned()));
    let invalid = app
        .call(
            key,
            Method::POST,
            "/api/v1/users",
            Some(&json!({"email": "not-an-email"})),
        )
        .await;
    invalid.assert_error(422, "validation_failed");
    assert_eq!(quota(&invalid).1, 1);
    let read = app.get_as(key, "/api/v1/users").await.assert_status(200);
    assert!(has_no_quota(&read));
}

#[tokio::test]
async fn with_the_write_limit_off_writes_carry_no_quota() {
    let app = TestApp::builder()
        .config(|c| c.write_rate_limit = 0)
        .spawn()
        .await;
    for _ in 0..3 {
        let response = app
            .post_json(FEE, &json!({"amount": 1000}))
            .await
            .assert_status(200);
        assert!(has_no_quota(&response));
    }
}

#[tokio::test]
async fn sign_in_code_requests_show_their_address_budget() {
    let time = ManualClock::new();
    let clock = time.clock();
    let app = TestApp::builder()
        .config(move |c| {
            c.otp_requests_per_ip = 3;
            c.clock = clock;
        })
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let code_for = |n: u32| {
        app.request(Method::POST, CODES)
            .json(&json!({"platform_id": acme.platform.id, "email": format!("u{n}@example.com")}))
    };
    // The address's budget is the nearer limit; the write limit (100 a second, 200 at
    // once by default) counts the request too and is listed after it.
    for (n, remaining) in [(0, 2), (1, 1), (2, 0)] {
        let response = app.send(code_for(n)).await.assert_status(200);
        assert_eq!(
            quota(&response),
            (3, remaining, 600, "3;w=600, 200;w=2".to_owned())
        );
    }
    time.advance(Duration::from_secs(10));
    let refused = app.send(code_for(3)).await;
    refused.assert_error(429, "rate_limited");
    assert_eq!(quota(&refused), (3, 0, 590, "3;w=600, 200;w=2".to_owned()));
    assert_eq!(retry_after(&refused), 590);

    // The window over, the budget is whole again.
    time.advance(Duration::from_secs(590));
    let response = app.send(code_for(4)).await.assert_status(200);
    assert_eq!(quota(&response).1, 2);
}

#[tokio::test]
async fn uploads_show_their_address_budget() {
    let time = ManualClock::new();
    let clock = time.clock();
    let app = TestApp::builder()
        .config(move |c| {
            c.media_uploads_per_ip = 2;
            c.clock = clock;
        })
        .spawn()
        .await;
    let upload = || {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(feria_testkit::PNG_1X1.to_vec())
                .file_name("dot.png")
                .mime_str("image/png")
                .unwrap(),
        );
        app.request(Method::POST, UPLOAD).multipart(form)
    };
    for remaining in [1, 0] {
        let response = app.send(upload()).await.assert_status(201);
        assert_eq!(
            quota(&response),
            (2, remaining, 600, "2;w=600, 200;w=2".to_owned())
        );
    }
    let refused = app.send(upload()).await;
    refused.assert_error(429, "rate_limited");
    assert_eq!(quota(&refused), (2, 0, 600, "2;w=600, 200;w=2".to_owned()));
    assert_eq!(retry_after(&refused), 600);
}

#[tokio::test]
async fn the_document_describes_the_headers_of_every_429() {
    let app = TestApp::spawn().await;
    let spec = app
        .get("/openapi.json")
        .await
        .assert_status(200)
        .json_value();
    let mut described = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let Some(response) = operation["responses"].get("429") else {
                continue;
            };
            for header in [
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "RateLimit-Policy",
            ] {
                assert!(
                    response["headers"].get(header).is_some(),
                    "{method} {path}: 429 without {header}"
                );
            }
            described += 1;
        }
    }
    assert!(described > 50, "only {described} operations document a 429");
    for (path, method) in [(CODES, "post"), (UPLOAD, "post")] {
        assert!(
            spec["paths"][path][method]["responses"]["429"]["headers"]["RateLimit-Policy"]
                .is_object()
        );
    }
}
