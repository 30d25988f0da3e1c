//! Goal-based recommendations through HTTP on a generated funnel where each kind of user
//! converts on its own few items (`affinity_core::goal_funnel`): the lists find those items,
//! control users are a uniform sample, the lists reach the Profile API, and a recomputation
//! on the same data gives the same lists.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use affinity_core::goal_funnel::FunnelSpec;
use affinity_core::timestamp::format_millis;

use crate::support::{ADMIN, TestApp, assert_error, poll_until, problem_fields};

const PROFILE_TOKEN: &str = "prf_test";

pub async fn send(app: &TestApp, messages: &[Value]) {
    for chunk in messages.chunks(500) {
        let (s, b) = app.track("/v1/batch", &json!({ "batch": chunk })).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

pub async fn post_goal(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    app.send(
        app.client
            .post(app.url("/api/v1/goal-recommendations"))
            .bearer_auth(ADMIN)
            .json(body),
    )
    .await
}

/// The goal once live with a computation newer than `after` (an RFC 3339 time or "").
pub async fn live(app: &TestApp, id: &Value, after: &str) -> Value {
    poll_until("the goal computation", Duration::from_secs(60), || async {
        let (s, g) = app
            .admin_get(&format!("/api/v1/goal-recommendations/{id}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{g}");
        assert_ne!(g["status"], "failed", "{g}");
        (g["status"] == "live" && g["computed_at"].as_str().unwrap_or("") > after).then_some(g)
    })
    .await
}

pub async fn list(app: &TestApp, id: &Value, user: &str) -> Value {
    let (s, b) = app
        .admin_get(&format!("/api/v1/goal-recommendations/{id}/users/{user}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

pub fn values(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["value"].as_str().expect("value").to_string())
        .collect()
}

pub fn definition() -> Value {
    json!({"name": "Next buys", "outcome": {"event": "Order Completed",
               "where": [{"property": "revenue", "op": "gt", "value": 0}]},
           "exposure": {"event": "Product Added", "item_property": "product_id"},
           "k": 5, "exclude_converted": false, "control_percent": 20})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goal_lists_find_each_kinds_converting_items_with_a_uniform_control_group() {
    let app = TestApp::spawn().await;
    let spec = FunnelSpec::default();
    send(&app, &spec.messages()).await;

    let (s, created) = post_goal(&app, &definition()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["status"], "computing", "{created}");
    assert_eq!(created["key"], "next_buys");
    assert_eq!(created["warnings"], json!([]), "{created}");
    let id = created["id"].clone();
    let goal = live(&app, &id, "").await;
    assert_eq!(goal["users"], spec.users, "{goal}");

    // Each kind's converting items, found for that kind's users (outside the control group,
    // whose order is random by design).
    let mut found = vec![(0usize, 0usize); spec.kinds as usize];
    let mut control_by_kind = vec![0u32; spec.kinds as usize];
    let mut lists = Vec::new();
    for u in 0..spec.users {
        let kind = spec.kind(u) as usize;
        let body = list(&app, &id, &format!("u{u}")).await;
        let top = values(&body);
        assert_eq!(top.len(), 5, "{body}");
        let converting: HashSet<String> = spec.converting_items(kind as u32).into_iter().collect();
        let is_control = body["is_control"].as_bool().expect("is_control");
        if is_control {
            control_by_kind[kind] += 1;
        } else {
            let hits = top[..3].iter().filter(|v| converting.contains(*v)).count();
            found[kind].0 += usize::from(hits == 3);
            found[kind].1 += 1;
        }
        lists.push(body);
    }
    for (kind, (hit, n)) in found.iter().enumerate() {
        assert!(
            *hit as f64 >= 0.8 * *n as f64,
            "kind {kind}: only {hit} of {n} users have its 3 converting items first"
        );
    }

    // Control users: 20% of 300 drawn by a hash, fixed inputs (no flakiness): within 4 sd of
    // the binomial mean, and spread evenly over the kinds (chi-square, 2 degrees of freedom,
    // under the 0.1% critical value 13.8).
    let control: u32 = control_by_kind.iter().sum();
    let (mean, sd) = (60.0, (300.0f64 * 0.2 * 0.8).sqrt());
    assert!(
        (f64::from(control) - mean).abs() <= 4.0 * sd,
        "{control} control users"
    );
    let expected = f64::from(control) / 3.0;
    let chi2: f64 = control_by_kind
        .iter()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum();
    assert!(chi2 < 13.8, "control users by kind {control_by_kind:?}");
    // Their lists hold the same kind of items in another order: scores not best-first.
    let unordered = lists
        .iter()
        .filter(|l| l["is_control"] == true)
        .filter(|l| {
            let scores: Vec<f64> = l["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i["score"].as_f64().expect("score"))
                .collect();
            scores.windows(2).any(|w| w[0] < w[1])
        })
        .count();
    assert!(unordered as f64 >= 0.7 * f64::from(control), "{unordered}");

    // The quality figures: the goal lists beat every baseline on the holdout.
    let q = &goal["quality"]["holdout"];
    let ndcg = &q["ndcg"];
    for baseline in ["popularity", "best_converting", "personal"] {
        assert!(
            ndcg["goal"].as_f64() > ndcg[baseline].as_f64(),
            "goal vs {baseline}: {q}"
        );
    }
    assert!(goal["quality"]["confidence"].as_f64().expect("confidence") > 0.0);
    assert_eq!(goal["quality"]["experiment"], Value::Null, "{goal}");

    // The same list on the profile.
    let (s, traits) = app
        .send(
            app.client
                .get(app.url(
                    "/v1/spaces/s/collections/users/profiles/user_id:u4/traits?class=computed_trait",
                ))
                .basic_auth(PROFILE_TOKEN, Some("")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{traits}");
    assert_eq!(traits["traits"]["next_buys"], json!(values(&lists[4])));
    assert_eq!(
        traits["traits"]["next_buys_is_control"],
        lists[4]["is_control"]
    );

    // Recomputed on the same data: the same lists.
    let before = goal["computed_at"]
        .as_str()
        .expect("computed_at")
        .to_string();
    let (s, b) = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/goal-recommendations/{id}/refresh")))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    live(&app, &id, &before).await;
    for u in [0, 1, 2, 4, 50, 299] {
        let again = list(&app, &id, &format!("u{u}")).await;
        assert_eq!(again["items"], lists[u]["items"], "u{u}");
    }

    // Exposures after the lists went live: recommended vs control outcome rates.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let fresh: Vec<Value> = (0..spec.users)
        .flat_map(|u| {
            let item = format!("sku-{}", u % spec.items);
            let t = format_millis(now + i64::from(u));
            let mut out = vec![json!({"type": "track", "userId": format!("u{u}"),
                "event": "Product Added", "messageId": format!("late-{u}"), "timestamp": t,
                "properties": {"product_id": item}})];
            if u % 4 == 0 {
                out.push(json!({"type": "track", "userId": format!("u{u}"),
                    "event": "Order Completed", "messageId": format!("late-{u}-o"),
                    "timestamp": format_millis(now + 1000 + i64::from(u)),
                    "properties": {"product_id": item, "revenue": 50}}));
            }
            out
        })
        .collect();
    send(&app, &fresh).await;
    let second = live(&app, &id, "").await;
    let before = second["computed_at"]
        .as_str()
        .expect("computed_at")
        .to_string();
    app.send(
        app.client
            .post(app.url(&format!("/api/v1/goal-recommendations/{id}/refresh")))
            .bearer_auth(ADMIN),
    )
    .await;
    let third = live(&app, &id, &before).await;
    let e = &third["quality"]["experiment"];
    let users = e["recommended"]["users"].as_u64().expect("users")
        + e["control"]["users"].as_u64().expect("users");
    assert_eq!(users, u64::from(spec.users), "{e}");
    assert!(e["p_value"].is_number(), "{e}");

    // Deleted: the definition, the lists and the profile traits.
    let (s, _) = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/goal-recommendations/{id}")))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = app
        .admin_get(&format!("/api/v1/goal-recommendations/{id}/users/u4"))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "no goal recommendation");
    let (_, traits) = app
        .send(
            app.client
                .get(app.url(
                    "/v1/spaces/s/collections/users/profiles/user_id:u4/traits?class=computed_trait",
                ))
                .basic_auth(PROFILE_TOKEN, Some("")),
        )
        .await;
    assert_eq!(traits["traits"].get("next_buys"), None, "{traits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goal_definitions_list_every_problem_and_warn_about_unseen_names() {
    let app = TestApp::spawn().await;
    let spec = FunnelSpec {
        users: 30,
        ..FunnelSpec::default()
    };
    send(&app, &spec.messages()).await;

    let (s, b) = post_goal(
        &app,
        &json!({"name": "", "outcome": {"event": "Order Completed",
                    "where": [{"property": "revenue", "op": "gt", "value": "lots"}]},
                "exposure": {"event": "Product Added", "item_property": ""},
                "k": 80, "control_percent": 60, "destinations": [{"id": "hook"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "invalid_goal", "{b}");
    assert_eq!(
        problem_fields(&b),
        [
            "name",
            "outcome.where[0].value",
            "exposure.item_property",
            "k",
            "control_percent",
            "destinations"
        ]
    );

    let mut unknown = definition();
    unknown["colour"] = json!("red");
    let (s, b) = post_goal(&app, &unknown).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "colour");

    // Names never received: accepted, with warnings naming the closest ones.
    let mut typo = definition();
    typo["name"] = json!("Typo goal");
    typo["exposure"] = json!({"event": "Product Add", "item_property": "product_id"});
    typo["outcome"]["where"] = json!([{"property": "revenu", "op": "gt", "value": 0}]);
    let (s, b) = post_goal(&app, &typo).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let warnings = b["warnings"].to_string();
    assert!(warnings.contains(r#"\"Product Added\""#), "{warnings}");
    assert!(warnings.contains(r#"\"revenue\""#), "{warnings}");

    // A second goal with the same key is refused.
    let (s, b) = post_goal(&app, &definition()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let mut again = definition();
    again["name"] = json!("next  BUYS");
    let (s, b) = post_goal(&app, &again).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["name"]);

    let (s, b) = app.admin_get("/api/v1/goal-recommendations").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["goals"].as_array().map(Vec::len), Some(2), "{b}");
    let (s, b) = app.admin_get("/api/v1/goal-recommendations/x").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "must be a number");
}

/// With no catalog no model is trained, so no published model recomputes the goals: the
/// schedule does, on the retrain interval (shortened here), once new events arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goals_retrain_on_the_schedule_without_a_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = crate::support::config(dir.path());
    config.engine.retrain_interval = Duration::from_millis(300);
    let app = TestApp::spawn_configured(dir, config).await;
    let spec = FunnelSpec::default();
    let (first, later): (Vec<Value>, Vec<Value>) = spec.messages().into_iter().partition(|m| {
        m["userId"].as_str().expect("userId")[1..]
            .parse::<u32>()
            .expect("u<n>")
            < 150
    });
    send(&app, &first).await;
    let (s, created) = post_goal(&app, &definition()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["id"].clone();
    let goal = live(&app, &id, "").await;
    assert_eq!(goal["users"], 150, "{goal}");
    let before = goal["computed_at"]
        .as_str()
        .expect("computed_at")
        .to_string();

    // No refresh asked for: only the schedule can bring in the new users.
    send(&app, &later).await;
    let again = poll_until(
        "the scheduled goal computation",
        Duration::from_secs(60),
        || async {
            let g = live(&app, &id, &before).await;
            (g["users"] == spec.users).then_some(g)
        },
    )
    .await;
    assert_eq!(again["status"], "live", "{again}");
    let body = list(&app, &id, "u299").await;
    assert_eq!(values(&body).len(), 5, "{body}");
}
