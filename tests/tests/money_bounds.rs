//! Bounds on money through real HTTP, on either backend: every amount that enters is at
//! most `MAX_AMOUNT_MINOR` (10^12 minor units), every balance that cannot go negative
//! stays at or below it, and a movement that would pass it is refused whole (422) instead
//! of saturating or wrapping. A property test drives random sequences of top-ups,
//! purchases with credits, contract settles and refunds near the bounds and checks after
//! each step that the ledger verifies (what `feria ledger verify` runs) and that every
//! balance equals the sum of its movements.
//!
//! The property test runs `FERIA_MONEY_PROPTEST_CASES` cases (12 by default) of two
//! opening top-ups and at most `FERIA_MONEY_PROPTEST_STEPS` random steps (15 by default):
//! raise them for a longer run. It prints what the steps did (`--no-capture`).

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use feria_billing::ledger::{AccountKey, AccountKind};
use feria_kernel::money::{Currency, MAX_AMOUNT_MINOR, Money};
use feria_kernel::{Mode, Tenant};
use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};

const MAX: i64 = MAX_AMOUNT_MINOR;

/// Minor units of USD as the decimal text of a JSON number (`1000000000000` →
/// `10000000000.00`).
fn major(minor: i64) -> String {
    Money::from_minor(minor, Currency::USD).to_major_string()
}

/// A JSON amount in major units read back as USD minor units, exactly when it is a
/// plain decimal (every amount up to the bound is), through `f64` otherwise.
fn minor_of(amount: &Value) -> i64 {
    let text = amount.to_string();
    match Money::parse(&text, Currency::USD) {
        Ok(money) => money.minor(),
        Err(_) => {
            let float = amount
                .as_f64()
                .unwrap_or_else(|| panic!("not an amount: {amount}"));
            // Only reached by amounts far past the bound (`9.2e16`): precision is moot.
            (float * 100.0).round() as i64
        }
    }
}

/// A fresh, unique suffix for emails and domains (one server serves many cases).
fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A server that lets many users sign in from one address and never rate-limits the
/// test's writes.
async fn app() -> TestApp {
    TestApp::builder()
        .config(|c| {
            c.otp_requests_per_ip = 100_000;
            c.write_rate_limit = 0;
        })
        .spawn()
        .await
}

struct User {
    id: String,
    token: String,
}

/// One platform (no platform fee) with a seller and two buyers, signed in.
struct Market<'a> {
    app: &'a TestApp,
    platform: CreatedPlatform,
    seller: User,
    buyers: [User; 2],
}

