//! Recomputing a trait: values are overwritten in place, profiles the new run did not reach
//! lose theirs (their destinations are sent the trait as null), and redefining a trait marks
//! it not computed.

use affinity_store::sqlite::SqliteStore;
use affinity_store::{
    BackfillOf, ChangeOutbox, DestinationStore, OutboxMessage, ProfileTraits, StoreError,
    TraitMessages, TraitStore, trait_cause,
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

#[test]
fn a_trait_backfill_stopped_midway_is_resumed_after_a_restart_and_forgotten_with_its_trait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let dest = store
        .create_destination("hook", "webhook", &json!({}), 1)
        .expect("destination");
    store
        .save_trait_definition("top", &json!({"name": "top"}), 1)
        .expect("define");
    // Two pages and a bit (a page is 4,096 profiles).
    let values: Vec<(i64, Value)> = (1..=4_100).map(|p| (p, json!([p.to_string()]))).collect();
    store
        .put_computed_traits("top", &values, 100, None)
        .expect("put");
    let message = |ids: &[i64], changes: &[ProfileTraits]| -> Vec<OutboxMessage> {
        ids.iter()
            .flat_map(|&d| {
                changes.iter().map(move |c| OutboxMessage {
                    destination_id: d,
                    cause: trait_cause("top"),
                    message_id: format!("p{}", c.profile_id),
                    body: "{}".into(),
                    created_at: 2,
                })
            })
            .collect()
    };
    let queued = |store: &SqliteStore| store.delivery_counts(dest).expect("counts").pending;

    // The process stops after the first page: that page is queued and recorded as done, the
    // definition names the destination, and the rest is left for the next start.
    let mut pages = 0;
    let mut stopping = |ids: &[i64], changes: &[ProfileTraits]| {
        pages += 1;
        if pages > 1 {
            return Err(StoreError::Corrupt("stopped".into()));
        }
        Ok(message(ids, changes))
    };
    let with_dest = json!({"name": "top", "destinations": [dest.to_string()]});
    assert!(
        store
            .set_trait_destinations("top", &with_dest, &[dest], &mut stopping)
            .is_err()
    );
    assert_eq!(queued(&store), 4_096);
    drop(store);

    let store = SqliteStore::open(dir.path()).expect("reopen");
    let unfinished = store.unfinished_backfills().expect("unfinished");
    assert_eq!(unfinished.len(), 1);
    assert_eq!(
        (
            &unfinished[0].of,
            unfinished[0].destinations.as_slice(),
            unfinished[0].after
        ),
        (&BackfillOf::Trait("top".into()), &[dest][..], 4_096)
    );
    let mut messages = |ids: &[i64], changes: &[ProfileTraits]| -> Result<_, StoreError> {
        Ok(message(ids, changes))
    };
    store
        .resume_backfill(&unfinished[0], &mut messages)
        .expect("resume");
    assert_eq!(queued(&store), 4_100, "every value queued once");
    assert_eq!(store.unfinished_backfills().expect("unfinished"), []);

    // Stopped before its first page, then the trait is deleted: nothing is left to resume.
    let other = store
        .create_destination("other", "webhook", &json!({}), 3)
        .expect("destination");
    let mut failing = |_: &[i64], _: &[ProfileTraits]| -> Result<Vec<OutboxMessage>, StoreError> {
        Err(StoreError::Corrupt("stop".into()))
    };
    assert!(
        store
            .set_trait_destinations("top", &with_dest, &[other], &mut failing)
            .is_err()
    );
    assert_eq!(store.unfinished_backfills().expect("unfinished").len(), 1);
    assert!(store.delete_trait_definition("top").expect("delete"));
    assert_eq!(store.unfinished_backfills().expect("unfinished"), []);
}
