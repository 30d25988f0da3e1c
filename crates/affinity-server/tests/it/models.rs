//! Training through the API: 202 with a job id, the run's record with metrics and candidates,
//! the list newest first, errors.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use affinity_core::synthetic::{Generator, SyntheticSpec};

use crate::catalog::{put_catalog, ready_catalog};
use crate::support::{ADMIN, TestApp, poll_until};

pub async fn send_synthetic(app: &TestApp, events: u64) {
    let spec = SyntheticSpec {
        users: 400,
        items: 200,
        events,
        ..SyntheticSpec::default()
    };
    let messages: Vec<Value> = Generator::new(spec).collect();
    for chunk in messages.chunks(500) {
        let (s, b) = app.track("/v1/batch", &json!({ "batch": chunk })).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

pub fn synthetic_catalog() -> Value {
    json!({
        "events": [
            {"name": "Order Completed", "product_id_property": "product_id", "weight": 3.0},
            {"name": "Product Added", "product_id_property": "product_id", "weight": 2.0},
            {"name": "Product Viewed", "product_id_property": "product_id"}
        ],
        "columns": [
            {"name": "brand", "properties": {"Order Completed": "brand", "Product Added": "brand", "Product Viewed": "brand"}},
            {"name": "category", "properties": {"Order Completed": "category", "Product Added": "category", "Product Viewed": "category"}}
        ]
    })
}

pub async fn train(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let r = app
        .client
        .post(app.url("/api/v1/models/train"))
        .bearer_auth(ADMIN)
        .json(&body);
    app.send(r).await
}

/// Polls a model until it leaves queued/training (fails the test after 60 s).
pub async fn finished(app: &TestApp, id: &Value) -> Value {
    poll_until("the training run", Duration::from_secs(60), || async {
        let (s, m) = app.admin_get(&format!("/api/v1/models/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{m}");
        (m["status"] == "ready" || m["status"] == "failed").then_some(m)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_runs_in_the_background_and_records_its_evidence() {
    let app = TestApp::spawn().await;
    let (s, b) = train(&app, json!({})).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("catalog_not_ready")),
        "{b}"
    );

    send_synthetic(&app, 8_000).await;
    let (s, _) = put_catalog(&app, &synthetic_catalog()).await;
    assert_eq!(s, StatusCode::OK);
    ready_catalog(&app).await;

    let (s, job) = train(&app, json!({"seed": 3})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["job_id"], format!("train-{}", job["model_id"]));
    // The server keeps answering while it trains.
    let (s, _) = app
        .track("/v1/track", &json!({"userId": "during", "event": "Ping"}))
        .await;
    assert_eq!(s, StatusCode::OK);

    let model = finished(&app, &job["model_id"]).await;
    assert_eq!(model["status"], "ready", "{model}");
    assert!(
        [
            "als",
            "popularity",
            "trending",
            "item_knn",
            "ease",
            "blend",
            "repeat"
        ]
        .contains(&model["algorithm"].as_str().unwrap_or("")),
        "{model}"
    );
    assert!(
        model["metrics"]["ndcg"].as_f64().unwrap_or(0.0) > 0.0,
        "{model}"
    );
    for key in ["precision", "recall", "ndcg", "coverage", "users", "k"] {
        assert!(
            model["metrics"].get(key).is_some(),
            "metrics.{key} missing: {model}"
        );
    }
    let candidates = model["candidates"].as_array().expect("candidates");
    // The 7 default candidates, then the blend of the best two families, then (when the
    // next-items holdout placed the chosen model's known items) that model as served.
    assert!(
        candidates.len() == 8 || candidates.len() == 9,
        "{candidates:?}"
    );
    assert_eq!(candidates[7]["algorithm"], "blend");
    assert_eq!(
        candidates[7]["params"]["parts"].as_array().map(Vec::len),
        Some(2)
    );
    if let Some(served) = candidates.get(8) {
        assert_eq!(served["algorithm"], "repeat", "{served}");
        assert_eq!(served["chosen"], true, "{served}");
        let base = candidates
            .iter()
            .filter(|c| c["base_of_chosen"] == true)
            .collect::<Vec<_>>();
        assert_eq!(base.len(), 1, "{candidates:?}");
        assert_eq!(served["params"]["base"]["params"], base[0]["params"]);
        assert_eq!(
            served["metrics"], base[0]["metrics"],
            "new items: the base's lists"
        );
    }
    assert_eq!(candidates.iter().filter(|c| c["chosen"] == true).count(), 1);
    // Every candidate has its new-items figure; the next-items figure only the served model
    // and its base (the others are not fitted a second time).
    assert!(
        candidates.iter().all(|c| c["metrics"]["ndcg"].is_number()),
        "{candidates:?}"
    );
    assert!(
        candidates
            .iter()
            .filter(|c| c["chosen"] == true || c["base_of_chosen"] == true)
            .all(|c| c["next_items_metrics"]["ndcg"].is_number()),
        "{candidates:?}"
    );
    assert!(
        model["data"]["holdout"]["next"]["known_items"]
            .as_array()
            .is_some_and(|o| o.len() == 26),
        "the placements tried: {model}"
    );
    assert_eq!(model["data"]["seed"], 3);
    assert!(
        model["data"]["interactions"].as_u64().unwrap_or(0) > 8_000,
        "products[] expand orders: {model}"
    );
    assert_eq!(model["serving"], true);
    assert!(
        model["as_of"]
            .as_str()
            .is_some_and(|t| t.starts_with("2025-12-31")),
        "{model}"
    );

    let (s, job2) = train(&app, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    finished(&app, &job2["model_id"]).await;
    let (_, list) = app.admin_get("/api/v1/models").await;
    let ids: Vec<i64> = list["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect();
    assert_eq!(
        ids,
        vec![
            job2["model_id"].as_i64().expect("id"),
            job["model_id"].as_i64().expect("id")
        ]
    );
    let (_, by_job) = app
        .admin_get(&format!(
            "/api/v1/models/{}",
            job["job_id"].as_str().expect("job")
        ))
        .await;
    assert_eq!(by_job["id"], job["model_id"]);
}

#[tokio::test]
async fn model_errors_are_precise() {
    let app = TestApp::spawn().await;
    let (s, b) = app.admin_get("/api/v1/models/999").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, b) = app.admin_get("/api/v1/models/latest").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_parameter"))
    );
    put_catalog(&app, &synthetic_catalog()).await;
    let (s, b) = train(&app, json!({"seeds": 1})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["message"].as_str().expect("m").contains("seeds"));
    // With no interactions yet, a run fails and says why.
    let (_, job) = train(&app, json!({})).await;
    let model = finished(&app, &job["model_id"]).await;
    assert_eq!(model["status"], "failed");
    assert!(
        model["error"]
            .as_str()
            .expect("error")
            .contains("no interactions"),
        "{model}"
    );
}

/// A server with a catalog and one ready model; returns it with the model's id.
async fn app_with_a_model() -> (TestApp, i64) {
    let app = TestApp::spawn().await;
    send_synthetic(&app, 6_000).await;
    let (s, _) = put_catalog(&app, &synthetic_catalog()).await;
    assert_eq!(s, StatusCode::OK);
    ready_catalog(&app).await;
    let (s, job) = train(&app, json!({"seed": 3})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let model = finished(&app, &job["model_id"]).await;
    assert_eq!(model["status"], "ready", "{model}");
    let id = model["id"].as_i64().expect("id");
    (app, id)
}

/// Polls recommendations until they are answered; meanwhile only "not ready" answers that say
/// why and when to retry are acceptable.
async fn first_answer(app: &TestApp, within: Duration) -> Value {
    poll_until("recommendations", within, || async {
        let r = app
            .client
            .get(app.url("/api/v1/users/u1/recommendations"))
            .bearer_auth(ADMIN);
        let response = r.send().await.expect("send");
        let retry_after = response.headers().get("retry-after").cloned();
        let (s, b) = crate::support::read(response).await;
        if s == StatusCode::OK {
            return Some(b);
        }
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "model_not_ready", "{b}");
        let message = b["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("loading") || message.contains("training"),
            "{b}"
        );
        assert!(retry_after.is_some(), "{b}");
        None
    })
    .await
}

async fn model_ids(app: &TestApp) -> Vec<i64> {
    let (s, list) = app.admin_get("/api/v1/models").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_answers_from_its_saved_model_without_retraining() {
    let (app, id) = app_with_a_model().await;
    let (s, before) = app.admin_get("/api/v1/users/u1/recommendations").await;
    assert_eq!(s, StatusCode::OK, "{before}");
    let dir = app.stop().await;
    assert!(dir.path().join("models").join(format!("{id}.bin")).exists());

    let app = TestApp::spawn_in(dir).await;
    // Loading takes milliseconds here; a retraining (which the old start always began) would
    // make a new model with another id.
    let after = first_answer(&app, Duration::from_secs(10)).await;
    assert_eq!(after["model_id"], id, "{after}");
    assert_eq!(after["recommendations"], before["recommendations"]);
    // No events arrived since the model: the schedule must not retrain at start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(model_ids(&app).await, vec![id]);
    // The catalog was rebuilt and published by the load.
    let (s, catalog) = app.admin_get("/api/v1/catalog").await;
    assert_eq!(s, StatusCode::OK, "{catalog}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Damaging the file of a stopped server: no request is being served while this blocks.
#[allow(clippy::disallowed_methods)]
async fn a_damaged_model_file_is_retrained_instead_of_served() {
    let (app, id) = app_with_a_model().await;
    let dir = app.stop().await;
    let path = dir.path().join("models").join(format!("{id}.bin"));
    let mut bytes = std::fs::read(&path).expect("model file");
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&path, bytes).expect("damage");

    let app = TestApp::spawn_in(dir).await;
    let answer = first_answer(&app, Duration::from_secs(60)).await;
    let retrained = answer["model_id"].as_i64().expect("model_id");
    assert!(retrained > id, "{answer}");
    assert_eq!(model_ids(&app).await, vec![retrained, id]);
    // The new model replaced the damaged file (saved before its record says ready).
    let record = finished(&app, &json!(retrained)).await;
    assert_eq!(record["status"], "ready", "{record}");
    let models = app.dir.path().join("models");
    assert!(models.join(format!("{retrained}.bin")).exists());
    assert!(!path.exists());
}
