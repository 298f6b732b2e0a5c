//! PostgreSQL read replicas (docs/DEPLOYMENT.md, "Read replicas"): a primary and a real
//! streaming replica (`pg_basebackup -R`), each a private cluster on its own port.
//!
//! - reads go to the replica: with its replay paused, another client does not see a new
//!   row yet while its writer does at once (read-your-writes), and both see it once
//!   replay resumes;
//! - a replica lagging past `REPLICA_MAX_LAG_MS` is not read from;
//! - a replica that stops is skipped (no failed read), and used again once back.
//!
//! PostgreSQL only: on SQLite these tests say so and pass, except the one proving that a
//! SQLite server refuses replicas.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use feria_kernel::db::ReplicaConfig;
use feria_testkit::postgres_server::{PostgresServer, StopMode};
use feria_testkit::{Backend, Method, TestApp, backend_from_env};
use serde_json::json;

/// Whether the suite runs on PostgreSQL; says why not otherwise.
fn on_postgres(test: &str) -> bool {
    match backend_from_env() {
        Ok(Backend::Postgres) => true,
        _ => {
            eprintln!(
                "{test}: skipped: read replicas are PostgreSQL only (FERIA_TEST_BACKEND=postgres)"
            );
            false
        }
    }
}

/// A primary, its streaming replica, and a server reading from it.
struct Setup {
    app: TestApp,
    primary: PostgresServer,
    replica: PostgresServer,
    /// The test database's name (the same on the replica).
    database: String,
    /// Two signed-in users of one platform: their tokens.
    writer: String,
    reader: String,
    /// The platform's live API key (the event log takes API keys only).
    api_key: String,
}

async fn setup(max_lag: Duration) -> Setup {
    setup_with(max_lag, None).await
}

