//! Chaos on a deployment of several nodes: three `feria` processes behind HAProxy
//! (health-checking `/readyz`) on a PostgreSQL cluster of the test's own, while clients
//! storm purchases and top-ups through the balancer, each with an `Idempotency-Key` and
//! retried with it on any failure. Meanwhile one node is SIGKILLed and started again, and
//! PostgreSQL is restarted twice (`pg_ctl -m fast`, then `-m immediate`: a crash).
//! Afterwards:
//!
//! - every acknowledged purchase and top-up is there exactly once (a replay with its key
//!   answers the same object), and every request was eventually acknowledged: none lost;
//! - each buyer's credits are exactly the top-ups minus the purchases;
//! - `feria ledger verify` passes;
//! - the event log of the platform has gap-free sequences, one `purchase` event per
//!   purchase.
//!
//! It prints the counts: requests sent, acknowledged, refused with 5xx or cut (then
//! retried), lost. PostgreSQL only (several nodes need it). `CHAOS_SECONDS` (default 20)
//! sets the storm's length; `make chaos-long` runs a longer one.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../../tests/src/postgres_server.rs"]
#[allow(dead_code)]
mod postgres_server;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, free_port, six_digit_code};
use feria_kernel::db::Backend;
use feria_kernel::testing::backend_from_env;
use postgres_server::{PostgresServer, StopMode};
use serde_json::{Value, json};

const NODES: usize = 3;
const BUYERS: usize = 6;
const LISTINGS: usize = 60;
const PRICE_CENTS: i64 = 100;
const TOP_UP_CENTS: i64 = 10_000;
const HAPROXY: &str = "/usr/sbin/haproxy";

