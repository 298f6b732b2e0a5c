//! No secret reaches the logs: the real binary serves with the most verbose application
//! logging an operator would turn on (`RUST_LOG=debug`, JSON lines), a client goes through
//! every way a secret is issued or presented (API keys from the CLI, a sign-in code, access
//! and refresh tokens, a rotated refresh token, a rolled key, wrong codes and a rejected
//! key), and then the server's whole output is searched for each of them.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use feria_kernel::testing::{TestDatabase, backend_from_env};

mod common;
use common::{Running, free_port};

/// The binary at its most talkative, in the format log pipelines read.
fn feria(data_dir: &Path, database_url: &str) -> Command {
    let mut command = common::feria(data_dir, database_url, "debug");
    command.env("LOG_FORMAT", "json");
    command
}
use serde_json::{Value, json};

/// Whether `secret` occurs in `text` not as part of a longer run of digits (a sign-in code
/// is six digits; timestamps and latencies are full of digits).
fn contains_token(text: &str, secret: &str) -> bool {
    text.match_indices(secret).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + secret.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[tokio::test]
async fn no_key_token_or_code_issued_in_a_session_reaches_the_logs() {
    let backend = backend_from_env().unwrap();
    let database = TestDatabase::create(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let mut secrets: Vec<(String, String)> = Vec::new();

    let platform = common::create_platform(
        feria(dir.path(), database.url()),
        "Acme",
        "acme.example.com",
        "owner@acme.example",
    );
    let cli_log = platform.log;
    let (platform_id, live_key, test_key) = (platform.id, platform.live_key, platform.test_key);
    secrets.push(("live API key".into(), live_key.clone()));
    secrets.push(("test API key".into(), test_key.clone()));

    let port = free_port();
    let log_file = std::fs::File::create(&log_path).unwrap();
    let server = Running(
        feria(dir.path(), database.url())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).json(&body);

    // Keys presented: accepted, and one that does not exist.
    for key in [&live_key, &test_key] {
        let answer = client
            .get(format!("{base}/api/v1/platforms"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let forged = format!("{}x", &live_key[..live_key.len() - 1]);
    let refused = client
        .get(format!("{base}/api/v1/platforms"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // A sign-in: a wrong code first, then the mailed one.
    let email = "ana@example.com";
    let sent = post(
        "/api/v1/auth/otp/email",
        json!({"platform_id": platform_id, "email": email}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(sent.status(), 200);
    let code = common::sign_in_code(&dir.path().join("mail"), email);
    secrets.push(("sign-in code".into(), code.clone()));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let rejected = post(
        "/api/v1/auth/otp/verify",
        json!({"platform_id": platform_id, "email": email, "code": wrong}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(rejected.status(), 401);
    let session: Value = post(
        "/api/v1/auth/otp/verify",
        json!({"platform_id": platform_id, "email": email, "code": code}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let access = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(("access token".into(), access.clone()));
    secrets.push(("refresh token".into(), refresh.clone()));
    let me = client
        .get(format!("{base}/api/v1/users/auth"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // Refresh rotates; the rotated-out token is then presented again (and refused).
    let rotated: Value = post(
        "/api/v1/auth/session/refresh",
        json!({"refresh_token": refresh}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    secrets.push((
        "rotated access token".into(),
        rotated["access_token"].as_str().unwrap().to_owned(),
    ));
    secrets.push((
        "rotated refresh token".into(),
        rotated["refresh_token"].as_str().unwrap().to_owned(),
    ));
    let reused = post(
        "/api/v1/auth/session/refresh",
        json!({"refresh_token": refresh}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(reused.status(), 401);

    // A rolled key, used once; the old one is refused.
    let rolled: Value = client
        .post(format!("{base}/api/v1/platforms/keys/roll"))
        .bearer_auth(&test_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_key = rolled["api_key"].as_str().unwrap().to_owned();
    secrets.push(("rolled API key".into(), new_key.clone()));
    for (key, status) in [(&new_key, 200), (&test_key, 401)] {
        let answer = client
            .get(format!("{base}/api/v1/platforms"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status);
    }

    drop(server);
    let server_log = std::fs::read_to_string(&log_path).unwrap();
    // The logs are there to search: one line per request, with its route.
    assert!(
        server_log.contains("/api/v1/auth/otp/verify") && server_log.contains("\"status\":401"),
        "the server logged no requests:\n{server_log}"
    );
    for (what, secret) in &secrets {
        assert!(
            !contains_token(&server_log, secret) && !contains_token(&cli_log, secret),
            "the {what} appears in the logs"
        );
    }
    // The key prefixes alone are not secret, but a whole key in any form is: its secret
    // part (after the prefix) must not appear either.
    for (what, secret) in &secrets {
        if let Some((_, tail)) = secret.rsplit_once('_') {
            assert!(
                tail.len() < 12 || !server_log.contains(tail),
                "the secret part of the {what} appears in the logs"
            );
        }
    }
}

/// `--help` shows which settings come from the environment, never the values of those
/// that may hold a password or key.
#[test]
fn help_does_not_print_secret_settings_set_in_the_environment() {
    let secrets = [
        (
            "DATABASE_URL",
            "postgres://feria:db-pass-7f3a@db.internal/feria",
            "db-pass-7f3a",
        ),
        (
            "SMTP_URL",
            "smtp://mailer:smtp-pass-7f3a@smtp.internal:587",
            "smtp-pass-7f3a",
        ),
        (
            "ONCHAIN_RPC_URL",
            "https://base.example/v2/rpc-key-7f3a",
            "rpc-key-7f3a",
        ),
        (
            "STRIPE_LIVE_SECRET_KEY",
            "sk_live_stripe-7f3a",
            "stripe-7f3a",
        ),
    ];
    for args in [&["--help"][..], &["migrate", "--help"][..]] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_feria"));
        command.args(args);
        for (name, value, _) in secrets {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success());
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("DATABASE_URL"), "{help}");
        for (name, _, secret) in secrets {
            assert!(
                !help.contains(secret),
                "{args:?} prints {name}'s value:\n{help}"
            );
        }
    }
}

/// A database that cannot be reached stops the command with the URL in the error, its
/// password hidden.
#[test]
fn a_failed_start_up_does_not_print_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("postgres://feria:db-pass-7f3a@127.0.0.1:{port}/feria?sslmode=disable");
    for command in ["migrate", "serve"] {
        let output = common::feria(dir.path(), &url, "debug")
            .arg(command)
            .env("BIND", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap();
        assert!(!output.status.success());
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(printed.contains("database"), "{printed}");
        assert!(
            !printed.contains("db-pass-7f3a"),
            "{command} prints the password:\n{printed}"
        );
    }
}
