//! Durability and exactly-once counting: retries, concurrent duplicates, restarts, event time.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};

use affinity_core::timestamp::parse_millis;

use crate::support::{TestApp, WRITE_KEY, read};

fn batch_of(prefix: &str, n: usize) -> Value {
    let messages: Vec<Value> = (0..n)
        .map(|i| {
            json!({"type": "track", "userId": format!("{prefix}-u{}", i % 7), "event": "Retried",
                        "messageId": format!("{prefix}-{i}"), "properties": {"i": i}})
        })
        .collect();
    json!({ "batch": messages })
}

#[tokio::test]
async fn retried_and_concurrent_duplicates_are_counted_once() {
    let app = TestApp::spawn().await;
    let batch = batch_of("r", 200);
    // The same batch sent by eight clients at once, then twice more in sequence.
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url, batch) = (app.client.clone(), app.url("/v1/batch"), batch.clone());
        clients.spawn(async move {
            let r = client
                .post(url)
                .basic_auth(WRITE_KEY, Some(""))
                .json(&batch)
                .send()
                .await;
            read(r.expect("send")).await
        });
    }
    let results = clients.join_all().await;
    let mut stored_total = 0;
    for (s, b) in &results {
        assert_eq!(*s, StatusCode::OK, "{b}");
        stored_total += b["accepted"].as_u64().expect("n") - b["duplicates"].as_u64().expect("n");
    }
    assert_eq!(
        stored_total, 200,
        "exactly one copy of each message is stored across clients"
    );
    for _ in 0..2 {
        let (s, b) = app.track("/v1/batch", &batch).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["duplicates"], 200);
    }
    assert_eq!(app.event_count("Retried").await, 200);

    // A message without messageId retried with the same bytes is recognised too.
    let anon = json!({"userId": "no-id", "event": "NoId", "timestamp": "2026-01-01T00:00:00Z"});
    for _ in 0..3 {
        let (s, _) = app.track("/v1/track", &anon).await;
        assert_eq!(s, StatusCode::OK);
    }
    assert_eq!(app.event_count("NoId").await, 1);
}

#[tokio::test]
async fn accepted_messages_survive_a_restart_and_credentials_persist() {
    let app = TestApp::spawn().await;
    let (s, _) = app.track("/v1/batch", &batch_of("restart", 50)).await;
    assert_eq!(s, StatusCode::OK);
    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir).await;
    assert_eq!(app.event_count("Retried").await, 50);
    let (_, b) = app.track("/v1/batch", &batch_of("restart", 50)).await;
    assert_eq!(b["duplicates"], 50, "dedup holds across restarts");
}

#[tokio::test]
async fn timestamp_is_event_time_and_defaults_to_receipt() {
    let app = TestApp::spawn().await;
    let (s, _) = app
        .track("/v1/track", &json!({"userId": "t", "event": "Timed", "timestamp": "2019-03-04T05:06:07.089+01:00", "messageId": "old"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let before = now_ms();
    let (s, _) = app
        .track(
            "/v1/track",
            &json!({"userId": "t", "event": "Timed", "messageId": "new"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let after = now_ms();
    let events = app.events_of("user_id:t").await;
    let by_id = |id: &str| {
        events
            .iter()
            .find(|e| e["message_id"] == id)
            .cloned()
            .expect("event")
    };
    assert_eq!(by_id("old")["timestamp"], "2019-03-04T04:06:07.089Z");
    let received = parse_millis(by_id("new")["timestamp"].as_str().expect("ts")).expect("parse");
    assert!(
        (before..=after).contains(&received),
        "{before} <= {received} <= {after}"
    );
    // The raw message is kept as sent.
    assert_eq!(
        by_id("old")["message"]["timestamp"],
        "2019-03-04T05:06:07.089+01:00"
    );
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
