//! Event time as a user meets it: a device clock that is off is corrected with `sentAt`
//! (Segment's rule), and a time far in the future is clamped to the receipt and counted.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::json;

use affinity_core::timestamp::{format_millis, parse_millis};

use crate::support::TestApp;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// The stored event time of `user`'s only event, and its receipt time.
async fn stored_times(app: &TestApp, user: &str) -> (i64, i64) {
    let events = app.events_of(&format!("user_id:{user}")).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let t = |field: &str| {
        parse_millis(events[0][field].as_str().expect("time")).expect("a formatted time")
    };
    (t("timestamp"), t("received_at"))
}

#[tokio::test]
async fn a_fast_device_clock_is_corrected_with_sent_at() {
    let app = TestApp::spawn().await;
    let hour = 3_600_000;
    // The device clock is two hours fast; the event happened 30 s before the request left.
    let device_now = now_ms() + 2 * hour;
    let (s, b) = app
        .track(
            "/v1/track",
            &json!({"userId": "phone", "event": "Product Viewed",
                    "properties": {"product_id": "sku-1"},
                    "timestamp": format_millis(device_now - 30_000),
                    "sentAt": format_millis(device_now)}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (t, received) = stored_times(&app, "phone").await;
    assert_eq!(t, received - 30_000, "timestamp - sentAt + receivedAt");

    // Segment's server libraries put sentAt on the batch, not on each message.
    let (s, b) = app
        .track(
            "/v1/batch",
            &json!({"sentAt": format_millis(device_now),
                    "batch": [{"type": "track", "userId": "server", "event": "Product Viewed",
                               "properties": {"product_id": "sku-1"},
                               "timestamp": format_millis(device_now - 60_000)}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (t, received) = stored_times(&app, "server").await;
    assert_eq!(t, received - 60_000);

    // A historical import through a library keeps its dates when the clocks agree.
    let (s, _) = app
        .track(
            "/v1/track",
            &json!({"userId": "history", "event": "Product Viewed",
                    "properties": {"product_id": "sku-1"},
                    "timestamp": "2025-03-01T10:00:00.000Z",
                    "sentAt": format_millis(now_ms())}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (t, _) = stored_times(&app, "history").await;
    let drift = (t - parse_millis("2025-03-01T10:00:00Z").expect("date")).abs();
    assert!(drift < 60_000, "off by {drift} ms");

    let (s, b) = app
        .track(
            "/v1/track",
            &json!({"userId": "u", "event": "E", "sentAt": "when I felt like it"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("sentAt"),
        "{b}"
    );
}

#[tokio::test]
async fn a_future_timestamp_is_clamped_to_receipt_and_counted() {
    let app = TestApp::spawn().await;
    let (_, b) = app.admin_get("/api/v1/events").await;
    assert_eq!(b["future_timestamps_clamped"], 0, "{b}");
    let tolerance = b["limits"]["future_tolerance_seconds"]
        .as_i64()
        .expect("tolerance");
    assert!(tolerance > 0, "{b}");

    let (s, b) = app
        .track(
            "/v1/track",
            &json!({"userId": "u2031", "event": "Order Completed",
                    "properties": {"product_id": "sku-1"},
                    "timestamp": "2031-06-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (t, received) = stored_times(&app, "u2031").await;
    assert_eq!(t, received, "clamped to the receipt");

    // Within the tolerance a fast clock is left alone (and not counted).
    let slightly_ahead = now_ms() + tolerance * 1000 / 2;
    let (s, _) = app
        .track(
            "/v1/track",
            &json!({"userId": "ahead", "event": "Order Completed",
                    "properties": {"product_id": "sku-1"},
                    "timestamp": format_millis(slightly_ahead)}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (t, _) = stored_times(&app, "ahead").await;
    assert_eq!(t, slightly_ahead);

    // A retry of the clamped message is a duplicate and counts nothing more.
    let (_, b) = app.admin_get("/api/v1/events").await;
    assert_eq!(b["future_timestamps_clamped"], 1, "{b}");
    let (s, _) = app
        .track(
            "/v1/batch",
            &json!({"batch": [
                {"type": "track", "userId": "later", "event": "Order Completed", "messageId": "f1",
                 "properties": {"product_id": "sku-2"}, "timestamp": "2030-01-01T00:00:00Z"},
                {"type": "track", "userId": "later", "event": "Order Completed", "messageId": "f1",
                 "properties": {"product_id": "sku-2"}, "timestamp": "2030-01-01T00:00:00Z"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = app.admin_get("/api/v1/events").await;
    assert_eq!(b["future_timestamps_clamped"], 2, "{b}");
    let order = b["events"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["name"] == "Order Completed"))
        .expect("listed");
    let last_seen = parse_millis(order["last_seen"].as_str().expect("time")).expect("time");
    assert!(last_seen <= now_ms() + tolerance * 1000, "{order}");
}
