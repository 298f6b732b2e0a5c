//! Secrets at rest (docs/DEPLOYMENT.md, "Secrets at rest"): webhook signing secrets and
//! receipt signing keys are sealed under FERIA_SECRET_KEY, so a copy of the database alone
//! (the SQLite file with its WAL, or `pg_dump`) does not hold them; a secret stored in clear
//! before is sealed at the next start; `feria secrets rotate` moves everything to a new key
//! while the previous one still opens; PostgreSQL refuses to start without a key, SQLite
//! makes one in the data directory. On the backend FERIA_TEST_BACKEND names.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use feria_kernel::db::Backend;
use feria_kernel::testing::{TestDatabase, backend_from_env};
use serde_json::{Value, json};

const KEY_A: &str = "f00df00df00df00df00df00df00df00df00df00df00df00df00df00df00df00d";
const KEY_B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// `feria` on the data directory and database, with `key` as FERIA_SECRET_KEY.
fn feria(data_dir: &Path, database_url: &str, key: &str) -> Command {
    let mut command = common::feria(data_dir, database_url, "warn");
    command
        .env("FERIA_SECRET_KEY", key)
        .env_remove("FERIA_SECRET_KEY_PREVIOUS")
        .env("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
        .env("WRITE_RATE_LIMIT", "0");
    command
}

fn run(mut command: Command) -> Value {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Everything a copy of the database holds, as text.
fn dump(backend: Backend, database_url: &str) -> String {
    match backend {
        Backend::Sqlite => {
            let path = database_url.trim_start_matches("sqlite://");
            let mut bytes = std::fs::read(path).unwrap();
            for suffix in ["-wal", "-journal"] {
                if let Ok(more) = std::fs::read(format!("{path}{suffix}")) {
                    bytes.extend(more);
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Backend::Postgres => {
            let output = Command::new("pg_dump")
                .args(["--no-owner", "--format=plain", "--dbname", database_url])
                .output()
                .expect("pg_dump (apt-get install postgresql-client)");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    }
}

async fn create_endpoint(client: &reqwest::Client, base: &str, key: &str) -> Value {
    let response = client
        .post(format!("{base}/api/v1/webhook_endpoints"))
        .bearer_auth(key)
        .json(&json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"], "enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn endpoint(client: &reqwest::Client, base: &str, key: &str, id: &str) -> Value {
    let response = client
        .get(format!("{base}/api/v1/webhook_endpoints/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Whether `text` holds `whsec_` followed by 64 hex digits: a whole secret.
fn holds_clear_secret(text: &str) -> bool {
    text.match_indices("whsec_").any(|(at, prefix)| {
        let rest = &text.as_bytes()[at + prefix.len()..];
        rest.len() >= 64 && rest[..64].iter().all(u8::is_ascii_hexdigit)
    })
}

fn tail(secret: &str) -> &str {
    &secret[secret.len() - 4..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dump_holds_no_webhook_secret_and_a_rotation_keeps_them_readable() {
    let backend = backend_from_env().unwrap();
    let database = TestDatabase::create(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = database.url().to_owned();
    let created = run({
        let mut c = feria(dir.path(), &url, KEY_A);
        c.args(["platform", "create", "--name", "Sealed", "--domain"])
            .args([
                "sealed.example.com",
                "--owner-email",
                "owner@sealed.example",
            ]);
        c
    });
    let platform = created["platform"]["id"].as_str().unwrap().to_owned();
    let api_key = created["api_keys"]["live"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();

    // Two endpoints; the second one's secret is then written back in clear, as a row
    // stored before secrets were sealed would be.
    let server = Server::start(feria(dir.path(), &url, KEY_A)).await;
    let first = create_endpoint(&client, &server.base, &api_key).await;
    let second = create_endpoint(&client, &server.base, &api_key).await;
    let first_secret = first["secret"].as_str().unwrap().to_owned();
    let first_id = first["id"].as_str().unwrap().to_owned();
    let second_id = second["id"].as_str().unwrap().to_owned();
    assert!(first_secret.starts_with("whsec_"));
    drop(server);
    let clear = format!("whsec_{}", "c1ea7".repeat(12) + "c1ea");
    let mut conn = database.db().conn().await.unwrap();
    conn.batch_execute(&format!(
        "UPDATE webhook_endpoints SET secret = '{clear}' WHERE id = '{second_id}'"
    ))
    .await
    .unwrap();
    drop(conn);
    // A receipt signing key for each mode (no chain needed to make one).
    let rotated = run({
        let mut c = feria(dir.path(), &url, KEY_A);
        c.args(["keys", "rotate", "--platform", &platform]);
        c
    });
    assert!(
        rotated["signing_keys"]["live"]
            .as_str()
            .unwrap()
            .starts_with("rk_")
    );

    // The next start seals the clear one; reads still show the right secrets, masked.
    let server = Server::start(feria(dir.path(), &url, KEY_A)).await;
    let read = endpoint(&client, &server.base, &api_key, &first_id).await;
    assert_eq!(
        read["secret"].as_str().unwrap(),
        format!("whsec_…{}", tail(&first_secret))
    );
    let read = endpoint(&client, &server.base, &api_key, &second_id).await;
    assert_eq!(
        read["secret"].as_str().unwrap(),
        format!("whsec_…{}", tail(&clear))
    );
    drop(server);

    let copy = dump(backend, &url);
    assert!(copy.contains("fsk1:"), "the dump holds the sealed rows");
    for (what, secret) in [("new secret", &first_secret), ("migrated secret", &clear)] {
        assert!(!copy.contains(secret.as_str()), "the dump holds the {what}");
        assert!(
            !copy.contains(&secret["whsec_".len()..]),
            "the dump holds the {what} without its prefix"
        );
    }
    assert!(
        !holds_clear_secret(&copy),
        "no webhook secret in clear at all"
    );

    // Rotation: the new key with the old one as previous reseals everything ...
    let report = run({
        let mut c = feria(dir.path(), &url, KEY_B);
        c.env("FERIA_SECRET_KEY_PREVIOUS", KEY_A)
            .args(["secrets", "rotate"]);
        c
    });
    assert_eq!(report["webhook_secrets"]["resealed"], 2, "{report}");
    assert_eq!(report["receipt_keys"]["resealed"], 2, "{report}");
    let again = run({
        let mut c = feria(dir.path(), &url, KEY_B);
        c.env("FERIA_SECRET_KEY_PREVIOUS", KEY_A)
            .args(["secrets", "rotate"]);
        c
    });
    assert_eq!(again["webhook_secrets"]["resealed"], 0, "{again}");
    assert_eq!(again["webhook_secrets"]["unchanged"], 2, "{again}");
    // ... so the new key alone opens them.
    let server = Server::start(feria(dir.path(), &url, KEY_B)).await;
    let read = endpoint(&client, &server.base, &api_key, &first_id).await;
    assert_eq!(
        read["secret"].as_str().unwrap(),
        format!("whsec_…{}", tail(&first_secret))
    );
    let jwks: Value = client
        .get(format!(
            "{}/.well-known/jwks.json?platform={platform}",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], rotated["signing_keys"]["live"]);
    drop(server);
    // A rotation without the previous key cannot open what it sealed: it says so.
    let mut stale = feria(dir.path(), &url, KEY_A);
    stale.args(["secrets", "rotate"]);
    let output = stale.output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("neither FERIA_SECRET_KEY"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_key_sqlite_makes_one_and_postgres_refuses_to_start() {
    let backend = backend_from_env().unwrap();
    let database = TestDatabase::create(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::feria(dir.path(), database.url(), "warn");
    command.env_remove("FERIA_SECRET_KEY");
    match backend {
        Backend::Sqlite => {
            let server = Server::start(command).await;
            drop(server);
            let key = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
            assert_eq!(key.trim().len(), 44, "a base64 key of 32 bytes");
            // The next start reuses it.
            let mut command = common::feria(dir.path(), database.url(), "warn");
            command.env_remove("FERIA_SECRET_KEY");
            drop(Server::start(command).await);
            assert_eq!(
                std::fs::read_to_string(dir.path().join("secret.key")).unwrap(),
                key
            );
        }
        Backend::Postgres => {
            let output = command
                .args(["serve", "--bind", "127.0.0.1:0"])
                .output()
                .unwrap();
            assert!(!output.status.success());
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                stderr.contains("FERIA_SECRET_KEY is required")
                    || stdout.contains("FERIA_SECRET_KEY is required"),
                "{stderr}{stdout}"
            );
            assert!(!dir.path().join("secret.key").exists());
        }
    }
}
