//! CORS through real HTTP and a real browser, on either backend (docs/DEPLOYMENT.md,
//! `## CORS`): the server's list (`CORS_ALLOWED_ORIGINS`) and each platform's own
//! (`corsAllowedOrigins`, edited by its admins) allow an origin; a preflight is answered
//! from memory; a platform's origin reads that platform's answers only; every API answer
//! varies on `Origin`; no wildcard and no credentials are ever allowed. The last test
//! drives headless Chromium: a page on another loopback origin calls the API with a key;
//! the listed origin reads the answer, the others are blocked by the browser.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// In the server's list.
const CONSOLE: &str = "https://console.example";
/// In Acme's list.
const ACME_APP: &str = "https://app.acme.example";
/// In Globex's list.
const GLOBEX_APP: &str = "https://app.globex.example";
/// In no list.
const EVIL: &str = "https://evil.example";

/// A server whose own list holds [`CONSOLE`], with Acme allowing [`ACME_APP`] and Globex
/// [`GLOBEX_APP`]. The reload is slow, so whatever applies at once was applied by the
/// change itself.
async fn two_platforms() -> (TestApp, CreatedPlatform, CreatedPlatform) {
    let app = TestApp::builder()
        .config(|c| {
            c.cors.allowed_origins = vec![CONSOLE.to_owned()];
            c.cors.refresh = Duration::from_secs(3600);
        })
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let globex = app
        .create_platform("Globex", "globex.example.com", "owner@globex.example")
        .await;
    set_origins(&app, &acme, &[ACME_APP])
        .await
        .assert_status(200);
    set_origins(&app, &globex, &[GLOBEX_APP])
        .await
        .assert_status(200);
    (app, acme, globex)
}

/// `PUT /platforms/{id}` with the platform's live key.
async fn set_origins(app: &TestApp, platform: &CreatedPlatform, origins: &[&str]) -> TestResponse {
    app.send_json_as(
        &platform.api_keys.live,
        Method::PUT,
        &format!("/api/v1/platforms/{}", platform.platform.id),
        &json!({ "corsAllowedOrigins": origins }),
    )
    .await
}

/// A browser's preflight of a `method` request to `path` that sends `Authorization`.
async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> TestResponse {
    app.send(
        app.request(Method::OPTIONS, path)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", method)
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
    )
    .await
}

/// A GET of `path` from a page at `origin`, with `token` when given.
async fn get_from(app: &TestApp, origin: &str, token: Option<&str>, path: &str) -> TestResponse {
    let request = app.request(Method::GET, path).header("Origin", origin);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    app.send(request).await
}

fn allowed_origin(response: &TestResponse) -> Option<&str> {
    response.header("access-control-allow-origin")
}

/// No answer ever allows every origin or credentials.
fn assert_no_wildcard_nor_credentials(response: &TestResponse) {
    assert_ne!(allowed_origin(response), Some("*"));
    assert!(
        response
            .header("access-control-allow-credentials")
            .is_none(),
        "credentials allowed: {:?}",
        response.headers
    );
}

fn varies_on(response: &TestResponse, name: &str) -> bool {
    response
        .headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(name))
}

fn has_allow_headers(response: &TestResponse) -> bool {
    response
        .headers
        .keys()
        .any(|name| name.as_str().starts_with("access-control-allow-"))
}

