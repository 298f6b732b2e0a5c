//! Contracts settled by card through Stripe, over real HTTP to the server and from the
//! server to localstripe (docs/STRIPE.md): the buyer's default card charged into escrow,
//! the seller paid by a Connect transfer, fees kept; a declined card refused with
//! Stripe's details and nothing written; a repeat that charges nobody twice, also after
//! a crash between charging and recording; parties Stripe cannot charge or pay refused
//! before anything is charged.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria::config::StripeSettings;
use feria_billing::card_settlement::{Begun, CardPayer, CardSettlement, ConnectedSeller};
use feria_billing::settlement::{Settlement, SettlementFees};
use feria_billing::stripe::{
    AccountType, Capability, CreateAccount, IdempotencyKey, StripeClient, StripeConfig,
};
use feria_kernel::money::{Currency, Money};
use feria_kernel::{Mode, Tenant, UserId};
use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse, localstripe_url};
use serde_json::{Value, json};

const KEY: &str = "sk_test_feria_settle";

struct Shop {
    app: TestApp,
    acme: CreatedPlatform,
    base: String,
    stripe: StripeClient,
}

async fn shop() -> Shop {
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
    app.send_json_as(
        &acme.api_keys.live,
        Method::PUT,
        &format!("/api/v1/platforms/{}", acme.platform.id),
        &json!({"platformFee": 2.5}),
    )
    .await
    .assert_status(200);
    let stripe = StripeClient::new(StripeConfig::new(KEY).with_base_url(base.clone())).unwrap();
    Shop {
        app,
        acme,
        base,
        stripe,
    }
}

/// A signed-in user: (id, token).
struct Person {
    id: String,
    token: String,
}

impl Shop {
    fn key(&self) -> &str {
        &self.acme.api_keys.live
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        let request = self.app.request(method, path).bearer_auth(self.key());
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        self.app.send(request).await
    }

