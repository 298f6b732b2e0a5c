//! The `feria` binary itself: migrate, openapi, configuration errors, and serve with a
//! graceful stop on SIGTERM.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn feria() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_feria"));
    command.env_remove("DATABASE_URL").env("RUST_LOG", "warn");
    command
}

#[test]
fn openapi_prints_the_committed_document() {
    let output = feria().arg("openapi").output().unwrap();
    assert!(output.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../openapi/openapi.json"
    ))
    .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stdout) == committed,
        "openapi/openapi.json is out of date: run `make openapi`"
    );
}

#[test]
fn migrate_creates_the_embedded_database_under_the_data_dir_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let output = feria()
            .arg("migrate")
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("on sqlite"), "{stdout}");
    }
    assert!(dir.path().join("feria.db").is_file());
}

#[test]
fn an_unsupported_database_url_fails_with_a_clear_message() {
    let output = feria()
        .args(["migrate", "--database-url", "mysql://root@localhost/feria"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
}

#[test]
fn serve_answers_and_stops_gracefully_on_sigterm_keeping_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut child = feria()
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
            "--trusted-proxies",
            "127.0.0.1/32",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        match http_get(port, "/readyz") {
            Some(response) => break response,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => {
                let _ = child.kill();
                panic!("the server did not come up");
            }
        }
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"database\":\"sqlite\""), "{body}");
    assert!(dir.path().join("feria.db").is_file());

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(
        dir.path().join("feria.db").is_file(),
        "the database outlives the process"
    );

    // One JSON log line per request, with its id, route, status, latency and client: the
    // address the trusted proxy (this test, from 127.0.0.1) forwarded.
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut logs).unwrap();
    let request_line = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["route"] == "/readyz" && line["status"] == 200)
        .unwrap_or_else(|| panic!("no JSON log line for GET /readyz in:\n{logs}"));
    assert_eq!(request_line["method"], "GET");
    assert_eq!(request_line["request_id"].as_str().map(str::len), Some(26));
    assert!(request_line["latency_ms"].as_f64().is_some());
    assert_eq!(request_line["client"], "192.0.2.44");
}

/// A minimal HTTP/1.1 GET, to keep this test free of an async runtime, as a proxy sends it
/// for the client 192.0.2.44.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 192.0.2.44\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}
