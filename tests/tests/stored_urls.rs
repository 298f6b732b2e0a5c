//! Stored URLs through real HTTP, on either backend: every field that stores a URL a
//! client gave (profile links, platform URL, product image, character avatar, listing
//! preview images), on creation and on update, accepts only `http`/`https` URLs with a
//! host and at most 2000 characters. Anything else is 422 `validation_failed` naming the
//! field, and nothing is stored; a good URL is stored normalised and reads back.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse};
use serde_json::{Value, json};

/// A URL every field accepts, read back as sent.
const GOOD: &str = "https://example.com/a.png";

/// Values no URL field may store, each with a name for failure messages.
fn bad_urls() -> Vec<(&'static str, String)> {
    let long = format!("https://example.com/{}", "a".repeat(3000 - 20));
    assert_eq!(long.len(), 3000);
    vec![
        ("javascript", "javascript:alert(1)".to_owned()),
        (
            "data",
            "data:text/html,<script>alert(document.cookie)</script>".to_owned(),
        ),
        ("vbscript", "vbscript:msgbox(1)".to_owned()),
        ("mixed-case javascript", "JaVaScRiPt:alert(1)".to_owned()),
        ("leading whitespace", " javascript:alert(1)".to_owned()),
        ("tab inside the scheme", "java\tscript:alert(1)".to_owned()),
        ("ftp", "ftp://x".to_owned()),
        ("no host", "http://".to_owned()),
        ("scheme-relative", "//example.com/a.png".to_owned()),
        ("3000 characters", long),
    ]
}

/// Cases a field wrongly answered, collected so that a failure lists all of them.
#[derive(Default)]
struct Misses(Vec<String>);

impl Misses {
    /// Expects a 422 `validation_failed` whose details name `field`.
    fn expect_rejected(&mut self, response: &TestResponse, field: &str, case: &str) {
        let named = response.status.as_u16() == 422
            && response
                .assert_error(422, "validation_failed")
                .details
                .iter()
                .any(|d| d.field == field);
        if !named {
            self.0.push(format!(
                "{case}: expected 422 naming {field}, got {} {}",
                response.status.as_u16(),
                response.text()
            ));
        }
    }

    /// Expects `actual` to be `expected`.
    fn expect_eq(&mut self, actual: &Value, expected: &Value, what: &str) {
        if actual != expected {
            self.0
                .push(format!("{what}: expected {expected}, got {actual}"));
        }
    }

    #[track_caller]
    fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} cases not rejected:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

struct World {
    app: TestApp,
    acme: CreatedPlatform,
    /// A member of Acme (live).
    token: String,
    user_id: String,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let session = app
        .sign_in(acme.platform.id.as_str(), "ana@example.com", "live")
        .await;
    World {
        token: session["access_token"].as_str().unwrap().to_owned(),
        user_id: session["user"]["id"].as_str().unwrap().to_owned(),
        app,
        acme,
    }
}

impl World {
    fn key(&self) -> &str {
        &self.acme.api_keys.live
    }

    async fn send(&self, token: &str, method: Method, path: &str, body: &Value) -> TestResponse {
        self.app.send_json_as(token, method, path, body).await
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        self.app
            .get_as(token, path)
            .await
            .assert_status(200)
            .json_value()
    }
}

