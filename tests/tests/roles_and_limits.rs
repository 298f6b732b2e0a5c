//! Issue 21, "Integrity and hardening", through real HTTP on both backends:
//!
//! - the write rate limit counts a write against the credential it authenticates with, and
//!   every other write (no credential, a wrong, expired or revoked one) against the
//!   client's address: a fresh made-up token per request buys no fresh budget, and a flood
//!   of wrong tokens from an address leaves the valid credentials used from it alone;
//! - only an owner deletes an owner, and the last owner of a platform (per mode) cannot be
//!   deleted or demoted, not even by themselves.
//!
//! The rate-limit tests run the server on a manual clock: nothing refills while a test
//! runs unless it moves the clock, so the counts are exact on a machine of any speed.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use feria_kernel::time::ManualClock;
use feria_testkit::{Method, TestApp, TestResponse};
use serde_json::{Value, json};

const FEE: &str = "/api/v1/utils/estimate/fee";

fn fee_body() -> Value {
    json!({"amount": 1000})
}

/// A token shaped like a test API key that no platform has.
fn made_up_key() -> String {
    format!("fer_test_{}", ulid::Ulid::new())
}

/// A server whose writes are limited to `per_second` with a burst of `burst`, on a clock
/// that moves only when the test says so.
async fn limited_app(per_second: u32, burst: u32) -> (TestApp, ManualClock) {
    let time = ManualClock::new();
    let clock = time.clock();
    let app = TestApp::builder()
        .config(move |c| {
            c.write_rate_limit = per_second;
            c.write_rate_burst = burst;
            c.clock = clock;
        })
        .spawn()
        .await;
    (app, time)
}

async fn fee_as(app: &TestApp, token: Option<&str>) -> TestResponse {
    let request = app.request(Method::POST, FEE).json(&fee_body());
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    app.send(request).await
}

fn retry_after(response: &TestResponse) -> u64 {
    response
        .header("retry-after")
        .expect("Retry-After on a 429")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_fresh_made_up_token_per_write_buys_no_fresh_budget() {
    let (app, _time) = limited_app(5, 5).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = fee_as(&app, Some(&made_up_key())).await;
        if response.status.as_u16() == 429 {
            response.assert_error(429, "rate_limited");
            assert_eq!(retry_after(&response), 1);
        }
        statuses.push(response.status.as_u16());
    }
    // The burst passes, then the address's budget is spent: each made-up token was
    // counted against the address, not given a bucket of its own.
    assert_eq!(statuses, [[200; 5].as_slice(), &[429; 7]].concat());

    // The same budget for writes without a token, and for tokens of any shape.
    fee_as(&app, None).await.assert_error(429, "rate_limited");
    for token in ["fer_live_x", "not-a-token", "sess_whatever"] {
        fee_as(&app, Some(token))
            .await
            .assert_error(429, "rate_limited");
    }
    let garbage_scheme = app
        .request(Method::POST, FEE)
        .header("Authorization", "Basic Zm9vOmJhcg==")
        .json(&fee_body());
    app.send(garbage_scheme)
        .await
        .assert_error(429, "rate_limited");
    // A wrong token on a route that needs a credential: 429 once the address's budget is
    // spent, before the route looks at it (401 while there is budget: the next test).
    app.send_json_as(
        &made_up_key(),
        Method::POST,
        "/api/v1/users",
        &json!({"email": "x@example.com"}),
    )
    .await
    .assert_error(429, "rate_limited");
    // Reads are not counted.
    app.get("/readyz").await.assert_status(200);
}

