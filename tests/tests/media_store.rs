//! Uploaded images on S3-compatible object storage (`MEDIA_STORE=s3://...`), against a
//! real S3 server (moto's server mode, `scripts/s3-server.sh`), on both backends: two
//! servers with their own data directories share one bucket, so an image uploaded through
//! one is served by the other with the same bytes and headers; a store that does not
//! answer stops the start-up, and one that goes away later answers 503
//! `media_unavailable` without recording a row. The embedded default (`file`) is covered
//! by `media_integrity.rs`; `feria media migrate` by `gateway/tests/media_migrate.rs`.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_testkit::{Method, PNG_1X1, TestApp, TestDatabase, TestResponse, backend_from_env};
use reqwest::multipart::{Form, Part};

/// A real 1×1 GIF.
const GIF: &[u8] = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;";

async fn upload(app: &TestApp, bytes: &[u8]) -> TestResponse {
    let form = Form::new().part(
        "file",
        Part::bytes(bytes.to_vec())
            .file_name("image")
            .mime_str("application/octet-stream")
            .unwrap(),
    );
    app.send(
        app.request(Method::POST, "/api/v1/utils/media/upload")
            .multipart(form),
    )
    .await
}

async fn media_rows(app: &TestApp) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.db().conn().await.unwrap();
    let count: Count = feria_kernel::with_conn!(&mut conn, c => {
        diesel_async::RunQueryDsl::get_result(
            diesel::sql_query("SELECT COUNT(*) AS n FROM media"),
            c,
        )
        .await
    })
    .unwrap();
    count.n
}

