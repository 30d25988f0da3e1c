//! Recomputing a trait: values are overwritten in place, profiles the new run did not reach
//! lose theirs, and redefining a trait marks it not computed.

use affinity_store::TraitStore;
use affinity_store::sqlite::SqliteStore;
use serde_json::json;

fn value_of(store: &SqliteStore, profile: i64) -> Option<serde_json::Value> {
    store
        .computed_traits(profile)
        .expect("read")
        .into_iter()
        .find(|t| t.name == "top")
        .map(|t| t.value)
}

#[test]
fn a_recomputation_replaces_values_and_drops_profiles_it_did_not_reach() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    store
        .save_trait_definition("top", &json!({"name": "top"}), 1)
        .expect("define");
    store
        .put_computed_traits("top", &[(1, json!(["a"])), (2, json!(["b"]))], 100, None)
        .expect("put");
    store
        .finish_computed_traits("top", 100, 2, 7)
        .expect("finish");
    let definition = &store.trait_definitions().expect("list")[0];
    assert_eq!(
        (
            definition.computed_at,
            definition.profiles,
            definition.model_id
        ),
        (Some(100), 2, Some(7))
    );

    // The next run reaches profile 1 only, in two chunks.
    store
        .put_computed_traits("top", &[(1, json!(["c"]))], 200, None)
        .expect("put");
    // Mid-run, profile 2 still has its previous value.
    assert_eq!(value_of(&store, 2), Some(json!(["b"])));
    store
        .put_computed_traits("top", &[], 200, None)
        .expect("put");
    store
        .finish_computed_traits("top", 200, 1, 9)
        .expect("finish");
    assert_eq!(value_of(&store, 1), Some(json!(["c"])));
    assert_eq!(value_of(&store, 2), None);
    assert_eq!(store.trait_definitions().expect("list")[0].profiles, 1);

    // Redefining resets the computed state; values stay until the next run replaces them.
    store
        .save_trait_definition("top", &json!({"name": "top", "k": 3}), 300)
        .expect("redefine");
    let definition = &store.trait_definitions().expect("list")[0];
    assert_eq!((definition.computed_at, definition.profiles), (None, 0));
    assert_eq!(value_of(&store, 1), Some(json!(["c"])));
}
