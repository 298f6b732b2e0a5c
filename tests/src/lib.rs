//! The Feria test kit: the real server, in-process, on a random port, over a fresh
//! database — a temporary SQLite file, or a new PostgreSQL database created through
//! `TEST_DATABASE_URL` and dropped afterwards — with an HTTP client pointed at it.
//!
//! The backend comes from `FERIA_TEST_BACKEND` (`sqlite`, the default, or `postgres`),
//! so one suite runs on both by running it twice (`make test` does).
//!
//! ```no_run
//! use feria_testkit::TestApp;
//!
//! #[tokio::test]
//! async fn health() {
//!     let app = TestApp::spawn().await;
//!     let response = app.get("/healthz").await.assert_status(200);
//!     assert_eq!(response.json_value()["status"], "ok");
//! }
//! ```
//!
//! Other Rust projects use it the same way for their integration tests: add
//! `feria-testkit` as a dev-dependency, spawn a [`TestApp`] per test, drive it over HTTP.
//! [`TestApp::builder`] adjusts the configuration, picks a backend, or mounts extra
//! routes on the same middleware stack.

// A test kit fails by panicking with a clear message: that is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod haproxy;
pub mod postgres_server;
pub mod webhook_receiver;

pub use feria::{Config, ExtraRoutes};
pub use feria_auth::bootstrap::CreatedPlatform;
pub use feria_kernel::db::{Backend, Db};
pub use feria_kernel::testing::{TestDatabase, backend_from_env};
pub use feria_kernel::{ErrorBody, FieldError};
pub use reqwest::{Method, StatusCode};

/// The smallest valid PNG (1×1, RGBA): an image for upload tests.
pub const PNG_1X1: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\xa5\xf7\xc9\x8b\0\0\0\0IEND\xaeB`\x82";

/// A running Feria server with its own database, stopped and cleaned up on drop.
pub struct TestApp {
    /// The address the server listens on (127.0.0.1, random port).
    pub address: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// A client with no default headers; use [`TestApp::request`] to build requests.
    pub client: reqwest::Client,
    server_db: Db,
    handle: ServerHandle,
    server_thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    // Dropped after the server has been told to stop (see `Drop`).
    database: TestDatabase,
    data_dir: tempfile::TempDir,
    /// Routes mounted by the test, which the OpenAPI document does not describe: their
    /// errors are not checked against it.
    extra_routes: bool,
}

type ConfigureFn = Box<dyn FnOnce(&mut Config)>;

/// The `FERIA_SECRET_KEY` of test servers on PostgreSQL (64 hex digits; tests only).
pub const TEST_SECRET_KEY: &str =
    "f00df00df00df00df00df00df00df00df00df00df00df00df00df00df00df00d";

/// Options for [`TestApp`]: backend, configuration tweaks, extra routes.
#[derive(Default)]
pub struct TestAppBuilder {
    backend: Option<Backend>,
    postgres_admin_url: Option<String>,
    configure: Vec<ConfigureFn>,
    extra_routes: Option<ExtraRoutes>,
}

impl TestAppBuilder {
    /// Runs on this backend instead of the one `FERIA_TEST_BACKEND` names.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Runs on PostgreSQL, in a new database on the server `admin_url` points at (one the
    /// test started itself, to stop and restart it) instead of `TEST_DATABASE_URL`'s.
    pub fn postgres_server(mut self, admin_url: &str) -> Self {
        self.backend = Some(Backend::Postgres);
        self.postgres_admin_url = Some(admin_url.to_owned());
        self
    }

    /// Adjusts the server's configuration before it starts (body limit, timeouts ...).
    pub fn config(mut self, configure: impl FnOnce(&mut Config) + 'static) -> Self {
        self.configure.push(Box::new(configure));
        self
    }

    /// Mounts extra routes beside Feria's own, behind the same middleware.
    pub fn routes(
        mut self,
        routes: impl Fn(&mut actix_web::web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        self.extra_routes = Some(Arc::new(routes));
        self
    }

    /// Creates the database, starts the server and waits until it answers.
    pub async fn spawn(self) -> TestApp {
        if std::env::var_os("RUST_LOG").is_some() {
            feria::telemetry::init(feria::LogFormat::Pretty);
        }
        let backend = match self.backend {
            Some(backend) => backend,
            None => backend_from_env().expect("FERIA_TEST_BACKEND"),
        };
        let database = match &self.postgres_admin_url {
            Some(admin_url) => TestDatabase::create_postgres(admin_url).await,
            None => TestDatabase::create(backend).await,
        }
        .unwrap_or_else(|e| panic!("cannot create a {backend} test database: {e}"));
        let data_dir = tempfile::Builder::new()
            .prefix("feria-app-")
            .tempdir()
            .expect("temporary data directory");
        let mut config = Config::new(data_dir.path(), database.url());
        config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        // Two workers, as on the smallest real deployment: concurrent requests of a test
        // run in parallel on two threads, not only interleaved at awaits on one.
        config.workers = Some(2);
        config.handle_signals = false;
        config.shutdown_timeout_secs = 5;
        config.database_pool_size = Some(8);
        // PostgreSQL needs FERIA_SECRET_KEY (SQLite makes one in the data directory, as
        // `make run` does).
        if backend == Backend::Postgres {
            config.secret_keys.current = Some(TEST_SECRET_KEY.to_owned());
        }
        for configure in self.configure {
            configure(&mut config);
        }
        // The server runs on its own thread under an actix System, exactly as `feria
        // serve` runs it (graceful shutdown included), whatever runtime the test uses.
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let extra_routes = self.extra_routes;
        let has_extra_routes = extra_routes.is_some();
        let server_thread = std::thread::Builder::new()
            .name("feria-test-server".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    match feria::Server::build_with_routes(config, extra_routes).await {
                        Ok(server) => {
                            let started =
                                (server.local_addr(), server.handle(), server.db().clone());
                            let _ = ready_tx.send(Ok(started));
                            server.run().await
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                            Ok(())
                        }
                    }
                })
            })
            .expect("server thread");
        let (address, handle, server_db) = ready_rx
            .await
            .expect("the server thread reports")
            .unwrap_or_else(|e| panic!("the server does not start: {e:#}"));
        TestApp {
            address,
            base_url: format!("http://{address}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // A request the server never answers fails its test instead of hanging
                // the suite (the server's own request timeout is shorter).
                .timeout(Duration::from_secs(120))
                .build()
                .expect("HTTP client"),
            server_db,
            handle,
            server_thread: Some(server_thread),
            database,
            data_dir,
            extra_routes: has_extra_routes,
        }
    }
}

