//! Products through real HTTP: the seed's object, validation, who may see and change
//! what across roles, tenants and modes, variants, seasonal prices, filters, sorts,
//! pagination, full-text ranking and categories.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_testkit::{CreatedPlatform, Method, TestApp};
use serde_json::{Value, json};

struct World {
    app: TestApp,
    acme: CreatedPlatform,
    other: CreatedPlatform,
    /// A member of Acme (live) who sells.
    seller: String,
    seller_id: String,
    /// Another member of Acme (live).
    buyer: String,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    let seller = app
        .sign_in(acme.platform.id.as_str(), "seller@example.com", "live")
        .await;
    let buyer = app
        .sign_in(acme.platform.id.as_str(), "buyer@example.com", "live")
        .await;
    World {
        seller_id: seller["user"]["id"].as_str().unwrap().to_owned(),
        seller: seller["access_token"].as_str().unwrap().to_owned(),
        buyer: buyer["access_token"].as_str().unwrap().to_owned(),
        app,
        acme,
        other,
    }
}

impl World {
    fn key(&self) -> &str {
        &self.acme.api_keys.live
    }

    /// Creates a product as the seller; returns the product object.
    async fn product(&self, body: Value) -> Value {
        self.app
            .send_json_as(&self.seller, Method::POST, "/api/v1/products", &body)
            .await
            .assert_status(201)
            .json_value()
    }

