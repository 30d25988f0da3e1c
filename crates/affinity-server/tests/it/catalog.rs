//! The catalog API: configuration validation, building from events (products[] expansion,
//! identity merges), column values, items, uploads.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN, TestApp, assert_error, poll_until, problem_fields};

pub fn shop_config() -> Value {
    json!({
        "events": [
            {"name": "Order Completed", "product_id_property": "product_id", "weight": 3.0},
            {"name": "Product Viewed", "product_id_property": "product_id"}
        ],
        "columns": [
            {"name": "brand", "properties": {"Order Completed": "brand", "Product Viewed": "brand"}},
            {"name": "category", "properties": {"Product Viewed": "category"}}
        ]
    })
}

pub async fn put_catalog(app: &TestApp, config: &Value) -> (StatusCode, Value) {
    let r = app
        .client
        .put(app.url("/api/v1/catalog"))
        .bearer_auth(ADMIN)
        .json(config);
    app.send(r).await
}

/// Polls until the catalog build is ready (or fails the test after 10 s).
pub async fn ready_catalog(app: &TestApp) -> Value {
    poll_until("the catalog build", Duration::from_secs(10), || async {
        let (_, c) = app.admin_get("/api/v1/catalog").await;
        assert_ne!(c["status"], "failed", "{c}");
        (c["status"] == "ready").then_some(c)
    })
    .await
}

