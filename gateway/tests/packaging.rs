//! What an operator installs: the binary's version and build, its settings file (beneath
//! the environment and the flags), and the example files in `deploy/`.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn feria() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_feria"));
    for variable in ["DATABASE_URL", "BIND", "DATA_DIR", "FERIA_CONFIG"] {
        command.env_remove(variable);
    }
    command.env("RUST_LOG", "warn");
    command
}

/// The commit `git` says this checkout is at, if it is one.
fn git_head() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[test]
fn version_names_the_release_and_the_build() {
    let short = feria().arg("-V").output().unwrap();
    assert!(short.status.success());
    assert_eq!(
        String::from_utf8_lossy(&short.stdout).trim(),
        format!("feria {}", env!("CARGO_PKG_VERSION"))
    );
    let long = feria().arg("--version").output().unwrap();
    assert!(long.status.success());
    let text = String::from_utf8_lossy(&long.stdout).into_owned();
    assert!(
        text.starts_with(&format!("feria {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    for line in [
        "commit: ",
        "profile: debug",
        "target: x86_64",
        "rustc: rustc ",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    if let Some(head) = git_head() {
        assert!(
            text.contains(&format!("commit: {head} (")),
            "{head} in {text}"
        );
    }
}

/// Starts `feria serve` with `configure` and returns the port that answered `/healthz`
/// among `ports`.
async fn answering_port(configure: impl FnOnce(&mut Command), ports: &[u16]) -> u16 {
    let mut command = feria();
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    configure(&mut command);
    let child = command.spawn().unwrap();
    let _running = common::Running(child);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for port in ports {
            if let Ok(response) = client
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                && response.status() == 200
            {
                return *port;
            }
        }
        assert!(Instant::now() < deadline, "no server answered on {ports:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_settings_file_is_read_and_the_environment_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let [from_file, from_env, from_flag] = [0; 3].map(|_| common::free_port());
    let ports = [from_file, from_env, from_flag];
    let config = dir.path().join("feria.toml");
    std::fs::write(
        &config,
        format!(
            "bind = \"127.0.0.1:{from_file}\"\ndata_dir = \"{}\"\nlog_format = \"json\"\n",
            dir.path().display()
        ),
    )
    .unwrap();

    let port = answering_port(
        |c| {
            c.args(["--config"]).arg(&config).arg("serve");
        },
        &ports,
    )
    .await;
    assert_eq!(port, from_file);
    // The file named by FERIA_CONFIG; the data directory it names holds the database.
    assert!(Path::new(&dir.path().join("feria.db")).exists());

    let port = answering_port(
        |c| {
            c.env("FERIA_CONFIG", &config)
                .env("BIND", format!("127.0.0.1:{from_env}"))
                .arg("serve");
        },
        &ports,
    )
    .await;
    assert_eq!(port, from_env);

    let port = answering_port(
        |c| {
            c.env("FERIA_CONFIG", &config)
                .env("BIND", format!("127.0.0.1:{from_env}"))
                .args(["serve", "--bind", &format!("127.0.0.1:{from_flag}")]);
        },
        &ports,
    )
    .await;
    assert_eq!(port, from_flag);
}

#[test]
fn a_mistake_in_the_settings_file_stops_the_start_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("feria.toml");
    std::fs::write(&config, "WRITE_RATE_LIMIT = 5\n").unwrap();
    let output = feria()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown setting `WRITE_RATE_LIMIT`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean `write_rate_limit`"),
        "{stderr}"
    );
}

#[test]
fn the_example_settings_file_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/feria.toml");
    let output = feria()
        .args(["--config", example, "openapi"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `systemd-analyze verify` (Debian's systemd package; .ci/run installs it) checks the
/// unit's directives and its ExecStart, here pointed at the binary just built.
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/feria.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/feria --config /etc/feria/feria.toml serve"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feria.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/feria", env!("CARGO_BIN_EXE_feria")),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze is needed (apt-get install systemd): {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Unknown or misspelt directives are warnings, not failures: none may appear.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("feria.service"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}
