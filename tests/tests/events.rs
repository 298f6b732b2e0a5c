//! Events and webhooks through real HTTP, on either backend: the outbox (one event per
//! committed change, none for a rolled-back one, gap-free sequences under concurrency),
//! the log API, webhook endpoints, signed deliveries to a real receiver on loopback,
//! retries after 500s and timeouts, redelivery, automatic disabling with the owner's
//! mail, tenancy, and the SSRF rules.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use feria_testkit::webhook_receiver::{Answer, Receiver};
use feria_testkit::{CreatedPlatform, Method, TestApp, TestAppBuilder, TestResponse};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

// ---- the world ----------------------------------------------------------------------

/// A server whose webhook worker polls fast and retries within a second.
fn fast_webhooks() -> TestAppBuilder {
    TestApp::builder().config(|c| {
        c.webhooks.poll_interval = Duration::from_millis(50);
        c.webhooks.retry_base = Duration::from_millis(200);
        c.webhooks.retry_max = Duration::from_millis(400);
        c.webhooks.timeout = Duration::from_millis(1000);
        c.webhooks.allow_private_targets = true;
        c.otp_requests_per_ip = 10_000;
    })
}

struct World {
    app: TestApp,
    acme: CreatedPlatform,
    other: CreatedPlatform,
    seller_id: String,
}

async fn world_with(builder: TestAppBuilder) -> World {
    let app = builder.spawn().await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    let seller = app
        .send_json_as(
            &acme.api_keys.live,
            Method::POST,
            "/api/v1/users",
            &json!({"email": "seller@acme.example"}),
        )
        .await
        .assert_status(201)
        .json_value();
    World {
        app,
        acme,
        other,
        seller_id: seller["id"].as_str().unwrap().to_owned(),
    }
}

async fn world() -> World {
    world_with(fast_webhooks()).await
}

impl World {
    fn key(&self) -> &str {
        &self.acme.api_keys.live
    }

    async fn send(&self, key: &str, method: Method, path: &str, body: &Value) -> TestResponse {
        self.app.send_json_as(key, method, path, body).await
    }

    async fn product(&self, name: &str) -> Value {
        self.send(
            self.key(),
            Method::POST,
            "/api/v1/products",
            &json!({"user_id": self.seller_id, "name": name, "price": 10, "quantity": 5}),
        )
        .await
        .assert_status(201)
        .json_value()
    }

    async fn endpoint(&self, key: &str, url: &str, events: Value) -> Value {
        self.send(
            key,
            Method::POST,
            "/api/v1/webhook_endpoints",
            &json!({"url": url, "enabled_events": events, "description": "test"}),
        )
        .await
        .assert_status(201)
        .json_value()
    }

    async fn events(&self, key: &str, query: &str) -> Value {
        self.app
            .get_as(key, &format!("/api/v1/events{query}"))
            .await
            .assert_status(200)
            .json_value()
    }

