//! Recomputing a trait: values are overwritten in place, profiles the new run did not reach
//! lose theirs (their destinations are sent the trait as null), and redefining a trait marks
//! it not computed.

use affinity_store::sqlite::SqliteStore;
use affinity_store::{
    ChangeOutbox, DestinationStore, OutboxMessage, ProfileTraits, TraitMessages, TraitStore,
    trait_cause,
};
use serde_json::{Value, json};

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
        .finish_computed_traits("top", 100, 2, 7, None)
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
        .finish_computed_traits("top", 200, 1, 9, None)
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

#[test]
fn a_profile_that_loses_its_value_is_sent_the_trait_as_null() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let dest = store
        .create_destination("hook", "webhook", &json!({}), 1)
        .expect("destination");
    store
        .save_trait_definition(
            "top",
            &json!({"name": "top", "destinations": [dest.to_string()]}),
            1,
        )
        .expect("define");
    let destinations = |d: &Value| -> Vec<i64> {
        d["destinations"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| i.as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    // A message per profile and run, its body the traits sent.
    let mut messages = |ids: &[i64], changes: &[ProfileTraits]| {
        Ok(ids
            .iter()
            .flat_map(|&d| {
                changes.iter().map(move |c| OutboxMessage {
                    destination_id: d,
                    cause: trait_cause("top"),
                    message_id: format!("{}@{}", c.profile_id, c.version),
                    body: Value::Object(c.traits.clone()).to_string(),
                    created_at: c.version,
                })
            })
            .collect())
    };
    let run = |values: &[(i64, Value)], version: i64, messages: &mut TraitMessages<'_>| {
        let mut outbox = ChangeOutbox {
            destinations: &destinations,
            messages,
        };
        store
            .put_computed_traits("top", values, version, Some(&mut outbox))
            .expect("put");
        store
            .finish_computed_traits("top", version, values.len(), 1, Some(&mut outbox))
            .expect("finish");
    };
    // Profile 3 has an empty list: no value to speak of, never sent.
    run(
        &[(1, json!(["a"])), (2, json!(["b"])), (3, json!([]))],
        100,
        &mut messages,
    );
    // The next run reaches profile 1 only (unchanged): 2 and 3 lose their values.
    run(&[(1, json!(["a"]))], 200, &mut messages);
    assert_eq!(value_of(&store, 2), None);
    let sent: Vec<(String, String)> = store
        .due_messages(dest, i64::MAX, 100)
        .expect("due")
        .into_iter()
        .map(|r| (r.message_id, r.body))
        .collect();
    let expected = [
        ("1@100", r#"{"top":["a"]}"#),
        ("2@100", r#"{"top":["b"]}"#),
        ("2@200", r#"{"top":null}"#),
    ];
    assert_eq!(
        sent,
        expected.map(|(id, body)| (id.to_string(), body.to_string()))
    );
    // Deleting the trait cancels what was not sent yet.
    assert!(store.delete_trait_definition("top").expect("delete"));
    let counts = store.delivery_counts(dest).expect("counts");
    assert_eq!((counts.pending, counts.cancelled), (0, 3));
    assert!(
        store
            .due_messages(dest, i64::MAX, 100)
            .expect("due")
            .is_empty()
    );
}
