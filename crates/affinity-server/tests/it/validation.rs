//! Bad input: each case gets the right status and code, a message naming the field or limit,
//! and nothing accepted before it is affected.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use affinity_core::limits::{MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES};

use crate::support::{TestApp, WRITE_KEY};

/// Posts `body` (raw text) to `path` and checks status, error code and a word of the message.
async fn check(
    app: &TestApp,
    path: &str,
    body: String,
    status: StatusCode,
    code: &str,
    mentions: &str,
) {
    let r = app
        .client
        .post(app.url(path))
        .basic_auth(WRITE_KEY, Some(""))
        .header(CONTENT_TYPE, "application/json")
        .body(body.clone());
    let (s, b) = app.send(r).await;
    let shown: String = body.chars().take(80).collect();
    assert_eq!(s, status, "{path} {shown}: {b}");
    assert_eq!(b["error"]["code"], code, "{path} {shown}: {b}");
    let message = b["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(mentions),
        "{path} {shown}: {message:?} should mention {mentions:?}"
    );
}

#[tokio::test]
async fn each_bad_single_message_gets_a_precise_error() {
    let app = TestApp::spawn().await;
    // Something accepted first, to check later that nothing touched it.
    let (s, _) = app
        .track(
            "/v1/track",
            &json!({"userId": "keep", "event": "Kept", "messageId": "k1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let bad = StatusCode::BAD_REQUEST;
    let cases: Vec<(&str, String, StatusCode, &str, &str)> = vec![
        (
            "/v1/track",
            "{not json".into(),
            bad,
            "invalid_json",
            "not valid JSON",
        ),
        (
            "/v1/track",
            "".into(),
            bad,
            "invalid_json",
            "not valid JSON",
        ),
        ("/v1/track", "[1,2]".into(), bad, "invalid_body", "an array"),
        (
            "/v1/track",
            json!({"event": "E"}).to_string(),
            bad,
            "missing_field",
            "userId",
        ),
        (
            "/v1/track",
            json!({"userId": "", "event": "E"}).to_string(),
            bad,
            "missing_field",
            "anonymousId",
        ),
        (
            "/v1/track",
            json!({"userId": ["a"], "event": "E"}).to_string(),
            bad,
            "invalid_field",
            "userId",
        ),
        (
            "/v1/track",
            json!({"userId": "u", "anonymousId": {}, "event": "E"}).to_string(),
            bad,
            "invalid_field",
            "anonymousId",
        ),
        (
            "/v1/track",
            json!({"userId": "u"}).to_string(),
            bad,
            "missing_field",
            "event",
        ),
        (
            "/v1/track",
            json!({"userId": "u", "event": 5}).to_string(),
            bad,
            "invalid_field",
            "event",
        ),
        (
            "/v1/track",
            json!({"userId": "u", "event": "E", "timestamp": "yesterday"}).to_string(),
            bad,
            "invalid_field",
            "timestamp",
        ),
        (
            "/v1/track",
            json!({"userId": "u", "event": "E", "timestamp": 12}).to_string(),
            bad,
            "invalid_field",
            "timestamp",
        ),
        (
            "/v1/track",
            json!({"userId": "u", "event": "E", "properties": [1]}).to_string(),
            bad,
            "invalid_field",
            "properties",
        ),
        (
            "/v1/track",
            json!({"userId": "u", "event": "E", "messageId": 7}).to_string(),
            bad,
            "invalid_field",
            "messageId",
        ),
        (
            "/v1/identify",
            json!({"userId": "u", "traits": "vip"}).to_string(),
            bad,
            "invalid_field",
            "traits",
        ),
        (
            "/v1/alias",
            json!({"userId": "u"}).to_string(),
            bad,
            "missing_field",
            "previousId",
        ),
        (
            "/v1/alias",
            json!({"anonymousId": "a", "previousId": "p"}).to_string(),
            bad,
            "missing_field",
            "userId",
        ),
        (
            "/v1/group",
            json!({"userId": "u"}).to_string(),
            bad,
            "missing_field",
            "groupId",
        ),
        (
            "/v1/batch",
            json!({"batch": [{"userId": "u", "event": "E"}]}).to_string(),
            bad,
            "invalid_batch",
            "type",
        ),
        (
            "/v1/batch",
            json!({"batch": [{"type": "purchase", "userId": "u"}]}).to_string(),
            bad,
            "invalid_batch",
            "purchase",
        ),
        (
            "/v1/batch",
            json!({"messages": []}).to_string(),
            bad,
            "missing_field",
            "batch",
        ),
        (
            "/v1/batch",
            json!({"batch": {"type": "track"}}).to_string(),
            bad,
            "invalid_field",
            "batch",
        ),
        ("/v1/batch", "[]".into(), bad, "invalid_body", "an array"),
        (
            "/v1/batch",
            "{\"batch\": [".into(),
            bad,
            "invalid_json",
            "not valid JSON",
        ),
    ];
    for (path, body, status, code, mentions) in cases {
        check(&app, path, body, status, code, mentions).await;
    }

    // Nothing was stored by the refused requests, and the earlier event is intact.
    let (_, events) = app.admin_get("/api/v1/events").await;
    let names: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, vec!["Kept"]);
    assert_eq!(app.events_of("user_id:keep").await.len(), 1);
}

#[tokio::test]
async fn limits_are_enforced_and_named() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(MAX_MESSAGE_BYTES);
    let oversized = json!({"userId": "u", "event": "Big", "properties": {"blob": big}}).to_string();
    check(
        &app,
        "/v1/track",
        oversized.clone(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        &MAX_MESSAGE_BYTES.to_string(),
    )
    .await;

    let huge_batch = json!({"batch": (0..20).map(|_| json!({"type": "track", "userId": "u", "event": "B", "properties": {"blob": "y".repeat(30_000)}})).collect::<Vec<_>>()}).to_string();
    assert!(huge_batch.len() > MAX_BATCH_BYTES);
    check(
        &app,
        "/v1/batch",
        huge_batch,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        &MAX_BATCH_BYTES.to_string(),
    )
    .await;

    let many: Vec<Value> = (0..=MAX_BATCH_MESSAGES)
        .map(|i| json!({"type": "track", "userId": "u", "event": "M", "messageId": i.to_string()}))
        .collect();
    check(
        &app,
        "/v1/batch",
        json!({"batch": many}).to_string(),
        StatusCode::BAD_REQUEST,
        "batch_too_large",
        &MAX_BATCH_MESSAGES.to_string(),
    )
    .await;

    // A message over the per-message limit inside an acceptable batch is rejected alone.
    let mixed = json!({"batch": [
        {"type": "track", "userId": "u", "event": "Fits", "messageId": "f1"},
        serde_json::from_str::<Value>(&oversized).map(|mut v| { v["type"] = json!("track"); v }).expect("json"),
    ]});
    let (s, b) = app.track("/v1/batch", &mixed).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["rejected"][0]["index"], 1);
    assert_eq!(b["rejected"][0]["code"], "message_too_large");
    assert_eq!(app.event_count("Fits").await, 1);
    assert_eq!(app.event_count("M").await, 0);
}

#[tokio::test]
async fn a_batch_keeps_its_valid_messages_and_lists_the_rest() {
    let app = TestApp::spawn().await;
    let batch = json!({"batch": [
        {"type": "track", "userId": "p1", "event": "Partial", "messageId": "ok-0"},
        {"type": "track", "userId": "p1", "messageId": "bad-1"},
        {"type": "identify", "userId": "p1", "traits": {"plan": "pro"}, "messageId": "ok-2"},
        {"type": "track", "event": "Partial", "messageId": "bad-3"},
        "not an object",
        {"type": "track", "anonymousId": "a1", "event": "Partial", "messageId": "ok-5"}
    ]});
    let (s, b) = app.track("/v1/batch", &batch).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 3);
    assert_eq!(b["duplicates"], 0);
    let rejected: Vec<(u64, &str)> = b["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().expect("index"),
                r["code"].as_str().expect("code"),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "missing_field"),
            (3, "missing_field"),
            (4, "invalid_body")
        ]
    );
    assert!(
        b["rejected"][0]["message"]
            .as_str()
            .expect("message")
            .contains("event")
    );
    assert_eq!(app.event_count("Partial").await, 2);
    let (_, profile) = app.admin_get("/api/v1/profiles/user_id:p1").await;
    assert_eq!(profile["traits"]["plan"], "pro");

    // An empty batch is fine and stores nothing.
    let (s, b) = app.track("/v1/batch", &json!({"batch": []})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["accepted"], 0);
}