#[tokio::test]
async fn preflights_allow_listed_origins_from_memory_and_nothing_else() {
    let (app, _acme, _globex) = two_platforms().await;

    for origin in [CONSOLE, ACME_APP, GLOBEX_APP] {
        let answer = preflight(&app, "/api/v1/platforms", origin, "GET")
            .await
            .assert_status(204);
        assert_eq!(allowed_origin(&answer), Some(origin));
        assert_eq!(
            answer.header("access-control-allow-methods"),
            Some("GET"),
            "the path's own methods"
        );
        let headers = answer
            .header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        for header in [
            "authorization",
            "content-type",
            "idempotency-key",
            "x-request-id",
        ] {
            assert!(headers.contains(header), "{header} not in {headers}");
        }
        assert_eq!(answer.header("access-control-max-age"), Some("600"));
        for name in [
            "origin",
            "access-control-request-method",
            "access-control-request-headers",
        ] {
            assert!(varies_on(&answer, name), "Vary lacks {name}");
        }
        assert_no_wildcard_nor_credentials(&answer);
    }
    let put = preflight(&app, "/api/v1/platforms/plat_x", ACME_APP, "PUT")
        .await
        .assert_status(204);
    assert_eq!(put.header("access-control-allow-methods"), Some("PUT"));

    // Another origin: answered, with nothing that lets the browser send the request.
    for origin in [EVIL, "null", "https://app.acme.example.evil.example", "*"] {
        let answer = preflight(&app, "/api/v1/platforms", origin, "GET")
            .await
            .assert_status(204);
        assert!(
            !has_allow_headers(&answer),
            "{origin}: {:?}",
            answer.headers
        );
        assert!(varies_on(&answer, "origin"));
    }

    // Only paths the API serves are answered; the server's other paths never are.
    let unknown = preflight(&app, "/api/v1/no-such-thing", ACME_APP, "GET").await;
    assert_eq!(unknown.status.as_u16(), 404);
    assert!(!has_allow_headers(&unknown));
    for path in ["/metrics", "/healthz", "/openapi.json"] {
        let answer = preflight(&app, path, CONSOLE, "GET").await;
        assert!(!has_allow_headers(&answer), "{path}: {:?}", answer.headers);
    }

    // Answered from memory: with the database gone, preflights are still answered.
    app.server_db().close();
    let answer = preflight(&app, "/api/v1/platforms", ACME_APP, "GET")
        .await
        .assert_status(204);
    assert_eq!(allowed_origin(&answer), Some(ACME_APP));
}

#[tokio::test]
async fn a_platforms_origins_read_its_own_answers_only() {
    let (app, acme, globex) = two_platforms().await;
    let acme_key = acme.api_keys.live.as_str();
    let globex_key = globex.api_keys.live.as_str();

    let cases = [
        // (origin, credential, allowed)
        (ACME_APP, Some(acme_key), true),
        (GLOBEX_APP, Some(globex_key), true),
        (CONSOLE, Some(acme_key), true),
        (CONSOLE, Some(globex_key), true),
        (ACME_APP, Some(globex_key), false),
        (GLOBEX_APP, Some(acme_key), false),
        (EVIL, Some(acme_key), false),
    ];
    for (origin, key, allowed) in cases {
        let answer = get_from(&app, origin, key, "/api/v1/platforms")
            .await
            .assert_status(200);
        assert_eq!(
            allowed_origin(&answer),
            allowed.then_some(origin),
            "{origin} with {key:?}"
        );
        assert!(varies_on(&answer, "origin"));
        assert_no_wildcard_nor_credentials(&answer);
        if allowed {
            let exposed = answer
                .header("access-control-expose-headers")
                .unwrap()
                .to_ascii_lowercase();
            for header in ["x-request-id", "retry-after", "ratelimit-remaining"] {
                assert!(exposed.contains(header), "{header} not in {exposed}");
            }
        }
    }

    // Without an Origin, nothing but the Vary.
    let plain = app
        .get_as(acme_key, "/api/v1/platforms")
        .await
        .assert_status(200);
    assert!(allowed_origin(&plain).is_none());
    assert!(varies_on(&plain, "origin"));

    // Without a credential (public reads, sign-in) or with one that does not
    // authenticate (an expired session must be seen as 401): any listed origin reads it.
    let by_domain = "/api/v1/platforms/domains/acme.example.com";
    for origin in [ACME_APP, GLOBEX_APP, CONSOLE] {
        let answer = get_from(&app, origin, None, by_domain)
            .await
            .assert_status(200);
        assert_eq!(allowed_origin(&answer), Some(origin));
    }
    let answer = get_from(&app, EVIL, None, by_domain)
        .await
        .assert_status(200);
    assert!(allowed_origin(&answer).is_none());
    let wrong = get_from(&app, ACME_APP, Some("fer_live_wrong"), "/api/v1/platforms").await;
    wrong.assert_error(401, "invalid_credentials");
    assert_eq!(allowed_origin(&wrong), Some(ACME_APP));

    // Errors of the right platform are readable (the app shows them).
    let other = get_from(&app, ACME_APP, Some(acme_key), "/api/v1/no-such-thing").await;
    assert_eq!(other.status.as_u16(), 404);
    assert_eq!(allowed_origin(&other), Some(ACME_APP));

    // The server's other paths never answer another origin.
    for path in ["/healthz", "/metrics"] {
        let answer = get_from(&app, CONSOLE, None, path).await.assert_status(200);
        assert!(allowed_origin(&answer).is_none(), "{path}");
    }
}

