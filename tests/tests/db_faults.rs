//! Database faults under load: the PostgreSQL server is crashed and restarted while clients
//! write money and read it back. During the outage every answer is a quick 503 with a
//! clear code and `Retry-After`; afterwards the same server process recovers by itself;
//! every write a client retried with its Idempotency-Key exists exactly once; the ledger
//! verifies. And a full pool answers 503 quickly instead of hanging.
//!
//! These tests run their own PostgreSQL cluster (so that they can stop it without
//! disturbing the rest of the suite), whichever backend the suite runs on.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use feria_testkit::postgres_server::{PostgresServer, StopMode};
use feria_testkit::{CreatedPlatform, Method, TestApp};
use serde_json::json;

/// What the load clients saw, per answer kind.
#[derive(Default)]
struct Observed {
    statuses: BTreeMap<String, u64>,
    /// Idempotency keys the server acknowledged (201).
    acknowledged: BTreeSet<String>,
    /// The slowest answer of all.
    slowest: Duration,
    /// When the first success after the restart came.
    first_success_after_restart: Option<Instant>,
}

const WRITERS: usize = 4;
const READERS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_crashed_and_restarted_under_load_answers_503_then_recovers() {
    for mode in [StopMode::Crash, StopMode::Fast] {
        restart_under_load(mode).await;
    }
}

/// A server on a new database of `postgres`, with its pool and acquire timeout, and a
/// platform.
async fn server_on(
    postgres: &PostgresServer,
    acquire_timeout: Duration,
    pool_size: usize,
) -> (TestApp, CreatedPlatform) {
    let app = TestApp::builder()
        .postgres_server(&postgres.admin_url())
        .config(move |c| {
            c.database_acquire_timeout = acquire_timeout;
            c.database_pool_size = Some(pool_size);
        })
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    (app, acme)
}

