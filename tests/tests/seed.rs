//! `feria seed` (the benchmark data) on either backend: a tiny run makes the rows it
//! reports, its ids, key and session work through real HTTP, search finds its words, and
//! the credits it gives keep the ledger verifying.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_seed::{IdScheme, SeedArgs, SeedReport};
use feria_testkit::{Method, TestApp};
use serde_json::Value;

async fn count(app: &TestApp, table: &str, like: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.db().conn().await.unwrap();
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE id LIKE '{like}'");
    let row: Count = feria_kernel::with_conn!(&mut conn, c => {
        diesel_async::RunQueryDsl::get_result(diesel::sql_query(&sql), c).await
    })
    .unwrap();
    row.n
}

#[tokio::test]
async fn a_tiny_seed_makes_working_keys_sessions_ids_and_searchable_listings() {
    let app = TestApp::spawn().await;
    let args = SeedArgs {
        listings: 300,
        products: 200,
        users: 30,
        platforms: 2,
        credited_users: 5,
        credit_minor: 2_500,
        buyers: 2,
        contracts: 3,
    };
    let mail = tempfile::tempdir().unwrap();
    let mailer = feria_kernel::mail::Mailer::directory(mail.path(), "seed@example.com").unwrap();
    let schedule = feria_billing::fees::FeeSchedule::default();
    let report: SeedReport = feria_seed::seed(app.db(), &args, &schedule, &mailer)
        .await
        .unwrap();
    assert_eq!(report.platforms.len(), 2);
    assert_eq!(report.listings.count, 300);
    // Buyers: the credited users of platform 0 (rows 1, 3, 5 of 5 credited: capped at 2).
    assert_eq!(report.buyers.len(), 2);
    assert!(!report.hot_listings.is_empty());

    let like = |scheme: &IdScheme| format!("{}_{}%", scheme.prefix, scheme.stem);
    assert_eq!(count(&app, "listings", &like(&report.listings)).await, 300);
    assert_eq!(count(&app, "characters", "char_%").await, 300);
    assert_eq!(count(&app, "products", &like(&report.products)).await, 200);
    assert_eq!(count(&app, "users", &like(&report.users)).await, 30);
    assert_eq!(count(&app, "workspaces", "ws_%").await, 30);

    // A product of platform 0 (row 1), with that platform's key; another platform's
    // product (row 2) is not found with it.
    let platform = &report.platforms[0];
    let product = app
        .send(
            app.request(
                Method::GET,
                &format!("/api/v1/products/{}", report.products.id(1)),
            )
            .bearer_auth(&platform.api_key),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(product["id"], Value::from(report.products.id(1)));
    app.send(
        app.request(
            Method::GET,
            &format!("/api/v1/products/{}", report.products.id(2)),
        )
        .bearer_auth(&platform.api_key),
    )
    .await
    .assert_status(404);

    // Browse with the seeded session: the most frequent word is found, ranked, within
    // the tenant; with a niche and a price range the filters hold.
    let page = app
        .get_as(
            &platform.access_token,
            &format!("/api/v1/marketplace?q={}&page_size=20", report.words[0]),
        )
        .await
        .assert_status(200)
        .json_value();
    let listings = page["listings"].as_array().unwrap();
    assert!(!listings.is_empty(), "{page}");
    assert!(page["total"].as_u64().unwrap() >= listings.len() as u64);
    let page = app
        .get_as(
            &platform.access_token,
            "/api/v1/marketplace?niche=fantasy&min_price=1&max_price=200&page_size=50",
        )
        .await
        .assert_status(200)
        .json_value();
    for listing in page["listings"].as_array().unwrap() {
        assert_eq!(listing["niche"], "fantasy", "{listing}");
    }

    // Credits went through the ledger.
    let mut conn = app.db().conn().await.unwrap();
    let verification = feria_billing::ledger::verify(&mut conn).await.unwrap();
    assert!(verification.is_ok(), "{verification:?}");
    // The session's user (user 1 of platform 0) is credited `credit_minor`: 25.00 USD.
    let credits = app
        .get_as(&platform.access_token, "/api/v1/users/auth/credits")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(credits["user_id"], platform.user_id.as_str(), "{credits}");
    assert_eq!(
        credits["balances"],
        serde_json::json!([{"currency": "usd", "amount": 25.0}]),
        "{credits}"
    );

    // S5's contracts are open and settle from the buyers' credits with the platform's key
    // (three lines, two buyers, two sellers), and the ledger still verifies.
    assert_eq!(report.contracts.len(), 3);
    let contract = &report.contracts[0];
    let settled = app
        .send(
            app.request(Method::PUT, &format!("/api/v1/contracts/{contract}/settle"))
                .bearer_auth(&platform.api_key)
                .header("Idempotency-Key", "seed-test"),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(settled["status"], "settled", "{settled}");
    assert_eq!(settled["items"].as_array().unwrap().len(), 3);
    assert_eq!(settled["buyers"].as_array().unwrap().len(), 2);
    assert_eq!(settled["sellers"].as_array().unwrap().len(), 2);
    let verification = feria_billing::ledger::verify(&mut conn).await.unwrap();
    assert!(verification.is_ok(), "{verification:?}");
}