#[tokio::test]
async fn refusals_made_before_the_handler_are_readable_too() {
    let time = feria_kernel::time::ManualClock::new();
    let clock = time.clock();
    let app = TestApp::builder()
        .config(move |c| {
            c.write_rate_limit = 1;
            c.write_rate_burst = 2;
            c.clock = clock;
            c.cors.allowed_origins = vec![CONSOLE.to_owned()];
        })
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    set_origins(&app, &acme, &[ACME_APP])
        .await
        .assert_status(200);
    let write = || {
        app.request(
            Method::PUT,
            &format!("/api/v1/platforms/{}", acme.platform.id),
        )
        .bearer_auth(&acme.api_keys.live)
        .header("Origin", ACME_APP)
        .json(&json!({"description": "d"}))
    };
    app.send(write()).await.assert_status(200);
    let refused = app.send(write()).await;
    refused.assert_error(429, "rate_limited");
    assert_eq!(allowed_origin(&refused), Some(ACME_APP));
    assert!(varies_on(&refused, "origin"));
    assert!(refused.header("retry-after").is_some());
    assert!(
        refused
            .header("access-control-expose-headers")
            .unwrap()
            .to_ascii_lowercase()
            .contains("retry-after")
    );
}

#[tokio::test]
async fn an_admins_change_applies_to_this_server_at_once() {
    let (app, acme, _globex) = two_platforms().await;
    let new_app = "http://localhost:5173";

    let before = preflight(&app, "/api/v1/platforms", new_app, "GET").await;
    assert!(!has_allow_headers(&before));

    let updated = set_origins(&app, &acme, &[ACME_APP, new_app])
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(updated["corsAllowedOrigins"], json!([ACME_APP, new_app]));
    // The reload runs once an hour here: only the change itself can have done this.
    let after = preflight(&app, "/api/v1/platforms", new_app, "GET")
        .await
        .assert_status(204);
    assert_eq!(allowed_origin(&after), Some(new_app));
    let read = get_from(
        &app,
        new_app,
        Some(&acme.api_keys.live),
        "/api/v1/platforms",
    )
    .await
    .assert_status(200);
    assert_eq!(allowed_origin(&read), Some(new_app));
    assert_eq!(
        read.json_value()["corsAllowedOrigins"],
        json!([ACME_APP, new_app])
    );

    // Removing an origin refuses it at once, preflights and answers alike.
    set_origins(&app, &acme, &[]).await.assert_status(200);
    for origin in [ACME_APP, new_app] {
        let answer = preflight(&app, "/api/v1/platforms", origin, "GET").await;
        assert!(!has_allow_headers(&answer), "{origin}");
        let read = get_from(&app, origin, Some(&acme.api_keys.live), "/api/v1/platforms").await;
        assert!(allowed_origin(&read).is_none(), "{origin}");
    }
    // Globex's list is untouched.
    let globex = preflight(&app, "/api/v1/platforms", GLOBEX_APP, "GET").await;
    assert_eq!(allowed_origin(&globex), Some(GLOBEX_APP));
}

