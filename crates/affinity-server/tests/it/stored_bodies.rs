//! What a stored event keeps: never the write key sent in its body; numeric ids exactly.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

use crate::support::{TestApp, WRITE_KEY};

/// POSTs `body` as it is written (a `serde_json::Value` would round big numbers).
async fn post_text(app: &TestApp, path: &str, body: String) -> (StatusCode, serde_json::Value) {
    app.send(
        reqwest::Client::new()
            .post(app.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body(body),
    )
    .await
}

#[tokio::test]
async fn a_write_key_sent_in_the_body_is_not_stored_or_echoed() {
    let app = TestApp::spawn().await;
    let single = format!(
        r#"{{"writeKey":"{WRITE_KEY}","userId":"keyed","event":"Keyed","messageId":"k1"}}"#
    );
    let (s, b) = post_text(&app, "/v1/track", single).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // In a batch, the key may be at the top (Segment's form) and in each message too.
    let batch = format!(
        r#"{{"writeKey":"{WRITE_KEY}","batch":[{{"type":"track","writeKey":"{WRITE_KEY}","userId":"keyed","event":"Keyed","messageId":"k2"}}]}}"#
    );
    let (s, b) = post_text(&app, "/v1/batch", batch).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let events = app.events_of("user_id:keyed").await;
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e["message"].get("writeKey"), None, "{e}");
        assert!(!e.to_string().contains(WRITE_KEY), "echoed: {e}");
        assert_eq!(e["message"]["event"], "Keyed");
    }
}

#[tokio::test]
async fn numeric_user_ids_beyond_2_pow_53_stay_two_people() {
    let app = TestApp::spawn().await;
    for (n, id) in [
        "98765432109876543210001",
        "98765432109876543210002",
        "100",
        "100.0",
    ]
    .iter()
    .enumerate()
    {
        let body = format!(
            r#"{{"writeKey":"{WRITE_KEY}","userId":{id},"event":"Numbered","messageId":"n{n}"}}"#
        );
        let (s, b) = post_text(&app, "/v1/track", body).await;
        assert_eq!(s, StatusCode::OK, "{id}: {b}");
    }
    for id in ["98765432109876543210001", "98765432109876543210002"] {
        let events = app.events_of(&format!("user_id:{id}")).await;
        assert_eq!(events.len(), 1, "{id} merged with another: {events:?}");
    }
    // 100 and 100.0 are one number, so one person.
    assert_eq!(app.events_of("user_id:100").await.len(), 2);

    let body = format!(r#"{{"writeKey":"{WRITE_KEY}","userId":1.5e30,"event":"Numbered"}}"#);
    let (s, b) = post_text(&app, "/v1/track", body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["code"], "invalid_field");
    let message = b["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`userId`") && message.contains("as strings"),
        "{b}"
    );
}