/// The files of a server's own media directory.
fn files_in_media_dir(app: &TestApp) -> Vec<String> {
    match std::fs::read_dir(app.data_dir().join("media")) {
        Ok(entries) => entries
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

const SERVED_HEADERS: [&str; 4] = [
    "content-type",
    "cache-control",
    "etag",
    "x-content-type-options",
];

#[tokio::test]
async fn an_image_uploaded_through_one_server_is_served_by_another_sharing_the_bucket() {
    let endpoint = feria_testkit::s3_endpoint();
    let bucket = feria_testkit::s3_bucket(&endpoint).await;
    let location = format!("s3://{bucket}/nodes/media");
    let (e, l) = (endpoint.clone(), location.clone());
    let a = TestApp::builder()
        .config(move |config| feria_testkit::use_s3(config, &e, &l))
        .spawn()
        .await;
    // The second server: its own data directory, the same database and bucket.
    let (e, l, database_url) = (
        endpoint.clone(),
        location.clone(),
        a.database_url().to_owned(),
    );
    let b = TestApp::builder()
        .config(move |config| {
            feria_testkit::use_s3(config, &e, &l);
            config.database_url = database_url;
        })
        .spawn()
        .await;
    assert_ne!(a.data_dir(), b.data_dir());

    for (bytes, content_type) in [(PNG_1X1, "image/png"), (GIF, "image/gif")] {
        let uploaded = upload(&a, bytes).await.assert_status(201).json_value();
        let id = uploaded["id"].as_str().unwrap().to_owned();
        let sha256 = uploaded["sha256"].as_str().unwrap().to_owned();

        let from_a = a.get(&format!("/media/{id}")).await.assert_status(200);
        let from_b = b.get(&format!("/media/{id}")).await.assert_status(200);
        assert_eq!(
            from_b.body.as_slice(),
            bytes,
            "the bytes served by the other node"
        );
        assert_eq!(from_a.body, from_b.body);
        for header in SERVED_HEADERS {
            assert_eq!(from_a.header(header), from_b.header(header), "{header}");
        }
        assert_eq!(from_b.header("content-type"), Some(content_type));
        assert_eq!(
            from_b.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(
            from_b.header("etag"),
            Some(format!("\"{sha256}\"").as_str())
        );
        assert_eq!(from_b.header("x-content-type-options"), Some("nosniff"));

        // The object sits at prefix/id, with its content type, in the bucket itself.
        let object = feria_testkit::s3_request(
            Method::GET,
            &format!("{endpoint}/{bucket}/nodes/media/{id}"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(object.status(), 200);
        assert_eq!(
            object
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some(content_type)
        );
        assert_eq!(object.bytes().await.unwrap().as_ref(), bytes);
    }
    // Neither node kept a file of its own.
    assert!(
        files_in_media_dir(&a).is_empty(),
        "{:?}",
        files_in_media_dir(&a)
    );
    assert!(
        files_in_media_dir(&b).is_empty(),
        "{:?}",
        files_in_media_dir(&b)
    );

    // A row whose object is gone is 404, as with files.
    let uploaded = upload(&b, PNG_1X1).await.assert_status(201).json_value();
    let id = uploaded["id"].as_str().unwrap();
    let deleted = feria_testkit::s3_request(
        Method::DELETE,
        &format!("{endpoint}/{bucket}/nodes/media/{id}"),
    )
    .send()
    .await
    .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    a.get(&format!("/media/{id}"))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn a_store_that_does_not_answer_stops_the_start_and_names_itself() {
    let database = TestDatabase::create(backend_from_env().unwrap())
        .await
        .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = feria_testkit::Config::new(data_dir.path(), database.url());
    // PostgreSQL needs the key that seals stored secrets (the test kit's, as TestApp's).
    config.secret_keys.current = Some(feria_testkit::TEST_SECRET_KEY.to_owned());
    config.bind = ([127, 0, 0, 1], 0).into();
    config.handle_signals = false;
    feria_testkit::use_s3(
        &mut config,
        &format!("http://127.0.0.1:{closed}"),
        "s3://feria-nowhere/media",
    );
    let error = match feria::Server::build(config.clone()).await {
        Ok(_) => panic!("a server started on a media store nobody answers"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("the media store s3://feria-nowhere/media at http://127.0.0.1:"),
        "{error}"
    );
    assert!(!error.contains(feria_testkit::S3_TEST_SECRET), "{error}");

    // A bucket that does not exist on a server that answers: the same.
    let endpoint = feria_testkit::s3_endpoint();
    feria_testkit::use_s3(&mut config, &endpoint, "s3://feria-no-such-bucket");
    let error = match feria::Server::build(config.clone()).await {
        Ok(_) => panic!("a server started on a bucket that does not exist"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("s3://feria-no-such-bucket"), "{error}");

    // A setting that cannot work names itself.
    feria_testkit::use_s3(&mut config, "ftp://127.0.0.1:21", "s3://feria-media");
    let error = match feria::Server::build(config).await {
        Ok(_) => panic!("a server started with an ftp endpoint"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("MEDIA_S3_ENDPOINT `ftp://127.0.0.1:21`"),
        "{error}"
    );
}

/// A TCP relay to `upstream` on a port of its own, cut (listener and every connection)
/// when dropped: the S3 server "goes away" while the server under test runs.
struct Relay {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn to(upstream: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { port, task }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_store_gone_after_the_start_answers_503_and_records_nothing() {
    let endpoint = feria_testkit::s3_endpoint();
    let bucket = feria_testkit::s3_bucket(&endpoint).await;
    let upstream = endpoint.trim_start_matches("http://").to_owned();
    let relay = Relay::to(upstream).await;
    let through_relay = format!("http://127.0.0.1:{}", relay.port);
    let location = format!("s3://{bucket}");
    let app = TestApp::builder()
        .config(move |config| feria_testkit::use_s3(config, &through_relay, &location))
        .spawn()
        .await;
    let uploaded = upload(&app, PNG_1X1).await.assert_status(201).json_value();
    let id = uploaded["id"].as_str().unwrap().to_owned();
    assert_eq!(media_rows(&app).await, 1);

    drop(relay);
    // Let the aborted relay close its sockets.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let refused = upload(&app, GIF).await;
    let error = refused.assert_error(503, "media_unavailable");
    assert!(error.message.contains("retry later"), "{}", error.message);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(media_rows(&app).await, 1, "no row without its object");
    app.get(&format!("/media/{id}"))
        .await
        .assert_error(503, "media_unavailable");
    assert!(files_in_media_dir(&app).is_empty());
}
