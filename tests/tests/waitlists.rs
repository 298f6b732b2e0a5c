//! Waitlists through real HTTP: ordered positions (also under concurrent joins),
//! duplicates, admin-only listing, grant with an invitation mail, removal, isolation.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_testkit::{Method, TestApp};
use serde_json::{Value, json};

#[tokio::test]
async fn joining_assigns_positions_in_order_and_rejects_duplicates() {
    let app = TestApp::spawn().await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let key = &acme.api_keys.live;
    for (index, email) in ["a@example.com", "b@example.com", "c@example.com"]
        .iter()
        .enumerate()
    {
        let entry = app
            .send_json_as(
                key,
                Method::POST,
                "/api/v1/waitlists",
                &json!({"email": email, "name": "Someone"}),
            )
            .await
            .assert_status(201)
            .json_value();
        assert_eq!(entry["position"], index + 1);
        assert_eq!(entry["granted"], Value::Null);
        assert!(entry["id"].as_str().unwrap().starts_with("wlist_"));
    }
    app.send_json_as(
        key,
        Method::POST,
        "/api/v1/waitlists",
        &json!({"email": "A@example.com", "name": "Again"}),
    )
    .await
    .assert_error(409, "already_on_waitlist");
    let invalid = app
        .send_json_as(
            key,
            Method::POST,
            "/api/v1/waitlists",
            &json!({"email": "nope", "name": ""}),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(invalid.details.len(), 2);
    app.post_json(
        "/api/v1/waitlists",
        &json!({"email": "x@example.com", "name": "X"}),
    )
    .await
    .assert_error(401, "unauthorized");

    let count = app
        .get_as(key, "/api/v1/waitlists/count")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(count, json!({"count": 3}));
    // The test world has its own waitlist.
    let test_count = app
        .get_as(&acme.api_keys.test, "/api/v1/waitlists/count")
        .await
        .json_value();
    assert_eq!(test_count, json!({"count": 0}));

    let page = app
        .get_as(key, "/api/v1/waitlists?page_size=2&page=2")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(page["total"], 3);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["email"], "c@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_get_distinct_consecutive_positions() {
    let app = TestApp::builder()
        .config(|c| c.workers = Some(2))
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let bodies: Vec<Value> = (0..16)
        .map(|index| json!({"email": format!("p{index}@example.com"), "name": "Racer"}))
        .collect();
    let requests = bodies
        .iter()
        .map(|body| app.send_json_as(&acme.api_keys.live, Method::POST, "/api/v1/waitlists", body));
    let mut positions: Vec<i64> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|response| {
            response.assert_status(201).json_value()["position"]
                .as_i64()
                .unwrap()
        })
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=16).collect::<Vec<_>>());
}

#[tokio::test]
async fn admins_grant_access_with_an_invitation_and_remove_entries() {
    let app = TestApp::spawn().await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    let key = &acme.api_keys.live;
    let entry = app
        .send_json_as(
            key,
            Method::POST,
            "/api/v1/waitlists",
            &json!({"email": "wai@example.com", "name": "Wai"}),
        )
        .await
        .json_value();
    let id = entry["id"].as_str().unwrap();

    // Members cannot list or grant; other platforms do not see the entry.
    let member = app
        .sign_in(acme.platform.id.as_str(), "member@example.com", "live")
        .await;
    let member_token = member["access_token"].as_str().unwrap();
    app.get_as(member_token, "/api/v1/waitlists")
        .await
        .assert_error(403, "forbidden");
    let grant_path = format!("/api/v1/waitlists/{id}/grant");
    app.send(
        app.request(Method::POST, &grant_path)
            .bearer_auth(member_token),
    )
    .await
    .assert_error(403, "forbidden");
    app.send(
        app.request(Method::POST, &grant_path)
            .bearer_auth(&other.api_keys.live),
    )
    .await
    .assert_error(404, "not_found");
    app.send(
        app.request(Method::POST, &grant_path)
            .bearer_auth(&acme.api_keys.test),
    )
    .await
    .assert_error(404, "not_found");

    let granted = app
        .send(app.request(Method::POST, &grant_path).bearer_auth(key))
        .await
        .assert_status(200)
        .json_value();
    assert!(granted["granted"].is_string());
    let invitations: Vec<_> = app
        .mails()
        .into_iter()
        .filter(|m| m.to == "wai@example.com")
        .collect();
    assert_eq!(invitations.len(), 1);
    assert!(invitations[0].subject.contains("Acme"));
    assert!(invitations[0].body.contains("https://acme.example.com"));

    // Granting again keeps the date and sends nothing more.
    let again = app
        .send(app.request(Method::POST, &grant_path).bearer_auth(key))
        .await
        .json_value();
    assert_eq!(again["granted"], granted["granted"]);
    assert_eq!(
        app.mails()
            .into_iter()
            .filter(|m| m.to == "wai@example.com")
            .count(),
        1
    );

    let remove_path = format!("/api/v1/waitlists/{id}/remove");
    app.send(
        app.request(Method::DELETE, &remove_path)
            .bearer_auth(&other.api_keys.live),
    )
    .await
    .assert_error(404, "not_found");
    let removed = app
        .send(app.request(Method::DELETE, &remove_path).bearer_auth(key))
        .await;
    assert_eq!(removed.status.as_u16(), 204);
    app.send(app.request(Method::DELETE, &remove_path).bearer_auth(key))
        .await
        .assert_error(404, "not_found");
    app.send(
        app.request(Method::POST, "/api/v1/waitlists/nonsense/grant")
            .bearer_auth(key),
    )
    .await
    .assert_error(404, "not_found");
}
