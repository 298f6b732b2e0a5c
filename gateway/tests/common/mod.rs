//! What the tests that run the real `feria` binary share: the command on a data directory
//! and database, a server stopped however the test ends, the code of a sign-in mail.
//! Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command};

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
