//! Backups as docs/DEPLOYMENT.md prescribes them: `scripts/backup.sh` while the server
//! writes, `scripts/restore.sh` into an empty database, then `feria ledger verify` and
//! `feria migrate`, and a server on the restored database serves the data as it was at the
//! moment of the backup, on both backends.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use feria_kernel::db::Backend;
use feria_kernel::testing::{TestDatabase, backend_from_env};
use serde_json::{Value, json};

fn feria(data_dir: &Path, database_url: &str) -> Command {
    let mut command = common::feria(data_dir, database_url, "warn");
    command.env("WRITE_RATE_LIMIT", "0");
    command
}

fn script(name: &str, database_url: &str, file: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/").to_owned() + name)
        .arg(file)
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap()
}

async fn credits(client: &reqwest::Client, base: &str, key: &str, user: &str) -> Value {
    let response = client
        .get(format!("{base}/api/v1/users/{user}/credits"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn top_up(client: &reqwest::Client, base: &str, key: &str, user: &str, amount: f64) {
    let response = client
        .post(format!("{base}/api/v1/users/{user}/credits"))
        .bearer_auth(key)
        .header("Idempotency-Key", format!("top-up-{amount}"))
        .json(&json!({"amount": amount, "currency": "usd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_into_an_empty_database() {
    let backend = backend_from_env().unwrap();
    let database = TestDatabase::create(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = common::create_platform(
        feria(dir.path(), database.url()),
        "Backed",
        "backed.example.com",
        "owner@backed.example",
    )
    .live_key;
    let client = reqwest::Client::new();
    let server = Server::start(feria(dir.path(), database.url())).await;
    let base = server.base.clone();

    let user: Value = client
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(&key)
        .json(&json!({"email": "kept@backed.example", "name": "Kept"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = user["user"]["id"]
        .as_str()
        .or_else(|| user["id"].as_str())
        .unwrap_or_else(|| panic!("a user id in {user}"))
        .to_owned();
    top_up(&client, &base, &key, &user_id, 50.0).await;
    let before = credits(&client, &base, &key, &user_id).await;

    // The backup, while the server runs; a write after it is not in it.
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("feria.backup");
    let backed_up = script("backup.sh", database.url(), &file);
    assert!(
        backed_up.status.success(),
        "{}",
        String::from_utf8_lossy(&backed_up.stderr)
    );
    // It never overwrites a file.
    let again = script("backup.sh", database.url(), &file);
    assert!(!again.status.success());
    top_up(&client, &base, &key, &user_id, 7.0).await;
    drop(server);

    // Restore into an empty database; a database with tables is refused.
    let (target, _empty_postgres) = match backend {
        Backend::Sqlite => {
            let url = format!(
                "sqlite://{}",
                dir.path().join("restored/feria.db").display()
            );
            (url, None)
        }
        Backend::Postgres => {
            let admin = std::env::var("TEST_DATABASE_URL").unwrap();
            let empty = TestDatabase::create_empty_postgres(&admin).await.unwrap();
            (empty.url().to_owned(), Some(empty))
        }
    };
    let refused = script("restore.sh", database.url(), &file);
    assert!(!refused.status.success(), "a restore over a live database");
    let restored = script("restore.sh", &target, &file);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );

    let verified = feria(dir.path(), &target)
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let report: Value = serde_json::from_slice(&verified.stdout).unwrap();
    // The top-up of the backup's moment: one entry of two postings, nothing drifted.
    assert!(report["entries"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["drifted_accounts"], json!([]), "{report}");
    let migrated = feria(dir.path(), &target).arg("migrate").output().unwrap();
    assert!(migrated.status.success());
    assert!(
        String::from_utf8_lossy(&migrated.stdout).starts_with("0 migration(s) applied"),
        "the backup holds the migrations it was made with: {}",
        String::from_utf8_lossy(&migrated.stdout)
    );

    // The restored server knows the key, the user and the balance of the backup's moment.
    let server = Server::start(feria(dir.path(), &target)).await;
    let after = credits(&client, &server.base, &key, &user_id).await;
    assert_eq!(after, before);
}
