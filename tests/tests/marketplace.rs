//! The character-template marketplace through real HTTP, on either backend: the seed's
//! curl examples as written, validation, the five purchase failures, money through the
//! ledger, clones with provenance, idempotency, auth and tenancy, browse filters and
//! ranked search, dashboards, reviews, workspaces and characters, and purchases racing
//! each other.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_billing::ledger::{AccountKey, AccountKind};
use feria_kernel::money::Currency;
use feria_kernel::{Mode, Tenant};
use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse};
use serde_json::{Value, json};

struct User {
    token: String,
    id: String,
}

struct World {
    app: TestApp,
    acme: CreatedPlatform,
    other: CreatedPlatform,
    seller: User,
    buyer: User,
}

async fn sign_in(app: &TestApp, platform: &CreatedPlatform, email: &str, mode: &str) -> User {
    let session = app
        .sign_in(platform.platform.id.as_str(), email, mode)
        .await;
    User {
        token: session["access_token"].as_str().unwrap().to_owned(),
        id: session["user"]["id"].as_str().unwrap().to_owned(),
    }
}

async fn world_with(app: TestApp) -> World {
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    let seller = sign_in(&app, &acme, "seller@example.com", "live").await;
    let buyer = sign_in(&app, &acme, "buyer@example.com", "live").await;
    World {
        app,
        acme,
        other,
        seller,
        buyer,
    }
}

async fn world() -> World {
    world_with(TestApp::spawn().await).await
}

/// A server that lets many users sign in from one address, with two workers.
async fn busy_app() -> TestApp {
    TestApp::builder()
        .config(|c| {
            c.workers = Some(2);
            c.otp_requests_per_ip = 10_000;
        })
        .spawn()
        .await
}

fn seed_listing(character_id: &str) -> Value {
    json!({
        "character_id": character_id,
        "price": 250,
        "currency": "USD",
        "license_type": "commercial",
        "status": "active",
        "preview_images": [
            "https://cdn.example.com/listings/mila-preview-1.jpg"
        ],
        "description": "Premium fitness creator template with clean wellness positioning."
    })
}

impl World {
    fn key(&self) -> &str {
        &self.acme.api_keys.live
    }

    async fn send(&self, token: &str, method: Method, path: &str, body: &Value) -> TestResponse {
        self.app.send_json_as(token, method, path, body).await
    }

    async fn character_as(&self, token: &str, name: &str, niche: &str, description: &str) -> Value {
        self.send(
            token,
            Method::POST,
            "/api/v1/characters",
            &json!({"name": name, "niche": niche, "description": description,
                    "traits": ["upbeat", "disciplined"]}),
        )
        .await
        .assert_status(201)
        .json_value()["character"]
            .clone()
    }

    async fn character(&self, name: &str) -> Value {
        self.character_as(&self.seller.token, name, "wellness", "A character.")
            .await
    }

    async fn listing_as(&self, token: &str, body: Value) -> Value {
        self.send(token, Method::POST, "/api/v1/marketplace/listings", &body)
            .await
            .assert_status(201)
            .json_value()["listing"]
            .clone()
    }

    /// An active listing of a fresh character of the seller.
    async fn listing(&self, price: f64, license: &str) -> Value {
        let character = self.character("Mila").await;
        self.listing_as(
            &self.seller.token,
            json!({"character_id": character["id"], "price": price, "currency": "USD",
                   "license_type": license, "status": "active"}),
        )
        .await
    }

    async fn top_up_user(&self, user_id: &str, amount: f64) {
        self.send(
            self.key(),
            Method::POST,
            &format!("/api/v1/users/{user_id}/credits"),
            &json!({"amount": amount, "currency": "usd"}),
        )
        .await
        .assert_status(201);
    }

