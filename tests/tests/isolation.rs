//! The tenant-isolation matrix, generated from the route table (`/openapi.json` of the
//! running server): platform A creates one of everything in live mode; then every
//! documented route that takes an id is called with A's ids and
//!
//! - platform B's API key and B's signed-in user (another tenant),
//! - A's test-mode key and A's test-mode user (the other mode),
//!
//! and must answer an error (401/403/404/405/409/422, never 2xx or 5xx) whose body holds
//! none of A's data. List routes without ids, called with B's credentials, must not return
//! any of A's ids or names either. Afterwards everything of A is still there.
//! A route added later joins the matrix by itself; one whose ids this test cannot supply
//! is listed, and the test fails so that its ids get added here.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use feria_testkit::{Method, TestApp};
use serde_json::{Value, json};

/// A's resources: path parameter values by (route prefix, parameter name), and the strings
/// that must never reach another tenant.
struct Fixture {
    ids: BTreeMap<&'static str, String>,
    markers: Vec<String>,
}

#[track_caller]
fn s(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

async fn fixture(app: &TestApp, platform: &str, key: &str, token: &str, user: &str) -> Fixture {
    let mut ids = BTreeMap::new();
    let send = |token: &str, method: Method, path: &str, body: Value| {
        let path = path.to_owned();
        let token = token.to_owned();
        async move { app.send_json_as(&token, method, &path, &body).await }
    };
    ids.insert("user", user.to_owned());
    ids.insert("platform", platform.to_owned());

    // A webhook endpoint first, so that the events below are delivered (and fail) to it.
    let endpoint = send(
        key,
        Method::POST,
        "/api/v1/webhook_endpoints",
        json!({"url": "http://127.0.0.1:9/alpha-hook", "enabled_events": ["*"],
               "description": "Alpha hook"}),
    )
    .await
    .assert_status(201)
    .json_value();
    let endpoint_id = s(&endpoint["id"]);
    ids.insert("webhook_endpoint", endpoint_id.clone());

    let product = send(
        key,
        Method::POST,
        "/api/v1/products",
        json!({"user_id": user, "name": "Alpha lamp", "description": "Alpha's secret lamp",
               "quantity": 10, "category": "Alphahome", "price": 10.0}),
    )
    .await
    .assert_status(201)
    .json_value();
    let product_id = s(&product["id"]);
    send(
        key,
        Method::POST,
        &format!("/api/v1/products/{product_id}/prices"),
        json!({"name": "Alpha summer", "price": 8.0, "start": "2030-06-01T00:00:00Z",
               "end": "2030-09-01T00:00:00Z"}),
    )
    .await
    .assert_status(201);
    let prices = app
        .get_as(key, &format!("/api/v1/products/{product_id}/prices"))
        .await
        .assert_status(200)
        .json_value();
    let price_id = s(&prices["data"][0]["id"]);
    ids.insert("product", product_id.clone());
    ids.insert("price", price_id);

    let cart = send(
        token,
        Method::POST,
        &format!("/api/v1/carts/auth/product/{product_id}"),
        json!({}),
    )
    .await
    .assert_status(200)
    .json_value();
    ids.insert("cart", s(&cart["id"]));
    ids.insert("cart_item", s(&cart["items"][0]["id"]));

    let contract = send(
        key,
        Method::POST,
        &format!("/api/v1/contracts/cart/{}", s(&cart["id"])),
        json!({}),
    )
    .await
    .assert_status(201)
    .json_value();
    let contract_id = s(&contract["id"]);
    let contract = send(
        key,
        Method::POST,
        &format!("/api/v1/contracts/{contract_id}/fee"),
        json!({"name": "Alpha shipping", "amount": 1.0}),
    )
    .await
    .assert_status(200)
    .json_value();
    ids.insert("contract", contract_id.clone());
    ids.insert("contract_item", s(&contract["items"][0]["id"]));
    // Buyers and sellers are named by their user ids (the cart's owner and the product's).
    assert_eq!(contract["buyers"][0]["user_id"], user);
    assert_eq!(contract["sellers"][0]["user_id"], user);
    ids.insert("buyer", user.to_owned());
    ids.insert("seller", user.to_owned());
    ids.insert("fee", s(&contract["fees"][0]["id"]));

    let entry = send(
        key,
        Method::POST,
        "/api/v1/waitlists",
        json!({"email": "alpha-waiting@a.example", "name": "Alpha Waiting"}),
    )
    .await
    .assert_status(201)
    .json_value();
    ids.insert("waitlist", s(&entry["id"]));

    let credits = send(
        key,
        Method::POST,
        &format!("/api/v1/users/{user}/credits"),
        json!({"amount": 50, "currency": "usd"}),
    )
    .await
    .assert_status(201)
    .json_value();
    ids.insert("transaction", s(&credits["transaction"]["id"]));
    // Rebalanced for the fee, sent, and subscribed to by its buyer: a subscription to
    // reach too.
    app.get_as(key, &format!("/api/v1/contracts/{contract_id}/sync"))
        .await
        .assert_status(200);
    send(
        key,
        Method::POST,
        &format!("/api/v1/contracts/{contract_id}/send"),
        json!({}),
    )
    .await
    .assert_status(200);
    let subscription = send(
        token,
        Method::POST,
        &format!("/api/v1/subscriptions/auth/contract/{contract_id}"),
        json!({"cycle": "monthly"}),
    )
    .await
    .assert_status(201)
    .json_value();
    ids.insert("subscription", s(&subscription["id"]));

    let character = send(
        token,
        Method::POST,
        "/api/v1/characters",
        json!({"name": "Alpha Mila", "niche": "wellness", "description": "Alpha's coach."}),
    )
    .await
    .assert_status(201)
    .json_value()["character"]
        .clone();
    ids.insert("character", s(&character["id"]));
    ids.insert("workspace", s(&character["workspace_id"]));
    let listing = send(
        token,
        Method::POST,
        "/api/v1/marketplace/listings",
        json!({"character_id": character["id"], "price": 5, "currency": "USD",
               "license_type": "commercial", "status": "active",
               "description": "Alpha's template listing for the isolation matrix."}),
    )
    .await
    .assert_status(201)
    .json_value()["listing"]
        .clone();
    ids.insert("listing", s(&listing["id"]));

    let offer = send(
        key,
        Method::POST,
        "/api/v1/marketplace/offers",
        json!({"offer_id": "alpha.private.offer", "issuer_id": "alpha", "title": "Alpha offer",
               "summary": "Alpha only.",
               "pricing": {"currency": "USDC", "amount_atomic": "1000000", "decimals": 6, "chain_id": 8453},
               "policies": {"member_only": false, "workspace_bound": false, "transferable": false}}),
    )
    .await
    .assert_status(201);
    drop(offer);
    ids.insert("offer", "alpha.private.offer".to_owned());

    let event = send(
        token,
        Method::POST,
        "/api/v1/calendars/auth/event",
        json!({"title": "Alpha meeting", "start": "2030-03-09T14:00:00Z",
               "end": "2030-03-09T15:00:00Z"}),
    )
    .await
    .assert_status(201)
    .json_value();
    ids.insert("event", s(&event["id"]));
    let with_link = send(
        token,
        Method::POST,
        "/api/v1/users/auth/link",
        json!({"url": "https://alpha.example.com", "title": "Alpha site"}),
    )
    .await
    .assert_status(201)
    .json_value();
    ids.insert("link", s(&with_link["links"][0]["id"]));
    let method = send(
        token,
        Method::POST,
        "/api/v1/users/auth/payment_methods",
        json!({"providerRef": "pm_alpha", "brand": "visa", "last4": "4242", "expMonth": 12,
               "expYear": 2030, "makeDefault": true}),
    )
    .await
    .assert_status(201)
    .json_value();
    ids.insert("payment_method", s(&method["id"]));
    // An uploaded image, so that the image routes get a body A itself may send.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(feria_testkit::PNG_1X1.to_vec())
            .file_name("alpha.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let media = app
        .send(
            app.request(Method::POST, "/api/v1/utils/media/upload")
                .bearer_auth(token)
                .multipart(form),
        )
        .await
        .assert_status(201)
        .json_value();
    ids.insert("media", s(&media["id"]));

    let events = app
        .get_as(key, "/api/v1/events")
        .await
        .assert_status(200)
        .json_value();
    ids.insert("event", s(&events["data"][0]["id"]));
    // The worker fans the events out to the endpoint within a poll or two.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let delivery = loop {
        let deliveries = app
            .get_as(
                key,
                &format!("/api/v1/webhook_endpoints/{endpoint_id}/deliveries"),
            )
            .await
            .assert_status(200)
            .json_value();
        if let Some(id) = deliveries["data"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery: {deliveries}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    ids.insert("delivery", delivery);

    let markers = [
        "Alpha hook",
        "alpha-hook",
        "Alpha meeting",
        "alpha.example.com",
        "Alpha lamp",
        "Alpha summer",
        "Alpha shipping",
        "Alpha Waiting",
        "alpha-waiting@a.example",
        "Alpha Mila",
        "Alpha offer",
        "alpha.private.offer",
        "ana@a.example",
    ]
    .iter()
    .map(|m| (*m).to_owned())
    .chain(ids.values().cloned())
    .collect();
    Fixture { ids, markers }
}

/// The value of `{param}` in `path`, from A's fixture; None when the matrix has none.
fn param_value<'a>(fixture: &'a Fixture, path: &str, param: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    let resource = match param {
        "user_id" => "user",
        "product_id" => "product",
        "cart_id" => "cart",
        "cart_item_id" => "cart_item",
        "price_id" => "price",
        "item_id" => "contract_item",
        "buyer_id" => "buyer",
        "seller_id" => "seller",
        "fee_id" => "fee",
        "offer_id" => "offer",
        "contract_id" => "contract",
        "delivery_id" => "delivery",
        "event_id" => "event",
        "link_id" => "link",
        "payment_method_id" => "payment_method",
        "id" => match segments.as_slice() {
            ["products", ..] => "product",
            ["users", ..] => "user",
            ["contracts", ..] => "contract",
            ["characters", ..] => "character",
            ["marketplace", "listings", ..] | ["marketplace", ..] => "listing",
            ["waitlists", ..] => "waitlist",
            ["transactions", ..] => "transaction",
            ["workspaces", ..] => "workspace",
            ["platforms", ..] => "platform",
            ["subscriptions", ..] => "subscription",
            ["events", ..] => "event",
            ["webhook_endpoints", ..] => "webhook_endpoint",
            _ => return None,
        },
        _ => return None,
    };
    fixture.ids.get(resource).map(String::as_str)
}

/// `path` with each `{param}` filled with A's id for it; None when one is missing.
fn concrete_path(fixture: &Fixture, path: &str) -> Option<String> {
    let mut concrete = path.to_owned();
    for param in path.split('{').skip(1).filter_map(|p| p.split('}').next()) {
        let value = param_value(fixture, path, param)?;
        concrete = concrete.replace(&format!("{{{param}}}"), value);
    }
    Some(concrete)
}

/// A body each write route accepts from platform A's own credentials (so a stranger's
/// refusal cannot be a validation error); None for a route not listed yet.
fn valid_body(method: &str, path: &str, fixture: &Fixture) -> Option<Value> {
    let user = fixture.ids["user"].as_str();
    let body = match (method, path) {
        ("PUT", "/api/v1/calendars/auth/event/{event_id}") => json!({"title": "Renamed"}),
        ("POST", "/api/v1/carts/auth/product/{product_id}") => json!({"quantity": 1}),
        ("PUT", "/api/v1/characters/{id}") => json!({"name": "Renamed"}),
        ("PUT", "/api/v1/contracts/{id}") => json!({"notes": "changed"}),
        ("POST", "/api/v1/contracts/{id}/buyer") => json!({"user_id": user, "due": 1.0}),
        ("PUT", "/api/v1/contracts/{id}/buyer/{buyer_id}/due") => json!({"due": 1.0}),
        ("POST", "/api/v1/contracts/{id}/fee") => json!({"name": "Fee", "amount": 1.0}),
        ("PUT", "/api/v1/contracts/{id}/fee/{fee_id}") => json!({"amount": 2.0}),
        ("PUT", "/api/v1/contracts/{id}/fee_inclusion") => json!({"includeStripeFees": false}),
        ("POST", "/api/v1/contracts/{id}/item") => json!({"name": "Custom", "unit_price": 1.0}),
        ("POST", "/api/v1/contracts/{id}/seller") => json!({"user_id": user, "owed": 1.0}),
        ("PUT", "/api/v1/contracts/{id}/seller/{seller_id}/owed") => json!({"owed": 1.0}),
        ("PUT", "/api/v1/marketplace/listings/{id}") => json!({"price": 6}),
        ("PUT", "/api/v1/marketplace/offers/{offer_id}") => json!({
            "issuer_id": "beta", "title": "Taken over",
            "pricing": {"currency": "USDC", "amount_atomic": "1", "decimals": 6, "chain_id": 8453},
            "policies": {"member_only": false, "workspace_bound": false, "transferable": false}}),
        ("POST", "/api/v1/marketplace/{id}/reviews") => json!({"rating": 1, "text": "Bad."}),
        ("PUT", "/api/v1/platforms/{id}") => json!({"name": "Taken over"}),
        ("POST", "/api/v1/platforms/{id}/image") | ("POST", "/api/v1/users/{id}/image") => {
            json!({"media_id": fixture.ids["media"]})
        }
        ("PUT", "/api/v1/products/{id}") => json!({"name": "Renamed lamp"}),
        ("POST", "/api/v1/products/{id}/prices") => {
            json!({"name": "Winter", "price": 7.0, "start": "2031-01-01T00:00:00Z",
                   "end": "2031-02-01T00:00:00Z"})
        }
        ("PUT", "/api/v1/products/{id}/prices/usage") => json!({"useSeasonalPrices": false}),
        ("POST", "/api/v1/subscriptions/auth/contract/{contract_id}") => {
            json!({"cycle": "monthly"})
        }
        ("PUT", "/api/v1/subscriptions/{id}/pause") => json!({}),
        ("POST", "/api/v1/transactions/{id}/refund") => json!({"amount": 1}),
        ("PUT", "/api/v1/users/{id}") => json!({"firstName": "Renamed"}),
        ("POST", "/api/v1/users/{id}/credits") => json!({"amount": 1, "currency": "usd"}),
        ("POST", "/api/v1/users/{id}/link") => {
            json!({"title": "Site", "url": "https://example.com"})
        }
        ("PUT", "/api/v1/webhook_endpoints/{id}") => json!({"description": "changed"}),
        ("PUT", "/api/v1/workspaces/{id}") => json!({"character_limit": 3}),
        _ => return None,
    };
    Some(body)
}

/// Routes the matrix cannot give real ids, with where their tenancy is tested instead.
const NOT_IN_MATRIX: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/api/v1/marketplace/entitlements/{entitlement_id}/revoke",
        "an entitlement needs a payment on chain: tests/tests/onchain.rs revokes with another platform's key",
    ),
    (
        "GET",
        "/api/v1/marketplace/entitlements/{entitlement_id}/receipt",
        "an entitlement needs a payment on chain: tests/tests/onchain.rs asks for the receipt with another platform's key and the test mode's",
    ),
];

