//! Audiences through the API: validation with suggestions, background computation, members
//! paging and CSV, control groups, explanations, preview, refresh diffs, determinism.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::catalog::{put_catalog, ready_catalog};
use crate::models::{finished, send_synthetic, synthetic_catalog, train};
use crate::support::{ADMIN, TestApp, assert_error, poll_until, problem_fields};

pub async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.send(
        app.client
            .post(app.url(path))
            .bearer_auth(ADMIN)
            .json(&body),
    )
    .await
}

pub async fn live(app: &TestApp, id: &Value) -> Value {
    let a = poll_until(
        "the audience computing",
        Duration::from_secs(60),
        || async {
            let (_, a) = app.admin_get(&format!("/api/v1/audiences/{id}")).await;
            (a["status"] != "computing" && a["status"] != "queued").then_some(a)
        },
    )
    .await;
    assert_eq!(a["status"], "live", "{a}");
    a
}

async fn all_members(app: &TestApp, id: &Value) -> Vec<Value> {
    let (_, page) = app
        .admin_get(&format!("/api/v1/audiences/{id}/members?limit=10000"))
        .await;
    page["members"].as_array().expect("members").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_are_learned_sized_estimated_and_explained() {
    let app = TestApp::spawn().await;
    let brand_audience = json!({"name": "Brand 001 fans", "target": {"column": "brand", "value": "Brand 001"},
                                "max_size": {"percent": 20}, "control_percent": 10});
    let (s, b) = post(&app, "/api/v1/audiences", brand_audience.clone()).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("model_not_ready")),
        "{b}"
    );

    send_synthetic(&app, 12_000).await;
    put_catalog(&app, &synthetic_catalog()).await;
    ready_catalog(&app).await;
    let (_, job) = train(&app, json!({})).await;
    finished(&app, &job["model_id"]).await;

    let (s, b) = post(
        &app,
        "/api/v1/audiences",
        json!({"target": {"column": "brand"}, "max_size": {"percent": 0},
        "horizon_days": 0, "event": 5, "control_percent": 60, "destinations": ["d1"], "colour": 1,
        "question": "next_order"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let fields = problem_fields(&b);
    assert_eq!(
        fields,
        vec![
            "colour",
            "name",
            "target",
            "max_size",
            "horizon_days",
            "event",
            "question",
            "control_percent",
            "destinations"
        ]
    );
    // A value no item holds yet is accepted (a marketer may name it before it ships), with a
    // warning naming close values; the audience is empty and says why. An unknown column is
    // still refused.
    let (s, b) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "typo", "target": {"column": "brand", "value": "brand 001"}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["warnings"][0]["field"], "target.value", "{b}");
    assert_eq!(b["warnings"][0]["suggestions"][0], "Brand 001", "{b}");
    let typo = live(&app, &b["id"]).await;
    assert_eq!(typo["size"], 0, "{typo}");
    // Named no question and no horizon: who engages with the target next.
    assert_eq!(typo["question"], "next_visit", "{typo}");
    assert_eq!(typo["estimate"]["basis"]["basis"], "none", "{typo}");
    let (s, b) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "x", "target": {"item_id": "sku-99999"}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["warnings"][0]["field"], "target.item_id", "{b}");
    assert_eq!(live(&app, &b["id"]).await["size"], 0);
    let (s, b) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "x", "target": {"column": "colour", "value": "red"}}),
    )
    .await;
    assert_error(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no column \"colour\"",
    );

    let (s, created) = post(&app, "/api/v1/audiences", brand_audience.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    assert_eq!(
        (created["status"].as_str(), created["size"].as_i64()),
        (Some("computing"), Some(0))
    );
    let audience = live(&app, &created["id"]).await;
    let size = audience["size"].as_u64().expect("size");
    let scored = audience["estimate"]["scored_users"]
        .as_u64()
        .expect("scored");
    assert!(
        size > 0 && size as f64 <= 0.2 * scored as f64 + 1.0,
        "{audience}"
    );
    let estimate = &audience["estimate"];
    for key in [
        "expected_precision",
        "expected_recall",
        "expected_engaged",
        "lift",
        "base_rate",
        "average_precision",
        "backtest",
    ] {
        assert!(!estimate[key].is_null(), "estimate.{key}: {audience}");
    }
    assert!(
        estimate["lift"].as_f64().expect("lift") > 1.0,
        "a learned audience beats random: {estimate}"
    );
    // No horizon_days in the request: chosen from the data, said so, and shown on the audience.
    let backtest = &estimate["backtest"];
    assert_eq!(backtest["horizon_source"], "from_data", "{backtest}");
    assert!(
        backtest["horizon_reason"]
            .as_str()
            .is_some_and(|r| r.contains("horizon_days was not given")),
        "{backtest}"
    );
    let horizon = backtest["horizon_days"].as_u64().expect("horizon");
    // A month at least: shorter only where the history is under 60 days.
    assert!([30, 60, 90].contains(&horizon), "{backtest}");
    assert_eq!(
        audience["horizon_days"].as_u64(),
        Some(horizon),
        "{audience}"
    );
    // The best-of-heuristics guard: which ranking serves, why, and every competitor's
    // backtest figures, the served one's being the estimate's.
    let ranking = &estimate["ranking"];
    let served = ranking["served"].as_str().expect("served");
    let competitors = ranking["competitors"].as_array().expect("competitors");
    // No question and no horizon in the request: it asks what the users' next visit holds,
    // and nearly every user of this store comes back, so that question's ranking leads.
    assert_eq!(audience["question"], "next_visit", "{audience}");
    assert_eq!(competitors[0]["name"], "learned_next_visit", "{ranking}");
    assert_eq!(ranking["answered"], "next_visit", "{ranking}");
    assert!(
        ranking["reason"]
            .as_str()
            .is_some_and(|r| r.contains(r#"question "next_visit""#)),
        "{ranking}"
    );
    assert!(
        competitors.len() >= 7,
        "learned and six heuristics: {ranking}"
    );
    assert!(ranking["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let served_ap = competitors
        .iter()
        .find(|c| c["name"].as_str() == Some(served.trim_start_matches("heuristic:")))
        .and_then(|c| c["average_precision"].as_f64())
        .expect("the served ranking is a competitor");
    assert!(
        (served_ap - estimate["average_precision"].as_f64().expect("ap")).abs() < 1e-12,
        "{estimate}"
    );
    assert_eq!(
        estimate["model"].is_null(),
        !["learned", "learned_next_visit"].contains(&served),
        "a model is shown exactly when one serves: {estimate}"
    );
    assert_eq!(
        estimate["control_size"].as_u64(),
        Some((size as f64 * 0.1).round() as u64)
    );

    // Paging: contiguous ranks, best first, then the CSV holds the same people.
    let (_, first) = app
        .admin_get(&format!(
            "/api/v1/audiences/{}/members?limit=50",
            created["id"]
        ))
        .await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_string();
    let (_, second) = app
        .admin_get(&format!(
            "/api/v1/audiences/{}/members?limit=50&cursor={cursor}",
            created["id"]
        ))
        .await;
    assert_eq!(second["members"][0]["rank"], 51);
    let members = all_members(&app, &created["id"]).await;
    assert_eq!(members.len() as u64, size);
    assert!(
        members
            .windows(2)
            .all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64())
    );
    assert!(
        members
            .iter()
            .enumerate()
            .all(|(i, m)| m["rank"] == i as u64 + 1)
    );
    let controls = members.iter().filter(|m| m["control"] == true).count() as u64;
    assert_eq!(controls, estimate["control_size"].as_u64().expect("n"));
    let csv = app
        .client
        .get(app.url(&format!("/api/v1/audiences/{}/members.csv", created["id"])))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.expect("text");
    assert_eq!(text.lines().next(), Some("user_id,score,rank,control"));
    assert_eq!(text.lines().count() as u64, size + 1);

    // The same definition and seed give the same people and the same control group.
    let (_, again) = post(&app, "/api/v1/audiences", brand_audience.clone()).await;
    live(&app, &again["id"]).await;
    assert_eq!(all_members(&app, &again["id"]).await, members);

    let top = members[0]["user_id"].as_str().expect("user").to_string();
    let (s, why) = app
        .admin_get(&format!(
            "/api/v1/audiences/{}/members/{top}",
            created["id"]
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{why}");
    // Contributions explain a learned ranking; a heuristic's ranking has none to give (its
    // rule is named in the estimate's `ranking`).
    if ["learned", "learned_next_visit"].contains(&served) {
        let features: Vec<&str> = why["why"]["contributions"]
            .as_array()
            .expect("contributions")
            .iter()
            .filter_map(|c| c["feature"].as_str())
            .collect();
        assert!(features.len() >= 5, "{why}");
    } else {
        assert!(why["why"]["contributions"].is_null(), "{why}");
    }
    assert!(
        why["why"]["target_events"].is_array() && why["why"]["similar_items_engaged"].is_array()
    );
    let (s, _) = app
        .admin_get(&format!(
            "/api/v1/audiences/{}/members/not-a-member",
            created["id"]
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, preview) = post(
        &app,
        "/api/v1/audiences/preview",
        json!({"target": {"column": "brand", "value": "Brand 001"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{preview}");
    assert_eq!(preview["question"], "next_visit", "{preview}");
    let curve = preview["curve"].as_array().expect("curve");
    assert!(curve.len() >= 5);
    assert!(
        curve
            .windows(2)
            .all(|w| w[0]["size"].as_u64() <= w[1]["size"].as_u64())
    );
    assert!(
        curve
            .iter()
            .all(|p| p["expected_precision"].is_number() && p["expected_engaged"].is_number())
    );
    let (s, b) = post(
        &app,
        "/api/v1/audiences/preview",
        json!({"target": {"column": "brand", "value": "Brand 001"}, "max_size": {"count": 1}}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // The refusal names the field and every field a preview takes.
    assert_eq!(problem_fields(&b), vec!["max_size"], "{b}");
    let message = b["error"]["problems"][0]["message"].as_str().unwrap_or("");
    for field in ["target", "horizon_days", "event", "question"] {
        assert!(message.contains(field), "{message}");
    }

    // An audience may predict one of the catalog's events ("who will order it") while every
    // interaction still informs the ranking: on the same users and window, fewer ordered
    // than engaged at all.
    let brand = json!({"column": "brand", "value": "Brand 001"});
    let (s, orders) = post(
        &app,
        "/api/v1/audiences/preview",
        json!({"target": brand, "horizon_days": horizon, "event": "Order Completed"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{orders}");
    assert_eq!(orders["event"], "Order Completed", "{orders}");
    let (_, any) = post(
        &app,
        "/api/v1/audiences/preview",
        json!({"target": brand, "horizon_days": horizon}),
    )
    .await;
    assert!(any["event"].is_null(), "{any}");
    // A horizon given and no question named: the time-boxed question.
    assert_eq!(any["question"], "within_horizon", "{any}");
    assert_eq!(any["ranking"]["answered"], "within_horizon", "{any}");
    // Asked both alike by name: where users come back, both are measured.
    let (s, balanced) = post(
        &app,
        "/api/v1/audiences/preview",
        json!({"target": brand, "horizon_days": horizon, "question": "balanced"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{balanced}");
    assert_eq!(
        (&balanced["question"], &balanced["ranking"]["answered"]),
        (&json!("balanced"), &json!("balanced")),
        "{balanced}"
    );
    // Asked only who engages within the horizon: no ranking is measured on the next visit,
    // and the estimate says so.
    let (s, within) = post(
        &app,
        "/api/v1/audiences/preview",
        json!({"target": brand, "horizon_days": horizon, "question": "within_horizon"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{within}");
    assert_eq!(within["question"], "within_horizon", "{within}");
    let ranking = &within["ranking"];
    assert!(
        ranking["reason"]
            .as_str()
            .is_some_and(|r| r.contains(r#"question "within_horizon""#)),
        "{ranking}"
    );
    assert!(
        ranking["competitors"]
            .as_array()
            .expect("competitors")
            .iter()
            .all(|c| c["next_visit_average_precision"].is_null()),
        "{ranking}"
    );
    // Asked only what the next visit holds: measured on it where enough users came back,
    // else answered within the horizon; the estimate says which.
    let (s, next_visit) = post(
        &app,
        "/api/v1/audiences/preview",
        json!({"target": brand, "horizon_days": horizon, "question": "next_visit"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{next_visit}");
    assert_eq!(next_visit["question"], "next_visit", "{next_visit}");
    assert!(
        next_visit["ranking"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(r#"question "next_visit""#)),
        "{next_visit}"
    );
    let (s, b) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "within", "target": brand, "horizon_days": horizon,
               "question": "within_horizon"}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let asked_within = live(&app, &b["id"]).await;
    assert_eq!(asked_within["question"], "within_horizon", "{asked_within}");
    assert_eq!(
        asked_within["estimate"]["ranking"], within["ranking"],
        "an audience is ranked as its preview was"
    );
    let rate = |p: &Value| p["base_rate"].as_f64().expect("base rate");
    assert!(
        0.0 < rate(&orders) && rate(&orders) < rate(&any),
        "orders {} vs any engagement {}",
        rate(&orders),
        rate(&any)
    );
    let (s, b) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "buyers", "target": brand, "event": "Order Placed"}),
    )
    .await;
    assert_error(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        r#"catalog counts no event "Order Placed""#,
    );
    assert_eq!(problem_fields(&b), vec!["event"], "{b}");
    // Problems found against the store come together: an unknown column, an unknown event
    // and an unknown destination in one 422, on create and on preview.
    let (s, b) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "buyers", "target": {"column": "colour", "value": "red"},
               "event": "Order Placed", "destinations": ["999"]}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let mut fields = problem_fields(&b);
    fields.sort();
    assert_eq!(
        fields,
        vec!["destinations", "event", "target.column"],
        "{b}"
    );
    let (s, b) = post(
        &app,
        "/api/v1/audiences/preview",
        json!({"target": {"column": "colour", "value": "red"}, "event": "Order Placed"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), vec!["target.column", "event"], "{b}");
    let (s, b) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "Brand 001 buyers", "target": brand, "event": "Order Completed"}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let buyers = live(&app, &b["id"]).await;
    assert_eq!(buyers["event"], "Order Completed", "{buyers}");
    assert!(buyers["size"].as_u64().is_some_and(|n| n > 0), "{buyers}");

    // A refresh is the audience's next snapshot, which reports who entered and exited.
    let (s, refreshed) = post(
        &app,
        &format!("/api/v1/audiences/{}/refresh", created["id"]),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{refreshed}");
    assert_eq!(
        (&refreshed["id"], &refreshed["snapshot"]),
        (&created["id"], &json!(2))
    );
    let refreshed = live(&app, &refreshed["id"]).await;
    assert_eq!(refreshed["changes"]["previous_snapshot"], 1);
    assert_eq!(
        (
            refreshed["changes"]["entered"].as_u64(),
            refreshed["changes"]["exited"].as_u64()
        ),
        (Some(0), Some(0)),
        "same model, same people"
    );
    // It asks the question resolved when it was created: a refresh reuses the stored
    // definition, whatever the default is then.
    assert_eq!(
        (
            &refreshed["question"],
            &refreshed["estimate"]["ranking"]["answered"]
        ),
        (&json!("next_visit"), &json!("next_visit")),
        "{refreshed}"
    );

    let (s, item) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "one item", "target": {"item_id": "sku-1"}, "max_size": {"count": 25}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{item}");
    let item = live(&app, &item["id"]).await;
    assert!(item["size"].as_u64().expect("size") <= 25);

    // The refresh made no new audience: the two empty ones for unseen targets, the brand
    // audience (at its second snapshot), its twin, the one asked within the horizon, the
    // buyers and the item audience.
    let (_, list) = app.admin_get("/api/v1/audiences").await;
    assert_eq!(list["audiences"].as_array().expect("list").len(), 7);
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/audiences/{}", created["id"])))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (s, _) = app
        .admin_get(&format!("/api/v1/audiences/{}", created["id"]))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .admin_get(&format!(
            "/api/v1/audiences/{}/members?cursor=abc",
            again["id"]
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
