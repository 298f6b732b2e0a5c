//! Users through real HTTP: admin paths, roles, links, scheduled deletion and purge,
//! isolation between platforms and modes.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_kernel::{Tenant, Timestamp};
use feria_testkit::{Method, TestApp};
use serde_json::{Value, json};

fn access(session: &Value) -> String {
    session["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn admins_create_list_read_and_update_users() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let key = &acme.api_keys.live;
    let created = app
        .send_json_as(
            key,
            Method::POST,
            "/api/v1/users",
            &json!({"email": "Zoe@Example.com", "username": "zoe", "firstName": "Zoe", "role": "editor"}),
        )
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(created["email"], "zoe@example.com");
    assert_eq!(created["role"], "editor");
    assert_eq!(created["firstName"], "Zoe");
    let id = created["id"].as_str().unwrap();

    app.send_json_as(
        key,
        Method::POST,
        "/api/v1/users",
        &json!({"email": "zoe@example.com"}),
    )
    .await
    .assert_error(409, "email_taken");
    app.send_json_as(
        key,
        Method::POST,
        "/api/v1/users",
        &json!({"email": "x@example.com", "username": "zoe"}),
    )
    .await
    .assert_error(409, "username_taken");
    app.send_json_as(key, Method::POST, "/api/v1/users", &json!({"email": "bad"}))
        .await
        .assert_error(422, "validation_failed");
    // API keys act as admin, not owner.
    app.send_json_as(
        key,
        Method::POST,
        "/api/v1/users",
        &json!({"email": "o2@example.com", "role": "owner"}),
    )
    .await
    .assert_error(403, "forbidden");

    let all = app
        .get_as(key, "/api/v1/users")
        .await
        .assert_status(200)
        .json_value();
    // The owner and zoe: x's creation failed on the username and was rolled back whole.
    assert_eq!(all["total"], 2, "{all}");
    let by_email = app
        .get_as(key, "/api/v1/users?email=ZOE@example.com")
        .await
        .json_value();
    assert_eq!(by_email["total"], 1);
    assert_eq!(by_email["data"][0]["id"], id);
    let by_username = app
        .get_as(key, "/api/v1/users?username=nobody")
        .await
        .json_value();
    assert_eq!(by_username["total"], 0);
    app.get_as(key, "/api/v1/users?page_size=500")
        .await
        .assert_error(422, "validation_failed");

    let path = format!("/api/v1/users/{id}");
    assert_eq!(
        app.get_as(key, &path).await.assert_status(200).json_value()["id"],
        id
    );
    let updated = app
        .send_json_as(
            key,
            Method::PUT,
            &path,
            &json!({"bio": "Designer.", "role": "admin"}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(updated["bio"], "Designer.");
    assert_eq!(updated["role"], "admin");
    app.get_as(key, "/api/v1/users/user_01HZX6FQJ5N6E7T2M3A4B5C6D7")
        .await
        .assert_error(404, "not_found");
    app.get_as(key, "/api/v1/users/garbage")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn admin_paths_need_an_admin_of_the_same_platform_and_mode() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    let member = app
        .sign_in(acme.platform.id.as_str(), "m@example.com", "live")
        .await;
    let member_id = member["user"]["id"].as_str().unwrap();
    let path = format!("/api/v1/users/{member_id}");

    app.get_as(&access(&member), "/api/v1/users")
        .await
        .assert_error(403, "forbidden");
    app.get_as(&access(&member), &path)
        .await
        .assert_error(403, "forbidden");
    app.get(&path).await.assert_error(401, "unauthorized");
    app.get_as(&other.api_keys.live, &path)
        .await
        .assert_error(404, "not_found");
    app.get_as(&acme.api_keys.test, &path)
        .await
        .assert_error(404, "not_found");
    app.send_json_as(
        &other.api_keys.live,
        Method::PUT,
        &path,
        &json!({"bio": "hacked"}),
    )
    .await
    .assert_error(404, "not_found");
    let listed = app
        .get_as(&other.api_keys.live, "/api/v1/users")
        .await
        .json_value();
    assert!(!listed.to_string().contains(member_id));

    // Only an owner may touch the owner role.
    let admin = app
        .send_json_as(
            &acme.api_keys.live,
            Method::PUT,
            &path,
            &json!({"role": "admin"}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(admin["role"], "admin");
    let owners = app
        .get_as(
            &acme.api_keys.live,
            "/api/v1/users?email=owner@acme.example",
        )
        .await
        .json_value();
    let owner_path = format!(
        "/api/v1/users/{}",
        owners["data"][0]["id"].as_str().unwrap()
    );
    app.send_json_as(
        &acme.api_keys.live,
        Method::PUT,
        &owner_path,
        &json!({"role": "member"}),
    )
    .await
    .assert_error(403, "forbidden");
    let owner = app
        .sign_in(acme.platform.id.as_str(), "owner@acme.example", "live")
        .await;
    app.send_json_as(
        &access(&owner),
        Method::PUT,
        &path,
        &json!({"role": "owner"}),
    )
    .await
    .assert_status(200);

    // Nobody changes their own role through /users/auth.
    app.send_json_as(
        &access(&member),
        Method::PUT,
        "/api/v1/users/auth",
        &json!({"role": "owner"}),
    )
    .await
    .assert_error(422, "validation_failed");
}

#[tokio::test]
async fn profile_links_are_added_listed_and_removed() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let ana = app
        .sign_in(acme.platform.id.as_str(), "ana@example.com", "live")
        .await;
    let token = access(&ana);
    let with_link = app
        .send_json_as(
            &token,
            Method::POST,
            "/api/v1/users/auth/link",
            &json!({"url": "https://ana.example.com", "title": "Site"}),
        )
        .await
        .assert_status(201)
        .json_value();
    let links = with_link["links"].as_array().unwrap();
    assert_eq!(links.len(), 1);
    // Stored normalised (docs/API-CONVENTIONS.md): an empty path reads back as `/`.
    assert_eq!(links[0]["url"], "https://ana.example.com/");
    let link_id = links[0]["id"].as_str().unwrap().to_owned();
    assert!(link_id.starts_with("link_"));
    let me = app.get_as(&token, "/api/v1/users/auth").await.json_value();
    assert_eq!(me["links"][0]["id"], link_id.as_str());

    app.send_json_as(
        &token,
        Method::POST,
        "/api/v1/users/auth/link",
        &json!({"url": "not a url"}),
    )
    .await
    .assert_error(422, "validation_failed");

    // Another user cannot remove it; an admin can add to anyone's profile.
    let bo = app
        .sign_in(acme.platform.id.as_str(), "bo@example.com", "live")
        .await;
    app.send(
        app.request(
            Method::DELETE,
            &format!("/api/v1/users/auth/link/{link_id}"),
        )
        .bearer_auth(access(&bo)),
    )
    .await
    .assert_error(404, "not_found");
    let ana_id = ana["user"]["id"].as_str().unwrap();
    app.send_json_as(
        &acme.api_keys.live,
        Method::POST,
        &format!("/api/v1/users/{ana_id}/link"),
        &json!({"url": "https://social.example/ana"}),
    )
    .await
    .assert_status(201);

    let removed = app
        .send(
            app.request(
                Method::DELETE,
                &format!("/api/v1/users/auth/link/{link_id}"),
            )
            .bearer_auth(&token),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(removed["links"].as_array().unwrap().len(), 1);
    let admin_removed = app
        .send(
            app.request(
                Method::DELETE,
                &format!(
                    "/api/v1/users/{ana_id}/link/{}",
                    removed["links"][0]["id"].as_str().unwrap()
                ),
            )
            .bearer_auth(&acme.api_keys.live),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(admin_removed["links"], json!([]));
}

#[tokio::test]
async fn scheduled_deletion_ends_sessions_and_the_purge_erases_personal_data() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let ana = app
        .sign_in(acme.platform.id.as_str(), "ana@example.com", "live")
        .await;
    let token = access(&ana);
    app.send_json_as(
        &token,
        Method::PUT,
        "/api/v1/users/auth",
        &json!({"username": "ana", "name": "Ana M"}),
    )
    .await
    .assert_status(200);

    let scheduled = app
        .send(
            app.request(Method::DELETE, "/api/v1/users/auth")
                .bearer_auth(&token),
        )
        .await
        .assert_status(200)
        .json_value();
    let when = Timestamp::parse(scheduled["scheduledDeletion"].as_str().unwrap()).unwrap();
    let days = when.since(Timestamp::now()).whole_days();
    assert!((29..=30).contains(&days), "{days}");
    app.get_as(&token, "/api/v1/users/auth")
        .await
        .assert_error(401, "invalid_credentials");
    app.post_json(
        "/api/v1/auth/session/refresh",
        &json!({"refresh_token": ana["refresh_token"]}),
    )
    .await
    .assert_error(401, "invalid_credentials");

    // Nothing is erased before the date ...
    let ana_id = ana["user"]["id"].as_str().unwrap();
    let mut conn = app.db().conn().await.unwrap();
    assert_eq!(
        feria_users::user::purge_due(&mut conn, Timestamp::now())
            .await
            .unwrap(),
        0
    );
    // ... and everything personal after it, once.
    let later = Timestamp::now().add(time::Duration::days(31));
    assert_eq!(
        feria_users::user::purge_due(&mut conn, later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        feria_users::user::purge_due(&mut conn, later)
            .await
            .unwrap(),
        0
    );
    let tenant = Tenant::new(acme.platform.id.clone(), feria_kernel::Mode::Live);
    let erased = feria_users::user::get(&mut conn, &tenant, &ana_id.parse().unwrap())
        .await
        .unwrap();
    assert!(
        erased.email.ends_with("@deleted.invalid"),
        "{}",
        erased.email
    );
    assert_eq!(erased.username, None);
    assert_eq!(erased.name, None);

    // The email is free again: signing up anew makes a new account.
    let again = app
        .sign_in(acme.platform.id.as_str(), "ana@example.com", "live")
        .await;
    assert_ne!(again["user"]["id"], ana["user"]["id"]);

    // Admins schedule deletion too.
    let bo = app
        .sign_in(acme.platform.id.as_str(), "bo@example.com", "live")
        .await;
    let bo_path = format!("/api/v1/users/{}", bo["user"]["id"].as_str().unwrap());
    let scheduled = app
        .send(
            app.request(Method::DELETE, &bo_path)
                .bearer_auth(&acme.api_keys.live),
        )
        .await
        .assert_status(200)
        .json_value();
    assert!(scheduled["scheduledDeletion"].is_string());
    app.get_as(&access(&bo), "/api/v1/users/auth")
        .await
        .assert_error(401, "invalid_credentials");
}