/// Routes whose 2xx answer to another tenant is their documented meaning, not a leak.
fn answers_strangers(method: &str, path: &str) -> bool {
    // "Is this user a member of the caller's platform?" → {"member": false}.
    (method, path) == ("GET", "/api/v1/platforms/community/user/{user_id}")
}

#[tokio::test]
async fn no_route_lets_another_tenant_or_the_other_mode_reach_a_platforms_data() {
    let app = TestApp::builder()
        .config(|c| {
            c.webhooks.allow_private_targets = true;
            c.webhooks.poll_interval = std::time::Duration::from_millis(50);
        })
        .spawn()
        .await;
    let a = app
        .create_platform("Alpha", "a.example.com", "owner@a.example")
        .await;
    let b = app
        .create_platform("Beta", "b.example.com", "owner@b.example")
        .await;
    let a_id = a.platform.id.as_str().to_owned();
    let b_id = b.platform.id.as_str().to_owned();
    let ana = app.sign_in(&a_id, "ana@a.example", "live").await;
    let ana_test = app.sign_in(&a_id, "ana@a.example", "test").await;
    let bob = app.sign_in(&b_id, "bob@b.example", "live").await;
    let fixture = fixture(
        &app,
        &a_id,
        &a.api_keys.live,
        &s(&ana["access_token"]),
        &s(&ana["user"]["id"]),
    )
    .await;

    // (who, scheme, token, same platform): the other mode of A legitimately knows A's
    // platform id and Ana's email (her test-mode account has the same one).
    let strangers = [
        (
            "platform B's key",
            "api_key",
            b.api_keys.live.clone(),
            false,
        ),
        (
            "platform B's user",
            "session",
            s(&bob["access_token"]),
            false,
        ),
        (
            "A's test-mode key",
            "api_key",
            a.api_keys.test.clone(),
            true,
        ),
        (
            "A's test-mode user",
            "session",
            s(&ana_test["access_token"]),
            true,
        ),
    ];
    let shared_across_modes = [a_id.clone(), "ana@a.example".to_owned()];

    let spec = app
        .get("/openapi.json")
        .await
        .assert_status(200)
        .json_value();
    let mut calls = 0;
    let mut unsupplied = Vec::new();
    let mut leaks = Vec::new();
    let mut unbodied = Vec::new();
    let mut own_writes = Vec::new();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, operation) in operations.as_object().unwrap() {
            let method_upper = method.to_ascii_uppercase();
            let schemes: Vec<String> = operation["security"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .flat_map(|req| req.as_object().unwrap().keys().cloned())
                        .collect()
                })
                .unwrap_or_default();
            if schemes.is_empty() {
                continue; // public by design (sign-in, domains, utils)
            }
            let takes_ids = path.contains('{');
            let Some(concrete) = concrete_path(&fixture, path) else {
                if !NOT_IN_MATRIX
                    .iter()
                    .any(|(m, p, _)| *m == method_upper && p == path)
                {
                    unsupplied.push(format!("{method_upper} {path}"));
                }
                continue;
            };
            // Routes without ids are only read: a write there acts on the caller's own
            // platform by construction.
            if !takes_ids && method_upper != "GET" {
                continue;
            }
            let method = Method::from_bytes(method_upper.as_bytes()).unwrap();
            for (who, scheme, token, same_platform) in &strangers {
                if !schemes.iter().any(|s| s == scheme) {
                    continue;
                }
                calls += 1;
                // A body the route accepts from A itself, so that a refusal is the
                // tenant check and not validation that runs before it.
                let has_body = operation.get("requestBody").is_some();
                let body = if has_body && method != Method::GET && method != Method::DELETE {
                    match valid_body(&method_upper, path, &fixture) {
                        Some(body) => body,
                        None => {
                            unbodied.push(format!("{method_upper} {path}"));
                            json!({})
                        }
                    }
                } else {
                    json!({})
                };
                if has_body && method != Method::GET && method != Method::DELETE {
                    own_writes.push((
                        method.clone(),
                        concrete.clone(),
                        body.clone(),
                        schemes.clone(),
                    ));
                }
                let response = if method == Method::GET || method == Method::DELETE {
                    app.send(app.request(method.clone(), &concrete).bearer_auth(token))
                        .await
                } else {
                    app.send_json_as(token, method.clone(), &concrete, &body)
                        .await
                };
                let status = response.status.as_u16();
                let text = response.text();
                let leaked: Vec<&String> = fixture
                    .markers
                    .iter()
                    .filter(|marker| {
                        text.contains(marker.as_str())
                            && !concrete.contains(marker.as_str())
                            && !(*same_platform && shared_across_modes.contains(marker))
                    })
                    .collect();
                // With a valid body, validation errors (400, 422) are no refusal: they
                // would hide a route that never looked at the tenant.
                let refused = matches!(status, 401 | 403 | 404 | 405 | 409)
                    || (method == Method::GET && matches!(status, 400 | 422));
                let allowed_success = (200..300).contains(&status)
                    && (!takes_ids || answers_strangers(&method_upper, path));
                if !(refused || allowed_success) || !leaked.is_empty() {
                    leaks.push(format!(
                        "{method_upper} {concrete} as {who}: {status} {leaked:?} {}",
                        text.chars().take(200).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(calls > 150, "the matrix made only {calls} calls");
    assert!(
        unsupplied.is_empty(),
        "routes the matrix has no ids for (add them to param_value): {unsupplied:#?}"
    );
    unbodied.dedup();
    assert!(
        unbodied.is_empty(),
        "write routes the matrix has no valid body for (add them to valid_body): {unbodied:#?}"
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );

    // Nothing of A was changed by the strangers' writes.
    let key = &a.api_keys.live;
    for path in [
        format!("/api/v1/products/{}", fixture.ids["product"]),
        format!("/api/v1/contracts/{}", fixture.ids["contract"]),
        format!("/api/v1/users/{}", fixture.ids["user"]),
        format!("/api/v1/transactions/{}", fixture.ids["transaction"]),
    ] {
        app.get_as(key, &path).await.assert_status(200);
    }
    let contract = app
        .get_as(
            key,
            &format!("/api/v1/contracts/{}", fixture.ids["contract"]),
        )
        .await
        .json_value();
    assert_eq!(contract["fees"].as_array().unwrap().len(), 1);
    assert_eq!(contract["items"].as_array().unwrap().len(), 1);
    let ana_token = s(&ana["access_token"]);
    app.get_as(
        &ana_token,
        &format!("/api/v1/characters/{}", fixture.ids["character"]),
    )
    .await
    .assert_status(200);
    app.get_as(
        &ana_token,
        &format!("/api/v1/marketplace/{}", fixture.ids["listing"]),
    )
    .await
    .assert_status(200);

    // Each body is valid: A's own credentials get past validation with it.
    own_writes.dedup_by(|a, b| a.1 == b.1 && a.0 == b.0);
    for (method, concrete, body, schemes) in &own_writes {
        let token = if schemes.iter().any(|s| s == "api_key") {
            a.api_keys.live.as_str()
        } else {
            ana_token.as_str()
        };
        let response = app
            .send_json_as(token, method.clone(), concrete, body)
            .await;
        let status = response.status.as_u16();
        // State may refuse A by now (its own earlier writes changed the shares, say);
        // the body itself must not be what is refused.
        let code = response.json_value()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            status != 400 && status < 500 && code != "validation_failed",
            "{method} {concrete} {body} as A: {status} {}",
            response.text()
        );
    }
}

/// The roles of a platform, least powerful first.
const ROLES: [&str; 4] = ["member", "editor", "admin", "owner"];

/// Routes a signed-in user may call on another member's resources only from this role up
/// (every other route on another member's resource refuses members, editors included, or
/// does not show it at all). Owners may do everything admins may.
const MIN_ROLE: &[(&str, &str, &str)] = &[
    // People and their money are the administrators'.
    ("GET", "/api/v1/users", "admin"),
    ("POST", "/api/v1/users", "admin"),
    ("GET", "/api/v1/users/{id}", "admin"),
    ("PUT", "/api/v1/users/{id}", "admin"),
    ("DELETE", "/api/v1/users/{id}", "admin"),
    ("POST", "/api/v1/users/{id}/link", "admin"),
    ("DELETE", "/api/v1/users/{id}/link/{link_id}", "admin"),
    ("POST", "/api/v1/users/{id}/image", "admin"),
    ("GET", "/api/v1/users/{id}/credits", "admin"),
    ("POST", "/api/v1/users/{id}/credits", "admin"),
    ("GET", "/api/v1/users/{id}/bank_account", "admin"),
    ("GET", "/api/v1/users/{id}/payment_methods", "admin"),
    (
        "DELETE",
        "/api/v1/users/{id}/payment_methods/{payment_method_id}",
        "admin",
    ),
    (
        "PUT",
        "/api/v1/users/{id}/payment_methods/{payment_method_id}/default",
        "admin",
    ),
    ("GET", "/api/v1/transactions", "admin"),
    ("POST", "/api/v1/transactions/{id}/refund", "admin"),
    ("GET", "/api/v1/transactions/metrics", "admin"),
    ("GET", "/api/v1/transactions/top/earners", "admin"),
    ("GET", "/api/v1/transactions/top/spenders", "admin"),
    ("GET", "/api/v1/contracts", "admin"),
    ("PUT", "/api/v1/contracts/{id}/settle", "admin"),
    ("GET", "/api/v1/waitlists", "admin"),
    // The platform's own settings.
    ("PUT", "/api/v1/platforms/{id}", "admin"),
    ("POST", "/api/v1/platforms/{id}/image", "admin"),
    // Catalog content: editors moderate every seller's products.
    ("PUT", "/api/v1/products/{id}", "editor"),
    ("DELETE", "/api/v1/products/{id}", "editor"),
    ("POST", "/api/v1/products/{id}/prices", "editor"),
    (
        "DELETE",
        "/api/v1/products/{id}/prices/{price_id}",
        "editor",
    ),
    ("PUT", "/api/v1/products/{id}/enable", "editor"),
    ("PUT", "/api/v1/products/{id}/disable", "editor"),
];

#[tokio::test]
async fn each_role_reaches_what_it_may_and_no_more() {
    let app = TestApp::builder()
        .config(|c| c.webhooks.allow_private_targets = true)
        .spawn()
        .await;
    let a = app
        .create_platform("Alpha", "a.example.com", "owner@a.example")
        .await;
    let a_id = a.platform.id.as_str().to_owned();
    let key = a.api_keys.live.clone();
    // Ana, a member, owns the resources everyone else then tries to reach.
    let ana = app.sign_in(&a_id, "ana@a.example", "live").await;
    let fixture = fixture(
        &app,
        &a_id,
        &key,
        &s(&ana["access_token"]),
        &s(&ana["user"]["id"]),
    )
    .await;
    for (email, role) in [("adam@a.example", "admin"), ("eddie@a.example", "editor")] {
        app.send_json_as(
            &key,
            Method::POST,
            "/api/v1/users",
            &json!({"email": email, "role": role}),
        )
        .await
        .assert_status(201);
    }
    let mut tokens = BTreeMap::new();
    for (role, email) in [
        ("member", "mia@a.example"),
        ("editor", "eddie@a.example"),
        ("admin", "adam@a.example"),
        ("owner", "owner@a.example"),
    ] {
        let session = app.sign_in(&a_id, email, "live").await;
        assert_eq!(session["user"]["role"], role, "{email}");
        tokens.insert(role, s(&session["access_token"]));
    }

    let spec = app
        .get("/openapi.json")
        .await
        .assert_status(200)
        .json_value();
    // status per (route, role); least powerful role first across all routes, so that a
    // change an admin makes cannot hide what a member would have reached.
    let mut seen: BTreeMap<(String, String), BTreeMap<&str, u16>> = BTreeMap::new();
    for role in ROLES {
        for (path, operations) in spec["paths"].as_object().unwrap() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            for (method, operation) in operations.as_object().unwrap() {
                let method_upper = method.to_ascii_uppercase();
                let for_sessions = operation["security"].as_array().is_some_and(|list| {
                    list.iter()
                        .any(|req| req.as_object().unwrap().contains_key("session"))
                });
                // Routes that end the caller's own session are tested where they live.
                let ends_session = matches!(
                    (method_upper.as_str(), path.as_str()),
                    ("DELETE", "/api/v1/users/auth") | ("POST", "/api/v1/auth/session/logout")
                );
                if !for_sessions || ends_session {
                    continue;
                }
                let Some(concrete) = concrete_path(&fixture, path) else {
                    continue; // the isolation matrix above lists these
                };
                let method = Method::from_bytes(method_upper.as_bytes()).unwrap();
                let token = &tokens[role];
                let response = match role_body(&method_upper, path) {
                    Some(body) => app.send_json_as(token, method, &concrete, &body).await,
                    None if method == Method::GET || method == Method::DELETE => {
                        app.send(app.request(method, &concrete).bearer_auth(token))
                            .await
                    }
                    None => app.send_json_as(token, method, &concrete, &json!({})).await,
                };
                seen.entry((method_upper, path.clone()))
                    .or_default()
                    .insert(role, response.status.as_u16());
            }
        }
    }

    let rank = |role: &str| ROLES.iter().position(|r| *r == role).unwrap();
    let mut wrong = Vec::new();
    for ((method, path), statuses) in &seen {
        let line = format!("{method} {path}: {statuses:?}");
        if statuses
            .values()
            .any(|status| *status >= 500 || *status == 401)
        {
            wrong.push(format!("{line} (a 5xx or a valid session refused)"));
            continue;
        }
        // A role that may do something never makes a more powerful role refused.
        for lower in ROLES {
            for higher in ROLES.iter().filter(|h| rank(h) > rank(lower)) {
                if statuses[higher] == 403 && statuses[lower] != 403 && statuses[lower] != 404 {
                    wrong.push(format!("{line} ({higher} refused where {lower} is not)"));
                }
            }
        }
        let minimum = MIN_ROLE
            .iter()
            .find(|(m, p, _)| m == method && p == path)
            .map(|(_, _, role)| *role);
        if let Some(minimum) = minimum {
            for role in ROLES {
                // Below: refused, or not shown at all. At or above: never refused for the
                // role (a 404 is allowed: a more powerful role may have deleted the thing
                // already, and some things do not exist, like Ana's bank account).
                let status = statuses[role];
                if rank(role) < rank(minimum) && !matches!(status, 403 | 404) {
                    wrong.push(format!("{line} ({role} below {minimum} not refused)"));
                }
                if rank(role) >= rank(minimum) && status == 403 {
                    wrong.push(format!("{line} ({role} at or above {minimum} refused)"));
                }
            }
        }
    }
    for (method, path, _) in MIN_ROLE {
        assert!(
            seen.contains_key(&(method.to_string(), path.to_string())),
            "{method} {path} is in MIN_ROLE but was not called"
        );
    }
    assert!(seen.len() > 100, "only {} routes called", seen.len());
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Owners only: making an owner, or changing an owner's role.
    let owner_id = {
        let me = app
            .get_as(&tokens["owner"], "/api/v1/users/auth")
            .await
            .assert_status(200)
            .json_value();
        s(&me["id"])
    };
    app.send_json_as(
        &tokens["admin"],
        Method::POST,
        "/api/v1/users",
        &json!({"email": "olga@a.example", "role": "owner"}),
    )
    .await
    .assert_error(403, "forbidden");
    app.send_json_as(
        &tokens["admin"],
        Method::PUT,
        &format!("/api/v1/users/{owner_id}"),
        &json!({"role": "member"}),
    )
    .await
    .assert_error(403, "forbidden");
    app.send_json_as(
        &tokens["owner"],
        Method::POST,
        "/api/v1/users",
        &json!({"email": "olga@a.example", "role": "owner"}),
    )
    .await
    .assert_status(201);
}

/// A valid body for routes whose body must parse before their role is checked, so that
/// the matrix sees the role check and not a validation error.
fn role_body(method: &str, path: &str) -> Option<Value> {
    let body = match (method, path) {
        ("POST", "/api/v1/users") => json!({"email": "newcomer@a.example"}),
        ("POST", "/api/v1/users/{id}/credits") => json!({"amount": 1, "currency": "usd"}),
        ("POST", "/api/v1/users/{id}/link") => {
            json!({"title": "Site", "url": "https://example.com"})
        }
        ("POST", "/api/v1/users/{id}/image") | ("POST", "/api/v1/platforms/{id}/image") => {
            json!({"media_id": "med_01M80000000000000000000000"})
        }
        ("PUT", "/api/v1/products/{id}") => json!({"name": "Renamed lamp"}),
        ("POST", "/api/v1/products/{id}/prices") => {
            json!({"name": "Winter", "price": 7.0, "start": "2031-01-01T00:00:00Z",
                   "end": "2031-02-01T00:00:00Z"})
        }
        ("POST", "/api/v1/transactions/{id}/refund") => json!({}),
        _ => return None,
    };
    Some(body)
}