    async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: &Value,
    ) -> feria_testkit::TestResponse {
        self.app.send_json_as(token, method, path, body).await
    }

    async fn put(&self, token: &str, path: &str) -> feria_testkit::TestResponse {
        self.app
            .send(self.app.request(Method::PUT, path).bearer_auth(token))
            .await
    }

    async fn delete(&self, token: &str, path: &str) -> feria_testkit::TestResponse {
        self.app
            .send(self.app.request(Method::DELETE, path).bearer_auth(token))
            .await
    }

    /// The names of a list, in order.
    async fn names(&self, token: &str, path: &str) -> Vec<String> {
        let page = self
            .app
            .get_as(token, path)
            .await
            .assert_status(200)
            .json_value();
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_product_is_the_seed_object_and_reads_back() {
    let w = world().await;
    let created = w
        .send(
            w.key(),
            Method::POST,
            "/api/v1/products",
            &json!({
                "user_id": w.seller_id,
                "name": "Sample Product",
                "description": "This is a sample product description.",
                "image": "https://example.com/product.jpg",
                "quantity": 100,
                "isEnabled": true,
                "category": "Electronics",
                "subcategory": "Mobile Phones",
                "tags": ["Tag1", "tag2", "tag1"],
                "price": 299.99
            }),
        )
        .await
        .assert_status(201)
        .json_value();
    let product_id = id(&created);
    assert!(product_id.starts_with("prod_"));
    let mut keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "basePrice",
            "category",
            "created",
            "currency",
            "description",
            "id",
            "image",
            "isAvailableInStock",
            "isEnabled",
            "name",
            "parent_product_id",
            "platform_id",
            "price",
            "quantity",
            "seasonalPrices",
            "subcategory",
            "tags",
            "updated",
            "useSeasonalPrices",
            "user_id",
        ]
    );
    assert_eq!(created["platform_id"], w.acme.platform.id.as_str());
    assert_eq!(created["user_id"], w.seller_id.as_str());
    assert_eq!(created["parent_product_id"], Value::Null);
    assert_eq!(created["quantity"], 100);
    assert_eq!(created["isAvailableInStock"], true);
    assert_eq!(created["isEnabled"], true);
    assert_eq!(created["category"], "Electronics");
    assert_eq!(created["subcategory"], "Mobile Phones");
    assert_eq!(created["tags"], json!(["tag1", "tag2"]));
    assert_eq!(created["price"], 299.99);
    assert_eq!(created["basePrice"], 299.99);
    assert_eq!(created["currency"], "usd");
    assert_eq!(created["seasonalPrices"], json!([]));

    let path = format!("/api/v1/products/{product_id}");
    assert_eq!(
        w.app
            .get_as(w.key(), &path)
            .await
            .assert_status(200)
            .json_value(),
        created
    );
    assert_eq!(
        w.app
            .get_as(&w.buyer, &path)
            .await
            .assert_status(200)
            .json_value(),
        created
    );

    // A user sells in their own name; no stock means not available in stock.
    let own = w
        .product(json!({"name": "Mug", "price": 5, "currency": "EUR"}))
        .await;
    assert_eq!(own["user_id"], w.seller_id.as_str());
    assert_eq!(own["quantity"], 0);
    assert_eq!(own["isAvailableInStock"], false);
    assert_eq!(own["currency"], "eur");
    assert_eq!(own["description"], "");

    // Only admins name another seller; an API key must name one.
    w.send(
        &w.buyer,
        Method::POST,
        "/api/v1/products",
        &json!({"name": "X", "price": 1, "user_id": w.seller_id}),
    )
    .await
    .assert_error(403, "forbidden");
    let missing = w
        .send(
            w.key(),
            Method::POST,
            "/api/v1/products",
            &json!({"name": "X", "price": 1}),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(missing.details[0].field, "user_id");
    // A user of another platform is no seller here.
    let stranger = w
        .app
        .sign_in(w.other.platform.id.as_str(), "stranger@example.com", "live")
        .await;
    let foreign = w
        .send(
            w.key(),
            Method::POST,
            "/api/v1/products",
            &json!({"name": "X", "price": 1, "user_id": stranger["user"]["id"]}),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(foreign.details[0].field, "user_id");
}

#[tokio::test]
async fn variants_are_one_level_deep_and_keep_their_parents_seller() {
    let w = world().await;
    let shirt = w
        .product(json!({"name": "Shirt", "price": 20, "quantity": 5}))
        .await;
    let red = w
        .product(json!({"name": "Shirt (red)", "price": 22, "parent_product_id": id(&shirt)}))
        .await;
    assert_eq!(red["parent_product_id"], id(&shirt).as_str());

    let variants = w
        .names(
            w.key(),
            &format!("/api/v1/products?parent_product_id={}", id(&shirt)),
        )
        .await;
    assert_eq!(variants, vec!["Shirt (red)"]);

    for (parent, why) in [
        (id(&red), "variant of a variant"),
        (
            "prod_01HZX6FQJ5N6E7T2M3A4B5C6D7".to_owned(),
            "unknown parent",
        ),
    ] {
        let error = w
            .send(
                &w.seller,
                Method::POST,
                "/api/v1/products",
                &json!({"name": "X", "price": 1, "parent_product_id": parent}),
            )
            .await
            .assert_error(422, "validation_failed");
        assert_eq!(error.details[0].field, "parent_product_id", "{why}");
    }
    // Another seller cannot hang a variant on the shirt.
    let error = w
        .send(
            &w.buyer,
            Method::POST,
            "/api/v1/products",
            &json!({"name": "X", "price": 1, "parent_product_id": id(&shirt)}),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(error.details[0].field, "parent_product_id");
    // A malformed parent id is a field error too.
    w.send(
        &w.seller,
        Method::POST,
        "/api/v1/products",
        &json!({"name": "X", "price": 1, "parent_product_id": "nope"}),
    )
    .await
    .assert_error(422, "validation_failed");
    // `null` detaches a variant; naming the parent again attaches it.
    let red_path = format!("/api/v1/products/{}", id(&red));
    let detached = w
        .send(
            &w.seller,
            Method::PUT,
            &red_path,
            &json!({"parent_product_id": null}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(detached["parent_product_id"], Value::Null);
    let attached = w
        .send(
            &w.seller,
            Method::PUT,
            &red_path,
            &json!({"parent_product_id": id(&shirt)}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(attached["parent_product_id"], id(&shirt).as_str());
    w.send(
        &w.seller,
        Method::PUT,
        &red_path,
        &json!({"parent_product_id": id(&red)}),
    )
    .await
    .assert_error(422, "validation_failed");
    // A parent with variants cannot become a variant, nor be deleted first.
    let hat = w.product(json!({"name": "Hat", "price": 9})).await;
    w.send(
        &w.seller,
        Method::PUT,
        &format!("/api/v1/products/{}", id(&shirt)),
        &json!({"parent_product_id": id(&hat)}),
    )
    .await
    .assert_error(422, "validation_failed");
    w.delete(&w.seller, &format!("/api/v1/products/{}", id(&shirt)))
        .await
        .assert_error(409, "product_has_variants");
    w.delete(&w.seller, &format!("/api/v1/products/{}", id(&red)))
        .await
        .assert_status(200);
    w.delete(&w.seller, &format!("/api/v1/products/{}", id(&shirt)))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn invalid_products_are_refused_field_by_field() {
    let w = world().await;
    let cases = [
        (json!({"name": "X", "price": -1}), "price"),
        (json!({"name": "X", "price": 1.001}), "price"),
        (
            json!({"name": "X", "price": 1.5, "currency": "JPY"}),
            "price",
        ),
        (json!({"name": "X", "price": "ten"}), "price"),
        (
            json!({"name": "X", "price": 1, "currency": "ABC"}),
            "currency",
        ),
        (
            json!({"name": "X", "price": 1, "subcategory": "Phones"}),
            "subcategory",
        ),
        (
            json!({"name": "X", "price": 1, "category": {"name": "Phones"}}),
            "category",
        ),
        (
            json!({"name": "X", "price": 1, "category": ["Electronics", "Phones"]}),
            "category",
        ),
        (
            json!({"name": "X", "price": 1, "category": "  "}),
            "category",
        ),
        (
            json!({"name": "X", "price": 1, "category": "x".repeat(101)}),
            "category",
        ),
        (json!({"name": "X", "price": 1, "tags": ["ok", ""]}), "tags"),
        (
            json!({"name": "X", "price": 1, "tags": (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            "tags",
        ),
        (json!({"name": "X", "price": 1, "quantity": -1}), "quantity"),
        (
            json!({"name": "X", "price": 1, "image": "not a url"}),
            "image",
        ),
        (json!({"name": "", "price": 1}), "name"),
        (
            json!({"name": "X", "price": 1, "isAvailableInStock": true}),
            "isAvailableInStock",
        ),
        (json!({"name": "X"}), "price"),
    ];
    for (body, field) in cases {
        let error = w
            .send(&w.seller, Method::POST, "/api/v1/products", &body)
            .await
            .assert_error(422, "validation_failed");
        assert!(
            error.details.iter().any(|d| d.field == field),
            "{body}: expected a detail on {field}, got {:?}",
            error.details
        );
    }
    let listed = w.app.get_as(w.key(), "/api/v1/products").await.json_value();
    assert_eq!(listed["total"], 0);
}

#[tokio::test]
async fn who_sees_and_changes_a_product_across_roles_tenants_and_modes() {
    let w = world().await;
    let lamp = w
        .product(json!({"name": "Lamp", "price": 30, "quantity": 2}))
        .await;
    let path = format!("/api/v1/products/{}", id(&lamp));
    let change = json!({"name": "Lamp 2"});

    // No credentials: 401 everywhere.
    for (method, route) in [
        (Method::GET, "/api/v1/products".to_owned()),
        (Method::POST, "/api/v1/products".to_owned()),
        (Method::GET, "/api/v1/products/categories".to_owned()),
        (
            Method::GET,
            format!("/api/v1/products/user/{}", w.seller_id),
        ),
        (Method::GET, path.clone()),
        (Method::PUT, path.clone()),
        (Method::DELETE, path.clone()),
        (Method::GET, format!("{path}/prices")),
        (Method::POST, format!("{path}/prices")),
        (Method::PUT, format!("{path}/prices/usage")),
        (
            Method::DELETE,
            format!("{path}/prices/price_01HZX6FQJ5N6E7T2M3A4B5C6D7"),
        ),
        (Method::PUT, format!("{path}/enable")),
        (Method::PUT, format!("{path}/disable")),
    ] {
        w.app
            .send(w.app.request(method, &route).json(&json!({})))
            .await
            .assert_error(401, "unauthorized");
    }

    // Another platform, or the test mode of this one: not found.
    for key in [&w.other.api_keys.live, &w.acme.api_keys.test] {
        w.app
            .get_as(key, &path)
            .await
            .assert_error(404, "not_found");
        w.send(key, Method::PUT, &path, &change)
            .await
            .assert_error(404, "not_found");
        w.delete(key, &path).await.assert_error(404, "not_found");
        w.put(key, &format!("{path}/disable"))
            .await
            .assert_error(404, "not_found");
        w.app
            .get_as(key, &format!("{path}/prices"))
            .await
            .assert_error(404, "not_found");
        let listed = w.app.get_as(key, "/api/v1/products").await.json_value();
        assert_eq!(listed["total"], 0);
    }
    let test_session = w
        .app
        .sign_in(w.acme.platform.id.as_str(), "seller@example.com", "test")
        .await;
    w.app
        .get_as(test_session["access_token"].as_str().unwrap(), &path)
        .await
        .assert_error(404, "not_found");

    // Another member sees it but may not change it.
    w.app.get_as(&w.buyer, &path).await.assert_status(200);
    w.send(&w.buyer, Method::PUT, &path, &change)
        .await
        .assert_error(403, "not_product_owner");
    w.delete(&w.buyer, &path)
        .await
        .assert_error(403, "not_product_owner");
    w.put(&w.buyer, &format!("{path}/disable"))
        .await
        .assert_error(403, "not_product_owner");
    w.send(
        &w.buyer,
        Method::POST,
        &format!("{path}/prices"),
        &json!({"name": "S", "price": 1, "start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}),
    )
    .await
    .assert_error(403, "not_product_owner");
    w.send(
        &w.buyer,
        Method::PUT,
        &format!("{path}/prices/usage"),
        &json!({"useSeasonalPrices": true}),
    )
    .await
    .assert_error(403, "not_product_owner");

    // The seller and admins (API key, owner) change it.
    let renamed = w
        .send(&w.seller, Method::PUT, &path, &change)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(renamed["name"], "Lamp 2");
    let owner = w
        .app
        .sign_in(w.acme.platform.id.as_str(), "owner@acme.example", "live")
        .await;
    let owner = owner["access_token"].as_str().unwrap().to_owned();
    w.send(&owner, Method::PUT, &path, &json!({"quantity": 7}))
        .await
        .assert_status(200);
    let disabled = w
        .put(w.key(), &format!("{path}/disable"))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(disabled["isEnabled"], false);

    // Disabled: hidden from other members, shown to its seller and admins.
    w.app
        .get_as(&w.buyer, &path)
        .await
        .assert_error(404, "not_found");
    assert!(w.names(&w.buyer, "/api/v1/products").await.is_empty());
    w.put(&w.buyer, &format!("{path}/enable"))
        .await
        .assert_error(404, "not_found");
    assert_eq!(w.names(&w.seller, "/api/v1/products").await, vec!["Lamp 2"]);
    assert_eq!(
        w.names(&owner, "/api/v1/products?enabled=false").await,
        vec!["Lamp 2"]
    );
    let enabled = w
        .put(&w.seller, &format!("{path}/enable"))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(enabled["isEnabled"], true);
    assert_eq!(enabled["quantity"], 7);

    // Ids that are not product ids are simply not found.
    for bad in [
        "/api/v1/products/nope",
        "/api/v1/products/user_01HZX6FQJ5N6E7T2M3A4B5C6D7",
    ] {
        w.app
            .get_as(w.key(), bad)
            .await
            .assert_error(404, "not_found");
    }
}

#[tokio::test]
async fn changes_apply_field_by_field_and_deletion_hides_the_product() {
    let w = world().await;
    let product = w
        .product(json!({
            "name": "Phone", "price": 100, "quantity": 3, "category": "Electronics",
            "subcategory": "Phones", "tags": ["mobile"], "image": "https://example.com/a.jpg"
        }))
        .await;
    let path = format!("/api/v1/products/{}", id(&product));
    let changed = w
        .send(
            &w.seller,
            Method::PUT,
            &path,
            &json!({"price": 89.5, "tags": ["Android", "mobile"], "description": "New.", "quantity": 0}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(changed["price"], 89.5);
    assert_eq!(changed["tags"], json!(["android", "mobile"]));
    assert_eq!(changed["description"], "New.");
    assert_eq!(changed["quantity"], 0);
    assert_eq!(changed["isAvailableInStock"], false);
    assert_eq!(changed["category"], "Electronics");
    assert_eq!(changed["image"], "https://example.com/a.jpg");

    // A subcategory cannot outlive its category; clearing both works.
    let error = w
        .send(&w.seller, Method::PUT, &path, &json!({"category": null}))
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(error.details[0].field, "subcategory");
    let cleared = w
        .send(
            &w.seller,
            Method::PUT,
            &path,
            &json!({"category": null, "subcategory": null, "image": null}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(cleared["category"], Value::Null);
    assert_eq!(cleared["subcategory"], Value::Null);
    assert_eq!(cleared["image"], Value::Null);
    for (body, field) in [
        (json!({"price": -5}), "price"),
        (json!({"name": ""}), "name"),
        (json!({"currency": "eur"}), "currency"),
        (json!({"quantity": -1}), "quantity"),
        (json!({"category": 7}), "category"),
    ] {
        let error = w
            .send(&w.seller, Method::PUT, &path, &body)
            .await
            .assert_error(422, "validation_failed");
        assert!(
            error.details.iter().any(|d| d.field == field),
            "{body}: {:?}",
            error.details
        );
    }

    let deleted = w
        .delete(&w.seller, &path)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(deleted["id"], id(&product).as_str());
    w.app
        .get_as(w.key(), &path)
        .await
        .assert_error(404, "not_found");
    w.delete(&w.seller, &path)
        .await
        .assert_error(404, "not_found");
    w.send(&w.seller, Method::PUT, &path, &json!({"name": "Back"}))
        .await
        .assert_error(404, "not_found");
    let listed = w.app.get_as(w.key(), "/api/v1/products").await.json_value();
    assert_eq!(listed["total"], 0);
    let searched = w
        .app
        .get_as(w.key(), "/api/v1/products?q=phone")
        .await
        .json_value();
    assert_eq!(searched["total"], 0);
}

#[tokio::test]
async fn seasonal_prices_never_overlap_and_set_the_price_when_in_use() {
    let w = world().await;
    let product = w
        .product(json!({"name": "Ski pass", "price": 100, "quantity": 10}))
        .await;
    let path = format!("/api/v1/products/{}", id(&product));
    let prices = format!("{path}/prices");

    // A season covering now, and a later one.
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let current = json!({
        "name": "Winter", "price": 80,
        "start": fmt(now - time::Duration::days(1)), "end": fmt(now + time::Duration::days(1))
    });
    let with_winter = w
        .send(&w.seller, Method::POST, &prices, &current)
        .await
        .assert_status(201)
        .json_value();
    let winter = &with_winter["seasonalPrices"][0];
    assert!(winter["id"].as_str().unwrap().starts_with("price_"));
    assert_eq!(winter["name"], "Winter");
    assert_eq!(winter["price"], 80.0);
    let mut winter_keys: Vec<&str> = winter
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    winter_keys.sort_unstable();
    assert_eq!(winter_keys, vec!["end", "id", "name", "price", "start"]);
    // Usage is off: the base price stands.
    assert_eq!(with_winter["price"], 100.0);
    assert_eq!(with_winter["useSeasonalPrices"], false);

    let spring = json!({
        "name": "Spring", "price": 90,
        "start": fmt(now + time::Duration::days(1)), "end": fmt(now + time::Duration::days(30))
    });
    w.send(&w.seller, Method::POST, &prices, &spring)
        .await
        .assert_status(201);

    // Overlaps are refused, naming the season in the way.
    let overlapping = json!({
        "name": "Clash", "price": 70,
        "start": fmt(now + time::Duration::days(10)), "end": fmt(now + time::Duration::days(40))
    });
    let clash = w
        .send(&w.seller, Method::POST, &prices, &overlapping)
        .await
        .assert_error(422, "season_overlap");
    assert!(clash.message.contains("Spring"));
    assert_eq!(clash.details.len(), 2);

    for (body, field) in [
        (
            json!({"name": "Bad", "price": 1, "start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}),
            "end",
        ),
        (
            json!({"name": "Bad", "price": 1, "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}),
            "end",
        ),
        (
            json!({"name": "Bad", "price": 1, "start": "2026-13-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}),
            "start",
        ),
        (
            json!({"name": "Bad", "price": 1, "start": "tomorrow", "end": "2027-01-01T00:00:00Z"}),
            "start",
        ),
        (
            json!({"name": "Bad", "price": -1, "start": "2030-01-01T00:00:00Z", "end": "2030-02-01T00:00:00Z"}),
            "price",
        ),
        (
            json!({"name": "", "price": 1, "start": "2030-01-01T00:00:00Z", "end": "2030-02-01T00:00:00Z"}),
            "name",
        ),
        (
            json!({"name": "Bad", "price": 1, "start": "2030-01-01T00:00:00Z"}),
            "end",
        ),
    ] {
        let error = w
            .send(&w.seller, Method::POST, &prices, &body)
            .await
            .assert_error(422, "validation_failed");
        assert!(
            error.details.iter().any(|d| d.field == field),
            "{body}: {:?}",
            error.details
        );
    }

    // Usage on: the season covering now sets the price; the base price stays visible.
    let on = w
        .send(
            &w.seller,
            Method::PUT,
            &format!("{prices}/usage"),
            &json!({"useSeasonalPrices": true}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(on["price"], 80.0);
    assert_eq!(on["basePrice"], 100.0);
    assert_eq!(on["useSeasonalPrices"], true);
    assert_eq!(
        w.app.get_as(&w.buyer, &path).await.json_value()["price"],
        80.0
    );
    w.send(
        &w.seller,
        Method::PUT,
        &format!("{prices}/usage"),
        &json!({"useSeasonalPrices": "yes"}),
    )
    .await
    .assert_error(422, "validation_failed");

    // The list of seasons, by start, paginated.
    let listed = w
        .app
        .get_as(&w.buyer, &prices)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(listed["total"], 2);
    assert_eq!(listed["data"][0]["name"], "Winter");
    assert_eq!(listed["data"][1]["name"], "Spring");
    let second = w
        .app
        .get_as(&w.buyer, &format!("{prices}?page=2&page_size=1"))
        .await
        .json_value();
    assert_eq!(second["data"][0]["name"], "Spring");

    // Removing the current season brings the base price back.
    let winter_id = winter["id"].as_str().unwrap();
    let removed = w
        .delete(&w.seller, &format!("{prices}/{winter_id}"))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(removed["price"], 100.0);
    assert_eq!(removed["seasonalPrices"].as_array().unwrap().len(), 1);
    w.delete(&w.seller, &format!("{prices}/{winter_id}"))
        .await
        .assert_error(404, "not_found");
    w.delete(&w.seller, &format!("{prices}/nope"))
        .await
        .assert_error(404, "not_found");
    // A season of another product is not found through this one.
    let other = w.product(json!({"name": "Sled", "price": 10})).await;
    let sled = w
        .send(
            &w.seller,
            Method::POST,
            &format!("/api/v1/products/{}/prices", id(&other)),
            &json!({"name": "Any", "price": 5, "start": "2030-01-01T00:00:00Z", "end": "2030-02-01T00:00:00Z"}),
        )
        .await
        .json_value();
    let sled_season = sled["seasonalPrices"][0]["id"].as_str().unwrap();
    w.delete(&w.seller, &format!("{prices}/{sled_season}"))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn filters_sorts_and_pages() {
    let w = world().await;
    let catalog = [
        (
            "Alpha",
            10.0,
            5,
            "Books",
            Some("Novels"),
            vec!["paper"],
            true,
        ),
        (
            "Bravo",
            25.5,
            0,
            "Books",
            Some("Comics"),
            vec!["Paper", "color"],
            true,
        ),
        ("Charlie", 5.0, 2, "Toys", None, vec!["wood"], true),
        ("Delta", 99.99, 1, "Toys", Some("Puzzles"), vec![], false),
        (
            "Echo",
            50.0,
            9,
            "Books",
            Some("Novels"),
            vec!["color"],
            true,
        ),
    ];
    for (name, price, quantity, category, subcategory, tags, enabled) in &catalog {
        w.product(json!({
            "name": name, "price": price, "quantity": quantity, "category": category,
            "subcategory": subcategory, "tags": tags, "isEnabled": enabled
        }))
        .await;
    }
    let buyer_product = w
        .send(
            &w.buyer,
            Method::POST,
            "/api/v1/products",
            &json!({"name": "Foxtrot", "price": 7, "quantity": 1}),
        )
        .await
        .assert_status(201)
        .json_value();
    let key = w.key();

    // Newest first by default.
    assert_eq!(
        w.names(key, "/api/v1/products").await,
        vec!["Foxtrot", "Echo", "Delta", "Charlie", "Bravo", "Alpha"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?category=Books").await,
        vec!["Echo", "Bravo", "Alpha"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?category=Books&subcategory=Novels")
            .await,
        vec!["Echo", "Alpha"]
    );
    assert!(
        w.names(key, "/api/v1/products?category=books")
            .await
            .is_empty()
    );
    assert_eq!(
        w.names(key, "/api/v1/products?tag=PAPER").await,
        vec!["Bravo", "Alpha"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?tag=color&category=Books")
            .await,
        vec!["Echo", "Bravo"]
    );
    assert_eq!(
        w.names(
            key,
            &format!(
                "/api/v1/products?user_id={}",
                buyer_product["user_id"].as_str().unwrap()
            )
        )
        .await,
        vec!["Foxtrot"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?min_price=10&max_price=50")
            .await,
        vec!["Echo", "Bravo", "Alpha"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?min_price=25.50").await,
        vec!["Echo", "Delta", "Bravo"]
    );
    assert!(
        w.names(key, "/api/v1/products?max_price=100&currency=eur")
            .await
            .is_empty()
    );
    assert_eq!(
        w.names(key, "/api/v1/products?enabled=false").await,
        vec!["Delta"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?in_stock=false").await,
        vec!["Bravo"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?in_stock=true&category=Toys")
            .await,
        vec!["Delta", "Charlie"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?sort=price_asc").await,
        vec!["Charlie", "Foxtrot", "Alpha", "Bravo", "Echo", "Delta"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?sort=price_desc&category=Books")
            .await,
        vec!["Echo", "Bravo", "Alpha"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?sort=relevance").await.len(),
        6
    );

    // A member does not see another seller's disabled product.
    assert_eq!(
        w.names(&w.buyer, "/api/v1/products?category=Toys").await,
        vec!["Charlie"]
    );

    // Pages: totals count every match; a page past the end is empty.
    let first = w
        .app
        .get_as(key, "/api/v1/products?page_size=4")
        .await
        .json_value();
    assert_eq!(
        (
            first["page"].clone(),
            first["page_size"].clone(),
            first["total"].clone()
        ),
        (json!(1), json!(4), json!(6))
    );
    assert_eq!(first["data"].as_array().unwrap().len(), 4);
    let second = w
        .app
        .get_as(key, "/api/v1/products?page_size=4&page=2")
        .await
        .json_value();
    assert_eq!(second["total"], 6);
    assert_eq!(second["data"].as_array().unwrap().len(), 2);
    assert_eq!(second["data"][1]["name"], "Alpha");
    let past = w
        .app
        .get_as(key, "/api/v1/products?page_size=4&page=3")
        .await
        .json_value();
    assert_eq!(past["total"], 6);
    assert!(past["data"].as_array().unwrap().is_empty());
    let middle = w
        .app
        .get_as(key, "/api/v1/products?page_size=2&page=2&sort=price_asc")
        .await
        .json_value();
    assert_eq!(middle["total"], 6);
    assert_eq!(middle["data"][0]["name"], "Alpha");

    // The user route applies the same filters to one seller.
    assert_eq!(
        w.names(
            key,
            &format!("/api/v1/products/user/{}?category=Toys", w.seller_id)
        )
        .await,
        vec!["Delta", "Charlie"]
    );
    w.app
        .get_as(key, "/api/v1/products/user/user_01HZX6FQJ5N6E7T2M3A4B5C6D7")
        .await
        .assert_error(404, "not_found");
    w.app
        .get_as(key, "/api/v1/products/user/nope")
        .await
        .assert_error(404, "not_found");
    // Another platform's seller is not found here.
    w.app
        .get_as(
            &w.other.api_keys.live,
            &format!("/api/v1/products/user/{}", w.seller_id),
        )
        .await
        .assert_error(404, "not_found");

    // Bad filters.
    for (query, status, code) in [
        ("page_size=101", 422, "validation_failed"),
        ("page=0", 422, "validation_failed"),
        ("min_price=abc", 422, "validation_failed"),
        ("min_price=-1", 422, "validation_failed"),
        ("min_price=10&max_price=5", 422, "validation_failed"),
        ("min_price=1.001", 422, "validation_failed"),
        ("currency=xyz", 422, "validation_failed"),
        ("sort=cheapest", 400, "invalid_query"),
        ("enabled=maybe", 400, "invalid_query"),
        ("user_id=nope", 400, "invalid_query"),
    ] {
        w.app
            .get_as(key, &format!("/api/v1/products?{query}"))
            .await
            .assert_error(status, code);
    }
    let long_q = "a".repeat(201);
    w.app
        .get_as(key, &format!("/api/v1/products?q={long_q}"))
        .await
        .assert_error(422, "validation_failed");
}

#[tokio::test]
async fn full_text_search_ranks_name_over_description_over_tags() {
    let w = world().await;
    w.product(json!({"name": "Garden chair", "description": "Sturdy, for a desk lamp corner.", "price": 40}))
        .await;
    w.product(json!({"name": "Blue lamp", "description": "A reading light.", "price": 30}))
        .await;
    w.product(json!({"name": "Rug", "description": "Soft wool.", "tags": ["lamp"], "price": 60}))
        .await;
    w.product(json!({"name": "Kettle", "description": "Boils water.", "price": 20}))
        .await;
    let key = w.key();

    let ranked = w.names(key, "/api/v1/products?q=lamp").await;
    assert_eq!(ranked, vec!["Blue lamp", "Garden chair", "Rug"]);
    let page = w
        .app
        .get_as(key, "/api/v1/products?q=lamp")
        .await
        .json_value();
    assert_eq!(page["total"], 3);
    // English stemming on both engines; case does not matter.
    assert_eq!(w.names(key, "/api/v1/products?q=LAMPS").await, ranked);
    // English stop words count on neither engine.
    assert_eq!(
        w.names(key, "/api/v1/products?q=the%20lamps%20of").await,
        ranked
    );
    // Every word must match.
    assert_eq!(
        w.names(key, "/api/v1/products?q=blue%20lamp").await,
        vec!["Blue lamp"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?q=boiling%20water").await,
        vec!["Kettle"]
    );
    assert!(
        w.names(key, "/api/v1/products?q=lamp%20kettle")
            .await
            .is_empty()
    );
    // Another sort overrides relevance; filters combine with the query.
    assert_eq!(
        w.names(key, "/api/v1/products?q=lamp&sort=price_desc")
            .await,
        vec!["Rug", "Garden chair", "Blue lamp"]
    );
    assert_eq!(
        w.names(key, "/api/v1/products?q=lamp&max_price=45").await,
        vec!["Blue lamp", "Garden chair"]
    );
    // Pages of a ranked list.
    let second = w
        .app
        .get_as(key, "/api/v1/products?q=lamp&page_size=2&page=2")
        .await
        .json_value();
    assert_eq!(second["total"], 3);
    assert_eq!(second["data"][0]["name"], "Rug");
    let past = w
        .app
        .get_as(key, "/api/v1/products?q=lamp&page_size=2&page=5")
        .await
        .json_value();
    assert_eq!(past["total"], 3);
    assert!(past["data"].as_array().unwrap().is_empty());
    // Filters by tag start from the tag (a rare one is found however far back it is).
    assert_eq!(w.names(key, "/api/v1/products?tag=LAMP").await, vec!["Rug"]);
    assert_eq!(
        w.names(key, "/api/v1/products?q=lamp&tag=lamp").await,
        vec!["Rug"]
    );
    // Query syntax of either engine is just text.
    for q in [
        "%22lamp",
        "lamp%20OR%20kettle",
        "lamp*",
        "NEAR(lamp)",
        "%27%3B%20DROP%20TABLE%20products%3B--",
        "!!!",
    ] {
        w.app
            .get_as(key, &format!("/api/v1/products?q={q}"))
            .await
            .assert_status(200);
    }
    assert_eq!(w.names(key, "/api/v1/products?q=%22lamp%22").await.len(), 3);
    // Nothing but punctuation is no query at all.
    assert_eq!(w.names(key, "/api/v1/products?q=!!!").await.len(), 4);

    // Renaming re-indexes; other tenants find nothing.
    let kettle = w
        .app
        .get_as(key, "/api/v1/products?q=kettle")
        .await
        .json_value();
    let kettle_id = id(&kettle["data"][0]);
    w.send(
        &w.seller,
        Method::PUT,
        &format!("/api/v1/products/{kettle_id}"),
        &json!({"name": "Tea lamp"}),
    )
    .await
    .assert_status(200);
    assert!(w.names(key, "/api/v1/products?q=kettle").await.is_empty());
    assert_eq!(
        w.names(key, "/api/v1/products?q=tea").await,
        vec!["Tea lamp"]
    );
    let foreign = w
        .app
        .get_as(&w.other.api_keys.live, "/api/v1/products?q=lamp")
        .await
        .json_value();
    assert_eq!(foreign["total"], 0);
}

#[tokio::test]
async fn categories_list_subcategories_and_counts() {
    let w = world().await;
    for (category, subcategory, enabled) in [
        (Some("Electronics"), Some("Phones"), true),
        (Some("Electronics"), Some("Phones"), true),
        (Some("Electronics"), Some("Laptops"), false),
        (Some("Electronics"), None, true),
        (Some("Books"), None, true),
        (None, None, true),
    ] {
        w.product(json!({
            "name": "P", "price": 1, "category": category, "subcategory": subcategory,
            "isEnabled": enabled
        }))
        .await;
    }
    let admin = w
        .app
        .get_as(w.key(), "/api/v1/products/categories")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        admin,
        json!({
            "data": [
                {"name": "Books", "count": 1, "subcategories": []},
                {"name": "Electronics", "count": 4, "subcategories": [
                    {"name": "Laptops", "count": 1},
                    {"name": "Phones", "count": 2}
                ]}
            ],
            "page": 1, "page_size": 20, "total": 2
        })
    );
    // Another member does not count the seller's disabled product.
    let member = w
        .app
        .get_as(&w.buyer, "/api/v1/products/categories")
        .await
        .json_value();
    assert_eq!(member["data"][1]["count"], 3);
    assert_eq!(
        member["data"][1]["subcategories"],
        json!([{"name": "Phones", "count": 2}])
    );
    let paged = w
        .app
        .get_as(w.key(), "/api/v1/products/categories?page=2&page_size=1")
        .await
        .json_value();
    assert_eq!(paged["total"], 2);
    assert_eq!(paged["data"][0]["name"], "Electronics");
    w.app
        .get_as(w.key(), "/api/v1/products/categories?page_size=0")
        .await
        .assert_error(422, "validation_failed");
    let foreign = w
        .app
        .get_as(&w.other.api_keys.live, "/api/v1/products/categories")
        .await
        .json_value();
    assert_eq!(foreign["total"], 0);
}
