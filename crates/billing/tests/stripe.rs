#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Stripe client against a real Stripe-compatible server over HTTP: localstripe with
//! Feria's extension (scripts/localstripe.sh, docs/STRIPE.md).
//!
//! Where the server is:
//! - `STRIPE_TEST_BASE_URL` set (CI sets it after starting the server): that server; a
//!   test fails with a clear message when it does not answer.
//! - unset: the tests run `scripts/localstripe.sh`, which installs localstripe into a
//!   virtualenv if needed and starts it on 127.0.0.1:8420 if it is not running. If that
//!   fails the tests fail: they never skip silently.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use feria_billing::stripe::{
    AccountType, Capability, ChargeOffSession, CreateAccount, CreateCustomer, CreateRefund,
    CreateSetupIntent, CreateTransfer, IdempotencyKey, ListParams, Metadata, PaymentIntent,
    PaymentIntentStatus, RefundReason, SetupIntentStatus, StripeClient, StripeConfig, StripeError,
};
use feria_kernel::{Currency, FieldError, Money};

/// localstripe accepts any `sk_...` key; api.stripe.com would need a real test key.
const TEST_KEY: &str = "sk_test_feria_localstripe";

fn server_url() -> String {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(locate_server)
        .clone()
        .unwrap_or_else(|message| panic!("{message}"))
}

