//! Uploaded images through real HTTP, on both backends: the URL of an image never comes
//! from the request (`Host`, `X-Forwarded-Host`, `Forwarded`) and is never stored (the
//! database keeps media ids; URLs are made when read, under `PUBLIC_URL` or relative);
//! rows written before that are read by their media id; an upload is an image only when
//! its header decodes (no signature-only or truncated file) and its size is bounded; a
//! multipart body cut short is refused at once instead of holding the request.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use feria_testkit::{Method, TestApp, TestResponse};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// A real 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\xa5\xf7\xc9\x8b\0\0\0\0IEND\xaeB`\x82";
/// A real 1×1 GIF.
const GIF: &[u8] = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;";

const EVIL: &str = "evil.example";

/// An upload request whose every host-giving header names another host.
fn upload_request(app: &TestApp, form: Form) -> reqwest::RequestBuilder {
    spoofed(app.request(Method::POST, "/api/v1/utils/media/upload")).multipart(form)
}

fn spoofed(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header("Host", EVIL)
        .header("X-Forwarded-Host", EVIL)
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", format!("host={EVIL};proto=https"))
}

fn png_form(bytes: &[u8]) -> Form {
    Form::new().part(
        "file",
        Part::bytes(bytes.to_vec())
            .file_name("image.png")
            .mime_str("image/png")
            .unwrap(),
    )
}

async fn upload(app: &TestApp, bytes: &[u8]) -> TestResponse {
    app.send(
        app.request(Method::POST, "/api/v1/utils/media/upload")
            .multipart(png_form(bytes)),
    )
    .await
}

/// The stored value of one column of one row, read behind the API's back.
async fn stored(app: &TestApp, table: &str, column: &str, id: &str) -> Option<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        value: Option<String>,
    }
    let mut conn = app.db().conn().await.unwrap();
    let sql = format!("SELECT {column} AS value FROM {table} WHERE id = '{id}'");
    let row: Row = feria_kernel::with_conn!(&mut conn, c => {
        diesel_async::RunQueryDsl::get_result(diesel::sql_query(&sql), c).await
    })
    .unwrap();
    row.value
}

fn assert_no_evil(what: &str, text: &str) {
    assert!(
        !text.contains(EVIL),
        "{what} mentions the request's host: {text}"
    );
}

/// A platform, a signed-in member and an uploaded PNG, with the member's image and the
/// platform's logo set to it, every request naming another host.
struct Scene {
    app: TestApp,
    api_key: String,
    member_id: String,
    member_token: String,
    platform_id: String,
    media_id: String,
    /// Every response body seen on the way.
    bodies: Vec<(String, String)>,
}

async fn scene(app: TestApp) -> Scene {
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let api_key = acme.api_keys.live.clone();
    let platform_id = acme.platform.id.to_string();
    let mut bodies = Vec::new();

    let uploaded = app
        .send(upload_request(&app, png_form(PNG)))
        .await
        .assert_status(201);
    bodies.push(("the upload".to_owned(), uploaded.text()));
    let media_id = uploaded.json_value()["id"].as_str().unwrap().to_owned();
    assert!(media_id.starts_with("med_"), "{media_id}");

    let member = app
        .sign_in(&platform_id, "member@example.com", "live")
        .await;
    let member_token = member["access_token"].as_str().unwrap().to_owned();
    let member_id = member["user"]["id"].as_str().unwrap().to_owned();

    let me = app
        .send(
            spoofed(app.request(Method::POST, "/api/v1/users/auth/image"))
                .bearer_auth(&member_token)
                .json(&json!({"media_id": media_id})),
        )
        .await
        .assert_status(200);
    bodies.push(("the member's own image".to_owned(), me.text()));
    let by_admin = app
        .send(
            spoofed(app.request(Method::POST, &format!("/api/v1/users/{member_id}/image")))
                .bearer_auth(&api_key)
                .json(&json!({"media_id": media_id})),
        )
        .await
        .assert_status(200);
    bodies.push(("the admin's image change".to_owned(), by_admin.text()));
    let logo = app
        .send(
            spoofed(app.request(
                Method::POST,
                &format!("/api/v1/platforms/{platform_id}/image"),
            ))
            .bearer_auth(&api_key)
            .json(&json!({"media_id": media_id})),
        )
        .await
        .assert_status(200);
    bodies.push(("the logo change".to_owned(), logo.text()));

    Scene {
        app,
        api_key,
        member_id,
        member_token,
        platform_id,
        media_id,
        bodies,
    }
}

