//! Chaos on a deployment of several nodes: three `feria` processes behind HAProxy
//! (health-checking `/readyz`) on a PostgreSQL primary and a streaming replica of the
//! test's own, sharing a Redis (write positions, so a client reads its own writes
//! whichever node served them), with a webhook receiver registered for the platform.
//! Clients storm the balancer with five kinds of request, each write with an
//! `Idempotency-Key` and retried with it on a cut connection or a 5xx:
//!
//! - **purchase**: buyers buy template listings with credits;
//! - **top-up**: the platform's API key tops the buyers' credits up;
//! - **settle**: the API key settles contracts (made before the storm) whose buyer pays
//!   from those credits;
//! - **sign-in**: new people sign in by email code, the code read from the mail the nodes
//!   write; a code spent by a try whose answer was lost is refused, and the person asks for
//!   a new one, as a person would;
//! - **read**: after each purchase the buyer lists its purchases, a read-only route served
//!   by the replica when it is fresh enough, and must see the purchase it just made.
//!
//! Meanwhile one node is SIGKILLed, PostgreSQL is restarted twice (`pg_ctl -m fast`, then
//! `-m immediate`: a crash), the killed node is started again, and the replica is stopped
//! and started again. Afterwards:
//!
//! - every acknowledged purchase, top-up and settlement is there exactly once (a replay
//!   with its key answers the same object), and every request was eventually answered:
//!   none lost;
//! - each buyer's credits are exactly the top-ups minus the purchases and the settled
//!   contracts;
//! - `feria ledger verify` passes;
//! - the event log has gap-free sequences, one event per purchase, top-up and settlement;
//! - every event reached the webhook receiver; one delivery per event (never a second
//!   delivery of one event), no delivery recorded as succeeding twice, and an event that
//!   arrived twice was attempted again by its one delivery (a node or the database died
//!   before the first attempt's outcome was recorded: at-least-once, as documented).
//!
//! It prints, per kind of request, the counts: sent, acknowledged, tries refused with 503,
//! tries failed with another 5xx, tries cut, lost (must be 0). PostgreSQL only (several
//! nodes need it); needs HAProxy and a Redis (`REDIS_TEST_URL`, else 127.0.0.1:6379).
//! `CHAOS_SECONDS` (default 20) sets the storm's length; `make chaos-long` runs a longer
//! one.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../../tests/src/postgres_server.rs"]
#[allow(dead_code)]
mod postgres_server;

#[path = "../../tests/src/haproxy.rs"]
#[allow(dead_code)]
mod haproxy;

#[path = "../../tests/src/webhook_receiver.rs"]
#[allow(dead_code)]
mod webhook_receiver;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, free_port};
use feria_kernel::db::Backend;
use feria_kernel::testing::backend_from_env;
use haproxy::HaProxy;
use postgres_server::{PostgresServer, StopMode};
use serde_json::{Value, json};
use webhook_receiver::Receiver;

const NODES: usize = 3;
const BUYERS: usize = 6;
const LISTINGS: usize = 60;
const CONTRACTS_PER_BUYER: usize = 3;
const PRICE_CENTS: i64 = 100;
const TOP_UP_CENTS: i64 = 10_000;
/// The Redis database the nodes share (the other tests use database 0).
const REDIS_DATABASE: u8 = 9;

/// The kinds of request of the storm, as printed.
const KINDS: [&str; 5] = ["purchase", "top-up", "settle", "sign-in", "read"];
const PURCHASE: usize = 0;
const TOP_UP: usize = 1;
const SETTLE: usize = 2;
const SIGN_IN: usize = 3;
const READ: usize = 4;

