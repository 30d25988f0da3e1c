//! Event discovery for pickers: names, counts (distinct stored messages), property keys
//! including `products[]` keys, observed values; admin auth.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, assert_error};

async fn seed(app: &TestApp) {
    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "o1", "timestamp": "2026-01-01T00:00:00Z",
         "properties": {"order_id": "A", "products": [{"product_id": "sku-1", "brand": "Acme"}, {"product_id": "sku-2", "brand": "Globex"}]}},
        {"type": "track", "userId": "u2", "event": "Order Completed", "messageId": "o2", "timestamp": "2026-01-03T00:00:00Z",
         "properties": {"order_id": "B", "products": [{"product_id": "sku-1", "brand": "Acme"}, {"product_id": "sku-3", "brand": "Acme"}]}},
        {"type": "track", "userId": "u1", "event": "Movie Rated", "messageId": "r1",
         "properties": {"product_id": "m1", "genres": ["Comedy", "Drama"], "year": 1995}},
        {"type": "track", "userId": "u2", "event": "Movie Rated", "messageId": "r2",
         "properties": {"product_id": "m2", "genres": ["Comedy"], "year": 1996}},
        {"type": "track", "userId": "u3", "event": "Movie Rated", "messageId": "r3",
         "properties": {"product_id": "m3", "genres": ["Action", "Comedy"], "year": 1995}},
        {"type": "identify", "userId": "u3", "messageId": "i3", "traits": {"plan": "pro"}},
        {"type": "page", "userId": "u3", "name": "Home", "messageId": "p3"}
    ]});
    let (s, b) = app.track("/v1/batch", &batch).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // A retry must not inflate the counts.
    let (_, b) = app.track("/v1/batch", &batch).await;
    assert_eq!(b["duplicates"], 7);
}

#[tokio::test]
async fn events_list_names_counts_and_properties() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let (s, b) = app.admin_get("/api/v1/events").await;
    assert_eq!(s, StatusCode::OK);
    let events = b["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "only track events are listed: {b}");
    let movie = &events[0];
    assert_eq!(movie["name"], "Movie Rated");
    assert_eq!(movie["count"], 3);
    let order = &events[1];
    assert_eq!(order["count"], 2);
    assert_eq!(order["first_seen"], "2026-01-01T00:00:00.000Z");
    assert_eq!(order["last_seen"], "2026-01-03T00:00:00.000Z");
    let props: Vec<(&str, u64)> = order["properties"]
        .as_array()
        .expect("props")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name"),
                p["count"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(
        props,
        vec![
            ("order_id", 2),
            ("products", 2),
            ("products[].brand", 2),
            ("products[].product_id", 2)
        ]
    );
}

#[tokio::test]
async fn property_values_with_counts_prefix_and_limit() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let (s, b) = app
        .admin_get("/api/v1/events/Movie%20Rated/properties/genres/values")
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["values"],
        json!([{"value": "Comedy", "count": 3}, {"value": "Action", "count": 1}, {"value": "Drama", "count": 1}])
    );
    let (_, b) = app
        .admin_get("/api/v1/events/Movie%20Rated/properties/year/values?limit=1")
        .await;
    assert_eq!(b["values"], json!([{"value": 1995, "count": 2}]));
    let (_, b) = app
        .admin_get("/api/v1/events/Movie%20Rated/properties/genres/values?q=dr")
        .await;
    assert_eq!(b["values"], json!([{"value": "Drama", "count": 1}]));
    let (_, b) = app
        .admin_get("/api/v1/events/Order%20Completed/properties/products%5B%5D.brand/values")
        .await;
    assert_eq!(
        b["values"],
        json!([{"value": "Acme", "count": 2}, {"value": "Globex", "count": 1}])
    );
    assert_eq!(b["scanned"], 2);
}

#[tokio::test]
async fn discovery_errors_and_auth() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let cases = [
        (
            "/api/v1/events/Nope/properties/x/values",
            StatusCode::NOT_FOUND,
            "not_found",
            "GET /api/v1/events",
        ),
        (
            "/api/v1/events/Movie%20Rated/properties/colour/values",
            StatusCode::NOT_FOUND,
            "not_found",
            "genres",
        ),
        (
            "/api/v1/events/Movie%20Rated/properties/genres/values?limit=0",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "limit",
        ),
        (
            "/api/v1/events/Movie%20Rated/properties/genres/values?limit=abc",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "limit",
        ),
        (
            "/api/v1/nothing",
            StatusCode::NOT_FOUND,
            "not_found",
            "/api/v1/nothing",
        ),
    ];
    for (path, status, code, mentions) in cases {
        let (s, b) = app.admin_get(path).await;
        assert_eq!(s, status, "{path}: {b}");
        assert_error(s, &b, status, mentions);
        assert_eq!(b["error"]["code"], code, "{path}");
    }
    let r = app
        .client
        .get(app.url("/api/v1/events"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .get(app.url("/api/v1/events"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A write key is not an admin token.
    let r = app
        .client
        .get(app.url("/api/v1/events"))
        .bearer_auth(crate::support::WRITE_KEY)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
