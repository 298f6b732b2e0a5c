//! Crash safety: a purchase and settle storm against the real binary, killed with SIGKILL
//! in the middle, restarted on the same database (`FERIA_TEST_BACKEND` names it). Buyers
//! race to buy templates while an admin settles contracts (3 lines, 2 buyers, 2 sellers)
//! that charge the same buyers' credits. Then:
//!
//! - every purchase the client saw succeed is there exactly once, with its clone;
//! - every settle, replayed with its Idempotency-Key, answers 200 with the one settlement
//!   (the acknowledged ones with the very answer they had), each contract moved money
//!   once: the same number of transactions for each, the sellers' revenue is exactly what
//!   they are owed;
//! - every request the client sent, acknowledged or cut off, replayed with its
//!   Idempotency-Key, yields at most one purchase per buyer and listing, and a cut-off
//!   one that had committed answers with the purchase it made;
//! - each buyer's credits are the top-up minus exactly the purchases made and the shares
//!   of the contracts they pay (nothing half-written: no charge without purchase or
//!   settlement, and none of those without its charge);
//! - `feria ledger verify` passes.
//!
//! `CRASH_STORM_ROUNDS` (default 1) repeats kill-and-restart; `make crash-long` runs more.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use feria_kernel::testing::{TestDatabase, backend_from_env};

mod common;
use common::Server;
use serde_json::{Value, json};

const BUYERS: usize = 6;
/// Listings each round's storm buys from (new ones per round).
const LISTINGS_PER_ROUND: usize = 8;
/// The server is killed once this many purchases of the round were acknowledged, so
/// requests are in flight at every stage (or after 10 s, whatever happened).
const KILL_AFTER: usize = 15;
const PRICE: f64 = 2.0;
/// Credits per buyer and round: enough for the round's purchases and contract shares.
const TOP_UP_PER_ROUND: f64 = 100.0;
/// Contracts settled during each round's storm.
const CONTRACTS_PER_ROUND: usize = 6;
/// The three lines of each contract, in cents.
const CONTRACT_LINES: [i64; 3] = [1000, 600, 400];

/// A JSON request; the status and the body (`null` when there is none).
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn cents(amount: &Value) -> i64 {
    (amount
        .as_f64()
        .unwrap_or_else(|| panic!("not an amount: {amount}"))
        * 100.0)
        .round() as i64
}

