//! Calendars through real HTTP: availability rules and their validation, free slots
//! across a daylight-saving change, events (exclusive overlaps, also concurrent;
//! subscription events; other users' events), local time, and the `.ics` feed read back
//! by an iCalendar parser.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_kernel::{Mode, Tenant, Timestamp};
use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse};
use serde_json::{Value, json};

/// Signs a user in (live mode); returns (access token, user id).
async fn user(app: &TestApp, platform: &CreatedPlatform, email: &str) -> (String, String) {
    let session = app
        .sign_in(platform.platform.id.as_str(), email, "live")
        .await;
    (
        session["access_token"].as_str().unwrap().to_owned(),
        session["user"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn delete_as(app: &TestApp, token: &str, path: &str) -> TestResponse {
    app.send(app.request(Method::DELETE, path).bearer_auth(token))
        .await
}

/// The fields named in a 422's details.
fn fields(response: &TestResponse) -> Vec<String> {
    response
        .assert_error(422, "validation_failed")
        .details
        .into_iter()
        .map(|d| d.field)
        .collect()
}

fn weekdays(start: &str, end: &str) -> Vec<Value> {
    ["monday", "tuesday", "wednesday", "thursday", "friday"]
        .iter()
        .map(|day| json!({"type": "weekly", "weekday": day, "start": start, "end": end}))
        .collect()
}

fn slots(view: &Value) -> Vec<(String, String)> {
    view["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["start"].as_str().unwrap().to_owned(),
                s["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(start: &str, end: &str) -> (String, String) {
    (start.to_owned(), end.to_owned())
}

#[tokio::test]
async fn a_calendar_is_created_on_first_use_and_its_availability_set_and_modified() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (token, user_id) = user(&app, &acme, "ana@example.com").await;
    app.send_json_as(
        &token,
        Method::PUT,
        "/api/v1/users/auth",
        &json!({"timezone": "Europe/Madrid"}),
    )
    .await
    .assert_status(200);

    // First use: created with the profile's time zone, no rules, no events.
    let fresh = app
        .get_as(&token, "/api/v1/calendars/auth")
        .await
        .assert_status(200)
        .json_value();
    let calendar_id = fresh["id"].as_str().unwrap().to_owned();
    assert!(calendar_id.starts_with("cal_"), "{fresh}");
    assert_eq!(fresh["platform_id"], acme.platform.id.as_str());
    assert_eq!(fresh["user_id"], user_id.as_str());
    assert_eq!(fresh["timezone"], "Europe/Madrid");
    assert_eq!(fresh["availability"], json!([]));
    assert_eq!(fresh["events"], json!([]));
    assert_eq!(fresh["googleCalendarIds"], json!([]));

    // POST sets the full availability (and the descriptive fields given).
    let mut rules = weekdays("09:00", "17:00");
    rules.push(json!({"type": "extra", "date": "2026-03-07", "start": "10:00", "end": "12:00"}));
    rules.push(json!({"type": "off", "date": "2026-03-10"}));
    let set = app
        .send_json_as(
            &token,
            Method::POST,
            "/api/v1/calendars/auth/availability",
            &json!({
                "timezone": "america/new_york",
                "name": "Work Schedule",
                "description": "This calendar contains the user's work schedule.",
                "googleCalendarIds": ["google_cal_1", "google_cal_2"],
                "availability": rules,
            }),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(set["id"], calendar_id.as_str(), "one calendar per user");
    assert_eq!(set["timezone"], "America/New_York", "canonical IANA name");
    assert_eq!(set["name"], "Work Schedule");
    assert_eq!(
        set["googleCalendarIds"],
        json!(["google_cal_1", "google_cal_2"])
    );
    let availability = set["availability"].as_array().unwrap();
    assert_eq!(availability.len(), 7);
    assert!(
        availability[0]["id"]
            .as_str()
            .unwrap()
            .starts_with("avail_")
    );
    assert_eq!(
        availability[0],
        json!({"id": availability[0]["id"], "type": "weekly", "weekday": "monday", "date": null, "start": "09:00", "end": "17:00"})
    );
    assert_eq!(availability[6]["type"], "off");
    assert_eq!(availability[6]["date"], "2026-03-10");
    assert_eq!(availability[6]["start"], Value::Null);

    // PUT changes only what it names.
    let renamed = app
        .send_json_as(
            &token,
            Method::PUT,
            "/api/v1/calendars/auth/availability",
            &json!({"name": "Consulting"}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(renamed["name"], "Consulting");
    assert_eq!(renamed["availability"].as_array().unwrap().len(), 7);
    assert_eq!(renamed["timezone"], "America/New_York");
    let replaced = app
        .send_json_as(
            &token,
            Method::PUT,
            "/api/v1/calendars/auth/availability",
            &json!({"availability": [{"type": "weekly", "weekday": "saturday", "start": "08:00", "end": "24:00"}]}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(replaced["availability"].as_array().unwrap().len(), 1);
    assert_eq!(replaced["availability"][0]["end"], "24:00");
    assert_eq!(
        replaced["description"],
        "This calendar contains the user's work schedule."
    );

    // GET shows the same; POST without rules clears them.
    let read = app
        .get_as(&token, "/api/v1/calendars/auth")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(read["availability"], replaced["availability"]);
    let cleared = app
        .send_json_as(
            &token,
            Method::POST,
            "/api/v1/calendars/auth/availability",
            &json!({}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(cleared["availability"], json!([]));
    assert_eq!(cleared["name"], "Consulting");
}

#[tokio::test]
async fn invalid_availability_is_refused_naming_each_field() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (token, _) = user(&app, &acme, "ana@example.com").await;
    let post = |body: Value| {
        let token = token.clone();
        let app = &app;
        async move {
            app.send_json_as(
                &token,
                Method::POST,
                "/api/v1/calendars/auth/availability",
                &body,
            )
            .await
        }
    };

    let response = post(json!({"availability": [
        {"type": "weekly", "weekday": "monday", "start": "17:00", "end": "09:00"},
        {"type": "weekly", "start": "09:00", "end": "10:00"},
        {"type": "extra", "date": "2026-02-30", "start": "09:00", "end": "10:00"},
        {"type": "weekly", "weekday": "friday", "start": "9am", "end": "25:00"},
    ]}))
    .await;
    assert_eq!(
        fields(&response),
        vec![
            "availability[0].end",
            "availability[1].weekday",
            "availability[2].date",
            "availability[3].end",
            "availability[3].start",
        ]
    );

    // Overlapping rules.
    let response = post(json!({"availability": [
        {"type": "weekly", "weekday": "monday", "start": "09:00", "end": "12:00"},
        {"type": "weekly", "weekday": "monday", "start": "11:30", "end": "14:00"},
    ]}))
    .await;
    let error = response.assert_error(422, "validation_failed");
    assert_eq!(error.details[0].field, "availability[1]");
    assert!(
        error.details[0]
            .message
            .contains("overlaps availability[0]"),
        "{error:?}"
    );
    let response = post(json!({"availability": [
        {"type": "off", "date": "2026-03-10"},
        {"type": "extra", "date": "2026-03-10", "start": "10:00", "end": "11:00"},
    ]}))
    .await;
    assert_eq!(fields(&response), vec!["availability[1]"]);

    // Unknown time zones, types and fields.
    for zone in ["Mars/Olympus_Mons", "EST+5", "", "../../etc/passwd"] {
        let response = post(json!({"timezone": zone, "availability": []})).await;
        assert_eq!(fields(&response), vec!["timezone"], "{zone}");
    }
    let response = post(json!({"availability": [{"type": "sometimes"}]})).await;
    assert_eq!(fields(&response), vec!["availability[0].type"]);
    let response = post(json!({"availability": [], "colour": "red"})).await;
    response.assert_error(422, "validation_failed");
    let response = post(json!({"name": ""})).await;
    assert_eq!(fields(&response), vec!["name"]);
    let too_many: Vec<String> = (0..21).map(|i| format!("g{i}")).collect();
    let response = post(json!({"googleCalendarIds": too_many})).await;
    assert_eq!(fields(&response), vec!["googleCalendarIds"]);
    let response = post(json!({"googleCalendarIds": ["ok", "  "]})).await;
    assert_eq!(fields(&response), vec!["googleCalendarIds[1]"]);

    // Nothing was stored by the refused requests.
    let calendar = app
        .get_as(&token, "/api/v1/calendars/auth")
        .await
        .json_value();
    assert_eq!(calendar["availability"], json!([]));
    assert_eq!(calendar["timezone"], "UTC");
}

#[tokio::test]
async fn free_slots_keep_their_local_hours_across_the_dst_change() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (token, user_id) = user(&app, &acme, "ana@example.com").await;
    let mut rules = weekdays("09:00", "17:00");
    rules.push(json!({"type": "extra", "date": "2026-03-07", "start": "10:00", "end": "12:00"}));
    rules.push(json!({"type": "off", "date": "2026-03-10"}));
    // Spring forward: 02:00–03:00 does not exist on 8 March 2026.
    rules.push(json!({"type": "weekly", "weekday": "sunday", "start": "01:00", "end": "04:00"}));
    app.send_json_as(
        &token,
        Method::POST,
        "/api/v1/calendars/auth/availability",
        &json!({"timezone": "America/New_York", "availability": rules}),
    )
    .await
    .assert_status(200);
    // A meeting on Monday 10:00–11:00 EDT is subtracted.
    app.send_json_as(
        &token,
        Method::POST,
        "/api/v1/calendars/auth/event",
        &json!({"title": "Meeting", "start": "2026-03-09T14:00:00Z", "end": "2026-03-09T15:00:00Z"}),
    )
    .await
    .assert_status(201);

    // Another signed-in user of the platform books against it; so may the API key.
    let (bo, _) = user(&app, &acme, "bo@example.com").await;
    let path = format!(
        "/api/v1/calendars/user/{user_id}/availability?from=2026-03-05T00:00:00Z&to=2026-03-12T00:00:00Z"
    );
    let view = app.get_as(&bo, &path).await.assert_status(200).json_value();
    assert_eq!(view["timezone"], "America/New_York");
    assert_eq!(view["from"], "2026-03-05T00:00:00Z");
    assert_eq!(view["to"], "2026-03-12T00:00:00Z");
    assert_eq!(view["availability"].as_array().unwrap().len(), 8);
    assert_eq!(
        slots(&view),
        vec![
            // Thursday and Friday: EST, UTC-5.
            pair("2026-03-05T14:00:00Z", "2026-03-05T22:00:00Z"),
            pair("2026-03-06T14:00:00Z", "2026-03-06T22:00:00Z"),
            // Saturday's extra hours, 10:00–12:00 EST.
            pair("2026-03-07T15:00:00Z", "2026-03-07T17:00:00Z"),
            // Sunday 01:00–04:00 local is two real hours: 01:00 EST to 04:00 EDT.
            pair("2026-03-08T06:00:00Z", "2026-03-08T08:00:00Z"),
            // Monday: EDT, UTC-4, minus the meeting.
            pair("2026-03-09T13:00:00Z", "2026-03-09T14:00:00Z"),
            pair("2026-03-09T15:00:00Z", "2026-03-09T21:00:00Z"),
            // Tuesday is off; Wednesday is EDT.
            pair("2026-03-11T13:00:00Z", "2026-03-11T21:00:00Z"),
        ]
    );
    let by_key = app
        .get_as(&acme.api_keys.live, &path)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(by_key["slots"], view["slots"]);

    // The same local hour on both sides of the change, with different UTC offsets.
    for (slot, offset) in [
        ("2026-03-06T14:00:00Z", "-05:00"),
        ("2026-03-09T13:00:00Z", "-04:00"),
        ("2026-03-11T13:00:00Z", "-04:00"),
    ] {
        let local = app
            .get_as(
                &bo,
                &format!("/api/v1/calendar/localtime?date={slot}&timezone=America/New_York"),
            )
            .await
            .assert_status(200)
            .json_value();
        assert_eq!(local["localTime"], "09:00:00", "{local}");
        assert_eq!(local["offset"], offset, "{local}");
    }

    // The range is clipped: slots start at `from` and end at `to`.
    let clipped = app
        .get_as(
            &bo,
            &format!(
                "/api/v1/calendars/user/{user_id}/availability?from=2026-03-05T16:30:00Z&to=2026-03-06T15:00:00Z"
            ),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        slots(&clipped),
        vec![
            pair("2026-03-05T16:30:00Z", "2026-03-05T22:00:00Z"),
            pair("2026-03-06T14:00:00Z", "2026-03-06T15:00:00Z"),
        ]
    );
}

#[tokio::test]
async fn the_availability_range_is_checked_and_scoped_to_the_platform() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (token, user_id) = user(&app, &acme, "ana@example.com").await;
    let base = format!("/api/v1/calendars/user/{user_id}/availability");

    // Defaults: from now, seven days. A user without a calendar has no slots, and the
    // read creates nothing.
    let view = app
        .get_as(&token, &base)
        .await
        .assert_status(200)
        .json_value();
    let from = Timestamp::parse(view["from"].as_str().unwrap()).unwrap();
    let to = Timestamp::parse(view["to"].as_str().unwrap()).unwrap();
    assert_eq!(to.since(from), time::Duration::days(7));
    assert_eq!(view["slots"], json!([]));
    assert_eq!(view["timezone"], "UTC");

    for (query, field) in [
        ("?from=2026-03-10T00:00:00Z&to=2026-03-09T00:00:00Z", "to"),
        ("?from=2026-03-10T00:00:00Z&to=2026-03-10T00:00:00Z", "to"),
        ("?from=2026-01-01T00:00:00Z&to=2026-03-05T00:00:01Z", "to"),
        ("?from=yesterday", "from"),
        ("?from=2026-03-10T00:00:00Z&to=2026-03-11", "to"),
    ] {
        let response = app.get_as(&token, &format!("{base}{query}")).await;
        assert_eq!(fields(&response), vec![field], "{query}");
    }
    // Exactly 62 days is allowed.
    app.get_as(
        &token,
        &format!("{base}?from=2026-01-01T00:00:00Z&to=2026-03-04T00:00:00Z"),
    )
    .await
    .assert_status(200);

    app.get(&base).await.assert_error(401, "unauthorized");
    app.get_as(
        &token,
        "/api/v1/calendars/user/user_01HZX6FQJ5N6E7T2M3A4B5C6D7/availability",
    )
    .await
    .assert_error(404, "not_found");
    app.get_as(&token, "/api/v1/calendars/user/garbage/availability")
        .await
        .assert_error(404, "not_found");
    let other = app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    app.get_as(&other.api_keys.live, &base)
        .await
        .assert_error(404, "not_found");
    app.get_as(&acme.api_keys.test, &base)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn events_are_added_read_changed_and_removed() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (token, _) = user(&app, &acme, "ana@example.com").await;
    app.send_json_as(
        &token,
        Method::POST,
        "/api/v1/calendars/auth/availability",
        &json!({"timezone": "Europe/Madrid"}),
    )
    .await
    .assert_status(200);

    let created = app
        .send_json_as(
            &token,
            Method::POST,
            "/api/v1/calendars/auth/event",
            &json!({
                "title": "  Yoga  ",
                "description": "Bring a mat",
                "start": "2026-04-01T08:00:00.750Z",
                "end": "2026-04-01T09:00:00+00:00",
                "contract_id": "inv_01hzx6fqj5n6e7t2m3a4b5c6d7"
            }),
        )
        .await
        .assert_status(201)
        .json_value();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("cevt_"), "{created}");
    assert_eq!(created["title"], "Yoga");
    assert_eq!(created["start"], "2026-04-01T08:00:00Z");
    assert_eq!(created["end"], "2026-04-01T09:00:00Z");
    assert_eq!(created["timezone"], "Europe/Madrid", "the calendar's zone");
    assert_eq!(created["kind"], "custom");
    assert_eq!(created["exclusive"], false);
    assert_eq!(created["contract_id"], "inv_01HZX6FQJ5N6E7T2M3A4B5C6D7");
    assert_eq!(created["subscription_id"], Value::Null);

    let path = format!("/api/v1/calendars/auth/event/{id}");
    assert_eq!(
        app.get_as(&token, &path)
            .await
            .assert_status(200)
            .json_value(),
        created
    );
    let changed = app
        .send_json_as(
            &token,
            Method::PUT,
            &path,
            &json!({"title": "Yoga (moved)", "start": "2026-04-01T10:00:00Z", "end": "2026-04-01T11:00:00Z", "timezone": "Asia/Tokyo", "description": "", "contract_id": ""}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(changed["title"], "Yoga (moved)");
    assert_eq!(changed["start"], "2026-04-01T10:00:00Z");
    assert_eq!(changed["timezone"], "Asia/Tokyo");
    assert_eq!(changed["description"], Value::Null);
    assert_eq!(changed["contract_id"], Value::Null);

    // The calendar lists its events by start; `from`/`to` filter them.
    app.send_json_as(
        &token,
        Method::POST,
        "/api/v1/calendars/auth/event",
        &json!({"title": "Early", "start": "2026-03-01T08:00:00Z", "end": "2026-03-01T09:00:00Z"}),
    )
    .await
    .assert_status(201);
    let calendar = app
        .get_as(&token, "/api/v1/calendars/auth")
        .await
        .json_value();
    let titles: Vec<&str> = calendar["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["Early", "Yoga (moved)"]);
    let april = app
        .get_as(&token, "/api/v1/calendars/auth?from=2026-03-15T00:00:00Z")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(april["events"].as_array().unwrap().len(), 1);
    let response = app.get_as(&token, "/api/v1/calendars/auth?to=soon").await;
    assert_eq!(fields(&response), vec!["to"]);

    // Removed: gone.
    delete_as(&app, &token, &path).await.assert_status(204);
    app.get_as(&token, &path)
        .await
        .assert_error(404, "not_found");
    delete_as(&app, &token, &path)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn invalid_events_are_refused_naming_each_field() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (token, _) = user(&app, &acme, "ana@example.com").await;
    let post = |body: Value| {
        let token = token.clone();
        let app = &app;
        async move {
            app.send_json_as(&token, Method::POST, "/api/v1/calendars/auth/event", &body)
                .await
        }
    };
    let valid =
        json!({"title": "Call", "start": "2026-04-01T08:00:00Z", "end": "2026-04-01T09:00:00Z"});
    let with = |extra: Value| {
        let mut body = valid.clone();
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };

    let cases = [
        (json!({"end": "2026-04-01T08:00:00Z"}), "end"),
        (json!({"end": "2026-04-01T07:00:00Z"}), "end"),
        (json!({"timezone": "Atlantis/Capital"}), "timezone"),
        (json!({"title": "   "}), "title"),
        (json!({"title": ""}), "title"),
        (json!({"kind": "subscription"}), "kind"),
        (json!({"kind": "meeting"}), "kind"),
        (
            json!({"contract_id": "user_01HZX6FQJ5N6E7T2M3A4B5C6D7"}),
            "contract_id",
        ),
        (json!({"subscription_id": "subs_nope"}), "subscription_id"),
        (json!({"start": "tomorrow"}), "start"),
    ];
    for (extra, field) in cases {
        let response = post(with(extra.clone())).await;
        assert_eq!(fields(&response), vec![field], "{extra}");
    }
    post(with(json!({"colour": "red"})))
        .await
        .assert_error(422, "validation_failed");
    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("end");
    post(missing).await.assert_error(422, "validation_failed");

    let event = post(valid.clone()).await.assert_status(201).json_value();
    let path = format!(
        "/api/v1/calendars/auth/event/{}",
        event["id"].as_str().unwrap()
    );
    let response = app
        .send_json_as(
            &token,
            Method::PUT,
            &path,
            &json!({"end": "2026-04-01T07:00:00Z"}),
        )
        .await;
    assert_eq!(fields(&response), vec!["end"]);
    let response = app
        .send_json_as(&token, Method::PUT, &path, &json!({"timezone": "Nowhere"}))
        .await;
    assert_eq!(fields(&response), vec!["timezone"]);
    app.send_json_as(&token, Method::PUT, &path, &json!({"kind": "subscription"}))
        .await
        .assert_error(422, "validation_failed");
}

#[tokio::test]
async fn exclusive_events_never_overlap_each_other() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (token, _) = user(&app, &acme, "ana@example.com").await;
    let add = |title: &str, start: &str, end: &str, exclusive: bool| {
        let body = json!({"title": title, "start": start, "end": end, "exclusive": exclusive});
        let token = token.clone();
        let app = &app;
        async move {
            app.send_json_as(&token, Method::POST, "/api/v1/calendars/auth/event", &body)
                .await
        }
    };
    let first = add("A", "2026-04-01T10:00:00Z", "2026-04-01T11:00:00Z", true)
        .await
        .assert_status(201)
        .json_value();
    let clash = add("B", "2026-04-01T10:30:00Z", "2026-04-01T11:30:00Z", true).await;
    let error = clash.assert_error(409, "event_overlap");
    assert!(
        error.message.contains(first["id"].as_str().unwrap()),
        "{error:?}"
    );
    add(
        "inside",
        "2026-04-01T10:15:00Z",
        "2026-04-01T10:45:00Z",
        true,
    )
    .await
    .assert_error(409, "event_overlap");
    add(
        "around",
        "2026-04-01T09:00:00Z",
        "2026-04-01T12:00:00Z",
        true,
    )
    .await
    .assert_error(409, "event_overlap");
    // Non-exclusive events may overlap anything; touching is not overlapping.
    let loose = add("C", "2026-04-01T10:30:00Z", "2026-04-01T11:30:00Z", false)
        .await
        .assert_status(201)
        .json_value();
    let next = add("D", "2026-04-01T11:00:00Z", "2026-04-01T12:00:00Z", true)
        .await
        .assert_status(201)
        .json_value();

    // Changes are checked too, against every exclusive event but the one changed.
    let next_path = format!(
        "/api/v1/calendars/auth/event/{}",
        next["id"].as_str().unwrap()
    );
    app.send_json_as(
        &token,
        Method::PUT,
        &next_path,
        &json!({"start": "2026-04-01T10:45:00Z"}),
    )
    .await
    .assert_error(409, "event_overlap");
    app.send_json_as(
        &token,
        Method::PUT,
        &next_path,
        &json!({"start": "2026-04-01T11:00:00Z", "end": "2026-04-01T12:30:00Z"}),
    )
    .await
    .assert_status(200);
    let loose_path = format!(
        "/api/v1/calendars/auth/event/{}",
        loose["id"].as_str().unwrap()
    );
    app.send_json_as(
        &token,
        Method::PUT,
        &loose_path,
        &json!({"exclusive": true}),
    )
    .await
    .assert_error(409, "event_overlap");

    // Another user's exclusive events are theirs alone.
    let (bo, _) = user(&app, &acme, "bo@example.com").await;
    app.send_json_as(
        &bo,
        Method::POST,
        "/api/v1/calendars/auth/event",
        &json!({"title": "Bo", "start": "2026-04-01T10:00:00Z", "end": "2026-04-01T11:00:00Z", "exclusive": true}),
    )
    .await
    .assert_status(201);
}

/// Sends `count` overlapping exclusive events for `day` at once; returns how many were
/// created (the others must be `event_overlap`).
async fn race_exclusive_events(app: &TestApp, token: &str, day: &str, count: usize) -> usize {
    let bodies: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "title": format!("Slot {i}"),
                "start": format!("{day}T10:{:02}:00Z", i * 3),
                "end": format!("{day}T11:00:00Z"),
                "exclusive": true
            })
        })
        .collect();
    let requests = bodies
        .iter()
        .map(|body| app.send_json_as(token, Method::POST, "/api/v1/calendars/auth/event", body));
    let responses = futures_util::future::join_all(requests).await;
    let mut created = 0;
    for response in &responses {
        match response.status.as_u16() {
            201 => created += 1,
            _ => {
                response.assert_error(409, "event_overlap");
            }
        }
    }
    created
}

#[tokio::test]
async fn concurrent_exclusive_events_let_exactly_one_through() {
    let app = TestApp::builder()
        .config(|c| c.workers = Some(2))
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let (token, _) = user(&app, &acme, "ana@example.com").await;
    // The calendar does not exist yet: its creation on first use races too.
    assert_eq!(
        race_exclusive_events(&app, &token, "2026-05-01", 8).await,
        1,
        "exactly one exclusive event wins on a new calendar"
    );
    // On an existing calendar, several rounds.
    for day in ["2026-05-02", "2026-05-03", "2026-05-04", "2026-05-05"] {
        assert_eq!(
            race_exclusive_events(&app, &token, day, 16).await,
            1,
            "exactly one exclusive event wins on {day}"
        );
    }
    let calendar = app
        .get_as(&token, "/api/v1/calendars/auth")
        .await
        .json_value();
    assert_eq!(calendar["events"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn other_users_events_are_not_found() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (ana, _) = user(&app, &acme, "ana@example.com").await;
    let (bo, _) = user(&app, &acme, "bo@example.com").await;
    let event = app
        .send_json_as(
            &ana,
            Method::POST,
            "/api/v1/calendars/auth/event",
            &json!({"title": "Private", "start": "2026-04-01T08:00:00Z", "end": "2026-04-01T09:00:00Z"}),
        )
        .await
        .assert_status(201)
        .json_value();
    let path = format!(
        "/api/v1/calendars/auth/event/{}",
        event["id"].as_str().unwrap()
    );

    // Bo has no calendar yet, then has one: ana's event is not found either way.
    app.get_as(&bo, &path).await.assert_error(404, "not_found");
    app.get_as(&bo, "/api/v1/calendars/auth")
        .await
        .assert_status(200);
    app.get_as(&bo, &path).await.assert_error(404, "not_found");
    app.send_json_as(&bo, Method::PUT, &path, &json!({"title": "Mine now"}))
        .await
        .assert_error(404, "not_found");
    delete_as(&app, &bo, &path)
        .await
        .assert_error(404, "not_found");
    app.get_as(&bo, "/api/v1/calendars/auth/event/garbage")
        .await
        .assert_error(404, "not_found");
    app.get_as(
        &bo,
        "/api/v1/calendars/auth/event/cevt_01HZX6FQJ5N6E7T2M3A4B5C6D7",
    )
    .await
    .assert_error(404, "not_found");

    // Untouched.
    let still = app
        .get_as(&ana, &path)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(still["title"], "Private");
    let bo_calendar = app.get_as(&bo, "/api/v1/calendars/auth").await.json_value();
    assert_eq!(bo_calendar["events"], json!([]));
}

#[tokio::test]
async fn subscription_events_cannot_be_changed_or_removed_by_the_user() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (token, user_id) = user(&app, &acme, "ana@example.com").await;
    let tenant = Tenant::new(acme.platform.id.clone(), Mode::Live);
    let subscription = "subs_01HZX6FQJ5N6E7T2M3A4B5C6D7";
    let mut conn = app.db().conn().await.unwrap();
    let event = feria_calendar::entries::add_subscription_event(
        &mut conn,
        &tenant,
        &user_id.parse().unwrap(),
        feria_calendar::NewSubscriptionEvent {
            title: "Weekly coaching".into(),
            description: None,
            start: Timestamp::parse("2026-04-02T15:00:00Z").unwrap(),
            end: Timestamp::parse("2026-04-02T16:00:00Z").unwrap(),
            timezone: Some("Europe/Paris".into()),
            subscription_id: subscription.into(),
            contract_id: None,
            exclusive: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(event.kind, feria_calendar::EventKind::Subscription);

    let path = format!("/api/v1/calendars/auth/event/{}", event.id);
    let shown = app
        .get_as(&token, &path)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(shown["kind"], "subscription");
    assert_eq!(shown["subscription_id"], subscription);
    delete_as(&app, &token, &path)
        .await
        .assert_error(409, "subscription_event_locked");
    app.send_json_as(&token, Method::PUT, &path, &json!({"title": "Skip it"}))
        .await
        .assert_error(409, "subscription_event_locked");
    // It is exclusive: the user's own exclusive events cannot take its place.
    app.send_json_as(
        &token,
        Method::POST,
        "/api/v1/calendars/auth/event",
        &json!({"title": "Dentist", "start": "2026-04-02T15:30:00Z", "end": "2026-04-02T16:30:00Z", "exclusive": true}),
    )
    .await
    .assert_error(409, "event_overlap");
    app.get_as(&token, &path).await.assert_status(200);

    // The subscription's end removes it (the id is matched however it is cased).
    let removed = feria_calendar::entries::remove_subscription_events(
        &mut conn,
        &tenant,
        &subscription.to_lowercase(),
    )
    .await
    .unwrap();
    assert_eq!(removed, 1);
    app.get_as(&token, &path)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn calendar_routes_need_a_signed_in_user() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let event_path = "/api/v1/calendars/auth/event/cevt_01HZX6FQJ5N6E7T2M3A4B5C6D7";
    // Bodies valid for each route, so that only the credentials are wrong.
    let event =
        json!({"title": "x", "start": "2026-04-01T08:00:00Z", "end": "2026-04-01T09:00:00Z"});
    let availability = json!({"availability": []});
    let none = json!({});
    let key = &acme.api_keys.live;
    for (method, path, body) in [
        (Method::GET, "/api/v1/calendars/auth", &none),
        (Method::GET, "/api/v1/calendars/auth/ics", &none),
        (
            Method::POST,
            "/api/v1/calendars/auth/availability",
            &availability,
        ),
        (
            Method::PUT,
            "/api/v1/calendars/auth/availability",
            &availability,
        ),
        (Method::POST, "/api/v1/calendars/auth/event", &event),
        (Method::GET, event_path, &none),
        (Method::PUT, event_path, &event),
        (Method::DELETE, event_path, &none),
        (
            Method::GET,
            "/api/v1/calendar/localtime?date=2026-04-01T08:00:00Z",
            &none,
        ),
        (
            Method::GET,
            "/api/v1/calendars/user/user_01HZX6FQJ5N6E7T2M3A4B5C6D7/availability",
            &none,
        ),
    ] {
        let no_session = app.send(app.request(method.clone(), path).json(body)).await;
        no_session.assert_error(401, "unauthorized");
        let bad_token = app
            .send(
                app.request(method.clone(), path)
                    .bearer_auth("fer_at_not_a_real_token")
                    .json(body),
            )
            .await;
        bad_token.assert_error(401, "invalid_credentials");
        if path.starts_with("/api/v1/calendars/auth") {
            app.send(
                app.request(method.clone(), path)
                    .bearer_auth(key)
                    .json(body),
            )
            .await
            .assert_error(403, "api_key_not_allowed");
        }
    }
}

#[tokio::test]
async fn local_time_uses_the_users_zone_or_the_one_given() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (token, _) = user(&app, &acme, "ana@example.com").await;

    // No zone anywhere: UTC.
    let utc = app
        .get_as(
            &token,
            "/api/v1/calendar/localtime?date=2023-06-21T10:00:00Z",
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(utc["timezone"], "UTC");
    assert_eq!(utc["local"], "2023-06-21T10:00:00+00:00");

    // The calendar's zone, then the profile's, which wins.
    app.send_json_as(
        &token,
        Method::POST,
        "/api/v1/calendars/auth/availability",
        &json!({"timezone": "Asia/Kolkata"}),
    )
    .await
    .assert_status(200);
    let calendar_zone = app
        .get_as(
            &token,
            "/api/v1/calendar/localtime?date=2023-06-21T10:00:00Z",
        )
        .await
        .json_value();
    assert_eq!(calendar_zone["local"], "2023-06-21T15:30:00+05:30");
    app.send_json_as(
        &token,
        Method::PUT,
        "/api/v1/users/auth",
        &json!({"timezone": "Europe/Madrid"}),
    )
    .await
    .assert_status(200);
    let madrid = app
        .get_as(
            &token,
            "/api/v1/calendar/localtime?date=2023-06-21T10:00:00Z",
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        madrid,
        json!({
            "date": "2023-06-21T10:00:00Z",
            "timezone": "Europe/Madrid",
            "local": "2023-06-21T12:00:00+02:00",
            "localDate": "2023-06-21",
            "localTime": "12:00:00",
            "weekday": "wednesday",
            "offset": "+02:00",
            "abbreviation": "CEST",
            "dst": true
        })
    );

    // `timezone=` wins over the user's; an API key must name one.
    let new_york = app
        .get_as(
            &token,
            "/api/v1/calendar/localtime?date=2026-11-01T05:30:00Z&timezone=America/New_York",
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(new_york["local"], "2026-11-01T01:30:00-04:00");
    assert_eq!(new_york["abbreviation"], "EDT");
    let after_fall_back = app
        .get_as(
            &acme.api_keys.live,
            "/api/v1/calendar/localtime?date=2026-11-01T06:30:00Z&timezone=America/New_York",
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(after_fall_back["local"], "2026-11-01T01:30:00-05:00");
    assert_eq!(after_fall_back["dst"], false);

    for (query, field) in [
        ("?date=2023-06-21T10:00:00Z&timezone=Mars/Base", "timezone"),
        ("?date=2023-06-21T10:00:00Z&timezone=", "timezone"),
        ("?date=21/06/2023", "date"),
        ("", "date"),
    ] {
        let response = app
            .get_as(&token, &format!("/api/v1/calendar/localtime{query}"))
            .await;
        assert_eq!(fields(&response), vec![field], "{query}");
    }
    let response = app
        .get_as(
            &acme.api_keys.live,
            "/api/v1/calendar/localtime?date=2023-06-21T10:00:00Z",
        )
        .await;
    assert_eq!(fields(&response), vec!["timezone"]);
}

/// RFC 5545 TEXT unescaping, for comparing parsed values with what was sent.
fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn the_ics_feed_is_valid_icalendar_that_parses_back() {
    let (app, acme) = TestApp::spawn_with_platform().await;
    let (token, _) = user(&app, &acme, "ana@example.com").await;
    app.send_json_as(
        &token,
        Method::POST,
        "/api/v1/calendars/auth/availability",
        &json!({"timezone": "America/New_York", "name": "Ana; work, life"}),
    )
    .await
    .assert_status(200);
    let long_title = format!("Planning: {}", "ñandú and café, ".repeat(10).trim_end());
    let events = [
        (
            "Lunch; with Bo, and \\ friends".to_owned(),
            Some("Line one\nLine two, with comma; and semicolon"),
            "2026-03-09T16:00:00Z",
            "2026-03-09T17:00:00Z",
        ),
        (
            long_title.clone(),
            None,
            "2026-03-10T14:00:00Z",
            "2026-03-10T15:30:00Z",
        ),
    ];
    for (title, description, start, end) in &events {
        let mut body = json!({"title": title, "start": start, "end": end, "exclusive": true});
        if let Some(description) = description {
            body["description"] = json!(description);
        }
        app.send_json_as(&token, Method::POST, "/api/v1/calendars/auth/event", &body)
            .await
            .assert_status(201);
    }

    let response = app
        .get_as(&token, "/api/v1/calendars/auth/ics")
        .await
        .assert_status(200);
    assert_eq!(
        response.header("content-type"),
        Some("text/calendar; charset=utf-8")
    );
    assert!(
        response
            .header("content-disposition")
            .unwrap()
            .contains("calendar.ics")
    );
    let text = response.text();

    // Content lines: CRLF everywhere, at most 75 octets, continuations start with a space.
    assert!(text.starts_with("BEGIN:VCALENDAR\r\n"), "{text}");
    assert!(text.ends_with("END:VCALENDAR\r\n"), "{text}");
    let physical: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "bare LF in {text:?}"
    );
    for line in &physical {
        assert!(line.len() <= 75, "{line:?} is {} octets", line.len());
    }
    assert!(
        physical.iter().any(|l| l.starts_with(' ')),
        "the long title is folded"
    );

    // Parsed back by an iCalendar parser.
    let mut parser = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()));
    let calendar = parser.next().expect("one calendar").expect("it parses");
    assert!(parser.next().is_none());
    let property = |props: &[ical::property::Property], name: &str| -> Option<String> {
        props
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
    };
    assert_eq!(
        property(&calendar.properties, "VERSION").as_deref(),
        Some("2.0")
    );
    assert_eq!(
        property(&calendar.properties, "X-WR-CALNAME").map(|v| unescape(&v)),
        Some("Ana; work, life".to_owned())
    );
    assert_eq!(
        property(&calendar.properties, "X-WR-TIMEZONE").as_deref(),
        Some("America/New_York")
    );
    assert_eq!(calendar.events.len(), 2);
    for (parsed, (title, description, start, end)) in calendar.events.iter().zip(&events) {
        let props = &parsed.properties;
        assert_eq!(
            property(props, "SUMMARY").map(|v| unescape(&v)).as_deref(),
            Some(title.as_str())
        );
        assert_eq!(
            property(props, "DESCRIPTION")
                .map(|v| unescape(&v))
                .as_deref(),
            description.as_deref()
        );
        let compact = |s: &str| s.replace(['-', ':'], "");
        assert_eq!(property(props, "DTSTART"), Some(compact(start)));
        assert_eq!(property(props, "DTEND"), Some(compact(end)));
        let uid = property(props, "UID").unwrap();
        assert!(uid.starts_with("cevt_") && uid.ends_with("@feria"), "{uid}");
        assert!(property(props, "DTSTAMP").unwrap().ends_with('Z'));
        assert_eq!(
            property(props, "X-FERIA-EXCLUSIVE").as_deref(),
            Some("TRUE")
        );
        assert_eq!(property(props, "X-FERIA-KIND").as_deref(), Some("custom"));
    }
}