async fn seed_shop(app: &TestApp) {
    let batch = json!({"batch": [
        {"type": "track", "anonymousId": "anon-7", "event": "Product Viewed", "messageId": "v1", "timestamp": "2026-01-01T00:00:00Z",
         "properties": {"product_id": "sku-1", "brand": "Acme", "category": "Keyboards"}},
        {"type": "identify", "userId": "ann", "anonymousId": "anon-7", "messageId": "i1", "timestamp": "2026-01-01T00:01:00Z"},
        {"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "o1", "timestamp": "2026-01-02T00:00:00Z",
         "properties": {"order_id": "A", "products": [{"product_id": "sku-1", "brand": "Acme"}, {"product_id": "sku-2", "brand": "Globex"}]}},
        {"type": "track", "userId": "ben", "event": "Product Viewed", "messageId": "v2", "timestamp": "2026-01-03T00:00:00Z",
         "properties": {"product_id": "sku-2", "brand": "Globex", "category": "Mice"}},
        {"type": "track", "userId": "ben", "event": "Product Viewed", "messageId": "v3", "timestamp": "2026-01-04T00:00:00Z",
         "properties": {"product_id": "sku-3", "brand": "Acme", "category": ["Keyboards", "Sale"]}},
        {"type": "track", "userId": "ben", "event": "Cart Viewed", "messageId": "c1", "properties": {"product_id": "sku-9"}}
    ]});
    let (s, b) = app.track("/v1/batch", &batch).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn every_configuration_problem_is_listed_in_one_422() {
    let app = TestApp::spawn().await;
    let bad = json!({
        "events": (0..11).map(|i| json!({"name": if i == 1 { "E0".to_string() } else { format!("E{i}") },
                                           "product_id_property": if i == 2 { "" } else { "id" },
                                           "weight": if i == 3 { -1.0 } else { 1.0 }})).collect::<Vec<_>>(),
        "columns": [
            {"name": "item_id", "properties": {"E0": "x"}},
            {"name": "brand", "properties": {}},
            {"name": "brand", "properties": {"Nope": "brand"}}
        ]
    });
    let (s, b) = put_catalog(&app, &bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "invalid_catalog");
    let fields = problem_fields(&b);
    assert_eq!(
        fields,
        vec![
            "events",
            "events[1].name",
            "events[2].product_id_property",
            "events[3].weight",
            "columns[0].name",
            "columns[1].properties",
            "columns[2].name",
            "columns[2].properties.Nope"
        ]
    );
    let (s, b) = put_catalog(&app, &json!({"events": [], "colums": []})).await;
    assert_error(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown field `colums`",
    );
    let r = app
        .client
        .put(app.url("/api/v1/catalog"))
        .bearer_auth(ADMIN)
        .body("{");
    let (s, b) = app.send(r).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    // Nothing was stored.
    let (_, c) = app.admin_get("/api/v1/catalog").await;
    assert_eq!(c["status"], "not_configured");
}

#[tokio::test]
async fn the_catalog_builds_from_events_with_products_and_identities() {
    let app = TestApp::spawn().await;
    let (_, c) = app.admin_get("/api/v1/catalog/columns/brand/values").await;
    assert_eq!(c["error"]["code"], "catalog_not_ready");
    seed_shop(&app).await;
    let mut config = shop_config();
    config["events"]
        .as_array_mut()
        .expect("events")
        .push(json!({"name": "Wishlisted", "product_id_property": "sku"}));
    let (s, b) = put_catalog(&app, &config).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["warnings"][0]["field"], "events[2].name", "{b}");
    let c = ready_catalog(&app).await;
    // sku-1 viewed (anonymously, by ann) and ordered; sku-2 ordered and viewed; sku-3 viewed.
    assert_eq!(
        (
            c["items"].as_u64(),
            c["users"].as_u64(),
            c["interactions"].as_u64()
        ),
        (Some(3), Some(2), Some(5)),
        "{c}"
    );
    assert_eq!(c["as_of"], "2026-01-04T00:00:00.000Z");
    assert_eq!(c["events"][0]["weight"], 3.0);

    let (s, item) = app.admin_get("/api/v1/catalog/items/sku-1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        item["columns"],
        json!({"brand": "Acme", "category": "Keyboards"})
    );
    assert_eq!(
        item["users"], 1,
        "the anonymous view and the order are the same person"
    );
    assert_eq!(
        item["by_event"],
        json!({"Order Completed": 1, "Product Viewed": 1, "Wishlisted": 0})
    );

    let (_, v) = app.admin_get("/api/v1/catalog/columns/brand/values").await;
    assert_eq!(
        v["values"],
        json!([{"value": "Acme", "items": 2, "users": 2}, {"value": "Globex", "items": 1, "users": 2}])
    );
    let (_, v) = app
        .admin_get("/api/v1/catalog/columns/category/values?q=sa")
        .await;
    assert_eq!(
        v["values"],
        json!([{"value": "Sale", "items": 1, "users": 1}])
    );
    let (_, v) = app
        .admin_get("/api/v1/catalog/columns/item_id/values?limit=1")
        .await;
    assert_eq!(v["values"].as_array().map(Vec::len), Some(1));

    let (s, e) = app.admin_get("/api/v1/catalog/columns/colour/values").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("brand, category"),
        "{e}"
    );
    let (s, _) = app.admin_get("/api/v1/catalog/items/sku-404").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn uploads_add_and_override_columns_all_or_nothing() {
    let app = TestApp::spawn().await;
    seed_shop(&app).await;
    put_catalog(&app, &shop_config()).await;
    ready_catalog(&app).await;

    let csv = "item_id,brand,material\nsku-1,Acme Pro,\"[\"\"steel\"\",\"\"wood\"\"]\"\nsku-50,Initech,plastic\n";
    let (s, b) = app.upload_catalog(csv, Some("text/csv")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["items"], 2);
    ready_catalog(&app).await;
    let (_, item) = app.admin_get("/api/v1/catalog/items/sku-1").await;
    assert_eq!(
        item["columns"],
        json!({"brand": "Acme Pro", "category": "Keyboards", "material": ["steel", "wood"]})
    );
    let (_, item) = app.admin_get("/api/v1/catalog/items/sku-50").await;
    assert_eq!(
        (item["users"].as_u64(), item["columns"]["material"].as_str()),
        (Some(0), Some("plastic"))
    );

    let jsonl = "{\"item_id\":\"sku-2\",\"material\":\"aluminium\"}\n\n{\"item_id\":42,\"brand\":\"Numbers\"}\n";
    let (s, b) = app.upload_catalog(jsonl, None).await;
    assert_eq!(
        (s, b["format"].as_str()),
        (StatusCode::OK, Some("jsonl")),
        "{b}"
    );
    ready_catalog(&app).await;
    let (_, v) = app
        .admin_get("/api/v1/catalog/columns/material/values")
        .await;
    let names: Vec<&str> = v["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|x| x["value"].as_str())
        .collect();
    assert_eq!(names, vec!["aluminium", "steel", "wood", "plastic"]);

    let bad = "{\"item_id\":\"ok\"}\n{\"name\":\"no id\"}\nnot json\n";
    let (s, b) = app.upload_catalog(bad, None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "invalid_catalog_file", "{b}");
    assert_eq!(problem_fields(&b), vec!["line 2", "line 3"], "{b}");
    let (s, _) = app.admin_get("/api/v1/catalog/items/ok").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a refused file stores nothing");
    let (s, b) = app
        .upload_catalog("sku,brand\n1,x\n", Some("text/csv"))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "item_id");
}
