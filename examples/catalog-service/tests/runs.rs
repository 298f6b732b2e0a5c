//! Builds and runs the example service as a separate process, as its users would, and
//! checks that the product it created is the one its search finds: on a fresh SQLite
//! file, and on PostgreSQL when `TEST_DATABASE_URL` is set.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use feria_kernel::testing::{POSTGRES_URL_ENV, TestDatabase};

/// Runs `catalog-service url` and returns what it printed, failing on a non-zero exit.
fn run_service(url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_catalog-service"))
        .arg(url)
        .output()
        .expect("the example binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "catalog-service failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The created lantern's line is exactly the one line search found.
fn assert_lantern_found(stdout: &str) {
    let lines = |prefix: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|line| line.strip_prefix(prefix))
            .map(str::to_owned)
            .collect()
    };
    let created = lines("created: ");
    assert_eq!(created.len(), 2, "two products created:\n{stdout}");
    let lantern = created
        .iter()
        .find(|line| line.contains("Brass lantern"))
        .unwrap_or_else(|| panic!("the lantern was created:\n{stdout}"));
    assert!(lantern.starts_with("prod_"), "a product id: {lantern}");
    assert_eq!(
        lines("found: "),
        vec![lantern.clone()],
        "search finds the lantern it created, and only it:\n{stdout}"
    );
}

#[test]
fn the_example_migrates_a_fresh_sqlite_file_creates_and_finds_a_product() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let stdout = run_service(&url);
    assert!(
        !stdout.contains("migrated: 0 migrations"),
        "a fresh file is migrated by the service itself:\n{stdout}"
    );
    assert_lantern_found(&stdout);
}

#[tokio::test]
async fn the_example_runs_on_postgres() {
    let Ok(admin_url) = std::env::var(POSTGRES_URL_ENV) else {
        eprintln!("SKIPPED the example on PostgreSQL: {POSTGRES_URL_ENV} is not set");
        return;
    };
    // A fresh database (migrated by the kit; the service then finds nothing to apply).
    let database = TestDatabase::create_postgres(&admin_url)
        .await
        .expect("a PostgreSQL database");
    let url = database.url().to_owned();
    let stdout = tokio::task::spawn_blocking(move || run_service(&url))
        .await
        .expect("the run finished");
    assert_lantern_found(&stdout);
}