#[tokio::test]
async fn another_servers_change_is_read_within_the_refresh_interval() {
    let app = TestApp::builder()
        .config(|c| c.cors.refresh = Duration::from_millis(200))
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let origin = "https://written-elsewhere.example";
    assert!(!has_allow_headers(
        &preflight(&app, "/api/v1/platforms", origin, "GET").await
    ));
    // What another server's `PUT` stores, written beside this server.
    app.execute_sql(&format!(
        "UPDATE platforms SET cors_allowed_origins = '[\"{origin}\"]' WHERE id = '{}'",
        acme.platform.id
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = preflight(&app, "/api/v1/platforms", origin, "GET").await;
        if allowed_origin(&answer) == Some(origin) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change was not read back: {:?}",
            answer.headers
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn origins_must_be_written_as_browsers_send_them() {
    let (app, acme, globex) = two_platforms().await;
    let path = format!("/api/v1/platforms/{}", acme.platform.id);

    // The platform object always carries the list; public lookups too.
    let current = app
        .get_as(&acme.api_keys.live, "/api/v1/platforms")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(current["corsAllowedOrigins"], json!([ACME_APP]));
    let fresh = app
        .create_platform("Initech", "initech.example.com", "owner@initech.example")
        .await;
    assert_eq!(
        serde_json::to_value(&fresh.platform).unwrap()["corsAllowedOrigins"],
        json!([])
    );

    let bad = [
        "https://ok.example",
        "*",
        "https://trailing.example/",
        "HTTPS://Upper.example",
        "ftp://files.example",
        "https://user:pw@creds.example",
        "https://default-port.example:443",
        "app.example.com",
        "null",
    ];
    let refused = set_origins(&app, &acme, &bad).await;
    let error = refused.assert_error(422, "validation_failed");
    let fields: Vec<&str> = error.details.iter().map(|d| d.field.as_str()).collect();
    let expected: Vec<String> = (1..bad.len())
        .map(|i| format!("corsAllowedOrigins[{i}]"))
        .collect();
    assert_eq!(fields, expected, "{}", refused.text());
    let message = |i: usize| error.details[i - 1].message.as_str();
    assert!(message(1).contains("wildcard"), "{}", message(1));
    assert!(
        message(2).contains("https://trailing.example") && message(2).contains("browsers send"),
        "{}",
        message(2)
    );
    assert!(
        message(3).contains("https://upper.example"),
        "{}",
        message(3)
    );

    // Too many, once duplicates are folded.
    let many: Vec<String> = (0..51).map(|i| format!("https://a{i}.example")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let error = set_origins(&app, &acme, &many)
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(error.details[0].field, "corsAllowedOrigins");

    // Nothing of a refused change was stored, nor taken.
    let current = app
        .get_as(&acme.api_keys.live, "/api/v1/platforms")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(current["corsAllowedOrigins"], json!([ACME_APP]));
    assert!(!has_allow_headers(
        &preflight(&app, "/api/v1/platforms", "https://ok.example", "GET").await
    ));

    // Duplicates are folded, the order kept; 50 are fine.
    let folded = set_origins(
        &app,
        &acme,
        &[
            "https://b.example",
            "https://a.example",
            "https://b.example",
        ],
    )
    .await
    .assert_status(200)
    .json_value();
    assert_eq!(
        folded["corsAllowedOrigins"],
        json!(["https://b.example", "https://a.example"])
    );
    set_origins(&app, &acme, &many[..50])
        .await
        .assert_status(200);

    // Only live-mode admins change it.
    app.send_json_as(
        &acme.api_keys.test,
        Method::PUT,
        &path,
        &json!({"corsAllowedOrigins": [EVIL]}),
    )
    .await
    .assert_error(403, "live_mode_required");
    app.send_json_as(
        &acme.api_keys.live,
        Method::PUT,
        &format!("/api/v1/platforms/{}", globex.platform.id),
        &json!({"corsAllowedOrigins": [EVIL]}),
    )
    .await
    .assert_error(404, "not_found");
    assert!(!has_allow_headers(
        &preflight(&app, "/api/v1/platforms", EVIL, "GET").await
    ));
}

// ---------------------------------------------------------------------------------------
// The browser.

const CHROMIUM: &str = "/usr/bin/chromium";

/// Serves `html` to every request on a new loopback port; returns the page's origin.
async fn serve_page(html: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let html = html.clone();
            tokio::spawn(async move {
                // Read the request head; the page is the same whatever was asked.
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let (status, body) = if head.starts_with(b"GET /page ") {
                    ("200 OK", html)
                } else {
                    ("404 Not Found", String::new())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    origin
}

/// A page whose script GETs `api` with `key` (so the browser sends a preflight) and
/// writes the outcome into `#outcome`: `read:<status>:<platform id>` or `blocked:<error>`.
fn page(api: &str, key: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><title>cors</title></head><body>
<p id="outcome">pending</p>
<script>
fetch({api:?}, {{ headers: {{ "Authorization": "Bearer {key}" }} }})
  .then(async (response) => {{
    const body = await response.json();
    document.getElementById("outcome").textContent = "read:" + response.status + ":" + body.id;
  }})
  .catch((error) => {{
    document.getElementById("outcome").textContent = "blocked:" + error.name;
  }});
</script>
</body></html>"#
    )
}

/// Loads `url` in headless Chromium and returns `#outcome`'s text once the page settled.
async fn browse(url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's Chromium (`apt-get install chromium`)"
    );
    let profile = tempfile::tempdir().unwrap();
    let url = url.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                // Virtual time runs while the page is idle and waits for its fetches:
                // the dump is taken once the script has written its outcome.
                "--virtual-time-budget=15000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(&url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let output = child.wait_with_output().unwrap();
                panic!(
                    "Chromium did not finish loading {url} in 90 s; stderr:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Chromium failed ({}); stderr:\n{stderr}",
        output.status
    );
    let outcome = dom
        .split_once(r#"<p id="outcome">"#)
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map(|(text, _)| text.to_owned());
    outcome.unwrap_or_else(|| {
        panic!("no #outcome in the page Chromium dumped:\n{dom}\nstderr:\n{stderr}")
    })
}

/// Requests the server counted for `method` on `route`, from its metrics.
async fn served(app: &TestApp, method: &str, route: &str) -> u64 {
    let metrics = app.get("/metrics").await.assert_status(200).text();
    let labels = format!(r#"method="{method}",route="{route}","#);
    metrics
        .lines()
        .filter(|line| line.starts_with("feria_http_requests_total{") && line.contains(&labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_browser_reads_the_api_from_an_allowed_origin_only() {
    let app = TestApp::builder()
        .config(|c| c.cors.refresh = Duration::from_secs(3600))
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let globex = app
        .create_platform("Globex", "globex.example.com", "owner@globex.example")
        .await;
    let api = app.url("/api/v1/platforms");
    let html = page(&api, &acme.api_keys.live);
    // Three pages, each on its own loopback origin (another port than the API's).
    let acme_page = serve_page(html.clone()).await;
    let globex_page = serve_page(html.clone()).await;
    let unlisted_page = serve_page(html).await;
    set_origins(&app, &acme, &[&acme_page])
        .await
        .assert_status(200);
    set_origins(&app, &globex, &[&globex_page])
        .await
        .assert_status(200);
    let route = "/api/v1/platforms";

    // Acme's app reads Acme's platform with Acme's key.
    let outcome = browse(&format!("{acme_page}/page")).await;
    assert_eq!(outcome, format!("read:200:{}", acme.platform.id));

    // An origin in no list: the preflight reached the server and was refused there, so
    // the browser never sent the request.
    let (options, gets) = (
        served(&app, "OPTIONS", route).await,
        served(&app, "GET", route).await,
    );
    let outcome = browse(&format!("{unlisted_page}/page")).await;
    assert_eq!(outcome, "blocked:TypeError");
    assert_eq!(
        served(&app, "OPTIONS", route).await,
        options + 1,
        "one preflight"
    );
    assert_eq!(
        served(&app, "GET", route).await,
        gets,
        "no request after it"
    );

    // Globex's app with Acme's key: the preflight passes (its platform is unknown), the
    // answer is not Globex's to read.
    let (options, gets) = (
        served(&app, "OPTIONS", route).await,
        served(&app, "GET", route).await,
    );
    let outcome = browse(&format!("{globex_page}/page")).await;
    assert_eq!(outcome, "blocked:TypeError");
    assert_eq!(
        served(&app, "OPTIONS", route).await,
        options + 1,
        "one preflight"
    );
    assert_eq!(
        served(&app, "GET", route).await,
        gets + 1,
        "the request was sent"
    );
}