#[tokio::test]
async fn a_valid_credential_keeps_its_own_budget_while_its_address_floods_bad_tokens() {
    let (app, time) = limited_app(5, 5).await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    // Signing in takes two writes without a credential, from the address's budget.
    let session = app
        .sign_in(acme.platform.id.as_str(), "ana@example.com", "live")
        .await;
    let ana = session["access_token"].as_str().unwrap().to_owned();

    // Another client at the same address floods it with made-up and revoked tokens (the
    // test key, rolled: one write of the old key's own budget while it was valid).
    let revoked = acme.api_keys.test.clone();
    let rolled = app
        .send_json_as(
            &revoked,
            Method::POST,
            "/api/v1/platforms/keys/roll",
            &json!({}),
        )
        .await
        .assert_status(200)
        .json_value();
    let rolled = s(&rolled["api_key"]);
    let mut passed = 0;
    for n in 0..20 {
        let token = if n % 2 == 0 {
            made_up_key()
        } else {
            revoked.clone()
        };
        if fee_as(&app, Some(&token)).await.status.as_u16() == 200 {
            passed += 1;
        }
    }
    assert_eq!(passed, 3, "5 for the address, 2 of them spent signing in");
    fee_as(&app, None).await.assert_error(429, "rate_limited");

    // Each valid credential used from that address has its own full budget: the live key,
    // the rolled test key, another platform's key, and Ana's session.
    for credential in [&acme.api_keys.live, &rolled, &other.api_keys.live, &ana] {
        for _ in 0..5 {
            fee_as(&app, Some(credential)).await.assert_status(200);
        }
        fee_as(&app, Some(credential))
            .await
            .assert_error(429, "rate_limited");
    }
    // The key's own budget counts writes to any route, and a spent key is refused before
    // its write happens.
    app.send_json_as(
        &acme.api_keys.live,
        Method::POST,
        "/api/v1/users",
        &json!({"email": "zoe@example.com"}),
    )
    .await
    .assert_error(429, "rate_limited");
    let users = app
        .get_as(&acme.api_keys.live, "/api/v1/users?email=zoe@example.com")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(users["total"], 0);

    // A second later every bucket has refilled at 5 per second. A wrong token on a route
    // that needs a credential is refused as such (401), from the address's budget.
    time.advance(Duration::from_secs(1));
    app.send_json_as(
        &made_up_key(),
        Method::POST,
        "/api/v1/users",
        &json!({"email": "x@example.com"}),
    )
    .await
    .assert_error(401, "invalid_credentials");
    for _ in 0..4 {
        fee_as(&app, Some(&made_up_key())).await.assert_status(200);
    }
    fee_as(&app, Some(&made_up_key()))
        .await
        .assert_error(429, "rate_limited");
    app.send_json_as(
        &acme.api_keys.live,
        Method::POST,
        "/api/v1/users",
        &json!({"email": "zoe@example.com"}),
    )
    .await
    .assert_status(201);
}

fn s(value: &Value) -> String {
    value.as_str().unwrap().to_owned()
}

struct Platform {
    app: TestApp,
    id: String,
    key: String,
}

impl Platform {
    async fn new() -> Platform {
        let (app, acme) = TestApp::spawn_with_platform().await;
        Platform {
            id: acme.platform.id.as_str().to_owned(),
            key: acme.api_keys.live.clone(),
            app,
        }
    }

    /// Creates a user with `role` (through the owner when it is an owner) and signs them
    /// in: (user id, access token).
    async fn user(&self, email: &str, role: &str, creator: &str) -> (String, String) {
        self.app
            .send_json_as(
                creator,
                Method::POST,
                "/api/v1/users",
                &json!({"email": email, "role": role}),
            )
            .await
            .assert_status(201);
        self.sign_in(email).await
    }

    async fn sign_in(&self, email: &str) -> (String, String) {
        let session = self.app.sign_in(&self.id, email, "live").await;
        (s(&session["user"]["id"]), s(&session["access_token"]))
    }

    /// (user id, token) of the user signed in with `token`.
    async fn who_is(&self, token: &str) -> (String, String) {
        let me = self
            .app
            .get_as(token, "/api/v1/users/auth")
            .await
            .assert_status(200)
            .json_value();
        (s(&me["id"]), token.to_owned())
    }

    async fn delete(&self, token: &str, path: &str) -> TestResponse {
        self.app
            .send(self.app.request(Method::DELETE, path).bearer_auth(token))
            .await
    }

    /// The user as the platform's key sees it.
    async fn read(&self, id: &str) -> Value {
        self.app
            .get_as(&self.key, &format!("/api/v1/users/{id}"))
            .await
            .assert_status(200)
            .json_value()
    }

    /// Owners of the live mode not scheduled for deletion.
    async fn live_owners(&self) -> Vec<String> {
        let list = self
            .app
            .get_as(&self.key, "/api/v1/users?page_size=100")
            .await
            .assert_status(200)
            .json_value();
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["role"] == "owner" && u["scheduledDeletion"].is_null())
            .map(|u| s(&u["id"]))
            .collect()
    }
}

