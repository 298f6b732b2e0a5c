//! Behind a real reverse proxy (HAProxy, Debian's package, started by the test on
//! loopback): with `TRUSTED_PROXIES` naming it, every client behind it has its own
//! budgets, whatever `X-Forwarded-For` it sends itself; without, they all share the
//! proxy's (the default, documented in docs/DEPLOYMENT.md); a client that reaches the
//! server directly is its socket address whatever it claims.
//!
//! Clients are told apart by their loopback source address (127.0.0.2, 127.0.0.3 ...);
//! HAProxy reaches the server from 127.0.0.1 and appends each client's address to
//! `X-Forwarded-For` (`option forwardfor`). Both backends; the servers run on a manual
//! clock, so no budget refills while a test runs.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use feria::client_address::TrustedProxies;
use feria_kernel::time::ManualClock;
use feria_testkit::haproxy::{HaProxy, Options};
use feria_testkit::{Method, TestApp, TestResponse};
use serde_json::json;

const CODES: &str = "/api/v1/auth/otp/email";
const FEE: &str = "/api/v1/utils/estimate/fee";

/// HAProxy in front of the one server, appending each client's address to
/// `X-Forwarded-For`.
fn proxy_in_front_of(server: SocketAddr) -> HaProxy {
    HaProxy::start(
        &[server.to_string()],
        &Options {
            forward_for: true,
            ..Options::default()
        },
    )
}

