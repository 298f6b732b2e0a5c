//! The real binary's request spans, on either backend:
//!
//! - with `LOG_FORMAT=json`, a warning the database layer logs while a request is served
//!   (the database busy: the test holds the write lock the request needs) is a JSON line
//!   that carries the request's id (sent as `X-Request-Id`), route, platform and mode;
//! - with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the request's span reaches an OTLP/HTTP
//!   collector (a stand-in on loopback that records every POST) by the time the server has
//!   stopped, named for the route and carrying the request id; without it, nothing is
//!   sent, even where the signal-specific variable names a collector.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use feria_kernel::testing::{TestDatabase, backend_from_env};
use feria_kernel::{Backend, Db, DbConfig, DbError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{Running, free_port};

/// A platform made with the CLI: (platform id, live API key).
fn create_platform(dir: &Path, database_url: &str) -> (String, String) {
    let platform = common::create_platform(
        common::feria(dir, database_url, "info"),
        "Acme",
        "acme.example.com",
        "owner@acme.example",
    );
    (platform.id, platform.live_key)
}

/// `feria serve` on a free port, its output into `log`; returns the process and base URL.
fn serve(command: &mut Command, log: &Path) -> (Child, String) {
    let port = free_port();
    let log = std::fs::File::create(log).unwrap();
    let child = command
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops the server as its service manager would (SIGTERM) and waits for it to exit.
async fn terminate(child: &mut Child) {
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `sql` on `db`.
async fn execute(db: &Db, sql: &str) {
    let mut conn = db.conn().await.unwrap();
    feria_kernel::with_conn!(&mut conn, c => {
        diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), c).await
    })
    .unwrap();
}

#[tokio::test]
async fn a_database_warning_inside_a_request_carries_its_id_route_platform_and_mode() {
    let backend = backend_from_env().unwrap();
    let database = TestDatabase::create(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (platform_id, key) = create_platform(dir.path(), database.url());
    let db = Db::connect(&DbConfig::new(database.url().to_owned()))
        .await
        .unwrap();
    if backend == Backend::Postgres {
        // A statement that waits for a lock gives up after a second (the server's sessions
        // pick this up when they connect): PostgreSQL's "lock timeout", the database busy.
        let name = database
            .url()
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap();
        execute(
            &db,
            &format!("ALTER DATABASE \"{name}\" SET lock_timeout = '1s'"),
        )
        .await;
    }

    let log_path = dir.path().join("server.log");
    let mut command = common::feria(dir.path(), database.url(), "info");
    command
        .env("LOG_FORMAT", "json")
        // The key stays trusted while the lock is held: the request gets to its handler.
        .env("API_KEY_CACHE_MS", "600000");
    let (child, base) = serve(&mut command, &log_path);
    let _server = Running(child);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    wait_ready(&client, &base).await;
    let seller: Value = client
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(&key)
        .json(&json!({"email": "seller@acme.example"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seller = seller["id"].as_str().unwrap().to_owned();

    // The test holds the write lock the product's insert needs, longer than the server
    // waits for it (SQLite: the whole database, 5 s busy timeout; PostgreSQL: the products
    // table, 1 s lock timeout).
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let holder = tokio::spawn(async move {
        db.transaction(async |c| -> Result<(), DbError> {
            if c.backend() == Backend::Postgres {
                feria_kernel::with_conn!(c, c => {
                    diesel_async::RunQueryDsl::execute(
                        diesel::sql_query("LOCK TABLE products IN EXCLUSIVE MODE"),
                        c,
                    )
                    .await
                })?;
            }
            let _ = locked_tx.send(());
            tokio::time::sleep(Duration::from_secs(8)).await;
            Ok(())
        })
        .await
        .unwrap();
    });
    locked_rx.await.unwrap();
    let refused = client
        .post(format!("{base}/api/v1/products"))
        .bearer_auth(&key)
        .header("X-Request-Id", "obs-busy-7f3a")
        .json(&json!({"user_id": seller, "name": "Lamp", "price": 10, "quantity": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "database_busy", "{body}");
    assert_eq!(body["request_id"], "obs-busy-7f3a", "{body}");
    holder.await.unwrap();

    drop(_server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let warning = lines
        .iter()
        .find(|line| {
            line["level"] == "WARN"
                && line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("database busy"))
        })
        .unwrap_or_else(|| panic!("no database warning in the log:\n{log}"));
    let span = &warning["span"];
    assert_eq!(span["name"], "request", "{warning}");
    assert_eq!(span["request_id"], "obs-busy-7f3a", "{warning}");
    assert_eq!(span["route"], "/api/v1/products", "{warning}");
    assert_eq!(span["method"], "POST", "{warning}");
    assert_eq!(span["platform"], platform_id.as_str(), "{warning}");
    assert_eq!(span["mode"], "live", "{warning}");
    // Its target says where it came from: the database layer, not the gateway.
    assert!(
        warning["target"]
            .as_str()
            .unwrap()
            .starts_with("feria_kernel::db"),
        "{warning}"
    );
    // The request's own line carries the span too, with the status it ended with.
    let request_line = lines
        .iter()
        .find(|line| line["message"] == "request" && line["request_id"] == "obs-busy-7f3a")
        .unwrap_or_else(|| panic!("no request line:\n{log}"));
    assert_eq!(request_line["span"]["request_id"], "obs-busy-7f3a");
    assert_eq!(request_line["span"]["status"], 503);
    // Lines outside any request carry no request span.
    let listening = lines
        .iter()
        .find(|line| line["message"] == "listening")
        .unwrap();
    assert!(listening.get("span").is_none(), "{listening}");
}

/// What the collector stand-in received: (path, content type, body) per POST.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A minimal OTLP/HTTP collector on loopback: answers every request 200 `{}` and records
/// it. Returns its base URL.
async fn collector(received: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let received = received.clone();
            tokio::spawn(async move {
                // Keep-alive: several requests may come on one connection.
                let mut buffer = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|line| {
                                let (key, value) = line.split_once(':')?;
                                key.trim()
                                    .eq_ignore_ascii_case(name)
                                    .then(|| value.trim().to_owned())
                            })
                            .unwrap_or_default()
                    };
                    let length: usize = header("content-length").parse().unwrap_or(0);
                    while buffer.len() < head_end + length {
                        let mut chunk = [0u8; 8192];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buffer[head_end..head_end + length].to_vec();
                    buffer.drain(..head_end + length);
                    received
                        .lock()
                        .unwrap()
                        .push((path, header("content-type"), body));
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}")
}

/// The string value of an OTLP JSON attribute list's `key`.
fn attribute<'a>(attributes: &'a Value, key: &str) -> Option<&'a str> {
    attributes
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?
        .get("value")?
        .get("stringValue")?
        .as_str()
}

#[tokio::test]
async fn request_spans_are_exported_over_otlp_only_when_an_endpoint_is_set() {
    let backend = backend_from_env().unwrap();
    let database = TestDatabase::create(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (platform_id, key) = create_platform(dir.path(), database.url());
    let received: Received = Arc::default();
    let endpoint = collector(received.clone()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // Without OTEL_EXPORTER_OTLP_ENDPOINT no exporter is built: the traces-only variable,
    // which the OTLP library would read, is not enough.
    let mut command = common::feria(dir.path(), database.url(), "info");
    command.env(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        format!("{endpoint}/v1/traces"),
    );
    command.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    let (child, base) = serve(&mut command, &dir.path().join("plain.log"));
    let mut server = Running(child);
    wait_ready(&client, &base).await;
    let answer = client
        .get(format!("{base}/api/v1/platforms"))
        .bearer_auth(&key)
        .header("X-Request-Id", "otlp-none-1")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    terminate(&mut server.0).await;
    assert!(
        received.lock().unwrap().is_empty(),
        "spans were sent without an endpoint"
    );

    // With it (JSON encoding, a service name of our own): the request's span arrives by the
    // time the server has stopped.
    let mut command = common::feria(dir.path(), database.url(), "info");
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_SERVICE_NAME", "feria-otlp-test")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let (child, base) = serve(&mut command, &dir.path().join("otlp.log"));
    let mut server = Running(child);
    wait_ready(&client, &base).await;
    let answer = client
        .get(format!("{base}/api/v1/platforms"))
        .bearer_auth(&key)
        .header("X-Request-Id", "otlp-request-42")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    terminate(&mut server.0).await;

    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "the collector received nothing");
    let mut spans = Vec::new();
    for (path, content_type, body) in &received {
        assert_eq!(path, "/v1/traces");
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        let export: Value = serde_json::from_slice(body).unwrap();
        for resource in export["resourceSpans"].as_array().unwrap() {
            assert_eq!(
                attribute(&resource["resource"]["attributes"], "service.name"),
                Some("feria-otlp-test"),
                "{resource}"
            );
            for scope in resource["scopeSpans"].as_array().unwrap() {
                spans.extend(scope["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    let span = spans
        .iter()
        .find(|span| attribute(&span["attributes"], "request_id") == Some("otlp-request-42"))
        .unwrap_or_else(|| panic!("no span of the request among {spans:#?}"));
    assert_eq!(span["name"], "GET /api/v1/platforms", "{span}");
    let attributes = &span["attributes"];
    assert_eq!(attribute(attributes, "route"), Some("/api/v1/platforms"));
    assert_eq!(
        attribute(attributes, "platform"),
        Some(platform_id.as_str())
    );
    assert_eq!(attribute(attributes, "mode"), Some("live"));
    // A server span (OTLP's SPAN_KIND_SERVER, 2).
    assert_eq!(span["kind"], 2, "{span}");
}