#[tokio::test]
async fn only_an_owner_deletes_an_owner() {
    let p = Platform::new().await;
    let (owner_id, owner) = p.sign_in("owner@acme.example").await;
    let (_, admin) = p.user("adam@example.com", "admin", &p.key).await;
    let owner_path = format!("/api/v1/users/{owner_id}");

    // An admin, and the platform's key (which acts as admin), are refused as they are
    // when they try to change an owner's role.
    for token in [&admin, &p.key] {
        p.delete(token, &owner_path)
            .await
            .assert_error(403, "forbidden");
        p.app
            .send_json_as(token, Method::PUT, &owner_path, &json!({"role": "member"}))
            .await
            .assert_error(403, "forbidden");
    }
    let read = p.read(&owner_id).await;
    assert_eq!(read["role"], "owner");
    assert!(read["scheduledDeletion"].is_null(), "{read}");
    p.app
        .get_as(&owner, "/api/v1/users/auth")
        .await
        .assert_status(200);

    // An owner deletes another owner: scheduled, and their sessions end.
    let (olga_id, olga) = p.user("olga@example.com", "owner", &owner).await;
    let deleted = p
        .delete(&owner, &format!("/api/v1/users/{olga_id}"))
        .await
        .assert_status(200)
        .json_value();
    assert!(deleted["scheduledDeletion"].is_string(), "{deleted}");
    p.app
        .get_as(&olga, "/api/v1/users/auth")
        .await
        .assert_error(401, "invalid_credentials");
    // An admin still deletes members and admins.
    let (_, _) = p.user("mia@example.com", "member", &p.key).await;
    let (eve_id, _) = p.user("eve@example.com", "admin", &p.key).await;
    p.delete(&admin, &format!("/api/v1/users/{eve_id}"))
        .await
        .assert_status(200);
    assert_eq!(p.live_owners().await, [owner_id]);
}

#[tokio::test]
async fn the_last_owner_cannot_be_deleted_or_demoted_even_by_themselves() {
    let p = Platform::new().await;
    let (owner_id, owner) = p.sign_in("owner@acme.example").await;
    let owner_path = format!("/api/v1/users/{owner_id}");

    // 409: the caller may delete an owner, the platform's state (no other owner) forbids it.
    p.delete(&owner, "/api/v1/users/auth")
        .await
        .assert_error(409, "last_owner");
    p.delete(&owner, &owner_path)
        .await
        .assert_error(409, "last_owner");
    p.app
        .send_json_as(&owner, Method::PUT, &owner_path, &json!({"role": "admin"}))
        .await
        .assert_error(409, "last_owner");
    let read = p.read(&owner_id).await;
    assert_eq!(read["role"], "owner");
    assert!(read["scheduledDeletion"].is_null(), "{read}");
    p.app
        .get_as(&owner, "/api/v1/users/auth")
        .await
        .assert_status(200);

    // With a second owner, the first may leave (or step down); then the second is last.
    let (olga_id, olga) = p.user("olga@example.com", "owner", &owner).await;
    p.delete(&owner, "/api/v1/users/auth")
        .await
        .assert_status(200);
    p.delete(&olga, "/api/v1/users/auth")
        .await
        .assert_error(409, "last_owner");
    let (_, oscar) = p.user("oscar@example.com", "owner", &olga).await;
    p.app
        .send_json_as(
            &olga,
            Method::PUT,
            &format!("/api/v1/users/{olga_id}"),
            &json!({"role": "admin"}),
        )
        .await
        .assert_status(200);
    p.delete(&oscar, "/api/v1/users/auth")
        .await
        .assert_error(409, "last_owner");
    assert_eq!(p.live_owners().await.len(), 1);
}

#[tokio::test]
async fn two_owners_leaving_at_once_leave_one_owner() {
    let p = Platform::new().await;
    let (_, mut owner) = p.sign_in("owner@acme.example").await;
    // Each round the platform has two owners, and both leave at the same moment: one may,
    // then the other is the last. Neither is signed out by the other, so the loser always
    // reaches the check, and only a check that sees the winner's deletion refuses it.
    for round in 0..3 {
        let (_, other) = p
            .user(&format!("owner{round}@example.com"), "owner", &owner)
            .await;
        let (a, b) = tokio::join!(
            p.delete(&owner, "/api/v1/users/auth"),
            p.delete(&other, "/api/v1/users/auth"),
        );
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");
        assert_eq!(p.live_owners().await.len(), 1, "round {round}");
        if a.status.as_u16() == 200 {
            owner = other;
        }
    }
    // Two owners deleting each other: one is deleted, the other is refused (as the last
    // owner, or as signed out if the winner's deletion ended its session first).
    let (owner_id, _) = p.who_is(&owner).await;
    let (olga_id, olga) = p.user("olga@example.com", "owner", &owner).await;
    let (olga_path, owner_path) = (
        format!("/api/v1/users/{olga_id}"),
        format!("/api/v1/users/{owner_id}"),
    );
    let (a, b) = tokio::join!(p.delete(&owner, &olga_path), p.delete(&olga, &owner_path));
    let statuses = [a.status.as_u16(), b.status.as_u16()];
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 401 | 409)),
        "{statuses:?}"
    );
    assert_eq!(p.live_owners().await.len(), 1);
}
