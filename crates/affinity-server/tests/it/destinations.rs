//! Destinations through the API: validation, secrets never shown, test messages, audiences
//! delivered to a real webhook receiver as Segment Engage messages (treatment members only,
//! signed), a refresh sending only the changes, the delivery log and retries, the `segment`
//! type into a second Affinity, and `file` exports.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::audiences::{live, post};
use crate::catalog::{put_catalog, ready_catalog};
use crate::models::{finished, send_synthetic, synthetic_catalog, train};
use crate::receiver::Receiver;
use crate::support::{ADMIN, TestApp, WRITE_KEY, config, poll_until, problem_fields};

pub const SECRET: &str = "whsec_test";

/// A server whose deliveries retry quickly (the default first backoff is a second).
pub async fn quick_app() -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path());
    config.engine.delivery.initial_backoff = Duration::from_millis(50);
    config.engine.delivery.max_backoff = Duration::from_millis(500);
    TestApp::spawn_configured(dir, config).await
}

pub async fn trained(app: &TestApp) {
    send_synthetic(app, 12_000).await;
    put_catalog(app, &synthetic_catalog()).await;
    ready_catalog(app).await;
    let (_, job) = train(app, json!({})).await;
    let model = finished(app, &job["model_id"]).await;
    assert_eq!(model["status"], "ready", "{model}");
}

pub async fn put(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.send(app.client.put(app.url(path)).bearer_auth(ADMIN).json(&body))
        .await
}

pub async fn webhook(app: &TestApp, receiver: &Receiver, extra: Value) -> Value {
    let mut body = json!({"name": "crm", "type": "webhook", "url": receiver.url, "secret": SECRET});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    let (s, d) = post(app, "/api/v1/destinations", body).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    d
}

/// Treatment and control user ids of an audience.
async fn groups(app: &TestApp, id: &Value) -> (HashSet<String>, HashSet<String>) {
    let (_, page) = app
        .admin_get(&format!("/api/v1/audiences/{id}/members?limit=10000"))
        .await;
    let mut treatment = HashSet::new();
    let mut control = HashSet::new();
    for m in page["members"].as_array().expect("members") {
        let user = m["user_id"].as_str().expect("user").to_string();
        if m["control"] == true {
            control.insert(user);
        } else {
            treatment.insert(user);
        }
    }
    (treatment, control)
}

/// Whom a message is about: its userId, else its anonymousId (as audience members are
/// labelled).
pub fn who(m: &Value) -> String {
    m["userId"]
        .as_str()
        .or(m["anonymousId"].as_str())
        .expect("userId or anonymousId")
        .to_string()
}

/// The Profile key of a member label.
fn profile_key(label: &str) -> String {
    if label.starts_with("anon-") {
        format!("anonymous_id:{label}")
    } else {
        format!("user_id:{label}")
    }
}

