//! What `/metrics` says after real actions through HTTP, on either backend: the process's
//! own metrics, sign-ins and purchases counted once each (replays and failures not), failed
//! calls to Stripe (localstripe, `scripts/localstripe.sh`) and to a chain node (nothing
//! listening) counted by code, and the webhook and renewal backlogs equal to what the
//! database holds.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use feria::config::StripeSettings;
use feria_kernel::time::ManualClock;
use feria_onchain_entitlements::{ChainConfig, OnchainSettings};
use feria_testkit::{CreatedPlatform, Method, TestApp, localstripe_url};
use serde_json::{Value, json};

const STRIPE_KEY: &str = "sk_test_feria_observability";
const CHAIN_ID: i64 = 8453;

/// The samples of a Prometheus text exposition: `name{labels}` (labels as written) → value.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

async fn scrape(app: &TestApp) -> Vec<(String, f64)> {
    let answer = app.get("/metrics").await.assert_status(200);
    samples(&answer.text())
}

/// The value of one series (0 when absent: a counter not moved yet).
fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(name, _)| name == series)
        .map_or(0.0, |(_, v)| *v)
}

/// The sum of every series of `name` whose labels include each of `labels`.
fn sum(samples: &[(String, f64)], name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|l| series.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
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

/// A port nothing listens on now.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap()
}

struct World {
    app: TestApp,
    acme: CreatedPlatform,
    time: ManualClock,
}

/// A server with Stripe (localstripe), a chain whose node does not answer, webhooks that
/// are given up after their first failed attempt, its renewal worker off (the test runs
/// renewals itself), on a clock the test moves.
async fn world() -> World {
    let stripe = localstripe_url();
    let time = ManualClock::new();
    let clock = time.clock();
    let node = format!("http://127.0.0.1:{}", closed_port());
    let app = TestApp::builder()
        .config(move |c| {
            c.clock = clock;
            c.stripe = StripeSettings {
                api_base: stripe,
                test_secret_key: Some(STRIPE_KEY.into()),
                live_secret_key: Some(STRIPE_KEY.into()),
            };
            c.onchain = OnchainSettings {
                chains: vec![ChainConfig {
                    chain_id: CHAIN_ID,
                    rpc_url: node,
                    token_address: format!("0x{}", "11".repeat(20)),
                    treasury_address: format!("0x{}", "22".repeat(20)),
                    confirmations: 1,
                    finality_blocks: 64,
                }],
                rpc_retries: 1,
                ..OnchainSettings::default()
            };
            c.webhooks.poll_interval = Duration::from_millis(50);
            c.webhooks.timeout = Duration::from_millis(1000);
            c.webhooks.retry_window = Duration::ZERO;
            c.webhooks.allow_private_targets = true;
            c.subscription_renewal_interval = None;
        })
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    World { app, acme, time }
}

impl World {
    fn key(&self) -> &str {
        &self.acme.api_keys.live
    }

