//! Integrity rules every entry point enforces the same way (docs/INVARIANTS.md), through
//! real HTTP on both backends: a disabled product is sold by no path (contract lines,
//! carts turned into contracts, settlement, subscriptions), a cart is checked out at most
//! once however many requests race, and text holding NUL is refused on every route.
//!
//! The test kit's servers run two workers, so the races here really run in parallel.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse};
use serde_json::{Value, json};

/// How many requests each race sends at once.
const RACERS: usize = 12;

struct World {
    app: TestApp,
    acme: CreatedPlatform,
    seller: (String, String),
    buyer: (String, String),
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    World {
        seller: app
            .person(acme.platform.id.as_str(), "seller@example.com")
            .await,
        buyer: app
            .person(acme.platform.id.as_str(), "buyer@example.com")
            .await,
        app,
        acme,
    }
}

impl World {
    fn key(&self) -> &str {
        &self.acme.api_keys.live
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> TestResponse {
        self.app.call(token, method, path, body.as_ref()).await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        self.call(self.key(), method, path, body).await
    }

    async fn product(&self, price: f64, quantity: i64) -> String {
        let body =
            json!({"name": "Lamp", "price": price, "quantity": quantity, "user_id": self.seller.0});
        self.admin(Method::POST, "/api/v1/products", Some(body))
            .await
            .assert_status(201)
            .json_value()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn disable(&self, product: &str) {
        self.admin(
            Method::PUT,
            &format!("/api/v1/products/{product}/disable"),
            None,
        )
        .await
        .assert_status(200);
    }

    async fn stock(&self, product: &str) -> i64 {
        self.admin(Method::GET, &format!("/api/v1/products/{product}"), None)
            .await
            .assert_status(200)
            .json_value()["quantity"]
            .as_i64()
            .unwrap()
    }

    async fn top_up(&self, user: &str, amount: f64) {
        self.app.top_up(self.key(), user, amount).await;
    }

    async fn credits(&self, user: &str) -> f64 {
        self.app.credits(self.key(), user).await
    }

    async fn ledger_verifies(&self) {
        let mut conn = self.app.db().conn().await.unwrap();
        let verification = feria_billing::ledger::verify(&mut conn).await.unwrap();
        assert!(verification.is_ok(), "ledger: {verification:?}");
    }

    /// A sent contract: `units` of `product` bought by the buyer from the seller.
    async fn sent_contract(&self, product: &str, units: i64) -> String {
        let contract = self
            .admin(Method::POST, "/api/v1/contracts", Some(json!({})))
            .await
            .assert_status(201)
            .json_value();
        let id = contract["id"].as_str().unwrap().to_owned();
        let base = format!("/api/v1/contracts/{id}");
        let with_item = self
            .admin(
                Method::POST,
                &format!("{base}/item"),
                Some(json!({"product_id": product, "quantity": units})),
            )
            .await
            .assert_status(200)
            .json_value();
        let total = with_item["total"].as_f64().unwrap();
        let net = with_item["net"].as_f64().unwrap();
        self.admin(
            Method::POST,
            &format!("{base}/buyer"),
            Some(json!({"user_id": self.buyer.0, "due": total})),
        )
        .await
        .assert_status(200);
        self.admin(
            Method::POST,
            &format!("{base}/seller"),
            Some(json!({"user_id": self.seller.0, "owed": net})),
        )
        .await
        .assert_status(200);
        self.admin(Method::POST, &format!("{base}/send"), None)
            .await
            .assert_status(200);
        id
    }

    async fn add_to_cart(&self, product: &str, quantity: i64) -> String {
        self.call(
            &self.buyer.1,
            Method::POST,
            &format!("/api/v1/carts/auth/product/{product}"),
            Some(json!({"quantity": quantity})),
        )
        .await
        .assert_status(200)
        .json_value()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn contracts_count(&self) -> u64 {
        self.admin(Method::GET, "/api/v1/contracts", None)
            .await
            .assert_status(200)
            .json_value()["total"]
            .as_u64()
            .unwrap()
    }
}

#[tokio::test]
async fn a_disabled_product_cannot_be_added_to_a_contract_by_anyone() {
    let w = world().await;
    let lamp = w.product(30.0, 10).await;
    w.disable(&lamp).await;
    // The buyer cannot see it; neither the API key nor the buyer may sell it on a line.
    w.call(
        &w.buyer.1,
        Method::GET,
        &format!("/api/v1/products/{lamp}"),
        None,
    )
    .await
    .assert_error(404, "not_found");
    let by_key = w
        .admin(Method::POST, "/api/v1/contracts", Some(json!({})))
        .await
        .assert_status(201)
        .json_value();
    let by_member = w
        .call(
            &w.buyer.1,
            Method::POST,
            "/api/v1/contracts",
            Some(json!({})),
        )
        .await
        .assert_status(201)
        .json_value();
    for (token, contract) in [(w.key(), &by_key), (w.buyer.1.as_str(), &by_member)] {
        let path = format!(
            "/api/v1/contracts/{}/item",
            contract["id"].as_str().unwrap()
        );
        let refused = w
            .call(
                token,
                Method::POST,
                &path,
                Some(json!({"product_id": lamp})),
            )
            .await;
        let body = refused.assert_error(409, "product_disabled");
        // The refusal names the product the caller gave, and shows nothing of it.
        assert_eq!(
            body.message,
            format!("product {lamp} is disabled and cannot be sold")
        );
        let read = w
            .call(
                token,
                Method::GET,
                &format!("/api/v1/contracts/{}", contract["id"].as_str().unwrap()),
                None,
            )
            .await
            .assert_status(200)
            .json_value();
        assert_eq!(read["items"], json!([]));
    }
}

#[tokio::test]
async fn a_contract_whose_product_was_disabled_after_sending_does_not_settle() {
    let w = world().await;
    let lamp = w.product(30.0, 10).await;
    let id = w.sent_contract(&lamp, 2).await;
    w.top_up(&w.buyer.0, 100.0).await;
    w.disable(&lamp).await;
    w.admin(Method::PUT, &format!("/api/v1/contracts/{id}/settle"), None)
        .await
        .assert_error(409, "product_disabled");
    // Nothing moved: stock, the buyer's credits, the contract's status.
    assert_eq!(w.stock(&lamp).await, 10);
    assert_eq!(w.credits(&w.buyer.0).await, 100.0);
    let contract = w
        .admin(Method::GET, &format!("/api/v1/contracts/{id}"), None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(contract["status"], "open");
    w.ledger_verifies().await;

    // Enabled again, it settles.
    w.admin(
        Method::PUT,
        &format!("/api/v1/products/{lamp}/enable"),
        None,
    )
    .await
    .assert_status(200);
    w.admin(Method::PUT, &format!("/api/v1/contracts/{id}/settle"), None)
        .await
        .assert_status(200);
    assert_eq!(w.stock(&lamp).await, 8);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn a_cart_line_disabled_after_it_was_added_makes_no_contract() {
    let w = world().await;
    let lamp = w.product(30.0, 10).await;
    let mug = w.product(5.0, 10).await;
    w.add_to_cart(&lamp, 1).await;
    let cart = w.add_to_cart(&mug, 2).await;
    w.disable(&lamp).await;
    let refused = w
        .call(
            &w.buyer.1,
            Method::POST,
            &format!("/api/v1/contracts/cart/{cart}"),
            None,
        )
        .await;
    let body = refused.assert_error(409, "product_disabled");
    assert!(body.message.contains(&lamp), "{}", body.message);
    // The cart is kept as it was, and no contract was made.
    let kept = w
        .call(&w.buyer.1, Method::GET, "/api/v1/carts/auth", None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(kept["items"].as_array().unwrap().len(), 2);
    assert_eq!(w.contracts_count().await, 0);
}

#[tokio::test]
async fn a_cart_is_checked_out_once_however_many_requests_race() {
    let w = world().await;
    let lamp = w.product(30.0, 10).await;
    let cart = w.add_to_cart(&lamp, 3).await;
    let path = format!("/api/v1/contracts/cart/{cart}");
    let attempts = (0..RACERS).map(|_| w.call(&w.buyer.1, Method::POST, &path, None));
    let responses = futures_util::future::join_all(attempts).await;
    let mut created = 0;
    for response in responses {
        match response.status.as_u16() {
            201 => created += 1,
            _ => {
                response.assert_error(409, "cart_empty");
            }
        }
    }
    assert_eq!(created, 1);
    assert_eq!(w.contracts_count().await, 1);
}

#[tokio::test]
async fn settles_racing_a_disable_sell_only_before_it() {
    let w = world().await;
    let lamp = w.product(10.0, 1000).await;
    let mut contracts = Vec::new();
    for _ in 0..RACERS {
        contracts.push(w.sent_contract(&lamp, 1).await);
    }
    // Settled only after the disable has answered: these must be refused.
    let held_back = [
        w.sent_contract(&lamp, 1).await,
        w.sent_contract(&lamp, 1).await,
    ];
    w.top_up(&w.buyer.0, 1000.0).await;
    let credits_before = w.credits(&w.buyer.0).await;
    let settle_paths: Vec<String> = contracts
        .iter()
        .map(|id| format!("/api/v1/contracts/{id}/settle"))
        .collect();
    let settles = settle_paths
        .iter()
        .map(|path| w.admin(Method::PUT, path, None));
    let disable_path = format!("/api/v1/products/{lamp}/disable");
    let disable = w.admin(Method::PUT, &disable_path, None);
    let (settled, disabled) =
        futures_util::future::join(futures_util::future::join_all(settles), disable).await;
    disabled.assert_status(200);
    let mut sold = 0;
    for response in settled {
        match response.status.as_u16() {
            200 => sold += 1,
            _ => {
                response.assert_error(409, "product_disabled");
            }
        }
    }
    // Exactly the settles that answered 200 took stock and money.
    assert_eq!(w.stock(&lamp).await, 1000 - sold);
    let charged = credits_before - w.credits(&w.buyer.0).await;
    let per_contract = w
        .admin(
            Method::GET,
            &format!("/api/v1/contracts/{}", contracts[0]),
            None,
        )
        .await
        .json_value()["total"]
        .as_f64()
        .unwrap();
    assert!(
        (charged - per_contract * sold as f64).abs() < 1e-6,
        "{charged} for {sold}"
    );
    // After the disable, nothing more settles.
    for id in &held_back {
        w.admin(Method::PUT, &format!("/api/v1/contracts/{id}/settle"), None)
            .await
            .assert_error(409, "product_disabled");
    }
    for id in &contracts {
        let status = w
            .admin(Method::GET, &format!("/api/v1/contracts/{id}"), None)
            .await
            .json_value()["status"]
            .clone();
        if status == "open" {
            w.admin(Method::PUT, &format!("/api/v1/contracts/{id}/settle"), None)
                .await
                .assert_error(409, "product_disabled");
        }
    }
    w.ledger_verifies().await;
}

#[tokio::test]
async fn subscribing_to_a_contract_with_a_disabled_product_is_refused() {
    let w = world().await;
    let lamp = w.product(10.0, 100).await;
    let id = w.sent_contract(&lamp, 1).await;
    w.top_up(&w.buyer.0, 100.0).await;
    w.disable(&lamp).await;
    w.call(
        &w.buyer.1,
        Method::POST,
        &format!("/api/v1/subscriptions/auth/contract/{id}"),
        Some(json!({"cycle": "monthly"})),
    )
    .await
    .assert_error(409, "product_disabled");
    assert_eq!(w.credits(&w.buyer.0).await, 100.0);
}

#[tokio::test]
async fn text_holding_nul_is_refused_naming_the_field_on_every_backend() {
    let w = world().await;
    let me = format!("/api/v1/users/{}", w.buyer.0);
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::PUT,
            me.clone(),
            json!({"firstName": "Ana\u{0}"}),
            "firstName",
        ),
        (Method::PUT, me.clone(), json!({"bio": "a\u{0}b"}), "bio"),
        (
            Method::POST,
            "/api/v1/waitlists".to_owned(),
            json!({"email": "w@example.com", "name": "x\u{0}"}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/contracts".to_owned(),
            json!({"notes": "\u{0}"}),
            "notes",
        ),
        (
            Method::POST,
            "/api/v1/products".to_owned(),
            json!({"name": "Lamp", "price": 1.0, "quantity": 1, "tags": ["ok", "b\u{0}d"]}),
            "tags[1]",
        ),
    ];
    for (method, path, body, field) in cases {
        let response = w.admin(method, &path, Some(body)).await;
        let error = response.assert_error(422, "validation_failed");
        assert_eq!(error.details[0].field, field, "{path}");
    }
    for (path, field) in [
        ("/api/v1/products?category=%00", "category"),
        ("/api/v1/users?email=a%00b", "email"),
        ("/api/v1/products?q=lamp%00", "q"),
    ] {
        let error = w
            .admin(Method::GET, path, None)
            .await
            .assert_error(422, "validation_failed");
        assert_eq!(error.details[0].field, field, "{path}");
    }
    // Nothing was stored.
    let user = w
        .admin(Method::GET, &me, None)
        .await
        .assert_status(200)
        .json_value();
    assert!(!user.to_string().contains("\\u0000"));
}

/// A settled contract's charge transaction.
async fn charge_of(w: &World, contract: &str) -> String {
    w.admin(
        Method::GET,
        &format!("/api/v1/transactions?contract_id={contract}&type=charge"),
        None,
    )
    .await
    .assert_status(200)
    .json_value()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn racing_refunds_never_return_more_than_was_charged() {
    let w = world().await;
    let lamp = w.product(30.0, 10).await;
    let id = w.sent_contract(&lamp, 1).await;
    w.top_up(&w.buyer.0, 100.0).await;
    w.admin(Method::PUT, &format!("/api/v1/contracts/{id}/settle"), None)
        .await
        .assert_status(200);
    let after_charge = w.credits(&w.buyer.0).await;
    let charge = charge_of(&w, &id).await;
    let path = format!("/api/v1/transactions/{charge}/refund");
    // Twelve refunds of 10.00 each, each with its own key, against a charge of 30 and
    // some fees: at most three fit.
    let refunds = (0..RACERS).map(|i| {
        w.app.send(
            w.app
                .request(Method::POST, &path)
                .bearer_auth(w.key())
                .header("Idempotency-Key", format!("refund-{i}"))
                .json(&json!({"amount": 10.0})),
        )
    });
    let mut refunded = 0;
    for response in futures_util::future::join_all(refunds).await {
        match response.status.as_u16() {
            201 => refunded += 1,
            // More than is left of the charge, or of what its seller holds: both refuse.
            409 => {
                response.assert_error(409, "insufficient_funds");
            }
            _ => {
                response.assert_error(422, "validation_failed");
            }
        }
    }
    assert!(
        (1..=3).contains(&refunded),
        "{refunded} refunds of 10 passed"
    );
    let back = w.credits(&w.buyer.0).await - after_charge;
    assert!((back - 10.0 * refunded as f64).abs() < 1e-6, "{back}");
    w.ledger_verifies().await;
}

#[tokio::test]
async fn racing_subscribes_make_one_subscription_and_one_charge() {
    let w = world().await;
    let lamp = w.product(10.0, 100).await;
    let id = w.sent_contract(&lamp, 1).await;
    w.top_up(&w.buyer.0, 100.0).await;
    let path = format!("/api/v1/subscriptions/auth/contract/{id}");
    let attempts = (0..RACERS).map(|_| {
        w.call(
            &w.buyer.1,
            Method::POST,
            &path,
            Some(json!({"cycle": "monthly"})),
        )
    });
    let mut created = 0;
    for response in futures_util::future::join_all(attempts).await {
        match response.status.as_u16() {
            201 => created += 1,
            _ => {
                response.assert_error(409, "already_subscribed");
            }
        }
    }
    assert_eq!(created, 1);
    let total = w
        .admin(Method::GET, &format!("/api/v1/contracts/{id}"), None)
        .await
        .json_value()["total"]
        .as_f64()
        .unwrap();
    assert!((w.credits(&w.buyer.0).await - (100.0 - total)).abs() < 1e-6);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn racing_top_ups_with_one_idempotency_key_credit_once() {
    let w = world().await;
    let path = format!("/api/v1/users/{}/credits", w.buyer.0);
    let attempts = (0..RACERS).map(|_| {
        w.app.send(
            w.app
                .request(Method::POST, &path)
                .bearer_auth(w.key())
                .header("Idempotency-Key", "top-up-once")
                .json(&json!({"amount": 25.0, "currency": "usd"})),
        )
    });
    let mut transactions = Vec::new();
    for response in futures_util::future::join_all(attempts).await {
        let body = response.assert_status(201).json_value();
        transactions.push(body["transaction"]["id"].as_str().unwrap().to_owned());
    }
    transactions.sort();
    transactions.dedup();
    assert_eq!(transactions.len(), 1, "{transactions:?}");
    assert_eq!(w.credits(&w.buyer.0).await, 25.0);
    w.ledger_verifies().await;
}
