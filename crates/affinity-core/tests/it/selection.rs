//! The `model_selection` setting of a catalog: its names and its default.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use affinity_core::catalog::{CatalogConfig, ModelSelection};
use serde_json::json;

#[test]
fn model_selection_names_and_default() {
    for (name, selection) in [
        ("user_time", ModelSelection::UserTime),
        ("time", ModelSelection::Time),
        ("random", ModelSelection::Random),
    ] {
        let config: CatalogConfig = serde_json::from_value(json!({
            "events": [{"name": "Viewed", "product_id_property": "sku"}],
            "model_selection": name
        }))
        .unwrap();
        assert_eq!(config.model_selection, Some(selection));
        assert_eq!(
            serde_json::to_value(&config).unwrap()["model_selection"],
            name
        );
    }
    let unset: CatalogConfig = serde_json::from_value(json!({
        "events": [{"name": "Viewed", "product_id_property": "sku"}]
    }))
    .unwrap();
    assert_eq!(unset.model_selection, None);
    // Training falls back to the per-user time holdout.
    assert_eq!(ModelSelection::default(), ModelSelection::UserTime);
    assert!(
        serde_json::from_value::<ModelSelection>(json!("user-time")).is_err(),
        "one spelling"
    );
}
