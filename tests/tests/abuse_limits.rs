//! The write rate limit through real HTTP: a credential that writes faster than its budget
//! gets 429 `rate_limited` with `Retry-After`, nothing of the refused write happens, other
//! credentials and reads are not affected, the budget refills, and writes without a
//! credential are counted per address. Every write operation documents the 429.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use feria_testkit::{Method, TestApp};
use serde_json::json;

#[tokio::test]
async fn writes_beyond_a_credentials_budget_are_refused_with_retry_after() {
    // The server's clock moves only when the test says: nothing refills between two
    // requests of a slow run (tests/tests/roles_and_limits.rs tests who is counted).
    let time = feria_kernel::time::ManualClock::new();
    let clock = time.clock();
    let app = TestApp::builder()
        .config(move |c| {
            c.write_rate_limit = 1;
            c.write_rate_burst = 3;
            c.clock = clock;
        })
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    // Signing in is two writes from no credential: they count against the address.
    let session = app
        .sign_in(acme.platform.id.as_str(), "ana@example.com", "live")
        .await;
    let user = session["user"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/users/{user}/credits");
    let key = &acme.api_keys.live;
    let top_up = |n: u32| {
        app.request(Method::POST, &path)
            .bearer_auth(key)
            .header("Idempotency-Key", format!("k-{n}"))
            .json(&json!({"amount": 1, "currency": "usd"}))
    };

    for n in 0..3 {
        app.send(top_up(n)).await.assert_status(201);
    }
    let refused = app.send(top_up(3)).await;
    refused.assert_error(429, "rate_limited");
    let retry_after: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");

    // Reads are not counted; another credential has its own budget.
    let credits = app.get_as(key, &path).await.assert_status(200).json_value();
    assert_eq!(
        credits["balances"],
        json!([{"currency": "usd", "amount": 3.0}])
    );
    app.send_json_as(
        &other.api_keys.live,
        Method::POST,
        "/api/v1/users",
        &json!({"email": "zoe@other.example"}),
    )
    .await
    .assert_status(201);

    // After the wait the client was told, the refused write goes through, once.
    time.advance(Duration::from_secs(retry_after));
    app.send(top_up(3)).await.assert_status(201);
    let credits = app.get_as(key, &path).await.assert_status(200).json_value();
    assert_eq!(
        credits["balances"],
        json!([{"currency": "usd", "amount": 4.0}])
    );

    // Without a credential the address is the client: the public fee estimate is a write
    // (POST) whose budget the sign-in above has partly used.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = app
            .post_json("/api/v1/utils/estimate/fee", &json!({"amount": 1000}))
            .await;
        statuses.push(response.status.as_u16());
        if response.status.as_u16() == 429 {
            response.assert_error(429, "rate_limited");
            assert!(response.header("retry-after").is_some());
        }
    }
    assert!(statuses.contains(&200), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn every_write_operation_documents_the_rate_limit() {
    let app = TestApp::spawn().await;
    let spec = app
        .get("/openapi.json")
        .await
        .assert_status(200)
        .json_value();
    let mut writes = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let documented = operation["responses"].get("429").is_some();
            if matches!(method.as_str(), "post" | "put" | "patch" | "delete") {
                writes += 1;
                assert!(documented, "{method} {path} does not document 429");
            }
        }
    }
    assert!(writes > 50, "only {writes} write operations");
}

/// Slow clients cannot hold a worker: headers that do not arrive in time get 408 and the
/// connection closed; a body that trickles in is cut off by the request timeout.
#[tokio::test]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::builder()
        .config(|c| {
            c.client_header_timeout = Duration::from_secs(1);
            c.request_timeout = Duration::from_secs(2);
        })
        .spawn()
        .await;

    // Half a request line, then nothing.
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: feria\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes a connection whose headers never come");
    read.unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");

    // Headers in time, a body that never completes: the request timeout answers.
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: feria\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"email\":",
        acme.api_keys.live
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut answer))
        .await
        .expect("the server answers a stalled body")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Nothing was created.
    let users = app
        .get_as(&acme.api_keys.live, "/api/v1/users")
        .await
        .assert_status(200)
        .json_value();
    assert!(
        users["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["email"] == "owner@acme.example")
    );
}