/// HAProxy in front of the nodes: round robin, `/readyz` checked every 200 ms, a request
/// whose connection fails re-sent to another node (`retries`, `redispatch`).
struct Balancer {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(backends: &[String]) -> Balancer {
        assert!(
            Path::new(HAPROXY).exists(),
            "{HAPROXY} is missing (apt-get install haproxy)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(n, address)| {
                format!("    server node{n} {address} check inter 200ms fall 1 rise 1\n")
            })
            .collect();
        let config = format!(
            "global\n    maxconn 1000\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    retries 3\n    option redispatch 1\n\
             frontend front\n    bind 127.0.0.1:{port}\n    default_backend feria\n\
             backend feria\n    balance roundrobin\n    option httpchk GET /readyz\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new(HAPROXY)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Balancer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node on a fixed port (so the balancer finds it again after a restart); the mail of
/// every node in one directory.
fn node(dir: &Path, mail: &Path, database_url: &str) -> Command {
    let mut command = common::feria(dir, database_url, "warn");
    command
        .env("MAIL_DIR", mail)
        .env("OTP_REQUESTS_PER_IP", "100000")
        .env("WRITE_RATE_LIMIT", "0")
        .env("WORKSPACE_CHARACTER_LIMIT", "10000");
    command
}

/// Starts a node on `port` and waits until it is ready.
async fn start_node(dir: &Path, mail: &Path, database_url: &str, port: u16) -> Server {
    Server::start_on(node(dir, mail, database_url), port).await
}

/// Sends `request` until it gets an answer that is not a failure of the deployment (a cut
/// connection, a 5xx): the final status and body, and how many tries failed.
async fn until_answered(
    make: impl Fn() -> reqwest::RequestBuilder,
    deadline: Instant,
) -> (u16, Value, usize) {
    let mut failures = 0;
    loop {
        match make().send().await {
            Ok(answer) if answer.status().as_u16() < 500 => {
                let status = answer.status().as_u16();
                let body = answer.json().await.unwrap_or(Value::Null);
                return (status, body, failures);
            }
            Ok(_) | Err(_) => failures += 1,
        }
        assert!(Instant::now() < deadline, "a request got no answer in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    mail: &Path,
    platform: &str,
    email: &str,
) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (status, _, _) = until_answered(
        || {
            client
                .post(format!("{base}/api/v1/auth/otp/email"))
                .json(&json!({"platform_id": platform, "email": email}))
        },
        deadline,
    )
    .await;
    assert_eq!(status, 200);
    let mail = std::fs::read_dir(mail)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .find(|mail| mail.contains(email))
        .expect("the sign-in mail");
    let (status, session, _) = until_answered(
        || {
            client.post(format!("{base}/api/v1/auth/otp/verify")).json(
                &json!({"platform_id": platform, "email": email, "code": six_digit_code(&mail)}),
            )
        },
        deadline,
    )
    .await;
    assert_eq!(status, 200, "{session}");
    (
        session["access_token"].as_str().unwrap().to_owned(),
        session["user"]["id"].as_str().unwrap().to_owned(),
    )
}

/// An amount as the API shows it (a decimal number or string), in cents.
fn cents(amount: &Value) -> i64 {
    let text = match amount {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let value: f64 = text
        .parse()
        .unwrap_or_else(|_| panic!("an amount: {amount}"));
    (value * 100.0).round() as i64
}

#[derive(Default)]
struct Counts {
    sent: AtomicUsize,
    acknowledged: AtomicUsize,
    failed_tries: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_of_three_nodes_loses_and_doubles_nothing_through_node_and_database_crashes() {
    if backend_from_env().unwrap() != Backend::Postgres {
        eprintln!("the chaos test runs on PostgreSQL only (FERIA_TEST_BACKEND=postgres)");
        return;
    }
    let storm = Duration::from_secs(
        std::env::var("CHAOS_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let postgres = PostgresServer::start_new();
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", postgres.port());
    let status = Command::new("psql")
        .args([&admin, "-q", "-c", "CREATE DATABASE feria"])
        .status()
        .unwrap();
    assert!(status.success());
    let database_url = format!("postgres://postgres@127.0.0.1:{}/feria", postgres.port());
    let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    let mail = tempfile::tempdir().unwrap();
    let migrated = common::feria(dirs[0].path(), &database_url, "warn")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let created = common::feria(dirs[0].path(), &database_url, "warn")
        .args(["platform", "create", "--name", "Chaos", "--domain"])
        .args(["chaos.example.com", "--owner-email", "owner@chaos.example"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let platform: Value = serde_json::from_slice(&created.stdout).unwrap();
    let platform_id = platform["platform"]["id"].as_str().unwrap().to_owned();
    let key = platform["api_keys"]["live"].as_str().unwrap().to_owned();

    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let mut nodes = Vec::new();
    for (dir, port) in dirs.iter().zip(&ports) {
        nodes.push(Some(
            start_node(dir.path(), mail.path(), &database_url, *port).await,
        ));
    }
    let balancer = Balancer::start(
        &ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>(),
    );
    let base = balancer.url.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let setup_deadline = Instant::now() + Duration::from_secs(120);

    // A seller with listings, buyers (signed in through the balancer).
    let (seller, _) = sign_in(
        &client,
        &base,
        mail.path(),
        &platform_id,
        "seller@chaos.example",
    )
    .await;
    let mut listings = Vec::new();
    for n in 0..LISTINGS {
        let (status, character, _) = until_answered(
            || {
                client
                    .post(format!("{base}/api/v1/characters"))
                    .bearer_auth(&seller)
                    .header("Idempotency-Key", format!("character-{n}"))
                    .json(&json!({"name": format!("Chaos {n}"), "niche": "fitness",
                                  "description": "A template bought in a storm."}))
            },
            setup_deadline,
        )
        .await;
        assert_eq!(status, 201, "{character}");
        let (status, listing, _) = until_answered(
            || {
                client
                    .post(format!("{base}/api/v1/marketplace/listings"))
                    .bearer_auth(&seller)
                    .header("Idempotency-Key", format!("listing-{n}"))
                    .json(&json!({"character_id": character["character"]["id"], "price": PRICE_CENTS as f64 / 100.0,
                                  "currency": "USD", "license_type": "commercial", "status": "active",
                                  "description": "A template listing for the chaos test."}))
            },
            setup_deadline,
        )
        .await;
        assert_eq!(status, 201, "{listing}");
        listings.push(listing["listing"]["id"].as_str().unwrap().to_owned());
    }
    let mut buyers = Vec::new();
    for n in 0..BUYERS {
        buyers.push(
            sign_in(
                &client,
                &base,
                mail.path(),
                &platform_id,
                &format!("buyer{n}@chaos.example"),
            )
            .await,
        );
    }

    // The storm: each buyer tops up and buys, each request retried with its key until it
    // is answered; the chaos runs beside it.
    let counts = Arc::new(Counts::default());
    let purchases: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let top_ups: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let storm_ends = Instant::now() + storm;
    let deadline = storm_ends + Duration::from_secs(120);
    let mut tasks = Vec::new();
    for (buyer, (token, user)) in buyers.iter().enumerate() {
        let (client, base, key, token, user) = (
            client.clone(),
            base.clone(),
            key.clone(),
            token.clone(),
            user.clone(),
        );
        let (listings, counts) = (listings.clone(), counts.clone());
        let (purchases, top_ups) = (purchases.clone(), top_ups.clone());
        tasks.push(tokio::spawn(async move {
            // Until the storm ends: a top-up every fourth step (every step once this
            // buyer owns every listing), and a purchase while there is one to buy.
            let (mut step, mut bought) = (0, 0);
            while Instant::now() < storm_ends {
                if step % 4 == 0 || bought == LISTINGS {
                    let idempotency = format!("top-up-{buyer}-{step}");
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                    let (status, body, failed) = until_answered(
                        || {
                            client
                                .post(format!("{base}/api/v1/users/{user}/credits"))
                                .bearer_auth(&key)
                                .header("Idempotency-Key", &idempotency)
                                .json(&json!({"amount": TOP_UP_CENTS as f64 / 100.0, "currency": "usd"}))
                        },
                        deadline,
                    )
                    .await;
                    assert_eq!(status, 201, "top-up {idempotency}: {body}");
                    counts.failed_tries.fetch_add(failed, Ordering::Relaxed);
                    counts.acknowledged.fetch_add(1, Ordering::Relaxed);
                    top_ups.lock().unwrap().insert(idempotency, TOP_UP_CENTS);
                }
                if bought == LISTINGS {
                    step += 1;
                    continue;
                }
                let listing = &listings[(buyer * 7 + bought) % LISTINGS];
                let idempotency = format!("purchase-{buyer}-{bought}");
                counts.sent.fetch_add(1, Ordering::Relaxed);
                let (status, body, failed) = until_answered(
                    || {
                        client
                            .post(format!("{base}/api/v1/marketplace/{listing}/purchase"))
                            .bearer_auth(&token)
                            .header("Idempotency-Key", &idempotency)
                    },
                    deadline,
                )
                .await;
                assert_eq!(status, 201, "purchase {idempotency}: {body}");
                counts.failed_tries.fetch_add(failed, Ordering::Relaxed);
                counts.acknowledged.fetch_add(1, Ordering::Relaxed);
                purchases
                    .lock()
                    .unwrap()
                    .insert(idempotency, body["purchase"]["id"].as_str().unwrap().to_owned());
                bought += 1;
                step += 1;
            }
        }));
    }

    // The chaos, spread over the storm.
    let beat = storm / 5;
    tokio::time::sleep(beat).await;
    nodes[1].take().unwrap().kill();
    eprintln!("chaos: node 1 killed (SIGKILL)");
    tokio::time::sleep(beat).await;
    nodes[1] = Some(start_node(dirs[1].path(), mail.path(), &database_url, ports[1]).await);
    eprintln!("chaos: node 1 started again");
    tokio::time::sleep(beat).await;
    postgres.stop(StopMode::Fast);
    postgres.start();
    eprintln!("chaos: PostgreSQL restarted (fast)");
    tokio::time::sleep(beat).await;
    postgres.stop(StopMode::Crash);
    postgres.start();
    eprintln!("chaos: PostgreSQL restarted after a crash (immediate)");
    for task in tasks {
        task.await.unwrap();
    }

    // Every acknowledged write exactly once: each replayed with its key answers the same.
    let purchases = purchases.lock().unwrap().clone();
    let top_ups = top_ups.lock().unwrap().clone();
    let verify_deadline = Instant::now() + Duration::from_secs(120);
    for (idempotency, id) in &purchases {
        let buyer: usize = idempotency.split('-').nth(1).unwrap().parse().unwrap();
        let bought: usize = idempotency.split('-').nth(2).unwrap().parse().unwrap();
        let listing = &listings[(buyer * 7 + bought) % LISTINGS];
        let (status, body, _) = until_answered(
            || {
                client
                    .post(format!("{base}/api/v1/marketplace/{listing}/purchase"))
                    .bearer_auth(&buyers[buyer].0)
                    .header("Idempotency-Key", idempotency)
            },
            verify_deadline,
        )
        .await;
        assert_eq!(status, 201);
        assert_eq!(
            body["purchase"]["id"].as_str(),
            Some(id.as_str()),
            "{idempotency} answered another purchase"
        );
    }
    let distinct: std::collections::BTreeSet<_> = purchases.values().collect();
    assert_eq!(
        distinct.len(),
        purchases.len(),
        "two keys answered one purchase"
    );

    // Credits exact: top-ups minus purchases, per buyer.
    for (buyer, (_, user)) in buyers.iter().enumerate() {
        let topped: i64 = top_ups
            .iter()
            .filter(|(k, _)| k.split('-').nth(2) == Some(&buyer.to_string()))
            .map(|(_, cents)| cents)
            .sum();
        let bought = purchases
            .keys()
            .filter(|k| k.split('-').nth(1) == Some(&buyer.to_string()))
            .count() as i64;
        let (status, credits, _) = until_answered(
            || {
                client
                    .get(format!("{base}/api/v1/users/{user}/credits"))
                    .bearer_auth(&key)
            },
            verify_deadline,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            cents(&credits["balances"][0]["amount"]),
            topped - bought * PRICE_CENTS,
            "buyer {buyer}: {credits}"
        );
    }

    // The ledger verifies; the event log has no gaps.
    let verified = common::feria(dirs[0].path(), &database_url, "warn")
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "the ledger does not verify:\n{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    let gaps = Command::new("psql")
        .args([&database_url, "-At", "-c",
            "SELECT count(*) FROM (SELECT platform_id, mode, max(sequence) - min(sequence) + 1 - count(*) AS missing \
             FROM events GROUP BY platform_id, mode) s WHERE missing <> 0"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&gaps.stdout).trim(),
        "0",
        "the event log has gaps"
    );
    let sent = counts.sent.load(Ordering::Relaxed);
    let acknowledged = counts.acknowledged.load(Ordering::Relaxed);
    eprintln!(
        "chaos: {sent} writes sent, {acknowledged} acknowledged, {} tries failed (5xx or cut) and were retried with their key, {} lost; {} purchases, {} top-ups, each once",
        counts.failed_tries.load(Ordering::Relaxed),
        sent - acknowledged,
        purchases.len(),
        top_ups.len()
    );
    assert_eq!(sent, acknowledged, "writes lost");
    drop(nodes);
    drop(balancer);
}