async fn restart_under_load(mode: StopMode) {
    let postgres = PostgresServer::start_new();
    let (app, acme) = server_on(&postgres, Duration::from_secs(2), 8).await;
    let session = app
        .sign_in(acme.platform.id.as_str(), "ana@example.com", "live")
        .await;
    let user = session["user"]["id"].as_str().unwrap().to_owned();
    let key = acme.api_keys.live.clone();
    let app = Arc::new(app);
    let observed = Arc::new(Mutex::new(Observed::default()));
    let restarted_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut clients = Vec::new();
    for writer in 0..WRITERS {
        let (app, observed, stop, key, user, restarted_at) = (
            app.clone(),
            observed.clone(),
            stop.clone(),
            key.clone(),
            user.clone(),
            restarted_at.clone(),
        );
        clients.push(tokio::spawn(async move {
            let path = format!("/api/v1/users/{user}/credits");
            let mut n = 0;
            // A well-behaved client: retries a refused write with the same key until the
            // server acknowledges it, then moves on to the next.
            let mut pending: Option<String> = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || pending.is_some() {
                let idempotency = pending.take().unwrap_or_else(|| {
                    n += 1;
                    format!("w{writer}-{n}")
                });
                let request = app
                    .request(Method::POST, &path)
                    .bearer_auth(&key)
                    .header("Idempotency-Key", &idempotency)
                    .json(&json!({"amount": 1, "currency": "usd"}));
                let (status, retry) = call(&app, request, &observed, &restarted_at).await;
                match status {
                    201 => {
                        observed.lock().unwrap().acknowledged.insert(idempotency);
                    }
                    503 => {
                        pending = Some(idempotency);
                        tokio::time::sleep(Duration::from_millis(100 * retry.min(2))).await;
                    }
                    other => panic!("a credit top-up answered {other}"),
                }
            }
        }));
    }
    for _ in 0..READERS {
        let (app, observed, stop, key, user, restarted_at) = (
            app.clone(),
            observed.clone(),
            stop.clone(),
            key.clone(),
            user.clone(),
            restarted_at.clone(),
        );
        clients.push(tokio::spawn(async move {
            let path = format!("/api/v1/users/{user}/credits");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let request = app.request(Method::GET, &path).bearer_auth(&key);
                let (status, _) = call(&app, request, &observed, &restarted_at).await;
                assert!(
                    status == 200 || status == 503,
                    "a credit read answered {status}"
                );
                if status == 503 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }

    // Load before the fault ...
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = observed.lock().unwrap().acknowledged.len();
    assert!(before > 0, "no write succeeded before the fault");
    // ... the database goes away for a while under it ...
    let before_fault = observed.lock().unwrap().statuses.clone();
    tokio::task::block_in_place(|| postgres.stop(mode));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready = app.get("/readyz").await;
    ready.assert_error(503, "database_unavailable");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during: BTreeMap<String, u64> = observed
        .lock()
        .unwrap()
        .statuses
        .iter()
        .map(|(answer, count)| {
            (
                answer.clone(),
                count - before_fault.get(answer).unwrap_or(&0),
            )
        })
        .filter(|(_, count)| *count > 0)
        .collect();
    // ... and comes back; the same server process must recover by itself.
    tokio::task::block_in_place(|| postgres.start());
    *restarted_at.lock().unwrap() = Some(Instant::now());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recovered = observed.lock().unwrap().first_success_after_restart;
        if recovered.is_some_and(|at| at.elapsed() > Duration::from_secs(2)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no success within 30 s of the database's return: {:?}",
            observed.lock().unwrap().statuses
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.await.expect("a load client failed");
    }
    app.get("/readyz").await.assert_status(200);

    let observed = std::mem::take(&mut *observed.lock().unwrap());
    let restarted = restarted_at.lock().unwrap().expect("restarted");
    let recovery = observed
        .first_success_after_restart
        .map(|at| at.duration_since(restarted));
    println!(
        "{mode:?}: answers {:?}; during the outage {during:?}; {} writes acknowledged \
         ({before} before the fault); slowest answer {:?}; first success {:?} after the restart",
        observed.statuses,
        observed.acknowledged.len(),
        observed.slowest,
        recovery
    );
    let unavailable = during.get("503 database_unavailable").copied().unwrap_or(0);
    assert!(
        unavailable > 0,
        "the outage was never reported as 503 database_unavailable: {during:?}"
    );
    for answer in observed.statuses.keys() {
        assert!(
            [
                "200",
                "201",
                "503 database_unavailable",
                "503 database_busy"
            ]
            .contains(&answer.as_str()),
            "unexpected answer during the fault: {answer}"
        );
    }
    // Quick answers: the pool's acquire timeout (2 s) bounds a request, with room for a
    // loaded machine; never the 30 s request timeout or a hang.
    assert!(
        observed.slowest < Duration::from_secs(10),
        "an answer took {:?}",
        observed.slowest
    );

    // Nothing lost, nothing doubled: every acknowledged key exists once, nothing else.
    let credits = app
        .get_as(&key, &format!("/api/v1/users/{user}/credits"))
        .await
        .assert_status(200)
        .json_value();
    let acknowledged = observed.acknowledged.len() as f64;
    assert_eq!(
        credits["balances"],
        json!([{"currency": "usd", "amount": acknowledged}]),
        "the balance is not exactly the acknowledged top-ups"
    );
    let transactions = app
        .get_as(
            &key,
            &format!("/api/v1/transactions?user_id={user}&type=credit_top_up&page_size=1"),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        transactions["total"],
        json!(observed.acknowledged.len()),
        "{transactions}"
    );
    let mut conn = app.db().conn().await.unwrap();
    let verification = feria_billing::ledger::verify(&mut conn).await.unwrap();
    assert!(verification.is_ok(), "{verification:?}");
}

/// Sends one request; records its answer as `status` or `status code`, and its latency.
/// Returns the status and the `Retry-After` seconds of a 503.
async fn call(
    app: &TestApp,
    request: reqwest::RequestBuilder,
    observed: &Mutex<Observed>,
    restarted_at: &Mutex<Option<Instant>>,
) -> (u16, u64) {
    let started = Instant::now();
    let response = app.send(request).await;
    let elapsed = started.elapsed();
    let status = response.status.as_u16();
    let mut retry_after = 0;
    let answer = if status == 503 {
        let error = response.json_value();
        retry_after = response
            .header("retry-after")
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("a 503 without Retry-After: {error}"));
        format!("503 {}", error["error"].as_str().unwrap_or("?"))
    } else if status >= 400 {
        format!("{status} {}", response.text())
    } else {
        status.to_string()
    };
    let mut observed = observed.lock().unwrap();
    *observed.statuses.entry(answer).or_default() += 1;
    observed.slowest = observed.slowest.max(elapsed);
    if status < 300
        && observed.first_success_after_restart.is_none()
        && restarted_at.lock().unwrap().is_some_and(|at| started >= at)
    {
        observed.first_success_after_restart = Some(Instant::now());
    }
    (status, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_pool_answers_503_quickly_instead_of_hanging() {
    let postgres = PostgresServer::start_new();
    let (app, acme) = server_on(&postgres, Duration::from_secs(1), 2).await;
    // Hold every connection of the server's pool, as slow requests would.
    let held = [
        app.server_db().conn().await.unwrap(),
        app.server_db().conn().await.unwrap(),
    ];
    let started = Instant::now();
    let response = app.get("/readyz").await;
    let elapsed = started.elapsed();
    response.assert_error(503, "database_unavailable");
    assert_eq!(response.header("retry-after"), Some("1"));
    assert!(
        elapsed < Duration::from_secs(5),
        "a full pool took {elapsed:?} to answer"
    );
    let started = Instant::now();
    let answer = app.get_as(&acme.api_keys.live, "/api/v1/products").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    answer.assert_error(503, "database_unavailable");
    // The connections come back: the server works again at once.
    drop(held);
    app.get("/readyz").await.assert_status(200);
}
