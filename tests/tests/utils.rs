//! Utils through real HTTP: usernames from text, image uploads recognised by content and
//! served back, and the image routes of platforms and users that use them.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_testkit::{Method, TestApp};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// A real 1×1 PNG.
const PNG: &[u8] = feria_testkit::PNG_1X1;
/// A real 1×1 GIF.
const GIF: &[u8] = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;";
/// A real 1×1 greyscale baseline JPEG (one block: DC difference 0, end of block): an
/// upload must be a whole image, its header decoding to the frame and scan.
fn jpeg() -> Vec<u8> {
    let mut jpeg = b"\xff\xd8\xff\xdb\0C\0".to_vec();
    jpeg.extend_from_slice(&[1; 64]);
    jpeg.extend_from_slice(b"\xff\xc0\0\x0b\x08\0\x01\0\x01\x01\x01\x11\0");
    for class in [0x00, 0x10] {
        jpeg.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
        jpeg.extend_from_slice(&[0; 16]);
    }
    jpeg.extend_from_slice(b"\xff\xda\0\x08\x01\x01\0\0?\0?\xff\xd9");
    jpeg
}

fn form(name: &str, file_name: &str, bytes: &[u8], claimed_type: &str) -> Form {
    Form::new().part(
        name.to_owned(),
        Part::bytes(bytes.to_vec())
            .file_name(file_name.to_owned())
            .mime_str(claimed_type)
            .unwrap(),
    )
}

async fn upload(app: &TestApp, form: Form) -> feria_testkit::TestResponse {
    app.send(
        app.request(Method::POST, "/api/v1/utils/media/upload")
            .multipart(form),
    )
    .await
}

