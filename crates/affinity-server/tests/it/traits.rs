//! Traits by name: read, change (fields left out are kept), delete; a second POST of a name
//! is refused instead of replacing the definition.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::catalog::{put_catalog, ready_catalog};
use crate::models::{finished, send_synthetic, synthetic_catalog, train};
use crate::support::{ADMIN, TestApp, assert_error, poll_until, problem_fields};

const PROFILE_TOKEN: &str = "prf_test";

/// The synthetic shop with its `price` mapped as a column too.
pub fn catalog_with_price() -> Value {
    let mut config = synthetic_catalog();
    config["columns"].as_array_mut().expect("columns").push(json!({
        "name": "price",
        "properties": {"Order Completed": "price", "Product Added": "price", "Product Viewed": "price"}
    }));
    config
}

pub async fn trained_shop() -> TestApp {
    let app = TestApp::spawn().await;
    send_synthetic(&app, 6_000).await;
    let (s, b) = put_catalog(&app, &catalog_with_price()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    ready_catalog(&app).await;
    let (_, job) = train(&app, json!({})).await;
    let model = finished(&app, &job["model_id"]).await;
    assert_eq!(model["status"], "ready", "{model}");
    app
}

/// The trait once computed with `k` values per profile (a recomputation after an update).
async fn computed(app: &TestApp, name: &str, k: u64) -> Value {
    poll_until("the trait computation", Duration::from_secs(30), || async {
        let (s, t) = app.admin_get(&format!("/api/v1/traits/{name}")).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        (t["status"] == "computed" && t["k"] == k).then_some(t)
    })
    .await
}

async fn profile_trait(app: &TestApp, user: &str, name: &str) -> Value {
    let (s, body) = app
        .send(
            app.client
                .get(app.url(&format!(
                    "/v1/spaces/s/collections/users/profiles/user_id:{user}/traits?class=computed_trait"
                )))
                .basic_auth(PROFILE_TOKEN, Some("")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["traits"][name].clone()
}

async fn price_of(app: &TestApp, item: &str) -> f64 {
    let (s, d) = app
        .admin_get(&format!("/api/v1/catalog/items/{item}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    d["columns"]["price"]
        .as_f64()
        .unwrap_or_else(|| panic!("price: {d}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traits_are_read_changed_and_deleted_by_name() {
    let app = trained_shop().await;
    let url = |path: &str| app.url(&format!("/api/v1/traits{path}"));
    let definition = json!({"name": "picks", "column": "item_id", "k": 3,
                            "exclude": [{"column": "price", "below": 100.0}]});
    let (s, b) = app
        .send(
            app.client
                .post(url(""))
                .bearer_auth(ADMIN)
                .json(&definition),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // The same name again is refused, pointing at PUT: nothing is replaced.
    let (s, b) = app
        .send(
            app.client
                .post(url(""))
                .bearer_auth(ADMIN)
                .json(&json!({"name": "picks", "column": "brand"})),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "PUT /api/v1/traits/picks");
    assert_eq!(b["error"]["code"], "trait_exists");

    let t = computed(&app, "picks", 3).await;
    assert_eq!(
        (&t["column"], &t["exclude"]),
        (
            &json!("item_id"),
            &json!([{"column": "price", "below": 100.0}])
        ),
        "GET by name shows the whole definition: {t}"
    );
    assert!(t["profiles"].as_u64().expect("profiles") > 100, "{t}");

    // An update that mentions only k keeps the exclusion rule, and the recomputation uses it.
    let (s, b) = app
        .send(
            app.client
                .put(url("/picks"))
                .bearer_auth(ADMIN)
                .json(&json!({"k": 2})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["exclude"],
        json!([{"column": "price", "below": 100.0}]),
        "{b}"
    );
    assert_eq!(
        (b["k"].as_u64(), b["status"].as_str()),
        (Some(2), Some("queued"))
    );
    computed(&app, "picks", 2).await;
    for user in ["u0", "u1", "u2"] {
        let picks = profile_trait(&app, user, "picks").await;
        let picks = picks
            .as_array()
            .unwrap_or_else(|| panic!("{user}: {picks}"));
        assert_eq!(picks.len(), 2, "{user}: {picks:?}");
        for item in picks {
            let price = price_of(&app, item.as_str().expect("id")).await;
            assert!(
                price >= 100.0,
                "{user}'s pick {item} costs {price}: the rule was dropped"
            );
        }
    }

    // Updates are validated like definitions, by the same rules as recommendations' filters.
    let put = |body: Value| app.client.put(url("/picks")).bearer_auth(ADMIN).json(&body);
    let (s, b) = app
        .send(put(
            json!({"k": 11, "exclude": [{"column": "brand", "below": 5}]}),
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), vec!["k", "exclude[0]"], "{b}");
    assert!(b.to_string().contains("no item has a number in"), "{b}");
    let (s, b) = app.send(put(json!({"name": "renamed", "k": 2}))).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "cannot be renamed");
    let (s, b) = app.send(put(json!({"kk": 2}))).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "kk");
    let (s, b) = app
        .send(
            app.client
                .put(url("/nope"))
                .bearer_auth(ADMIN)
                .json(&json!({"k": 2})),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "traits: picks");
    let (_, t) = app.admin_get("/api/v1/traits/picks").await;
    assert_eq!(
        (t["k"].as_u64(), &t["exclude"]),
        (Some(2), &json!([{"column": "price", "below": 100.0}])),
        "refused updates change nothing"
    );

    // `"exclude": []` is how rules are removed.
    let (s, b) = app.send(put(json!({"exclude": []}))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.get("exclude").is_none(), "{b}");

    // Delete: gone from the list, from GET, and from every profile.
    let (s, _) = app
        .send(app.client.delete(url("/picks")).bearer_auth(ADMIN))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = app.admin_get("/api/v1/traits/picks").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "no trait named \"picks\"");
    let (_, list) = app.admin_get("/api/v1/traits").await;
    assert_eq!(list["traits"], json!([]));
    // A computation queued by the last update stops or is skipped: its values never return.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for user in ["u0", "u1", "u2"] {
        assert_eq!(
            profile_trait(&app, user, "picks").await,
            Value::Null,
            "{user}"
        );
    }
    let (s, b) = app
        .send(app.client.delete(url("/picks")).bearer_auth(ADMIN))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "none is defined yet");

    // The name is free again.
    let (s, b) = app
        .send(
            app.client
                .post(url(""))
                .bearer_auth(ADMIN)
                .json(&definition),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}
