//! The identity flow end to end through the real binary, on the backend
//! `FERIA_TEST_BACKEND` names: `feria platform create` → `feria serve` → a sign-in code
//! requested by HTTP and read from the `.eml` file in `MAIL_DIR` → verify → authenticated
//! calls with the session and with the API key → refresh → the rotated refresh token is
//! rejected.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use feria_kernel::testing::{TestDatabase, backend_from_env};

mod common;
use common::{Running, free_port};

/// The binary, quiet but for warnings.
fn feria(data_dir: &Path, database_url: &str) -> Command {
    common::feria(data_dir, database_url, "warn")
}
use serde_json::{Value, json};

#[tokio::test]
async fn a_platform_made_with_the_cli_signs_users_in_by_mailed_code() {
    let backend = backend_from_env().unwrap();
    let database = TestDatabase::create(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // 1. The CLI creates the platform and prints its keys.
    let platform = common::create_platform(
        feria(dir.path(), database.url()),
        "Acme Market",
        "acme.example.com",
        "owner@acme.example",
    );
    let (platform_id, live_key, test_key) = (platform.id, platform.live_key, platform.test_key);
    assert!(platform_id.starts_with("plat_"));
    assert_eq!(platform.created["platform"]["name"], "Acme Market");
    assert!(live_key.starts_with("fer_live_") && test_key.starts_with("fer_test_"));

    // The same domain twice is refused with a clear message.
    let again = feria(dir.path(), database.url())
        .args([
            "platform",
            "create",
            "--name",
            "Copy",
            "--domain",
            "acme.example.com",
        ])
        .args(["--owner-email", "x@example.com"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("domain"));

    // 2. Serve.
    let port = free_port();
    let _server = Running(
        feria(dir.path(), database.url())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 3. The API key reads its platform.
    let platform: Value = client
        .get(format!("{base}/api/v1/platforms"))
        .bearer_auth(&live_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(platform["id"], platform_id.as_str());

    // 4. A code by mail, read from the .eml file the server wrote.
    let email = "ana@example.com";
    let sent = client
        .post(format!("{base}/api/v1/auth/otp/email"))
        .json(&json!({"platform_id": platform_id, "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let code = common::sign_in_code(&dir.path().join("mail"), email);

    // 5. Verify → session.
    let session: Value = client
        .post(format!("{base}/api/v1/auth/otp/verify"))
        .json(&json!({"platform_id": platform_id, "email": email, "code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = session["access_token"].as_str().unwrap();
    let refresh = session["refresh_token"].as_str().unwrap();
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["user"]["email"], email);

    // 6. Authenticated calls.
    let me = client
        .get(format!("{base}/api/v1/users/auth"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let member: Value = client
        .get(format!(
            "{base}/api/v1/platforms/community/user/{}",
            session["user"]["id"].as_str().unwrap()
        ))
        .bearer_auth(&live_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(member["member"], true);

    // 7. Refresh rotates; the old refresh token is then rejected.
    let rotated = client
        .post(format!("{base}/api/v1/auth/session/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    assert_ne!(rotated["refresh_token"].as_str().unwrap(), refresh);
    let reused = client
        .post(format!("{base}/api/v1/auth/session/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 401);
    // Reuse of a rotated token ends the whole session family.
    let after_reuse = client
        .get(format!("{base}/api/v1/users/auth"))
        .bearer_auth(rotated["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(after_reuse.status(), 401);
}

#[tokio::test]
async fn ledger_verify_passes_on_a_sound_ledger_and_fails_on_a_tampered_one() {
    use diesel_async::SimpleAsyncConnection;

    let backend = backend_from_env().unwrap();
    let database = TestDatabase::create(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let created = feria_auth::bootstrap::create_platform(
        database.db(),
        "Ledger",
        "ledger.example.com",
        "owner@ledger.example",
    )
    .await
    .unwrap();
    let tenant = feria_kernel::Tenant::new(created.platform.id.clone(), feria_kernel::Mode::Live);
    let user = feria_kernel::UserId::new();
    {
        let mut conn = database.db().conn().await.unwrap();
        feria_billing::credits::top_up(
            &mut conn,
            &tenant,
            &user,
            feria_kernel::money::Money::from_minor(2_500, feria_kernel::money::Currency::USD),
            None,
        )
        .await
        .unwrap();
    }

    let verify = || {
        feria(dir.path(), database.url())
            .args(["ledger", "verify"])
            .output()
            .unwrap()
    };
    let sound = verify();
    assert!(
        sound.status.success(),
        "{}",
        String::from_utf8_lossy(&sound.stderr)
    );
    let report: Value = serde_json::from_slice(&sound.stdout).unwrap();
    assert_eq!(report["entries"], 1);
    assert_eq!(report["postings"], 2);
    assert_eq!(report["drifted_accounts"], json!([]));

    // A balance edited behind the ledger's back is caught, and the exit status says so.
    let mut conn = database.db().conn().await.unwrap();
    feria_kernel::with_conn!(&mut conn, c => {
        c.batch_execute("UPDATE ledger_accounts SET balance = balance + 1 WHERE kind = 'user_credit'").await
    })
    .unwrap();
    let tampered = verify();
    assert_eq!(tampered.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&tampered.stdout).unwrap();
    assert_eq!(report["drifted_accounts"].as_array().unwrap().len(), 1);
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("does not verify"));
}