impl<'a> Market<'a> {
    async fn new(app: &'a TestApp) -> Market<'a> {
        let n = unique();
        let platform = app
            .create_platform(
                &format!("Bounds {n}"),
                &format!("bounds{n}.example.com"),
                &format!("owner{n}@bounds.example"),
            )
            .await;
        app.send_json_as(
            &platform.api_keys.live,
            Method::PUT,
            &format!("/api/v1/platforms/{}", platform.platform.id),
            &json!({"platformFee": 0}),
        )
        .await
        .assert_status(200);
        let person = async |role: &str| {
            let session = app
                .sign_in(
                    platform.platform.id.as_str(),
                    &format!("{role}{n}@example.com"),
                    "live",
                )
                .await;
            User {
                id: session["user"]["id"].as_str().unwrap().to_owned(),
                token: session["access_token"].as_str().unwrap().to_owned(),
            }
        };
        let seller = person("seller").await;
        let buyers = [person("buyer-a").await, person("buyer-b").await];
        Market {
            app,
            platform,
            seller,
            buyers,
        }
    }

    fn key(&self) -> &str {
        &self.platform.api_keys.live
    }

    fn tenant(&self) -> Tenant {
        Tenant::new(self.platform.platform.id.clone(), Mode::Live)
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        let request = self.app.request(method, path).bearer_auth(self.key());
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        self.app.send(request).await
    }

    /// `POST /users/{user}/credits` with `amount` written as is into the JSON body.
    async fn top_up_text(&self, user: &str, amount: &str) -> TestResponse {
        self.app
            .send(
                self.app
                    .request(Method::POST, &format!("/api/v1/users/{user}/credits"))
                    .bearer_auth(self.key())
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"amount": {amount}, "currency": "usd"}}"#)),
            )
            .await
    }

    async fn top_up(&self, user: &str, minor: i64) -> TestResponse {
        self.top_up_text(user, &major(minor)).await
    }

    /// The user's USD credits in minor units, as `GET /users/{id}/credits` shows them.
    async fn credits(&self, user: &str) -> i64 {
        let credits = self
            .admin(Method::GET, &format!("/api/v1/users/{user}/credits"), None)
            .await
            .assert_status(200)
            .json_value();
        assert_eq!(credits["user_id"], user, "{credits}");
        let balances = credits["balances"].as_array().unwrap();
        assert!(balances.len() <= 1, "one currency only: {credits}");
        balances.first().map_or(0, |balance| {
            assert_eq!(balance["currency"], "usd", "{credits}");
            minor_of(&balance["amount"])
        })
    }

    /// The seller's receivable, read from the ledger.
    async fn receivable(&self, seller: &str) -> i64 {
        let mut conn = self.app.db().conn().await.unwrap();
        feria_billing::ledger::balance(
            &mut conn,
            &self.tenant(),
            &AccountKey::new(AccountKind::SellerReceivable, seller, Currency::USD),
        )
        .await
        .unwrap()
        .minor()
    }

    /// Every transaction of the tenant naming `user` (as buyer or seller).
    async fn transactions_of(&self, user: &str) -> Vec<Value> {
        let mut all = Vec::new();
        for page in 1.. {
            let listed = self
                .admin(
                    Method::GET,
                    &format!("/api/v1/transactions?user_id={user}&page={page}&page_size=100"),
                    None,
                )
                .await
                .assert_status(200)
                .json_value();
            let data = listed["data"].as_array().unwrap().clone();
            let done = data.len() < 100;
            all.extend(data);
            if done {
                break;
            }
        }
        all
    }

    /// A buyer's credits as the sum of their movements: top-ups and refunds in,
    /// charges out.
    async fn buyer_movements(&self, user: &str) -> i64 {
        let mut sum = 0i64;
        for t in self.transactions_of(user).await {
            if t["buyer_user_id"] != user {
                continue;
            }
            let amount = minor_of(&t["amount"]);
            match t["type"].as_str().unwrap() {
                "credit_top_up" | "refund" => sum = sum.checked_add(amount).unwrap(),
                "charge" => sum = sum.checked_sub(amount).unwrap(),
                other => panic!("a buyer's {other} transaction: {t}"),
            }
        }
        sum
    }

    /// What the seller earned, net of reversals (`/transactions/user/{id}/revenue`).
    async fn revenue(&self, seller: &str) -> i64 {
        let revenue = self
            .admin(
                Method::GET,
                &format!("/api/v1/transactions/user/{seller}/revenue"),
                None,
            )
            .await
            .assert_status(200)
            .json_value();
        revenue["totals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["currency"] == "usd")
            .map_or(0, |t| minor_of(&t["amount"]))
    }

    async fn ledger_verifies(&self) -> Result<(), String> {
        let mut conn = self.app.db().conn().await.unwrap();
        let verification = feria_billing::ledger::verify(&mut conn).await.unwrap();
        if verification.is_ok() {
            Ok(())
        } else {
            Err(format!("the ledger does not verify: {verification:?}"))
        }
    }

    /// An active listing of a fresh character of the seller, at `price_minor`.
    async fn listing(&self, price_minor: i64) -> String {
        let character = self
            .app
            .send_json_as(
                &self.seller.token,
                Method::POST,
                "/api/v1/characters",
                &json!({"name": format!("Bound {}", unique()), "niche": "finance",
                        "description": "A character priced near the bound.", "traits": ["exact"]}),
            )
            .await
            .assert_status(201)
            .json_value()["character"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = format!(
            r#"{{"character_id": "{character}", "price": {}, "currency": "USD",
                "license_type": "commercial", "status": "active"}}"#,
            major(price_minor)
        );
        let listing = self
            .app
            .send(
                self.app
                    .request(Method::POST, "/api/v1/marketplace/listings")
                    .bearer_auth(&self.seller.token)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await
            .assert_status(201)
            .json_value();
        assert_eq!(
            minor_of(&listing["listing"]["price"]),
            price_minor,
            "{listing}"
        );
        listing["listing"]["id"].as_str().unwrap().to_owned()
    }

    async fn purchase(&self, buyer: &User, listing: &str) -> TestResponse {
        self.app
            .send(
                self.app
                    .request(
                        Method::POST,
                        &format!("/api/v1/marketplace/{listing}/purchase"),
                    )
                    .bearer_auth(&buyer.token),
            )
            .await
    }

    /// An open contract of one custom line at `unit_minor`, the buyer due its total and
    /// the seller owed its net; returns (id, total, net) in minor units. A total past the
    /// bound (the 1 % service fee on top of a line at the bound) cannot be any buyer's
    /// due: that is checked, and `None` returned.
    async fn contract(&self, buyer: &str, unit_minor: i64) -> Option<(String, i64, i64)> {
        let contract = self
            .admin(Method::POST, "/api/v1/contracts", Some(json!({})))
            .await
            .assert_status(201)
            .json_value();
        let id = contract["id"].as_str().unwrap().to_owned();
        let base = format!("/api/v1/contracts/{id}");
        let with_item = self
            .app
            .send(
                self.app
                    .request(Method::POST, &format!("{base}/item"))
                    .bearer_auth(self.key())
                    .header("content-type", "application/json")
                    .body(format!(
                        r#"{{"name": "Line", "unit_price": {}}}"#,
                        major(unit_minor)
                    )),
            )
            .await
            .assert_status(200)
            .json_value();
        let total = minor_of(&with_item["total"]);
        let net = minor_of(&with_item["net"]);
        let buyer_body = format!(r#"{{"user_id": "{buyer}", "due": {}}}"#, major(total));
        if total > MAX {
            let refused = self
                .app
                .send(
                    self.app
                        .request(Method::POST, &format!("{base}/buyer"))
                        .bearer_auth(self.key())
                        .header("content-type", "application/json")
                        .body(buyer_body),
                )
                .await;
            let body = refused.assert_error(422, "validation_failed");
            assert_eq!(body.details[0].field, "due", "{body:?}");
            return None;
        }
        let seller_body = format!(
            r#"{{"user_id": "{}", "owed": {}}}"#,
            self.seller.id,
            major(net)
        );
        for (path, body) in [("buyer", buyer_body), ("seller", seller_body)] {
            self.app
                .send(
                    self.app
                        .request(Method::POST, &format!("{base}/{path}"))
                        .bearer_auth(self.key())
                        .header("content-type", "application/json")
                        .body(body),
                )
                .await
                .assert_status(200);
        }
        self.admin(Method::POST, &format!("{base}/send"), None)
            .await
            .assert_status(200);
        Some((id, total, net))
    }

    /// The charges of a buyer, by id: amount and refunded amount, in minor units.
    async fn charges_of(&self, buyer: &str) -> BTreeMap<String, (i64, i64)> {
        self.transactions_of(buyer)
            .await
            .into_iter()
            .filter(|t| t["type"] == "charge" && t["buyer_user_id"] == buyer)
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_owned(),
                    (minor_of(&t["amount"]), minor_of(&t["refundedAmount"])),
                )
            })
            .collect()
    }
}