#[tokio::test]
async fn profile_links_store_only_web_urls() {
    let w = world().await;
    let mut misses = Misses::default();
    let admin_path = format!("/api/v1/users/{}/link", w.user_id);
    for (case, url) in bad_urls() {
        let body = json!({"url": url, "title": "Site"});
        let mine = w
            .send(&w.token, Method::POST, "/api/v1/users/auth/link", &body)
            .await;
        misses.expect_rejected(&mine, "url", case);
        let by_admin = w.send(w.key(), Method::POST, &admin_path, &body).await;
        misses.expect_rejected(&by_admin, "url", case);
    }
    let me = w.get(&w.token, "/api/v1/users/auth").await;
    misses.expect_eq(&me["links"], &json!([]), "nothing stored");
    misses.assert_none();

    let added = w
        .send(
            &w.token,
            Method::POST,
            "/api/v1/users/auth/link",
            &json!({"url": GOOD}),
        )
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(added["links"][0]["url"], GOOD);
    // Stored normalised: surrounding whitespace dropped, scheme and host lower case.
    let added = w
        .send(
            w.key(),
            Method::POST,
            &admin_path,
            &json!({"url": "  HTTPS://Example.COM/b.png "}),
        )
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(added["links"][1]["url"], "https://example.com/b.png");
    let me = w.get(&w.token, "/api/v1/users/auth").await;
    let urls: Vec<&str> = me["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, vec![GOOD, "https://example.com/b.png"]);
}

#[tokio::test]
async fn the_platform_url_stores_only_web_urls() {
    let w = world().await;
    let mut misses = Misses::default();
    let path = format!("/api/v1/platforms/{}", w.acme.platform.id.as_str());
    w.send(w.key(), Method::PUT, &path, &json!({"url": GOOD}))
        .await
        .assert_status(200);
    for (case, url) in bad_urls() {
        let response = w
            .send(w.key(), Method::PUT, &path, &json!({"url": url}))
            .await;
        misses.expect_rejected(&response, "url", case);
    }
    let platform = w.get(w.key(), "/api/v1/platforms").await;
    misses.expect_eq(
        &platform["url"],
        &json!(GOOD),
        "unchanged by the rejected updates",
    );
    misses.assert_none();
}

#[tokio::test]
async fn a_product_image_stores_only_web_urls() {
    let w = world().await;
    let mut misses = Misses::default();
    for (case, url) in bad_urls() {
        let response = w
            .send(
                &w.token,
                Method::POST,
                "/api/v1/products",
                &json!({"name": "Lamp", "price": 10, "image": url}),
            )
            .await;
        misses.expect_rejected(&response, "image", case);
    }
    let all = w.get(w.key(), "/api/v1/products").await;
    misses.expect_eq(&all["total"], &json!(0), "nothing stored");

    let product = w
        .send(
            &w.token,
            Method::POST,
            "/api/v1/products",
            &json!({"name": "Lamp", "price": 10, "image": GOOD}),
        )
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(product["image"], GOOD);
    let path = format!("/api/v1/products/{}", product["id"].as_str().unwrap());
    for (case, url) in bad_urls() {
        let response = w
            .send(&w.token, Method::PUT, &path, &json!({"image": url}))
            .await;
        misses.expect_rejected(&response, "image", case);
    }
    let read = w.get(&w.token, &path).await;
    misses.expect_eq(
        &read["image"],
        &json!(GOOD),
        "unchanged by the rejected updates",
    );
    misses.assert_none();
}

#[tokio::test]
async fn a_character_avatar_stores_only_web_urls() {
    let w = world().await;
    let mut misses = Misses::default();
    for (case, url) in bad_urls() {
        let response = w
            .send(
                &w.token,
                Method::POST,
                "/api/v1/characters",
                &json!({"name": "Mila", "niche": "wellness", "description": "", "avatar_url": url}),
            )
            .await;
        misses.expect_rejected(&response, "avatar_url", case);
    }
    let all = w.get(&w.token, "/api/v1/characters").await;
    misses.expect_eq(&all["characters"], &json!([]), "nothing stored");

    let character = w
        .send(
            &w.token,
            Method::POST,
            "/api/v1/characters",
            &json!({"name": "Mila", "niche": "wellness", "description": "", "avatar_url": GOOD}),
        )
        .await
        .assert_status(201)
        .json_value()["character"]
        .clone();
    assert_eq!(character["avatar_url"], GOOD);
    let path = format!("/api/v1/characters/{}", character["id"].as_str().unwrap());
    for (case, url) in bad_urls() {
        let response = w
            .send(&w.token, Method::PUT, &path, &json!({"avatar_url": url}))
            .await;
        misses.expect_rejected(&response, "avatar_url", case);
    }
    let read = w.get(&w.token, &path).await;
    misses.expect_eq(
        &read["character"]["avatar_url"],
        &json!(GOOD),
        "unchanged by the rejected updates",
    );
    misses.assert_none();
}

#[tokio::test]
async fn listing_preview_images_store_only_web_urls() {
    let w = world().await;
    let mut misses = Misses::default();
    let character = w
        .send(
            &w.token,
            Method::POST,
            "/api/v1/characters",
            &json!({"name": "Mila", "niche": "wellness", "description": ""}),
        )
        .await
        .assert_status(201)
        .json_value()["character"]
        .clone();
    let listing = |character: &Value, images: Value| {
        json!({"character_id": character["id"], "price": 250, "currency": "USD",
               "license_type": "commercial", "preview_images": images})
    };
    for (case, url) in bad_urls() {
        // A bad image after a good one: the whole list is refused.
        let response = w
            .send(
                &w.token,
                Method::POST,
                "/api/v1/marketplace/listings",
                &listing(&character, json!([GOOD, url])),
            )
            .await;
        misses.expect_rejected(&response, "preview_images", case);
    }
    let mine = w.get(&w.token, "/api/v1/marketplace/my-listings").await;
    misses.expect_eq(&mine["total"], &json!(0), "nothing stored");

    // A character of its own, in case a refused listing was stored after all.
    let other = w
        .send(
            &w.token,
            Method::POST,
            "/api/v1/characters",
            &json!({"name": "Noa", "niche": "wellness", "description": ""}),
        )
        .await
        .assert_status(201)
        .json_value()["character"]
        .clone();
    let created = w
        .send(
            &w.token,
            Method::POST,
            "/api/v1/marketplace/listings",
            &listing(&other, json!([GOOD])),
        )
        .await
        .assert_status(201)
        .json_value()["listing"]
        .clone();
    assert_eq!(created["preview_images"], json!([GOOD]));
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/marketplace/listings/{id}");
    for (case, url) in bad_urls() {
        let response = w
            .send(
                &w.token,
                Method::PUT,
                &path,
                &json!({"preview_images": [url]}),
            )
            .await;
        misses.expect_rejected(&response, "preview_images", case);
    }
    let read = w.get(&w.token, &format!("/api/v1/marketplace/{id}")).await;
    misses.expect_eq(
        &read["listing"]["preview_images"],
        &json!([GOOD]),
        "unchanged by the rejected updates",
    );
    misses.assert_none();
}

/// Rows stored before the rule with another scheme are dropped by the migration
/// `2026-12-07-114000_stored_urls`; web URLs stay. It may run twice.
#[tokio::test]
async fn urls_stored_before_the_rule_are_dropped_by_its_migration() {
    let w = world().await;
    let product = w
        .send(
            w.key(),
            Method::POST,
            "/api/v1/products",
            &json!({"name": "Lamp", "price": 1.0, "quantity": 1, "user_id": w.user_id, "image": GOOD}),
        )
        .await
        .assert_status(201)
        .json_value();
    let product_id = product["id"].as_str().unwrap().to_owned();
    let kept = w
        .send(
            w.key(),
            Method::POST,
            "/api/v1/products",
            &json!({
            "name": "Mug", "price": 1.0, "quantity": 1, "user_id": w.user_id, "image": GOOD}),
        )
        .await
        .assert_status(201)
        .json_value();
    for url in ["https://example.com/good", "https://example.com/bad"] {
        w.send(
            &w.token,
            Method::POST,
            "/api/v1/users/auth/link",
            &json!({"url": url, "title": "Site"}),
        )
        .await
        .assert_status(201);
    }
    // As an older server could have stored them.
    w.app
        .execute_sql(&format!(
            "UPDATE products SET image = ' JaVaScRiPt:alert(1)' WHERE id = '{product_id}';
             UPDATE user_links SET url = 'data:text/html,x' WHERE url = 'https://example.com/bad';
             UPDATE platforms SET url = 'vbscript:msgbox(1)' WHERE id = '{}'",
            w.acme.platform.id
        ))
        .await;
    let migration = w.app.migration_sql("2026-12-07-114000_stored_urls");
    for _ in 0..2 {
        w.app.execute_sql(&migration).await;
    }
    let read = w
        .get(w.key(), &format!("/api/v1/products/{product_id}"))
        .await;
    assert_eq!(read["image"], Value::Null);
    let read = w
        .get(
            w.key(),
            &format!("/api/v1/products/{}", kept["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(read["image"], GOOD);
    let me = w.get(&w.token, "/api/v1/users/auth").await;
    let links: Vec<&str> = me["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["url"].as_str().unwrap())
        .collect();
    assert_eq!(links, ["https://example.com/good"]);
    let platform = w.get(w.key(), "/api/v1/platforms").await;
    assert_eq!(platform["url"], Value::Null);
}