/// An export file's text. Read once its messages are recorded delivered: nothing writes it
/// meanwhile, and the blocking read is the test's, not a request's.
#[allow(clippy::disallowed_methods)]
fn read_export(path: std::path::PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every message the receiver accepted (batches unpacked), with its request.
pub fn messages(receiver: &Receiver) -> Vec<Value> {
    receiver
        .accepted()
        .iter()
        .flat_map(|r| {
            let v = r.json();
            match v.get("batch") {
                Some(Value::Array(b)) => b.clone(),
                _ => vec![v],
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_are_validated_listed_tested_and_deleted_without_showing_secrets() {
    let app = quick_app().await;
    let receiver = Receiver::start().await;
    let (s, b) = post(
        &app,
        "/api/v1/destinations",
        json!({"type": "webhook", "url": "ftp://example.com", "batch_size": 0,
               "headers": {"X-Signature": "x"}, "colour": "red"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "invalid_destination");
    assert_eq!(
        problem_fields(&b),
        vec!["colour", "name", "url", "headers.X-Signature", "batch_size"]
    );
    for path in ["/etc/passwd", "../outside.jsonl", "a/../../b.csv"] {
        let (s, b) = post(
            &app,
            "/api/v1/destinations",
            json!({"name": "f", "type": "file", "path": path, "format": "jsonl"}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {b}");
        assert_eq!(problem_fields(&b), vec!["path"]);
    }

    let hook = webhook(
        &app,
        &receiver,
        json!({"headers": {"Authorization": "Bearer very-secret"}}),
    )
    .await;
    assert_eq!(hook["type"], "webhook");
    assert_eq!(hook["secret"], "set");
    assert_eq!(hook["headers"], json!({"Authorization": "set"}));
    assert_eq!(hook["batch_size"], 1);
    let (s, seg) = post(
        &app,
        "/api/v1/destinations",
        json!({"name": "seg", "type": "segment", "write_key": "abcdefgh1234"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{seg}");
    assert_eq!(seg["url"], "https://api.segment.io");
    assert_eq!(seg["write_key"], "abcd…");
    let (_, list) = app.admin_get("/api/v1/destinations").await;
    let listed = list["destinations"].as_array().expect("list");
    assert_eq!(listed.len(), 2);
    assert!(
        !list.to_string().contains("very-secret")
            && !list.to_string().contains(SECRET)
            && !list.to_string().contains("abcdefgh1234"),
        "{list}"
    );

    // The test message reaches the receiver, signed, and the answer says so.
    let (s, t) = post(
        &app,
        &format!("/api/v1/destinations/{}/test", hook["id"]),
        json!(null),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        (t["delivered"].clone(), t["status"].clone()),
        (json!(true), json!(200))
    );
    let got = receiver.accepted();
    assert_eq!(got.len(), 1);
    assert!(got[0].signed_with(SECRET));
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(got[0].headers["authorization"], "Bearer very-secret");
    assert!(
        got[0].headers["user-agent"]
            .to_str()
            .expect("ua")
            .starts_with("Affinity/")
    );
    assert_eq!(got[0].json()["messageId"], t["message_id"]);
    receiver.answer(404);
    let (_, t) = post(
        &app,
        &format!("/api/v1/destinations/{}/test", hook["id"]),
        json!(null),
    )
    .await;
    assert_eq!(
        (t["delivered"].clone(), t["status"].clone()),
        (json!(false), json!(404))
    );

    let (s, _) = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/destinations/{}", seg["id"])))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .admin_get(&format!("/api/v1/destinations/{}", seg["id"]))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audience_reaches_its_webhook_and_a_refresh_sends_only_who_entered_and_exited() {
    let app = quick_app().await;
    let receiver = Receiver::start().await;
    trained(&app).await;
    let hook = webhook(&app, &receiver, json!({})).await;

    let audience = json!({"name": "Brand 001 fans", "target": {"column": "brand", "value": "Brand 001"},
                          "max_size": {"count": 60}, "control_percent": 20,
                          "destinations": ["999"]});
    let (s, b) = post(&app, "/api/v1/audiences", audience.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .expect("m")
            .contains("\"999\""),
        "{b}"
    );

    let mut audience = audience;
    audience["destinations"] = json!([hook["id"].to_string()]);
    let (s, created) = post(&app, "/api/v1/audiences", audience).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let first = live(&app, &created["id"]).await;
    let (treatment, control) = groups(&app, &first["id"]).await;
    assert!(!control.is_empty() && !treatment.is_empty());

    let expected = 2 * treatment.len();
    poll_until(
        "every first message delivered",
        Duration::from_secs(30),
        || async { (messages(&receiver).len() >= expected).then_some(()) },
    )
    .await;
    let got = messages(&receiver);
    assert_eq!(got.len(), expected, "one identify and one track per member");
    assert!(receiver.accepted().iter().all(|r| r.signed_with(SECRET)));
    let mut identified = HashSet::new();
    let mut entered = HashSet::new();
    for m in &got {
        let user = who(m);
        assert!(!control.contains(&user), "a control member was sent: {m}");
        assert_eq!(m["context"]["personas"]["computation_class"], "audience");
        assert_eq!(
            m["context"]["personas"]["computation_key"],
            "brand_001_fans"
        );
        match m["type"].as_str() {
            Some("identify") => {
                assert_eq!(m["traits"], json!({"brand_001_fans": true}));
                identified.insert(user);
            }
            Some("track") => {
                assert_eq!(m["event"], "Audience Entered");
                assert_eq!(
                    m["properties"],
                    json!({"audience_key": "brand_001_fans", "brand_001_fans": true})
                );
                entered.insert(user);
            }
            other => panic!("unexpected type {other:?}"),
        }
    }
    assert_eq!(identified, treatment);
    assert_eq!(entered, treatment);
    // Outcomes are recorded a few waves at a time (within 100 ms of coming back): the log
    // settles just after the receiver has everything.
    let settled =
        json!({"held": 0, "pending": 0, "delivered": expected, "failed": 0, "cancelled": 0});
    let log = poll_until("the log settles", Duration::from_secs(10), || async {
        let (_, log) = app
            .admin_get(&format!(
                "/api/v1/destinations/{}/deliveries?limit=5",
                hook["id"]
            ))
            .await;
        (log["counts"] == settled).then_some(log)
    })
    .await;
    assert_eq!(log["deliveries"].as_array().expect("page").len(), 5);
    assert_eq!(log["deliveries"][0]["status"], "delivered");
    assert_eq!(log["deliveries"][0]["last_status"], 200);
    assert!(log["next_cursor"].is_string());

    // New events and a new model move people in and out; the refresh sends only that.
    let more = affinity_core::synthetic::SyntheticSpec {
        users: 400,
        items: 200,
        events: 6_000,
        seed: 7,
        ..affinity_core::synthetic::SyntheticSpec::default()
    };
    let batch: Vec<Value> = affinity_core::synthetic::Generator::new(more).collect();
    for chunk in batch.chunks(500) {
        let (s, b) = app.track("/v1/batch", &json!({ "batch": chunk })).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (_, job) = train(&app, json!({})).await;
    finished(&app, &job["model_id"]).await;
    let (s, refreshed) = post(
        &app,
        &format!("/api/v1/audiences/{}/refresh", first["id"]),
        json!(null),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{refreshed}");
    let second = live(&app, &refreshed["id"]).await;
    let (after, _) = groups(&app, &second["id"]).await;
    let came: HashSet<&String> = after.difference(&treatment).collect();
    let left: HashSet<&String> = treatment.difference(&after).collect();
    let total = expected + 2 * (came.len() + left.len());
    poll_until("the changes delivered", Duration::from_secs(30), || async {
        (messages(&receiver).len() >= total).then_some(())
    })
    .await;
    let got = messages(&receiver);
    assert_eq!(got.len(), total, "only the changes are sent");
    let mut seen_entered = HashSet::new();
    let mut seen_exited = HashSet::new();
    for m in &got[expected..] {
        let user = who(m);
        match (m["type"].as_str(), m["event"].as_str()) {
            (Some("track"), Some("Audience Entered")) => {
                seen_entered.insert(user);
            }
            (Some("track"), Some("Audience Exited")) => {
                assert_eq!(m["properties"]["brand_001_fans"], false);
                seen_exited.insert(user);
            }
            (Some("identify"), _) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen_entered, came.into_iter().cloned().collect());
    assert_eq!(seen_exited, left.into_iter().cloned().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_fail_at_once_and_a_retry_delivers_them() {
    let app = quick_app().await;
    let receiver = Receiver::start().await;
    trained(&app).await;
    receiver.answer(400);
    let hook = webhook(&app, &receiver, json!({"batch_size": 10})).await;
    let (_, created) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "Few", "target": {"column": "brand", "value": "Brand 002"},
               "max_size": {"count": 15}, "destinations": [hook["id"]]}),
    )
    .await;
    let audience = live(&app, &created["id"]).await;
    let size = audience["size"].as_u64().expect("size") as usize;
    let log_path = format!("/api/v1/destinations/{}/deliveries", hook["id"]);
    let log = poll_until("the refusals recorded", Duration::from_secs(30), || async {
        let (_, log) = app.admin_get(&log_path).await;
        (log["counts"]["failed"] == 2 * size).then_some(log)
    })
    .await;
    assert_eq!(log["counts"]["pending"], 0);
    let first = &log["deliveries"][0];
    assert_eq!(
        (first["status"].clone(), first["attempts"].clone()),
        (json!("failed"), json!(1))
    );
    assert_eq!(first["last_status"], 400);
    assert!(first["last_error"].as_str().expect("error").contains("400"));
    assert!(receiver.accepted().is_empty());

    // A 503 is retried (and retried) until the receiver recovers.
    receiver.answer(503);
    let (s, r) = post(
        &app,
        &format!("/api/v1/destinations/{}/retry", hook["id"]),
        json!(null),
    )
    .await;
    assert_eq!(
        (s, r["requeued"].clone()),
        (StatusCode::OK, json!(2 * size))
    );
    poll_until("a few 503s", Duration::from_secs(30), || async {
        (receiver.seen() >= 6).then_some(())
    })
    .await;
    let (_, log) = app.admin_get(&format!("{log_path}?status=pending")).await;
    assert_eq!(log["counts"]["failed"], 0, "{log}");
    receiver.answer(200);
    poll_until(
        "delivered after the outage",
        Duration::from_secs(30),
        || async {
            let (_, log) = app.admin_get(&log_path).await;
            (log["counts"]["delivered"] == 2 * size).then_some(())
        },
    )
    .await;
    // Batches of 10, as `{"batch":[...]}`; every message once.
    let ids: Vec<String> = messages(&receiver)
        .iter()
        .map(|m| m["messageId"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 2 * size);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    assert!(
        receiver
            .accepted()
            .iter()
            .all(|r| r.json()["batch"].is_array())
    );

    // A destination added later receives the current members first.
    let late = webhook(&app, &receiver, json!({"name": "late"})).await;
    let (s, a) = put(
        &app,
        &format!("/api/v1/audiences/{}/destinations", created["id"]),
        json!({"destinations": [hook["id"], late["id"]]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(
        a["destinations"],
        json!([hook["id"].to_string(), late["id"].to_string()])
    );
    let (_, log) = poll_until(
        "the late destination's backfill",
        Duration::from_secs(30),
        || async {
            let (s, log) = app
                .admin_get(&format!("/api/v1/destinations/{}/deliveries", late["id"]))
                .await;
            (log["counts"]["delivered"] == 2 * size).then_some((s, log))
        },
    )
    .await;
    assert_eq!(log["counts"]["failed"], 0);
    let (_, log) = app.admin_get(&log_path).await;
    assert_eq!(
        log["counts"]["delivered"],
        2 * size,
        "the first destination got nothing new"
    );
    let (s, b) = put(
        &app,
        &format!("/api/v1/audiences/{}/destinations", created["id"]),
        json!({"destinations": ["12345"]}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_destination_forwards_members_into_another_affinity_as_profiles() {
    let downstream = TestApp::spawn().await;
    let app = quick_app().await;
    trained(&app).await;
    let (s, seg) = post(
        &app,
        "/api/v1/destinations",
        json!({"name": "downstream", "type": "segment", "write_key": WRITE_KEY,
               "url": downstream.base}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{seg}");
    let (s, file) = post(
        &app,
        "/api/v1/destinations",
        json!({"name": "export", "type": "file", "path": "audiences/fans.jsonl", "format": "jsonl"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{file}");
    let (s, csv) = post(
        &app,
        "/api/v1/destinations",
        json!({"name": "export csv", "type": "file", "path": "fans.csv", "format": "csv"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{csv}");
    let (_, created) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "Likely Brand 003 buyers", "target": {"column": "brand", "value": "Brand 003"},
               "max_size": {"count": 20}, "control_percent": 10,
               "destinations": [seg["id"], file["id"], csv["id"]]}),
    )
    .await;
    let audience = live(&app, &created["id"]).await;
    let (treatment, control) = groups(&app, &audience["id"]).await;
    for d in [&seg, &file, &csv] {
        poll_until("delivered", Duration::from_secs(30), || async {
            let (_, log) = app
                .admin_get(&format!("/api/v1/destinations/{}/deliveries", d["id"]))
                .await;
            (log["counts"]["delivered"] == 2 * treatment.len()).then_some(())
        })
        .await;
    }
    for user in &treatment {
        let (s, p) = downstream
            .admin_get(&format!("/api/v1/profiles/{}", profile_key(user)))
            .await;
        assert_eq!(s, StatusCode::OK, "{user} did not arrive: {p}");
        assert_eq!(p["traits"]["likely_brand_003_buyers"], true, "{p}");
        let events = downstream.events_of(&profile_key(user)).await;
        assert!(
            events.iter().any(|e| e["event"] == "Audience Entered"),
            "{events:?}"
        );
    }
    for user in &control {
        let (s, _) = downstream
            .admin_get(&format!("/api/v1/profiles/{}", profile_key(user)))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "control member {user} was sent");
    }

    let exports = app.dir.path().join("exports");
    let lines = read_export(exports.join("audiences/fans.jsonl"));
    let bodies: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(bodies.len(), 2 * treatment.len());
    let per_user: HashMap<String, usize> = bodies.iter().fold(HashMap::new(), |mut m, b| {
        *m.entry(who(b)).or_default() += 1;
        m
    });
    assert!(per_user.values().all(|&n| n == 2));
    let csv_text = read_export(exports.join("fans.csv"));
    let mut rows = csv_text.lines();
    assert_eq!(
        rows.next(),
        Some("message_id,type,user_id,anonymous_id,event,traits,properties,timestamp")
    );
    assert_eq!(rows.count(), 2 * treatment.len());
}
