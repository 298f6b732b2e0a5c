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