/// The Redis of the tests that share write positions between nodes.
fn redis_url() -> String {
    std::env::var("REDIS_TEST_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// [`setup`] with the nodes' shared state in the Redis at `redis` (`REDIS_URL`).
async fn setup_with(max_lag: Duration, redis: Option<String>) -> Setup {
    let primary = PostgresServer::start_new_primary();
    let replica = PostgresServer::start_replica_of(&primary);
    let (primary_port, replica_port) = (primary.port(), replica.port());
    let app = TestApp::builder()
        .postgres_server(&primary.admin_url())
        .config(move |c| {
            c.redis_url = redis;
            // The delivery worker also numbers new events (docs/EVENTS.md): once at start,
            // then not during a test, so what the event log's readers do is what is seen.
            c.webhooks.poll_interval = Duration::from_secs(3600);
            let url = c
                .database_url
                .replace(&format!(":{primary_port}/"), &format!(":{replica_port}/"));
            assert_ne!(url, c.database_url, "the replica's URL differs by its port");
            c.replicas = ReplicaConfig {
                urls: vec![url],
                max_lag,
                pool_size: Some(4),
                check_interval: Duration::from_millis(100),
            };
        })
        .spawn()
        .await;
    let database = app
        .database_url()
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let platform = acme.platform.id.as_str().to_owned();
    let api_key = acme.api_keys.live.clone();
    let (_, writer) = app.person(&platform, "writer@example.com").await;
    let (_, reader) = app.person(&platform, "reader@example.com").await;
    let setup = Setup {
        app,
        primary,
        replica,
        database,
        writer,
        reader,
        api_key,
    };
    setup.wait_for_replicas("usable").await;
    setup
}

impl Setup {
    /// `/metrics`'s value of `name` (the whole series, labels included).
    async fn metric(&self, series: &str) -> f64 {
        let text = self.app.get("/metrics").await.assert_status(200).text();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn reads_served_by(&self, by: &str) -> f64 {
        self.metric(&format!("feria_db_reads_total{{served_by=\"{by}\"}}"))
            .await
    }

    /// Waits (at most 60 s) until the server says its one replica is in `state`.
    async fn wait_for_replicas(&self, state: &str) {
        let series = format!("feria_db_replicas{{state=\"{state}\"}}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.metric(&series).await < 1.0 {
            assert!(
                Instant::now() < deadline,
                "the replica did not become {state} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Pauses WAL replay on the replica and waits (at most 30 s) until it is paused.
    async fn pause_replay(&self) {
        self.replica
            .psql("postgres", "SELECT pg_wal_replay_pause()");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .replica
            .psql("postgres", "SELECT pg_get_wal_replay_pause_state()")
            != "paused"
        {
            assert!(Instant::now() < deadline, "replay did not pause");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn resume_replay(&self) {
        self.replica
            .psql("postgres", "SELECT pg_wal_replay_resume()");
    }

    /// Whether the product's row exists on the replica (read there directly).
    fn on_replica(&self, product: &str) -> bool {
        self.replica.psql(
            &self.database,
            &format!("SELECT count(*) FROM products WHERE id = '{product}'"),
        ) == "1"
    }

    /// The writer creates a product; its id.
    async fn create_product(&self, name: &str) -> String {
        let created = self
            .app
            .send_json_as(
                &self.writer,
                Method::POST,
                "/api/v1/products",
                &json!({"name": name, "price": 10, "isEnabled": true}),
            )
            .await
            .assert_status(201)
            .json_value();
        created["id"].as_str().unwrap().to_owned()
    }

    async fn status_of(&self, token: &str, product: &str) -> u16 {
        self.app
            .get_as(token, &format!("/api/v1/products/{product}"))
            .await
            .status
            .as_u16()
    }

    /// Waits (at most `within`) until `token` reads the product.
    async fn wait_until_seen(&self, token: &str, product: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status_of(token, product).await;
            if status == 200 {
                return;
            }
            assert_eq!(status, 404, "a read answered {status}");
            assert!(
                Instant::now() < deadline,
                "the product was not seen within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn reads_go_to_the_replica_and_each_client_reads_its_own_writes() {
    if !on_postgres("reads_go_to_the_replica_and_each_client_reads_its_own_writes") {
        return;
    }
    // A lag budget far beyond the test: the paused replica stays in use.
    let s = setup(Duration::from_secs(600)).await;
    let before = s.reads_served_by("replica").await;
    s.app
        .get_as(&s.reader, "/api/v1/products")
        .await
        .assert_status(200);
    assert!(
        s.reads_served_by("replica").await > before,
        "a read went to the replica"
    );

    s.pause_replay().await;
    let product = s.create_product("Fresh").await;
    assert!(!s.on_replica(&product), "replay is paused");
    // The writer reads its write at once (the primary serves it) ...
    assert_eq!(s.status_of(&s.writer, &product).await, 200);
    let listed = s
        .app
        .get_as(&s.writer, "/api/v1/products")
        .await
        .assert_status(200)
        .json_value();
    assert!(listed.to_string().contains(&product));
    // ... another client reads the replica, which has not replayed it yet.
    let replica_reads = s.reads_served_by("replica").await;
    assert_eq!(s.status_of(&s.reader, &product).await, 404);
    let listed = s
        .app
        .get_as(&s.reader, "/api/v1/products")
        .await
        .assert_status(200)
        .json_value();
    assert!(!listed.to_string().contains(&product));
    assert!(s.reads_served_by("replica").await >= replica_reads + 2.0);

    s.resume_replay();
    s.wait_until_seen(&s.reader, &product, Duration::from_secs(30))
        .await;
    assert!(s.on_replica(&product));
    // Once the replica has replayed the write, the writer's reads go there too.
    let replica_reads = s.reads_served_by("replica").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.reads_served_by("replica").await <= replica_reads {
        assert!(
            Instant::now() < deadline,
            "the writer never read the replica again"
        );
        assert_eq!(s.status_of(&s.writer, &product).await, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(s.primary);
}

/// PostgreSQL numbers events after commit (docs/EVENTS.md): a replica that has replayed a
/// client's write may hold its event still unnumbered, and a replica cannot number it. The
/// client's read of the event log then runs on the primary, which numbers it, and shows
/// the event; the replica is not set aside for it, and serves the log again once it has
/// replayed the numbers.
#[tokio::test]
async fn the_event_log_shows_a_clients_events_that_a_replica_has_not_numbered() {
    if !on_postgres("the_event_log_shows_a_clients_events_that_a_replica_has_not_numbered") {
        return;
    }
    let s = setup(Duration::from_secs(600)).await;
    // A member's write; the API key, which reads the log, has written nothing.
    let product = s.create_product("Numbered later").await;
    s.wait_until_seen(&s.reader, &product, Duration::from_secs(30))
        .await;
    // The product's event (the members' own sign-up events may wait too, in their mode).
    let unnumbered = |server: &PostgresServer| -> i64 {
        server
            .psql(
                &s.database,
                &format!(
                    "SELECT count(*) FROM events WHERE sequence < 0 AND data LIKE '%{product}%'"
                ),
            )
            .parse()
            .unwrap()
    };
    assert!(unnumbered(&s.replica) > 0, "the event waits for its number");

    let (primary_reads, replica_reads) = (
        s.reads_served_by("primary").await,
        s.reads_served_by("replica").await,
    );
    let log = s
        .app
        .get_as(&s.api_key, "/api/v1/events?type=product.created")
        .await
        .assert_status(200)
        .json_value();
    let data = log["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{log}");
    assert_eq!(data[0]["data"]["object"]["id"], product.as_str());
    assert!(data[0]["sequence"].as_i64().unwrap() > 0);
    assert!(s.reads_served_by("primary").await > primary_reads);
    assert_eq!(unnumbered(&s.primary), 0, "the read numbered it");
    s.wait_for_replicas("usable").await;

    // Once the replica has replayed the numbers, the log is read there.
    let deadline = Instant::now() + Duration::from_secs(30);
    while unnumbered(&s.replica) > 0 {
        assert!(
            Instant::now() < deadline,
            "the replica never replayed the numbers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = s
        .app
        .get_as(&s.api_key, "/api/v1/events?type=product.created")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(again["data"], log["data"]);
    assert!(s.reads_served_by("replica").await > replica_reads);
}

/// With `REDIS_URL`, a client's last write is known to every node: a write through one
/// node and a read through another still reads the write (from the primary while the
/// replica has not replayed it); a node that only knows its own writes would read the
/// replica and miss it.
#[tokio::test]
async fn a_client_reads_its_own_writes_through_another_node_with_redis() {
    if !on_postgres("a_client_reads_its_own_writes_through_another_node_with_redis") {
        return;
    }
    let setup = setup_with(Duration::from_secs(60), Some(redis_url())).await;
    let (database_url, primary_port, replica_port) = (
        setup.app.database_url().to_owned(),
        setup.primary.port(),
        setup.replica.port(),
    );
    // Two more nodes on the same database and replica: one sharing the Redis, one not.
    let other_node = |redis: Option<String>| {
        let database_url = database_url.clone();
        TestApp::builder()
            .postgres_server(&setup.primary.admin_url())
            .config(move |c| {
                c.replicas = ReplicaConfig {
                    urls: vec![
                        database_url
                            .replace(&format!(":{primary_port}/"), &format!(":{replica_port}/")),
                    ],
                    max_lag: Duration::from_secs(60),
                    pool_size: Some(4),
                    check_interval: Duration::from_millis(100),
                };
                c.database_url = database_url;
                c.redis_url = redis;
            })
            .spawn()
    };
    let shared = other_node(Some(redis_url())).await;
    let alone = other_node(None).await;
    for node in [&shared, &alone] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !node
            .get("/metrics")
            .await
            .text()
            .contains("feria_db_replicas{state=\"usable\"} 1")
        {
            assert!(
                Instant::now() < deadline,
                "the other node's replica is not usable"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    setup.pause_replay().await;
    // Written through the first node; read through the others at once.
    let product = setup.create_product("Written on one node").await;
    assert!(!setup.on_replica(&product));
    let path = format!("/api/v1/products/{product}");
    assert_eq!(
        shared.get_as(&setup.writer, &path).await.status.as_u16(),
        200,
        "a node sharing the write positions reads the writer's write"
    );
    assert_eq!(
        alone.get_as(&setup.writer, &path).await.status.as_u16(),
        404,
        "a node that does not know the write reads the paused replica"
    );
    setup.resume_replay();
    setup
        .wait_until_seen(&setup.reader, &product, Duration::from_secs(30))
        .await;
}

#[tokio::test]
async fn a_replica_lagging_past_the_budget_is_not_read_from() {
    if !on_postgres("a_replica_lagging_past_the_budget_is_not_read_from") {
        return;
    }
    let s = setup(Duration::from_millis(300)).await;
    s.pause_replay().await;
    let product = s.create_product("Lagging").await;
    // Within the budget the reader may still get the replica's 404; past it, the primary
    // serves the reader, while the replica still has not replayed the row.
    s.wait_until_seen(&s.reader, &product, Duration::from_secs(20))
        .await;
    assert!(!s.on_replica(&product), "replay is still paused");
    s.wait_for_replicas("lagging").await;
    let primary_reads = s.reads_served_by("primary").await;
    for _ in 0..5 {
        assert_eq!(s.status_of(&s.reader, &product).await, 200);
    }
    assert!(s.reads_served_by("primary").await >= primary_reads + 5.0);

    // Caught up, it is used again.
    s.resume_replay();
    s.wait_for_replicas("usable").await;
    let replica_reads = s.reads_served_by("replica").await;
    assert_eq!(s.status_of(&s.reader, &product).await, 200);
    assert!(s.reads_served_by("replica").await > replica_reads);
    drop(s.primary);
}

#[tokio::test]
async fn a_stopped_replica_is_skipped_and_used_again_when_back() {
    if !on_postgres("a_stopped_replica_is_skipped_and_used_again_when_back") {
        return;
    }
    let s = setup(Duration::from_secs(600)).await;
    let product = s.create_product("Steady").await;
    s.wait_until_seen(&s.reader, &product, Duration::from_secs(30))
        .await;

    s.replica.stop(StopMode::Crash);
    // Every read still succeeds, served by the primary; none waits long.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut reads = 0;
    while Instant::now() < deadline || reads < 20 {
        let started = Instant::now();
        assert_eq!(s.status_of(&s.reader, &product).await, 200);
        let listed = s.app.get_as(&s.reader, "/api/v1/products").await;
        assert_eq!(listed.status.as_u16(), 200, "{}", listed.text());
        assert!(started.elapsed() < Duration::from_secs(5));
        reads += 1;
    }
    s.wait_for_replicas("down").await;
    let primary_reads = s.reads_served_by("primary").await;
    assert_eq!(s.status_of(&s.reader, &product).await, 200);
    assert!(s.reads_served_by("primary").await > primary_reads);

    s.replica.start();
    s.wait_for_replicas("usable").await;
    let replica_reads = s.reads_served_by("replica").await;
    assert_eq!(s.status_of(&s.reader, &product).await, 200);
    assert!(s.reads_served_by("replica").await > replica_reads);
    drop(s.primary);
}

#[tokio::test]
async fn a_sqlite_server_refuses_replicas() {
    let data = tempfile::tempdir().unwrap();
    let mut config = feria::Config::new(data.path(), "sqlite::memory:");
    config.bind = ([127, 0, 0, 1], 0).into();
    config.handle_signals = false;
    config.replicas.urls = vec!["postgres://feria:secret@127.0.0.1:1/feria".into()];
    let error = match feria::Server::build(config).await {
        Ok(_) => panic!("a SQLite server started with replicas"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("need a PostgreSQL primary"), "{error}");
    assert!(!error.contains("secret"), "{error}");
}