    async fn attempts(&self, endpoint_id: &str) -> Vec<Value> {
        self.app
            .get_as(
                self.key(),
                &format!("/api/v1/webhook_endpoints/{endpoint_id}/deliveries?page_size=100"),
            )
            .await
            .assert_status(200)
            .json_value()["data"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// Polls `check` until it returns `Some`, or fails after `seconds`.
async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A number read from the test database: `sql` selects one row with a column `n`.
async fn number(app: &TestApp, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.db().conn().await.unwrap();
    let row: Row = feria_kernel::with_conn!(&mut conn, c => {
        diesel_async::RunQueryDsl::get_result(diesel::sql_query(sql), c).await
    })
    .unwrap();
    row.n
}

/// Waits until the worker has fanned every event out. Fan-out makes an event's
/// deliveries in the transaction that marks it, once: from then on, a delivery that does
/// not exist never will, so "nothing more arrives" is a query, not a wait.
async fn all_fanned_out(app: &TestApp) {
    eventually(20, "every event to be fanned out", || async {
        (number(
            app,
            "SELECT COUNT(*) AS n FROM events WHERE fanned_out = FALSE",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
}

/// When a delivery's next attempt is due (`None` once it is no longer pending).
async fn next_attempt_at(app: &TestApp, delivery_id: &str) -> Option<feria_kernel::Timestamp> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
        next_attempt_at: Option<feria_kernel::Timestamp>,
    }
    let sql = format!("SELECT next_attempt_at FROM webhook_deliveries WHERE id = '{delivery_id}'");
    let mut conn = app.db().conn().await.unwrap();
    let row: Row = feria_kernel::with_conn!(&mut conn, c => {
        diesel_async::RunQueryDsl::get_result(diesel::sql_query(&sql), c).await
    })
    .unwrap();
    row.next_attempt_at
}

/// The documented recipe, computed independently: hex HMAC-SHA256 of `<t>.<body>`.
fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<hmac_sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn types(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

// ---- tests --------------------------------------------------------------------------

#[tokio::test]
async fn a_delivery_arrives_signed_as_documented() {
    let w = world().await;
    let receiver = Receiver::start().await;
    let endpoint = w
        .endpoint(w.key(), &receiver.url, json!(["product.created"]))
        .await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{endpoint}");
    assert_eq!(endpoint["enabled"], true);
    assert_eq!(endpoint["mode"], "live");
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    assert!(endpoint_id.starts_with("we_"));

    // Reads mask the secret.
    let read = w
        .app
        .get_as(w.key(), &format!("/api/v1/webhook_endpoints/{endpoint_id}"))
        .await
        .assert_status(200)
        .json_value();
    assert_ne!(read["secret"], endpoint["secret"]);
    assert!(read["secret"].as_str().unwrap().starts_with("whsec_…"));

    let product = w.product("Lamp").await;
    let request = eventually(20, "the delivery", || async {
        receiver.received().into_iter().next()
    })
    .await;

    let signature = request.header("Feria-Signature").unwrap().to_owned();
    let (t, v1) = signature.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    assert_eq!(v1, expected_signature(&secret, t, &request.body));
    let age = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - t.parse::<i64>().unwrap();
    assert!(age.abs() <= 300, "timestamp {t} is not now");
    assert_ne!(v1, expected_signature("whsec_wrong", t, &request.body));

    let body = request.json();
    assert_eq!(request.header("Feria-Event-Id"), body["id"].as_str());
    assert_eq!(body["type"], "product.created");
    assert_eq!(body["data"]["object"]["id"], product["id"]);
    assert_eq!(body["data"]["object"]["name"], "Lamp");
    assert!(body["sequence"].as_i64().unwrap() >= 1);
    assert!(body["id"].as_str().unwrap().starts_with("evt_"));
    assert!(body["created"].as_str().unwrap().ends_with('Z'));

    // The same event in the log.
    let logged = w
        .app
        .get_as(
            w.key(),
            &format!("/api/v1/events/{}", body["id"].as_str().unwrap()),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(logged["sequence"], body["sequence"]);
    assert_eq!(logged["data"], body["data"]);

    // The attempt is recorded.
    let attempts = eventually(10, "the attempt record", || async {
        let attempts = w.attempts(&endpoint_id).await;
        (!attempts.is_empty()).then_some(attempts)
    })
    .await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["event_id"], body["id"]);
    assert_eq!(attempts[0]["response_body"], "received");
    assert!(attempts[0]["next_retry_at"].is_null());

    // Only product.created was wanted: a user.created does not arrive. Once every event
    // is fanned out the endpoint's deliveries are final: the two products', no other.
    w.send(
        w.key(),
        Method::POST,
        "/api/v1/users",
        &json!({"email": "someone@acme.example"}),
    )
    .await
    .assert_status(201);
    w.product("Desk").await;
    eventually(20, "the second delivery", || async {
        (receiver.received().len() >= 2).then_some(())
    })
    .await;
    all_fanned_out(&w.app).await;
    let wanted = format!(
        "SELECT COUNT(*) AS n FROM webhook_deliveries d JOIN events e ON e.id = d.event_id \
         WHERE d.endpoint_id = '{endpoint_id}' AND e.event_type = 'product.created'"
    );
    let all =
        format!("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE endpoint_id = '{endpoint_id}'");
    assert_eq!(number(&w.app, &wanted).await, 2);
    assert_eq!(number(&w.app, &all).await, 2);
    let kinds: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, vec!["product.created", "product.created"]);
}

#[tokio::test]
async fn failures_are_retried_after_500s_and_timeouts_then_redelivered_by_hand() {
    let w = world().await;
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Fail, Answer::Fail, Answer::Hang]);
    let endpoint = w
        .endpoint(w.key(), &receiver.url, json!(["product.created"]))
        .await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    w.product("Lamp").await;

    let attempts = eventually(30, "a successful fourth attempt", || async {
        let attempts = w.attempts(&endpoint_id).await;
        attempts
            .iter()
            .any(|a| a["status_code"] == 200)
            .then_some(attempts)
    })
    .await;
    // Newest first.
    let mut attempts = attempts;
    attempts.reverse();
    assert_eq!(attempts.len(), 4, "{attempts:#?}");
    let numbers: Vec<i64> = attempts
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2, 3, 4]);
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[0]["response_body"], "oops");
    assert!(attempts[0]["error"].as_str().unwrap().contains("500"));
    assert!(!attempts[0]["next_retry_at"].is_null());
    assert_eq!(attempts[1]["status_code"], 500);
    assert!(attempts[2]["status_code"].is_null(), "{:?}", attempts[2]);
    assert!(
        attempts[2]["error"].as_str().unwrap().contains("timed out"),
        "{:?}",
        attempts[2]
    );
    assert!(attempts[2]["duration_ms"].as_i64().unwrap() >= 900);
    assert_eq!(attempts[3]["status_code"], 200);
    assert!(attempts[3]["next_retry_at"].is_null());
    let delivery = attempts[0]["delivery_id"].as_str().unwrap().to_owned();
    assert!(
        attempts
            .iter()
            .all(|a| a["delivery_id"] == delivery.as_str())
    );

