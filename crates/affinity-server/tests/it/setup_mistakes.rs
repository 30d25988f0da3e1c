//! Setup mistakes as a user makes them: a catalog mapping naming a property the events do not
//! carry is accepted with a warning suggesting the keys they do carry; the built catalog with
//! 0 items says which mapping found nothing; training's error names the event and property.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::catalog::{put_catalog, ready_catalog};
use crate::models::{finished, train};
use crate::support::TestApp;

async fn seed(app: &TestApp) {
    let batch = json!({"batch": [
        {"type": "track", "userId": "ann", "event": "Order Completed", "timestamp": "2026-01-02T00:00:00Z",
         "properties": {"order_id": "A", "products": [{"product_id": "sku-1", "brand": "Acme"}, {"product_id": "sku-2", "brand": "Globex"}]}},
        {"type": "track", "userId": "bob", "event": "Product Viewed", "timestamp": "2026-01-03T00:00:00Z",
         "properties": {"product_id": "sku-1", "brand": "Acme", "category": "Keyboards"}}
    ]});
    let (s, b) = app.track("/v1/batch", &batch).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// The warning (field, message) pairs of a catalog answer.
fn warnings(body: &Value) -> Vec<(String, String)> {
    body["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings list: {body}"))
        .iter()
        .map(|w| {
            (
                w["field"].as_str().unwrap_or_default().to_string(),
                w["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_wrong_mapping_warns_with_the_closest_keys_and_names_itself_when_empty() {
    let app = TestApp::spawn().await;
    seed(&app).await;

    // A right mapping: no warnings.
    let good = json!({
        "events": [{"name": "Order Completed", "product_id_property": "product_id"},
                   {"name": "Product Viewed", "product_id_property": "product_id"}],
        "columns": [{"name": "brand", "properties": {"Order Completed": "brand", "Product Viewed": "brand"}}]
    });
    let (s, b) = put_catalog(&app, &good).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(warnings(&b), vec![], "{b}");
    let built = ready_catalog(&app).await;
    assert_eq!(warnings(&built), vec![], "{built}");

    // `sku` on events that carry `product_id`, and a column mapped to `brandx`.
    let wrong = json!({
        "events": [{"name": "Order Completed", "product_id_property": "sku"},
                   {"name": "Product Viewed", "product_id_property": "product_idd"}],
        "columns": [{"name": "brand", "properties": {"Order Completed": "brandx", "Product Viewed": "brand"}}]
    });
    let (s, b) = put_catalog(&app, &wrong).await;
    assert_eq!(s, StatusCode::OK, "accepted, with warnings: {b}");
    let w = warnings(&b);
    let fields: Vec<&str> = w.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "events[0].product_id_property",
            "events[1].product_id_property",
            "columns[0].properties.Order Completed"
        ],
        "{b}"
    );
    assert!(w[0].1.contains(r#"has "sku""#), "{b}");
    assert!(
        w[1].1.contains(r#"closest keys on it: "product_id""#),
        "the nearest key first: {b}"
    );
    assert!(
        w[2].1.contains(r#"closest keys on it: "products[].brand""#),
        "{b}"
    );

    // Built, the catalog has 0 items and says which mapping produced nothing.
    let built = ready_catalog(&app).await;
    assert_eq!(built["items"], 0, "{built}");
    let w = warnings(&built);
    assert_eq!(w[0].0, "events", "{built}");
    assert!(
        w[0].1.contains(r#"none of the 1 "Order Completed" messages has a product id in `product_id_property` "sku""#),
        "{built}"
    );
    assert!(w[0].1.contains(r#""product_idd""#), "{built}");
    assert!(
        w.iter().any(|(f, _)| f == "events[1].product_id_property"),
        "{built}"
    );

    // Training fails naming the events and their properties.
    let (s, job) = train(&app, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let model = finished(&app, &job["model_id"]).await;
    assert_eq!(model["status"], "failed", "{model}");
    let error = model["error"].as_str().expect("error");
    assert!(
        error.contains(
            r#""Order Completed" messages has a product id in `product_id_property` "sku""#
        ) && error.contains(r#""product_idd""#),
        "{model}"
    );
}
