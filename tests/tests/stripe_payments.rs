//! The users' payment routes with the Stripe provider configured, over real HTTP to the
//! server and from the server to a local Stripe-compatible server (localstripe, see
//! docs/STRIPE.md): customers, SetupIntents, payment methods attached with Stripe's own
//! card details, the default kept in step, Connect accounts with Stripe's status.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria::config::StripeSettings;
use feria_billing::stripe::{
    AccountType, Capability, CreateAccount, IdempotencyKey, StripeClient, StripeConfig,
};
use feria_testkit::{CreatedPlatform, Method, TestApp, localstripe_url};
use serde_json::{Value, json};

const KEY: &str = "sk_test_feria_http";

async fn app_with_stripe() -> (TestApp, CreatedPlatform, String) {
    let base = localstripe_url();
    let api_base = base.clone();
    let app = TestApp::builder()
        .config(move |config| {
            config.stripe = StripeSettings {
                api_base,
                test_secret_key: Some(KEY.into()),
                live_secret_key: Some(KEY.into()),
            };
        })
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    (app, acme, base)
}

fn stripe(base: &str) -> StripeClient {
    StripeClient::new(StripeConfig::new(KEY).with_base_url(base.to_owned())).unwrap()
}

#[tokio::test]
async fn without_a_key_client_secrets_are_refused_clearly() {
    let app = TestApp::spawn().await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let session = app
        .sign_in(acme.platform.id.as_str(), "ana@example.com", "live")
        .await;
    app.send_json_as(
        session["access_token"].as_str().unwrap(),
        Method::POST,
        "/api/v1/users/auth/client_secret",
        &json!({}),
    )
    .await
    .assert_error(409, "payment_provider_not_configured");
}

#[tokio::test]
async fn cards_are_saved_through_stripe_with_its_details_and_default() {
    let (app, acme, base) = app_with_stripe().await;
    let session = app
        .sign_in(acme.platform.id.as_str(), "ana@example.com", "live")
        .await;
    let token = session["access_token"].as_str().unwrap();

    // A SetupIntent for the client; the customer is made once.
    let secret = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/client_secret",
            &json!({}),
        )
        .await
        .assert_status(201)
        .json_value();
    let customer = secret["customer"].as_str().unwrap().to_owned();
    assert!(customer.starts_with("cus_"), "{secret}");
    assert!(
        secret["client_secret"]
            .as_str()
            .unwrap()
            .contains("_secret_"),
        "{secret}"
    );
    let again = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/client_secret",
            &json!({}),
        )
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(again["customer"], customer.as_str());
    assert_ne!(again["client_secret"], secret["client_secret"]);
    let me = app.get_as(token, "/api/v1/users/auth").await.json_value();
    assert_eq!(me["stripeCustomerId"], customer.as_str());

    // The card details come from Stripe, not from what the client claims.
    let visa = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/payment_methods",
            &json!({"providerRef": "pm_card_visa", "brand": "amex", "last4": "0000"}),
        )
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(visa["brand"], "visa");
    assert_eq!(visa["last4"], "4242");
    assert_eq!(visa["isDefault"], true);
    let visa_ref = visa["providerRef"].as_str().unwrap().to_owned();
    let client = stripe(&base);
    let at_stripe = client.retrieve_customer(&customer).await.unwrap();
    assert_eq!(
        at_stripe.invoice_settings.default_payment_method.as_deref(),
        Some(visa_ref.as_str())
    );

    let master = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/payment_methods",
            // localstripe knows few test cards; each attach makes a new payment method.
            &json!({"providerRef": "pm_card_visa"}),
        )
        .await
        .assert_status(201)
        .json_value();
    assert_ne!(master["providerRef"], visa["providerRef"]);
    assert_eq!(master["isDefault"], false);
    let master_ref = master["providerRef"].as_str().unwrap().to_owned();
    let attached = client.retrieve_payment_method(&master_ref).await.unwrap();
    assert_eq!(attached.customer.as_deref(), Some(customer.as_str()));

    // The default moves at Stripe too.
    app.send_json_as(
        token,
        Method::PUT,
        &format!(
            "/api/v1/users/auth/payment_methods/{}/default",
            master["id"].as_str().unwrap()
        ),
        &json!({}),
    )
    .await
    .assert_status(200);
    let at_stripe = client.retrieve_customer(&customer).await.unwrap();
    assert_eq!(
        at_stripe.invoice_settings.default_payment_method.as_deref(),
        Some(master_ref.as_str())
    );

    // Removing the default detaches it and promotes the other, at Stripe as well.
    let left = app
        .send(
            app.request(
                Method::DELETE,
                &format!(
                    "/api/v1/users/auth/payment_methods/{}",
                    master["id"].as_str().unwrap()
                ),
            )
            .bearer_auth(token),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(left["payment_methods"].as_array().unwrap().len(), 1);
    assert_eq!(left["payment_methods"][0]["isDefault"], true);
    let detached = client.retrieve_payment_method(&master_ref).await.unwrap();
    assert_eq!(detached.customer, None);
    let at_stripe = client.retrieve_customer(&customer).await.unwrap();
    assert_eq!(
        at_stripe.invoice_settings.default_payment_method.as_deref(),
        Some(visa_ref.as_str())
    );

    // An admin moving the default moves it at Stripe too.
    let third = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/payment_methods",
            &json!({"providerRef": "pm_card_visa"}),
        )
        .await
        .assert_status(201)
        .json_value();
    let user_id = session["user"]["id"].as_str().unwrap();
    app.send_json_as(
        &acme.api_keys.live,
        Method::PUT,
        &format!(
            "/api/v1/users/{user_id}/payment_methods/{}/default",
            third["id"].as_str().unwrap()
        ),
        &json!({}),
    )
    .await
    .assert_status(200);
    let at_stripe = client.retrieve_customer(&customer).await.unwrap();
    assert_eq!(
        at_stripe.invoice_settings.default_payment_method.as_deref(),
        third["providerRef"].as_str()
    );

    // Stripe refuses what it does not know: its code reaches the client in `details`.
    let refused = app
        .send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/payment_methods",
            &json!({"providerRef": "pm_doesnotexist"}),
        )
        .await;
    let body = refused.assert_error(422, "payment_provider_rejected");
    assert!(
        body.details.iter().any(|d| d.field.starts_with("stripe.")),
        "{body:?}"
    );
}