/// A contract ready to settle: three custom lines, two of the buyers paying half each, the
/// two payees owed the net half each; sent.
async fn contract(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    n: usize,
    buyers: &[(String, String)],
    payees: &[String; 2],
) -> StormContract {
    use reqwest::Method;
    let (status, created) = call(
        client,
        Method::POST,
        &format!("{base}/api/v1/contracts"),
        key,
        Some(json!({"notes": format!("storm contract {n}")})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("{base}/api/v1/contracts/{id}");
    for (line, amount) in CONTRACT_LINES.iter().enumerate() {
        let body = json!({"name": format!("Line {line}"), "unit_price": *amount as f64 / 100.0});
        let (status, answer) = call(
            client,
            Method::POST,
            &format!("{path}/item"),
            key,
            Some(body),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    let (_, shown) = call(client, Method::GET, &path, key, None).await;
    let (total, net) = (cents(&shown["total"]), cents(&shown["net"]));
    let first = (n % buyers.len(), total / 2);
    let second = ((n + 1) % buyers.len(), total - total / 2);
    for (buyer, due) in [first, second] {
        let body = json!({"user_id": buyers[buyer].1, "due": due as f64 / 100.0});
        let (status, answer) = call(
            client,
            Method::POST,
            &format!("{path}/buyer"),
            key,
            Some(body),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    let owed = [net / 2, net - net / 2];
    for (payee, owed) in payees.iter().zip(owed) {
        let body = json!({"user_id": payee, "owed": owed as f64 / 100.0});
        let (status, answer) = call(
            client,
            Method::POST,
            &format!("{path}/seller"),
            key,
            Some(body),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = call(client, Method::POST, &format!("{path}/send"), key, None).await;
    assert_eq!(status, 200, "{answer}");
    StormContract {
        id,
        shares: [first, second],
        owed,
    }
}

/// A contract of the storm: who pays what, who is owed what (cents).
struct StormContract {
    id: String,
    /// (buyer index, due).
    shares: [(usize, i64); 2],
    /// Owed to each payee.
    owed: [i64; 2],
}

fn feria(data_dir: &Path, database_url: &str) -> Command {
    let mut command = common::feria(data_dir, database_url, "warn");
    command
        .env("OTP_REQUESTS_PER_IP", "10000")
        // The storm's set-up writes faster than the write limit lets one key write.
        .env("WRITE_RATE_LIMIT", "0")
        // Many rounds make more templates (and clones) than a workspace holds by default.
        .env("WORKSPACE_CHARACTER_LIMIT", "10000");
    command
}

/// Signs `email` in through the server (its mail in `dir`/mail): (access token, user id).
async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    dir: &Path,
    platform: &str,
    email: &str,
) -> (String, String) {
    let session = common::sign_in(client, base, &dir.join("mail"), platform, email).await;
    (
        session["access_token"].as_str().unwrap().to_owned(),
        session["user"]["id"].as_str().unwrap().to_owned(),
    )
}

/// One purchase attempt: the buyer, the listing and the Idempotency-Key it was sent with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Attempt {
    buyer: usize,
    listing: usize,
    key: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_survive_sigkill_exactly_once_and_the_ledger_verifies() {
    let backend = backend_from_env().unwrap();
    let database = TestDatabase::create(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rounds: usize = std::env::var("CRASH_STORM_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);

    let platform = common::create_platform(
        feria(dir.path(), database.url()),
        "Storm",
        "storm.example.com",
        "owner@storm.example",
    );
    let (platform_id, key) = (platform.id, platform.live_key);

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut server = Server::start(feria(dir.path(), database.url())).await;
    let base = server.base.clone();

    // A seller with listings; buyers with credits.
    let (seller, _) = sign_in(
        &client,
        &base,
        dir.path(),
        &platform_id,
        "seller@storm.example",
    )
    .await;
    let mut listings = Vec::new();
    for n in 0..LISTINGS_PER_ROUND * rounds {
        let character: Value = client
            .post(format!("{base}/api/v1/characters"))
            .bearer_auth(&seller)
            .json(&json!({"name": format!("Storm {n}"), "niche": "fitness",
                          "description": "A template to buy in a storm."}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listing: Value = client
            .post(format!("{base}/api/v1/marketplace/listings"))
            .bearer_auth(&seller)
            .json(
                &json!({"character_id": character["character"]["id"], "price": PRICE,
                          "currency": "USD", "license_type": "commercial", "status": "active",
                          "description": "A template listing for the crash storm test."}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listings.push(listing["listing"]["id"].as_str().unwrap().to_owned());
    }
    let top_up = TOP_UP_PER_ROUND * rounds as f64;
    let mut buyers = Vec::new();
    for n in 0..BUYERS {
        let (token, user) = sign_in(
            &client,
            &base,
            dir.path(),
            &platform_id,
            &format!("buyer{n}@storm.example"),
        )
        .await;
        let topped = client
            .post(format!("{base}/api/v1/users/{user}/credits"))
            .bearer_auth(&key)
            .header("Idempotency-Key", format!("top-up-{n}"))
            .json(&json!({"amount": top_up, "currency": "usd"}))
            .send()
            .await
            .unwrap();
        assert_eq!(topped.status(), 201);
        buyers.push((token, user));
    }

    // Two sellers paid by the contracts, and the contracts each round settles.
    let mut payees = Vec::new();
    for n in 0..2 {
        let email = format!("payee{n}@storm.example");
        payees.push(
            sign_in(&client, &base, dir.path(), &platform_id, &email)
                .await
                .1,
        );
    }
    let payees: [String; 2] = [payees[0].clone(), payees[1].clone()];
    let mut contracts = Vec::new();
    for n in 0..CONTRACTS_PER_ROUND * rounds {
        contracts.push(contract(&client, &base, &key, n, &buyers, &payees).await);
    }
    // Each settle sent, and the answer of each acknowledged one.
    let settles_sent: Arc<Mutex<BTreeSet<usize>>> = Arc::default();
    let settles_acknowledged: Arc<Mutex<BTreeMap<usize, Value>>> = Arc::default();

    // Every attempt ever sent, and the purchase id of each acknowledged one.
    let attempts: Arc<Mutex<BTreeSet<Attempt>>> = Arc::default();
    let acknowledged: Arc<Mutex<BTreeMap<Attempt, String>>> = Arc::default();

    for round in 0..rounds {
        // The storm: every buyer races through its share of the listings; the server is
        // killed after a short while, whatever is in flight.
        let mut tasks = Vec::new();
        for (buyer, (token, _)) in buyers.iter().enumerate() {
            let client = client.clone();
            let base = server.base.clone();
            let token = token.clone();
            let listing_ids = listings.clone();
            let attempts = attempts.clone();
            let acknowledged = acknowledged.clone();
            tasks.push(tokio::spawn(async move {
                for step in 0..LISTINGS_PER_ROUND {
                    let listing = round * LISTINGS_PER_ROUND + (buyer + step) % LISTINGS_PER_ROUND;
                    let attempt = Attempt {
                        buyer,
                        listing,
                        key: format!("storm-{round}-{buyer}-{listing}"),
                    };
                    attempts.lock().unwrap().insert(attempt.clone());
                    let answer = client
                        .post(format!(
                            "{base}/api/v1/marketplace/{}/purchase",
                            listing_ids[listing]
                        ))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", &attempt.key)
                        .send()
                        .await;
                    let Ok(answer) = answer else { return };
                    if answer.status() == 201 {
                        let body: Value = answer.json().await.unwrap();
                        let id = body["purchase"]["id"].as_str().unwrap().to_owned();
                        acknowledged.lock().unwrap().insert(attempt, id);
                    }
                }
            }));
        }
        {
            // The settler: an admin settling this round's contracts, one after the other.
            let client = client.clone();
            let base = server.base.clone();
            let key = key.clone();
            let first = round * CONTRACTS_PER_ROUND;
            let ids: Vec<(usize, String)> = contracts[first..first + CONTRACTS_PER_ROUND]
                .iter()
                .enumerate()
                .map(|(offset, c)| (first + offset, c.id.clone()))
                .collect();
            let (sent, acknowledged) = (settles_sent.clone(), settles_acknowledged.clone());
            tasks.push(tokio::spawn(async move {
                for (n, id) in ids {
                    sent.lock().unwrap().insert(n);
                    let answer = client
                        .put(format!("{base}/api/v1/contracts/{id}/settle"))
                        .bearer_auth(&key)
                        .header("Idempotency-Key", format!("settle-{n}"))
                        .send()
                        .await;
                    let Ok(answer) = answer else { return };
                    if answer.status() == 200 {
                        let body: Value = answer.json().await.unwrap();
                        acknowledged.lock().unwrap().insert(n, body);
                    }
                }
            }));
        }
        let before = acknowledged.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(10);
        while acknowledged.lock().unwrap().len() < before + KILL_AFTER && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        for task in tasks {
            task.await.unwrap();
        }
        server = Server::start(feria(dir.path(), database.url())).await;
    }
    let base = server.base.clone();

    // Replay every attempt with its key: a committed one answers with its purchase, a
    // lost one is made now; either way at most one purchase per buyer and listing.
    let attempts = attempts.lock().unwrap().clone();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!attempts.is_empty());
    for attempt in &attempts {
        let answer = client
            .post(format!(
                "{base}/api/v1/marketplace/{}/purchase",
                listings[attempt.listing]
            ))
            .bearer_auth(&buyers[attempt.buyer].0)
            .header("Idempotency-Key", &attempt.key)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap();
        match status {
            201 => {
                if let Some(id) = acknowledged.get(attempt) {
                    assert_eq!(
                        body["purchase"]["id"].as_str(),
                        Some(id.as_str()),
                        "a replay of an acknowledged purchase answers with it"
                    );
                }
            }
            // Another round's key already bought this listing for this buyer.
            409 => assert_eq!(body["error"], "already_purchased", "{body}"),
            other => panic!("replay of {attempt:?} answered {other}: {body}"),
        }
    }

    // Replay every settle sent with its key; settle the ones never sent (a round cut
    // short) too, so that every contract's money has moved exactly once.
    let settles_sent = settles_sent.lock().unwrap().clone();
    let settles_acknowledged = settles_acknowledged.lock().unwrap().clone();
    let mut transactions_per_contract = BTreeSet::new();
    let mut due = [0i64; BUYERS];
    let mut owed = [0i64; 2];
    for (n, contract) in contracts.iter().enumerate() {
        let id = &contract.id;
        let answer = client
            .put(format!("{base}/api/v1/contracts/{id}/settle"))
            .bearer_auth(&key)
            .header("Idempotency-Key", format!("settle-{n}"))
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap();
        assert_eq!(status, 200, "replaying the settle of {id}: {body}");
        assert_eq!(body["status"], "settled", "{body}");
        if let Some(first) = settles_acknowledged.get(&n) {
            assert_eq!(
                body["paid"], first["paid"],
                "a replay answers the same settlement"
            );
        }
        let (_, transactions) = call(
            &client,
            reqwest::Method::GET,
            &format!("{base}/api/v1/transactions?contract_id={id}&page_size=100"),
            &key,
            None,
        )
        .await;
        transactions_per_contract.insert(transactions["total"].as_u64().unwrap());
        for (buyer, share) in contract.shares {
            due[buyer] += share;
        }
        owed[0] += contract.owed[0];
        owed[1] += contract.owed[1];
    }
    assert_eq!(
        transactions_per_contract.len(),
        1,
        "contracts of one shape moved money a different number of times: {transactions_per_contract:?}"
    );
    for (payee, owed) in payees.iter().zip(owed) {
        let (_, revenue) = call(
            &client,
            reqwest::Method::GET,
            &format!("{base}/api/v1/transactions/user/{payee}/revenue"),
            &key,
            None,
        )
        .await;
        assert_eq!(cents(&revenue["totals"][0]["amount"]), owed, "{revenue}");
    }

    for (n, (token, user)) in buyers.iter().enumerate() {
        let purchases: Value = client
            .get(format!(
                "{base}/api/v1/marketplace/my-purchases?page_size=100"
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = purchases["purchases"].as_array().unwrap();
        let ids: BTreeSet<&str> = list.iter().map(|p| p["id"].as_str().unwrap()).collect();
        let listing_ids: BTreeSet<&str> = list
            .iter()
            .map(|p| p["listing_id"].as_str().unwrap())
            .collect();
        assert_eq!(listing_ids.len(), list.len(), "a listing bought twice");
        // Every attempted listing is bought exactly once now.
        let attempted: BTreeSet<&str> = attempts
            .iter()
            .filter(|a| a.buyer == n)
            .map(|a| listings[a.listing].as_str())
            .collect();
        assert_eq!(listing_ids, attempted);
        for (attempt, id) in &acknowledged {
            if attempt.buyer == n {
                assert!(ids.contains(id.as_str()), "acknowledged {id} is missing");
            }
        }
        // Each purchase came with its clone in the buyer's workspace.
        let characters: Value = client
            .get(format!("{base}/api/v1/characters?page_size=100"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let clones = characters["characters"]
            .as_array()
            .or_else(|| characters["data"].as_array())
            .unwrap_or_else(|| panic!("{characters}"))
            .len();
        assert_eq!(clones, list.len(), "one clone per purchase");
        // Credits: the top-up less exactly what was bought.
        let credits: Value = client
            .get(format!("{base}/api/v1/users/{user}/credits"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let balance = cents(&credits["balances"][0]["amount"]);
        let spent = (PRICE * 100.0) as i64 * list.len() as i64 + due[n];
        assert_eq!(balance, (top_up * 100.0) as i64 - spent, "{credits}");
    }
    drop(server);

    let verify = feria(dir.path(), database.url())
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "the ledger does not verify:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    eprintln!(
        "crash storm: {rounds} kill(s), {} purchase attempts, {} acknowledged before a kill; \
         {} settles sent, {} acknowledged before a kill, {} contracts settled once each",
        attempts.len(),
        acknowledged.len(),
        settles_sent.len(),
        settles_acknowledged.len(),
        contracts.len()
    );
}