    // Every attempt carried the same event.
    let received = receiver.received();
    assert_eq!(received.len(), 4);
    let ids: Vec<&str> = received
        .iter()
        .map(|r| r.header("Feria-Event-Id").unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]));

    // By hand: sent again.
    let redelivered = w
        .send(
            w.key(),
            Method::POST,
            &format!("/api/v1/webhook_endpoints/{endpoint_id}/deliveries/{delivery}/redeliver"),
            &json!({}),
        )
        .await
        .assert_status(202)
        .json_value();
    assert_eq!(redelivered["status"], "pending");
    eventually(20, "the redelivery", || async {
        (receiver.received().len() == 5).then_some(())
    })
    .await;
    assert_eq!(
        receiver.received()[4].header("Feria-Event-Id"),
        Some(ids[0])
    );
    // Unknown delivery, or another platform's: 404.
    w.send(
        w.key(),
        Method::POST,
        &format!(
            "/api/v1/webhook_endpoints/{endpoint_id}/deliveries/whd_01HZZ0J7N7P5B4K2V1Q9R8S6T5/redeliver"
        ),
        &json!({}),
    )
    .await
    .assert_error(404, "not_found");
    w.send(
        &w.other.api_keys.live,
        Method::POST,
        &format!("/api/v1/webhook_endpoints/{endpoint_id}/deliveries/{delivery}/redeliver"),
        &json!({}),
    )
    .await
    .assert_error(404, "not_found");
}

