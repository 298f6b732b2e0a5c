//! Contracts through real HTTP: derived totals and fee inclusion, the lifecycle and the
//! edits it forbids, validation, sending mail, settlement that moves money and stock
//! exactly once (also under concurrent settles), a buyer short of credits, sync, carts
//! turned into contracts, and who may see and do what.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse};
use serde_json::{Value, json};

struct World {
    app: TestApp,
    acme: CreatedPlatform,
    other: CreatedPlatform,
    /// Sellers A and B, buyers X and Y, and a stranger: (id, token).
    seller_a: (String, String),
    seller_b: (String, String),
    buyer_x: (String, String),
    buyer_y: (String, String),
    stranger: (String, String),
}

async fn person(app: &TestApp, platform: &CreatedPlatform, email: &str) -> (String, String) {
    let session = app
        .sign_in(platform.platform.id.as_str(), email, "live")
        .await;
    (
        session["user"]["id"].as_str().unwrap().to_owned(),
        session["access_token"].as_str().unwrap().to_owned(),
    )
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    // A 2.5 % platform fee; the operator's service fee is 1 % by default.
    app.send_json_as(
        &acme.api_keys.live,
        Method::PUT,
        &format!("/api/v1/platforms/{}", acme.platform.id),
        &json!({"platformFee": 2.5}),
    )
    .await
    .assert_status(200);
    World {
        seller_a: person(&app, &acme, "a@example.com").await,
        seller_b: person(&app, &acme, "b@example.com").await,
        buyer_x: person(&app, &acme, "x@example.com").await,
        buyer_y: person(&app, &acme, "y@example.com").await,
        stranger: person(&app, &acme, "stranger@example.com").await,
        app,
        acme,
        other,
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
        let request = self.app.request(method, path).bearer_auth(token);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        self.app.send(request).await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        self.call(self.key(), method, path, body).await
    }

    async fn product(&self, seller: &str, name: &str, price: f64, quantity: i64) -> String {
        let product = self
            .admin(
                Method::POST,
                "/api/v1/products",
                Some(
                    json!({"name": name, "price": price, "quantity": quantity, "user_id": seller}),
                ),
            )
            .await
            .assert_status(201)
            .json_value();
        product["id"].as_str().unwrap().to_owned()
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
        self.admin(
            Method::POST,
            &format!("/api/v1/users/{user}/credits"),
            Some(json!({"amount": amount, "currency": "usd"})),
        )
        .await
        .assert_status(201);
    }

    async fn credits(&self, user: &str) -> f64 {
        let credits = self
            .admin(Method::GET, &format!("/api/v1/users/{user}/credits"), None)
            .await
            .assert_status(200)
            .json_value();
        credits["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["currency"] == "usd")
            .map_or(0.0, |b| b["amount"].as_f64().unwrap())
    }

    async fn revenue(&self, user: &str) -> f64 {
        let revenue = self
            .admin(
                Method::GET,
                &format!("/api/v1/transactions/user/{user}/revenue"),
                None,
            )
            .await
            .assert_status(200)
            .json_value();
        revenue["totals"]
            .as_array()
            .unwrap()
            .first()
            .map_or(0.0, |t| t["amount"].as_f64().unwrap())
    }

    async fn transactions_of(&self, contract: &str) -> u64 {
        self.admin(
            Method::GET,
            &format!("/api/v1/transactions?contract_id={contract}"),
            None,
        )
        .await
        .assert_status(200)
        .json_value()["total"]
            .as_u64()
            .unwrap()
    }

    async fn ledger_verifies(&self) {
        let mut conn = self.app.db().conn().await.unwrap();
        let verification = feria_billing::ledger::verify(&mut conn).await.unwrap();
        assert!(verification.is_ok(), "ledger: {verification:?}");
    }

    async fn create(&self, body: Value) -> Value {
        self.admin(Method::POST, "/api/v1/contracts", Some(body))
            .await
            .assert_status(201)
            .json_value()
    }

    /// The scenario contract: 3 items (2 × P1 at 30, 1 × P2 at 20, a custom line of 20),
    /// a 5.00 shipping fee, the platform's and service fees included (paid by the
    /// buyers on top): total 108.50; buyers X (60) and Y (48.50), sellers A (60) and B (40).
    /// Returns (contract id, P1, P2).
    async fn scenario(&self) -> (String, String, String) {
        let p1 = self.product(&self.seller_a.0, "Lamp", 30.0, 10).await;
        let p2 = self.product(&self.seller_b.0, "Mug", 20.0, 5).await;
        let contract = self.create(json!({"notes": "spring order"})).await;
        let id = contract["id"].as_str().unwrap().to_owned();
        let base = format!("/api/v1/contracts/{id}");
        for item in [
            json!({"product_id": p1, "quantity": 2}),
            json!({"product_id": p2}),
            json!({"name": "Setup", "unit_price": 20.0}),
        ] {
            self.admin(Method::POST, &format!("{base}/item"), Some(item))
                .await
                .assert_status(200);
        }
        self.admin(
            Method::POST,
            &format!("{base}/fee"),
            Some(json!({"name": "Shipping", "amount": 5.0})),
        )
        .await
        .assert_status(200);
        for (user, due) in [(&self.buyer_x.0, 60.0), (&self.buyer_y.0, 48.5)] {
            self.admin(
                Method::POST,
                &format!("{base}/buyer"),
                Some(json!({"user_id": user, "due": due})),
            )
            .await
            .assert_status(200);
        }
        for (user, owed) in [(&self.seller_a.0, 60.0), (&self.seller_b.0, 40.0)] {
            self.admin(
                Method::POST,
                &format!("{base}/seller"),
                Some(json!({"user_id": user, "owed": owed})),
            )
            .await
            .assert_status(200);
        }
        (id, p1, p2)
    }
}

#[tokio::test]
async fn three_items_two_buyers_two_sellers_settle_exactly_once() {
    let w = world().await;
    let (id, p1, p2) = w.scenario().await;
    let base = format!("/api/v1/contracts/{id}");
    assert!(id.starts_with("inv_"));

    let contract = w
        .admin(Method::GET, &base, None)
        .await
        .assert_status(200)
        .json_value();
    // Derived: 2×30 + 20 + 20 = 100; platform 2.5 % and service 1 % included (the
    // buyers pay them on top), and the shipping line.
    assert_eq!(contract["subTotal"], 100.0);
    assert_eq!(contract["total"], 108.5);
    assert_eq!(contract["platformFee"], 2.5);
    assert_eq!(contract["serviceFee"], 1.0);
    assert_eq!(contract["processorFee"], 0.0);
    assert_eq!(contract["customFees"], 5.0);
    assert_eq!(contract["net"], 100.0);
    assert_eq!(contract["status"], "draft");
    assert_eq!(contract["items"].as_array().unwrap().len(), 3);
    assert_eq!(contract["items"][0]["unit_price"], 30.0);
    assert_eq!(contract["items"][0]["line_total"], 60.0);
    assert_eq!(contract["items"][2]["product_id"], Value::Null);
    assert_eq!(contract["currency"], "usd");
    for field in [
        "platform_id",
        "user_id",
        "notes",
        "sent",
        "lastSent",
        "due",
        "lastPaymentAttempt",
        "paid",
        "buyers",
        "sellers",
        "fees",
        "includeStripeFees",
        "includeCandleFees",
        "includePlatformFees",
    ] {
        assert!(contract.get(field).is_some(), "missing {field}: {contract}");
    }

    // Settling a draft is refused: it must be sent first.
    w.admin(Method::PUT, &format!("{base}/settle"), None)
        .await
        .assert_error(409, "contract_not_sent");

    // Send: each buyer gets a mail with their share; sent and lastSent are set.
    let sent = w
        .admin(Method::POST, &format!("{base}/send"), None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(sent["status"], "open");
    assert!(sent["sent"].is_string() && sent["lastSent"].is_string());
    let mails = w.app.mails();
    let to_x = mails
        .iter()
        .find(|m| m.to.contains("x@example.com") && m.subject.starts_with("Contract"))
        .expect("mail to x");
    assert!(
        to_x.body.contains(&id) && to_x.body.contains("60.00"),
        "{}",
        to_x.body
    );
    let to_y = mails
        .iter()
        .find(|m| m.to.contains("y@example.com") && m.subject.starts_with("Contract"))
        .expect("mail to y");
    assert!(to_y.body.contains("48.50"), "{}", to_y.body);

    w.top_up(&w.buyer_x.0, 100.0).await;
    w.top_up(&w.buyer_y.0, 50.0).await;
    let settle = || async {
        let request = w
            .app
            .request(Method::PUT, &format!("{base}/settle"))
            .bearer_auth(w.key())
            .header("Idempotency-Key", "settle-once");
        w.app.send(request).await
    };
    let settled = settle().await.assert_status(200).json_value();
    assert_eq!(settled["status"], "settled");
    assert!(settled["paid"].is_string() && settled["lastPaymentAttempt"].is_string());

    // The same key again: the same answer, nothing moves twice.
    let again = settle().await.assert_status(200).json_value();
    assert_eq!(again["paid"], settled["paid"]);
    // Without the key (or another key): already settled.
    w.admin(Method::PUT, &format!("{base}/settle"), None)
        .await
        .assert_error(409, "already_settled");

    assert_eq!(w.credits(&w.buyer_x.0).await, 40.0);
    assert_eq!(w.credits(&w.buyer_y.0).await, 1.5);
    assert_eq!(w.revenue(&w.seller_a.0).await, 60.0);
    assert_eq!(w.revenue(&w.seller_b.0).await, 40.0);
    assert_eq!(w.stock(&p1).await, 8);
    assert_eq!(w.stock(&p2).await, 4);
    // 2 charges, 2 earnings, platform and service fees.
    assert_eq!(w.transactions_of(&id).await, 6);

    // Sync reads the payment state back from billing.
    let synced = w
        .admin(Method::GET, &format!("{base}/sync"), None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(synced["id"], id.as_str());
    assert_eq!(synced["payment"]["state"], "paid");
    assert_eq!(synced["payment"]["charged"], 108.5);
    assert_eq!(synced["payment"]["paidOut"], 100.0);
    assert_eq!(synced["payment"]["fees"], 8.5);
    assert_eq!(synced["rebalanced"], false);

    // A settled contract is final.
    for (method, path, body) in [
        (
            Method::POST,
            format!("{base}/item"),
            Some(json!({"name": "More", "unit_price": 1.0})),
        ),
        (Method::PUT, base.clone(), Some(json!({"notes": "changed"}))),
        (
            Method::PUT,
            format!("{base}/buyer/{}/due", w.buyer_x.0),
            Some(json!({"due": 1.0})),
        ),
        (
            Method::PUT,
            format!("{base}/fee_inclusion"),
            Some(json!({"includePlatformFees": false})),
        ),
        (Method::POST, format!("{base}/send"), None),
        (Method::DELETE, base.clone(), None),
    ] {
        w.admin(method, &path, body)
            .await
            .assert_error(409, "contract_locked");
    }
    w.ledger_verifies().await;
}

#[tokio::test]
async fn totals_are_derived_and_validated_never_taken_from_input() {
    let w = world().await;
    // Amounts are never accepted.
    w.admin(
        Method::POST,
        "/api/v1/contracts",
        Some(json!({"total": 1000, "subTotal": 900})),
    )
    .await
    .assert_error(422, "validation_failed");
    let contract = w.create(json!({})).await;
    assert_eq!(
        (contract["subTotal"].clone(), contract["total"].clone()),
        (json!(0.0), json!(0.0))
    );
    let base = format!("/api/v1/contracts/{}", contract["id"].as_str().unwrap());
    let item_path = format!("{base}/item");
    let item = |body: Value| w.admin(Method::POST, &item_path, Some(body));
    let included = item(json!({"name": "Work", "unit_price": 100.0, "quantity": 1}))
        .await
        .assert_status(200)
        .json_value();
    // By default every fee is included: the buyers pay platform (2.5 %) and service (1 %)
    // fees on top, and the sellers get the whole subtotal.
    assert_eq!(included["total"], 103.5);
    assert_eq!(included["net"], 100.0);

    // Not included: the sellers absorb them.
    let absorbed = w
        .admin(
            Method::PUT,
            &format!("{base}/fee_inclusion"),
            Some(json!({"includePlatformFees": false, "includeCandleFees": false})),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(absorbed["total"], 100.0);
    assert_eq!(absorbed["net"], 96.5);
    assert_eq!(absorbed["includePlatformFees"], false);
    assert_eq!(absorbed["includeStripeFees"], true);

    for bad in [
        json!({"name": "Neg", "unit_price": -1.0}),
        json!({"name": "Fine", "unit_price": 1.001}),
        json!({"unit_price": 5.0}),
        json!({"name": "No price"}),
        json!({"name": "Zero", "unit_price": 1.0, "quantity": 0}),
        json!({"product_id": "prod_01HZZ0J7N7P5B4K2V1Q9R8S6T5"}),
        json!({"name": "X", "unit_price": 1.0, "line_total": 5.0}),
    ] {
        item(bad).await.assert_error(422, "validation_failed");
    }
    // A product priced in another currency.
    let euro = w
        .admin(
            Method::POST,
            "/api/v1/products",
            Some(json!({"name": "Euro lamp", "price": 10.0, "currency": "eur", "quantity": 1, "user_id": w.seller_a.0})),
        )
        .await
        .assert_status(201)
        .json_value();
    item(json!({"product_id": euro["id"]}))
        .await
        .assert_error(409, "currency_mismatch");

    // Shares: negative or too precise dues are refused; unknown users are 422.
    w.admin(
        Method::POST,
        &format!("{base}/buyer"),
        Some(json!({"user_id": w.buyer_x.0, "due": -5.0})),
    )
    .await
    .assert_error(422, "validation_failed");
    w.admin(
        Method::POST,
        &format!("{base}/buyer"),
        Some(json!({"user_id": "user_01HZZ0J7N7P5B4K2V1Q9R8S6T5"})),
    )
    .await
    .assert_error(422, "validation_failed");
    w.admin(
        Method::POST,
        &format!("{base}/buyer"),
        Some(json!({"user_id": w.buyer_x.0})),
    )
    .await
    .assert_status(200);
    w.admin(
        Method::POST,
        &format!("{base}/buyer"),
        Some(json!({"user_id": w.buyer_x.0})),
    )
    .await
    .assert_error(409, "already_buyer");

    // Fee lines: add, change, remove; unknown ids are 404.
    let with_fee = w
        .admin(
            Method::POST,
            &format!("{base}/fee"),
            Some(json!({"name": "Rush", "amount": 2.0})),
        )
        .await
        .assert_status(200)
        .json_value();
    let fee = with_fee["fees"][0]["id"].as_str().unwrap().to_owned();
    assert!(fee.starts_with("fee_"));
    assert_eq!(with_fee["total"], 102.0);
    let changed = w
        .admin(
            Method::PUT,
            &format!("{base}/fee/{fee}"),
            Some(json!({"amount": 3.0})),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(changed["total"], 103.0);
    w.admin(Method::DELETE, &format!("{base}/fee/{fee}"), None)
        .await
        .assert_status(200);
    w.admin(Method::DELETE, &format!("{base}/fee/{fee}"), None)
        .await
        .assert_error(404, "not_found");
    let after = w.admin(Method::GET, &base, None).await.json_value();
    let item_id = after["items"][0]["id"].as_str().unwrap().to_owned();
    let emptied = w
        .admin(Method::DELETE, &format!("{base}/item/{item_id}"), None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(emptied["subTotal"], 0.0);
    w.admin(Method::DELETE, &format!("{base}/item/{item_id}"), None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn shares_that_do_not_add_up_are_refused_and_sync_rebalances_them() {
    let w = world().await;
    let (id, p1, _) = w.scenario().await;
    let base = format!("/api/v1/contracts/{id}");
    w.admin(Method::POST, &format!("{base}/send"), None)
        .await
        .assert_status(200);
    w.top_up(&w.buyer_x.0, 100.0).await;
    w.top_up(&w.buyer_y.0, 100.0).await;
    // Y now owes 40 instead of 48.50: the dues add up to 100, not 108.50.
    w.admin(
        Method::PUT,
        &format!("{base}/buyer/{}/due", w.buyer_y.0),
        Some(json!({"due": 40.0})),
    )
    .await
    .assert_status(200);
    let refused = w
        .admin(Method::PUT, &format!("{base}/settle"), None)
        .await
        .assert_error(422, "shares_do_not_add_up");
    assert_eq!(refused.details[0].field, "buyers");
    // Nothing moved, and it was no payment attempt.
    assert_eq!(w.credits(&w.buyer_x.0).await, 100.0);
    assert_eq!(w.stock(&p1).await, 10);
    assert_eq!(w.transactions_of(&id).await, 0);
    let contract = w.admin(Method::GET, &base, None).await.json_value();
    assert_eq!(contract["lastPaymentAttempt"], Value::Null);

    // Sync rebalances in proportion (60:40 of 108.50 = 65.10 and 43.40) and stores it.
    let synced = w
        .admin(Method::GET, &format!("{base}/sync"), None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(synced["rebalanced"], true);
    assert_eq!(synced["payment"]["state"], "unpaid");
    assert_eq!(synced["buyers"][0]["due"], 65.1);
    assert_eq!(synced["buyers"][1]["due"], 43.4);

    // Three equal sellers of 100: one of them takes the rounding cent, and sync says who.
    w.admin(
        Method::POST,
        &format!("{base}/seller"),
        Some(json!({"user_id": w.stranger.0, "owed": 10.0})),
    )
    .await
    .assert_status(200);
    for seller in [&w.seller_a.0, &w.seller_b.0] {
        w.admin(
            Method::PUT,
            &format!("{base}/seller/{seller}/owed"),
            Some(json!({"owed": 10.0})),
        )
        .await
        .assert_status(200);
    }
    let synced = w
        .admin(Method::GET, &format!("{base}/sync"), None)
        .await
        .assert_status(200)
        .json_value();
    let owed: Vec<f64> = synced["sellers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["owed"].as_f64().unwrap())
        .collect();
    assert_eq!(owed, vec![33.34, 33.33, 33.33]);
    let rounding = synced["rounding"].as_array().unwrap();
    assert_eq!(rounding.len(), 1, "{synced}");
    assert!(
        rounding
            .iter()
            .all(|r| r["role"] == "seller" && r["amount"] == 0.01)
    );
    assert_eq!(rounding[0]["user_id"], w.seller_a.0.as_str());

    // Balanced now: it settles.
    w.admin(Method::PUT, &format!("{base}/settle"), None)
        .await
        .assert_status(200);
    assert_eq!(w.credits(&w.buyer_x.0).await, 34.9);
    assert_eq!(w.credits(&w.buyer_y.0).await, 56.6);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn a_buyer_short_of_credits_is_409_and_nothing_moves_until_the_retry() {
    let w = world().await;
    let (id, p1, p2) = w.scenario().await;
    let base = format!("/api/v1/contracts/{id}");
    w.admin(Method::POST, &format!("{base}/send"), None)
        .await
        .assert_status(200);
    w.top_up(&w.buyer_x.0, 100.0).await;
    w.top_up(&w.buyer_y.0, 10.0).await; // Y owes 48.50
    w.admin(Method::PUT, &format!("{base}/settle"), None)
        .await
        .assert_error(409, "insufficient_funds");
    assert_eq!(w.credits(&w.buyer_x.0).await, 100.0);
    assert_eq!(w.credits(&w.buyer_y.0).await, 10.0);
    assert_eq!(w.revenue(&w.seller_a.0).await, 0.0);
    assert_eq!((w.stock(&p1).await, w.stock(&p2).await), (10, 5));
    assert_eq!(w.transactions_of(&id).await, 0);
    let contract = w.admin(Method::GET, &base, None).await.json_value();
    assert_eq!(contract["status"], "open");
    assert!(contract["lastPaymentAttempt"].is_string());
    assert_eq!(contract["paid"], Value::Null);
    w.ledger_verifies().await;

    // Topped up, the retry settles.
    w.top_up(&w.buyer_y.0, 38.5).await;
    w.admin(Method::PUT, &format!("{base}/settle"), None)
        .await
        .assert_status(200);
    assert_eq!(w.credits(&w.buyer_y.0).await, 0.0);
    assert_eq!(w.stock(&p1).await, 8);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn too_little_stock_at_settlement_is_409_and_rolls_the_payment_back() {
    let w = world().await;
    let (id, p1, _) = w.scenario().await;
    let base = format!("/api/v1/contracts/{id}");
    w.admin(Method::POST, &format!("{base}/send"), None)
        .await
        .assert_status(200);
    w.top_up(&w.buyer_x.0, 100.0).await;
    w.top_up(&w.buyer_y.0, 100.0).await;
    // Sold elsewhere meanwhile: one left, the contract needs two.
    w.admin(
        Method::PUT,
        &format!("/api/v1/products/{p1}"),
        Some(json!({"quantity": 1})),
    )
    .await
    .assert_status(200);
    w.admin(Method::PUT, &format!("{base}/settle"), None)
        .await
        .assert_error(409, "insufficient_stock");
    assert_eq!(w.credits(&w.buyer_x.0).await, 100.0);
    assert_eq!(w.transactions_of(&id).await, 0);
    assert_eq!(w.stock(&p1).await, 1);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn concurrent_settles_of_one_contract_charge_once() {
    let w = world().await;
    let (id, p1, _) = w.scenario().await;
    let base = format!("/api/v1/contracts/{id}");
    w.admin(Method::POST, &format!("{base}/send"), None)
        .await
        .assert_status(200);
    w.top_up(&w.buyer_x.0, 500.0).await;
    w.top_up(&w.buyer_y.0, 500.0).await;
    // Without a key: exactly one succeeds, the others see it settled.
    let settle_path = format!("{base}/settle");
    let attempts = (0..12).map(|_| w.admin(Method::PUT, &settle_path, None));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(w.credits(&w.buyer_x.0).await, 440.0);
    assert_eq!(w.credits(&w.buyer_y.0).await, 451.5);
    assert_eq!(w.stock(&p1).await, 8);
    assert_eq!(w.transactions_of(&id).await, 6);

    // With one key: every retry answers 200, and money moves once.
    let (id2, _, _) = w.scenario().await;
    let path = format!("/api/v1/contracts/{id2}/settle");
    w.admin(Method::POST, &format!("/api/v1/contracts/{id2}/send"), None)
        .await
        .assert_status(200);
    let attempts = (0..12).map(|_| {
        let request = w
            .app
            .request(Method::PUT, &path)
            .bearer_auth(w.key())
            .header("Idempotency-Key", "pay-2");
        w.app.send(request)
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(w.credits(&w.buyer_x.0).await, 380.0);
    assert_eq!(w.transactions_of(&id2).await, 6);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn settle_racing_void_leaves_one_consistent_outcome() {
    let w = world().await;
    let (id, p1, _) = w.scenario().await;
    let base = format!("/api/v1/contracts/{id}");
    w.admin(Method::POST, &format!("{base}/send"), None)
        .await
        .assert_status(200);
    w.top_up(&w.buyer_x.0, 100.0).await;
    w.top_up(&w.buyer_y.0, 100.0).await;
    let (settle, void) = futures_util::future::join(
        w.admin(Method::PUT, &format!("{base}/settle"), None),
        w.admin(Method::DELETE, &base, None),
    )
    .await;
    let contract = w.admin(Method::GET, &base, None).await.json_value();
    match contract["status"].as_str().unwrap() {
        "settled" => {
            assert_eq!((settle.status.as_u16(), void.status.as_u16()), (200, 409));
            assert_eq!(w.credits(&w.buyer_x.0).await, 40.0);
            assert_eq!(w.stock(&p1).await, 8);
        }
        "void" => {
            assert_eq!((settle.status.as_u16(), void.status.as_u16()), (409, 204));
            assert_eq!(w.credits(&w.buyer_x.0).await, 100.0);
            assert_eq!(w.stock(&p1).await, 10);
            assert_eq!(w.transactions_of(&id).await, 0);
        }
        other => panic!("unexpected status {other}"),
    }
    w.ledger_verifies().await;
}

#[tokio::test]
async fn drafts_need_items_and_buyers_to_be_sent_and_void_is_final() {
    let w = world().await;
    let contract = w.create(json!({"due": "2030-01-01T00:00:00Z"})).await;
    assert_eq!(contract["due"], "2030-01-01T00:00:00Z");
    let base = format!("/api/v1/contracts/{}", contract["id"].as_str().unwrap());
    w.admin(Method::POST, &format!("{base}/send"), None)
        .await
        .assert_error(409, "contract_incomplete");
    w.admin(
        Method::POST,
        &format!("{base}/item"),
        Some(json!({"name": "Work", "unit_price": 10.0})),
    )
    .await
    .assert_status(200);
    w.admin(Method::POST, &format!("{base}/send"), None)
        .await
        .assert_error(409, "contract_incomplete");
    // The currency is fixed once there are items.
    w.admin(Method::PUT, &base, Some(json!({"currency": "eur"})))
        .await
        .assert_error(422, "validation_failed");
    let updated = w
        .admin(Method::PUT, &base, Some(json!({"notes": "net 30"})))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(updated["notes"], "net 30");
    w.admin(Method::DELETE, &base, None)
        .await
        .assert_status(204);
    w.admin(Method::DELETE, &base, None)
        .await
        .assert_status(204);
    let void = w
        .admin(Method::GET, &base, None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(void["status"], "void");
    w.admin(
        Method::POST,
        &format!("{base}/buyer"),
        Some(json!({"user_id": w.buyer_x.0})),
    )
    .await
    .assert_error(409, "contract_locked");
    w.admin(Method::PUT, &format!("{base}/settle"), None)
        .await
        .assert_error(409, "contract_locked");
    w.admin(
        Method::GET,
        "/api/v1/contracts/inv_01HZZ0J7N7P5B4K2V1Q9R8S6T5",
        None,
    )
    .await
    .assert_error(404, "not_found");
    w.admin(Method::GET, "/api/v1/contracts/not-an-id", None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn parties_read_their_contracts_strangers_and_other_tenants_do_not() {
    let w = world().await;
    let (id, _, _) = w.scenario().await;
    let base = format!("/api/v1/contracts/{id}");
    // No credentials.
    w.app.get(&base).await.assert_error(401, "unauthorized");
    w.app
        .get("/api/v1/contracts")
        .await
        .assert_error(401, "unauthorized");
    // Another tenant's key, and a stranger on this platform: not found.
    w.call(&w.other.api_keys.live, Method::GET, &base, None)
        .await
        .assert_error(404, "not_found");
    w.call(&w.stranger.1, Method::GET, &base, None)
        .await
        .assert_error(404, "not_found");
    w.call(
        &w.stranger.1,
        Method::PUT,
        &base,
        Some(json!({"notes": "mine"})),
    )
    .await
    .assert_error(404, "not_found");
    // The test key of the same platform is another mode: not found.
    w.call(&w.acme.api_keys.test, Method::GET, &base, None)
        .await
        .assert_error(404, "not_found");
    // Buyers and sellers read it, but only the creator or an admin changes it.
    for party in [&w.buyer_x.1, &w.seller_b.1] {
        w.call(party, Method::GET, &base, None)
            .await
            .assert_status(200);
        w.call(party, Method::GET, &format!("{base}/sync"), None)
            .await
            .assert_status(200);
        w.call(party, Method::PUT, &base, Some(json!({"notes": "mine"})))
            .await
            .assert_error(403, "not_contract_owner");
        w.call(party, Method::DELETE, &base, None)
            .await
            .assert_error(403, "not_contract_owner");
    }
    // Settling moves credits: admins only.
    w.call(&w.buyer_x.1, Method::PUT, &format!("{base}/settle"), None)
        .await
        .assert_error(403, "forbidden");

    // Lists: admins all; users their own.
    let all = w
        .admin(Method::GET, "/api/v1/contracts", None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        (
            all["total"].clone(),
            all["page"].clone(),
            all["page_size"].clone()
        ),
        (json!(1), json!(1), json!(20))
    );
    w.call(&w.buyer_x.1, Method::GET, "/api/v1/contracts", None)
        .await
        .assert_error(403, "forbidden");
    w.admin(Method::GET, "/api/v1/contracts?page_size=101", None)
        .await
        .assert_error(422, "validation_failed");
    let x_buys = w
        .call(
            &w.buyer_x.1,
            Method::GET,
            &format!("/api/v1/contracts/user/{}/buyer", w.buyer_x.0),
            None,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(x_buys["data"][0]["id"], id.as_str());
    let x_sells = w
        .admin(
            Method::GET,
            &format!("/api/v1/contracts/user/{}/seller", w.buyer_x.0),
            None,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(x_sells["total"], 0);
    let b_sells = w
        .admin(
            Method::GET,
            &format!("/api/v1/contracts/user/{}/seller", w.seller_b.0),
            None,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(b_sells["total"], 1);
    w.call(
        &w.stranger.1,
        Method::GET,
        &format!("/api/v1/contracts/user/{}/buyer", w.buyer_x.0),
        None,
    )
    .await
    .assert_error(403, "forbidden");
    let mine = w
        .call(&w.seller_a.1, Method::GET, "/api/v1/contracts/auth", None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(mine["total"], 1);
    let none = w
        .call(&w.stranger.1, Method::GET, "/api/v1/contracts/auth", None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(none["total"], 0);
    w.admin(Method::GET, "/api/v1/contracts/auth", None)
        .await
        .assert_error(403, "api_key_not_allowed");

    // A user creates in their own name and manages their contract; not in another's.
    w.call(
        &w.stranger.1,
        Method::POST,
        "/api/v1/contracts",
        Some(json!({"user_id": w.buyer_x.0})),
    )
    .await
    .assert_error(422, "validation_failed");
    let own = w
        .call(
            &w.stranger.1,
            Method::POST,
            "/api/v1/contracts",
            Some(json!({})),
        )
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(own["user_id"], w.stranger.0.as_str());
    w.call(
        &w.stranger.1,
        Method::POST,
        &format!("/api/v1/contracts/{}/item", own["id"].as_str().unwrap()),
        Some(json!({"name": "Consulting", "unit_price": 50.0})),
    )
    .await
    .assert_status(200);
    w.admin(
        Method::GET,
        &format!("/api/v1/contracts/{}", own["id"].as_str().unwrap()),
        None,
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn a_cart_becomes_a_contract_and_is_emptied() {
    let w = world().await;
    let lamp = w.product(&w.seller_a.0, "Lamp", 19.99, 10).await;
    let mug = w.product(&w.seller_b.0, "Mug", 5.01, 10).await;
    let shopper = &w.buyer_x.1;
    for (product, quantity) in [(&lamp, 2), (&mug, 1)] {
        w.call(
            shopper,
            Method::POST,
            &format!("/api/v1/carts/auth/product/{product}"),
            Some(json!({"quantity": quantity})),
        )
        .await
        .assert_status(200);
    }
    let cart = w
        .call(shopper, Method::GET, "/api/v1/carts/auth", None)
        .await
        .json_value();
    let cart_id = cart["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/contracts/cart/{cart_id}");
    // Someone else's cart is not found.
    w.call(&w.stranger.1, Method::POST, &path, None)
        .await
        .assert_error(404, "not_found");
    let contract = w
        .call(shopper, Method::POST, &path, None)
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(contract["subTotal"], 44.99);
    // Platform 1.12 and service 0.45 on top (included by default).
    assert_eq!(contract["total"], 46.56);
    assert_eq!(contract["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        contract["buyers"],
        json!([{"user_id": w.buyer_x.0, "due": 46.56}])
    );
    // The sellers get the whole subtotal, split by their lines: 39.98 and 5.01.
    assert_eq!(contract["net"], 44.99);
    assert_eq!(
        contract["sellers"],
        json!([{"user_id": w.seller_a.0, "owed": 39.98}, {"user_id": w.seller_b.0, "owed": 5.01}])
    );
    let emptied = w
        .call(shopper, Method::GET, "/api/v1/carts/auth", None)
        .await
        .json_value();
    assert_eq!(emptied["items"], json!([]));
    // An empty cart makes no contract.
    w.call(shopper, Method::POST, &path, None)
        .await
        .assert_error(409, "cart_empty");

    // The contract settles as built.
    let base = format!("/api/v1/contracts/{}", contract["id"].as_str().unwrap());
    w.admin(Method::POST, &format!("{base}/send"), None)
        .await
        .assert_status(200);
    w.top_up(&w.buyer_x.0, 50.0).await;
    w.admin(Method::PUT, &format!("{base}/settle"), None)
        .await
        .assert_status(200);
    assert_eq!(w.stock(&lamp).await, 8);
    assert_eq!(w.stock(&mug).await, 9);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn every_route_needs_credentials_and_hides_other_tenants_contracts() {
    let w = world().await;
    let (id, _, _) = w.scenario().await;
    let fee = w
        .admin(Method::GET, &format!("/api/v1/contracts/{id}"), None)
        .await
        .json_value()["fees"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let item = w
        .admin(Method::GET, &format!("/api/v1/contracts/{id}"), None)
        .await
        .json_value()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (x, a) = (&w.buyer_x.0, &w.seller_a.0);
    let base = format!("/api/v1/contracts/{id}");
    let on_contract = [
        (Method::GET, base.clone(), None),
        (Method::PUT, base.clone(), Some(json!({"notes": "n"}))),
        (Method::DELETE, base.clone(), None),
        (
            Method::POST,
            format!("{base}/item"),
            Some(json!({"name": "n", "unit_price": 1.0})),
        ),
        (Method::DELETE, format!("{base}/item/{item}"), None),
        (
            Method::POST,
            format!("{base}/buyer"),
            Some(json!({"user_id": w.stranger.0})),
        ),
        (
            Method::PUT,
            format!("{base}/buyer/{x}/due"),
            Some(json!({"due": 1.0})),
        ),
        (Method::DELETE, format!("{base}/buyer/{x}"), None),
        (
            Method::POST,
            format!("{base}/seller"),
            Some(json!({"user_id": w.stranger.0})),
        ),
        (
            Method::PUT,
            format!("{base}/seller/{a}/owed"),
            Some(json!({"owed": 1.0})),
        ),
        (Method::DELETE, format!("{base}/seller/{a}"), None),
        (
            Method::POST,
            format!("{base}/fee"),
            Some(json!({"name": "n", "amount": 1.0})),
        ),
        (
            Method::PUT,
            format!("{base}/fee/{fee}"),
            Some(json!({"amount": 1.0})),
        ),
        (Method::DELETE, format!("{base}/fee/{fee}"), None),
        (
            Method::PUT,
            format!("{base}/fee_inclusion"),
            Some(json!({"includeCandleFees": false})),
        ),
        (Method::POST, format!("{base}/send"), None),
        (Method::GET, format!("{base}/sync"), None),
    ];
    for (method, path, body) in on_contract.iter().cloned() {
        let mut request = w.app.request(method.clone(), &path);
        if let Some(body) = &body {
            request = request.json(body);
        }
        w.app.send(request).await.assert_error(401, "unauthorized");
        // Another platform's key sees nothing of it.
        w.call(&w.other.api_keys.live, method, &path, body)
            .await
            .assert_error(404, "not_found");
    }
    for (method, path) in [
        (Method::GET, "/api/v1/contracts".to_owned()),
        (Method::POST, "/api/v1/contracts".to_owned()),
        (Method::GET, "/api/v1/contracts/auth".to_owned()),
        (Method::GET, format!("/api/v1/contracts/user/{x}/buyer")),
        (Method::GET, format!("/api/v1/contracts/user/{x}/seller")),
        (
            Method::POST,
            "/api/v1/contracts/cart/cart_01HZZ0J7N7P5B4K2V1Q9R8S6T5".to_owned(),
        ),
        (Method::PUT, format!("{base}/settle")),
    ] {
        w.app
            .send(w.app.request(method, &path))
            .await
            .assert_error(401, "unauthorized");
    }
    // The other platform's admin settles nothing here.
    w.call(
        &w.other.api_keys.live,
        Method::PUT,
        &format!("{base}/settle"),
        None,
    )
    .await
    .assert_error(404, "not_found");
    let theirs = w
        .call(
            &w.other.api_keys.live,
            Method::GET,
            "/api/v1/contracts",
            None,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(theirs["total"], 0);
    // The contract is untouched by all of that.
    let contract = w.admin(Method::GET, &base, None).await.json_value();
    assert_eq!(
        (contract["status"].clone(), contract["total"].clone()),
        (json!("draft"), json!(108.5))
    );
}

#[tokio::test]
async fn buyers_and_sellers_are_removed_by_user_id() {
    let w = world().await;
    let (id, _, _) = w.scenario().await;
    let base = format!("/api/v1/contracts/{id}");
    let after = w
        .admin(
            Method::DELETE,
            &format!("{base}/buyer/{}", w.buyer_y.0),
            None,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        after["buyers"],
        json!([{"user_id": w.buyer_x.0, "due": 60.0}])
    );
    let after = w
        .admin(
            Method::DELETE,
            &format!("{base}/seller/{}", w.seller_b.0),
            None,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        after["sellers"],
        json!([{"user_id": w.seller_a.0, "owed": 60.0}])
    );
    // Y no longer reads it.
    w.call(&w.buyer_y.1, Method::GET, &base, None)
        .await
        .assert_error(404, "not_found");
    for path in [
        format!("{base}/buyer/{}", w.buyer_y.0),
        format!("{base}/seller/{}", w.seller_b.0),
        format!("{base}/buyer/not-a-user"),
    ] {
        w.admin(Method::DELETE, &path, None)
            .await
            .assert_error(404, "not_found");
    }
    w.admin(
        Method::PUT,
        &format!("{base}/seller/{}/owed", w.seller_b.0),
        Some(json!({"owed": 1.0})),
    )
    .await
    .assert_error(404, "not_found");
    w.admin(
        Method::POST,
        &format!("{base}/seller"),
        Some(json!({"user_id": w.seller_a.0})),
    )
    .await
    .assert_error(409, "already_seller");
}