/// What happened to the requests of one kind.
#[derive(Default)]
struct Tally {
    /// Requests (for sign-in: whole sign-ins, code request to working session).
    sent: AtomicUsize,
    /// Answered as they should be.
    acknowledged: AtomicUsize,
    /// Tries answered 503 (a node without its database, or HAProxy with no node up),
    /// then retried.
    refused_503: AtomicUsize,
    /// Tries answered with another 5xx (HAProxy's 502 when a node dies under a request),
    /// then retried.
    failed_5xx: AtomicUsize,
    /// Tries whose connection failed, then retried.
    cut: AtomicUsize,
    /// Sign-ins whose code had been spent by a try whose answer was lost, begun again
    /// with a new code.
    restarted: AtomicUsize,
    /// Reads that did not see the reader's own write (must be 0).
    stale: AtomicUsize,
}

impl Tally {
    fn add(counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::Relaxed)
    }

    fn lost(&self) -> usize {
        Tally::get(&self.sent) - Tally::get(&self.acknowledged)
    }
}

type Tallies = Arc<[Tally; 5]>;

/// A node on a fixed port (so the balancer finds it again after a restart); the mail of
/// every node in one directory.
struct Node<'a> {
    dir: &'a Path,
    mail: &'a Path,
    database_url: &'a str,
    replica_url: &'a str,
    redis_url: &'a str,
    port: u16,
}

impl Node<'_> {
    /// Starts the node and waits until it is ready.
    async fn start(&self) -> Server {
        let mut command = common::feria(self.dir, self.database_url, "warn");
        command
            .env("MAIL_DIR", self.mail)
            .env("DATABASE_REPLICA_URLS", self.replica_url)
            .env("REPLICA_POOL_SIZE", "4")
            .env("REDIS_URL", self.redis_url)
            .env("OTP_REQUESTS_PER_IP", "1000000")
            .env("WRITE_RATE_LIMIT", "0")
            .env("WORKSPACE_CHARACTER_LIMIT", "10000")
            .env("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
            .env("WEBHOOK_POLL_INTERVAL_MS", "50")
            .env("WEBHOOK_TIMEOUT_MS", "2000")
            .env("WEBHOOK_RETRY_BASE_MS", "200")
            .env("WEBHOOK_RETRY_MAX_MS", "1000");
        Server::start_on(command, self.port).await
    }
}