impl TestApp {
    /// A server on the backend `FERIA_TEST_BACKEND` names, with default configuration.
    pub async fn spawn() -> TestApp {
        TestApp::builder().spawn().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    pub fn backend(&self) -> Backend {
        self.database.backend()
    }

    /// A handle on the test's database, separate from the server's pool: for set-up and
    /// for asserting what was stored.
    pub fn db(&self) -> &Db {
        self.database.db()
    }

    /// Runs SQL statements on the test's database, outside the server: for tests that set
    /// up rows an older server wrote.
    pub async fn execute_sql(&self, sql: &str) {
        let mut conn = self.db().conn().await.expect("a database connection");
        conn.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The `up.sql` of the migration `name` (its folder) for this test's backend.
    pub fn migration_sql(&self, name: &str) -> String {
        let dir = match self.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let path = format!(
            "{}/../migrations/{dir}/{name}/up.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The server's own database handle (closing it makes the server see the database
    /// as unavailable).
    pub fn server_db(&self) -> &Db {
        &self.server_db
    }

    /// The database URL the server runs on.
    pub fn database_url(&self) -> &str {
        self.database.url()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Where the server writes outgoing mail (`.eml` files).
    pub fn mail_dir(&self) -> std::path::PathBuf {
        self.data_dir.path().join("mail")
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A request to `path`, to finish with headers or a body and pass to [`TestApp::send`].
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends a request and reads the whole response. An error response of this server
    /// must carry a code the OpenAPI document lists for the operation and status (or a
    /// common one): this panics otherwise, so that every test holds the document to what
    /// the server answers (docs/API-CONVENTIONS.md).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> TestResponse {
        let (client, request) = request.build_split();
        let request = request.expect("a well-formed request");
        let method = request.method().as_str().to_owned();
        let path = request.url().path().to_owned();
        let ours = request.url().port_or_known_default() == Some(self.address.port());
        let response = client.execute(request).await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("the response body").to_vec();
        if ours && status.as_u16() >= 400 {
            self.check_error_code(&method, &path, status.as_u16(), &body);
        }
        TestResponse {
            status,
            headers,
            body,
        }
    }

    #[track_caller]
    fn check_error_code(&self, method: &str, path: &str, status: u16, body: &[u8]) {
        // Only bodies in the error shape carry a code (an image's 404 may be plain).
        let Ok(error) = serde_json::from_slice::<ErrorBody>(body) else {
            return;
        };
        let document = openapi_document();
        if self.extra_routes && find_operation(document, method, path).is_none() {
            return;
        }
        if let Err(problem) = check_documented_code(document, method, path, status, &error.error) {
            panic!("{problem}; body: {}", String::from_utf8_lossy(body));
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn post_json(&self, path: &str, body: &impl Serialize) -> TestResponse {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn put_json(&self, path: &str, body: &impl Serialize) -> TestResponse {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    /// A server (as [`TestApp::spawn`]) with one platform already created: "Acme" at
    /// `acme.example.com`, owned by `owner@acme.example`.
    pub async fn spawn_with_platform() -> (TestApp, CreatedPlatform) {
        let app = TestApp::spawn().await;
        let acme = app
            .create_platform("Acme", "acme.example.com", "owner@acme.example")
            .await;
        (app, acme)
    }

    /// Creates a platform with its owner (in both modes) and its test and live API keys,
    /// exactly as `feria platform create` does.
    pub async fn create_platform(
        &self,
        name: &str,
        domain: &str,
        owner_email: &str,
    ) -> CreatedPlatform {
        feria_auth::bootstrap::create_platform(self.db(), name, domain, owner_email)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create platform {name}: {}",
                    feria_kernel::ApiError::from(e)
                )
            })
    }

    /// Every mail the server has written to its mail directory, oldest first.
    pub fn mails(&self) -> Vec<TestMail> {
        let Ok(entries) = std::fs::read_dir(self.mail_dir()) else {
            return Vec::new();
        };
        let mut mails: Vec<(std::time::SystemTime, TestMail)> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|e| e == "eml"))
            .filter_map(|entry| {
                let modified = entry.metadata().ok()?.modified().ok()?;
                let text = std::fs::read_to_string(entry.path()).ok()?;
                Some((modified, TestMail::parse(&text)))
            })
            .collect();
        mails.sort_by_key(|(modified, _)| *modified);
        mails.into_iter().map(|(_, mail)| mail).collect()
    }

    /// The 6-digit code of the newest sign-in mail sent to `email`.
    pub fn last_code_for(&self, email: &str) -> String {
        let mail = self
            .mails()
            .into_iter()
            .rev()
            .find(|mail| mail.to.eq_ignore_ascii_case(email))
            .unwrap_or_else(|| panic!("no mail to {email}"));
        mail.body
            .split(|c: char| !c.is_ascii_digit())
            .find(|word| word.len() == 6)
            .unwrap_or_else(|| panic!("no 6-digit code in: {}", mail.body))
            .to_owned()
    }

    /// Signs `email` in to the platform in `mode` through the real endpoints (request a
    /// code, read it from the mail, verify it); returns the session body
    /// (`access_token`, `refresh_token`, `user` ...).
    pub async fn sign_in(&self, platform_id: &str, email: &str, mode: &str) -> serde_json::Value {
        self.post_json(
            "/api/v1/auth/otp/email",
            &serde_json::json!({"platform_id": platform_id, "email": email, "mode": mode}),
        )
        .await
        .assert_status(200);
        let code = self.last_code_for(email);
        self.post_json(
            "/api/v1/auth/otp/verify",
            &serde_json::json!({"platform_id": platform_id, "email": email, "code": code, "mode": mode}),
        )
        .await
        .assert_status(200)
        .json_value()
    }

    /// Signs `email` in to the platform in live mode: (user id, access token).
    pub async fn person(&self, platform_id: &str, email: &str) -> (String, String) {
        let session = self.sign_in(platform_id, email, "live").await;
        let field = |value: &serde_json::Value| value.as_str().expect("a string").to_owned();
        (
            field(&session["user"]["id"]),
            field(&session["access_token"]),
        )
    }

    /// A request with `Authorization: Bearer token` and, when given, a JSON body.
    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> TestResponse {
        let request = self.request(method, path).bearer_auth(token);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        self.send(request).await
    }

    /// Adds `amount` USD to a user's credits with an admin credential (201 asserted).
    pub async fn top_up(&self, admin: &str, user: &str, amount: f64) {
        let body = serde_json::json!({"amount": amount, "currency": "usd"});
        self.send_json_as(
            admin,
            Method::POST,
            &format!("/api/v1/users/{user}/credits"),
            &body,
        )
        .await
        .assert_status(201);
    }

    /// A user's USD credit balance (0 when there is none), read with an admin credential.
    pub async fn credits(&self, admin: &str, user: &str) -> f64 {
        let credits = self
            .get_as(admin, &format!("/api/v1/users/{user}/credits"))
            .await
            .assert_status(200)
            .json_value();
        credits["balances"]
            .as_array()
            .expect("balances")
            .iter()
            .find(|b| b["currency"] == "usd")
            .map_or(0.0, |b| b["amount"].as_f64().expect("a number"))
    }

    /// A GET with `Authorization: Bearer token`.
    pub async fn get_as(&self, token: &str, path: &str) -> TestResponse {
        self.send(self.request(Method::GET, path).bearer_auth(token))
            .await
    }

    /// A JSON request with `Authorization: Bearer token`.
    pub async fn send_json_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> TestResponse {
        self.send(self.request(method, path).bearer_auth(token).json(body))
            .await
    }

    /// Stops the server: `graceful` lets in-flight requests finish first.
    pub async fn stop(&mut self, graceful: bool) {
        self.handle.stop(graceful).await;
        if let Some(thread) = self.server_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; the server thread winds down
        // on its own. The database (a field) is dropped right after and removed.
        if self.server_thread.is_some() {
            drop(self.handle.stop(false));
        }
    }
}

/// A whole response: status, headers, body.
#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as `T`; panics with the body when it does not parse.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not the expected JSON ({e}): {}", self.text()))
    }

    pub fn json_value(&self) -> serde_json::Value {
        self.json()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn assert_status(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }

    /// Asserts an error in the one wire shape with this status and code, carrying the
    /// same request id as the `X-Request-Id` header; returns the body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> ErrorBody {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text()
        );
        let body: ErrorBody = self.json();
        assert_eq!(
            body.error,
            code,
            "unexpected error code; body: {}",
            self.text()
        );
        assert!(!body.message.is_empty(), "an error needs a message");
        let header = self.header("x-request-id").expect("X-Request-Id header");
        assert_eq!(
            body.request_id.as_deref(),
            Some(header),
            "request_id must match the header"
        );
        body
    }
}

/// The OpenAPI document this server describes itself with, parsed once.
pub fn openapi_document() -> &'static serde_json::Value {
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let json = feria::openapi::spec_json()
            .unwrap_or_else(|e| panic!("cannot generate the OpenAPI document: {e}"));
        serde_json::from_str(&json).expect("the OpenAPI document is JSON")
    })
}