// ---- fixed cases --------------------------------------------------------------------

#[tokio::test]
async fn top_ups_past_the_bound_are_refused_and_move_nothing() {
    let app = app().await;
    let m = Market::new(&app).await;
    let user = &m.buyers[0].id;
    m.top_up(user, 2_500).await.assert_status(201);
    for amount in [
        "92000000000000000", // 9.2e16 USD: 9.2e18 cents, just inside i64
        "9.2e16",
        "10000000000000", // 1e13 USD
        "1e13",
        "10000000000.01", // one cent past the bound
        "10000000000.99",
        "99999999999999999999", // past i64 altogether
    ] {
        let refused = m.top_up_text(user, amount).await;
        let body = refused.assert_error(422, "validation_failed");
        assert_eq!(body.details[0].field, "amount", "{amount}: {body:?}");
        assert_eq!(m.credits(user).await, 2_500, "after {amount}");
    }
    // Exactly the bound is an amount like any other, for a user who holds nothing yet.
    let other = &m.buyers[1].id;
    let at_bound = m
        .top_up_text(other, "10000000000")
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(minor_of(&at_bound["credits"]["balances"][0]["amount"]), MAX);
    assert_eq!(minor_of(&at_bound["transaction"]["amount"]), MAX);
    // Not a cent more: the balance is full.
    let full = m.top_up(other, 1).await;
    full.assert_error(422, "balance_limit_exceeded");
    assert_eq!(m.credits(other).await, MAX);
    assert_eq!(m.credits(user).await, 2_500);
    // The refused top-ups left no transaction behind.
    assert_eq!(m.buyer_movements(user).await, 2_500);
    assert_eq!(m.buyer_movements(other).await, MAX);
    m.ledger_verifies().await.unwrap();
}

