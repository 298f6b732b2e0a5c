//! Carts through real HTTP: lines with snapshots and totals, adding to a line, price
//! changes shown rather than applied, conflicts, deleted products, removal, clearing,
//! sessions only, isolation, and concurrent adds.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse};
use serde_json::{Value, json};

struct World {
    app: TestApp,
    acme: CreatedPlatform,
    other: CreatedPlatform,
    seller_id: String,
    shopper: String,
    shopper_id: String,
}

async fn world_with(app: TestApp) -> World {
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    let seller = app
        .sign_in(acme.platform.id.as_str(), "seller@example.com", "live")
        .await;
    let shopper = app
        .sign_in(acme.platform.id.as_str(), "shopper@example.com", "live")
        .await;
    World {
        seller_id: seller["user"]["id"].as_str().unwrap().to_owned(),
        shopper: shopper["access_token"].as_str().unwrap().to_owned(),
        shopper_id: shopper["user"]["id"].as_str().unwrap().to_owned(),
        app,
        acme,
        other,
    }
}

async fn world() -> World {
    world_with(TestApp::spawn().await).await
}

impl World {
    fn key(&self) -> &str {
        &self.acme.api_keys.live
    }

    /// A product of the seller, created with the API key.
    async fn product(&self, body: Value) -> String {
        let mut body = body;
        body["user_id"] = json!(self.seller_id);
        let product = self
            .app
            .send_json_as(self.key(), Method::POST, "/api/v1/products", &body)
            .await
            .assert_status(201)
            .json_value();
        product["id"].as_str().unwrap().to_owned()
    }

    async fn add(&self, token: &str, product: &str, body: Option<Value>) -> TestResponse {
        let path = format!("/api/v1/carts/auth/product/{product}");
        let request = self.app.request(Method::POST, &path).bearer_auth(token);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        self.app.send(request).await
    }

    async fn cart(&self, token: &str) -> Value {
        self.app
            .get_as(token, "/api/v1/carts/auth")
            .await
            .assert_status(200)
            .json_value()
    }

    async fn delete(&self, token: &str, path: &str) -> TestResponse {
        self.app
            .send(self.app.request(Method::DELETE, path).bearer_auth(token))
            .await
    }
}

#[tokio::test]
async fn adding_builds_lines_with_snapshots_line_totals_and_a_subtotal() {
    let w = world().await;
    let empty = w.cart(&w.shopper).await;
    assert!(empty["id"].as_str().unwrap().starts_with("cart_"));
    assert_eq!(empty["platform_id"], w.acme.platform.id.as_str());
    assert_eq!(empty["user_id"], w.shopper_id.as_str());
    assert_eq!(empty["items"], json!([]));
    assert_eq!(empty["subtotal"], 0.0);
    assert_eq!(empty["currency"], Value::Null);

    let lamp = w
        .product(json!({"name": "Lamp", "price": 19.99, "quantity": 10}))
        .await;
    let mug = w
        .product(json!({"name": "Mug", "price": 4.5, "quantity": 10}))
        .await;

    // No body: one unit.
    let cart = w
        .add(&w.shopper, &lamp, None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(cart["id"], empty["id"]);
    let line = &cart["items"][0];
    assert!(line["id"].as_str().unwrap().starts_with("citem_"));
    assert_eq!(line["product_id"], lamp.as_str());
    assert_eq!(line["name"], "Lamp");
    assert_eq!(line["quantity"], 1);
    assert_eq!(line["unit_price"], 19.99);
    assert_eq!(line["line_total"], 19.99);
    assert_eq!(line["currency"], "usd");
    assert_eq!(line["current_unit_price"], 19.99);
    assert_eq!(line["price_changed"], false);
    assert_eq!(line["availability"], "available");

    // The same product again adds to its line.
    let cart = w
        .add(&w.shopper, &lamp, Some(json!({"quantity": 2})))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["items"][0]["quantity"], 3);
    assert_eq!(cart["items"][0]["line_total"], 59.97);
    assert_eq!(cart["items"][0]["id"], line["id"]);

    let cart = w
        .add(&w.shopper, &mug, Some(json!({})))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);
    assert_eq!(cart["items"][1]["name"], "Mug");
    assert_eq!(cart["subtotal"], 64.47);
    assert_eq!(cart["currency"], "usd");
    assert_eq!(w.cart(&w.shopper).await, cart);

    // Adding does not take stock.
    let product = w
        .app
        .get_as(w.key(), &format!("/api/v1/products/{lamp}"))
        .await
        .json_value();
    assert_eq!(product["quantity"], 10);
}