#[tokio::test]
async fn the_log_is_in_sequence_order_and_replays_after_a_sequence() {
    let w = world().await;
    for name in ["A", "B", "C", "D", "E"] {
        w.product(name).await;
    }
    let all = w.events(w.key(), "").await;
    let sequences: Vec<i64> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=sequences.len() as i64).collect();
    assert_eq!(sequences, expected, "gap-free from 1: {all}");
    assert_eq!(all["has_more"], false);
    // The owner (bootstrap), the seller, five products.
    assert_eq!(
        types(&all),
        vec![
            "user.created",
            "user.created",
            "product.created",
            "product.created",
            "product.created",
            "product.created",
            "product.created"
        ]
    );

    let products = w.events(w.key(), "?type=product.created").await;
    assert_eq!(products["data"].as_array().unwrap().len(), 5);
    let names: Vec<&str> = products["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["object"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["A", "B", "C", "D", "E"]);

    // Replay after a sequence, in pages.
    let third = products["data"][2]["sequence"].as_i64().unwrap();
    let rest = w.events(w.key(), &format!("?after={third}&limit=1")).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["sequence"], third + 1);
    assert_eq!(rest["has_more"], true);
    assert_eq!(rest["next_after"], third + 1);
    let last = w.events(w.key(), &format!("?after={}", third + 1)).await;
    assert_eq!(last["data"].as_array().unwrap().len(), 1);
    assert_eq!(last["data"][0]["data"]["object"]["name"], "E");
    assert_eq!(last["has_more"], false);
    let none = w.events(w.key(), "?after=1000").await;
    assert!(none["data"].as_array().unwrap().is_empty());
    assert_eq!(none["next_after"], 1000);

    // Updates and deletes are events too.
    let product = &products["data"][0]["data"]["object"];
    let id = product["id"].as_str().unwrap();
    w.send(
        w.key(),
        Method::PUT,
        &format!("/api/v1/products/{id}"),
        &json!({"name": "A2"}),
    )
    .await
    .assert_status(200);
    w.app
        .send(
            w.app
                .request(Method::DELETE, &format!("/api/v1/products/{id}"))
                .bearer_auth(w.key()),
        )
        .await;
    let changes = w.events(w.key(), &format!("?after={}", third + 2)).await;
    assert_eq!(types(&changes), vec!["product.updated", "product.deleted"]);
    assert_eq!(changes["data"][0]["data"]["object"]["name"], "A2");

    // Validation.
    for query in [
        "?limit=0",
        "?limit=1001",
        "?after=-1",
        "?type=product.exploded",
    ] {
        w.app
            .get_as(w.key(), &format!("/api/v1/events{query}"))
            .await
            .assert_error(422, "validation_failed");
    }
    w.app
        .get_as(w.key(), "/api/v1/events?limit=many")
        .await
        .assert_error(400, "invalid_query");
    w.app
        .get_as(w.key(), "/api/v1/events/evt_nope")
        .await
        .assert_error(404, "not_found");
    w.app
        .get("/api/v1/events")
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn a_refused_purchase_leaves_no_event_and_a_completed_one_leaves_each_once() {
    let w = world().await;
    let seller = w
        .app
        .sign_in(w.acme.platform.id.as_str(), "maker@example.com", "live")
        .await;
    let buyer = w
        .app
        .sign_in(w.acme.platform.id.as_str(), "buyer@example.com", "live")
        .await;
    let seller_token = seller["access_token"].as_str().unwrap();
    let buyer_token = buyer["access_token"].as_str().unwrap();
    let buyer_id = buyer["user"]["id"].as_str().unwrap();
    let character = w
        .send(
            seller_token,
            Method::POST,
            "/api/v1/characters",
            &json!({"name": "Mila", "niche": "wellness", "description": "A character.",
                    "traits": ["upbeat"]}),
        )
        .await
        .assert_status(201)
        .json_value()["character"]
        .clone();
    let listing = w
        .send(
            seller_token,
            Method::POST,
            "/api/v1/marketplace/listings",
            &json!({"character_id": character["id"], "price": 100, "currency": "USD",
                    "license_type": "commercial", "status": "active"}),
        )
        .await
        .assert_status(201)
        .json_value()["listing"]
        .clone();
    let listing_id = listing["id"].as_str().unwrap();
    let before = w.events(w.key(), "").await;
    let before_last = before["next_after"].as_i64().unwrap();
    assert!(types(&before).contains(&"listing.created".to_owned()));

    // No credits: refused, and nothing recorded.
    w.send(
        buyer_token,
        Method::POST,
        &format!("/api/v1/marketplace/{listing_id}/purchase"),
        &json!({}),
    )
    .await
    .assert_error(409, "insufficient_funds");
    let after_refusal = w.events(w.key(), &format!("?after={before_last}")).await;
    assert!(
        after_refusal["data"].as_array().unwrap().is_empty(),
        "{after_refusal}"
    );

    // Credits, then the purchase: each event once, in order.
    w.send(
        w.key(),
        Method::POST,
        &format!("/api/v1/users/{buyer_id}/credits"),
        &json!({"amount": 150, "currency": "usd"}),
    )
    .await
    .assert_status(201);
    let bought = w
        .send(
            buyer_token,
            Method::POST,
            &format!("/api/v1/marketplace/{listing_id}/purchase"),
            &json!({}),
        )
        .await
        .assert_status(201)
        .json_value();
    let events = w.events(w.key(), &format!("?after={before_last}")).await;
    let kinds = types(&events);
    assert_eq!(kinds[0], "transaction.created");
    assert_eq!(kinds[1], "credits.topped_up");
    assert_eq!(
        kinds.iter().filter(|k| *k == "purchase.completed").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(kinds.last().unwrap(), "purchase.completed");
    // Charge, earning and fee of the purchase, before it.
    assert!(
        kinds.iter().filter(|k| *k == "transaction.created").count() >= 3,
        "{kinds:?}"
    );
    let completed = events["data"].as_array().unwrap().last().unwrap();
    assert_eq!(
        completed["data"]["object"]["purchase"]["id"],
        bought["purchase"]["id"]
    );
    let sequences: Vec<i64> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (before_last + 1..=before_last + sequences.len() as i64).collect();
    assert_eq!(sequences, expected);

    // Archiving a listing.
    w.send(
        seller_token,
        Method::DELETE,
        &format!("/api/v1/marketplace/listings/{listing_id}"),
        &json!({}),
    )
    .await;
    let archived = w.events(w.key(), "?type=listing.archived").await;
    assert_eq!(archived["data"].as_array().unwrap().len(), 1, "{archived}");
}

#[tokio::test]
async fn concurrent_changes_get_one_event_each_with_gap_free_sequences() {
    let w = world_with(fast_webhooks().config(|c| c.workers = Some(2))).await;
    let start = w.events(w.key(), "").await["next_after"].as_i64().unwrap();
    let creates = (0..20).map(|i| {
        let w = &w;
        async move { w.product(&format!("Item {i}")).await }
    });
    let products = futures_util::future::join_all(creates).await;
    let events = w
        .events(w.key(), &format!("?after={start}&type=product.created"))
        .await;
    let data = events["data"].as_array().unwrap();
    assert_eq!(data.len(), 20);
    let mut sequences: Vec<i64> = data
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    sequences.sort_unstable();
    let expected: Vec<i64> = (start + 1..=start + 20).collect();
    assert_eq!(sequences, expected);
    let mut event_products: Vec<&str> = data
        .iter()
        .map(|e| e["data"]["object"]["id"].as_str().unwrap())
        .collect();
    event_products.sort_unstable();
    let mut created: Vec<&str> = products.iter().map(|p| p["id"].as_str().unwrap()).collect();
    created.sort_unstable();
    assert_eq!(event_products, created);
}

/// A consumer that follows the log with `?after=` while many writers commit sees each
/// event once, in order, and never a number that a later read fills in below one it has
/// already seen: every page it gets starts right after its cursor and has no hole. On
/// PostgreSQL events are numbered after commit (the sequencer), by readers like this one
/// and by the delivery worker at once, so this also races the two sequencers.
#[tokio::test]
async fn a_consumer_following_the_log_during_a_storm_sees_every_event_once_and_no_late_gaps() {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let w = world_with(fast_webhooks().config(|c| c.workers = Some(4))).await;
    let start = w.events(w.key(), "").await["next_after"].as_i64().unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let writers = async {
        let writers = (0..WRITERS).map(|writer| {
            let w = &w;
            async move {
                for i in 0..EACH {
                    w.product(&format!("Storm {writer}-{i}")).await;
                }
            }
        });
        futures_util::future::join_all(writers).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let consumer = async {
        let mut cursor = start;
        let mut seen: Vec<(i64, String)> = Vec::new();
        loop {
            // Read the flag first: a page read after the writers finished is the last word.
            let finished = done.load(std::sync::atomic::Ordering::SeqCst);
            let page = w
                .events(w.key(), &format!("?after={cursor}&limit=37"))
                .await;
            let data = page["data"].as_array().unwrap();
            for (offset, event) in data.iter().enumerate() {
                let sequence = event["sequence"].as_i64().unwrap();
                assert_eq!(
                    sequence,
                    cursor + 1 + offset as i64,
                    "a page after {cursor} skipped a number: {:?}",
                    data.iter()
                        .map(|e| e["sequence"].as_i64())
                        .collect::<Vec<_>>()
                );
                seen.push((sequence, event["id"].as_str().unwrap().to_owned()));
            }
            cursor = page["next_after"].as_i64().unwrap();
            if finished && data.is_empty() {
                return seen;
            }
            if data.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let ((), seen) = tokio::join!(writers, consumer);
    assert_eq!(seen.len(), WRITERS * EACH, "every event, once");
    let ids: std::collections::HashSet<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), seen.len(), "no event twice");
    let sequences: Vec<i64> = seen.iter().map(|(s, _)| *s).collect();
    let expected: Vec<i64> = (start + 1..=start + (WRITERS * EACH) as i64).collect();
    assert_eq!(sequences, expected);
    // Nothing is left unnumbered, and the log as a whole agrees with what was followed.
    let all = w
        .events(w.key(), &format!("?after={start}&limit=1000"))
        .await;
    let logged: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        logged,
        seen.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(
        number(
            &w.app,
            "SELECT COUNT(*) AS n FROM events WHERE sequence < 0"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn platforms_and_modes_see_only_their_own_events_and_endpoints() {
    let w = world().await;
    let live = Receiver::start().await;
    let test = Receiver::start().await;
    let live_endpoint = w.endpoint(w.key(), &live.url, json!(["*"])).await;
    let test_endpoint = w
        .endpoint(&w.acme.api_keys.test, &test.url, json!(["*"]))
        .await;
    assert_eq!(test_endpoint["mode"], "test");
    w.product("Live lamp").await;
    // A test-mode change after the live one: it reaches the test endpoint.
    let tester = w
        .send(
            &w.acme.api_keys.test,
            Method::POST,
            "/api/v1/users",
            &json!({"email": "tester@acme.example"}),
        )
        .await
        .assert_status(201)
        .json_value();
    eventually(20, "the live delivery", || async {
        (!live.received().is_empty()).then_some(())
    })
    .await;
    eventually(20, "the test-mode delivery", || async {
        test.received()
            .iter()
            .any(|r| r.json()["data"]["object"]["id"] == tester["id"])
            .then_some(())
    })
    .await;
    // Every event fanned out, each endpoint's deliveries are final: none of the other
    // mode's events is among them, so none will ever be sent. (The test owner's
    // user.created may reach the test endpoint: that is a test-mode event.)
    all_fanned_out(&w.app).await;
    for (endpoint, mode) in [(&live_endpoint, "live"), (&test_endpoint, "test")] {
        let id = endpoint["id"].as_str().unwrap();
        let crossed = format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries d JOIN events e ON e.id = d.event_id \
             WHERE d.endpoint_id = '{id}' AND (e.mode <> '{mode}' OR d.mode <> '{mode}')"
        );
        assert_eq!(
            number(&w.app, &crossed).await,
            0,
            "another mode's event is queued for the {mode} endpoint"
        );
    }
    assert!(
        test.received().iter().all(|r| r.json()["mode"] == "test"),
        "a live event reached a test endpoint"
    );
    assert!(live.received().iter().all(|r| r.json()["mode"] == "live"));

    let live_events = w.events(w.key(), "").await;
    let event_id = live_events["data"][0]["id"].as_str().unwrap().to_owned();
    // The test key sees the test world only (the owner's user.created there).
    let test_events = w.events(&w.acme.api_keys.test, "").await;
    assert!(
        test_events["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["mode"] == "test")
    );
    assert!(!types(&test_events).contains(&"product.created".to_owned()));
    for key in [&w.acme.api_keys.test, &w.other.api_keys.live] {
        w.app
            .get_as(key, &format!("/api/v1/events/{event_id}"))
            .await
            .assert_error(404, "not_found");
        let id = live_endpoint["id"].as_str().unwrap();
        w.app
            .get_as(key, &format!("/api/v1/webhook_endpoints/{id}"))
            .await
            .assert_error(404, "not_found");
        w.app
            .get_as(key, &format!("/api/v1/webhook_endpoints/{id}/deliveries"))
            .await
            .assert_error(404, "not_found");
        w.send(
            key,
            Method::PUT,
            &format!("/api/v1/webhook_endpoints/{id}"),
            &json!({"enabled": false}),
        )
        .await
        .assert_error(404, "not_found");
        w.app
            .send(
                w.app
                    .request(Method::DELETE, &format!("/api/v1/webhook_endpoints/{id}"))
                    .bearer_auth(key),
            )
            .await
            .assert_error(404, "not_found");
    }
    let other = w.events(&w.other.api_keys.live, "").await;
    assert!(!types(&other).contains(&"product.created".to_owned()));
    let listed = w
        .app
        .get_as(&w.other.api_keys.live, "/api/v1/webhook_endpoints")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(listed["total"], 0);

    // A session is no API key.
    let session = w
        .app
        .sign_in(w.acme.platform.id.as_str(), "owner@acme.example", "live")
        .await;
    let token = session["access_token"].as_str().unwrap();
    let refused = w.app.get_as(token, "/api/v1/events").await;
    assert_eq!(refused.status.as_u16(), 403, "{}", refused.text());
    let refused = w.app.get_as(token, "/api/v1/webhook_endpoints").await;
    assert_eq!(refused.status.as_u16(), 403, "{}", refused.text());
}

#[tokio::test]
async fn endpoints_are_validated_listed_changed_and_deleted() {
    let w = world().await;
    let receiver = Receiver::start().await;
    for (body, field) in [
        (
            json!({"url": receiver.url, "enabled_events": []}),
            "enabled_events",
        ),
        (
            json!({"url": receiver.url, "enabled_events": ["product.exploded"]}),
            "enabled_events",
        ),
        (json!({"url": "not a url", "enabled_events": ["*"]}), "url"),
        (
            json!({"url": "ftp://example.com/x", "enabled_events": ["*"]}),
            "url",
        ),
    ] {
        let error = w
            .send(w.key(), Method::POST, "/api/v1/webhook_endpoints", &body)
            .await
            .assert_error(422, "validation_failed");
        assert_eq!(error.details[0].field, field);
    }
    w.send(
        w.key(),
        Method::POST,
        "/api/v1/webhook_endpoints",
        &json!({"url": receiver.url, "enabled_events": ["*"], "secret": "mine"}),
    )
    .await
    .assert_error(422, "validation_failed");

    let a = w
        .endpoint(
            w.key(),
            &receiver.url,
            json!(["product.created", "product.created"]),
        )
        .await;
    assert_eq!(a["enabled_events"], json!(["product.created"]));
    let b = w.endpoint(w.key(), &receiver.url, json!(["*"])).await;
    let listed = w
        .app
        .get_as(w.key(), "/api/v1/webhook_endpoints")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(listed["total"], 2);
    assert_eq!(listed["data"][0]["id"], a["id"]);
    assert!(listed["data"][0]["secret"].as_str().unwrap().contains('…'));

    let id = a["id"].as_str().unwrap();
    let changed = w
        .send(
            w.key(),
            Method::PUT,
            &format!("/api/v1/webhook_endpoints/{id}"),
            &json!({"enabled": false, "description": "paused", "enabled_events": ["user.created"]}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["description"], "paused");
    assert_eq!(changed["enabled_events"], json!(["user.created"]));
    w.send(
        w.key(),
        Method::PUT,
        &format!("/api/v1/webhook_endpoints/{id}"),
        &json!({"enabled_events": ["nope"]}),
    )
    .await
    .assert_error(422, "validation_failed");

    w.app
        .send(
            w.app
                .request(Method::DELETE, &format!("/api/v1/webhook_endpoints/{id}"))
                .bearer_auth(w.key()),
        )
        .await
        .assert_status(204);
    w.app
        .get_as(w.key(), &format!("/api/v1/webhook_endpoints/{id}"))
        .await
        .assert_error(404, "not_found");
    w.app
        .get_as(w.key(), "/api/v1/webhook_endpoints/we_nope")
        .await
        .assert_error(404, "not_found");
    let listed = w
        .app
        .get_as(w.key(), "/api/v1/webhook_endpoints")
        .await
        .json_value();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["data"][0]["id"], b["id"]);
}

#[tokio::test]
async fn private_and_local_targets_are_refused_without_the_flag() {
    let w = world_with(TestApp::builder().config(|c| {
        c.webhooks.poll_interval = Duration::from_millis(50);
    }))
    .await;
    for url in [
        "http://hooks.example.com/x",
        "https://127.0.0.1/hooks",
        "https://10.0.0.8/hooks",
        "https://192.168.1.1/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://[fd00::1]/hooks",
        "https://0.0.0.0/hooks",
        "https://localhost/hooks",
    ] {
        let error = w
            .send(
                w.key(),
                Method::POST,
                "/api/v1/webhook_endpoints",
                &json!({"url": url, "enabled_events": ["*"]}),
            )
            .await
            .assert_error(422, "validation_failed");
        assert_eq!(error.details[0].field, "url", "{url}");
    }
    // Disabled, so that nothing is sent to that public address meanwhile.
    let public = w
        .send(
            w.key(),
            Method::POST,
            "/api/v1/webhook_endpoints",
            &json!({"url": "https://93.184.216.34/hooks", "enabled_events": ["*"], "enabled": false}),
        )
        .await
        .assert_status(201)
        .json_value();
    let id = public["id"].as_str().unwrap();
    w.send(
        w.key(),
        Method::PUT,
        &format!("/api/v1/webhook_endpoints/{id}"),
        &json!({"url": "https://127.0.0.1/hooks"}),
    )
    .await
    .assert_error(422, "validation_failed");

    // At delivery time too: an endpoint that points inside (written behind the API's
    // back, as a DNS change would make it) is refused before any connection.
    let receiver = Receiver::start().await;
    let mut conn = w.app.db().conn().await.unwrap();
    conn.batch_execute(&format!(
        "UPDATE webhook_endpoints SET url = '{}', enabled = TRUE WHERE id = '{id}'",
        receiver.url.replace("http://", "https://")
    ))
    .await
    .unwrap();
    w.product("Lamp").await;
    let attempts = eventually(20, "the refused attempt", || async {
        let attempts = w.attempts(id).await;
        (!attempts.is_empty()).then_some(attempts)
    })
    .await;
    for attempt in &attempts {
        assert!(attempt["status_code"].is_null());
        assert!(
            attempt["error"].as_str().unwrap().starts_with("refused"),
            "{attempt:?}"
        );
    }
    assert!(receiver.received().is_empty());
}

/// Special-purpose addresses (the IANA IPv4 and IPv6 special-purpose registries, plus
/// multicast and the deprecated IPv6 forms) are refused like private ones: literally, in
/// the IPv6 forms that embed an IPv4 address (6to4, Teredo, NAT64, mapped, compatible), on
/// create and update, and again at delivery.
#[tokio::test]
async fn special_purpose_targets_are_refused_on_create_update_and_delivery() {
    let w = world_with(TestApp::builder().config(|c| {
        c.webhooks.poll_interval = Duration::from_millis(50);
    }))
    .await;
    let refused_targets = [
        // 6to4 (2002::/16) embedding 127.0.0.1.
        "https://[2002:7f00:1::]/hooks",
        // IPv6 documentation, 2001:db8::/32 and 3fff::/20.
        "https://[2001:db8::1]/hooks",
        "https://[3fff::1]/hooks",
        // IPv4 benchmarking, 198.18.0.0/15, and IPv6 benchmarking, 2001:2::/48.
        "https://198.18.0.1/hooks",
        "https://198.19.255.254/hooks",
        "https://[2001:2::1]/hooks",
        // Teredo (RFC 4380's example): server 65.54.227.120, client 192.0.2.45.
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hooks",
        // NAT64: the well-known prefix embedding 10.0.0.1; the local-use prefix.
        "https://[64:ff9b::a00:1]/hooks",
        "https://[64:ff9b:1::5db8:d822]/hooks",
        // IPv4-mapped cloud metadata; IPv4-compatible (deprecated).
        "https://[::ffff:a9fe:a9fe]/hooks",
        "https://[::5db8:d822]/hooks",
        // Discard-only, dummy prefix, SRv6 SIDs, site-local (deprecated), multicast.
        "https://[100::1]/hooks",
        "https://[100:0:0:1::1]/hooks",
        "https://[5f00::1]/hooks",
        "https://[fec0::1]/hooks",
        "https://[ff02::1]/hooks",
        // IPv4: protocol assignments, TEST-NETs, 6to4 relay anycast, AS112, AMT,
        // reserved, limited broadcast, multicast, shared address space.
        "https://192.0.0.9/hooks",
        "https://192.0.2.1/hooks",
        "https://198.51.100.7/hooks",
        "https://203.0.113.200/hooks",
        "https://192.88.99.1/hooks",
        "https://192.31.196.1/hooks",
        "https://192.52.193.1/hooks",
        "https://192.175.48.1/hooks",
        "https://240.0.0.1/hooks",
        "https://255.255.255.255/hooks",
        "https://224.0.0.251/hooks",
        "https://100.127.255.254/hooks",
    ];
    let mut accepted = Vec::new();
    for url in refused_targets {
        let response = w
            .send(
                w.key(),
                Method::POST,
                "/api/v1/webhook_endpoints",
                &json!({"url": url, "enabled_events": ["*"], "enabled": false}),
            )
            .await;
        if response.status.as_u16() != 422 {
            accepted.push(format!("{url} -> {}", response.status.as_u16()));
            continue;
        }
        let error = response.assert_error(422, "validation_failed");
        assert_eq!(error.details[0].field, "url", "{url}");
    }
    assert!(
        accepted.is_empty(),
        "accepted special-purpose targets: {accepted:#?}"
    );

    // The same public targets in IPv6 clothing are fine (disabled: nothing is sent).
    for url in [
        "https://[2002:5db8:d822::]/hooks",
        "https://[64:ff9b::5db8:d822]/hooks",
        "https://[::ffff:5db8:d822]/hooks",
    ] {
        w.send(
            w.key(),
            Method::POST,
            "/api/v1/webhook_endpoints",
            &json!({"url": url, "enabled_events": ["*"], "enabled": false}),
        )
        .await
        .assert_status(201);
    }

    // On update.
    let public = w
        .send(
            w.key(),
            Method::POST,
            "/api/v1/webhook_endpoints",
            &json!({"url": "https://93.184.216.34/hooks", "enabled_events": ["*"], "enabled": false}),
        )
        .await
        .assert_status(201)
        .json_value();
    let id = public["id"].as_str().unwrap();
    for url in ["https://[2002:7f00:1::]/hooks", "https://198.18.0.1/hooks"] {
        let error = w
            .send(
                w.key(),
                Method::PUT,
                &format!("/api/v1/webhook_endpoints/{id}"),
                &json!({"url": url}),
            )
            .await
            .assert_error(422, "validation_failed");
        assert_eq!(error.details[0].field, "url", "{url}");
    }

    // At delivery: a 6to4 form of loopback, written behind the API's back, is refused
    // before any connection (not merely unreachable).
    let mut conn = w.app.db().conn().await.unwrap();
    conn.batch_execute(&format!(
        "UPDATE webhook_endpoints SET url = 'https://[2002:7f00:1::]/hooks', enabled = TRUE \
         WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    w.product("Lamp").await;
    let attempts = eventually(20, "the refused attempt", || async {
        let attempts = w.attempts(id).await;
        (!attempts.is_empty()).then_some(attempts)
    })
    .await;
    for attempt in &attempts {
        assert!(attempt["status_code"].is_null(), "{attempt:?}");
        assert!(
            attempt["error"].as_str().unwrap().starts_with("refused"),
            "{attempt:?}"
        );
    }
}

#[tokio::test]
async fn an_endpoint_failing_long_enough_is_disabled_and_the_owner_is_mailed() {
    let w = world_with(fast_webhooks().config(|c| {
        c.webhooks.disable_after_failures = 3;
        c.webhooks.disable_after = Duration::ZERO;
        c.webhooks.retry_base = Duration::from_millis(50);
        c.webhooks.retry_max = Duration::from_millis(100);
    }))
    .await;
    let receiver = Receiver::start().await;
    receiver.always(Answer::Fail);
    let endpoint = w
        .endpoint(w.key(), &receiver.url, json!(["product.created"]))
        .await;
    let id = endpoint["id"].as_str().unwrap();
    w.product("Lamp").await;
    let disabled = eventually(30, "the endpoint to be disabled", || async {
        let read = w
            .app
            .get_as(w.key(), &format!("/api/v1/webhook_endpoints/{id}"))
            .await
            .json_value();
        (read["enabled"] == false).then_some(read)
    })
    .await;
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("3 failed attempts"),
        "{disabled}"
    );
    let mail = eventually(10, "the owner's mail", || async {
        w.app
            .mails()
            .into_iter()
            .find(|m| m.subject.contains("disabled"))
    })
    .await;
    assert_eq!(mail.to, "owner@acme.example");
    assert!(mail.subject.contains(id), "{}", mail.subject);
    assert!(mail.body.contains(&receiver.url), "{}", mail.body);

    // Nothing more is sent while disabled. The failed delivery stays pending; once it is
    // due again, a marker delivery to a second, healthy endpoint is made. The round that
    // claims the marker claims every due delivery of an enabled endpoint (oldest due
    // first), so had the disabled endpoint's been claimable, its attempt count would
    // have moved by the time the marker arrives.
    let delivery = w.attempts(id).await[0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let attempts_sql =
        format!("SELECT attempts AS n FROM webhook_deliveries WHERE id = '{delivery}'");
    let attempts = number(&w.app, &attempts_sql).await;
    assert!(attempts >= 3, "{attempts}");
    let sent = receiver.received().len();
    assert_eq!(sent as i64, attempts);
    let due = next_attempt_at(&w.app, &delivery)
        .await
        .expect("the delivery stays pending while its endpoint is disabled");
    eventually(10, "the failed delivery to be due again", || async {
        (feria_kernel::Timestamp::now() > due).then_some(())
    })
    .await;
    let marker = Receiver::start().await;
    w.endpoint(w.key(), &marker.url, json!(["product.created"]))
        .await;
    w.product("Chair").await;
    eventually(20, "the marker delivery", || async {
        marker
            .received()
            .iter()
            .any(|r| r.json()["data"]["object"]["name"] == "Chair")
            .then_some(())
    })
    .await;
    assert_eq!(number(&w.app, &attempts_sql).await, attempts);
    assert_eq!(w.attempts(id).await.len() as i64, attempts);
    assert_eq!(receiver.received().len(), sent);
    // Redelivering to a disabled endpoint is refused.
    w.send(
        w.key(),
        Method::POST,
        &format!("/api/v1/webhook_endpoints/{id}/deliveries/{delivery}/redeliver"),
        &json!({}),
    )
    .await
    .assert_error(409, "webhook_endpoint_disabled");

    // Enabled again by hand: the failure count starts over, and deliveries resume.
    receiver.always(Answer::Ok);
    let enabled = w
        .send(
            w.key(),
            Method::PUT,
            &format!("/api/v1/webhook_endpoints/{id}"),
            &json!({"enabled": true}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(enabled["enabled"], true);
    assert!(enabled["disabled_reason"].is_null());
    w.product("Desk").await;
    eventually(20, "deliveries to resume", || async {
        receiver
            .received()
            .iter()
            .any(|r| r.json()["data"]["object"]["name"] == "Desk")
            .then_some(())
    })
    .await;
}