impl Scene {
    /// Every later read that shows the image: (what, JSON body).
    async fn reads(&self) -> Vec<(String, Value)> {
        let app = &self.app;
        let mut reads = Vec::new();
        let user = app
            .get_as(&self.api_key, &format!("/api/v1/users/{}", self.member_id))
            .await
            .assert_status(200);
        reads.push(("GET the user".to_owned(), user.json_value()));
        let list = app
            .get_as(&self.api_key, "/api/v1/users")
            .await
            .assert_status(200)
            .json_value();
        let listed = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == self.member_id.as_str())
            .cloned()
            .unwrap();
        reads.push(("the user in the list".to_owned(), listed));
        let me = app
            .get_as(&self.member_token, "/api/v1/users/auth")
            .await
            .assert_status(200);
        reads.push(("GET the signed-in user".to_owned(), me.json_value()));
        let platform = app
            .get_as(&self.api_key, "/api/v1/platforms")
            .await
            .assert_status(200);
        reads.push(("GET the platform".to_owned(), platform.json_value()));
        reads
    }

    async fn stored_image(&self) -> Option<String> {
        stored(&self.app, "users", "image", &self.member_id).await
    }

    async fn stored_logo(&self) -> Option<String> {
        stored(&self.app, "platforms", "logo", &self.platform_id).await
    }
}

#[tokio::test]
async fn no_stored_or_shown_image_url_comes_from_the_request_host() {
    let scene = scene(TestApp::spawn().await).await;
    let relative = format!("/media/{}", scene.media_id);
    for (what, body) in &scene.bodies {
        assert_no_evil(what, body);
    }
    let upload: Value = serde_json::from_str(&scene.bodies[0].1).unwrap();
    // Without PUBLIC_URL the URL is relative to the server that answered.
    assert_eq!(upload["url"], relative.as_str());

    // What is stored: the media id, never a URL.
    let image = scene.stored_image().await;
    let logo = scene.stored_logo().await;
    assert_no_evil("the stored user image", image.as_deref().unwrap_or(""));
    assert_no_evil("the stored platform logo", logo.as_deref().unwrap_or(""));
    assert_eq!(image.as_deref(), Some(scene.media_id.as_str()));
    assert_eq!(logo.as_deref(), Some(scene.media_id.as_str()));

    for (what, body) in scene.reads().await {
        assert_no_evil(&what, &body.to_string());
        let shown = if what.contains("platform") {
            &body["logo"]
        } else {
            &body["image"]
        };
        assert_eq!(shown, relative.as_str(), "{what}");
    }

    // The relative URL serves the image.
    let served = scene.app.get(&relative).await.assert_status(200);
    assert_eq!(served.body, PNG);
}

#[tokio::test]
async fn public_url_is_the_base_of_every_image_url() {
    let app = TestApp::builder()
        .config(|config| config.public_url = Some("https://img.feria.example/base/".into()))
        .spawn()
        .await;
    let scene = scene(app).await;
    let absolute = format!("https://img.feria.example/base/media/{}", scene.media_id);
    for (what, body) in &scene.bodies {
        assert_no_evil(what, body);
    }
    let upload: Value = serde_json::from_str(&scene.bodies[0].1).unwrap();
    assert_eq!(upload["url"], absolute.as_str());
    // The base is not stored either: changing PUBLIC_URL changes every URL.
    assert_eq!(
        scene.stored_image().await.as_deref(),
        Some(scene.media_id.as_str())
    );
    for (what, body) in scene.reads().await {
        let shown = if what.contains("platform") {
            &body["logo"]
        } else {
            &body["image"]
        };
        assert_eq!(shown, absolute.as_str(), "{what}");
    }
}

/// The migration that turns stored image URLs into media ids, for this backend.
#[tokio::test]
async fn image_urls_stored_before_are_read_and_migrated_to_media_ids() {
    let scene = scene(TestApp::spawn().await).await;
    let app = &scene.app;
    let id = scene.media_id.as_str();
    // Rows as the old code wrote them: absolute URLs built from whatever `Host` said.
    let other = upload(app, GIF).await.assert_status(201).json_value();
    let other_id = other["id"].as_str().unwrap();
    let owner = app
        .sign_in(&scene.platform_id, "owner@acme.example", "live")
        .await;
    let owner_id = owner["user"]["id"].as_str().unwrap();
    app.execute_sql(
        &format!(
            "UPDATE users SET image = 'http://{EVIL}/media/{id}' WHERE id = '{}';
             UPDATE users SET image = 'https://api.feria.example/v2/media/{other_id}' WHERE id = '{owner_id}';
             UPDATE platforms SET logo = 'https://{EVIL}:8443/media/{id}' WHERE id = '{}'",
            scene.member_id, scene.platform_id
        ),
    )
    .await;

    // Read before any migration runs again (a row written by an older server during a
    // rolling upgrade): shown by its media id, never with the stored host.
    for (what, body) in scene.reads().await {
        assert_no_evil(&what, &body.to_string());
    }
    let owner_read = app
        .get_as(&scene.api_key, &format!("/api/v1/users/{owner_id}"))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(owner_read["image"], format!("/media/{other_id}"));

    // The migration leaves media ids in place of the URLs, and is idempotent.
    for _ in 0..2 {
        app.execute_sql(&app.migration_sql("2026-12-07-113000_media_ids"))
            .await;
        assert_eq!(scene.stored_image().await.as_deref(), Some(id));
        assert_eq!(scene.stored_logo().await.as_deref(), Some(id));
        assert_eq!(
            stored(app, "users", "image", owner_id).await.as_deref(),
            Some(other_id)
        );
    }
    for (what, body) in scene.reads().await {
        assert_no_evil(&what, &body.to_string());
    }
}