    async fn person(&self, email: &str) -> Person {
        let session = self
            .app
            .sign_in(self.acme.platform.id.as_str(), email, "live")
            .await;
        Person {
            id: session["user"]["id"].as_str().unwrap().to_owned(),
            token: session["access_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Saves a card through the users' payment routes (Stripe customer, attach, default).
    async fn save_card(&self, who: &Person, test_card: &str) -> Value {
        self.app
            .send_json_as(
                &who.token,
                Method::POST,
                "/api/v1/users/auth/client_secret",
                &json!({}),
            )
            .await
            .assert_status(201);
        self.app
            .send_json_as(
                &who.token,
                Method::POST,
                "/api/v1/users/auth/payment_methods",
                &json!({"providerRef": test_card, "makeDefault": true}),
            )
            .await
            .assert_status(201)
            .json_value()
    }

    /// A Connect account for the seller, onboarded (or not), recorded as their payout
    /// account.
    async fn connect(&self, who: &Person, onboarded: bool) -> String {
        let account = self
            .stripe
            .create_account(
                &CreateAccount {
                    account_type: AccountType::Express,
                    country: Some("US".into()),
                    email: None,
                    capabilities: vec![Capability::Transfers],
                    metadata: Default::default(),
                },
                &IdempotencyKey::new(feria_kernel::id::new_prefixed("test_acct")).unwrap(),
            )
            .await
            .unwrap();
        if onboarded {
            let hook = format!(
                "{}/_config/accounts/{}/complete_onboarding",
                self.base, account.id
            );
            let done = reqwest::Client::new().post(hook).send().await.unwrap();
            assert!(done.status().is_success());
        }
        self.app
            .send_json_as(
                &who.token,
                Method::POST,
                "/api/v1/users/auth/bank_account",
                &json!({"stripeConnectId": account.id}),
            )
            .await
            .assert_status(200);
        account.id
    }

    async fn product(&self, seller: &Person, price: f64, quantity: i64) -> String {
        self.admin(
            Method::POST,
            "/api/v1/products",
            Some(
                json!({"name": "Lamp", "price": price, "quantity": quantity, "user_id": seller.id}),
            ),
        )
        .await
        .assert_status(201)
        .json_value()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An open contract: the items, one buyer owing the total, one seller owed the net.
    async fn contract(&self, buyer: &Person, seller: &Person, items: Vec<Value>) -> Value {
        let contract = self
            .admin(Method::POST, "/api/v1/contracts", Some(json!({})))
            .await
            .assert_status(201)
            .json_value();
        let base = format!("/api/v1/contracts/{}", contract["id"].as_str().unwrap());
        for item in items {
            self.admin(Method::POST, &format!("{base}/item"), Some(item))
                .await
                .assert_status(200);
        }
        let drafted = self.admin(Method::GET, &base, None).await.json_value();
        self.admin(
            Method::POST,
            &format!("{base}/buyer"),
            Some(json!({"user_id": buyer.id, "due": drafted["total"]})),
        )
        .await
        .assert_status(200);
        self.admin(
            Method::POST,
            &format!("{base}/seller"),
            Some(json!({"user_id": seller.id, "owed": drafted["net"]})),
        )
        .await
        .assert_status(200);
        self.admin(Method::POST, &format!("{base}/send"), None)
            .await
            .assert_status(200)
            .json_value()
    }

    async fn settle(&self, id: &str, query: &str, idempotency: Option<&str>) -> TestResponse {
        let mut request = self
            .app
            .request(
                Method::PUT,
                &format!("/api/v1/contracts/{id}/settle{query}"),
            )
            .bearer_auth(self.key());
        if let Some(key) = idempotency {
            request = request.header("Idempotency-Key", key);
        }
        self.app.send(request).await
    }

    async fn transactions_of(&self, contract: &str) -> Vec<Value> {
        self.admin(
            Method::GET,
            &format!("/api/v1/transactions?contract_id={contract}&page_size=100"),
            None,
        )
        .await
        .assert_status(200)
        .json_value()["data"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn ledger_verifies(&self) {
        let mut conn = self.app.db().conn().await.unwrap();
        let verification = feria_billing::ledger::verify(&mut conn).await.unwrap();
        assert!(verification.is_ok(), "ledger: {verification:?}");
    }

    /// How many payment intents localstripe holds for a customer.
    async fn payment_intents_of(&self, customer: &str) -> usize {
        let http = reqwest::Client::new();
        let mut count = 0;
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/payment_intents?limit=100", self.base);
            if let Some(after) = &after {
                url.push_str(&format!("&starting_after={after}"));
            }
            let page: Value = http
                .get(url)
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let data = page["data"].as_array().unwrap();
            count += data.iter().filter(|pi| pi["customer"] == customer).count();
            if page["has_more"] != true || data.is_empty() {
                return count;
            }
            after = data.last().unwrap()["id"].as_str().map(str::to_owned);
        }
    }

    async fn customer_of(&self, who: &Person) -> String {
        self.app
            .get_as(&who.token, "/api/v1/users/auth")
            .await
            .json_value()["stripeCustomerId"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn cents(value: &Value) -> i64 {
    (value.as_f64().unwrap() * 100.0).round() as i64
}

fn of_type<'a>(transactions: &'a [Value], kind: &str) -> Vec<&'a Value> {
    transactions.iter().filter(|t| t["type"] == kind).collect()
}

#[tokio::test]
async fn a_buyer_without_credits_pays_by_card_and_the_seller_by_transfer() {
    let s = shop().await;
    let buyer = s.person("buyer@example.com").await;
    let seller = s.person("seller@example.com").await;
    s.save_card(&buyer, "pm_card_visa").await;
    let account = s.connect(&seller, true).await;
    let lamp = s.product(&seller, 40.0, 5).await;
    let contract = s
        .contract(
            &buyer,
            &seller,
            vec![
                json!({"product_id": lamp, "quantity": 2}),
                json!({"name": "Setup", "unit_price": 20.0}),
            ],
        )
        .await;
    let id = contract["id"].as_str().unwrap();
    let total = cents(&contract["total"]);
    let net = cents(&contract["net"]);
    assert_eq!(net, 10_000);

    // No credits, a saved card and Stripe configured: the card is charged.
    let settled = s
        .settle(id, "", Some("card-once"))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(settled["status"], "settled");
    assert!(settled["paid"].is_string());

    let transactions = s.transactions_of(id).await;
    assert!(
        transactions.iter().all(|t| t["provider"] == "stripe"),
        "{transactions:?}"
    );
    let charges = of_type(&transactions, "charge");
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0]["buyer_user_id"], buyer.id.as_str());
    assert_eq!(cents(&charges[0]["amount"]), total);
    let charge_id = charges[0]["stripeChargeId"].as_str().unwrap();
    let at_stripe = s.stripe.retrieve_charge(charge_id).await.unwrap();
    assert_eq!(at_stripe.amount, total);
    assert_eq!(at_stripe.status, "succeeded");
    let earnings = of_type(&transactions, "earning");
    assert_eq!(earnings.len(), 1);
    assert_eq!(cents(&earnings[0]["amount"]), net);
    let fees = of_type(&transactions, "fee");
    let fee_sum: i64 = fees.iter().map(|f| cents(&f["amount"])).sum();
    assert_eq!(fee_sum + net, total, "{fees:?}");
    assert!(fees.iter().any(|f| f["feeKind"] == "platform"));
    // The seller's share left by a Connect transfer to their account.
    let payouts = of_type(&transactions, "payout");
    assert_eq!(payouts.len(), 1);
    assert_eq!(payouts[0]["seller_user_id"], seller.id.as_str());
    let transfer_id = payouts[0]["stripeChargeId"].as_str().unwrap();
    assert!(transfer_id.starts_with("tr_"), "{transfer_id}");
    let transfer = s.stripe.retrieve_transfer(transfer_id).await.unwrap();
    assert_eq!(transfer.destination.as_deref(), Some(account.as_str()));
    assert_eq!(transfer.amount, net);
    s.ledger_verifies().await;

    // Stock was taken; revenue counts the earning; spend the charge.
    let stock = s
        .admin(Method::GET, &format!("/api/v1/products/{lamp}"), None)
        .await
        .json_value();
    assert_eq!(stock["quantity"], 3);
    let revenue = s
        .admin(
            Method::GET,
            &format!("/api/v1/transactions/user/{}/revenue", seller.id),
            None,
        )
        .await
        .json_value();
    assert_eq!(cents(&revenue["totals"][0]["amount"]), net);

    // The same request again: the same answer, nobody charged twice.
    let customer = s.customer_of(&buyer).await;
    assert_eq!(s.payment_intents_of(&customer).await, 1);
    let again = s
        .settle(id, "", Some("card-once"))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(again["paid"], settled["paid"]);
    s.settle(id, "", None)
        .await
        .assert_error(409, "already_settled");
    assert_eq!(s.transactions_of(id).await.len(), transactions.len());
    assert_eq!(s.payment_intents_of(&customer).await, 1);

    // Refunds go back to the card: the seller's share is taken back by reversing their
    // transfer, the fees' shares are given back, Stripe refunds the buyer.
    let refund_path = format!(
        "/api/v1/transactions/{}/refund",
        charges[0]["id"].as_str().unwrap()
    );
    let refund = |key: &'static str, body: Value| {
        let request = s
            .app
            .request(Method::POST, &refund_path)
            .bearer_auth(s.key())
            .header("Idempotency-Key", key)
            .json(&body);
        s.app.send(request)
    };
    let first = refund("refund-1", json!({"amount": 30.0}))
        .await
        .assert_status(201)
        .json_value();
    let parts = first["transactions"].as_array().unwrap();
    assert!(parts.iter().all(|t| t["provider"] == "stripe"), "{parts:?}");
    let to_buyer = of_type(parts, "refund");
    assert_eq!(to_buyer.len(), 1);
    assert_eq!(cents(&to_buyer[0]["amount"]), 3_000);
    assert_eq!(to_buyer[0]["buyer_user_id"], buyer.id.as_str());
    assert!(
        to_buyer[0]["stripeChargeId"]
            .as_str()
            .unwrap()
            .starts_with("re_")
    );
    let from_seller = of_type(parts, "earning_reversal");
    assert_eq!(from_seller.len(), 1);
    assert!(
        from_seller[0]["stripeChargeId"]
            .as_str()
            .unwrap()
            .starts_with("trr_")
    );
    let taken_back: i64 = parts
        .iter()
        .filter(|t| t["type"] != "refund")
        .map(|t| cents(&t["amount"]))
        .sum();
    assert_eq!(
        taken_back, 3_000,
        "the shares add up to the refund: {parts:?}"
    );
    let seller_share = cents(&from_seller[0]["amount"]);
    assert_eq!(
        s.stripe
            .retrieve_charge(charge_id)
            .await
            .unwrap()
            .amount_refunded,
        3_000
    );
    assert_eq!(
        s.stripe
            .retrieve_transfer(transfer_id)
            .await
            .unwrap()
            .amount_reversed,
        seller_share
    );
    s.ledger_verifies().await;

    // The same key again: the same refund, nothing moves twice (at Stripe either).
    let again = refund("refund-1", json!({"amount": 30.0}))
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(
        again["transactions"][0]["id"],
        first["transactions"][0]["id"]
    );
    assert_eq!(
        s.stripe
            .retrieve_charge(charge_id)
            .await
            .unwrap()
            .amount_refunded,
        3_000
    );
    // More than is left: refused before Stripe is asked.
    refund("refund-2", json!({"amount": total as f64 / 100.0}))
        .await
        .assert_error(422, "validation_failed");

    // The rest: the charge is fully refunded and the seller's transfer fully reversed.
    refund("refund-3", json!({})).await.assert_status(201);
    let at_stripe = s.stripe.retrieve_charge(charge_id).await.unwrap();
    assert_eq!(at_stripe.amount_refunded, total);
    assert_eq!(
        s.stripe
            .retrieve_transfer(transfer_id)
            .await
            .unwrap()
            .amount_reversed,
        net
    );
    refund("refund-4", json!({}))
        .await
        .assert_error(409, "not_refundable");
    let revenue = s
        .admin(
            Method::GET,
            &format!("/api/v1/transactions/user/{}/revenue", seller.id),
            None,
        )
        .await
        .json_value();
    assert_eq!(
        revenue["totals"]
            .as_array()
            .map_or(0, |t| t.first().map_or(0, |t| cents(&t["amount"]))),
        0,
        "{revenue}"
    );
    s.ledger_verifies().await;
}

#[tokio::test]
async fn a_declined_card_is_422_with_stripes_details_and_nothing_is_written() {
    let s = shop().await;
    let buyer = s.person("buyer@example.com").await;
    let seller = s.person("seller@example.com").await;
    // Stripe's test card that attaches fine and declines every charge.
    s.save_card(&buyer, "pm_card_chargeCustomerFail").await;
    s.connect(&seller, true).await;
    let lamp = s.product(&seller, 40.0, 5).await;
    let contract = s
        .contract(&buyer, &seller, vec![json!({"product_id": lamp})])
        .await;
    let id = contract["id"].as_str().unwrap();

    let refused = s
        .settle(id, "?provider=stripe", Some("declined"))
        .await
        .assert_error(422, "payment_provider_rejected");
    assert!(
        refused
            .details
            .iter()
            .any(|d| d.field == "stripe.code" && d.message == "card_declined"),
        "{refused:?}"
    );
    assert!(
        refused.details.iter().any(|d| d.field == "stripe.message"),
        "{refused:?}"
    );
    // Nothing written: no transaction, stock back, the contract open with the attempt.
    assert!(s.transactions_of(id).await.is_empty());
    let now = s
        .admin(Method::GET, &format!("/api/v1/contracts/{id}"), None)
        .await
        .json_value();
    assert_eq!(now["status"], "open");
    assert!(now["lastPaymentAttempt"].is_string());
    assert_eq!(now["paid"], Value::Null);
    let stock = s
        .admin(Method::GET, &format!("/api/v1/products/{lamp}"), None)
        .await
        .json_value();
    assert_eq!(stock["quantity"], 5);
    s.ledger_verifies().await;
    // The contract is editable again after a refusal.
    s.admin(
        Method::PUT,
        &format!("/api/v1/contracts/{id}"),
        Some(json!({"notes": "card declined once"})),
    )
    .await
    .assert_status(200);

    // With a good card as the default, the next attempt goes through.
    s.app
        .send_json_as(
            &buyer.token,
            Method::POST,
            "/api/v1/users/auth/payment_methods",
            &json!({"providerRef": "pm_card_visa", "makeDefault": true}),
        )
        .await
        .assert_status(201);
    s.settle(id, "?provider=stripe", Some("second-card"))
        .await
        .assert_status(200);
    let transactions = s.transactions_of(id).await;
    assert_eq!(of_type(&transactions, "charge").len(), 1);
    assert_eq!(of_type(&transactions, "payout").len(), 1);
    s.ledger_verifies().await;
}

#[tokio::test]
async fn parties_stripe_cannot_charge_or_pay_are_refused_before_any_charge() {
    let s = shop().await;
    let buyer = s.person("buyer@example.com").await;
    let seller = s.person("seller@example.com").await;
    let contract = s
        .contract(
            &buyer,
            &seller,
            vec![json!({"name": "Setup", "unit_price": 50.0})],
        )
        .await;
    let id = contract["id"].as_str().unwrap();

    // No card yet.
    s.settle(id, "?provider=stripe", None)
        .await
        .assert_error(409, "payment_method_required");
    s.save_card(&buyer, "pm_card_visa").await;
    // Without a provider the buyer (no credits, a card) would pay by card, but the
    // seller has no connected account.
    s.settle(id, "", None)
        .await
        .assert_error(409, "seller_not_connected");
    // Connected but not onboarded: Stripe would refuse the transfer.
    s.connect(&seller, false).await;
    s.settle(id, "?provider=stripe", None)
        .await
        .assert_error(409, "seller_account_not_ready");
    // Nothing was charged anywhere.
    let customer = s.customer_of(&buyer).await;
    assert_eq!(s.payment_intents_of(&customer).await, 0);
    assert!(s.transactions_of(id).await.is_empty());
    // Credits are still a choice: the buyer short of them is 409 as ever.
    s.settle(id, "?provider=internal", None)
        .await
        .assert_error(409, "insufficient_funds");
    s.settle(id, "?provider=paypal", None)
        .await
        .assert_error(400, "invalid_query");

    // Without a Stripe key for the mode, asking for Stripe is a clear 409.
    let plain = TestApp::spawn_with_platform().await;
    let (app, other) = plain;
    let contract = app
        .send_json_as(
            &other.api_keys.live,
            Method::POST,
            "/api/v1/contracts",
            &json!({}),
        )
        .await
        .assert_status(201)
        .json_value();
    app.send(
        app.request(
            Method::PUT,
            &format!(
                "/api/v1/contracts/{}/settle?provider=stripe",
                contract["id"].as_str().unwrap()
            ),
        )
        .bearer_auth(&other.api_keys.live),
    )
    .await
    .assert_error(409, "payment_provider_not_configured");
}

/// The server charged the card and paid the seller, then died before recording it: the
/// pending attempt is in the database, the money moved at Stripe, the ledger knows
/// nothing. Repeating the request finishes it with Stripe's first results.
#[tokio::test]
async fn a_crash_after_charging_is_recovered_by_repeating_the_request() {
    let s = shop().await;
    let buyer = s.person("buyer@example.com").await;
    let seller = s.person("seller@example.com").await;
    s.save_card(&buyer, "pm_card_visa").await;
    let account = s.connect(&seller, true).await;
    let contract = s
        .contract(
            &buyer,
            &seller,
            vec![json!({"name": "Setup", "unit_price": 80.0})],
        )
        .await;
    let id = contract["id"].as_str().unwrap();
    let customer = s.customer_of(&buyer).await;
    let card = s
        .app
        .get_as(&buyer.token, "/api/v1/users/auth/payment_methods")
        .await
        .json_value()["payment_methods"][0]["providerRef"]
        .as_str()
        .unwrap()
        .to_owned();

    // Steps 1 and 2 of the settlement, as the server runs them, with the plan it makes.
    let tenant = Tenant::new(s.acme.platform.id.clone(), Mode::Live);
    let usd = |v: &Value| Money::from_minor(cents(v), Currency::USD);
    let buyer_id: UserId = buyer.id.parse().unwrap();
    let seller_id: UserId = seller.id.parse().unwrap();
    let card_settlement = CardSettlement {
        settlement: Settlement {
            key: format!("contract:{id}"),
            contract_id: Some(id.to_owned()),
            escrow_owner: id.to_owned(),
            currency: Currency::USD,
            charges: vec![(buyer_id.clone(), usd(&contract["total"]))],
            earnings: vec![(seller_id.clone(), usd(&contract["net"]))],
            fees: SettlementFees {
                platform: usd(&contract["platformFee"]),
                service: usd(&contract["serviceFee"]),
                processor: usd(&contract["processorFee"]),
            },
            description: Some(format!("contract {id}")),
        },
        payers: vec![CardPayer {
            user_id: buyer_id,
            customer: customer.clone(),
            payment_method: card,
        }],
        sellers: vec![ConnectedSeller {
            user_id: seller_id,
            account: account.clone(),
        }],
    };
    let pending = {
        let mut conn = s.app.db().conn().await.unwrap();
        match feria_billing::card_settlement::begin(&mut conn, &tenant, card_settlement)
            .await
            .unwrap()
        {
            Begun::Started(pending) => pending,
            other => panic!("not started: {other:?}"),
        }
    };
    let first = feria_billing::card_settlement::execute(&s.stripe, &pending)
        .await
        .unwrap();
    // ... and the crash: nothing recorded, the terms frozen while it is pending.
    assert!(s.transactions_of(id).await.is_empty());
    s.admin(
        Method::PUT,
        &format!("/api/v1/contracts/{id}"),
        Some(json!({"notes": "changed"})),
    )
    .await
    .assert_error(409, "settlement_pending");
    assert_eq!(s.payment_intents_of(&customer).await, 1);
    // Nor may the buyer's credits pay it now.
    s.admin(
        Method::POST,
        &format!("/api/v1/users/{}/credits", buyer.id),
        Some(json!({"amount": 500, "currency": "usd"})),
    )
    .await
    .assert_status(201);
    s.settle(id, "?provider=internal", None)
        .await
        .assert_error(409, "settlement_pending");

    // The repeat resumes the pending attempt: Stripe answers with the first charge and
    // transfer, nobody pays twice.
    s.settle(id, "", Some("after-crash"))
        .await
        .assert_status(200);
    assert_eq!(s.payment_intents_of(&customer).await, 1);
    let transactions = s.transactions_of(id).await;
    let charge = of_type(&transactions, "charge")[0];
    assert_eq!(
        charge["stripeChargeId"].as_str(),
        first.charges[0].charge.as_deref()
    );
    let payout = of_type(&transactions, "payout")[0];
    assert_eq!(
        payout["stripeChargeId"].as_str(),
        Some(first.transfers[0].transfer.as_str())
    );
    s.ledger_verifies().await;
}

/// Concurrent settles of one contract by card charge the buyer once: the first records
/// the attempt, the others resume it with the same idempotency keys (Stripe replays or
/// answers `idempotency_key_in_use`, a 503 here), one finalizes.
#[tokio::test]
async fn concurrent_card_settles_charge_once() {
    let s = shop().await;
    let buyer = s.person("buyer@example.com").await;
    let seller = s.person("seller@example.com").await;
    s.save_card(&buyer, "pm_card_visa").await;
    s.connect(&seller, true).await;
    let lamp = s.product(&seller, 25.0, 10).await;
    let contract = s
        .contract(
            &buyer,
            &seller,
            vec![json!({"product_id": lamp, "quantity": 3})],
        )
        .await;
    let id = contract["id"].as_str().unwrap();

    let attempts = (0..10).map(|_| s.settle(id, "?provider=stripe", Some("together")));
    let answers = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    // One of them finishes the payment; the others replay it (200) or are told, with the
    // documented code, that it is still in progress and may be retried.
    assert!(statuses.contains(&200), "{statuses:?}");
    for answer in answers.iter().filter(|r| r.status.as_u16() != 200) {
        if answer.status.as_u16() == 409 {
            answer.assert_error(409, "settlement_in_progress");
        } else {
            // Stripe's `idempotency_key_in_use` while the first call runs.
            let error = answer.assert_error(503, "payment_provider_unavailable");
            assert!(answer.header("Retry-After").is_some(), "{error:?}");
        }
    }
    // Whatever was left pending is finished by one more repeat.
    s.settle(id, "", Some("together")).await.assert_status(200);

    let customer = s.customer_of(&buyer).await;
    assert_eq!(s.payment_intents_of(&customer).await, 1);
    let transactions = s.transactions_of(id).await;
    assert_eq!(of_type(&transactions, "charge").len(), 1);
    assert_eq!(of_type(&transactions, "payout").len(), 1);
    let stock = s
        .admin(Method::GET, &format!("/api/v1/products/{lamp}"), None)
        .await
        .json_value();
    assert_eq!(stock["quantity"], 7);
    s.ledger_verifies().await;
}
