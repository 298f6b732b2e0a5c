//! What the tests that run the real `feria` binary share: the command on a data directory
//! and database, a platform made with the CLI, a server stopped however the test ends, the
//! code of a sign-in mail and a sign-in through it. Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command};

use serde_json::{Value, json};

/// `feria --data-dir DIR --database-url URL` logging at `log_filter`.
pub fn feria(data_dir: &Path, database_url: &str, log_filter: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_feria"));
    command
        .env("RUST_LOG", log_filter)
        // Required on PostgreSQL; the same for every node of a test (tests only).
        .env(
            "FERIA_SECRET_KEY",
            "f00df00df00df00df00df00df00df00df00df00df00df00df00df00df00df00d",
        )
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--database-url", database_url]);
    command
}

/// A child process killed (and reaped) when dropped: the server stops however the test
/// ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A platform made by `feria platform create`.
pub struct CliPlatform {
    /// `plat_...`.
    pub id: String,
    /// `fer_live_...`.
    pub live_key: String,
    /// `fer_test_...`.
    pub test_key: String,
    /// The whole JSON the command printed.
    pub created: Value,
    /// What the command logged (its standard error).
    pub log: String,
}

/// Runs `feria platform create --name NAME --domain DOMAIN --owner-email OWNER` with
/// `command` (a [`feria`] command: data directory, database, log filter) and asserts that
/// it succeeded.
pub fn create_platform(mut command: Command, name: &str, domain: &str, owner: &str) -> CliPlatform {
    let output = command
        .args(["platform", "create", "--name", name, "--domain", domain])
        .args(["--owner-email", owner])
        .output()
        .expect("feria platform create runs");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "feria platform create failed: {log}"
    );
    let created: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("feria platform create printed no JSON ({e}): {log}"));
    let text = |value: &Value| {
        value
            .as_str()
            .unwrap_or_else(|| panic!("no such field in {created}"))
            .to_owned()
    };
    CliPlatform {
        id: text(&created["platform"]["id"]),
        live_key: text(&created["api_keys"]["live"]),
        test_key: text(&created["api_keys"]["test"]),
        created,
        log,
    }
}

/// The newest mail in `mail_dir` (a server's `MAIL_DIR`) addressed to `email`, if any.
/// Several servers may write to one directory at once: a file that cannot be read (yet)
/// is passed over.
pub fn newest_mail_to(mail_dir: &Path, email: &str) -> Option<String> {
    let addressed = |text: &str| {
        text.lines()
            .take_while(|line| !line.trim().is_empty())
            .any(|line| {
                let Some((key, value)) = line.split_once(':') else {
                    return false;
                };
                let value = value.trim();
                let address = match (value.find('<'), value.rfind('>')) {
                    (Some(start), Some(end)) if start < end => &value[start + 1..end],
                    _ => value,
                };
                key.eq_ignore_ascii_case("to") && address.eq_ignore_ascii_case(email)
            })
    };
    let mut mails: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(mail_dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let modified = entry.metadata().ok()?.modified().ok()?;
            let text = std::fs::read_to_string(entry.path()).ok()?;
            addressed(&text).then_some((modified, text))
        })
        .collect();
    mails.sort_by_key(|(modified, _)| *modified);
    mails.pop().map(|(_, text)| text)
}

/// The code of the newest sign-in mail to `email` in `mail_dir`.
pub fn sign_in_code(mail_dir: &Path, email: &str) -> String {
    let mail = newest_mail_to(mail_dir, email)
        .unwrap_or_else(|| panic!("no mail to {email} in {}", mail_dir.display()));
    six_digit_code(&mail)
}

/// Signs `email` in to `platform_id` through the server at `base` (a code requested,
/// read from `mail_dir`, verified); the session (`access_token`, `refresh_token`,
/// `user` ...).
pub async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    mail_dir: &Path,
    platform_id: &str,
    email: &str,
) -> Value {
    let sent = client
        .post(format!("{base}/api/v1/auth/otp/email"))
        .json(&json!({"platform_id": platform_id, "email": email}))
        .send()
        .await
        .expect("the code request is answered");
    let status = sent.status();
    assert_eq!(
        status,
        200,
        "code request: {}",
        sent.text().await.unwrap_or_default()
    );
    let code = sign_in_code(mail_dir, email);
    let verified = client
        .post(format!("{base}/api/v1/auth/otp/verify"))
        .json(&json!({"platform_id": platform_id, "email": email, "code": code}))
        .send()
        .await
        .expect("the code is checked");
    let status = verified.status();
    let session: Value = verified.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "verify: {session}");
    assert!(session["access_token"].is_string(), "{session}");
    session
}

/// The 6-digit code in a sign-in mail's body (the headers hold other digits).
pub fn six_digit_code(mail: &str) -> String {
    let body = mail.split("\r\n\r\n").nth(1).unwrap_or(mail);
    body.split(|c: char| !c.is_ascii_digit())
        .find(|word| word.len() == 6)
        .unwrap_or_else(|| panic!("no code in {mail}"))
        .to_owned()
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on loopback")
}

/// `feria serve` started from `command` on a free port of loopback, its output discarded,
/// answering `/readyz`; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// Runs `command serve --bind 127.0.0.1:PORT` and waits (at most 60 s) until it is ready.
    pub async fn start(command: Command) -> Server {
        Server::start_on(command, free_port()).await
    }

    /// [`Server::start`] on a given port (a node a balancer finds again after a restart).
    pub async fn start_on(mut command: Command, port: u16) -> Server {
        let child = command
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("feria serve starts");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not come up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        server
    }

    /// SIGKILL: no shutdown, no flush, no rollback but the database's own.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