/// Sends a hand-built multipart body (with its exact `Content-Length`) and waits at most
/// a few seconds for the answer.
async fn send_multipart(app: &TestApp, boundary: &str, body: Vec<u8>) -> (TestResponse, Duration) {
    let started = Instant::now();
    let request = app
        .request(Method::POST, "/api/v1/utils/media/upload")
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    // Half the server's 30 s request timeout, which is what a body waiting for its
    // closing boundary would run into: wide enough for a loaded machine.
    let response = tokio::time::timeout(Duration::from_secs(15), app.send(request))
        .await
        .unwrap_or_else(|_| {
            panic!("a multipart body cut short held the request for more than 15 s")
        });
    (response, started.elapsed())
}

fn part_head(boundary: &str) -> Vec<u8> {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_multipart_body_without_its_closing_boundary_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let boundary = "feria-boundary-1234";

    // The same body, complete, is accepted: the hand-built form is right.
    let mut complete = part_head(boundary);
    complete.extend_from_slice(PNG);
    complete.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (response, _) = send_multipart(&app, boundary, complete).await;
    response.assert_status(201);

    let mut cut_after_crlf = part_head(boundary);
    cut_after_crlf.extend_from_slice(PNG);
    cut_after_crlf.extend_from_slice(b"\r\n");
    let mut cut_after_data = part_head(boundary);
    cut_after_data.extend_from_slice(PNG);
    let mut cut_in_boundary = part_head(boundary);
    cut_in_boundary.extend_from_slice(PNG);
    cut_in_boundary.extend_from_slice(b"\r\n--feria-bou");
    let mut cut_before_final_dashes = part_head(boundary);
    cut_before_final_dashes.extend_from_slice(PNG);
    cut_before_final_dashes.extend_from_slice(format!("\r\n--{boundary}").as_bytes());
    let cut_in_headers = format!("--{boundary}\r\nContent-Disposition: form-da").into_bytes();
    let only_opening = format!("--{boundary}\r\n").into_bytes();
    for (what, body) in [
        ("after the data's CRLF", cut_after_crlf),
        ("right after the data", cut_after_data),
        ("inside the boundary", cut_in_boundary),
        ("before the final dashes", cut_before_final_dashes),
        ("inside the part headers", cut_in_headers),
        ("after the opening boundary", only_opening),
        ("with no boundary at all", b"just some bytes".to_vec()),
    ] {
        let (response, took) = send_multipart(&app, boundary, body).await;
        assert_eq!(
            response.status.as_u16(),
            400,
            "a body cut {what}: {}",
            response.text()
        );
        response.assert_error(400, "malformed_multipart");
        assert!(
            took < Duration::from_secs(15),
            "a body cut {what} took {took:?}"
        );
    }
    // Nothing of the refused bodies was stored; the server still answers.
    let stored = std::fs::read_dir(app.data_dir().join("media"))
        .unwrap()
        .count();
    assert_eq!(stored, 1);
    app.get("/readyz").await.assert_status(200);
}

/// CRC-32 (ISO-HDLC), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut covered = kind.to_vec();
    covered.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&covered).to_be_bytes());
    chunk
}

/// A well-formed PNG (signature, IHDR with a right CRC, the 1×1 image's IDAT, IEND) that
/// declares `width`×`height` (8-bit RGBA).
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(b"IDAT", &PNG[41..54]));
    png.extend(png_chunk(b"IEND", b""));
    png
}

