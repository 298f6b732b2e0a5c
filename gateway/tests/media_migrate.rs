//! `feria media migrate`, the real binary, on the backend `FERIA_TEST_BACKEND` names,
//! against a real S3 server (moto's server mode, `scripts/s3-server.sh`): the images a
//! server kept in `DATA_DIR/media` are copied into the bucket, a server on the bucket
//! (with an empty data directory of its own) serves them, a second run copies nothing, a
//! damaged file is reported with exit status 1, and `MEDIA_STORE=file` is refused.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

use common::{Server, feria};
use feria_kernel::testing::{TestDatabase, backend_from_env};
use feria_platforms::media::MediaStore;

/// A real 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\xa5\xf7\xc9\x8b\0\0\0\0IEND\xaeB`\x82";
/// A real 1×1 GIF.
const GIF: &[u8] = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;";

const SECRET: &str = "feria-test-secret-do-not-log";

/// `S3_TEST_ENDPOINT`, or the endpoint `scripts/s3-server.sh` starts.
fn s3_endpoint() -> String {
    if let Ok(url) = std::env::var("S3_TEST_ENDPOINT")
        && !url.trim().is_empty()
    {
        return url.trim().trim_end_matches('/').to_owned();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/s3-server.sh");
    let output = Command::new("bash").arg(script).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last().map(str::trim) {
        Some(url) if output.status.success() && url.starts_with("http") => url.to_owned(),
        _ => panic!(
            "S3_TEST_ENDPOINT is unset and {script} could not start the S3 server:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The media settings of an S3 store, as the environment gives them.
fn on_s3(mut command: Command, endpoint: &str, location: &str) -> Command {
    command
        .env("MEDIA_STORE", location)
        .env("MEDIA_S3_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", "feria-test-key")
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    command
}

fn report(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "the secret was printed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_the_files_into_the_bucket_once_and_a_server_on_it_serves_them() {
    let database = TestDatabase::create(backend_from_env().unwrap())
        .await
        .unwrap();
    let db = database.db();
    let data_dir = tempfile::tempdir().unwrap();
    let media_dir = data_dir.path().join("media");
    // Two uploads as the embedded default keeps them: files under DATA_DIR/media.
    let files = MediaStore::new(&media_dir, 1 << 20);
    let png = files.save(db, PNG).await.unwrap();
    let gif = files.save(db, GIF).await.unwrap();

    let endpoint = s3_endpoint();
    let bucket = format!(
        "feria-migrate-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let location = format!("s3://{bucket}/migrated");
    let migrate = || {
        let mut command = on_s3(
            feria(data_dir.path(), database.url(), "warn"),
            &endpoint,
            &location,
        );
        command.args(["media", "migrate"]);
        command.output().unwrap()
    };

    let first = migrate();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stats = report(&first);
    assert_eq!(stats["rows"], 2, "{stats}");
    assert_eq!(stats["copied"], 2, "{stats}");
    assert_eq!(stats["already_present"], 0, "{stats}");
    assert_eq!(stats["failed"], serde_json::json!([]), "{stats}");
    let summary = String::from_utf8_lossy(&first.stderr);
    assert!(summary.contains("2 copied"), "{summary}");

    // Again: nothing to do.
    let second = migrate();
    assert!(second.status.success());
    let stats = report(&second);
    assert_eq!(
        (stats["copied"].as_u64(), stats["already_present"].as_u64()),
        (Some(0), Some(2)),
        "{stats}"
    );

    // A server on the bucket, with an empty data directory of its own, serves them.
    let elsewhere = tempfile::tempdir().unwrap();
    let server = Server::start(on_s3(
        feria(elsewhere.path(), database.url(), "warn"),
        &endpoint,
        &location,
    ))
    .await;
    for (media, bytes) in [(&png, PNG), (&gif, GIF)] {
        let served = reqwest::get(format!("{}/media/{}", server.base, media.id))
            .await
            .unwrap();
        assert_eq!(served.status(), 200);
        assert_eq!(
            served.headers().get("etag").and_then(|v| v.to_str().ok()),
            Some(format!("\"{}\"", media.sha256).as_str())
        );
        assert_eq!(
            served
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some(media.content_type.as_str())
        );
        assert_eq!(served.bytes().await.unwrap().as_ref(), bytes);
    }
    drop(server);

    // A file that does not match its row is reported, not copied, and the run fails.
    let damaged = files.save(db, PNG).await.unwrap();
    std::fs::write(media_dir.join(damaged.id.as_str()), b"GIF89a not the image").unwrap();
    let third = migrate();
    assert_eq!(third.status.code(), Some(1));
    let stats = report(&third);
    assert_eq!(stats["already_present"], 2, "{stats}");
    assert_eq!(stats["copied"], 0, "{stats}");
    assert_eq!(
        stats["failed"][0]["media_id"],
        damaged.id.as_str(),
        "{stats}"
    );
    let reason = stats["failed"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("does not match its row"), "{reason}");
    // moto refuses anonymous reads of objects but checks no signature.
    let object = reqwest::Client::new()
        .get(format!("{endpoint}/{bucket}/migrated/{}", damaged.id))
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=feria-test-key/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(object.status(), 404, "a damaged file is never copied");

    // Nothing to copy into.
    let output = feria(data_dir.path(), database.url(), "warn")
        .args(["media", "migrate"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MEDIA_STORE is `file`"), "{stderr}");
}
