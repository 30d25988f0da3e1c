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
async fn a_top_level_key_spelled_like_a_nested_one_is_not_counted_as_it() {
    let app = TestApp::spawn().await;
    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "Bought", "messageId": "b1",
         "properties": {"products[].brand": "Fake", "products": [{"brand": "Acme"}]}},
        {"type": "track", "userId": "u2", "event": "Bought", "messageId": "b2",
         "properties": {"products[].brand": "Fake"}},
        {"type": "track", "userId": "u3", "event": "Bought", "messageId": "b3",
         "properties": {"products": [{"brand": "Globex"}]}}
    ]});
    let (s, b) = app.track("/v1/batch", &batch).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = app.admin_get("/api/v1/events").await;
    let bought = &b["events"][0];
    assert_eq!(bought["name"], "Bought", "{b}");
    let count = |name: &str| {
        bought["properties"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .and_then(|p| p["count"].as_u64())
    };
    assert_eq!(count("products[].brand"), Some(2), "{b}");
    assert_eq!(count("products"), Some(2), "{b}");
    // Values come from the products only.
    let (_, v) = app
        .admin_get("/api/v1/events/Bought/properties/products%5B%5D.brand/values")
        .await;
    assert_eq!(
        v["values"],
        json!([{"value": "Acme", "count": 1}, {"value": "Globex", "count": 1}])
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

/// The real bound, end to end: 10,000 names are kept, the 10,001st is refused in a batch
/// (reported by index, the rest stored) and as a single message (400), counted in the event
/// list, and the list pages through every name exactly once.
#[tokio::test]
async fn event_names_are_bounded_and_the_list_is_paged() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..9_999).map(|i| format!("E{i:04}")).collect();
    for (c, chunk) in names.chunks(2_500).enumerate() {
        let batch: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"type": "track", "userId": "u", "event": n, "messageId": format!("m{c}-{i}")}))
            .collect();
        let (s, b) = app.track("/v1/batch", &json!({ "batch": batch })).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["rejected"], json!([]));
    }
    let batch = json!({"batch": [
        {"type": "track", "userId": "u", "event": "E0000", "messageId": "k1"},
        {"type": "track", "userId": "u", "event": "E9999", "messageId": "n1"},
        {"type": "track", "userId": "u", "event": "Overflow", "messageId": "n2"},
        {"type": "track", "userId": "u", "event": "E0001", "messageId": "k2"}
    ]});
    let (s, b) = app.track("/v1/batch", &batch).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 3);
    let rejected = b["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 1, "{b}");
    assert_eq!(rejected[0]["index"], 2);
    assert_eq!(rejected[0]["code"], "too_many_event_names");
    assert!(
        rejected[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("10000") && m.contains("properties")),
        "{b}"
    );
    let (s, b) = app
        .track(
            "/v1/track",
            &json!({"userId": "u", "event": "Another", "messageId": "n3"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "10000 distinct event names");
    assert_eq!(b["error"]["code"], "too_many_event_names");
    // A batch of nothing but refusals stores nothing, so it is not a 200.
    let (s, b) = app
        .track(
            "/v1/batch",
            &json!({"batch": [{"type": "track", "userId": "u", "event": "X", "messageId": "n4"}]}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "none of the 1 messages");
    assert_eq!(b["rejected"][0]["code"], "too_many_event_names");

    let (s, first) = app.admin_get("/api/v1/events").await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(first["events"].as_array().map(Vec::len), Some(100));
    assert_eq!(first["total_events"], 10_000);
    assert_eq!(first["rejected_over_limits"], 3);
    assert_eq!(first["limits"]["event_names"], 10_000);
    assert_eq!(first["events"][0]["name"], "E0000");
    assert_eq!(first["events"][0]["count"], 2);

    let mut seen: Vec<String> = Vec::new();
    let mut path = "/api/v1/events?limit=1000".to_string();
    loop {
        let (s, b) = app.admin_get(&path).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let events = b["events"].as_array().expect("events");
        assert!(events.len() <= 1000);
        seen.extend(
            events
                .iter()
                .filter_map(|e| e["name"].as_str().map(String::from)),
        );
        match b["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/events?limit=1000&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected = names;
    expected.push("E9999".into());
    assert_eq!(seen, expected, "every name exactly once, in name order");

    let (s, b) = app.admin_get("/api/v1/events?cursor=zz").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "next_cursor");
    let (s, b) = app.admin_get("/api/v1/events?limit=1001").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "limit");
}