#[tokio::test]
async fn two_top_ups_that_pass_the_largest_balance_together_are_refused_at_the_second() {
    let app = app().await;
    let m = Market::new(&app).await;
    let user = &m.buyers[0].id;
    let part = MAX / 10 * 6; // 6e9 USD, well under the bound
    m.top_up(user, part).await.assert_status(201);
    assert_eq!(m.credits(user).await, part);
    for _ in 0..3 {
        m.top_up(user, part)
            .await
            .assert_error(422, "balance_limit_exceeded");
        assert_eq!(m.credits(user).await, part);
    }
    // With an idempotency key: refused too, and the key stays free for a request that fits.
    let keyed = |minor: i64| {
        m.app
            .request(Method::POST, &format!("/api/v1/users/{user}/credits"))
            .bearer_auth(m.key())
            .header("Idempotency-Key", "fill-up")
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"amount": {}, "currency": "usd"}}"#,
                major(minor)
            ))
    };
    m.app
        .send(keyed(MAX - part + 1))
        .await
        .assert_error(422, "balance_limit_exceeded");
    assert_eq!(m.credits(user).await, part);
    // What is left to the bound fits exactly.
    m.app.send(keyed(MAX - part)).await.assert_status(201);
    assert_eq!(m.credits(user).await, MAX);
    m.top_up(user, 1)
        .await
        .assert_error(422, "balance_limit_exceeded");
    assert_eq!(m.credits(user).await, MAX);
    assert_eq!(m.buyer_movements(user).await, MAX);
    m.ledger_verifies().await.unwrap();
}

#[tokio::test]
async fn a_seller_holding_the_bound_cannot_be_paid_more() {
    let app = app().await;
    let m = Market::new(&app).await;
    let [first, second] = &m.buyers;
    // A sale at the largest price fills the seller's receivable to the bound.
    m.top_up(&first.id, MAX).await.assert_status(201);
    let dear = m.listing(MAX).await;
    m.purchase(first, &dear).await.assert_status(201);
    assert_eq!(m.receivable(&m.seller.id).await, MAX);
    assert_eq!(m.credits(&first.id).await, 0);

    // One cent more for the seller is refused whole: the buyer keeps their credits, no
    // purchase, no clone.
    m.top_up(&second.id, 500).await.assert_status(201);
    let cheap = m.listing(1).await;
    m.purchase(second, &cheap)
        .await
        .assert_error(422, "balance_limit_exceeded");
    assert_eq!(m.credits(&second.id).await, 500);
    assert_eq!(m.receivable(&m.seller.id).await, MAX);
    let library = m
        .app
        .get_as(&second.token, "/api/v1/marketplace/my-purchases")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(library["purchases"], json!([]), "{library}");

    // The same through a contract.
    let (contract, total, _) = m.contract(&second.id, 100).await.unwrap();
    assert!(total <= 500);
    m.admin(
        Method::PUT,
        &format!("/api/v1/contracts/{contract}/settle"),
        None,
    )
    .await
    .assert_error(422, "balance_limit_exceeded");
    assert_eq!(m.credits(&second.id).await, 500);
    assert_eq!(m.receivable(&m.seller.id).await, MAX);

    // A refund to the first buyer frees room; then the seller can be paid again.
    let charges = m.charges_of(&first.id).await;
    let (charge, _) = charges.iter().next().unwrap();
    m.admin(
        Method::POST,
        &format!("/api/v1/transactions/{charge}/refund"),
        Some(json!({"amount": 1})),
    )
    .await
    .assert_status(201);
    assert_eq!(m.receivable(&m.seller.id).await, MAX - 100);
    assert_eq!(m.credits(&first.id).await, 100);
    m.purchase(second, &cheap).await.assert_status(201);
    assert_eq!(m.receivable(&m.seller.id).await, MAX - 99);
    assert_eq!(m.credits(&second.id).await, 499);
    assert_eq!(m.revenue(&m.seller.id).await, MAX - 99);
    m.ledger_verifies().await.unwrap();
}

