//! A user's payment-provider references through real HTTP: the connected payout account
//! and saved payment methods (default handling, removal, isolation, roles).

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_testkit::{Method, TestApp};
use serde_json::{Value, json};

fn ids(list: &Value) -> Vec<(String, bool)> {
    list["payment_methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["isDefault"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn users_connect_a_payout_account_and_admins_read_it() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let session = app
        .sign_in(acme.platform.id.as_str(), "seller@example.com", "live")
        .await;
    let token = session["access_token"].as_str().unwrap();
    let user_id = session["user"]["id"].as_str().unwrap();
    let admin_path = format!("/api/v1/users/{user_id}/bank_account");

    // Nothing connected yet.
    app.get_as(&acme.api_keys.live, &admin_path)
        .await
        .assert_error(404, "not_found");

    let user = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/bank_account",
            &json!({"stripeConnectId": "acct_1NqEabcDEF"}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(user["stripeConnectId"], "acct_1NqEabcDEF");
    assert_eq!(user["chargesEnabled"], false);
    assert_eq!(user["detailsSubmitted"], false);

    let account = app
        .get_as(&acme.api_keys.live, &admin_path)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        account,
        json!({"stripeConnectId": "acct_1NqEabcDEF", "chargesEnabled": false, "detailsSubmitted": false})
    );

    // Validation, credentials, roles, other mode.
    for bad in [
        json!({"stripeConnectId": "cus_123"}),
        json!({"stripeConnectId": "acct_"}),
        json!({}),
    ] {
        app.send_json_as(token, Method::POST, "/api/v1/users/auth/bank_account", &bad)
            .await
            .assert_error(422, "validation_failed");
    }
    app.send(
        app.request(Method::POST, "/api/v1/users/auth/bank_account")
            .json(&json!({"stripeConnectId": "acct_1"})),
    )
    .await
    .assert_error(401, "unauthorized");
    app.send_json_as(
        &acme.api_keys.live,
        Method::POST,
        "/api/v1/users/auth/bank_account",
        &json!({"stripeConnectId": "acct_1"}),
    )
    .await
    .assert_error(403, "api_key_not_allowed");
    app.get_as(token, &admin_path)
        .await
        .assert_error(403, "forbidden");
    app.get_as(&acme.api_keys.test, &admin_path)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn payment_methods_keep_exactly_one_default() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let session = app
        .sign_in(acme.platform.id.as_str(), "buyer@example.com", "live")
        .await;
    let token = session["access_token"].as_str().unwrap();
    let add = |provider_ref: &str, make_default: bool| json!({"providerRef": provider_ref, "brand": "visa", "last4": "4242", "expMonth": 12, "expYear": 2030, "makeDefault": make_default});

    let first = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/payment_methods",
            &add("pm_first", false),
        )
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(first["isDefault"], true, "the first one is the default");
    assert_eq!(first["provider"], "stripe");
    assert_eq!(first["providerRef"], "pm_first");
    assert_eq!(first["last4"], "4242");
    let first_id = first["id"].as_str().unwrap().to_owned();
    assert!(first_id.starts_with("pmt_"));

    let second = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/payment_methods",
            &add("pm_second", false),
        )
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(second["isDefault"], false);
    let second_id = second["id"].as_str().unwrap().to_owned();
    let third = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/payment_methods",
            &add("pm_third", true),
        )
        .await
        .assert_status(201)
        .json_value();
    let third_id = third["id"].as_str().unwrap().to_owned();

    let list = app
        .get_as(token, "/api/v1/users/auth/payment_methods")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        ids(&list),
        vec![
            (third_id.clone(), true),
            (first_id.clone(), false),
            (second_id.clone(), false)
        ]
    );
    // The user object carries them too.
    let me = app
        .get_as(token, "/api/v1/users/auth")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(me["paymentMethods"].as_array().unwrap().len(), 3);

    // Same reference twice → 409; validation.
    app.send_json_as(
        token,
        Method::POST,
        "/api/v1/users/auth/payment_methods",
        &add("pm_first", false),
    )
    .await
    .assert_error(409, "payment_method_exists");
    // Validation names the field as the client sent it.
    let named = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/payment_methods",
            &json!({"providerRef": "pm_ok", "expMonth": 13}),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(named.details[0].field, "expMonth");
    for bad in [
        json!({"providerRef": "card_123"}),
        json!({"providerRef": "pm_ok", "last4": "42a2"}),
        json!({"providerRef": "pm_ok", "expMonth": 13}),
        json!({"providerRef": "pm_ok", "cvc": "123"}),
    ] {
        app.send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/payment_methods",
            &bad,
        )
        .await
        .assert_error(422, "validation_failed");
    }

    // Switching the default.
    let switched = app
        .send_json_as(
            token,
            Method::PUT,
            &format!("/api/v1/users/auth/payment_methods/{second_id}/default"),
            &json!({}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(switched["isDefault"], true);
    let list = app
        .get_as(token, "/api/v1/users/auth/payment_methods")
        .await
        .json_value();
    assert_eq!(ids(&list).iter().filter(|(_, d)| *d).count(), 1);
    assert_eq!(ids(&list)[0], (second_id.clone(), true));

    // Removing the default promotes the oldest remaining one.
    let after = app
        .send(
            app.request(
                Method::DELETE,
                &format!("/api/v1/users/auth/payment_methods/{second_id}"),
            )
            .bearer_auth(token),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        ids(&after),
        vec![(first_id.clone(), true), (third_id.clone(), false)]
    );
    app.send(
        app.request(
            Method::DELETE,
            &format!("/api/v1/users/auth/payment_methods/{second_id}"),
        )
        .bearer_auth(token),
    )
    .await
    .assert_error(404, "not_found");

    // Admins see and manage them; another user, mode or platform cannot.
    let user_id = session["user"]["id"].as_str().unwrap();
    let admin_list = format!("/api/v1/users/{user_id}/payment_methods");
    let listed = app
        .get_as(&acme.api_keys.live, &admin_list)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(ids(&listed).len(), 2);
    app.get_as(&acme.api_keys.test, &admin_list)
        .await
        .assert_error(404, "not_found");
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    app.get_as(&other.api_keys.live, &admin_list)
        .await
        .assert_error(404, "not_found");
    app.get_as(token, &admin_list)
        .await
        .assert_error(403, "forbidden");
    app.get(&admin_list).await.assert_error(401, "unauthorized");

    let stranger = app
        .sign_in(acme.platform.id.as_str(), "stranger@example.com", "live")
        .await;
    let stranger_token = stranger["access_token"].as_str().unwrap();
    app.send_json_as(
        stranger_token,
        Method::PUT,
        &format!("/api/v1/users/auth/payment_methods/{first_id}/default"),
        &json!({}),
    )
    .await
    .assert_error(404, "not_found");

    app.send_json_as(
        &acme.api_keys.live,
        Method::PUT,
        &format!("/api/v1/users/{user_id}/payment_methods/{third_id}/default"),
        &json!({}),
    )
    .await
    .assert_status(200);
    let remaining = app
        .send(
            app.request(
                Method::DELETE,
                &format!("/api/v1/users/{user_id}/payment_methods/{third_id}"),
            )
            .bearer_auth(&acme.api_keys.live),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(ids(&remaining), vec![(first_id, true)]);
}

#[tokio::test]
async fn concurrent_additions_leave_one_default() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let session = app
        .sign_in(acme.platform.id.as_str(), "racer@example.com", "live")
        .await;
    let token = session["access_token"].as_str().unwrap().to_owned();
    let requests = (0..8).map(|n| {
        let app = &app;
        let token = token.clone();
        async move {
            app.send_json_as(
                &token,
                Method::POST,
                "/api/v1/users/auth/payment_methods",
                &json!({"providerRef": format!("pm_race{n}"), "makeDefault": n % 2 == 0}),
            )
            .await
            .assert_status(201)
        }
    });
    futures_util::future::join_all(requests).await;
    let list = app
        .get_as(&token, "/api/v1/users/auth/payment_methods")
        .await
        .json_value();
    let methods = ids(&list);
    assert_eq!(methods.len(), 8);
    assert_eq!(methods.iter().filter(|(_, d)| *d).count(), 1);
}