#[tokio::test]
async fn a_later_price_change_is_shown_not_applied() {
    let w = world().await;
    let lamp = w
        .product(json!({"name": "Lamp", "price": 20, "quantity": 10}))
        .await;
    w.add(&w.shopper, &lamp, Some(json!({"quantity": 2})))
        .await
        .assert_status(200);
    w.app
        .send_json_as(
            w.key(),
            Method::PUT,
            &format!("/api/v1/products/{lamp}"),
            &json!({"price": 25, "name": "Lamp XL"}),
        )
        .await
        .assert_status(200);
    let cart = w.cart(&w.shopper).await;
    let line = &cart["items"][0];
    assert_eq!(line["name"], "Lamp");
    assert_eq!(line["unit_price"], 20.0);
    assert_eq!(line["line_total"], 40.0);
    assert_eq!(line["current_unit_price"], 25.0);
    assert_eq!(line["price_changed"], true);
    assert_eq!(cart["subtotal"], 40.0);

    // Adding more keeps the line's snapshot.
    let cart = w
        .add(&w.shopper, &lamp, None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(cart["items"][0]["quantity"], 3);
    assert_eq!(cart["items"][0]["unit_price"], 20.0);
    assert_eq!(cart["subtotal"], 60.0);

    // A season in force is a price change too; a new line snapshots the price in force.
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let mug = w
        .product(json!({"name": "Mug", "price": 10, "quantity": 5, "useSeasonalPrices": true}))
        .await;
    w.app
        .send_json_as(
            w.key(),
            Method::POST,
            &format!("/api/v1/products/{mug}/prices"),
            &json!({"name": "Sale", "price": 8, "start": fmt(now - time::Duration::hours(1)), "end": fmt(now + time::Duration::days(1))}),
        )
        .await
        .assert_status(201);
    let cart = w
        .add(&w.shopper, &mug, None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(cart["items"][1]["unit_price"], 8.0);
    assert_eq!(cart["items"][1]["price_changed"], false);
    w.app
        .send_json_as(
            w.key(),
            Method::PUT,
            &format!("/api/v1/products/{mug}/prices/usage"),
            &json!({"useSeasonalPrices": false}),
        )
        .await
        .assert_status(200);
    let cart = w.cart(&w.shopper).await;
    assert_eq!(cart["items"][1]["unit_price"], 8.0);
    assert_eq!(cart["items"][1]["current_unit_price"], 10.0);
    assert_eq!(cart["items"][1]["price_changed"], true);
}

#[tokio::test]
async fn disabled_sold_out_short_and_foreign_currency_products_are_conflicts() {
    let w = world().await;
    let disabled = w
        .product(json!({"name": "Off", "price": 1, "quantity": 5, "isEnabled": false}))
        .await;
    let sold_out = w
        .product(json!({"name": "Gone", "price": 1, "quantity": 0}))
        .await;
    let few = w
        .product(json!({"name": "Few", "price": 1, "quantity": 2}))
        .await;
    let euro = w
        .product(json!({"name": "Euro", "price": 1, "quantity": 5, "currency": "eur"}))
        .await;

    w.add(&w.shopper, &disabled, None)
        .await
        .assert_error(409, "product_disabled");
    w.add(&w.shopper, &sold_out, None)
        .await
        .assert_error(409, "out_of_stock");
    w.add(&w.shopper, &few, Some(json!({"quantity": 3})))
        .await
        .assert_error(409, "insufficient_stock");
    w.add(&w.shopper, &few, Some(json!({"quantity": 2})))
        .await
        .assert_status(200);
    // The line would hold more than the stock.
    w.add(&w.shopper, &few, None)
        .await
        .assert_error(409, "insufficient_stock");
    w.add(&w.shopper, &euro, None)
        .await
        .assert_error(409, "currency_mismatch");

    for body in [
        json!({"quantity": 0}),
        json!({"quantity": 1001}),
        json!({"quantity": "two"}),
        json!({"qty": 1}),
    ] {
        w.add(&w.shopper, &few, Some(body))
            .await
            .assert_error(422, "validation_failed");
    }
    w.add(&w.shopper, "prod_01HZX6FQJ5N6E7T2M3A4B5C6D7", None)
        .await
        .assert_error(404, "not_found");
    w.add(&w.shopper, "nope", None)
        .await
        .assert_error(404, "not_found");
    // Another platform's product is not found.
    let stranger = w
        .app
        .send_json_as(
            &w.other.api_keys.live,
            Method::POST,
            "/api/v1/products",
            &json!({"name": "Far", "price": 1, "quantity": 1, "user_id": w.other.platform.admins[0]}),
        )
        .await
        .assert_status(201)
        .json_value();
    w.add(&w.shopper, stranger["id"].as_str().unwrap(), None)
        .await
        .assert_error(404, "not_found");

    // The cart still holds only the line that went in; a product disabled later shows
    // as such on its line.
    w.app
        .send(
            w.app
                .request(Method::PUT, &format!("/api/v1/products/{few}/disable"))
                .bearer_auth(w.key()),
        )
        .await
        .assert_status(200);
    let cart = w.cart(&w.shopper).await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["items"][0]["availability"], "disabled");
    w.app
        .send_json_as(
            w.key(),
            Method::PUT,
            &format!("/api/v1/products/{few}"),
            &json!({"isEnabled": true, "quantity": 1}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        w.cart(&w.shopper).await["items"][0]["availability"],
        "insufficient_stock"
    );
    w.app
        .send_json_as(
            w.key(),
            Method::PUT,
            &format!("/api/v1/products/{few}"),
            &json!({"quantity": 0}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        w.cart(&w.shopper).await["items"][0]["availability"],
        "out_of_stock"
    );
}

#[tokio::test]
async fn deleting_a_product_keeps_the_cart_snapshot() {
    let w = world().await;
    let lamp = w
        .product(json!({"name": "Lamp", "price": 12.5, "quantity": 4}))
        .await;
    let before = w
        .add(&w.shopper, &lamp, Some(json!({"quantity": 2})))
        .await
        .assert_status(200)
        .json_value();
    w.delete(w.key(), &format!("/api/v1/products/{lamp}"))
        .await
        .assert_status(200);
    let after = w.cart(&w.shopper).await;
    let line = &after["items"][0];
    assert_eq!(line["id"], before["items"][0]["id"]);
    assert_eq!(line["product_id"], lamp.as_str());
    assert_eq!(line["name"], "Lamp");
    assert_eq!(line["unit_price"], 12.5);
    assert_eq!(line["line_total"], 25.0);
    assert_eq!(line["current_unit_price"], Value::Null);
    assert_eq!(line["price_changed"], false);
    assert_eq!(line["availability"], "deleted");
    assert_eq!(after["subtotal"], 25.0);
    // It cannot be added again, but its line can be removed.
    w.add(&w.shopper, &lamp, None)
        .await
        .assert_error(404, "not_found");
    let item = line["id"].as_str().unwrap();
    let emptied = w
        .delete(&w.shopper, &format!("/api/v1/carts/auth/item/{item}"))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(emptied["items"], json!([]));
}

#[tokio::test]
async fn lines_are_removed_one_by_one_or_all_at_once_by_their_owner_only() {
    let w = world().await;
    let lamp = w
        .product(json!({"name": "Lamp", "price": 3, "quantity": 9}))
        .await;
    let mug = w
        .product(json!({"name": "Mug", "price": 2, "quantity": 9}))
        .await;
    w.add(&w.shopper, &lamp, None).await.assert_status(200);
    let cart = w
        .add(&w.shopper, &mug, None)
        .await
        .assert_status(200)
        .json_value();
    let lamp_line = cart["items"][0]["id"].as_str().unwrap().to_owned();

    // Someone else's cart has no such line.
    let neighbour = w
        .app
        .sign_in(w.acme.platform.id.as_str(), "neighbour@example.com", "live")
        .await;
    let neighbour = neighbour["access_token"].as_str().unwrap().to_owned();
    w.delete(&neighbour, &format!("/api/v1/carts/auth/item/{lamp_line}"))
        .await
        .assert_error(404, "not_found");
    w.add(&neighbour, &lamp, None).await.assert_status(200);
    assert_eq!(
        w.cart(&neighbour).await["items"].as_array().unwrap().len(),
        1
    );

    let cart = w
        .delete(&w.shopper, &format!("/api/v1/carts/auth/item/{lamp_line}"))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["items"][0]["name"], "Mug");
    assert_eq!(cart["subtotal"], 2.0);
    w.delete(&w.shopper, &format!("/api/v1/carts/auth/item/{lamp_line}"))
        .await
        .assert_error(404, "not_found");
    w.delete(&w.shopper, "/api/v1/carts/auth/item/nope")
        .await
        .assert_error(404, "not_found");

    let cleared = w
        .delete(&w.shopper, "/api/v1/carts/auth")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(cleared["items"], json!([]));
    assert_eq!(cleared["subtotal"], 0.0);
    assert_eq!(cleared["currency"], Value::Null);
    assert_eq!(cleared["id"], cart["id"]);
    // The neighbour's cart is untouched; an emptied cart takes another currency.
    assert_eq!(
        w.cart(&neighbour).await["items"].as_array().unwrap().len(),
        1
    );
    let euro = w
        .product(json!({"name": "Euro", "price": 1, "quantity": 5, "currency": "eur"}))
        .await;
    let cart = w
        .add(&w.shopper, &euro, None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(cart["currency"], "eur");
}

#[tokio::test]
async fn carts_take_a_session_of_the_products_platform_and_mode() {
    let w = world().await;
    let lamp = w
        .product(json!({"name": "Lamp", "price": 3, "quantity": 9}))
        .await;
    let add_path = format!("/api/v1/carts/auth/product/{lamp}");
    let item_path = "/api/v1/carts/auth/item/citem_01HZX6FQJ5N6E7T2M3A4B5C6D7";

    for (method, path) in [
        (Method::GET, "/api/v1/carts/auth"),
        (Method::DELETE, "/api/v1/carts/auth"),
        (Method::POST, add_path.as_str()),
        (Method::DELETE, item_path),
    ] {
        w.app
            .send(w.app.request(method.clone(), path))
            .await
            .assert_error(401, "unauthorized");
        w.app
            .send(
                w.app
                    .request(method.clone(), path)
                    .bearer_auth("fer_at_nonsense"),
            )
            .await
            .assert_error(401, "invalid_credentials");
        w.app
            .send(w.app.request(method, path).bearer_auth(w.key()))
            .await
            .assert_error(403, "api_key_not_allowed");
    }

    // A session in test mode, or on another platform, does not see the live product.
    let test_session = w
        .app
        .sign_in(w.acme.platform.id.as_str(), "shopper@example.com", "test")
        .await;
    w.add(test_session["access_token"].as_str().unwrap(), &lamp, None)
        .await
        .assert_error(404, "not_found");
    let stranger = w
        .app
        .sign_in(w.other.platform.id.as_str(), "shopper@example.com", "live")
        .await;
    let stranger = stranger["access_token"].as_str().unwrap();
    w.add(stranger, &lamp, None)
        .await
        .assert_error(404, "not_found");
    let theirs = w.cart(stranger).await;
    assert_eq!(theirs["platform_id"], w.other.platform.id.as_str());
    assert_ne!(theirs["id"], w.cart(&w.shopper).await["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_land_on_one_line() {
    let app = TestApp::builder()
        .config(|c| c.workers = Some(2))
        .spawn()
        .await;
    let w = world_with(app).await;
    let lamp = w
        .product(json!({"name": "Lamp", "price": 1, "quantity": 100}))
        .await;
    let adds = (0..12).map(|_| w.add(&w.shopper, &lamp, Some(json!({"quantity": 2}))));
    for response in futures_util::future::join_all(adds).await {
        response.assert_status(200);
    }
    let cart = w.cart(&w.shopper).await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["items"][0]["quantity"], 24);

    // Racing past the stock: the line never holds more than there is.
    let few = w
        .product(json!({"name": "Few", "price": 1, "quantity": 5}))
        .await;
    let adds = (0..10).map(|_| w.add(&w.shopper, &few, None));
    let mut added = 0;
    for response in futures_util::future::join_all(adds).await {
        match response.status.as_u16() {
            200 => added += 1,
            _ => {
                response.assert_error(409, "insufficient_stock");
            }
        }
    }
    assert_eq!(added, 5);
    let cart = w.cart(&w.shopper).await;
    assert_eq!(cart["items"][1]["quantity"], 5);
}