// ---- the property test --------------------------------------------------------------

/// One step of a random sequence. Amounts are drawn absolute (clustered around the bound,
/// its half and the small end) or relative to the state the step finds, so that runs hit
/// the bounds exactly: to the unit at the bound, and one past it.
#[derive(Debug, Clone)]
enum Step {
    /// An admin adds to a buyer's credits (`ToBound`: what fills the buyer's credits).
    TopUp { buyer: usize, amount: Amount },
    /// A buyer purchases a new listing of the seller (`ToBound`: what fills the seller's
    /// receivable; the price is clamped to 1 ..= the bound, what a listing may cost).
    Purchase { buyer: usize, price: Amount },
    /// A contract of one line charged to a buyer and settled from their credits; the
    /// buyer pays the line plus the 1 % service fee, the seller receives the line
    /// (`ToBound`: a line that fills the seller's receivable).
    Settle { buyer: usize, unit: Amount },
    /// A refund of one of the charges so far (`charge` picks it).
    Refund { charge: usize, amount: RefundAmount },
}

#[derive(Debug, Clone, Copy)]
enum Amount {
    /// This many minor units.
    Fixed(i64),
    /// This many thousandths of what the buyer holds.
    OfBalance(u16),
    /// What takes the receiving balance exactly to the bound, plus this (-2 ..= 2).
    ToBound(i64),
}

#[derive(Debug, Clone, Copy)]
enum RefundAmount {
    /// What is left (no amount in the request).
    All,
    /// This many minor units.
    Exactly(i64),
    /// This many thousandths of what is left.
    OfLeft(u16),
    /// What is left, plus one: refused.
    MoreThanLeft,
    /// What fills the buyer's credits, plus this (-2 ..= 2).
    ToBound(i64),
}

/// Absolute amounts that cluster around the bound, its half, and the small end.
fn fixed() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => Just(MAX),
        1 => Just(MAX - 1),
        2 => Just(MAX + 1),
        2 => Just(MAX / 2),
        1 => Just(MAX / 2 + 1),
        2 => (MAX - 10_000)..=MAX,
        2 => 1..=MAX,
        2 => 1i64..100_000,
        1 => (MAX + 1)..=MAX * 92_000, // up to 9.2e16 USD
    ]
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        2 => fixed().prop_map(Amount::Fixed),
        3 => prop_oneof![Just(1000u16), Just(500), 1u16..=1000].prop_map(Amount::OfBalance),
        2 => (-2i64..=2).prop_map(Amount::ToBound),
    ]
}

/// A case: both buyers' first top-ups (a quarter of the bound to all of it, so that
/// spending can start at once), then the random steps.
fn case(max_steps: usize) -> impl Strategy<Value = Vec<Step>> {
    (
        [(MAX / 4)..=MAX, (MAX / 4)..=MAX],
        prop::collection::vec(step(), 1..=max_steps),
    )
        .prop_map(|(first, steps)| {
            first
                .into_iter()
                .enumerate()
                .map(|(buyer, minor)| Step::TopUp {
                    buyer,
                    amount: Amount::Fixed(minor),
                })
                .chain(steps)
                .collect()
        })
}