    /// The user's USD credits, in major units.
    async fn credits(&self, user_id: &str) -> f64 {
        let credits = self
            .app
            .get_as(self.key(), &format!("/api/v1/users/{user_id}/credits"))
            .await
            .assert_status(200)
            .json_value();
        credits["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["currency"] == "usd")
            .map(|b| b["amount"].as_f64().unwrap())
            .unwrap_or(0.0)
    }

    async fn purchase(&self, token: &str, listing: &Value) -> TestResponse {
        self.app
            .send(
                self.app
                    .request(
                        Method::POST,
                        &format!(
                            "/api/v1/marketplace/{}/purchase",
                            listing["id"].as_str().unwrap()
                        ),
                    )
                    .bearer_auth(token),
            )
            .await
    }

    async fn purchase_with_key(&self, token: &str, listing: &Value, key: &str) -> TestResponse {
        self.app
            .send(
                self.app
                    .request(
                        Method::POST,
                        &format!(
                            "/api/v1/marketplace/{}/purchase",
                            listing["id"].as_str().unwrap()
                        ),
                    )
                    .bearer_auth(token)
                    .header("Idempotency-Key", key),
            )
            .await
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        self.app
            .get_as(token, path)
            .await
            .assert_status(200)
            .json_value()
    }

    async fn default_workspace(&self, token: &str) -> Value {
        let list = self.get(token, "/api/v1/workspaces").await;
        list["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["is_default"] == true)
            .unwrap()
            .clone()
    }

    async fn seller_receivable(&self) -> i64 {
        let mut conn = self.app.db().conn().await.unwrap();
        let tenant = Tenant::new(self.acme.platform.id.clone(), Mode::Live);
        feria_billing::ledger::balance(
            &mut conn,
            &tenant,
            &AccountKey::new(
                AccountKind::SellerReceivable,
                self.seller.id.clone(),
                Currency::USD,
            ),
        )
        .await
        .unwrap()
        .minor()
    }

    async fn assert_ledger_ok(&self) {
        let mut conn = self.app.db().conn().await.unwrap();
        let verification = feria_billing::ledger::verify(&mut conn).await.unwrap();
        assert!(verification.is_ok(), "{verification:?}");
    }
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

fn field_of(response: &TestResponse) -> String {
    let body = response.assert_error(422, "validation_failed");
    body.details
        .first()
        .map(|d| d.field.clone())
        .unwrap_or_default()
}

// ---- the seed ------------------------------------------------------------------------

#[tokio::test]
async fn the_seed_examples_work_as_written() {
    let w = world().await;
    let character = w
        .character_as(
            &w.seller.token,
            "Mila",
            "Wellness",
            "A fitness creator with a calm voice.",
        )
        .await;
    assert!(character["id"].as_str().unwrap().starts_with("char_"));

    // Create a listing: the seed's body and its `{"listing": {...}}` answer.
    let created = w
        .send(
            &w.seller.token,
            Method::POST,
            "/api/v1/marketplace/listings",
            &seed_listing(character["id"].as_str().unwrap()),
        )
        .await
        .assert_status(201)
        .json_value();
    let listing = &created["listing"];
    assert!(listing["id"].as_str().unwrap().starts_with("mkt_"));
    assert_eq!(listing["character_id"], character["id"]);
    assert_eq!(listing["price"], json!(250.0));
    assert_eq!(listing["currency"], "USD");
    assert_eq!(listing["license_type"], "commercial");
    assert_eq!(listing["status"], "active");
    assert_eq!(listing["niche"], "wellness");
    assert_eq!(listing["title"], "Mila");
    assert_eq!(
        listing["preview_images"],
        json!(["https://cdn.example.com/listings/mila-preview-1.jpg"])
    );

    // Browse: the seed's query string.
    let found = w
        .get(
            &w.buyer.token,
            "/api/v1/marketplace?q=fitness&niche=wellness&min_price=100&max_price=500&page=1&page_size=10",
        )
        .await;
    assert_eq!(
        ids(&found, "listings"),
        vec![listing["id"].as_str().unwrap()]
    );
    assert_eq!(
        (
            found["page"].clone(),
            found["page_size"].clone(),
            found["total"].clone()
        ),
        (json!(1), json!(10), json!(1))
    );

    // Purchase: a POST without a body.
    w.top_up_user(&w.buyer.id, 300.0).await;
    let bought = w
        .purchase(&w.buyer.token, listing)
        .await
        .assert_status(201)
        .json_value();
    assert!(
        bought["purchase"]["id"]
            .as_str()
            .unwrap()
            .starts_with("pur_")
    );
    assert_eq!(bought["purchase"]["listing_id"], listing["id"]);
    assert_eq!(bought["character"]["name"], "Mila");

    // Dashboards.
    let mine = w
        .get(&w.seller.token, "/api/v1/marketplace/my-listings")
        .await;
    assert_eq!(mine["listings"][0]["id"], listing["id"]);
    assert_eq!(mine["listings"][0]["sales_count"], 1);
    let purchases = w
        .get(&w.buyer.token, "/api/v1/marketplace/my-purchases")
        .await;
    assert_eq!(purchases["purchases"][0]["listing_id"], listing["id"]);
    assert_eq!(
        purchases["purchases"][0]["character_id"],
        bought["character"]["id"]
    );
    assert_eq!(purchases["purchases"][0]["license_type"], "commercial");

    // The listing itself.
    let read = w
        .get(
            &w.buyer.token,
            &format!("/api/v1/marketplace/{}", listing["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(read["listing"]["id"], listing["id"]);
}

#[tokio::test]
async fn listing_validation_names_each_field() {
    let w = world().await;
    let character = w.character("Mila").await;
    let id = character["id"].as_str().unwrap();
    let theirs = w
        .character_as(&w.buyer.token, "Theirs", "travel", "Not the seller's.")
        .await;
    let with = |change: Value| {
        let mut body = seed_listing(id);
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    for (change, field) in [
        (json!({"character_id": null}), "character_id"),
        (
            json!({"character_id": "char_01HZX6FQJ5N6E7T2M3A4B5C6D7"}),
            "character_id",
        ),
        (json!({"character_id": theirs["id"]}), "character_id"),
        (
            json!({"character_id": "prod_01HZX6FQJ5N6E7T2M3A4B5C6D7"}),
            "character_id",
        ),
        (json!({"price": 0}), "price"),
        (json!({"price": -5}), "price"),
        (json!({"price": 1.001}), "price"),
        (json!({"price": "ten"}), "price"),
        (json!({"price": null}), "price"),
        (json!({"currency": "XYZ"}), "currency"),
        (json!({"currency": null}), "currency"),
        (json!({"license_type": "rental"}), "license_type"),
        (json!({"license_type": null}), "license_type"),
        (json!({"status": "sold"}), "status"),
        (json!({"preview_images": ["not a url"]}), "preview_images"),
        (json!({"title": ""}), "title"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let response = w
            .send(
                &w.seller.token,
                Method::POST,
                "/api/v1/marketplace/listings",
                &with(change.clone()),
            )
            .await;
        assert_eq!(field_of(&response), field, "{change}");
    }
    // Zero-decimal currencies allow whole units only; status defaults to draft.
    let yen = w
        .listing_as(
            &w.seller.token,
            json!({"character_id": id, "price": 1200, "currency": "jpy", "license_type": "personal"}),
        )
        .await;
    assert_eq!(
        (yen["currency"].clone(), yen["status"].clone()),
        (json!("JPY"), json!("draft"))
    );
    let response = w
        .send(
            &w.seller.token,
            Method::POST,
            "/api/v1/marketplace/listings",
            &json!({"character_id": id, "price": 12.5, "currency": "JPY", "license_type": "personal"}),
        )
        .await;
    assert_eq!(field_of(&response), "price");

    // Updates follow the same rules.
    let path = format!(
        "/api/v1/marketplace/listings/{}",
        yen["id"].as_str().unwrap()
    );
    for (body, field) in [
        (json!({"price": 0}), "price"),
        (json!({"status": "sold"}), "status"),
        (json!({"license_type": "rental"}), "license_type"),
        (json!({"currency": "EUR"}), "price"),
        (json!({"currency": "XYZ", "price": 3}), "currency"),
        (json!({"character_id": id}), "character_id"),
    ] {
        let response = w.send(&w.seller.token, Method::PUT, &path, &body).await;
        assert_eq!(field_of(&response), field, "{body}");
    }
    let changed = w
        .send(
            &w.seller.token,
            Method::PUT,
            &path,
            &json!({"currency": "EUR", "price": 9.99, "status": "active", "title": "Mila EU"}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(changed["listing"]["price"], json!(9.99));
    assert_eq!(changed["listing"]["currency"], "EUR");
    assert_eq!(changed["listing"]["title"], "Mila EU");

    // Someone else's listing: visible (active) but not theirs to change.
    w.send(&w.buyer.token, Method::PUT, &path, &json!({"price": 1}))
        .await
        .assert_error(403, "not_listing_owner");
    w.send(&w.buyer.token, Method::DELETE, &path, &json!({}))
        .await
        .assert_error(403, "not_listing_owner");
}

// ---- purchase ------------------------------------------------------------------------

#[tokio::test]
async fn a_purchase_charges_credits_pays_the_seller_less_the_fee_and_clones() {
    let w = world().await;
    // The platform takes 10 %.
    w.send(
        w.key(),
        Method::PUT,
        &format!("/api/v1/platforms/{}", w.acme.platform.id),
        &json!({"platformFee": 10}),
    )
    .await
    .assert_status(200);
    let character = w
        .send(
            &w.seller.token,
            Method::POST,
            "/api/v1/characters",
            &json!({"name": "Mila", "niche": "wellness", "description": "Calm coach.",
                    "avatar_url": "https://cdn.example.com/mila.png", "traits": ["calm", "precise"]}),
        )
        .await
        .assert_status(201)
        .json_value()["character"]
        .clone();
    let listing = w
        .listing_as(
            &w.seller.token,
            seed_listing(character["id"].as_str().unwrap()),
        )
        .await;
    w.top_up_user(&w.buyer.id, 300.0).await;

    let bought = w
        .purchase(&w.buyer.token, &listing)
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(w.credits(&w.buyer.id).await, 50.0);
    assert_eq!(w.seller_receivable().await, 22_500);
    w.assert_ledger_ok().await;

    // The clone: a deep copy in the buyer's default workspace, with provenance.
    let clone = &bought["character"];
    assert_ne!(clone["id"], character["id"]);
    assert_eq!(clone["owner_id"], w.buyer.id.as_str());
    for field in ["name", "niche", "description", "avatar_url", "traits"] {
        assert_eq!(clone[field], character[field], "{field}");
    }
    assert_eq!(
        clone["source"],
        json!({"listing_id": listing["id"], "seller_id": w.seller.id, "character_id": character["id"], "license_type": "commercial"})
    );
    let workspace = w.default_workspace(&w.buyer.token).await;
    assert_eq!(clone["workspace_id"], workspace["id"]);
    assert_eq!(workspace["character_count"], 1);
    let read = w
        .get(
            &w.buyer.token,
            &format!("/api/v1/characters/{}", clone["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(read["character"], *clone);

    // The seller's dashboard: sales, revenue and earnings after the fee.
    let mine = w
        .get(&w.seller.token, "/api/v1/marketplace/my-listings")
        .await;
    assert_eq!(mine["listings"][0]["sales_count"], 1);
    assert_eq!(mine["listings"][0]["revenue"], json!(250.0));
    assert_eq!(mine["listings"][0]["earnings"], json!(225.0));

    // The buyer's transactions show the charge.
    let purchases = w
        .get(&w.buyer.token, "/api/v1/marketplace/my-purchases")
        .await;
    assert_eq!(purchases["total"], 1);
    assert_eq!(purchases["purchases"][0]["price"], json!(250.0));

    // Archiving the listing keeps the purchase and the clone working.
    w.send(
        &w.seller.token,
        Method::DELETE,
        &format!(
            "/api/v1/marketplace/listings/{}",
            listing["id"].as_str().unwrap()
        ),
        &json!({}),
    )
    .await
    .assert_status(200);
    w.get(
        &w.buyer.token,
        &format!("/api/v1/characters/{}", clone["id"].as_str().unwrap()),
    )
    .await;
    let still = w
        .get(
            &w.buyer.token,
            &format!("/api/v1/marketplace/{}", listing["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(still["listing"]["status"], "archived");
    assert_eq!(
        w.get(&w.buyer.token, "/api/v1/marketplace/my-purchases")
            .await["total"],
        1
    );
    // A bought clone cannot be listed again.
    let response = w
        .send(
            &w.buyer.token,
            Method::POST,
            "/api/v1/marketplace/listings",
            &seed_listing(clone["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(field_of(&response), "character_id");
}

#[tokio::test]
async fn the_five_purchase_failures_each_have_their_code() {
    let w = world().await;
    let listing = w.listing(100.0, "commercial").await;
    w.top_up_user(&w.buyer.id, 1000.0).await;

    // 1. Your own listing.
    w.top_up_user(&w.seller.id, 1000.0).await;
    w.purchase(&w.seller.token, &listing)
        .await
        .assert_error(403, "own_listing");

    // 2. Not available: paused, archived, an exclusive license already sold.
    let paused = w.listing(10.0, "personal").await;
    let paused_path = format!(
        "/api/v1/marketplace/listings/{}",
        paused["id"].as_str().unwrap()
    );
    w.send(
        &w.seller.token,
        Method::PUT,
        &paused_path,
        &json!({"status": "paused"}),
    )
    .await
    .assert_status(200);
    w.purchase(&w.buyer.token, &paused)
        .await
        .assert_error(409, "listing_unavailable");
    w.send(&w.seller.token, Method::DELETE, &paused_path, &json!({}))
        .await
        .assert_status(200);
    w.purchase(&w.buyer.token, &paused)
        .await
        .assert_error(409, "listing_unavailable");
    let draft = w
        .listing_as(
            &w.seller.token,
            json!({"character_id": w.character("Draft").await["id"], "price": 5, "currency": "USD", "license_type": "personal"}),
        )
        .await;
    w.purchase(&w.buyer.token, &draft)
        .await
        .assert_error(409, "listing_unavailable");
    let exclusive = w.listing(50.0, "exclusive").await;
    let third = sign_in(&w.app, &w.acme, "third@example.com", "live").await;
    w.top_up_user(&third.id, 100.0).await;
    w.purchase(&third.token, &exclusive)
        .await
        .assert_status(201);
    w.purchase(&w.buyer.token, &exclusive)
        .await
        .assert_error(409, "listing_unavailable");

    // 3. Already purchased.
    w.purchase(&w.buyer.token, &listing)
        .await
        .assert_status(201);
    w.purchase(&w.buyer.token, &listing)
        .await
        .assert_error(409, "already_purchased");
    assert_eq!(w.credits(&w.buyer.id).await, 900.0);

    // 4. Not enough credits: nothing moves.
    let poor = sign_in(&w.app, &w.acme, "poor@example.com", "live").await;
    w.top_up_user(&poor.id, 99.99).await;
    w.purchase(&poor.token, &listing)
        .await
        .assert_error(409, "insufficient_funds");
    assert_eq!(w.credits(&poor.id).await, 99.99);
    assert_eq!(w.default_workspace(&poor.token).await["character_count"], 0);

    // 5. The workspace is at its limit (an admin set 1): the charge is rolled back.
    let another = w.listing(10.0, "personal").await;
    let workspace = w.default_workspace(&w.buyer.token).await;
    assert_eq!(workspace["character_limit"], 25);
    let workspace_path = format!("/api/v1/workspaces/{}", workspace["id"].as_str().unwrap());
    w.send(
        w.key(),
        Method::PUT,
        &workspace_path,
        &json!({"character_limit": 1}),
    )
    .await
    .assert_status(200);
    let before = w.credits(&w.buyer.id).await;
    let receivable = w.seller_receivable().await;
    w.purchase(&w.buyer.token, &another)
        .await
        .assert_error(409, "workspace_full");
    assert_eq!(w.credits(&w.buyer.id).await, before);
    assert_eq!(w.seller_receivable().await, receivable);
    assert_eq!(
        w.get(&w.buyer.token, "/api/v1/marketplace/my-purchases")
            .await["total"],
        1
    );
    // An admin raises this workspace's limit: now it fits.
    let raised = w
        .send(
            w.key(),
            Method::PUT,
            &workspace_path,
            &json!({"character_limit": 2}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(raised["workspace"]["character_limit"], 2);
    w.purchase(&w.buyer.token, &another)
        .await
        .assert_status(201);
    w.assert_ledger_ok().await;

    // Unknown and malformed ids.
    w.purchase(
        &w.buyer.token,
        &json!({"id": "mkt_01HZZ0J7N7P5B4K2V1Q9R8S6T5"}),
    )
    .await
    .assert_error(404, "not_found");
    w.purchase(&w.buyer.token, &json!({"id": "nope"}))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_purchase() {
    let w = world().await;
    let listing = w.listing(20.0, "personal").await;
    let other = w.listing(20.0, "personal").await;
    w.top_up_user(&w.buyer.id, 100.0).await;
    let first = w
        .purchase_with_key(&w.buyer.token, &listing, "buy-1")
        .await
        .assert_status(201)
        .json_value();
    let again = w
        .purchase_with_key(&w.buyer.token, &listing, "buy-1")
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(first, again);
    assert_eq!(w.credits(&w.buyer.id).await, 80.0);
    w.purchase_with_key(&w.buyer.token, &other, "buy-1")
        .await
        .assert_error(409, "idempotency_key_reused");
    // Without the key, a repeat is a second purchase attempt.
    w.purchase(&w.buyer.token, &listing)
        .await
        .assert_error(409, "already_purchased");
    w.purchase_with_key(&w.buyer.token, &listing, " ")
        .await
        .assert_error(400, "invalid_idempotency_key");
}

// ---- auth and tenancy ----------------------------------------------------------------

#[tokio::test]
async fn marketplace_routes_take_sessions_of_the_tenant_only() {
    let w = world().await;
    let listing = w.listing(10.0, "personal").await;
    let character = w.character("Solo").await;
    let id = listing["id"].as_str().unwrap();
    let routes = [
        (Method::GET, "/api/v1/marketplace".to_owned()),
        (Method::GET, format!("/api/v1/marketplace/{id}")),
        (Method::POST, format!("/api/v1/marketplace/{id}/purchase")),
        (Method::POST, "/api/v1/marketplace/listings".to_owned()),
        (Method::PUT, format!("/api/v1/marketplace/listings/{id}")),
        (Method::DELETE, format!("/api/v1/marketplace/listings/{id}")),
        (Method::GET, "/api/v1/marketplace/my-listings".to_owned()),
        (Method::GET, "/api/v1/marketplace/my-purchases".to_owned()),
        (Method::GET, format!("/api/v1/marketplace/{id}/reviews")),
        (Method::POST, format!("/api/v1/marketplace/{id}/reviews")),
        (Method::GET, "/api/v1/workspaces".to_owned()),
        (Method::GET, "/api/v1/characters".to_owned()),
        (Method::POST, "/api/v1/characters".to_owned()),
    ];
    let valid_body = |method: &Method, path: &str| -> Value {
        if path.ends_with("/listings") {
            seed_listing(character["id"].as_str().unwrap())
        } else if path.ends_with("/reviews") && *method == Method::POST {
            json!({"rating": 5, "text": "Great"})
        } else if path.ends_with("/characters") && *method == Method::POST {
            json!({"name": "K", "niche": "n", "description": ""})
        } else if *method == Method::PUT {
            json!({"price": 11})
        } else {
            json!({})
        }
    };
    for (method, path) in &routes {
        let body = valid_body(method, path);
        w.app
            .send(w.app.request(method.clone(), path).json(&body))
            .await
            .assert_error(401, "unauthorized");
        w.send(w.key(), method.clone(), path, &body)
            .await
            .assert_error(403, "api_key_not_allowed");
        w.send(&w.acme.api_keys.test, method.clone(), path, &body)
            .await
            .assert_error(403, "api_key_not_allowed");
    }

    // Another tenant, and the test mode of the same one, see nothing of it.
    let stranger = sign_in(&w.app, &w.other, "stranger@example.com", "live").await;
    let tester = sign_in(&w.app, &w.acme, "buyer@example.com", "test").await;
    for user in [&stranger, &tester] {
        w.app
            .get_as(&user.token, &format!("/api/v1/marketplace/{id}"))
            .await
            .assert_error(404, "not_found");
        w.purchase(&user.token, &listing)
            .await
            .assert_error(404, "not_found");
        w.send(
            &user.token,
            Method::PUT,
            &format!("/api/v1/marketplace/listings/{id}"),
            &json!({"price": 1}),
        )
        .await
        .assert_error(404, "not_found");
        w.app
            .get_as(
                &user.token,
                &format!("/api/v1/characters/{}", character["id"].as_str().unwrap()),
            )
            .await
            .assert_error(404, "not_found");
        let browse = w.get(&user.token, "/api/v1/marketplace").await;
        assert_eq!(browse["total"], 0);
        // Listing someone else's character is refused.
        let response = w
            .send(
                &user.token,
                Method::POST,
                "/api/v1/marketplace/listings",
                &seed_listing(character["id"].as_str().unwrap()),
            )
            .await;
        assert_eq!(field_of(&response), "character_id");
    }
    // Another user of the tenant does not see the seller's characters or drafts.
    w.app
        .get_as(
            &w.buyer.token,
            &format!("/api/v1/characters/{}", character["id"].as_str().unwrap()),
        )
        .await
        .assert_error(404, "not_found");
    let draft = w
        .listing_as(
            &w.seller.token,
            json!({"character_id": character["id"], "price": 5, "currency": "USD", "license_type": "personal"}),
        )
        .await;
    w.app
        .get_as(
            &w.buyer.token,
            &format!("/api/v1/marketplace/{}", draft["id"].as_str().unwrap()),
        )
        .await
        .assert_error(404, "not_found");
    w.get(
        &w.seller.token,
        &format!("/api/v1/marketplace/{}", draft["id"].as_str().unwrap()),
    )
    .await;
    // Only admins set a workspace's limit.
    let workspace = w.default_workspace(&w.buyer.token).await;
    w.send(
        &w.seller.token,
        Method::PUT,
        &format!("/api/v1/workspaces/{}", workspace["id"].as_str().unwrap()),
        &json!({"character_limit": 100}),
    )
    .await
    .assert_error(403, "forbidden");
    w.send(
        &w.other.api_keys.live,
        Method::PUT,
        &format!("/api/v1/workspaces/{}", workspace["id"].as_str().unwrap()),
        &json!({"character_limit": 100}),
    )
    .await
    .assert_error(404, "not_found");
}

// ---- browse --------------------------------------------------------------------------

#[tokio::test]
async fn browse_filters_pages_and_ranks_full_text() {
    let w = world().await;
    let mk = |name: &'static str,
              niche: &'static str,
              title: &'static str,
              description: &'static str,
              price: f64| {
        let w = &w;
        async move {
            let character = w.character_as(&w.seller.token, name, niche, "x").await;
            w.listing_as(
                &w.seller.token,
                json!({"character_id": character["id"], "price": price, "currency": "USD",
                       "license_type": "commercial", "status": "active",
                       "title": title, "description": description}),
            )
            .await
        }
    };
    let yoga_title = mk("Ana", "wellness", "Yoga teacher", "Morning routines", 100.0).await;
    let yoga_text = mk(
        "Bo",
        "wellness",
        "Calm guide",
        "Talks about yoga now and then",
        200.0,
    )
    .await;
    let chef = mk("Yogi", "food", "Street chef", "Spicy noodles", 300.0).await;
    let gamer = mk("Zed", "gaming", "Speedrunner", "Retro games", 400.0).await;
    // Not shown: drafts, paused, other currencies under a USD price filter.
    let character = w.character("Hidden").await;
    w.listing_as(
        &w.seller.token,
        json!({"character_id": character["id"], "price": 150, "currency": "USD", "license_type": "personal", "title": "Yoga draft"}),
    )
    .await;
    let euro = w
        .listing_as(
            &w.seller.token,
            json!({"character_id": character["id"], "price": 150, "currency": "EUR", "license_type": "personal", "status": "active"}),
        )
        .await;

    let browse = |query: &'static str| {
        let w = &w;
        async move {
            w.get(&w.buyer.token, &format!("/api/v1/marketplace{query}"))
                .await
        }
    };
    let all = browse("").await;
    assert_eq!(all["total"], 5);
    // Newest first without q.
    assert_eq!(
        ids(&all, "listings"),
        vec![
            euro["id"].as_str().unwrap(),
            gamer["id"].as_str().unwrap(),
            chef["id"].as_str().unwrap(),
            yoga_text["id"].as_str().unwrap(),
            yoga_title["id"].as_str().unwrap(),
        ]
    );
    // Ranked: a title match before a description match; the character's name counts.
    let yoga = browse("?q=yoga").await;
    assert_eq!(
        ids(&yoga, "listings")[..2],
        [
            yoga_title["id"].as_str().unwrap(),
            yoga_text["id"].as_str().unwrap()
        ]
    );
    assert_eq!(
        ids(&browse("?q=yogi").await, "listings"),
        vec![chef["id"].as_str().unwrap()]
    );
    assert_eq!(
        ids(&browse("?q=the%20noodles").await, "listings"),
        vec![chef["id"].as_str().unwrap()]
    );
    assert_eq!(browse("?q=noodles%20yoga").await["total"], 0);
    assert_eq!(browse("?q=%22%27%3B--").await["total"], 5);
    // Niche (any case), price bounds (USD unless told), currency.
    assert_eq!(browse("?niche=Wellness").await["total"], 3);
    let priced = browse("?min_price=150&max_price=350").await;
    assert_eq!(
        ids(&priced, "listings"),
        vec![
            chef["id"].as_str().unwrap(),
            yoga_text["id"].as_str().unwrap()
        ]
    );
    assert_eq!(
        ids(&browse("?currency=eur").await, "listings"),
        vec![euro["id"].as_str().unwrap()]
    );
    // Pages.
    let page = browse("?page=2&page_size=2").await;
    assert_eq!(
        (
            page["total"].clone(),
            page["listings"].as_array().unwrap().len()
        ),
        (json!(5), 2)
    );
    assert_eq!(browse("?page=9&page_size=2").await["total"], 5);
    // Invalid filters.
    for query in [
        "?min_price=abc",
        "?max_price=-1",
        "?min_price=5&max_price=1",
        "?currency=XYZ",
        "?rating=6",
        "?rating=x",
        "?page=0",
        "?page_size=101",
    ] {
        let response = w
            .app
            .get_as(&w.buyer.token, &format!("/api/v1/marketplace{query}"))
            .await;
        response.assert_error(422, "validation_failed");
    }
}

// ---- the search index ------------------------------------------------------------------
//
// One-word browse reads the crate's search index (`listing_search_terms`), not the
// full-text engine: these tests hold it to the engine's answers and follow it through
// every write that changes what a listing shows to search.

/// `GET /marketplace?q=<one word>...`'s ids and total.
async fn searched(w: &World, query: &str) -> (Vec<String>, Value) {
    let page = w
        .get(&w.buyer.token, &format!("/api/v1/marketplace{query}"))
        .await;
    (ids(&page, "listings"), page["total"].clone())
}

#[tokio::test]
async fn the_search_index_follows_creates_updates_archives_renames_and_sales() {
    let w = world().await;
    let active = |character: &Value, title: &str, price: f64, license: &str| {
        json!({"character_id": character["id"], "price": price, "currency": "USD",
               "license_type": license, "status": "active", "title": title,
               "description": "Keeps watch"})
    };
    let keeper = w.character_as(&w.seller.token, "Ada", "fantasy", "x").await;
    let a = w
        .listing_as(
            &w.seller.token,
            active(&keeper, "Lantern keeper", 100.0, "personal"),
        )
        .await;
    let a_id = a["id"].as_str().unwrap().to_owned();
    // A draft is not searchable until it becomes active.
    let other = w.character_as(&w.seller.token, "Bea", "fantasy", "x").await;
    let b = w
        .listing_as(
            &w.seller.token,
            json!({"character_id": other["id"], "price": 100, "currency": "USD",
                   "license_type": "personal", "title": "Lantern maker",
                   "description": "Keeps watch"}),
        )
        .await;
    let b_id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(
        searched(&w, "?q=lantern").await,
        (vec![a_id.clone()], json!(1))
    );
    let listing_path = |id: &str| format!("/api/v1/marketplace/listings/{id}");
    let put = |id: String, body: Value| {
        let w = &w;
        let path = listing_path(&id);
        async move {
            w.send(&w.seller.token, Method::PUT, &path, &body)
                .await
                .assert_status(200);
        }
    };
    put(b_id.clone(), json!({"status": "active"})).await;
    let (found, total) = searched(&w, "?q=lanterns").await;
    assert_eq!(total, 2);
    assert!(found.contains(&a_id) && found.contains(&b_id));

    // Text, niche and price changes move the listing in the index.
    put(a_id.clone(), json!({"title": "Compass keeper"})).await;
    assert_eq!(
        searched(&w, "?q=lantern").await,
        (vec![b_id.clone()], json!(1))
    );
    assert_eq!(
        searched(&w, "?q=compass").await,
        (vec![a_id.clone()], json!(1))
    );
    put(a_id.clone(), json!({"niche": "Nautical"})).await;
    assert_eq!(searched(&w, "?q=compass&niche=fantasy").await.1, 0);
    assert_eq!(
        searched(&w, "?q=compass&niche=nautical").await,
        (vec![a_id.clone()], json!(1))
    );
    put(a_id.clone(), json!({"price": 300})).await;
    assert_eq!(searched(&w, "?q=compass&max_price=150").await.1, 0);
    assert_eq!(
        searched(&w, "?q=compass&min_price=250&max_price=350").await,
        (vec![a_id.clone()], json!(1))
    );
    put(a_id.clone(), json!({"currency": "EUR", "price": 20})).await;
    assert_eq!(searched(&w, "?q=compass&max_price=400").await.1, 0);
    assert_eq!(
        searched(&w, "?q=compass&currency=eur").await,
        (vec![a_id.clone()], json!(1))
    );
    // Paused and archived listings leave search; the other one stays.
    put(b_id.clone(), json!({"status": "paused"})).await;
    assert_eq!(searched(&w, "?q=lantern").await.1, 0);
    w.send(
        &w.seller.token,
        Method::DELETE,
        &listing_path(&a_id),
        &json!({}),
    )
    .await
    .assert_status(200);
    assert_eq!(searched(&w, "?q=compass&currency=eur").await.1, 0);
    assert_eq!(searched(&w, "?q=keeper").await.1, 0);

    // Renaming a character renames its listings in search.
    let named = w
        .character_as(&w.seller.token, "Mirabel", "fantasy", "x")
        .await;
    let c = w
        .listing_as(
            &w.seller.token,
            active(&named, "Plain title", 50.0, "personal"),
        )
        .await;
    let c_id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(
        searched(&w, "?q=mirabel").await,
        (vec![c_id.clone()], json!(1))
    );
    w.send(
        &w.seller.token,
        Method::PUT,
        &format!("/api/v1/characters/{}", named["id"].as_str().unwrap()),
        &json!({"name": "Ophelia"}),
    )
    .await
    .assert_status(200);
    assert_eq!(searched(&w, "?q=mirabel").await.1, 0);
    assert_eq!(
        searched(&w, "?q=ophelia").await,
        (vec![c_id.clone()], json!(1))
    );

    // An exclusive license leaves search when it sells; another license stays.
    let unique = w.character_as(&w.seller.token, "Uma", "fantasy", "x").await;
    let e = w
        .listing_as(
            &w.seller.token,
            active(&unique, "Beacon unique", 10.0, "exclusive"),
        )
        .await;
    let shared = w.character_as(&w.seller.token, "Sol", "fantasy", "x").await;
    let s = w
        .listing_as(
            &w.seller.token,
            active(&shared, "Beacon shared", 10.0, "personal"),
        )
        .await;
    assert_eq!(searched(&w, "?q=beacon").await.1, 2);
    w.top_up_user(&w.buyer.id, 100.0).await;
    w.purchase(&w.buyer.token, &e).await.assert_status(201);
    w.purchase(&w.buyer.token, &s).await.assert_status(201);
    assert_eq!(
        searched(&w, "?q=beacon").await,
        (vec![s["id"].as_str().unwrap().to_owned()], json!(1))
    );
}

#[tokio::test]
async fn one_word_browse_agrees_with_the_full_text_engine() {
    use feria_template_marketplace::listing::{self, ListingFilter};
    let w = world().await;
    // 24 listings (a workspace holds 25) over three niches and prices 10..=240, titles and
    // descriptions of the same length (so SQLite's fixed-length bm25 and FTS5's agree on
    // order), words repeated in different fields so ranks differ and tie.
    let words = ["amber", "birch", "cedar", "delta"];
    let niches = ["fantasy", "scifi", "romance"];
    for i in 0..24usize {
        let niche = niches[i % 3];
        let name = format!("Char{i}");
        let character = w.character_as(&w.seller.token, &name, niche, "x").await;
        let title = format!("{} {}", words[i % 4], words[(i / 4) % 4]);
        let description = format!(
            "{} {} {}",
            words[(i / 2) % 4],
            words[(i / 3) % 4],
            words[i % 3]
        );
        w.listing_as(
            &w.seller.token,
            json!({"character_id": character["id"], "price": 10 * (i + 1), "currency": "USD",
                   "license_type": "personal", "status": "active", "title": title,
                   "description": description}),
        )
        .await;
    }
    let tenant = Tenant::new(w.acme.platform.id.clone(), Mode::Live);
    let mut conn = w.app.db().conn().await.unwrap();
    let mut compared = 0;
    for word in words.iter().chain(["char7", "fantasy", "nothing"].iter()) {
        for niche in [None, Some("scifi")] {
            for (min, max) in [(None, None), (Some("50"), Some("250"))] {
                for (page, size) in [(1, 20), (2, 5), (1, 3)] {
                    let filter = ListingFilter {
                        q: Some((*word).to_owned()),
                        niche: niche.map(str::to_owned),
                        min_price: min.map(str::to_owned),
                        max_price: max.map(str::to_owned),
                        ..Default::default()
                    };
                    let request = feria_kernel::PageRequest::new(page, size).unwrap();
                    let got = listing::browse(&mut conn, &tenant, &filter, request)
                        .await
                        .unwrap();
                    let want = listing::browse_full_text(&mut conn, &tenant, &filter, request)
                        .await
                        .unwrap();
                    let ids = |p: &listing::ListingPage| -> Vec<String> {
                        p.listings.iter().map(|l| l.id.to_string()).collect()
                    };
                    assert_eq!(
                        (ids(&got), got.total),
                        (ids(&want), want.total),
                        "q={word} niche={niche:?} price={min:?}..{max:?} page={page}/{size}"
                    );
                    compared += usize::from(!want.listings.is_empty());
                }
            }
        }
    }
    assert!(compared > 30, "only {compared} non-empty pages compared");
}

// ---- reviews -------------------------------------------------------------------------

#[tokio::test]
async fn buyers_review_once_and_ratings_filter_browse() {
    let w = world().await;
    let good = w.listing(10.0, "personal").await;
    let meh = w.listing(10.0, "personal").await;
    let path = |listing: &Value| {
        format!(
            "/api/v1/marketplace/{}/reviews",
            listing["id"].as_str().unwrap()
        )
    };
    // Only purchasers review.
    w.send(
        &w.buyer.token,
        Method::POST,
        &path(&good),
        &json!({"rating": 5, "text": "Great"}),
    )
    .await
    .assert_error(403, "not_a_purchaser");
    w.send(
        &w.seller.token,
        Method::POST,
        &path(&good),
        &json!({"rating": 5, "text": "Mine"}),
    )
    .await
    .assert_error(403, "not_a_purchaser");

    let second = sign_in(&w.app, &w.acme, "second@example.com", "live").await;
    for user in [&w.buyer, &second] {
        w.top_up_user(&user.id, 100.0).await;
        w.purchase(&user.token, &good).await.assert_status(201);
        w.purchase(&user.token, &meh).await.assert_status(201);
    }
    for (rating, field) in [
        (json!(0), "rating"),
        (json!(6), "rating"),
        (json!("5"), "rating"),
    ] {
        let response = w
            .send(
                &w.buyer.token,
                Method::POST,
                &path(&good),
                &json!({"rating": rating, "text": "x"}),
            )
            .await;
        assert_eq!(field_of(&response), field);
    }
    let review = w
        .send(
            &w.buyer.token,
            Method::POST,
            &path(&good),
            &json!({"rating": 5, "text": "Great"}),
        )
        .await
        .assert_status(201)
        .json_value();
    assert!(review["review"]["id"].as_str().unwrap().starts_with("rev_"));
    w.send(
        &w.buyer.token,
        Method::POST,
        &path(&good),
        &json!({"rating": 1, "text": "Changed my mind"}),
    )
    .await
    .assert_error(409, "already_reviewed");
    w.send(
        &second.token,
        Method::POST,
        &path(&good),
        &json!({"rating": 4, "text": "Good"}),
    )
    .await
    .assert_status(201);
    w.send(
        &w.buyer.token,
        Method::POST,
        &path(&meh),
        &json!({"rating": 2, "text": "Meh"}),
    )
    .await
    .assert_status(201);

    let reviews = w.get(&w.seller.token, &path(&good)).await;
    assert_eq!(reviews["total"], 2);
    assert_eq!(reviews["reviews"][0]["text"], "Good");
    let read = w
        .get(
            &w.buyer.token,
            &format!("/api/v1/marketplace/{}", good["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        (
            read["listing"]["rating"].clone(),
            read["listing"]["rating_count"].clone()
        ),
        (json!(4.5), json!(2))
    );

    let rated = |query: &'static str| {
        let w = &w;
        async move {
            w.get(&w.buyer.token, &format!("/api/v1/marketplace{query}"))
                .await
        }
    };
    assert_eq!(
        ids(&rated("?rating=4.5").await, "listings"),
        vec![good["id"].as_str().unwrap()]
    );
    assert_eq!(rated("?rating=2").await["total"], 2);
    assert_eq!(rated("?rating=4.6").await["total"], 0);
    assert_eq!(rated("").await["total"], 2);
}

// ---- workspaces and characters -------------------------------------------------------

#[tokio::test]
async fn workspaces_and_characters() {
    let app = TestApp::builder()
        .config(|c| c.workspace_character_limit = 2)
        .spawn()
        .await;
    let w = world_with(app).await;
    let workspaces = w.get(&w.seller.token, "/api/v1/workspaces").await;
    let list = workspaces["workspaces"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0]["id"].as_str().unwrap().starts_with("ws_"));
    assert_eq!(
        (
            list[0]["character_limit"].clone(),
            list[0]["character_count"].clone(),
            list[0]["is_default"].clone()
        ),
        (json!(2), json!(0), json!(true))
    );
    let ws = list[0]["id"].as_str().unwrap().to_owned();

    // Validation.
    for (body, field) in [
        (json!({"niche": "n", "description": ""}), "name"),
        (json!({"name": "", "niche": "n", "description": ""}), "name"),
        (json!({"name": "A", "description": ""}), "niche"),
        (json!({"name": "A", "niche": "n"}), "description"),
        (
            json!({"name": "A", "niche": "n", "description": "", "avatar_url": "nope"}),
            "avatar_url",
        ),
        (
            json!({"name": "A", "niche": "n", "description": "", "workspace_id": "ws_01HZX6FQJ5N6E7T2M3A4B5C6D7"}),
            "workspace_id",
        ),
        (
            json!({"name": "A", "niche": "n", "description": "", "traits": [""]}),
            "traits",
        ),
    ] {
        let response = w
            .send(&w.seller.token, Method::POST, "/api/v1/characters", &body)
            .await;
        assert_eq!(field_of(&response), field, "{body}");
    }
    // Another user's workspace is not one of yours.
    let theirs = w.default_workspace(&w.buyer.token).await;
    let response = w
        .send(
            &w.seller.token,
            Method::POST,
            "/api/v1/characters",
            &json!({"name": "A", "niche": "n", "description": "", "workspace_id": theirs["id"]}),
        )
        .await;
    assert_eq!(field_of(&response), "workspace_id");

    let first = w
        .send(
            &w.seller.token,
            Method::POST,
            "/api/v1/characters",
            &json!({"name": "Mila", "niche": "Wellness", "description": "Coach", "workspace_id": ws}),
        )
        .await
        .assert_status(201)
        .json_value()["character"]
        .clone();
    assert_eq!(first["niche"], "wellness");
    assert_eq!(first["source"], Value::Null);
    let second = w.character("Nora").await;
    w.send(
        &w.seller.token,
        Method::POST,
        "/api/v1/characters",
        &json!({"name": "Third", "niche": "n", "description": ""}),
    )
    .await
    .assert_error(409, "workspace_full");
    assert_eq!(
        w.default_workspace(&w.seller.token).await["character_count"],
        2
    );

    let listed = w
        .get(
            &w.seller.token,
            &format!("/api/v1/characters?workspace_id={ws}"),
        )
        .await;
    assert_eq!(
        ids(&listed, "characters"),
        vec![
            first["id"].as_str().unwrap(),
            second["id"].as_str().unwrap()
        ]
    );
    assert_eq!(
        w.get(&w.buyer.token, "/api/v1/characters").await["characters"],
        json!([])
    );
    w.app
        .get_as(
            &w.buyer.token,
            &format!("/api/v1/characters?workspace_id={ws}"),
        )
        .await
        .assert_error(404, "not_found");

    // Update: a new name reaches the listing's search.
    let listing = w
        .listing_as(
            &w.seller.token,
            json!({"character_id": first["id"], "price": 5, "currency": "USD", "license_type": "personal", "status": "active"}),
        )
        .await;
    let path = format!("/api/v1/characters/{}", first["id"].as_str().unwrap());
    let updated = w
        .send(
            &w.seller.token,
            Method::PUT,
            &path,
            &json!({"name": "Mirabel", "traits": ["bold"]}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(updated["character"]["name"], "Mirabel");
    assert_eq!(updated["character"]["traits"], json!(["bold"]));
    let found = w.get(&w.buyer.token, "/api/v1/marketplace?q=mirabel").await;
    assert_eq!(
        ids(&found, "listings"),
        vec![listing["id"].as_str().unwrap()]
    );
    let response = w
        .send(&w.seller.token, Method::PUT, &path, &json!({"name": ""}))
        .await;
    assert_eq!(field_of(&response), "name");

    // Delete: refused while listed, then frees the place.
    w.send(&w.seller.token, Method::DELETE, &path, &json!({}))
        .await
        .assert_error(409, "character_listed");
    w.send(
        &w.seller.token,
        Method::DELETE,
        &format!(
            "/api/v1/marketplace/listings/{}",
            listing["id"].as_str().unwrap()
        ),
        &json!({}),
    )
    .await
    .assert_status(200);
    w.send(&w.buyer.token, Method::DELETE, &path, &json!({}))
        .await
        .assert_error(404, "not_found");
    w.send(&w.seller.token, Method::DELETE, &path, &json!({}))
        .await
        .assert_status(204);
    w.app
        .get_as(&w.seller.token, &path)
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        w.default_workspace(&w.seller.token).await["character_count"],
        1
    );
    w.character("Third").await;

    // An admin's limit for one workspace, and back to the default.
    let set = |limit: Value| {
        let w = &w;
        let ws = ws.clone();
        async move {
            w.send(
                w.key(),
                Method::PUT,
                &format!("/api/v1/workspaces/{ws}"),
                &json!({"character_limit": limit}),
            )
            .await
        }
    };
    assert_eq!(field_of(&set(json!(-1)).await), "character_limit");
    set(json!(3)).await.assert_status(200);
    w.character("Fourth").await;
    let back = set(Value::Null).await.assert_status(200).json_value();
    assert_eq!(
        (
            back["workspace"]["character_limit"].clone(),
            back["workspace"]["character_count"].clone()
        ),
        (json!(2), json!(3))
    );
}

// ---- concurrency ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_purchases_by_one_buyer_buy_once() {
    let w = world_with(busy_app().await).await;
    let listing = w.listing(10.0, "commercial").await;
    w.top_up_user(&w.buyer.id, 1000.0).await;
    let attempts = (0..50).map(|_| w.purchase(&w.buyer.token, &listing));
    let mut bought = 0;
    for response in futures_util::future::join_all(attempts).await {
        if response.status.as_u16() == 201 {
            bought += 1;
        } else {
            response.assert_error(409, "already_purchased");
        }
    }
    assert_eq!(bought, 1);
    assert_eq!(w.credits(&w.buyer.id).await, 990.0);
    assert_eq!(
        w.default_workspace(&w.buyer.token).await["character_count"],
        1
    );
    assert_eq!(
        w.get(&w.seller.token, "/api/v1/marketplace/my-listings")
            .await["listings"][0]["sales_count"],
        1
    );
    w.assert_ledger_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_retries_with_one_idempotency_key_get_the_first_purchase() {
    let w = world_with(busy_app().await).await;
    let listing = w.listing(10.0, "commercial").await;
    w.top_up_user(&w.buyer.id, 100.0).await;
    let attempts = (0..20).map(|_| w.purchase_with_key(&w.buyer.token, &listing, "retry-me"));
    let bodies: Vec<Value> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|response| response.assert_status(201).json_value())
        .collect();
    assert!(bodies.iter().all(|body| *body == bodies[0]));
    assert_eq!(w.credits(&w.buyer.id).await, 90.0);
    assert_eq!(
        w.get(&w.buyer.token, "/api/v1/marketplace/my-purchases")
            .await["total"],
        1
    );
    w.assert_ledger_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_racing_with_short_credits_never_go_negative() {
    let w = world_with(busy_app().await).await;
    // Ten buyers of one listing; six can pay.
    let listing = w.listing(100.0, "personal").await;
    let mut buyers = Vec::new();
    for i in 0..10 {
        let buyer = sign_in(&w.app, &w.acme, &format!("racer{i}@example.com"), "live").await;
        w.top_up_user(&buyer.id, if i < 6 { 100.0 } else { 99.0 })
            .await;
        buyers.push(buyer);
    }
    let attempts = buyers.iter().map(|b| w.purchase(&b.token, &listing));
    let mut bought = 0;
    for response in futures_util::future::join_all(attempts).await {
        if response.status.as_u16() == 201 {
            bought += 1;
        } else {
            response.assert_error(409, "insufficient_funds");
        }
    }
    assert_eq!(bought, 6);
    for (i, buyer) in buyers.iter().enumerate() {
        assert_eq!(w.credits(&buyer.id).await, if i < 6 { 0.0 } else { 99.0 });
    }

    // One buyer, five listings at once, credits for two.
    let listings =
        futures_util::future::join_all((0..5).map(|_| w.listing(40.0, "personal"))).await;
    w.top_up_user(&w.buyer.id, 100.0).await;
    let attempts = listings.iter().map(|l| w.purchase(&w.buyer.token, l));
    let mut bought = 0;
    for response in futures_util::future::join_all(attempts).await {
        if response.status.as_u16() == 201 {
            bought += 1;
        } else {
            response.assert_error(409, "insufficient_funds");
        }
    }
    assert_eq!(bought, 2);
    assert_eq!(w.credits(&w.buyer.id).await, 20.0);
    assert_eq!(w.seller_receivable().await, 6 * 10_000 + 2 * 4_000);
    w.assert_ledger_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exclusive_listing_bought_by_twenty_at_once_has_one_owner() {
    let w = world_with(busy_app().await).await;
    let listing = w.listing(25.0, "exclusive").await;
    let mut buyers = Vec::new();
    for i in 0..20 {
        let buyer = sign_in(&w.app, &w.acme, &format!("fan{i}@example.com"), "live").await;
        w.top_up_user(&buyer.id, 25.0).await;
        buyers.push(buyer);
    }
    let attempts = buyers.iter().map(|b| w.purchase(&b.token, &listing));
    let mut owners = Vec::new();
    for (buyer, response) in buyers
        .iter()
        .zip(futures_util::future::join_all(attempts).await)
    {
        if response.status.as_u16() == 201 {
            owners.push(buyer.id.clone());
        } else {
            response.assert_error(409, "listing_unavailable");
        }
    }
    assert_eq!(owners.len(), 1);
    let mut paid = 0;
    for buyer in &buyers {
        let credits = w.credits(&buyer.id).await;
        if owners.contains(&buyer.id) {
            assert_eq!(credits, 0.0);
            paid += 1;
        } else {
            assert_eq!(credits, 25.0);
        }
    }
    assert_eq!(paid, 1);
    let mine = w
        .get(&w.seller.token, "/api/v1/marketplace/my-listings")
        .await;
    assert_eq!(mine["listings"][0]["sales_count"], 1);
    assert_eq!(mine["listings"][0]["available"], false);
    assert_eq!(
        w.get(&w.buyer.token, "/api/v1/marketplace").await["total"],
        0
    );
    w.assert_ledger_ok().await;
}
