//! Identity and tenancy through real HTTP: platforms, API keys, sign-in by emailed code,
//! sessions, roles, tenant and mode isolation, rate limits.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use feria_testkit::{CreatedPlatform, Method, TestApp};
use serde_json::{Value, json};

async fn app_with_platform() -> (TestApp, CreatedPlatform) {
    let app = TestApp::spawn().await;
    let created = app
        .create_platform("Acme Market", "acme.example.com", "owner@acme.example")
        .await;
    (app, created)
}

fn token(session: &Value, field: &str) -> String {
    session[field].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_by_emailed_code_refresh_and_reuse_detection() {
    let (app, acme) = app_with_platform().await;
    let platform_id = acme.platform.id.to_string();

    // Request a code: it arrives by mail, in the .eml files of MAIL_DIR.
    let sent = app
        .post_json(
            "/api/v1/auth/otp/email",
            &json!({"platform_id": platform_id, "email": "Ana@Example.com"}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(sent, json!({"status": "sent", "expires_in": 600}));
    let mail = app.mails().pop().unwrap();
    assert_eq!(mail.to, "ana@example.com");
    assert!(mail.subject.contains("Acme Market"), "{}", mail.subject);
    let code = app.last_code_for("ana@example.com");

    // Verify: a session and the user, created on first sign-in.
    let session = app
        .post_json(
            "/api/v1/auth/otp/verify",
            &json!({"platform_id": platform_id, "email": "ana@example.com", "code": code}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in"], 3600);
    assert_eq!(session["user"]["email"], "ana@example.com");
    assert_eq!(session["user"]["role"], "member");
    assert_eq!(session["user"]["platform_id"], platform_id);
    assert!(session["user"]["authenticated"].is_string());
    let access = token(&session, "access_token");
    let refresh = token(&session, "refresh_token");

    // Authenticated calls.
    let me = app
        .get_as(&access, "/api/v1/users/auth")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(me["id"], session["user"]["id"]);

    // The code works once.
    app.post_json(
        "/api/v1/auth/otp/verify",
        &json!({"platform_id": platform_id, "email": "ana@example.com", "code": code}),
    )
    .await
    .assert_error(401, "invalid_code");

    // Refresh rotates both tokens; the old access token stops working.
    let rotated = app
        .post_json(
            "/api/v1/auth/session/refresh",
            &json!({"refresh_token": refresh}),
        )
        .await
        .assert_status(200)
        .json_value();
    let access2 = token(&rotated, "access_token");
    let refresh2 = token(&rotated, "refresh_token");
    assert_ne!(access2, access);
    assert_ne!(refresh2, refresh);
    assert_eq!(rotated["user"]["id"], session["user"]["id"]);
    app.get_as(&access, "/api/v1/users/auth")
        .await
        .assert_error(401, "invalid_credentials");
    app.get_as(&access2, "/api/v1/users/auth")
        .await
        .assert_status(200);

    // Reusing the rotated refresh token is refused and revokes the whole family.
    app.post_json(
        "/api/v1/auth/session/refresh",
        &json!({"refresh_token": refresh}),
    )
    .await
    .assert_error(401, "refresh_token_reused");
    app.get_as(&access2, "/api/v1/users/auth")
        .await
        .assert_error(401, "invalid_credentials");
    app.post_json(
        "/api/v1/auth/session/refresh",
        &json!({"refresh_token": refresh2}),
    )
    .await
    .assert_error(401, "invalid_credentials");

    // Signing in again works, and the same account is found.
    let again = app.sign_in(&platform_id, "ana@example.com", "live").await;
    assert_eq!(again["user"]["id"], session["user"]["id"]);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let (app, acme) = app_with_platform().await;
    let session = app
        .sign_in(acme.platform.id.as_str(), "bo@example.com", "live")
        .await;
    let access = token(&session, "access_token");
    let logout = app
        .send(
            app.request(Method::POST, "/api/v1/auth/session/logout")
                .bearer_auth(&access),
        )
        .await;
    assert_eq!(logout.status.as_u16(), 204);
    app.get_as(&access, "/api/v1/users/auth")
        .await
        .assert_error(401, "invalid_credentials");
    app.post_json(
        "/api/v1/auth/session/refresh",
        &json!({"refresh_token": token(&session, "refresh_token")}),
    )
    .await
    .assert_error(401, "invalid_credentials");
    // An API key has no session to end.
    app.send(
        app.request(Method::POST, "/api/v1/auth/session/logout")
            .bearer_auth(&acme.api_keys.live),
    )
    .await
    .assert_error(403, "api_key_not_allowed");
}

#[tokio::test]
async fn wrong_codes_are_limited_to_five_tries() {
    let (app, acme) = app_with_platform().await;
    let platform_id = acme.platform.id.to_string();
    app.post_json(
        "/api/v1/auth/otp/email",
        &json!({"platform_id": platform_id, "email": "cy@example.com"}),
    )
    .await
    .assert_status(200);
    let code = app.last_code_for("cy@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        app.post_json(
            "/api/v1/auth/otp/verify",
            &json!({"platform_id": platform_id, "email": "cy@example.com", "code": wrong}),
        )
        .await
        .assert_error(401, "invalid_code");
    }
    // The right code no longer helps: the challenge is spent.
    app.post_json(
        "/api/v1/auth/otp/verify",
        &json!({"platform_id": platform_id, "email": "cy@example.com", "code": code}),
    )
    .await
    .assert_error(429, "too_many_attempts");
}

#[tokio::test]
async fn a_new_code_replaces_the_previous_one_and_codes_expire() {
    // The server's clock stands still unless the test moves it: no step races the code's
    // lifetime, however slow the machine.
    let time = feria_kernel::time::ManualClock::new();
    let clock = time.clock();
    let ttl = Duration::from_secs(10 * 60);
    let app = TestApp::builder()
        .config(move |config| {
            config.clock = clock;
            config.auth.otp_ttl = ttl;
        })
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let platform_id = acme.platform.id.to_string();
    let request = json!({"platform_id": platform_id, "email": "di@example.com"});
    app.post_json("/api/v1/auth/otp/email", &request)
        .await
        .assert_status(200);
    let first = app.last_code_for("di@example.com");
    app.post_json("/api/v1/auth/otp/email", &request)
        .await
        .assert_status(200);
    let second = app.last_code_for("di@example.com");
    if first != second {
        app.post_json(
            "/api/v1/auth/otp/verify",
            &json!({"platform_id": platform_id, "email": "di@example.com", "code": first}),
        )
        .await
        .assert_error(401, "invalid_code");
    }
    // A moment before the end of its lifetime the code is still checked (a wrong guess is
    // wrong, not expired); at the end it has expired, right or not.
    time.advance(ttl - Duration::from_secs(1));
    let wrong = if second == "000000" {
        "000001"
    } else {
        "000000"
    };
    app.post_json(
        "/api/v1/auth/otp/verify",
        &json!({"platform_id": platform_id, "email": "di@example.com", "code": wrong}),
    )
    .await
    .assert_error(401, "invalid_code");
    time.advance(Duration::from_secs(1));
    app.post_json(
        "/api/v1/auth/otp/verify",
        &json!({"platform_id": platform_id, "email": "di@example.com", "code": second}),
    )
    .await
    .assert_error(401, "code_expired");
}

#[tokio::test]
async fn code_requests_are_rate_limited_per_email_and_per_address() {
    let (app, acme) = app_with_platform().await;
    let platform_id = acme.platform.id.to_string();
    let request = json!({"platform_id": platform_id, "email": "ed@example.com"});
    for _ in 0..5 {
        app.post_json("/api/v1/auth/otp/email", &request)
            .await
            .assert_status(200);
    }
    let limited = app.post_json("/api/v1/auth/otp/email", &request).await;
    limited.assert_error(429, "rate_limited");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    // Another email is not affected by this one's limit.
    app.post_json(
        "/api/v1/auth/otp/email",
        &json!({"platform_id": platform_id, "email": "fay@example.com"}),
    )
    .await
    .assert_status(200);

    let strict = TestApp::builder()
        .config(|c| c.otp_requests_per_ip = 2)
        .spawn()
        .await;
    let other = strict
        .create_platform("Other", "other.example.com", "o@other.example")
        .await;
    for (index, expected) in [200, 200, 429].into_iter().enumerate() {
        let response = strict
            .post_json(
                "/api/v1/auth/otp/email",
                &json!({"platform_id": other.platform.id, "email": format!("u{index}@example.com")}),
            )
            .await;
        if expected == 429 {
            response.assert_error(429, "rate_limited");
            assert!(response.header("retry-after").is_some());
        } else {
            response.assert_status(200);
        }
    }
}

#[tokio::test]
async fn sign_in_validates_its_input() {
    let (app, acme) = app_with_platform().await;
    let body = app
        .post_json(
            "/api/v1/auth/otp/email",
            &json!({"platform_id": acme.platform.id, "email": "not-an-email"}),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(body.details[0].field, "email");
    app.post_json(
        "/api/v1/auth/otp/email",
        &json!({"platform_id": "plat_01HZX6FQJ5N6E7T2M3A4B5C6D7", "email": "a@example.com"}),
    )
    .await
    .assert_error(404, "not_found");
    app.post_json(
        "/api/v1/auth/otp/email",
        &json!({"platform_id": "user_01HZX6FQJ5N6E7T2M3A4B5C6D7", "email": "a@example.com"}),
    )
    .await
    .assert_error(422, "validation_failed");
    app.post_json(
        "/api/v1/auth/otp/verify",
        &json!({"platform_id": acme.platform.id, "email": "a@example.com", "code": "12"}),
    )
    .await
    .assert_error(422, "validation_failed");
    app.post_json(
        "/api/v1/auth/session/refresh",
        &json!({"refresh_token": "fer_rt_nope"}),
    )
    .await
    .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn api_keys_select_platform_and_mode() {
    let (app, acme) = app_with_platform().await;
    let live = app
        .get_as(&acme.api_keys.live, "/api/v1/platforms")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(live["id"], acme.platform.id.as_str());
    assert_eq!(live["mode"], "live");
    assert_eq!(live["name"], "Acme Market");
    assert_eq!(live["platformFee"], 0.0);
    assert_eq!(live["admins"].as_array().unwrap().len(), 1);
    let test = app
        .get_as(&acme.api_keys.test, "/api/v1/platforms")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(test["mode"], "test");
    assert_ne!(
        test["admins"], live["admins"],
        "test and live owners are separate accounts"
    );

    app.get("/api/v1/platforms")
        .await
        .assert_error(401, "unauthorized");
    app.get_as("fer_live_0000", "/api/v1/platforms")
        .await
        .assert_error(401, "invalid_credentials");
    app.get_as("garbage", "/api/v1/platforms")
        .await
        .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn platforms_are_updated_by_admins_of_their_own_platform_only() {
    let (app, acme) = app_with_platform().await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    let path = format!("/api/v1/platforms/{}", acme.platform.id);
    let changes = json!({"name": "Acme Bazaar", "platformFee": 2.5, "description": "Things."});

    let updated = app
        .send_json_as(&acme.api_keys.live, Method::PUT, &path, &changes)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(updated["name"], "Acme Bazaar");
    assert_eq!(updated["platformFee"], 2.5);
    assert_eq!(updated["description"], "Things.");

    // Another platform's key: 404, never the object.
    app.send_json_as(&other.api_keys.live, Method::PUT, &path, &changes)
        .await
        .assert_error(404, "not_found");
    // A member: 403. The owner: allowed.
    let member = app
        .sign_in(acme.platform.id.as_str(), "member@example.com", "live")
        .await;
    app.send_json_as(
        &token(&member, "access_token"),
        Method::PUT,
        &path,
        &changes,
    )
    .await
    .assert_error(403, "forbidden");
    let owner = app
        .sign_in(acme.platform.id.as_str(), "owner@acme.example", "live")
        .await;
    assert_eq!(owner["user"]["role"], "owner");
    app.send_json_as(
        &token(&owner, "access_token"),
        Method::PUT,
        &path,
        &json!({"url": "https://acme.example.com"}),
    )
    .await
    .assert_status(200);

    // Validation and conflicts.
    let invalid = app
        .send_json_as(
            &acme.api_keys.live,
            Method::PUT,
            &path,
            &json!({"platformFee": 250}),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(invalid.details[0].field, "platformFee");
    app.send_json_as(
        &acme.api_keys.live,
        Method::PUT,
        &path,
        &json!({"domain": "other.example.com"}),
    )
    .await
    .assert_error(409, "domain_taken");
    app.send_json_as(
        &acme.api_keys.live,
        Method::PUT,
        &path,
        &json!({"owner": "me"}),
    )
    .await
    .assert_error(422, "validation_failed");
}

#[tokio::test]
async fn platforms_are_found_by_domain_without_credentials() {
    let (app, acme) = app_with_platform().await;
    let found = app
        .get("/api/v1/platforms/domains/ACME.example.com")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(found["id"], acme.platform.id.as_str());
    app.get("/api/v1/platforms/domains/nowhere.example.com")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn keys_are_listed_masked_and_rolled() {
    let (app, acme) = app_with_platform().await;
    let keys = app
        .get_as(&acme.api_keys.live, "/api/v1/platforms/keys")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(keys["total"], 2);
    let listed = keys.to_string();
    assert!(!listed.contains(&acme.api_keys.live) && !listed.contains(&acme.api_keys.test));
    assert!(keys["data"][0]["masked"].as_str().unwrap().contains('…'));

    let rolled = app
        .send(
            app.request(Method::POST, "/api/v1/platforms/keys/roll")
                .bearer_auth(&acme.api_keys.test),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(rolled["mode"], "test");
    let new_key = rolled["api_key"].as_str().unwrap();
    assert!(new_key.starts_with("fer_test_"));
    app.get_as(&acme.api_keys.test, "/api/v1/platforms")
        .await
        .assert_error(401, "invalid_credentials");
    app.get_as(new_key, "/api/v1/platforms")
        .await
        .assert_status(200);
    app.get_as(&acme.api_keys.live, "/api/v1/platforms")
        .await
        .assert_status(200);

    let member = app
        .sign_in(acme.platform.id.as_str(), "m@example.com", "live")
        .await;
    app.get_as(&token(&member, "access_token"), "/api/v1/platforms/keys")
        .await
        .assert_error(403, "forbidden");
}

#[tokio::test]
async fn community_membership_is_scoped_by_platform_and_mode() {
    let (app, acme) = app_with_platform().await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    let ana = app
        .sign_in(acme.platform.id.as_str(), "ana@example.com", "live")
        .await;
    let ana_id = ana["user"]["id"].as_str().unwrap();
    let path = format!("/api/v1/platforms/community/user/{ana_id}");

    let yes = app
        .get_as(&acme.api_keys.live, &path)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(yes["member"], true);
    assert_eq!(yes["role"], "member");
    let test_mode = app
        .get_as(&acme.api_keys.test, &path)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        test_mode["member"], false,
        "a live user is not in the test world"
    );
    let elsewhere = app
        .get_as(&other.api_keys.live, &path)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(elsewhere["member"], false);
    assert_eq!(elsewhere["role"], Value::Null);
    let nonsense = app
        .get_as(
            &acme.api_keys.live,
            "/api/v1/platforms/community/user/nobody",
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(nonsense["member"], false);
    app.get(&path).await.assert_error(401, "unauthorized");
}

#[tokio::test]
async fn users_edit_their_own_profile_with_a_session_only() {
    let (app, acme) = app_with_platform().await;
    let platform_id = acme.platform.id.to_string();
    let ana = app.sign_in(&platform_id, "ana@example.com", "live").await;
    let bo = app.sign_in(&platform_id, "bo@example.com", "live").await;
    let ana_token = token(&ana, "access_token");

    let updated = app
        .send_json_as(
            &ana_token,
            Method::PUT,
            "/api/v1/users/auth",
            &json!({"username": "Ana_M", "firstName": "Ana", "timezone": "Europe/Madrid"}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(updated["username"], "ana_m");
    assert_eq!(updated["firstName"], "Ana");
    assert_eq!(updated["timezone"], "Europe/Madrid");

    app.send_json_as(
        &token(&bo, "access_token"),
        Method::PUT,
        "/api/v1/users/auth",
        &json!({"username": "ana_m"}),
    )
    .await
    .assert_error(409, "username_taken");
    let invalid = app
        .send_json_as(
            &ana_token,
            Method::PUT,
            "/api/v1/users/auth",
            &json!({"username": "a b"}),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(invalid.details[0].field, "username");

    app.get_as(&acme.api_keys.live, "/api/v1/users/auth")
        .await
        .assert_error(403, "api_key_not_allowed");
    app.get("/api/v1/users/auth")
        .await
        .assert_error(401, "unauthorized");

    // Test-mode accounts are separate from live ones.
    let ana_test = app.sign_in(&platform_id, "ana@example.com", "test").await;
    assert_ne!(ana_test["user"]["id"], ana["user"]["id"]);
    let me_test = app
        .get_as(&token(&ana_test, "access_token"), "/api/v1/users/auth")
        .await
        .json_value();
    assert_eq!(me_test["username"], Value::Null);
}
