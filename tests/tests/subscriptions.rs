//! Subscriptions through real HTTP: subscribing to a contract charges its first cycle,
//! the renewal run (called here with chosen instants, as the server's worker calls it
//! with the current time) charges each later cycle exactly once, skips paused ones,
//! resumes them after `pausedUntil`, ends them at their end date, records and retries a
//! failed charge, and keeps the next renewal on the subscriber's calendar. Concurrent
//! runs — tasks of one process, and two pools as two servers — charge each cycle once.
//! Every test ends by verifying the ledger.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_kernel::{Db, DbConfig, Timestamp};
use feria_subscriptions::{RenewalReport, run_due_renewals};
use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse};
use serde_json::{Value, json};

struct World {
    app: TestApp,
    acme: CreatedPlatform,
    other: CreatedPlatform,
    /// (id, token)
    seller: (String, String),
    buyer: (String, String),
    stranger: (String, String),
}

async fn person(app: &TestApp, platform: &CreatedPlatform, email: &str) -> (String, String) {
    let session = app
        .sign_in(platform.platform.id.as_str(), email, "live")
        .await;
    (
        session["user"]["id"].as_str().unwrap().to_owned(),
        session["access_token"].as_str().unwrap().to_owned(),
    )
}

async fn world() -> World {
    // The server's own worker is off: the tests run renewals at the instants they choose.
    world_with_worker(None).await
}

async fn world_with_worker(every: Option<std::time::Duration>) -> World {
    let app = TestApp::builder()
        .config(move |c| c.subscription_renewal_interval = every)
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    // A 2.5 % platform fee; the operator's service fee is 1 % by default.
    app.send_json_as(
        &acme.api_keys.live,
        Method::PUT,
        &format!("/api/v1/platforms/{}", acme.platform.id),
        &json!({"platformFee": 2.5}),
    )
    .await
    .assert_status(200);
    World {
        seller: person(&app, &acme, "seller@example.com").await,
        buyer: person(&app, &acme, "buyer@example.com").await,
        stranger: person(&app, &acme, "stranger@example.com").await,
        app,
        acme,
        other,
    }
}

fn at(raw: &str) -> Timestamp {
    Timestamp::parse(raw).unwrap()
}

/// One second after `t`: instants on the wire are whole seconds, stored ones are not, so
/// a run "at" a renewal shown on the wire runs just after it.
fn after(t: Timestamp) -> Timestamp {
    t.add(time::Duration::seconds(1))
}

fn days(t: Timestamp, n: i64) -> Timestamp {
    t.add(time::Duration::days(n))
}