fn step() -> impl Strategy<Value = Step> {
    let buyer = 0usize..2;
    prop_oneof![
        4 => (buyer.clone(), amount()).prop_map(|(buyer, amount)| Step::TopUp { buyer, amount }),
        3 => (buyer.clone(), amount()).prop_map(|(buyer, price)| Step::Purchase { buyer, price }),
        3 => (buyer, amount()).prop_map(|(buyer, unit)| Step::Settle { buyer, unit }),
        2 => (
            any::<usize>(),
            prop_oneof![
                Just(RefundAmount::All),
                Just(RefundAmount::MoreThanLeft),
                fixed().prop_map(|a| RefundAmount::Exactly(a.max(1))),
                (1i64..1_000).prop_map(RefundAmount::Exactly),
                (1u16..=1000).prop_map(RefundAmount::OfLeft),
                (-2i64..=2).prop_map(RefundAmount::ToBound),
            ],
        )
            .prop_map(|(charge, amount)| Step::Refund { charge, amount }),
    ]
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// What the test expects the balances to be: the sum of the movements it saw accepted.
#[derive(Debug, Default)]
struct Model {
    buyers: [i64; 2],
    seller: i64,
    /// Every charge so far: (id, buyer, amount, refunded).
    charges: Vec<(String, usize, i64, i64)>,
}

/// What a step's answer was, for the tally of what the run exercised: the status, and
/// the error code when there is one.
fn outcome(kind: &str, r: &TestResponse) -> String {
    match r.json_value()["error"].as_str() {
        Some(code) => format!("{kind} {} {code}", r.status.as_u16()),
        None => format!("{kind} {}", r.status.as_u16()),
    }
}

/// Runs one step, checks the answer against the model, and updates the model; returns
/// what happened ([`outcome`]).
async fn run_step(m: &Market<'_>, model: &mut Model, step: &Step) -> Result<String, String> {
    let status = |r: &TestResponse| (r.status.as_u16(), r.json_value()["error"].clone());
    // Each refusal with its status: conflicts with the state are 409, amounts 422.
    let refused = |r: &TestResponse, code: &str| {
        let status = match code {
            "insufficient_funds" | "not_refundable" => 409,
            _ => 422,
        };
        r.status.as_u16() == status && r.json_value()["error"] == code
    };
    let happened;
    match *step {
        Step::TopUp { buyer, amount } => {
            let held = model.buyers[buyer];
            let minor = match amount {
                Amount::Fixed(minor) => minor,
                Amount::OfBalance(permille) => held * i64::from(permille) / 1000,
                Amount::ToBound(more) => MAX - held + more,
            };
            let response = m.top_up(&m.buyers[buyer].id, minor).await;
            happened = outcome("top-up", &response);
            let expected = if minor <= 0 || minor > MAX {
                "validation_failed"
            } else if model.buyers[buyer] + minor > MAX {
                "balance_limit_exceeded"
            } else {
                model.buyers[buyer] += minor;
                ""
            };
            if expected.is_empty() {
                if response.status.as_u16() != 201 {
                    return Err(format!(
                        "{step:?}: expected 201, got {:?}",
                        status(&response)
                    ));
                }
            } else if !refused(&response, expected) {
                return Err(format!(
                    "{step:?}: expected {expected}, got {:?}",
                    status(&response)
                ));
            }
        }
        Step::Purchase { buyer, price } => {
            let price = match price {
                Amount::Fixed(minor) => minor,
                Amount::OfBalance(permille) => model.buyers[buyer] * i64::from(permille) / 1000,
                Amount::ToBound(more) => MAX - model.seller + more,
            }
            .clamp(1, MAX);
            let listing = m.listing(price).await;
            let before = m.charges_of(&m.buyers[buyer].id).await;
            let response = m.purchase(&m.buyers[buyer], &listing).await;
            happened = outcome("purchase", &response);
            let expected = if model.buyers[buyer] < price {
                "insufficient_funds"
            } else if model.seller + price > MAX {
                "balance_limit_exceeded"
            } else {
                ""
            };
            if expected.is_empty() {
                if response.status.as_u16() != 201 {
                    return Err(format!(
                        "{step:?}: expected 201, got {:?}",
                        status(&response)
                    ));
                }
                model.buyers[buyer] -= price;
                model.seller += price;
                record_new_charge(m, model, buyer, &before).await?;
            } else if !refused(&response, expected) {
                return Err(format!(
                    "{step:?}: expected {expected}, got {:?}",
                    status(&response)
                ));
            }
        }
        Step::Settle { buyer, unit } => {
            let unit = match unit {
                Amount::Fixed(minor) => minor,
                // The buyer pays the line and 1 % on top.
                Amount::OfBalance(permille) => {
                    model.buyers[buyer] * i64::from(permille) / 1000 * 100 / 101
                }
                Amount::ToBound(more) => MAX - model.seller + more,
            }
            .clamp(1, MAX);
            let Some((contract, total, net)) = m.contract(&m.buyers[buyer].id, unit).await else {
                // Its total is past the bound: no buyer can be due it, nothing moves.
                return Ok("settle: total past the bound, no due".into());
            };
            let before = m.charges_of(&m.buyers[buyer].id).await;
            let response = m
                .admin(
                    Method::PUT,
                    &format!("/api/v1/contracts/{contract}/settle"),
                    None,
                )
                .await;
            happened = outcome("settle", &response);
            let ok = if model.buyers[buyer] < total {
                if !refused(&response, "insufficient_funds") {
                    return Err(format!(
                        "{step:?}: expected insufficient_funds, got {:?}",
                        status(&response)
                    ));
                }
                false
            } else if model.seller + net > MAX {
                if !refused(&response, "balance_limit_exceeded") {
                    return Err(format!(
                        "{step:?}: expected balance_limit_exceeded, got {:?}",
                        status(&response)
                    ));
                }
                false
            } else {
                if response.status.as_u16() != 200 {
                    return Err(format!(
                        "{step:?}: expected 200, got {:?}",
                        status(&response)
                    ));
                }
                true
            };
            if ok {
                model.buyers[buyer] -= total;
                model.seller += net;
                record_new_charge(m, model, buyer, &before).await?;
            }
        }
        Step::Refund { charge, amount } => {
            if model.charges.is_empty() {
                return Ok("refund: no charge yet".into());
            }
            let index = charge % model.charges.len();
            let (id, buyer, charged, refunded) = model.charges[index].clone();
            let left = charged - refunded;
            let requested = match amount {
                RefundAmount::All => left,
                RefundAmount::Exactly(minor) => minor,
                RefundAmount::OfLeft(permille) => (left * i64::from(permille) / 1000).max(1),
                RefundAmount::MoreThanLeft => left + 1,
                RefundAmount::ToBound(more) => (MAX - model.buyers[buyer] + more).max(1),
            };
            let body = if matches!(amount, RefundAmount::All) {
                "{}".to_owned()
            } else {
                format!(r#"{{"amount": {}}}"#, major(requested))
            };
            let response = m
                .app
                .send(
                    m.app
                        .request(Method::POST, &format!("/api/v1/transactions/{id}/refund"))
                        .bearer_auth(m.key())
                        .header("content-type", "application/json")
                        .body(body),
                )
                .await;
            happened = outcome("refund", &response);
            if left == 0 {
                if !refused(&response, "not_refundable") {
                    return Err(format!(
                        "{step:?}: expected not_refundable, got {:?}",
                        status(&response)
                    ));
                }
            } else if requested > left {
                if !refused(&response, "validation_failed") {
                    return Err(format!(
                        "{step:?}: expected validation_failed, got {:?}",
                        status(&response)
                    ));
                }
            } else if model.buyers[buyer] + requested > MAX {
                if !refused(&response, "balance_limit_exceeded") {
                    return Err(format!(
                        "{step:?}: expected balance_limit_exceeded, got {:?}",
                        status(&response)
                    ));
                }
            } else if refused(&response, "insufficient_funds") {
                // Partial refunds round each seller's share to the unit: after several,
                // a seller's shares of one charge may add up to a unit more than they
                // earned on it. Refused whole; nothing moved.
            } else {
                if response.status.as_u16() != 201 {
                    return Err(format!(
                        "{step:?}: expected 201, got {:?}",
                        status(&response)
                    ));
                }
                let body = response.json_value();
                let transactions = body["transactions"].as_array().unwrap();
                let back: i64 = transactions
                    .iter()
                    .filter(|t| t["type"] == "refund")
                    .map(|t| minor_of(&t["amount"]))
                    .sum();
                if back != requested {
                    return Err(format!("{step:?}: refunded {back}, asked {requested}"));
                }
                let reversed: i64 = transactions
                    .iter()
                    .filter(|t| t["type"] == "earning_reversal")
                    .map(|t| minor_of(&t["amount"]))
                    .sum();
                model.buyers[buyer] += requested;
                model.seller -= reversed;
                model.charges[index].3 += requested;
            }
        }
    }
    Ok(happened)
}

/// Finds the charge a successful step added to the buyer's and records it.
async fn record_new_charge(
    m: &Market<'_>,
    model: &mut Model,
    buyer: usize,
    before: &BTreeMap<String, (i64, i64)>,
) -> Result<(), String> {
    let after = m.charges_of(&m.buyers[buyer].id).await;
    let new: Vec<_> = after
        .into_iter()
        .filter(|(id, _)| !before.contains_key(id))
        .collect();
    match &new[..] {
        [(id, (amount, _))] => {
            model.charges.push((id.clone(), buyer, *amount, 0));
            Ok(())
        }
        other => Err(format!("expected one new charge, found {other:?}")),
    }
}

/// After every step: the ledger verifies, and every balance is what the model summed,
/// what the API shows, and the sum of the movements the API lists.
async fn check_balances(m: &Market<'_>, model: &Model) -> Result<(), String> {
    m.ledger_verifies().await?;
    for (index, buyer) in m.buyers.iter().enumerate() {
        let shown = m.credits(&buyer.id).await;
        let moved = m.buyer_movements(&buyer.id).await;
        if (shown, moved) != (model.buyers[index], model.buyers[index]) {
            return Err(format!(
                "buyer {index}: credits {shown}, movements {moved}, model {}",
                model.buyers[index]
            ));
        }
        if !(0..=MAX).contains(&shown) {
            return Err(format!("buyer {index}: {shown} is out of bounds"));
        }
    }
    let receivable = m.receivable(&m.seller.id).await;
    let revenue = m.revenue(&m.seller.id).await;
    if (receivable, revenue) != (model.seller, model.seller) {
        return Err(format!(
            "seller: receivable {receivable}, revenue {revenue}, model {}",
            model.seller
        ));
    }
    if !(0..=MAX).contains(&receivable) {
        return Err(format!("seller: {receivable} is out of bounds"));
    }
    for (id, _, amount, refunded) in &model.charges {
        if refunded > amount {
            return Err(format!("charge {id}: refunded {refunded} of {amount}"));
        }
    }
    Ok(())
}

/// How often each outcome happened over a run (for the log: what was exercised).
type Tally = std::sync::Mutex<BTreeMap<String, u64>>;

async fn run_case(app: &TestApp, steps: &[Step], tally: &Tally) -> Result<(), String> {
    let m = Market::new(app).await;
    let mut model = Model::default();
    for (n, step) in steps.iter().enumerate() {
        let happened = run_step(&m, &mut model, step)
            .await
            .map_err(|e| format!("step {n}: {e}"))?;
        *tally.lock().unwrap().entry(happened).or_default() += 1;
        check_balances(&m, &model)
            .await
            .map_err(|e| format!("after step {n} ({step:?}): {e}"))?;
    }
    Ok(())
}

#[test]
fn random_top_ups_purchases_settles_and_refunds_near_the_bounds_keep_the_ledger_exact() {
    let cases = env_number("FERIA_MONEY_PROPTEST_CASES", 12);
    let max_steps = env_number("FERIA_MONEY_PROPTEST_STEPS", 15).max(1) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // One server for every case; each case has its own platform, so its own accounts.
    let app = runtime.block_on(app());
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        // Each case is a few hundred HTTP requests: shrink, but not for ever.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let started = std::time::Instant::now();
    let tally = Tally::default();
    let result = runner.run(&case(max_steps), |steps| {
        runtime
            .block_on(run_case(&app, &steps, &tally))
            .map_err(TestCaseError::fail)
    });
    let tally = tally.into_inner().unwrap();
    eprintln!(
        "money bounds: {cases} cases of at most {max_steps} steps ({} steps run) on {} in {:.1?}",
        tally.values().sum::<u64>(),
        app.backend().name(),
        started.elapsed()
    );
    for (happened, count) in &tally {
        eprintln!("  {count:>5} × {happened}");
    }
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