/// The path template and operation of `document` that serve `method path`: of the
/// templates matching the path, the one with the most literal segments (`/users/auth`
/// before `/users/{id}`), as the router prefers them.
pub fn find_operation<'a>(
    document: &'a serde_json::Value,
    method: &str,
    path: &str,
) -> Option<(&'a str, &'a serde_json::Value)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let paths = document.get("paths")?.as_object()?;
    paths
        .iter()
        .filter_map(|(template, item)| {
            let parts: Vec<&str> = template.trim_end_matches('/').split('/').collect();
            let matches = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| {
                    (part.starts_with('{') && part.ends_with('}') && !segment.is_empty())
                        || part == segment
                });
            let literals = parts.iter().filter(|part| !part.starts_with('{')).count();
            let operation = item.get(method.to_ascii_lowercase())?;
            matches.then_some((literals, template.as_str(), operation))
        })
        .max_by_key(|(literals, _, _)| *literals)
        .map(|(_, template, operation)| (template, operation))
}

/// Whether `document` lists `code` for what `method path` answered with `status`: in the
/// operation's `x-error-codes` for that status, or in `x-common-error-codes` for it when
/// the operation documents the status. A path no operation serves may answer common
/// codes only (`not_found`, `method_not_allowed` ...), and any request `internal_error`.
/// The error says what is missing, as a test failure.
pub fn check_documented_code(
    document: &serde_json::Value,
    method: &str,
    path: &str,
    status: u16,
    code: &str,
) -> Result<(), String> {
    let listed = |value: Option<&serde_json::Value>| -> Vec<String> {
        value
            .and_then(serde_json::Value::as_array)
            .map(|codes| {
                codes
                    .iter()
                    .filter_map(|code| code.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let common = listed(document.pointer(&format!("/x-common-error-codes/{status}")));
    let is_common = common.iter().any(|listed| listed == code);
    let Some((template, operation)) = find_operation(document, method, path) else {
        return if is_common {
            Ok(())
        } else {
            Err(format!(
                "{method} {path} answered {status} `{code}`; no operation of the OpenAPI \
                 document serves it and `{code}` is not a common code of {status}"
            ))
        };
    };
    let Some(response) = operation.pointer(&format!("/responses/{status}")) else {
        return if is_common && status == 500 {
            Ok(())
        } else {
            Err(format!(
                "{method} {template} answered {status} `{code}`, and the OpenAPI document \
                 lists no {status} response for it"
            ))
        };
    };
    let own = listed(response.get("x-error-codes"));
    if is_common || own.iter().any(|listed| listed == code) {
        Ok(())
    } else {
        Err(format!(
            "{method} {template} answered {status} `{code}`, which the OpenAPI document does \
             not list for that response (it lists {own:?}, and {common:?} as common)"
        ))
    }
}

/// A mail the server sent, read back from its `.eml` file.
#[derive(Debug, Clone)]
pub struct TestMail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl TestMail {
    fn parse(text: &str) -> TestMail {
        let text = text.replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        // Unfold continued header lines.
        let head = head.replace("\n ", " ").replace("\n\t", " ");
        let header = |name: &str| {
            head.lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.eq_ignore_ascii_case(name)
                        .then(|| value.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let quoted_printable =
            header("Content-Transfer-Encoding").eq_ignore_ascii_case("quoted-printable");
        let body = if quoted_printable {
            decode_quoted_printable(body)
        } else {
            body.to_owned()
        };
        let to = header("To");
        let to = match (to.find('<'), to.rfind('>')) {
            (Some(start), Some(end)) if start < end => to[start + 1..end].to_owned(),
            _ => to,
        };
        TestMail {
            to,
            subject: header("Subject"),
            body,
        }
    }
}

fn decode_quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'='
            && index + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[index + 1..index + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The base URL of the local Stripe-compatible server (localstripe with Feria's
/// extension, `scripts/localstripe.sh`): `STRIPE_TEST_BASE_URL` when set (CI sets it),
/// otherwise the script is run to install and start it. Panics with the reason when no
/// server answers: tests that need Stripe fail, they never skip.
pub fn localstripe_url() -> String {
    local_service_url("STRIPE_TEST_BASE_URL", "localstripe.sh", "localstripe")
}

/// The endpoint of the local S3-compatible server (moto's server mode,
/// `scripts/s3-server.sh`): `S3_TEST_ENDPOINT` when set (CI sets it), otherwise the script
/// is run to install and start it. Panics with the reason when no server answers: tests
/// that need S3 fail, they never skip.
pub fn s3_endpoint() -> String {
    local_service_url("S3_TEST_ENDPOINT", "s3-server.sh", "the S3 server")
}

/// The credentials the tests give the S3 server (moto takes any).
pub const S3_TEST_ACCESS_KEY: &str = "feria-test-key";
pub const S3_TEST_SECRET: &str = "feria-test-secret-do-not-log";

/// A new, empty bucket of its own on the S3 test server (`feria-test-...`).
pub async fn s3_bucket(endpoint: &str) -> String {
    let bucket = format!(
        "feria-test-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let response = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot reach the S3 server at {endpoint}: {e}"));
    assert!(
        response.status().is_success(),
        "creating the bucket {bucket} at {endpoint}: {}",
        response.status()
    );
    bucket
}

/// A request to the S3 test server behind the server's back (to read or delete an object
/// directly). moto refuses anonymous requests to objects but does not check signatures,
/// so an `Authorization` header naming the test key is enough.
pub fn s3_request(method: Method, url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, url).header(
        "Authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={S3_TEST_ACCESS_KEY}/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=00"
        ),
    )
}

/// Points a server's configuration at `location` (`s3://bucket/prefix`) on the S3 server
/// at `endpoint`, with the test credentials.
pub fn use_s3(config: &mut Config, endpoint: &str, location: &str) {
    config.media_store = location
        .parse()
        .unwrap_or_else(|e| panic!("{location}: {e}"));
    config.media_s3 = feria_platforms::media::S3Settings {
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".to_owned(),
        access_key_id: Some(S3_TEST_ACCESS_KEY.to_owned()),
        secret_access_key: Some(S3_TEST_SECRET.to_owned()),
    };
}

/// `variable` when set, otherwise the URL the last line of `scripts/<script>` prints.
fn local_service_url(variable: &str, script: &str, what: &str) -> String {
    if let Ok(url) = std::env::var(variable)
        && !url.trim().is_empty()
    {
        return url.trim().trim_end_matches('/').to_owned();
    }
    let script = format!("{}/../scripts/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last().map(str::trim) {
        Some(url) if output.status.success() && url.starts_with("http") => url.to_owned(),
        _ => panic!(
            "{variable} is unset and {script} could not start {what} ({}):\n{}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> serde_json::Value {
        serde_json::json!({
            "paths": {
                "/api/v1/contracts/{id}/send": {
                    "post": {"responses": {
                        "200": {"description": "Sent."},
                        "409": {
                            "description": "Settled or void (`contract_locked`).",
                            "x-error-codes": ["contract_locked"]
                        },
                        "404": {"description": "No such contract."}
                    }}
                },
                "/api/v1/users/{id}": {"get": {"responses": {"404": {}}}},
                "/api/v1/users/auth": {"get": {"responses": {"401": {}}}}
            },
            "x-common-error-codes": {
                "401": ["unauthorized"],
                "404": ["not_found"],
                "405": ["method_not_allowed"],
                "500": ["internal_error"]
            }
        })
    }

    #[test]
    fn listed_and_common_codes_pass() {
        let doc = document();
        let send = "/api/v1/contracts/ctr_1/send";
        assert_eq!(
            check_documented_code(&doc, "POST", send, 409, "contract_locked"),
            Ok(())
        );
        assert_eq!(
            check_documented_code(&doc, "POST", send, 404, "not_found"),
            Ok(())
        );
        assert_eq!(
            check_documented_code(&doc, "POST", send, 500, "internal_error"),
            Ok(())
        );
        // Unknown routes and methods answer common codes.
        assert_eq!(
            check_documented_code(&doc, "GET", "/nope", 404, "not_found"),
            Ok(())
        );
        assert_eq!(
            check_documented_code(&doc, "DELETE", send, 405, "method_not_allowed"),
            Ok(())
        );
    }

    #[test]
    fn unlisted_codes_and_statuses_fail_with_the_operation_named() {
        let doc = document();
        let send = "/api/v1/contracts/ctr_1/send";
        let unlisted = check_documented_code(&doc, "POST", send, 409, "foo");
        assert_eq!(
            unlisted,
            Err(
                "POST /api/v1/contracts/{id}/send answered 409 `foo`, which the OpenAPI \
                 document does not list for that response (it lists [\"contract_locked\"], \
                 and [] as common)"
                    .to_owned()
            )
        );
        // A code of another status is not common here.
        assert!(check_documented_code(&doc, "POST", send, 409, "not_found").is_err());
        // A status the operation does not document.
        assert!(check_documented_code(&doc, "POST", send, 401, "unauthorized").is_err());
        assert!(check_documented_code(&doc, "GET", "/nope", 409, "foo").is_err());
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        let doc = document();
        let found = find_operation(&doc, "GET", "/api/v1/users/auth").map(|(t, _)| t);
        assert_eq!(found, Some("/api/v1/users/auth"));
        let found = find_operation(&doc, "GET", "/api/v1/users/user_1").map(|(t, _)| t);
        assert_eq!(found, Some("/api/v1/users/{id}"));
        assert!(find_operation(&doc, "GET", "/api/v1/users").is_none());
    }
}