/// An HTTP client whose connections leave from `source` (a loopback address).
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A server with small budgets on a manual clock (two sign-in codes per address, writes
/// at one a second with a burst of `write_burst`), trusting `trusted` as its proxies,
/// with a platform.
async fn server(trusted: &str, write_burst: u32) -> (TestApp, String, ManualClock) {
    let time = ManualClock::new();
    let clock = time.clock();
    let trusted = TrustedProxies::parse(trusted).unwrap();
    let app = TestApp::builder()
        .config(move |c| {
            c.otp_requests_per_ip = 2;
            c.write_rate_limit = 1;
            c.write_rate_burst = write_burst;
            c.clock = clock;
            c.trusted_proxies = trusted;
        })
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    (app, acme.platform.id.to_string(), time)
}

/// Asks for a sign-in code (a new email each time: the per-email limit stays out of it).
async fn request_code(
    app: &TestApp,
    client: &reqwest::Client,
    base: &str,
    platform_id: &str,
    forwarded_for: Option<&str>,
) -> TestResponse {
    let email = format!(
        "{}@example.com",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let request = client
        .request(Method::POST, format!("{base}{CODES}"))
        .json(&json!({"platform_id": platform_id, "email": email}));
    let request = match forwarded_for {
        Some(spoofed) => request.header("X-Forwarded-For", spoofed),
        None => request,
    };
    app.send(request).await
}

/// The statuses of `n` code requests.
async fn code_statuses(
    app: &TestApp,
    client: &reqwest::Client,
    base: &str,
    platform_id: &str,
    forwarded_for: Option<&str>,
    n: usize,
) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let response = request_code(app, client, base, platform_id, forwarded_for).await;
        if response.status.as_u16() == 429 {
            response.assert_error(429, "rate_limited");
            assert!(response.header("retry-after").is_some());
        }
        statuses.push(response.status.as_u16());
    }
    statuses
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget_whatever_it_claims() {
    let (app, platform_id, _time) = server("127.0.0.1/32", 100).await;
    let proxy = proxy_in_front_of(app.address);
    let (ana, ben) = (client_from("127.0.0.2"), client_from("127.0.0.3"));

    // (a) Ana spends her budget; Ben, behind the same proxy, still has his.
    let statuses = code_statuses(&app, &ana, &proxy.url, &platform_id, None, 3).await;
    assert_eq!(statuses, [200, 200, 429]);
    let statuses = code_statuses(&app, &ben, &proxy.url, &platform_id, None, 2).await;
    assert_eq!(statuses, [200, 200]);

    // (b) Cleo claims to be 203.0.113.9: HAProxy appends her real address, which is
    // what counts: her budget runs out ...
    let cleo = client_from("127.0.0.4");
    let spoofed = Some("203.0.113.9");
    let statuses = code_statuses(&app, &cleo, &proxy.url, &platform_id, spoofed, 3).await;
    assert_eq!(statuses, [200, 200, 429]);
    // ... and Dan making the same claim is not charged for hers, nor she for his.
    let dan = client_from("127.0.0.5");
    let statuses = code_statuses(&app, &dan, &proxy.url, &platform_id, spoofed, 3).await;
    assert_eq!(statuses, [200, 200, 429]);
    // A claim of a trusted address changes nothing either: the right-most untrusted hop
    // (the one HAProxy saw) is the client.
    let eve = client_from("127.0.0.6");
    let statuses = code_statuses(&app, &eve, &proxy.url, &platform_id, Some("127.0.0.1"), 3).await;
    assert_eq!(statuses, [200, 200, 429]);

    // (d) A client reaching the server directly is its socket address: its header is not
    // believed, and each direct client has its own budget.
    let (fay, gus) = (client_from("127.0.0.7"), client_from("127.0.0.8"));
    let statuses = code_statuses(&app, &fay, &app.base_url, &platform_id, spoofed, 3).await;
    assert_eq!(statuses, [200, 200, 429]);
    let statuses = code_statuses(&app, &gus, &app.base_url, &platform_id, spoofed, 2).await;
    assert_eq!(statuses, [200, 200]);
    // Directly, Ana is herself too: the budget she spent through the proxy is gone.
    let statuses = code_statuses(&app, &ana, &app.base_url, &platform_id, None, 1).await;
    assert_eq!(statuses, [429]);
}

#[tokio::test]
async fn behind_an_untrusted_proxy_every_client_shares_the_proxys_budget() {
    // (c) The default: TRUSTED_PROXIES empty. The server sees HAProxy's address only.
    let (app, platform_id, _time) = server("", 100).await;
    let proxy = proxy_in_front_of(app.address);
    let (ana, ben) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    let statuses = code_statuses(&app, &ana, &proxy.url, &platform_id, None, 2).await;
    assert_eq!(statuses, [200, 200]);
    let statuses = code_statuses(&app, &ben, &proxy.url, &platform_id, None, 1).await;
    assert_eq!(statuses, [429]);
    // A proxy in another network is not trusted either.
    let (app, platform_id, _time) = server("10.0.0.0/8", 100).await;
    let proxy = proxy_in_front_of(app.address);
    let statuses = code_statuses(&app, &ana, &proxy.url, &platform_id, None, 2).await;
    assert_eq!(statuses, [200, 200]);
    let statuses = code_statuses(&app, &ben, &proxy.url, &platform_id, None, 1).await;
    assert_eq!(statuses, [429]);
}

#[tokio::test]
async fn writes_with_a_made_up_token_count_against_the_client_behind_the_proxy() {
    // (e) Three writes at once per client; a made-up token is no credential, so its
    // writes count against the client's address, the one behind the proxy.
    let (app, _platform_id, _time) = server("127.0.0.1/32", 3).await;
    let proxy = proxy_in_front_of(app.address);
    let write = |client: &reqwest::Client| {
        client
            .request(Method::POST, format!("{}{FEE}", proxy.url))
            .bearer_auth(format!("fer_test_{}", ulid::Ulid::new()))
            .header("X-Forwarded-For", "203.0.113.9")
            .json(&json!({"amount": 1000}))
    };
    let (ana, ben) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = app.send(write(&ana)).await;
        if response.status.as_u16() == 429 {
            response.assert_error(429, "rate_limited");
            assert_eq!(response.header("retry-after"), Some("1"));
            assert_eq!(response.header("ratelimit-remaining"), Some("0"));
        }
        statuses.push(response.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // Ben's address has its own budget, made-up tokens or not.
    let response = app.send(write(&ben)).await.assert_status(200);
    assert_eq!(response.header("ratelimit-remaining"), Some("2"));
    // Without the proxy, the proxy's own address (127.0.0.1, trusted, no forwarded
    // header) is a client of its own, untouched by Ana's writes.
    let direct = app
        .request(Method::POST, FEE)
        .bearer_auth("fer_test_made_up")
        .json(&json!({"amount": 1000}));
    app.send(direct).await.assert_status(200);
}