    async fn sign_in(&self, email: &str) -> (String, String) {
        let session = self
            .app
            .sign_in(self.acme.platform.id.as_str(), email, "live")
            .await;
        (
            session["user"]["id"].as_str().unwrap().to_owned(),
            session["access_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn admin(&self, method: Method, path: &str, body: Value) -> Value {
        let answer = self.app.send_json_as(self.key(), method, path, &body).await;
        assert!(answer.status.is_success(), "{path}: {}", answer.text());
        answer.json_value()
    }
}

#[tokio::test]
async fn metrics_show_the_process() {
    let app = TestApp::spawn().await;
    let samples = scrape(&app).await;
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
    ] {
        assert!(
            samples.iter().any(|(series, _)| series == name),
            "{name} is missing"
        );
    }
    // Real readings of this process, not placeholders.
    assert!(value(&samples, "process_resident_memory_bytes") > 1_000_000.0);
    assert!(value(&samples, "process_open_fds") >= 3.0);
    let started = value(&samples, "process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(started > 0.0 && started <= now, "{started}");
}

#[tokio::test]
async fn sign_ins_and_purchases_are_counted_once_each() {
    let w = world().await;
    let before = scrape(&w.app).await;

    // Two sign-ins; a wrong code is not one.
    let (seller, seller_token) = w.sign_in("seller@example.com").await;
    let (buyer, buyer_token) = w.sign_in("buyer@example.com").await;
    w.app
        .post_json(
            "/api/v1/auth/otp/email",
            &json!({"platform_id": w.acme.platform.id, "email": "buyer@example.com"}),
        )
        .await
        .assert_status(200);
    let code = w.app.last_code_for("buyer@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    w.app
        .post_json(
            "/api/v1/auth/otp/verify",
            &json!({"platform_id": w.acme.platform.id, "email": "buyer@example.com", "code": wrong}),
        )
        .await
        .assert_status(401);

    // A template bought with credits, then the same purchase replayed with its key, and a
    // second purchase refused (already bought): one purchase.
    let character = w
        .app
        .send_json_as(
            &seller_token,
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
        .app
        .send_json_as(
            &seller_token,
            Method::POST,
            "/api/v1/marketplace/listings",
            &json!({"character_id": character["id"], "price": 12.0, "currency": "USD",
                    "license_type": "personal", "status": "active"}),
        )
        .await
        .assert_status(201)
        .json_value()["listing"]
        .clone();
    w.admin(
        Method::POST,
        &format!("/api/v1/users/{buyer}/credits"),
        json!({"amount": 50.0, "currency": "usd"}),
    )
    .await;
    let path = format!(
        "/api/v1/marketplace/{}/purchase",
        listing["id"].as_str().unwrap()
    );
    let purchase = || {
        w.app
            .request(Method::POST, &path)
            .bearer_auth(&buyer_token)
            .header("Idempotency-Key", "obs-purchase-1")
    };
    w.app.send(purchase()).await.assert_status(201);
    w.app.send(purchase()).await.assert_status(201);
    w.app
        .send(
            w.app
                .request(Method::POST, &path)
                .bearer_auth(&buyer_token)
                .header("Idempotency-Key", "obs-purchase-2"),
        )
        .await
        .assert_error(409, "already_purchased");
    let _ = seller;

    let after = scrape(&w.app).await;
    assert_eq!(
        value(&after, "feria_signins_total") - value(&before, "feria_signins_total"),
        2.0
    );
    let bought = "feria_purchases_total{marketplace=\"templates\"}";
    assert_eq!(value(&after, bought) - value(&before, bought), 1.0);
}

#[tokio::test]
async fn failed_provider_calls_are_counted_by_provider_and_code() {
    let w = world().await;
    let (_, token) = w.sign_in("seller@example.com").await;
    let before = scrape(&w.app).await;

    // Stripe knows no such connected account: one refused call.
    w.app
        .send_json_as(
            &token,
            Method::POST,
            "/api/v1/users/auth/bank_account",
            &json!({"stripeConnectId": "acct_unknown123"}),
        )
        .await
        .assert_error(422, "payment_provider_rejected");

    // The chain's node does not answer: one failed call (its retry is not another).
    w.admin(
        Method::POST,
        "/api/v1/marketplace/offers",
        json!({
            "offer_id": "edut.membership.annual",
            "issuer_id": "edut.firstparty",
            "title": "EDUT Membership",
            "summary": "Membership for a year.",
            "pricing": {"currency": "USDC", "amount_atomic": "5000000", "decimals": 6, "chain_id": CHAIN_ID},
            "policies": {"member_only": false, "workspace_bound": false, "transferable": false},
            "membership": true,
            "duration_days": 365
        }),
    )
    .await;
    let wallet = format!("0x{}", "ab".repeat(20));
    let quote = w
        .admin(
            Method::POST,
            "/api/v1/marketplace/checkout/quote",
            json!({"wallet": wallet, "offer_id": "edut.membership.annual"}),
        )
        .await;
    w.app
        .send_json_as(
            w.key(),
            Method::POST,
            "/api/v1/marketplace/checkout/confirm",
            &json!({"quote_id": quote["quote_id"], "wallet": wallet,
                    "offer_id": "edut.membership.annual",
                    "tx_hash": format!("0x{}", "cd".repeat(32)), "chain_id": CHAIN_ID}),
        )
        .await
        .assert_error(503, "chain_unavailable");

    let after = scrape(&w.app).await;
    let moved = |labels: &[&str]| {
        sum(&after, "feria_provider_errors_total", labels)
            - sum(&before, "feria_provider_errors_total", labels)
    };
    assert_eq!(
        moved(&["provider=\"stripe\"", "code=\"resource_missing\""]),
        1.0,
        "{after:?}"
    );
    assert_eq!(moved(&["provider=\"stripe\""]), 1.0);
    assert_eq!(
        moved(&["provider=\"chain_rpc\"", "code=\"unreachable\""]),
        1.0
    );
    assert_eq!(moved(&["provider=\"chain_rpc\""]), 1.0);
}

#[tokio::test]
async fn webhook_and_renewal_backlogs_are_what_the_database_holds() {
    let w = world().await;
    let (seller, _) = w.sign_in("seller@example.com").await;
    let (buyer, buyer_token) = w.sign_in("buyer@example.com").await;

    // An endpoint nothing listens at: the product's event is given up after one attempt.
    w.admin(
        Method::POST,
        "/api/v1/webhook_endpoints",
        json!({"url": format!("http://127.0.0.1:{}/hook", closed_port()),
               "enabled_events": ["product.created"], "description": "closed"}),
    )
    .await;
    w.admin(
        Method::POST,
        "/api/v1/products",
        json!({"user_id": seller, "name": "Lamp", "price": 10, "quantity": 5}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while number(
        &w.app,
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'failed'",
    )
    .await
        < 1
    {
        assert!(Instant::now() < deadline, "the delivery never failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let samples = scrape(&w.app).await;
    for state in ["pending", "failed"] {
        let stored = number(
            &w.app,
            &format!("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = '{state}'"),
        )
        .await;
        assert_eq!(
            value(
                &samples,
                &format!("feria_webhook_deliveries{{state=\"{state}\"}}")
            ),
            stored as f64,
            "{state}"
        );
    }
    assert_eq!(
        value(&samples, "feria_webhook_deliveries{state=\"failed\"}"),
        1.0
    );

    // A monthly subscription (20 and the 1 % service fee) paid for one cycle only: nothing
    // due now; a month later its renewal is due, and once a run could not charge it, it is
    // also failed.
    let contract = w
        .admin(
            Method::POST,
            "/api/v1/contracts",
            json!({"notes": "monthly plan"}),
        )
        .await;
    let base = format!("/api/v1/contracts/{}", contract["id"].as_str().unwrap());
    w.admin(
        Method::POST,
        &format!("{base}/item"),
        json!({"name": "Plan", "unit_price": 20.0}),
    )
    .await;
    w.admin(
        Method::POST,
        &format!("{base}/buyer"),
        json!({"user_id": buyer, "due": 20.2}),
    )
    .await;
    w.admin(
        Method::POST,
        &format!("{base}/seller"),
        json!({"user_id": seller, "owed": 20.0}),
    )
    .await;
    w.admin(Method::POST, &format!("{base}/send"), json!({}))
        .await;
    w.admin(
        Method::POST,
        &format!("/api/v1/users/{buyer}/credits"),
        json!({"amount": 20.2, "currency": "usd"}),
    )
    .await;
    w.app
        .send_json_as(
            &buyer_token,
            Method::POST,
            &format!(
                "/api/v1/subscriptions/auth/contract/{}",
                contract["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await
        .assert_status(201);
    let renewals = |samples: &[(String, f64)]| {
        (
            value(samples, "feria_subscription_renewals{state=\"due\"}"),
            value(samples, "feria_subscription_renewals{state=\"failed\"}"),
        )
    };
    assert_eq!(renewals(&scrape(&w.app).await), (0.0, 0.0));

    w.time.advance(Duration::from_secs(32 * 24 * 60 * 60));
    assert_eq!(renewals(&scrape(&w.app).await), (1.0, 0.0));

    let report = feria_subscriptions::run_due_renewals(w.app.db(), w.time.clock().now())
        .await
        .unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(renewals(&scrape(&w.app).await), (1.0, 1.0));
}