/// Sends a request until it gets an answer that is not a failure of the deployment (a
/// cut connection, a 5xx), counting the failed tries in `tally`: the final status and
/// body, or `None` if there was none by `deadline` (the request is lost).
async fn until_answered(
    tally: &Tally,
    make: impl Fn() -> reqwest::RequestBuilder,
    deadline: Instant,
) -> Option<(u16, Value)> {
    loop {
        match make().send().await {
            Ok(answer) if answer.status().as_u16() < 500 => {
                let status = answer.status().as_u16();
                let body = answer.json().await.unwrap_or(Value::Null);
                return Some((status, body));
            }
            Ok(answer) if answer.status().as_u16() == 503 => Tally::add(&tally.refused_503),
            Ok(_) => Tally::add(&tally.failed_5xx),
            Err(_) => Tally::add(&tally.cut),
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`until_answered`] during set-up, when nothing is broken: the answer, which must have
/// `status`.
async fn set_up(make: impl Fn() -> reqwest::RequestBuilder, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (got, body) = until_answered(&Tally::default(), make, deadline)
        .await
        .expect("an answer during set-up");
    assert_eq!(got, status, "{body}");
    body
}

/// One request of the storm, counted in `tally`: sent until answered ([`until_answered`]),
/// its status asserted (`what` names it in the failure); the body, or `None` if it was
/// lost.
async fn storm_request(
    tally: &Tally,
    what: &str,
    status: u16,
    make: impl Fn() -> reqwest::RequestBuilder,
    deadline: Instant,
) -> Option<Value> {
    Tally::add(&tally.sent);
    let (got, body) = until_answered(tally, make, deadline).await?;
    assert_eq!(got, status, "{what}: {body}");
    Tally::add(&tally.acknowledged);
    Some(body)
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

/// One sign-in through the storm: a code requested, read from the mail, verified, and the
/// session used. A code spent by a verification whose answer was lost is refused (401):
/// then a new code, at most three in all (five per address per 10 minutes are allowed).
/// Whether it ended in a working session.
async fn sign_in_through_storm(
    client: &reqwest::Client,
    base: &str,
    mail: &Path,
    platform_id: &str,
    email: &str,
    tally: &Tally,
    deadline: Instant,
) -> bool {
    for attempt in 0..3 {
        if attempt > 0 {
            Tally::add(&tally.restarted);
        }
        let Some((status, body)) = until_answered(
            tally,
            || {
                client
                    .post(format!("{base}/api/v1/auth/otp/email"))
                    .json(&json!({"platform_id": platform_id, "email": email}))
            },
            deadline,
        )
        .await
        else {
            return false;
        };
        assert_eq!(status, 200, "code request for {email}: {body}");
        // The mail is written before the request is answered.
        let code = common::sign_in_code(mail, email);
        let Some((status, session)) = until_answered(
            tally,
            || {
                client
                    .post(format!("{base}/api/v1/auth/otp/verify"))
                    .json(&json!({"platform_id": platform_id, "email": email, "code": code}))
            },
            deadline,
        )
        .await
        else {
            return false;
        };
        match status {
            200 => {
                let token = session["access_token"].as_str().unwrap().to_owned();
                let Some((status, me)) = until_answered(
                    tally,
                    || {
                        client
                            .get(format!("{base}/api/v1/users/auth"))
                            .bearer_auth(&token)
                    },
                    deadline,
                )
                .await
                else {
                    return false;
                };
                assert_eq!(status, 200, "the new session of {email}: {me}");
                return true;
            }
            401 => continue,
            other => panic!("verify for {email} answered {other}: {session}"),
        }
    }
    panic!("{email} could not sign in with three codes")
}

/// What the storm acknowledged, to check afterwards.
#[derive(Default)]
struct Acknowledged {
    /// Idempotency-Key → purchase id.
    purchases: BTreeMap<String, String>,
    /// Idempotency-Key → cents.
    top_ups: BTreeMap<String, i64>,
    /// Idempotency-Key → (contract id, total in cents, `paid` as first answered).
    settlements: BTreeMap<String, (String, i64, Value)>,
}

/// The buyer's number in an Idempotency-Key `kind-BUYER-N`.
fn buyer_of(key: &str) -> usize {
    key.rsplit('-').nth(1).unwrap().parse().unwrap()
}

/// The `N` of an Idempotency-Key `kind-BUYER-N`.
fn number_of(key: &str) -> usize {
    key.rsplit('-').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_of_three_nodes_loses_and_doubles_nothing_through_node_and_database_crashes() {
    if backend_from_env().unwrap() != Backend::Postgres {
        eprintln!("the chaos test runs on PostgreSQL only (FERIA_TEST_BACKEND=postgres)");
        return;
    }
    let started = Instant::now();
    let storm = Duration::from_secs(
        std::env::var("CHAOS_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let redis_server = std::env::var("REDIS_TEST_URL").unwrap_or_else(|_| {
        assert!(
            std::net::TcpStream::connect("127.0.0.1:6379").is_ok(),
            "no Redis on 127.0.0.1:6379: install and start redis-server, or set REDIS_TEST_URL"
        );
        "redis://127.0.0.1:6379/".into()
    });
    // A Redis database of its own, as a deployment of its own would have (SCALING.md):
    // every node sees the clients as HAProxy's 127.0.0.1, and the storm's sign-in codes
    // would otherwise use up that address's 10-minute budget in the database other tests'
    // servers count in.
    let host_end = redis_server
        .find("://")
        .map(|scheme| {
            let rest = &redis_server[scheme + 3..];
            scheme + 3 + rest.find('/').unwrap_or(rest.len())
        })
        .unwrap_or(redis_server.len());
    let redis_url = format!("{}/{REDIS_DATABASE}", &redis_server[..host_end]);

    // PostgreSQL: a primary with the schema and a platform, then a streaming replica.
    let postgres = PostgresServer::start_new_primary();
    postgres.psql("postgres", "CREATE DATABASE feria");
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
    let platform = common::create_platform(
        common::feria(dirs[0].path(), &database_url, "warn"),
        "Chaos",
        "chaos.example.com",
        "owner@chaos.example",
    );
    let (platform_id, key) = (platform.id.clone(), platform.live_key.clone());
    let replica = PostgresServer::start_replica_of(&postgres);
    let replica_url = format!("postgres://postgres@127.0.0.1:{}/feria", replica.port());

    // Three nodes behind HAProxy; a webhook receiver for every event of the platform.
    let receiver = Receiver::start().await;
    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let node = |n: usize| Node {
        dir: dirs[n].path(),
        mail: mail.path(),
        database_url: &database_url,
        replica_url: &replica_url,
        redis_url: &redis_url,
        port: ports[n],
    };
    let mut nodes = Vec::new();
    for n in 0..NODES {
        nodes.push(Some(node(n).start().await));
    }
    let balancer = HaProxy::start(
        &ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>(),
        &haproxy::Options {
            health_check: Some("/readyz".into()),
            ..haproxy::Options::default()
        },
    );
    let base = balancer.url.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let endpoint = set_up(
        || {
            client
                .post(format!("{base}/api/v1/webhook_endpoints"))
                .bearer_auth(&key)
                .json(&json!({"url": receiver.url, "enabled_events": ["*"]}))
        },
        201,
    )
    .await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();

    // A seller with listings; buyers; contracts from the seller to each buyer, sent.
    let seller = common::sign_in(
        &client,
        &base,
        mail.path(),
        &platform_id,
        "seller@chaos.example",
    )
    .await;
    let seller_token = seller["access_token"].as_str().unwrap().to_owned();
    let seller_id = seller["user"]["id"].as_str().unwrap().to_owned();
    let mut listings = Vec::new();
    for n in 0..LISTINGS {
        let character = set_up(
            || {
                client
                    .post(format!("{base}/api/v1/characters"))
                    .bearer_auth(&seller_token)
                    .json(&json!({"name": format!("Chaos {n}"), "niche": "fitness",
                                  "description": "A template bought in a storm."}))
            },
            201,
        )
        .await;
        let listing = set_up(
            || {
                client
                    .post(format!("{base}/api/v1/marketplace/listings"))
                    .bearer_auth(&seller_token)
                    .json(&json!({"character_id": character["character"]["id"], "price": PRICE_CENTS as f64 / 100.0,
                                  "currency": "USD", "license_type": "commercial", "status": "active",
                                  "description": "A template listing for the chaos test."}))
            },
            201,
        )
        .await;
        listings.push(listing["listing"]["id"].as_str().unwrap().to_owned());
    }
    let mut buyers: Vec<(String, String)> = Vec::new();
    let mut contracts: Vec<Vec<(String, i64)>> = Vec::new();
    for b in 0..BUYERS {
        let session = common::sign_in(
            &client,
            &base,
            mail.path(),
            &platform_id,
            &format!("buyer{b}@chaos.example"),
        )
        .await;
        let user = session["user"]["id"].as_str().unwrap().to_owned();
        let mut theirs = Vec::new();
        for n in 0..CONTRACTS_PER_BUYER {
            let admin = |method: reqwest::Method, path: &str| {
                client
                    .request(method, format!("{base}/api/v1/contracts{path}"))
                    .bearer_auth(&key)
            };
            let contract = set_up(
                || {
                    admin(reqwest::Method::POST, "")
                        .json(&json!({"notes": format!("chaos {b}-{n}")}))
                },
                201,
            )
            .await;
            let id = format!("/{}", contract["id"].as_str().unwrap());
            set_up(
                || {
                    admin(reqwest::Method::POST, &format!("{id}/item"))
                        .json(&json!({"name": "Chaos work", "unit_price": 1.0}))
                },
                200,
            )
            .await;
            let contract = set_up(|| admin(reqwest::Method::GET, &id), 200).await;
            set_up(
                || {
                    admin(reqwest::Method::POST, &format!("{id}/buyer"))
                        .json(&json!({"user_id": user, "due": contract["total"]}))
                },
                200,
            )
            .await;
            set_up(
                || {
                    admin(reqwest::Method::POST, &format!("{id}/seller"))
                        .json(&json!({"user_id": seller_id, "owed": contract["net"]}))
                },
                200,
            )
            .await;
            set_up(|| admin(reqwest::Method::POST, &format!("{id}/send")), 200).await;
            theirs.push((id[1..].to_owned(), cents(&contract["total"])));
        }
        contracts.push(theirs);
        buyers.push((session["access_token"].as_str().unwrap().to_owned(), user));
    }
    eprintln!(
        "chaos: set up in {:.1} s: {LISTINGS} listings, {BUYERS} buyers, {} contracts",
        started.elapsed().as_secs_f64(),
        BUYERS * CONTRACTS_PER_BUYER
    );

    // The storm: each buyer tops up, buys (and reads its purchases), settles; a signer
    // signs new people in. Each request is retried with its key until it is answered; the
    // chaos runs beside it.
    let tallies: Tallies = Arc::default();
    let acknowledged: Arc<Mutex<Acknowledged>> = Arc::default();
    let storm_ends = Instant::now() + storm;
    let deadline = storm_ends + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for (buyer, (token, user)) in buyers.iter().enumerate() {
        let (client, base, key, token, user) = (
            client.clone(),
            base.clone(),
            key.clone(),
            token.clone(),
            user.clone(),
        );
        let (listings, contracts) = (listings.clone(), contracts[buyer].clone());
        let (tallies, acknowledged) = (tallies.clone(), acknowledged.clone());
        tasks.push(tokio::spawn(async move {
            // Until the storm ends: a top-up every fourth step (every step once there is
            // nothing else to do), a settlement every third, and a purchase (then a read
            // of the buyer's purchases) while there is a listing to buy.
            let (mut step, mut bought, mut settled) = (0, 0, 0);
            while Instant::now() < storm_ends {
                let idle = bought == LISTINGS && settled == contracts.len();
                if step % 4 == 0 || idle {
                    let idempotency = format!("top-up-{buyer}-{step}");
                    let answer = storm_request(
                        &tallies[TOP_UP],
                        &idempotency,
                        201,
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
                    if answer.is_some() {
                        acknowledged
                            .lock()
                            .unwrap()
                            .top_ups
                            .insert(idempotency, TOP_UP_CENTS);
                    }
                }
                if step % 3 == 1 && settled < contracts.len() {
                    let (contract, total) = &contracts[settled];
                    let idempotency = format!("settle-{buyer}-{settled}");
                    let answer = storm_request(
                        &tallies[SETTLE],
                        &idempotency,
                        200,
                        || {
                            client
                                .put(format!("{base}/api/v1/contracts/{contract}/settle"))
                                .bearer_auth(&key)
                                .header("Idempotency-Key", &idempotency)
                        },
                        deadline,
                    )
                    .await;
                    if let Some(body) = answer {
                        assert_eq!(body["status"], "settled", "{body}");
                        acknowledged.lock().unwrap().settlements.insert(
                            idempotency,
                            (contract.clone(), *total, body["paid"].clone()),
                        );
                    }
                    settled += 1;
                }
                if bought < LISTINGS {
                    let listing = &listings[(buyer * 7 + bought) % LISTINGS];
                    let idempotency = format!("purchase-{buyer}-{bought}");
                    let answer = storm_request(
                        &tallies[PURCHASE],
                        &idempotency,
                        201,
                        || {
                            client
                                .post(format!("{base}/api/v1/marketplace/{listing}/purchase"))
                                .bearer_auth(&token)
                                .header("Idempotency-Key", &idempotency)
                        },
                        deadline,
                    )
                    .await;
                    bought += 1;
                    if let Some(body) = answer {
                        let purchase = body["purchase"]["id"].as_str().unwrap().to_owned();
                        let mine = {
                            let mut acknowledged = acknowledged.lock().unwrap();
                            acknowledged.purchases.insert(idempotency, purchase);
                            acknowledged
                                .purchases
                                .keys()
                                .filter(|k| buyer_of(k) == buyer)
                                .count()
                        };
                        // Read-your-writes: the purchase just acknowledged is listed,
                        // whichever node or database (replica or primary) serves the read.
                        let answer = storm_request(
                            &tallies[READ],
                            "my purchases",
                            200,
                            || {
                                client
                                    .get(format!(
                                        "{base}/api/v1/marketplace/my-purchases?page_size=1"
                                    ))
                                    .bearer_auth(&token)
                            },
                            deadline,
                        )
                        .await;
                        if answer.is_some_and(|body| body["total"].as_u64().unwrap() < mine as u64)
                        {
                            Tally::add(&tallies[READ].stale);
                        }
                    }
                }
                step += 1;
            }
        }));
    }
    {
        let (client, base, tallies) = (client.clone(), base.clone(), tallies.clone());
        let (mail, platform_id) = (mail.path().to_owned(), platform_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < storm_ends {
                let tally = &tallies[SIGN_IN];
                Tally::add(&tally.sent);
                let email = format!("signer{n}@chaos.example");
                if sign_in_through_storm(
                    &client,
                    &base,
                    &mail,
                    &platform_id,
                    &email,
                    tally,
                    deadline,
                )
                .await
                {
                    Tally::add(&tally.acknowledged);
                }
                n += 1;
            }
        }));
    }

    // The chaos, spread over the storm: what leaves webhook leases behind (a node killed,
    // the database restarted under the workers) first, so that those leases run out
    // (30 s after the webhook timeout) soon after the storm.
    let beat = storm / 7;
    tokio::time::sleep(beat).await;
    nodes[1].take().unwrap().kill();
    eprintln!("chaos: node 1 killed (SIGKILL)");
    tokio::time::sleep(beat).await;
    tokio::task::block_in_place(|| {
        postgres.stop(StopMode::Fast);
        postgres.start();
    });
    eprintln!("chaos: PostgreSQL primary restarted (fast)");
    tokio::time::sleep(beat).await;
    tokio::task::block_in_place(|| {
        postgres.stop(StopMode::Crash);
        postgres.start();
    });
    eprintln!("chaos: PostgreSQL primary restarted after a crash (immediate)");
    tokio::time::sleep(beat).await;
    nodes[1] = Some(node(1).start().await);
    eprintln!("chaos: node 1 started again");
    tokio::time::sleep(beat).await;
    tokio::task::block_in_place(|| replica.stop(StopMode::Fast));
    eprintln!("chaos: replica stopped");
    tokio::time::sleep(beat).await;
    tokio::task::block_in_place(|| replica.start());
    eprintln!("chaos: replica started again");
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!(
        "chaos: storm over after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The counts, per kind.
    for (kind, tally) in KINDS.iter().zip(tallies.iter()) {
        let mut line = format!(
            "chaos: {kind:>8}: {} sent, {} acknowledged, {} tries refused with 503, {} failed with another 5xx, {} cut (each retried), {} lost",
            Tally::get(&tally.sent),
            Tally::get(&tally.acknowledged),
            Tally::get(&tally.refused_503),
            Tally::get(&tally.failed_5xx),
            Tally::get(&tally.cut),
            tally.lost(),
        );
        if *kind == "sign-in" {
            line.push_str(&format!(
                "; {} begun again with a new code",
                Tally::get(&tally.restarted)
            ));
        }
        if *kind == "read" {
            line.push_str(&format!(
                "; {} did not see the reader's own purchase",
                Tally::get(&tally.stale)
            ));
        }
        eprintln!("{line}");
    }
    for (kind, tally) in KINDS.iter().zip(tallies.iter()) {
        assert_eq!(tally.lost(), 0, "{kind}: requests lost");
    }
    assert_eq!(
        Tally::get(&tallies[READ].stale),
        0,
        "a client did not read its own write"
    );

    // Every acknowledged write exactly once: each replayed with its key answers the same.
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    let verify = Tally::default();
    let verify_deadline = Instant::now() + Duration::from_secs(60);
    for (idempotency, id) in &acknowledged.purchases {
        let (buyer, bought) = (buyer_of(idempotency), number_of(idempotency));
        let listing = &listings[(buyer * 7 + bought) % LISTINGS];
        let (status, body) = until_answered(
            &verify,
            || {
                client
                    .post(format!("{base}/api/v1/marketplace/{listing}/purchase"))
                    .bearer_auth(&buyers[buyer].0)
                    .header("Idempotency-Key", idempotency)
            },
            verify_deadline,
        )
        .await
        .expect("the replay is answered");
        assert_eq!(status, 201);
        assert_eq!(
            body["purchase"]["id"].as_str(),
            Some(id.as_str()),
            "{idempotency} answered another purchase"
        );
    }
    let distinct: BTreeSet<_> = acknowledged.purchases.values().collect();
    assert_eq!(
        distinct.len(),
        acknowledged.purchases.len(),
        "two keys answered one purchase"
    );
    for (idempotency, (contract, _, paid)) in &acknowledged.settlements {
        let (status, body) = until_answered(
            &verify,
            || {
                client
                    .put(format!("{base}/api/v1/contracts/{contract}/settle"))
                    .bearer_auth(&key)
                    .header("Idempotency-Key", idempotency)
            },
            verify_deadline,
        )
        .await
        .expect("the replay is answered");
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            &body["paid"], paid,
            "{idempotency} answered another payment"
        );
    }

    // Credits exact: top-ups minus purchases minus settled contracts, per buyer.
    for (buyer, (_, user)) in buyers.iter().enumerate() {
        let topped: i64 = acknowledged
            .top_ups
            .iter()
            .filter(|(k, _)| buyer_of(k) == buyer)
            .map(|(_, cents)| cents)
            .sum();
        let bought = acknowledged
            .purchases
            .keys()
            .filter(|k| buyer_of(k) == buyer)
            .count() as i64;
        let settled: i64 = acknowledged
            .settlements
            .iter()
            .filter(|(k, _)| buyer_of(k) == buyer)
            .map(|(_, (_, total, _))| total)
            .sum();
        let (status, credits) = until_answered(
            &verify,
            || {
                client
                    .get(format!("{base}/api/v1/users/{user}/credits"))
                    .bearer_auth(&key)
            },
            verify_deadline,
        )
        .await
        .expect("the credits are answered");
        assert_eq!(status, 200);
        assert_eq!(
            cents(&credits["balances"][0]["amount"]),
            topped - bought * PRICE_CENTS - settled,
            "buyer {buyer}: {credits}"
        );
    }

    // The ledger verifies; the event log has no gaps and one event per acknowledged write.
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
    let sql = |query: &str| postgres.psql("feria", query);
    // Events are numbered after commit (docs/EVENTS.md): the nodes' delivery workers number
    // what the storm left unnumbered within a poll or two.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sql("SELECT count(*) FROM events WHERE sequence < 0") != "0" {
        assert!(Instant::now() < deadline, "events left unnumbered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sql(
            "SELECT count(*) FROM (SELECT platform_id, mode, max(sequence) - min(sequence) + 1 - count(*) AS missing \
             FROM events GROUP BY platform_id, mode) s WHERE missing <> 0"
        ),
        "0",
        "the event log has gaps"
    );
    assert_eq!(
        sql("SELECT count(*) FROM events WHERE sequence < 1"),
        "0",
        "the event log starts at 1"
    );
    for (event_type, count) in [
        ("purchase.completed", acknowledged.purchases.len()),
        ("credits.topped_up", acknowledged.top_ups.len()),
        ("contract.settled", acknowledged.settlements.len()),
    ] {
        assert_eq!(
            sql(&format!(
                "SELECT count(*) FROM events WHERE platform_id = '{platform_id}' AND event_type = '{event_type}'"
            )),
            count.to_string(),
            "{event_type} events"
        );
    }

    // Webhooks: wait until every event is fanned out and every delivery has succeeded
    // (a delivery leased by a node that died, or whose outcome the database lost, waits
    // for its lease to run out: webhook timeout + 30 s).
    let of_platform = format!("platform_id = '{platform_id}' AND mode = 'live'");
    let waiting = || {
        sql(&format!(
            "SELECT (SELECT count(*) FROM events WHERE {of_platform} AND NOT fanned_out) \
             + (SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = '{endpoint_id}' AND status <> 'succeeded')"
        ))
    };
    let webhooks_started = Instant::now();
    while waiting() != "0" {
        assert!(
            webhooks_started.elapsed() < Duration::from_secs(90),
            "webhook deliveries did not all succeed: {} waiting",
            waiting()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let webhooks_waited = webhooks_started.elapsed();
    // Every event of the platform since the endpoint exists has its one delivery.
    assert_eq!(
        sql(&format!(
            "SELECT count(*) FROM events e WHERE e.{of_platform} \
             AND e.created_at >= (SELECT created_at FROM webhook_endpoints WHERE id = '{endpoint_id}') \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.endpoint_id = '{endpoint_id}')"
        )),
        "0",
        "an event has no delivery"
    );
    assert_eq!(
        sql(&format!(
            "SELECT count(*) FROM (SELECT event_id FROM webhook_deliveries WHERE endpoint_id = '{endpoint_id}' \
             GROUP BY event_id HAVING count(*) > 1) s"
        )),
        "0",
        "an event has two deliveries"
    );
    assert_eq!(
        sql(&format!(
            "SELECT count(*) FROM (SELECT delivery_id FROM webhook_attempts WHERE endpoint_id = '{endpoint_id}' \
             AND status_code BETWEEN 200 AND 299 GROUP BY delivery_id HAVING count(*) > 1) s"
        )),
        "0",
        "a delivery was sent again after it had succeeded"
    );
    // The receiver's side: every delivered event arrived; an event that arrived k times
    // was claimed (attempted) at least k times by its one delivery.
    let deliveries: BTreeMap<String, usize> = sql(&format!(
        "SELECT event_id || ' ' || attempts FROM webhook_deliveries WHERE endpoint_id = '{endpoint_id}'"
    ))
    .lines()
    .map(|line| {
        let (event, attempts) = line.split_once(' ').unwrap();
        (event.to_owned(), attempts.parse().unwrap())
    })
    .collect();
    let mut arrivals: BTreeMap<String, usize> = BTreeMap::new();
    for event in receiver.event_ids() {
        *arrivals.entry(event).or_default() += 1;
    }
    for (event, attempts) in &deliveries {
        let arrived = arrivals.get(event).copied().unwrap_or(0);
        assert!(arrived >= 1, "event {event} never reached the receiver");
        assert!(
            arrived <= *attempts,
            "event {event} arrived {arrived} times from {attempts} attempts: sent again without a new attempt"
        );
    }
    for event in arrivals.keys() {
        assert!(
            deliveries.contains_key(event),
            "the receiver got {event}, which has no delivery"
        );
    }
    let twice: usize = arrivals.values().map(|n| n - 1).sum();
    eprintln!(
        "chaos: webhooks: {} events delivered, {} arrivals, {twice} arrived again (an attempt whose outcome a crash lost, retried by its one delivery), every delivery succeeded {:.1} s after the checks began",
        deliveries.len(),
        arrivals.values().sum::<usize>(),
        webhooks_waited.as_secs_f64()
    );
    eprintln!(
        "chaos: {} purchases, {} top-ups, {} settlements, each once; whole test {:.1} s",
        acknowledged.purchases.len(),
        acknowledged.top_ups.len(),
        acknowledged.settlements.len(),
        started.elapsed().as_secs_f64()
    );
    drop(nodes);
    drop(balancer);
}