#[tokio::test]
async fn connected_accounts_carry_stripes_status() {
    let (app, acme, base) = app_with_stripe().await;
    let session = app
        .sign_in(acme.platform.id.as_str(), "seller@example.com", "live")
        .await;
    let token = session["access_token"].as_str().unwrap();
    let client = stripe(&base);
    let account = client
        .create_account(
            &CreateAccount {
                account_type: AccountType::Express,
                country: Some("US".into()),
                email: Some("seller@example.com".into()),
                capabilities: vec![Capability::Transfers],
                metadata: Default::default(),
            },
            &IdempotencyKey::new(feria_kernel::id::new_prefixed("test_acct")).unwrap(),
        )
        .await
        .unwrap();
    let connect = async |id: &str| {
        app.send_json_as(
            token,
            Method::POST,
            "/api/v1/users/auth/bank_account",
            &json!({"stripeConnectId": id}),
        )
        .await
    };
    let user: Value = connect(&account.id).await.assert_status(200).json_value();
    assert_eq!(user["stripeConnectId"], account.id.as_str());
    assert_eq!(user["detailsSubmitted"], false);

    // Onboarding finished at Stripe (a browser flow; localstripe's test hook here).
    let hook = format!("{base}/_config/accounts/{}/complete_onboarding", account.id);
    let done = reqwest::Client::new().post(hook).send().await.unwrap();
    assert!(done.status().is_success());
    let user: Value = connect(&account.id).await.assert_status(200).json_value();
    assert_eq!(user["detailsSubmitted"], true);
    assert_eq!(user["chargesEnabled"], true);

    connect("acct_unknown123")
        .await
        .assert_error(422, "payment_provider_rejected");
    connect("cus_123")
        .await
        .assert_error(422, "validation_failed");
}
