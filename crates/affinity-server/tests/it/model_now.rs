//! The models' "now" (`as_of`) as a user meets it: a store generated like `affinity demo`
//! (its data ends 2026-01-01), then the README's curl event sent today. The event must not
//! move `as_of` to today: 30-day audiences and lookback windows keep the history's end.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use affinity_core::timestamp::{format_millis, parse_millis};

use crate::catalog::{put_catalog, ready_catalog};
use crate::models::{finished, send_synthetic, synthetic_catalog, train};
use crate::support::{ADMIN, TestApp, poll_until};

/// Where the generated store ends (`SyntheticSpec::default().end_ms`).
const DATA_END: &str = "2026-01-01T00:00:00.000Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_event_after_a_historical_import_keeps_audiences_meaningful() {
    let app = TestApp::spawn().await;
    send_synthetic(&app, 12_000).await;
    // The README's own curl event: no timestamp, so it happened now.
    let (s, b) = app
        .track(
            "/v1/track",
            &json!({"userId": "u1", "event": "Order Completed",
                    "properties": {"products": [{"product_id": "sku-1", "brand": "Acme"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    put_catalog(&app, &synthetic_catalog()).await;
    let catalog = ready_catalog(&app).await;
    let as_of = catalog["as_of"].as_str().expect("as_of").to_string();
    assert!(
        as_of.as_str() <= DATA_END && as_of.as_str() > "2025-12-31",
        "as_of stays at the history's end: {catalog}"
    );
    assert!(
        catalog["data_end"].as_str().expect("data_end") > "2026-06-01",
        "the data's own end is today's event: {catalog}"
    );
    assert_eq!(catalog["interactions_after_as_of"], 1, "{catalog}");
    let rule = catalog["as_of_rule"].as_str().expect("rule");
    assert!(rule.contains("the end of the history"), "{catalog}");

    let (_, job) = train(&app, json!({})).await;
    let model = finished(&app, &job["model_id"]).await;
    assert_eq!(model["status"], "ready", "{model}");
    assert_eq!(model["as_of"], as_of.as_str(), "{model}");
    assert_eq!(model["data"]["as_of"], as_of.as_str(), "{model}");
    assert_eq!(model["data"]["data_end"], catalog["data_end"], "{model}");
    assert_eq!(model["data"]["interactions_after_as_of"], 1, "{model}");

    // A 30-day audience finds engagement in its backtest window and has a real estimate.
    let (s, created) = app
        .send(
            app.client
                .post(app.url("/api/v1/audiences"))
                .bearer_auth(ADMIN)
                .json(&json!({"name": "Brand 001, next 30 days",
                              "target": {"column": "brand", "value": "Brand 001"},
                              "max_size": {"percent": 20}, "horizon_days": 30})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["id"].clone();
    let audience: Value = poll_until("the audience", Duration::from_secs(120), || async {
        let (_, a) = app.admin_get(&format!("/api/v1/audiences/{id}")).await;
        (a["status"] != "computing").then_some(a)
    })
    .await;
    assert_eq!(audience["status"], "live", "{audience}");
    let estimate = &audience["estimate"];
    // Printed for the record (`cargo test -p affinity-server --test it model_now -- --nocapture`).
    eprintln!(
        "as_of {as_of}, data_end {}, 30-day backtest {} → {}: {} of {} users engaged, expected precision {}, lift {}",
        catalog["data_end"],
        estimate["backtest"]["from"],
        estimate["backtest"]["to"],
        estimate["positives_in_backtest"],
        estimate["eligible_in_backtest"],
        estimate["expected_precision"],
        estimate["lift"]
    );
    assert_eq!(estimate["backtest"]["to"], as_of.as_str(), "{estimate}");
    assert!(
        estimate["positives_in_backtest"].as_u64().unwrap_or(0) > 0,
        "users engaged in the 30-day window: {estimate}"
    );
    assert!(
        estimate["expected_precision"].as_f64().unwrap_or(0.0) > 0.0,
        "{estimate}"
    );

    // Lookback windows say what they counted, and count back from the same "now".
    let (s, similar) = app
        .admin_get("/api/v1/items/sku-1/similar?lookback_days=30")
        .await;
    assert_eq!(s, StatusCode::OK, "{similar}");
    assert_eq!(similar["window"]["to"], as_of.as_str(), "{similar}");
    assert!(
        similar["window"]["from"].as_str().expect("from") < as_of.as_str(),
        "{similar}"
    );

    // A lookback window says where it started: 60 days before the same `as_of`.
    let mut config = synthetic_catalog();
    config["lookback_days"] = json!(60);
    put_catalog(&app, &config).await;
    ready_catalog(&app).await;
    let (_, job) = train(&app, json!({})).await;
    let model = finished(&app, &job["model_id"]).await;
    assert_eq!(model["as_of"], as_of.as_str(), "{model}");
    let as_of_ms = parse_millis(&as_of).expect("a time");
    assert_eq!(
        model["data"]["lookback_from"],
        format_millis(as_of_ms - 60 * 86_400_000).as_str(),
        "{model}"
    );
}