/// A baseline JPEG of one grey component declaring `width`×`height`; with 1×1 it is a
/// whole image (one block: DC difference 0, end of block).
fn jpeg_declaring(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = vec![0xFF, 0xD8];
    // DQT: table 0, all ones.
    jpeg.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    jpeg.extend_from_slice(&[1; 64]);
    // SOF0: 8 bits, height, width, one component (id 1, 1×1 sampling, table 0).
    jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
    jpeg.extend_from_slice(&height.to_be_bytes());
    jpeg.extend_from_slice(&width.to_be_bytes());
    jpeg.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
    // DHT: DC table 0 and AC table 0, each one code of length 1 (symbol 0).
    for class in [0x00, 0x10] {
        jpeg.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
        jpeg.extend_from_slice(&[0; 15]);
        jpeg.push(0x00);
    }
    // SOS: one component using tables 0/0, full spectral selection.
    jpeg.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    // Bits "0" (DC difference 0) and "0" (end of block), padded with ones.
    jpeg.push(0x3F);
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    jpeg
}

/// The 1×1 GIF declaring another logical screen size.
fn gif_declaring(width: u16, height: u16) -> Vec<u8> {
    let mut gif = GIF.to_vec();
    gif[6..8].copy_from_slice(&width.to_le_bytes());
    gif[8..10].copy_from_slice(&height.to_le_bytes());
    gif
}

#[tokio::test]
async fn an_image_is_accepted_only_when_its_header_decodes() {
    let app = TestApp::builder()
        .config(|config| config.media_uploads_per_ip = 1000)
        .spawn()
        .await;

    // Whole small images of every accepted kind are still accepted.
    for (bytes, content_type) in [
        (PNG.to_vec(), "image/png"),
        (png_declaring(1, 1), "image/png"),
        (GIF.to_vec(), "image/gif"),
        (jpeg_declaring(1, 1), "image/jpeg"),
    ] {
        let stored = upload(&app, &bytes).await.assert_status(201).json_value();
        assert_eq!(stored["content_type"], content_type);
    }

    // Signatures alone, headers cut short, a header whose checksum is wrong: a valid
    // signature is not an image.
    let mut bad_crc = PNG.to_vec();
    bad_crc[29] ^= 0xFF;
    let mut jpeg_without_frame = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10];
    jpeg_without_frame.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0\xff\xd9");
    for (what, bytes) in [
        ("an 8-byte PNG (the signature)", PNG[..8].to_vec()),
        ("a 20-byte PNG", PNG[..20].to_vec()),
        ("a PNG cut inside IHDR", PNG[..29].to_vec()),
        ("a PNG with IHDR only", PNG[..33].to_vec()),
        ("a PNG whose IHDR checksum is wrong", bad_crc),
        ("a PNG declaring 0×0", png_declaring(0, 0)),
        ("a GIF signature", b"GIF89a".to_vec()),
        ("a GIF cut in its screen descriptor", GIF[..9].to_vec()),
        ("a JPEG signature", vec![0xFF, 0xD8, 0xFF]),
        ("a JPEG with no frame header", jpeg_without_frame),
        (
            "a JPEG cut inside its frame header",
            jpeg_declaring(1, 1)[..75].to_vec(),
        ),
    ] {
        let response = upload(&app, &bytes).await;
        assert_eq!(
            response.status.as_u16(),
            422,
            "{what} must be refused: {}",
            response.text()
        );
        let error = response.assert_error(422, "validation_failed");
        assert_eq!(error.details[0].field, "file", "{what}");
    }

    // Dimensions: at most 16384 a side and 50 megapixels.
    for (what, bytes) in [
        ("a PNG of 16384×3000", png_declaring(16_384, 3_000)),
        ("a JPEG of 7000×7000", jpeg_declaring(7_000, 7_000)),
        ("a GIF of 16384×1", gif_declaring(16_384, 1)),
    ] {
        let response = upload(&app, &bytes).await;
        assert_eq!(response.status.as_u16(), 201, "{what}: {}", response.text());
    }
    for (what, bytes) in [
        ("a PNG of 100000×100000", png_declaring(100_000, 100_000)),
        ("a PNG of 16385×1", png_declaring(16_385, 1)),
        (
            "a PNG of 8000×7000 (56 megapixels)",
            png_declaring(8_000, 7_000),
        ),
        (
            "a PNG of 2^31×2^31",
            png_declaring(0x8000_0000, 0x8000_0000),
        ),
        ("a JPEG of 65535×65535", jpeg_declaring(65_535, 65_535)),
        ("a GIF of 65535×65535", gif_declaring(65_535, 65_535)),
    ] {
        let response = upload(&app, &bytes).await;
        assert_eq!(
            response.status.as_u16(),
            422,
            "{what} must be refused: {}",
            response.text()
        );
        let error = response.assert_error(422, "validation_failed");
        assert_eq!(error.details[0].field, "file", "{what}");
    }
}