fn locate_server() -> Result<String, String> {
    if let Ok(url) = std::env::var("STRIPE_TEST_BASE_URL")
        && !url.trim().is_empty()
    {
        let url = url.trim().trim_end_matches('/').to_owned();
        return match reachable(&url) {
            Ok(()) => Ok(url),
            Err(why) => Err(format!(
                "STRIPE_TEST_BASE_URL={url} is set but nothing answers there ({why}). \
                 Start the server with `scripts/localstripe.sh`, or unset the variable to \
                 let the tests start it."
            )),
        };
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/localstripe.sh");
    let output = Command::new("bash")
        .arg(script)
        .output()
        .map_err(|e| format!("could not run {script}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last().map(str::trim) {
        Some(url) if output.status.success() && url.starts_with("http") => Ok(url.to_owned()),
        _ => Err(format!(
            "STRIPE_TEST_BASE_URL is unset and {script} could not start localstripe \
             ({}):\n{}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

fn reachable(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().ok_or("no host")?;
    let port = parsed.port_or_known_default().ok_or("no port")?;
    let addresses = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut last = String::from("no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{address}: {e}"),
        }
    }
    Err(last)
}

fn client() -> StripeClient {
    StripeClient::new(
        StripeConfig::new(TEST_KEY)
            .with_base_url(server_url())
            .with_timeout(Duration::from_secs(20)),
    )
    .unwrap()
}

/// A key no other test (or earlier run against the same long-lived server) has used.
fn key(name: &str) -> IdempotencyKey {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    IdempotencyKey::new(format!(
        "test-{name}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
    .unwrap()
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::USD)
}

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn customer(stripe: &StripeClient, email: &str) -> String {
    let request = CreateCustomer {
        email: Some(email.to_owned()),
        ..CreateCustomer::default()
    };
    stripe
        .create_customer(&request, &key("customer"))
        .await
        .unwrap()
        .id
}

/// A customer with Stripe's test card `test_id` attached and made the default.
async fn customer_with_card(stripe: &StripeClient, test_id: &str) -> (String, String) {
    let customer = customer(stripe, "buyer@example.com").await;
    let card = stripe
        .attach_payment_method(test_id, &customer)
        .await
        .unwrap();
    stripe
        .set_default_payment_method(&customer, Some(&card.id))
        .await
        .unwrap();
    (customer, card.id)
}

async fn pay(stripe: &StripeClient, amount: Money) -> PaymentIntent {
    pay_in_group(stripe, amount, None).await
}

async fn pay_in_group(
    stripe: &StripeClient,
    amount: Money,
    transfer_group: Option<&str>,
) -> PaymentIntent {
    let (customer, card) = customer_with_card(stripe, "pm_card_visa").await;
    let request = ChargeOffSession {
        amount,
        customer,
        payment_method: card,
        description: None,
        transfer_group: transfer_group.map(str::to_owned),
        metadata: Metadata::new(),
    };
    stripe
        .charge_off_session(&request, &key("pay"))
        .await
        .unwrap()
}

fn api_error(error: &StripeError) -> &feria_billing::stripe::StripeApiError {
    error
        .api_error()
        .unwrap_or_else(|| panic!("expected Stripe's error envelope, got {error:?}"))
}

#[tokio::test]
async fn a_customer_is_created_and_retrieved() {
    let stripe = client();
    let request = CreateCustomer {
        email: Some("ada@example.com".to_owned()),
        name: Some("Ada Lovelace".to_owned()),
        description: None,
        metadata: metadata(&[("feria_user_id", "user_01HZZ0J7N7P5B4K2V1Q9R8S6T5")]),
    };
    let created = stripe
        .create_customer(&request, &key("create-customer"))
        .await
        .unwrap();
    assert!(created.id.starts_with("cus_"), "{}", created.id);
    assert_eq!(created.email.as_deref(), Some("ada@example.com"));
    assert_eq!(created.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(created.invoice_settings.default_payment_method, None);

    let fetched = stripe.retrieve_customer(&created.id).await.unwrap();
    assert_eq!(fetched, created);
    assert_eq!(
        fetched.metadata.get("feria_user_id").map(String::as_str),
        Some("user_01HZZ0J7N7P5B4K2V1Q9R8S6T5")
    );
}

#[tokio::test]
async fn an_unknown_customer_is_a_404_from_stripe() {
    let error = client()
        .retrieve_customer("cus_doesnotexist000")
        .await
        .unwrap_err();
    assert_eq!(api_error(&error).status, 404);
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_setup_intent_returns_a_client_secret() {
    let stripe = client();
    let customer = customer(&stripe, "saver@example.com").await;
    let request = CreateSetupIntent {
        customer: customer.clone(),
        metadata: Metadata::new(),
    };
    let intent = stripe
        .create_setup_intent(&request, &key("setup-intent"))
        .await
        .unwrap();
    assert!(intent.id.starts_with("seti_"), "{}", intent.id);
    assert!(
        intent
            .client_secret
            .starts_with(&format!("{}_secret_", intent.id)),
        "{}",
        intent.client_secret
    );
    assert_eq!(intent.status, SetupIntentStatus::RequiresPaymentMethod);
    assert_eq!(intent.customer.as_deref(), Some(customer.as_str()));
    let fetched = stripe.retrieve_setup_intent(&intent.id).await.unwrap();
    assert_eq!(fetched.client_secret, intent.client_secret);
}

#[tokio::test]
async fn a_card_is_attached_listed_made_default_and_detached() {
    let stripe = client();
    let customer = customer(&stripe, "cards@example.com").await;

    let first = stripe
        .attach_payment_method("pm_card_visa", &customer)
        .await
        .unwrap();
    let second = stripe
        .attach_payment_method("pm_card_visa", &customer)
        .await
        .unwrap();
    // Stripe's test id makes a new payment method each time.
    assert_ne!(first.id, "pm_card_visa");
    assert_ne!(first.id, second.id);
    assert_eq!(first.customer.as_deref(), Some(customer.as_str()));
    assert_eq!(first.kind, "card");
    let card = first.card.clone().unwrap();
    assert_eq!((card.brand.as_str(), card.last4.as_str()), ("visa", "4242"));

    let listed = stripe
        .list_payment_methods(&customer, &ListParams::default())
        .await
        .unwrap();
    let mut ids: Vec<&str> = listed.data.iter().map(|pm| pm.id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = vec![first.id.as_str(), second.id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(!listed.has_more);

    let updated = stripe
        .set_default_payment_method(&customer, Some(&first.id))
        .await
        .unwrap();
    assert_eq!(
        updated.invoice_settings.default_payment_method.as_deref(),
        Some(first.id.as_str())
    );
    let fetched = stripe.retrieve_customer(&customer).await.unwrap();
    assert_eq!(
        fetched.invoice_settings.default_payment_method.as_deref(),
        Some(first.id.as_str())
    );
    assert_eq!(
        stripe.retrieve_payment_method(&first.id).await.unwrap(),
        first
    );

    let detached = stripe.detach_payment_method(&second.id).await.unwrap();
    assert_eq!(detached.customer, None);
    let listed = stripe
        .list_payment_methods(&customer, &ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        listed
            .data
            .iter()
            .map(|pm| pm.id.as_str())
            .collect::<Vec<_>>(),
        vec![first.id.as_str()]
    );

    let cleared = stripe
        .set_default_payment_method(&customer, None)
        .await
        .unwrap();
    assert_eq!(cleared.invoice_settings.default_payment_method, None);
}

#[tokio::test]
async fn a_card_that_fails_verification_is_declined_on_attach() {
    let stripe = client();
    let customer = customer(&stripe, "declined@example.com").await;
    let error = stripe
        .attach_payment_method("pm_card_visa_chargeDeclined", &customer)
        .await
        .unwrap_err();
    let api = api_error(&error);
    assert_eq!(api.status, 402);
    assert_eq!(api.code.as_deref(), Some("card_declined"));
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_off_session_payment_succeeds() {
    let stripe = client();
    let (customer, card) = customer_with_card(&stripe, "pm_card_visa").await;
    let request = ChargeOffSession {
        amount: usd(1999),
        customer: customer.clone(),
        payment_method: card.clone(),
        description: Some("Contract inv_01HZZ".to_owned()),
        transfer_group: Some("inv_01HZZ".to_owned()),
        metadata: metadata(&[("feria_contract_id", "inv_01HZZ")]),
    };
    let intent = stripe
        .charge_off_session(&request, &key("charge"))
        .await
        .unwrap();
    assert!(intent.id.starts_with("pi_"), "{}", intent.id);
    assert_eq!(intent.status, PaymentIntentStatus::Succeeded);
    assert_eq!(intent.money().unwrap(), usd(1999));
    assert_eq!(intent.customer.as_deref(), Some(customer.as_str()));
    assert_eq!(intent.payment_method.as_deref(), Some(card.as_str()));
    let charge_id = intent.latest_charge.clone().unwrap();
    assert!(charge_id.starts_with("ch_"), "{charge_id}");

    let fetched = stripe.retrieve_payment_intent(&intent.id).await.unwrap();
    assert_eq!(fetched.status, PaymentIntentStatus::Succeeded);
    assert_eq!(fetched.latest_charge.as_deref(), Some(charge_id.as_str()));
    assert_eq!(
        fetched
            .metadata
            .get("feria_contract_id")
            .map(String::as_str),
        Some("inv_01HZZ")
    );
    assert_eq!(fetched.description.as_deref(), Some("Contract inv_01HZZ"));
    assert_eq!(fetched.transfer_group.as_deref(), Some("inv_01HZZ"));

    let charge = stripe.retrieve_charge(&charge_id).await.unwrap();
    assert_eq!(charge.money().unwrap(), usd(1999));
    assert_eq!(charge.status, "succeeded");
    assert_eq!(charge.payment_intent.as_deref(), Some(intent.id.as_str()));
    assert!(!charge.refunded);
}

#[tokio::test]
async fn a_declined_card_is_stripes_error_with_its_code_in_details() {
    let stripe = client();
    // Stripe's test card that attaches fine and declines every charge.
    let (customer, card) = customer_with_card(&stripe, "pm_card_chargeCustomerFail").await;
    let request = ChargeOffSession {
        amount: usd(4200),
        customer,
        payment_method: card,
        description: None,
        transfer_group: None,
        metadata: Metadata::new(),
    };
    let error = stripe
        .charge_off_session(&request, &key("declined"))
        .await
        .unwrap_err();
    let api = api_error(&error);
    assert_eq!(api.status, 402);
    assert_eq!(api.code.as_deref(), Some("card_declined"));
    assert_eq!(api.message, "Your card was declined.");
    assert!(!error.is_retryable());
    let details = error.details();
    assert!(
        details.contains(&FieldError::new("stripe.code", "card_declined")),
        "{details:?}"
    );
    assert!(
        details.contains(&FieldError::new(
            "stripe.message",
            "Your card was declined."
        )),
        "{details:?}"
    );

    let failed = stripe
        .retrieve_charge(api.charge.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.failure_code.as_deref(), Some("card_declined"));
}

#[tokio::test]
async fn a_payment_is_refunded_in_part_then_in_full() {
    let stripe = client();
    let intent = pay(&stripe, usd(1000)).await;
    let charge_id = intent.latest_charge.clone().unwrap();

    let partial = stripe
        .create_refund(
            &CreateRefund {
                payment_intent: intent.id.clone(),
                amount: Some(usd(300)),
                reason: None,
                metadata: Metadata::new(),
            },
            &key("refund-part"),
        )
        .await
        .unwrap();
    assert!(partial.id.starts_with("re_"), "{}", partial.id);
    assert_eq!(partial.money().unwrap(), usd(300));
    assert_eq!(partial.status, "succeeded");
    assert_eq!(partial.charge.as_deref(), Some(charge_id.as_str()));
    let charge = stripe.retrieve_charge(&charge_id).await.unwrap();
    assert_eq!(charge.refunded_money().unwrap(), usd(300));
    assert!(!charge.refunded);

    // The rest, named explicitly: localstripe refunds the whole charge again when the
    // amount is left out after a partial refund (Stripe refunds what is left).
    let rest = stripe
        .create_refund(
            &CreateRefund {
                payment_intent: intent.id.clone(),
                amount: Some(usd(700)),
                reason: None,
                metadata: Metadata::new(),
            },
            &key("refund-rest"),
        )
        .await
        .unwrap();
    assert_eq!(rest.money().unwrap(), usd(700));
    let charge = stripe.retrieve_charge(&charge_id).await.unwrap();
    assert_eq!(charge.refunded_money().unwrap(), usd(1000));
    assert!(charge.refunded);

    // A full refund in one go: no amount.
    let other = pay(&stripe, usd(2500)).await;
    let full = stripe
        .create_refund(
            &CreateRefund {
                payment_intent: other.id.clone(),
                amount: None,
                reason: Some(RefundReason::RequestedByCustomer),
                metadata: Metadata::new(),
            },
            &key("refund-full"),
        )
        .await
        .unwrap();
    assert_eq!(full.money().unwrap(), usd(2500));
    assert_eq!(full.reason.as_deref(), Some("requested_by_customer"));
    let charge = stripe
        .retrieve_charge(other.latest_charge.as_deref().unwrap())
        .await
        .unwrap();
    assert!(charge.refunded);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_result() {
    let stripe = client();
    let request = CreateCustomer {
        email: Some("once@example.com".to_owned()),
        ..CreateCustomer::default()
    };
    let once = key("replay-customer");
    let first = stripe.create_customer(&request, &once).await.unwrap();
    let again = stripe.create_customer(&request, &once).await.unwrap();
    assert_eq!(first.id, again.id);

    // A payment retried with its key is charged once.
    let (customer, card) = customer_with_card(&stripe, "pm_card_visa").await;
    let charge = ChargeOffSession {
        amount: usd(777),
        customer,
        payment_method: card,
        description: None,
        transfer_group: None,
        metadata: Metadata::new(),
    };
    let pay_once = key("replay-charge");
    let first = stripe.charge_off_session(&charge, &pay_once).await.unwrap();
    let again = stripe.charge_off_session(&charge, &pay_once).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(first.latest_charge, again.latest_charge);

    // The same key with other parameters is refused, and retrying will not help.
    let other = ChargeOffSession {
        amount: usd(778),
        ..charge
    };
    let error = stripe
        .charge_off_session(&other, &pay_once)
        .await
        .unwrap_err();
    let api = api_error(&error);
    assert_eq!(api.status, 400);
    assert_eq!(api.kind, "idempotency_error");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_connected_account_is_onboarded_then_paid_by_transfer() {
    let stripe = client();
    let account = stripe
        .create_account(
            &CreateAccount {
                account_type: AccountType::Express,
                country: Some("US".to_owned()),
                email: Some("seller@example.com".to_owned()),
                capabilities: vec![Capability::CardPayments, Capability::Transfers],
                metadata: metadata(&[("feria_user_id", "user_seller")]),
            },
            &key("account"),
        )
        .await
        .unwrap();
    assert!(account.id.starts_with("acct_"), "{}", account.id);
    assert_eq!(account.account_type.as_deref(), Some("express"));
    assert!(!account.charges_enabled);
    assert!(!account.details_submitted);
    assert!(!account.can_receive_transfers());

    let transfer = |amount: Money, destination: &str| CreateTransfer {
        amount,
        destination: destination.to_owned(),
        transfer_group: Some("inv_01HZZTRANSFER".to_owned()),
        description: None,
        metadata: Metadata::new(),
    };

    // Not onboarded: Stripe refuses to pay it.
    let error = stripe
        .create_transfer(&transfer(usd(100), &account.id), &key("transfer-early"))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some("insufficient_capabilities_for_transfer"),
        "{error:?}"
    );

    // The seller finishes Stripe's hosted onboarding (a browser flow; a test hook here).
    let hook = format!(
        "{}/_config/accounts/{}/complete_onboarding",
        server_url(),
        account.id
    );
    let response = reqwest::Client::new().post(hook).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let ready = stripe.retrieve_account(&account.id).await.unwrap();
    assert!(ready.charges_enabled);
    assert!(ready.details_submitted);
    assert!(ready.can_receive_transfers());

    // A buyer's payment funds the platform's balance, which then pays the seller: Stripe's
    // separate charges and transfers, tied by the transfer group.
    let payment = pay_in_group(&stripe, usd(5000), Some("inv_01HZZTRANSFER")).await;
    assert_eq!(payment.transfer_group.as_deref(), Some("inv_01HZZTRANSFER"));
    let paid = stripe
        .create_transfer(&transfer(usd(3000), &account.id), &key("transfer"))
        .await
        .unwrap();
    assert!(paid.id.starts_with("tr_"), "{}", paid.id);
    assert_eq!(paid.money().unwrap(), usd(3000));
    assert_eq!(paid.destination.as_deref(), Some(account.id.as_str()));
    assert_eq!(paid.transfer_group.as_deref(), Some("inv_01HZZTRANSFER"));
    assert_eq!(stripe.retrieve_transfer(&paid.id).await.unwrap(), paid);

    let error = stripe
        .create_transfer(
            &transfer(usd(10_000_000_000_000), &account.id),
            &key("transfer-too-much"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("balance_insufficient"), "{error:?}");

    let error = stripe
        .create_transfer(
            &transfer(usd(100), "acct_nobody00000"),
            &key("transfer-nowhere"),
        )
        .await
        .unwrap_err();
    let api = api_error(&error);
    assert_eq!(api.code.as_deref(), Some("resource_missing"));
    assert_eq!(api.param.as_deref(), Some("destination"));
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_401() {
    // localstripe refuses keys that are not shaped `sk_...`; Stripe refuses any key it
    // did not issue.
    let stripe =
        StripeClient::new(StripeConfig::new("wrong_key").with_base_url(server_url())).unwrap();
    let error = stripe
        .create_customer(&CreateCustomer::default(), &key("wrong-key"))
        .await
        .unwrap_err();
    assert_eq!(api_error(&error).status, 401);
    assert!(!error.is_retryable());
    // The message concerns our configuration, not the request: not for clients.
    assert!(
        error.details().iter().all(|d| d.field != "stripe.message"),
        "{:?}",
        error.details()
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let stripe =
        StripeClient::new(StripeConfig::new(TEST_KEY).with_base_url(format!("http://{address}")))
            .unwrap();
    let error = stripe.retrieve_customer("cus_x").await.unwrap_err();
    assert!(matches!(error, StripeError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(
        error.details(),
        vec![FieldError::new("stripe", "Stripe could not be reached")]
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // Accept and hold connections without ever answering.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let stripe = StripeClient::new(
        StripeConfig::new(TEST_KEY)
            .with_base_url(format!("http://{address}"))
            .with_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let error = stripe
        .create_customer(&CreateCustomer::default(), &key("timeout"))
        .await
        .unwrap_err();
    assert!(matches!(error, StripeError::Timeout), "{error:?}");
    assert!(error.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(5));
    holder.abort();
}