impl World {
    fn key(&self) -> &str {
        &self.acme.api_keys.live
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> TestResponse {
        let request = self.app.request(method, path).bearer_auth(token);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        self.app.send(request).await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        self.call(self.key(), method, path, body).await
    }

    async fn top_up(&self, user: &str, amount: f64) {
        self.admin(
            Method::POST,
            &format!("/api/v1/users/{user}/credits"),
            Some(json!({"amount": amount, "currency": "usd"})),
        )
        .await
        .assert_status(201);
    }

    async fn credits(&self, user: &str) -> f64 {
        let credits = self
            .admin(Method::GET, &format!("/api/v1/users/{user}/credits"), None)
            .await
            .assert_status(200)
            .json_value();
        credits["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["currency"] == "usd")
            .map_or(0.0, |b| b["amount"].as_f64().unwrap())
    }

    async fn revenue(&self, user: &str) -> f64 {
        let revenue = self
            .admin(
                Method::GET,
                &format!("/api/v1/transactions/user/{user}/revenue"),
                None,
            )
            .await
            .assert_status(200)
            .json_value();
        revenue["totals"]
            .as_array()
            .unwrap()
            .first()
            .map_or(0.0, |t| t["amount"].as_f64().unwrap())
    }

    async fn ledger_verifies(&self) {
        let mut conn = self.app.db().conn().await.unwrap();
        let verification = feria_billing::ledger::verify(&mut conn).await.unwrap();
        assert!(verification.is_ok(), "ledger: {verification:?}");
    }

    /// A sent contract: one custom line of 20.00, platform (2.5 %) and service (1 %) fees
    /// paid by the buyer on top: total 20.70, the buyer owes all of it, the seller is
    /// owed 20.00. `send: false` leaves it a draft.
    async fn contract(&self, buyer: &str, send: bool) -> String {
        let contract = self
            .admin(
                Method::POST,
                "/api/v1/contracts",
                Some(json!({"notes": "monthly plan"})),
            )
            .await
            .assert_status(201)
            .json_value();
        let id = contract["id"].as_str().unwrap().to_owned();
        let base = format!("/api/v1/contracts/{id}");
        self.admin(
            Method::POST,
            &format!("{base}/item"),
            Some(json!({"name": "Plan", "unit_price": 20.0})),
        )
        .await
        .assert_status(200);
        self.admin(
            Method::POST,
            &format!("{base}/buyer"),
            Some(json!({"user_id": buyer, "due": 20.7})),
        )
        .await
        .assert_status(200);
        let contract = self
            .admin(
                Method::POST,
                &format!("{base}/seller"),
                Some(json!({"user_id": self.seller.0, "owed": 20.0})),
            )
            .await
            .assert_status(200)
            .json_value();
        assert_eq!(contract["total"], 20.7);
        if send {
            self.admin(Method::POST, &format!("{base}/send"), None)
                .await
                .assert_status(200);
        }
        id
    }

    async fn subscribe(&self, token: &str, contract: &str, body: Option<Value>) -> TestResponse {
        self.call(
            token,
            Method::POST,
            &format!("/api/v1/subscriptions/auth/contract/{contract}"),
            body,
        )
        .await
    }

    async fn subscription(&self, id: &str) -> Value {
        self.admin(Method::GET, &format!("/api/v1/subscriptions/{id}"), None)
            .await
            .assert_status(200)
            .json_value()
    }

    async fn run(&self, now: Timestamp) -> RenewalReport {
        run_due_renewals(self.app.db(), now).await.unwrap()
    }

    /// The buyer's calendar events of kind `subscription`.
    async fn renewal_events(&self, token: &str) -> Vec<Value> {
        let calendar = self
            .app
            .get_as(token, "/api/v1/calendars/auth")
            .await
            .assert_status(200)
            .json_value();
        calendar["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "subscription")
            .cloned()
            .collect()
    }
}

fn next_renewal(subscription: &Value) -> Timestamp {
    at(subscription["nextRenewal"].as_str().unwrap())
}

#[tokio::test]
async fn subscribing_charges_the_first_cycle_and_each_renewal_exactly_once() {
    let w = world().await;
    let contract = w.contract(&w.buyer.0, true).await;
    w.top_up(&w.buyer.0, 100.0).await;

    let created = w
        .subscribe(&w.buyer.1, &contract, Some(json!({"cycle": "monthly"})))
        .await
        .assert_status(201)
        .json_value();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("subs_"), "{id}");
    assert_eq!(created["platform_id"], w.acme.platform.id.as_str());
    assert_eq!(created["user_id"], w.buyer.0.as_str());
    assert_eq!(created["service_id"], contract.as_str());
    assert_eq!(created["price"], 20.7);
    assert_eq!(created["currency"], "usd");
    assert_eq!(created["isActive"], true);
    assert_eq!(created["isPaused"], false);
    assert_eq!(created["pausedAt"], Value::Null);
    assert_eq!(created["pausedUntil"], Value::Null);
    assert_eq!(created["ended"], Value::Null);
    assert_eq!(created["cycle"], "monthly");
    assert_eq!(created["status"], "active");
    assert_eq!(created["cyclesCharged"], 1);
    let start = at(created["startDate"].as_str().unwrap());
    let first_renewal = next_renewal(&created);
    let expected = feria_subscriptions::Cycle::Monthly.add(start, 1).unwrap();
    assert_eq!(first_renewal, at(&expected.to_rfc3339()));

    // The first cycle moved money: the buyer paid 20.70, the seller earned 20.00.
    assert_eq!(w.credits(&w.buyer.0).await, 79.3);
    assert_eq!(w.revenue(&w.seller.0).await, 20.0);

    // The next renewal is on the buyer's calendar, linked to the subscription.
    let events = w.renewal_events(&w.buyer.1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["subscription_id"], id.as_str());
    assert_eq!(events[0]["contract_id"], contract.as_str());
    assert_eq!(at(events[0]["start"].as_str().unwrap()), first_renewal);
    // ... and the buyer cannot remove it.
    let event_id = events[0]["id"].as_str().unwrap();
    w.call(
        &w.buyer.1,
        Method::DELETE,
        &format!("/api/v1/calendars/auth/event/{event_id}"),
        None,
    )
    .await
    .assert_error(409, "subscription_event_locked");

    // Before the renewal: nothing is due.
    assert_eq!(
        w.run(days(first_renewal, -1)).await,
        RenewalReport::default()
    );
    // At the renewal: charged once; running again at the same instant or a bit later
    // charges nothing more.
    assert_eq!(w.run(after(first_renewal)).await.charged, 1);
    assert_eq!(w.run(after(first_renewal)).await, RenewalReport::default());
    assert_eq!(
        w.run(days(first_renewal, 3)).await,
        RenewalReport::default()
    );
    assert_eq!(w.credits(&w.buyer.0).await, 58.6);
    assert_eq!(w.revenue(&w.seller.0).await, 40.0);
    let renewed = w.subscription(&id).await;
    assert_eq!(renewed["cyclesCharged"], 2);
    let second_renewal = next_renewal(&renewed);
    assert_eq!(
        second_renewal,
        feria_subscriptions::Cycle::Monthly.add(start, 2).unwrap()
    );
    // The calendar now shows the following renewal, still one event.
    let events = w.renewal_events(&w.buyer.1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(at(events[0]["start"].as_str().unwrap()), second_renewal);

    assert_eq!(w.run(after(second_renewal)).await.charged, 1);
    assert_eq!(w.subscription(&id).await["cyclesCharged"], 3);
    assert_eq!(w.credits(&w.buyer.0).await, 37.9);

    // Three charges of the subscription in the buyer's transactions.
    let spend = w
        .admin(
            Method::GET,
            &format!("/api/v1/transactions/user/{}/spend", w.buyer.0),
            None,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(spend["totals"][0]["amount"], 62.1);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn validation_state_conflicts_and_failed_first_charge() {
    let w = world().await;
    let contract = w.contract(&w.buyer.0, true).await;
    let base = "/api/v1/subscriptions";

    // An API key is not a subscriber.
    w.subscribe(w.key(), &contract, None)
        .await
        .assert_error(403, "api_key_not_allowed");
    // Validation: unknown cycle, an end in the past, unknown fields.
    let error = w
        .subscribe(&w.buyer.1, &contract, Some(json!({"cycle": "daily"})))
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(error.details[0].field, "cycle");
    let error = w
        .subscribe(
            &w.buyer.1,
            &contract,
            Some(json!({"endDate": "2020-01-01T00:00:00Z"})),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(error.details[0].field, "endDate");
    let error = w
        .subscribe(&w.buyer.1, &contract, Some(json!({"price": 1})))
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(error.details[0].field, "price");
    // Not a contract / not visible / not the buyer / a draft.
    w.subscribe(&w.buyer.1, "inv_nope", None)
        .await
        .assert_error(404, "not_found");
    w.subscribe(&w.stranger.1, &contract, None)
        .await
        .assert_error(404, "not_found");
    w.subscribe(&w.seller.1, &contract, None)
        .await
        .assert_error(403, "not_contract_buyer");
    let draft = w.contract(&w.buyer.0, false).await;
    w.subscribe(&w.buyer.1, &draft, None)
        .await
        .assert_error(409, "contract_not_sent");

    // No credits: the first charge fails and nothing is kept.
    w.subscribe(&w.buyer.1, &contract, None)
        .await
        .assert_error(409, "insufficient_funds");
    let listed = w
        .admin(Method::GET, &format!("{base}/user/{}", w.buyer.0), None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(listed["total"], 0);

    w.top_up(&w.buyer.0, 50.0).await;
    let created = w
        .subscribe(&w.buyer.1, &contract, None)
        .await
        .assert_status(201)
        .json_value();
    assert_eq!(created["cycle"], "monthly", "monthly by default");
    let id = created["id"].as_str().unwrap().to_owned();
    w.subscribe(&w.buyer.1, &contract, None)
        .await
        .assert_error(409, "already_subscribed");

    // Pause (the owner), twice; a pause end in the past is 422.
    let error = w
        .call(
            &w.buyer.1,
            Method::PUT,
            &format!("{base}/{id}/pause"),
            Some(json!({"pausedUntil": "2020-01-01T00:00:00Z"})),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(error.details[0].field, "pausedUntil");
    let paused = w
        .call(&w.buyer.1, Method::PUT, &format!("{base}/{id}/pause"), None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(paused["isPaused"], true);
    assert_eq!(paused["status"], "paused");
    assert!(paused["pausedAt"].is_string());
    assert_eq!(paused["pausedUntil"], Value::Null);
    // Paused: no renewal event on the calendar.
    assert!(w.renewal_events(&w.buyer.1).await.is_empty());
    w.admin(Method::PUT, &format!("{base}/{id}/pause"), None)
        .await
        .assert_error(409, "already_paused");

    // Resume: sessions only; then not paused any more.
    w.admin(Method::PUT, &format!("{base}/auth/{id}/resume"), None)
        .await
        .assert_error(403, "api_key_not_allowed");
    let resumed = w
        .call(
            &w.buyer.1,
            Method::PUT,
            &format!("{base}/auth/{id}/resume"),
            None,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(resumed["isPaused"], false);
    assert_eq!(resumed["status"], "active");
    // The paid period had not run out: the schedule is unchanged.
    assert_eq!(resumed["nextRenewal"], created["nextRenewal"]);
    assert_eq!(w.renewal_events(&w.buyer.1).await.len(), 1);
    w.call(
        &w.buyer.1,
        Method::PUT,
        &format!("{base}/auth/{id}/resume"),
        None,
    )
    .await
    .assert_error(409, "not_paused");

    // End: sessions only; then every change is 409 and it stays readable.
    w.admin(Method::DELETE, &format!("{base}/auth/{id}"), None)
        .await
        .assert_error(403, "api_key_not_allowed");
    let ended = w
        .call(
            &w.buyer.1,
            Method::DELETE,
            &format!("{base}/auth/{id}"),
            None,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(ended["isActive"], false);
    assert_eq!(ended["status"], "ended");
    assert!(ended["ended"].is_string());
    assert_eq!(ended["nextRenewal"], Value::Null);
    assert!(w.renewal_events(&w.buyer.1).await.is_empty());
    w.call(
        &w.buyer.1,
        Method::DELETE,
        &format!("{base}/auth/{id}"),
        None,
    )
    .await
    .assert_error(409, "subscription_ended");
    w.admin(Method::PUT, &format!("{base}/{id}/pause"), None)
        .await
        .assert_error(409, "subscription_ended");
    w.call(
        &w.buyer.1,
        Method::PUT,
        &format!("{base}/auth/{id}/resume"),
        None,
    )
    .await
    .assert_error(409, "subscription_ended");
    // Ended: never charged again.
    assert_eq!(
        w.run(days(Timestamp::now(), 400)).await,
        RenewalReport::default()
    );
    // Once ended, the buyer may subscribe to the contract again.
    w.subscribe(&w.buyer.1, &contract, Some(json!({"cycle": "yearly"})))
        .await
        .assert_status(201);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn tenancy_and_roles() {
    let w = world().await;
    let contract = w.contract(&w.buyer.0, true).await;
    w.top_up(&w.buyer.0, 50.0).await;
    let id = w
        .subscribe(&w.buyer.1, &contract, None)
        .await
        .assert_status(201)
        .json_value()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/subscriptions/{id}");
    let list = format!("/api/v1/subscriptions/user/{}", w.buyer.0);
    let other_user = person(&w.app, &w.other, "someone@other.example").await;

    // Readers: the admin key and the owner.
    w.admin(Method::GET, &path, None).await.assert_status(200);
    w.app.get_as(&w.buyer.1, &path).await.assert_status(200);
    // Nobody else: a stranger, another platform's key or user, the test-mode key.
    w.app
        .get_as(&w.stranger.1, &path)
        .await
        .assert_error(404, "not_found");
    w.app
        .get_as(&w.other.api_keys.live, &path)
        .await
        .assert_error(404, "not_found");
    w.app
        .get_as(&other_user.1, &path)
        .await
        .assert_error(404, "not_found");
    w.app
        .get_as(&w.acme.api_keys.test, &path)
        .await
        .assert_error(404, "not_found");
    w.app
        .get_as(w.key(), "/api/v1/subscriptions/subs_nope")
        .await
        .assert_error(404, "not_found");
    w.app.get(&path).await.assert_error(401, "unauthorized");

    // Lists: the owner and admins; another user is 403; another platform 404.
    let mine = w
        .app
        .get_as(&w.buyer.1, &list)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["data"][0]["id"], id.as_str());
    assert_eq!(mine["page"], 1);
    w.app
        .get_as(&w.stranger.1, &list)
        .await
        .assert_error(403, "forbidden");
    w.app
        .get_as(&w.other.api_keys.live, &list)
        .await
        .assert_error(404, "not_found");
    w.app
        .get_as(w.key(), &format!("{list}?page_size=101"))
        .await
        .assert_error(422, "validation_failed");

    // Changes by anyone but the owner or an admin: 404.
    for token in [&w.stranger.1, &w.other.api_keys.live, &other_user.1] {
        w.call(token, Method::PUT, &format!("{path}/pause"), None)
            .await
            .assert_error(404, "not_found");
    }
    for token in [&w.stranger.1, &other_user.1] {
        w.call(
            token,
            Method::PUT,
            &format!("/api/v1/subscriptions/auth/{id}/resume"),
            None,
        )
        .await
        .assert_error(404, "not_found");
        w.call(
            token,
            Method::DELETE,
            &format!("/api/v1/subscriptions/auth/{id}"),
            None,
        )
        .await
        .assert_error(404, "not_found");
    }
    // The admin key pauses it.
    w.admin(Method::PUT, &format!("{path}/pause"), None)
        .await
        .assert_status(200);
    assert_eq!(w.subscription(&id).await["status"], "paused");
    w.ledger_verifies().await;
}

#[tokio::test]
async fn pause_skips_renewals_and_paused_until_resumes_with_a_new_period() {
    let w = world().await;
    let contract = w.contract(&w.buyer.0, true).await;
    w.top_up(&w.buyer.0, 100.0).await;
    let created = w
        .subscribe(&w.buyer.1, &contract, Some(json!({"cycle": "weekly"})))
        .await
        .assert_status(201)
        .json_value();
    let id = created["id"].as_str().unwrap().to_owned();
    let start = at(created["startDate"].as_str().unwrap());
    assert_eq!(next_renewal(&created), days(start, 7));

    let until = days(start, 17);
    let paused = w
        .admin(
            Method::PUT,
            &format!("/api/v1/subscriptions/{id}/pause"),
            Some(json!({"pausedUntil": until.to_rfc3339()})),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(paused["pausedUntil"], until.to_rfc3339().as_str());

    // The week-1 and week-2 renewals fall in the pause: nothing is charged.
    assert_eq!(w.run(days(start, 7)).await, RenewalReport::default());
    assert_eq!(w.run(days(start, 14)).await, RenewalReport::default());
    assert_eq!(w.subscription(&id).await["cyclesCharged"], 1);
    assert_eq!(w.credits(&w.buyer.0).await, 79.3);

    // Once pausedUntil has passed, the run resumes it; its paid week ran out during the
    // pause, so a new period starts then and is charged at once.
    let resume_at = days(start, 18);
    let report = w.run(resume_at).await;
    assert_eq!((report.resumed, report.charged), (1, 1), "{report:?}");
    let resumed = w.subscription(&id).await;
    assert_eq!(resumed["status"], "active");
    assert_eq!(resumed["isPaused"], false);
    assert_eq!(resumed["pausedUntil"], Value::Null);
    assert_eq!(resumed["cyclesCharged"], 2);
    assert_eq!(next_renewal(&resumed), days(resume_at, 7));
    assert_eq!(w.credits(&w.buyer.0).await, 58.6);
    let events = w.renewal_events(&w.buyer.1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(at(events[0]["start"].as_str().unwrap()), days(resume_at, 7));

    // Weekly from the new anchor.
    assert_eq!(w.run(days(resume_at, 7)).await.charged, 1);
    assert_eq!(w.subscription(&id).await["cyclesCharged"], 3);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn a_failed_renewal_is_recorded_and_retried_on_later_runs() {
    let w = world().await;
    let contract = w.contract(&w.buyer.0, true).await;
    // Exactly one cycle.
    w.top_up(&w.buyer.0, 20.7).await;
    let created = w
        .subscribe(&w.buyer.1, &contract, None)
        .await
        .assert_status(201)
        .json_value();
    let id = created["id"].as_str().unwrap().to_owned();
    let due = after(next_renewal(&created));

    let report = w.run(due).await;
    assert_eq!((report.charged, report.failed), (0, 1), "{report:?}");
    let failed = w.subscription(&id).await;
    assert_eq!(failed["status"], "payment_failed");
    assert_eq!(failed["isActive"], true);
    assert_eq!(failed["failedAttempts"], 1);
    assert_eq!(failed["lastFailure"], "insufficient_funds");
    assert_eq!(failed["cyclesCharged"], 1);
    assert_eq!(w.credits(&w.buyer.0).await, 0.0);
    // A failed subscription cannot be paused to dodge the charge.
    w.admin(
        Method::PUT,
        &format!("/api/v1/subscriptions/{id}/pause"),
        None,
    )
    .await
    .assert_error(409, "payment_failed");

    // The same run instant again does not retry; a later run does.
    assert_eq!(w.run(due).await, RenewalReport::default());
    let later = due.add(time::Duration::hours(1));
    assert_eq!(w.run(later).await.failed, 1);
    assert_eq!(w.subscription(&id).await["failedAttempts"], 2);

    // Credits arrive: the next run charges the cycle, which keeps its schedule.
    w.top_up(&w.buyer.0, 25.0).await;
    let report = w.run(later.add(time::Duration::hours(1))).await;
    assert_eq!((report.charged, report.failed), (1, 0), "{report:?}");
    let paid = w.subscription(&id).await;
    assert_eq!(paid["status"], "active");
    assert_eq!(paid["failedAttempts"], 0);
    assert_eq!(paid["lastFailure"], Value::Null);
    assert_eq!(paid["cyclesCharged"], 2);
    let start = at(created["startDate"].as_str().unwrap());
    assert_eq!(
        next_renewal(&paid),
        feria_subscriptions::Cycle::Monthly.add(start, 2).unwrap()
    );
    assert_eq!(w.credits(&w.buyer.0).await, 4.3);

    // Each step is an event with the subscription as it was then, in order.
    w.admin(
        Method::PUT,
        &format!("/api/v1/subscriptions/{id}/pause"),
        None,
    )
    .await
    .assert_status(200);
    w.call(
        &w.buyer.1,
        Method::PUT,
        &format!("/api/v1/subscriptions/auth/{id}/resume"),
        None,
    )
    .await
    .assert_status(200);
    w.call(
        &w.buyer.1,
        Method::DELETE,
        &format!("/api/v1/subscriptions/auth/{id}"),
        None,
    )
    .await
    .assert_status(200);
    let log = w
        .app
        .get_as(&w.acme.api_keys.live, "/api/v1/events?limit=1000")
        .await
        .assert_status(200)
        .json_value();
    let steps: Vec<(String, String)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"].as_str().unwrap().starts_with("subscription."))
        .map(|event| {
            assert_eq!(event["data"]["object"]["id"], id.as_str(), "{event}");
            (
                event["type"].as_str().unwrap().to_owned(),
                event["data"]["object"]["status"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let expected = [
        ("subscription.created", "active"),
        ("subscription.payment_failed", "payment_failed"),
        ("subscription.payment_failed", "payment_failed"),
        ("subscription.renewed", "active"),
        ("subscription.paused", "paused"),
        ("subscription.resumed", "active"),
        ("subscription.ended", "ended"),
    ]
    .map(|(t, s)| (t.to_owned(), s.to_owned()));
    assert_eq!(steps, expected);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn an_end_date_ends_the_subscription_and_clears_the_calendar() {
    let w = world().await;
    let contract = w.contract(&w.buyer.0, true).await;
    w.top_up(&w.buyer.0, 100.0).await;
    let end = days(Timestamp::now(), 10);
    let created = w
        .subscribe(
            &w.buyer.1,
            &contract,
            Some(json!({"cycle": "weekly", "endDate": end.to_rfc3339()})),
        )
        .await
        .assert_status(201)
        .json_value();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["ended"], end.to_rfc3339().as_str());
    assert_eq!(created["isActive"], true);
    let week = after(next_renewal(&created));

    // Week 2 starts before the end: charged.
    assert_eq!(w.run(week).await.charged, 1);
    // Week 3 would start after the end: the run ends it instead.
    let report = w.run(days(week, 7)).await;
    assert_eq!((report.charged, report.ended), (0, 1), "{report:?}");
    let ended = w.subscription(&id).await;
    assert_eq!(ended["status"], "ended");
    assert_eq!(ended["isActive"], false);
    assert_eq!(ended["ended"], end.to_rfc3339().as_str());
    assert_eq!(ended["cyclesCharged"], 2);
    assert!(w.renewal_events(&w.buyer.1).await.is_empty());
    assert_eq!(w.run(days(week, 30)).await, RenewalReport::default());
    assert_eq!(w.credits(&w.buyer.0).await, 58.6);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn mrr_and_arr_come_from_running_subscriptions() {
    let w = world().await;
    w.top_up(&w.buyer.0, 200.0).await;
    let monthly = w.contract(&w.buyer.0, true).await;
    let weekly = w.contract(&w.buyer.0, true).await;
    let yearly = w.contract(&w.buyer.0, true).await;
    for (contract, cycle) in [
        (&monthly, "monthly"),
        (&weekly, "weekly"),
        (&yearly, "yearly"),
    ] {
        w.subscribe(&w.buyer.1, contract, Some(json!({"cycle": cycle})))
            .await
            .assert_status(201);
    }
    let metrics = w
        .admin(Method::GET, "/api/v1/transactions/metrics", None)
        .await
        .assert_status(200)
        .json_value();
    // 20.70 + 20.70 × 52 / 12 (89.70) + 20.70 / 12 (1.725) = 112.125 → 112.13.
    assert_eq!(metrics["mrr"][0]["currency"], "usd");
    assert_eq!(metrics["mrr"][0]["amount"], 112.13);
    assert_eq!(metrics["mrr"][0]["count"], 3);
    assert_eq!(metrics["arr"][0]["amount"], 1345.56);

    // A paused subscription brings nothing.
    let listed = w
        .app
        .get_as(
            &w.buyer.1,
            &format!("/api/v1/subscriptions/user/{}", w.buyer.0),
        )
        .await
        .assert_status(200)
        .json_value();
    let weekly_id = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["cycle"] == "weekly")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.admin(
        Method::PUT,
        &format!("/api/v1/subscriptions/{weekly_id}/pause"),
        None,
    )
    .await
    .assert_status(200);
    let metrics = w
        .admin(Method::GET, "/api/v1/transactions/metrics", None)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(metrics["mrr"][0]["amount"], 22.43);
    assert_eq!(metrics["mrr"][0]["count"], 2);
    // Another platform has none.
    let theirs = w
        .app
        .get_as(&w.other.api_keys.live, "/api/v1/transactions/metrics")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(theirs["mrr"], json!([]));
    w.ledger_verifies().await;
}

/// Subscriptions for the concurrency tests: `count` contracts of one buyer, each
/// subscribed monthly. Returns the ids and the first renewal instant (the latest of them).
async fn many(w: &World, count: usize) -> (Vec<String>, Timestamp) {
    w.top_up(&w.buyer.0, 1000.0).await;
    let mut ids = Vec::new();
    let mut due = Timestamp::now();
    for _ in 0..count {
        let contract = w.contract(&w.buyer.0, true).await;
        let created = w
            .subscribe(&w.buyer.1, &contract, None)
            .await
            .assert_status(201)
            .json_value();
        due = due.max(after(next_renewal(&created)));
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    (ids, due)
}

async fn charged_cycles(w: &World, ids: &[String]) -> Vec<i64> {
    let mut cycles = Vec::new();
    for id in ids {
        cycles.push(w.subscription(id).await["cyclesCharged"].as_i64().unwrap());
    }
    cycles
}

#[tokio::test]
async fn concurrent_runs_in_one_process_charge_each_cycle_once() {
    let w = world().await;
    let (ids, due) = many(&w, 6).await;
    let db = w.app.db().clone();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { run_due_renewals(&db, due).await.unwrap() })
        })
        .collect();
    let mut charged = 0;
    for run in runs {
        let report = run.await.unwrap();
        assert_eq!(report.errors, 0, "{report:?}");
        charged += report.charged;
    }
    assert_eq!(charged, 6);
    assert_eq!(charged_cycles(&w, &ids).await, vec![2; 6]);
    // 1000 − 12 × 20.70
    assert_eq!(w.credits(&w.buyer.0).await, 751.6);
    w.ledger_verifies().await;
}

#[tokio::test]
async fn two_servers_on_one_database_charge_each_cycle_once() {
    let w = world().await;
    let (ids, due) = many(&w, 6).await;
    // Two pools on the same database: two server processes as far as the database can
    // tell (on PostgreSQL, separate sessions leasing with SKIP LOCKED; on SQLite, two
    // connections serialised by the write lock).
    let first = Db::connect(&DbConfig::new(w.app.database_url()))
        .await
        .unwrap();
    let second = Db::connect(&DbConfig::new(w.app.database_url()))
        .await
        .unwrap();
    for cycle in 0..2 {
        let now = feria_subscriptions::Cycle::Monthly.add(due, cycle).unwrap();
        let (a, b) = tokio::join!(
            run_due_renewals(&first, now),
            run_due_renewals(&second, now)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.errors + b.errors, 0, "{a:?} {b:?}");
        assert_eq!(a.charged + b.charged, 6, "cycle {cycle}: {a:?} {b:?}");
    }
    assert_eq!(charged_cycles(&w, &ids).await, vec![3; 6]);
    // 1000 − 18 × 20.70
    assert_eq!(w.credits(&w.buyer.0).await, 627.4);
    // One charge row per (subscription, cycle): the unique key held.
    let mut conn = w.app.db().conn().await.unwrap();
    let verification = feria_billing::ledger::verify(&mut conn).await.unwrap();
    assert!(verification.is_ok(), "ledger: {verification:?}");
    first.close();
    second.close();
}

#[tokio::test]
async fn the_servers_own_worker_runs_renewals() {
    // A server whose worker runs every second: a pause that ends two seconds from now is
    // lifted by the worker, with no test code calling the renewal function.
    let w = world_with_worker(Some(std::time::Duration::from_secs(1))).await;
    let contract = w.contract(&w.buyer.0, true).await;
    w.top_up(&w.buyer.0, 50.0).await;
    let id = w
        .subscribe(&w.buyer.1, &contract, None)
        .await
        .assert_status(201)
        .json_value()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let until = Timestamp::now().add(time::Duration::seconds(2));
    w.admin(
        Method::PUT,
        &format!("/api/v1/subscriptions/{id}/pause"),
        Some(json!({"pausedUntil": until.to_rfc3339()})),
    )
    .await
    .assert_status(200);
    let mut status = String::new();
    for _ in 0..50 {
        status = w.subscription(&id).await["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status == "active" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        status, "active",
        "the worker did not resume the subscription"
    );
    // Its paid month was still running: nothing more was charged.
    assert_eq!(w.subscription(&id).await["cyclesCharged"], 1);
    assert_eq!(w.credits(&w.buyer.0).await, 29.3);
    w.ledger_verifies().await;
}