#[tokio::test]
async fn usernames_are_made_from_text_and_checked_on_the_platform() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let platform = acme.platform.id.as_str();

    // Without a platform: the slug only.
    let made = app
        .post_json(
            "/api/v1/utils/generate/username",
            &json!({"text": "José Ñúñez"}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        made,
        json!({"username": "jose_nunez", "available": true, "suggestions": []})
    );

    // The seed's spelling of the path answers the same.
    let seed = app
        .post_json(
            "/api/v1/utils/gnerate/username",
            &json!({"text": "John Doe", "platform_id": platform}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(seed["username"], "john_doe");
    assert_eq!(seed["available"], true);

    // Taken in live mode → alternatives, all free and all valid usernames.
    app.send_json_as(
        &acme.api_keys.live,
        Method::POST,
        "/api/v1/users",
        &json!({"email": "john@example.com", "username": "john_doe"}),
    )
    .await
    .assert_status(201);
    app.send_json_as(
        &acme.api_keys.live,
        Method::POST,
        "/api/v1/users",
        &json!({"email": "john1@example.com", "username": "john_doe1"}),
    )
    .await
    .assert_status(201);
    let taken = app
        .post_json(
            "/api/v1/utils/generate/username",
            &json!({"text": "John Doe", "platform_id": platform}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(taken["username"], "john_doe");
    assert_eq!(taken["available"], false);
    let suggestions: Vec<String> = serde_json::from_value(taken["suggestions"].clone()).unwrap();
    assert_eq!(suggestions.len(), 5, "{suggestions:?}");
    assert!(!suggestions.contains(&"john_doe1".to_owned()));
    assert!(suggestions.iter().all(|s| s.starts_with("john_doe")));
    // A suggestion can really be used.
    app.send_json_as(
        &acme.api_keys.live,
        Method::POST,
        "/api/v1/users",
        &json!({"email": "john2@example.com", "username": suggestions[0]}),
    )
    .await
    .assert_status(201);

    // The test mode has its own users: the name is free there.
    let test_mode = app
        .post_json(
            "/api/v1/utils/generate/username",
            &json!({"text": "John Doe", "platform_id": platform, "mode": "test"}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(test_mode["available"], true);

    // Validation and unknown platforms.
    app.post_json("/api/v1/utils/generate/username", &json!({"text": "!!!"}))
        .await
        .assert_error(422, "validation_failed");
    app.post_json("/api/v1/utils/generate/username", &json!({"text": ""}))
        .await
        .assert_error(422, "validation_failed");
    app.post_json("/api/v1/utils/generate/username", &json!({}))
        .await
        .assert_error(422, "validation_failed");
    app.post_json(
        "/api/v1/utils/generate/username",
        &json!({"text": "x y z", "platform_id": "plat_01HZZ0J7N7P5B4K2V1Q9R8S6T5"}),
    )
    .await
    .assert_error(404, "not_found");
}

#[tokio::test]
async fn images_are_recognised_by_content_stored_and_served() {
    let app = TestApp::spawn().await;

    // A PNG sent with a misleading name and type is still a PNG.
    let stored = upload(&app, form("file", "cat.gif", PNG, "image/gif"))
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(stored["content_type"], "image/png");
    assert_eq!(stored["byte_size"], PNG.len());
    let id = stored["id"].as_str().unwrap();
    assert!(id.starts_with("med_"));
    let url = stored["url"].as_str().unwrap();
    // Relative without PUBLIC_URL: never built from the request's `Host`.
    assert_eq!(url, format!("/media/{id}"));
    let served = app.get(&format!("/media/{id}")).await.assert_status(200);
    assert_eq!(served.body, PNG);
    assert_eq!(served.header("content-type"), Some("image/png"));
    assert_eq!(served.header("x-content-type-options"), Some("nosniff"));
    assert!(
        served
            .header("cache-control")
            .unwrap()
            .contains("immutable")
    );
    // On disk under DATA_DIR/media, complete, with no temporary file left behind.
    let on_disk = std::fs::read(app.data_dir().join("media").join(id)).unwrap();
    assert_eq!(on_disk, PNG);
    let leftovers = std::fs::read_dir(app.data_dir().join("media"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
        .count();
    assert_eq!(leftovers, 0);

    for (bytes, content_type) in [(GIF.to_vec(), "image/gif"), (jpeg(), "image/jpeg")] {
        let stored = upload(
            &app,
            form("file", "upload.bin", &bytes, "application/octet-stream"),
        )
        .await
        .assert_status(201)
        .json_value();
        assert_eq!(stored["content_type"], content_type);
        let served = app
            .get(&format!("/media/{}", stored["id"].as_str().unwrap()))
            .await
            .assert_status(200);
        assert_eq!(served.header("content-type"), Some(content_type));
    }

    // Not an image, whatever its name says.
    upload(
        &app,
        form("file", "evil.png", b"<svg onload=alert(1)>", "image/png"),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    // Empty file, no `file` part, not multipart at all.
    upload(&app, form("file", "empty.png", b"", "image/png"))
        .await
        .assert_error(422, "validation_failed");
    upload(&app, form("picture", "cat.png", PNG, "image/png"))
        .await
        .assert_error(422, "validation_failed");
    app.post_json("/api/v1/utils/media/upload", &json!({"file": "x"}))
        .await
        .assert_error(415, "unsupported_media_type");

    // Unknown media.
    app.get("/media/med_01HZZ0J7N7P5B4K2V1Q9R8S6T5")
        .await
        .assert_error(404, "not_found");
    app.get("/media/not-an-id")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn uploads_are_limited_in_size_and_per_address() {
    let app = TestApp::builder()
        .config(|config| {
            config.media_max_bytes = 1024;
            config.media_uploads_per_ip = 3;
        })
        .spawn()
        .await;
    let mut big = PNG.to_vec();
    big.resize(1025, 0);
    upload(&app, form("file", "big.png", &big, "image/png"))
        .await
        .assert_error(413, "payload_too_large");
    let mut exact = PNG.to_vec();
    exact.resize(1024, 0);
    upload(&app, form("file", "exact.png", &exact, "image/png"))
        .await
        .assert_status(201);
    upload(&app, form("file", "cat.png", PNG, "image/png"))
        .await
        .assert_status(201);
    let limited = upload(&app, form("file", "cat.png", PNG, "image/png")).await;
    limited.assert_error(429, "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry));
    // Nothing over the limit was stored.
    let stored = std::fs::read_dir(app.data_dir().join("media"))
        .unwrap()
        .count();
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn platforms_and_users_take_an_uploaded_image() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    let media = upload(&app, form("file", "logo.png", PNG, "image/png"))
        .await
        .assert_status(201)
        .json_value();
    let media_id = media["id"].as_str().unwrap();
    let url = media["url"].as_str().unwrap();
    let platform_path = format!("/api/v1/platforms/{}/image", acme.platform.id);

    // Platform logo: admins (the API key) of this platform only.
    let platform = app
        .send_json_as(
            &acme.api_keys.live,
            Method::POST,
            &platform_path,
            &json!({"media_id": media_id}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(platform["logo"], url);
    app.send(
        app.request(Method::POST, &platform_path)
            .json(&json!({"media_id": media_id})),
    )
    .await
    .assert_error(401, "unauthorized");
    app.send_json_as(
        &other.api_keys.live,
        Method::POST,
        &platform_path,
        &json!({"media_id": media_id}),
    )
    .await
    .assert_error(404, "not_found");
    app.send_json_as(
        &acme.api_keys.live,
        Method::POST,
        &platform_path,
        &json!({"media_id": "med_01HZZ0J7N7P5B4K2V1Q9R8S6T5"}),
    )
    .await
    .assert_error(422, "validation_failed");
    let member = app
        .sign_in(acme.platform.id.as_str(), "member@example.com", "live")
        .await;
    let member_token = member["access_token"].as_str().unwrap();
    app.send_json_as(
        member_token,
        Method::POST,
        &platform_path,
        &json!({"media_id": media_id}),
    )
    .await
    .assert_error(403, "forbidden");

    // The signed-in user's own image.
    let me: Value = app
        .send_json_as(
            member_token,
            Method::POST,
            "/api/v1/users/auth/image",
            &json!({"media_id": media_id}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(me["image"], url);
    app.send_json_as(
        &acme.api_keys.live,
        Method::POST,
        "/api/v1/users/auth/image",
        &json!({"media_id": media_id}),
    )
    .await
    .assert_error(403, "api_key_not_allowed");

    // An admin sets another user's image; other tenants and modes see nothing.
    let member_id = member["user"]["id"].as_str().unwrap();
    let user_path = format!("/api/v1/users/{member_id}/image");
    let gif = upload(&app, form("file", "avatar.gif", GIF, "image/gif"))
        .await
        .assert_status(201)
        .json_value();
    let updated = app
        .send_json_as(
            &acme.api_keys.live,
            Method::POST,
            &user_path,
            &json!({"media_id": gif["id"]}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(updated["image"], gif["url"]);
    app.send_json_as(
        &acme.api_keys.test,
        Method::POST,
        &user_path,
        &json!({"media_id": gif["id"]}),
    )
    .await
    .assert_error(404, "not_found");
    app.send_json_as(
        &other.api_keys.live,
        Method::POST,
        &user_path,
        &json!({"media_id": gif["id"]}),
    )
    .await
    .assert_error(404, "not_found");
    app.send_json_as(
        member_token,
        Method::POST,
        &user_path,
        &json!({"media_id": gif["id"]}),
    )
    .await
    .assert_error(403, "forbidden");
    app.send_json_as(
        &acme.api_keys.live,
        Method::POST,
        &user_path,
        &json!({"media_id": 42}),
    )
    .await
    .assert_error(422, "validation_failed");
}
