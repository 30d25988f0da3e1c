//! Bounds on what the public write key can create in discovery: event names beyond the bound
//! are refused and counted, keys beyond the per-event bound are left out of the listing only,
//! and the paged listing returns every event exactly once.

use affinity_core::Message;
use affinity_store::sqlite::SqliteStore;
use affinity_store::{DiscoveryLimits, EventDiscovery, EventLog, Outcome, Profiles, Refusal};
use serde_json::{Map, Value, json};

fn open(event_names: u64, keys: u64) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = DiscoveryLimits {
        event_names,
        property_keys_per_event: keys,
    };
    let store = SqliteStore::open_with_limits(dir.path(), limits).expect("open");
    (dir, store)
}

fn track(id: &str, user: &str, event: &str, keys: &[&str]) -> Message {
    let properties: Map<String, Value> = keys.iter().map(|k| (k.to_string(), json!(1))).collect();
    let raw = json!({"type": "track", "messageId": id, "userId": user, "event": event,
                     "properties": properties});
    Message::parse(&raw.to_string(), None, 1_000).expect("valid message")
}

#[test]
fn a_name_beyond_the_bound_is_refused_counted_and_leaves_no_trace() {
    let (_dir, store) = open(3, 100);
    let mut writer = store.writer().expect("writer");
    // The bound is reached across transactions and then inside one: both paths must hold.
    let first = writer
        .append(&[track("m1", "u1", "A", &[]), track("m2", "u1", "B", &[])])
        .expect("append");
    assert_eq!(first, vec![Outcome::Stored, Outcome::Stored]);
    let refused = Outcome::Refused(Refusal::TooManyEventNames { limit: 3 });
    let second = writer
        .append(&[
            track("m3", "u1", "C", &[]),
            track("m4", "stranger", "D", &[]),
            // Earlier names still work, in the same transaction as a refusal.
            track("m5", "u1", "A", &[]),
            track("m4b", "u1", "E", &[]),
            // Non-track messages have no name and are never refused.
            Message::parse(
                r#"{"type":"identify","messageId":"i1","userId":"u1","traits":{"a":1}}"#,
                None,
                1_000,
            )
            .expect("identify"),
        ])
        .expect("append");
    assert_eq!(
        second,
        vec![
            Outcome::Stored,
            refused,
            Outcome::Stored,
            refused,
            Outcome::Stored
        ]
    );
    // A new writer (a restart, or `affinity import`) reads the bound from the tables.
    let mut writer = store.writer().expect("second writer");
    let third = writer
        .append(&[track("m6", "u1", "F", &[]), track("m7", "u2", "B", &[])])
        .expect("append");
    assert_eq!(third, vec![refused, Outcome::Stored]);

    let totals = store.discovery_totals().expect("totals");
    assert_eq!(totals.event_names, 3);
    assert_eq!(totals.track_messages, 5);
    assert_eq!(totals.refused_over_limits, 3);
    let page = store.events_page(None, 10).expect("page");
    let names: Vec<&str> = page.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"]);
    assert!(store.event("D").expect("lookup").is_none());
    // The refused message did not create its sender's profile.
    assert!(
        store
            .profile(affinity_core::IdKind::UserId, "stranger")
            .expect("profile")
            .is_none()
    );
    // Refused, so it can be sent again once a name is freed or the bound raised: not a
    // duplicate.
    let again = writer
        .append(&[track("m4", "stranger", "D", &[])])
        .expect("append");
    assert_eq!(again, vec![refused]);
    assert_eq!(
        store
            .discovery_totals()
            .expect("totals")
            .refused_over_limits,
        4
    );
    assert_eq!(
        Refusal::TooManyEventNames { limit: 3 }.code(),
        "too_many_event_names"
    );
}

#[test]
fn keys_beyond_the_per_event_bound_are_not_listed_but_the_message_is_stored() {
    let (_dir, store) = open(10, 3);
    let mut writer = store.writer().expect("writer");
    let out = writer
        .append(&[track("m1", "u1", "View", &["a", "b"])])
        .expect("append");
    assert_eq!(out, vec![Outcome::Stored]);
    let out = writer
        .append(&[
            track("m2", "u1", "View", &["a", "c", "d", "e"]),
            track("m3", "u1", "View", &["d", "b"]),
        ])
        .expect("append");
    assert_eq!(out, vec![Outcome::Stored, Outcome::Stored]);
    let view = store.event("View").expect("lookup").expect("View listed");
    assert_eq!(view.count, 3);
    let mut keys: Vec<(&str, u64)> = view
        .properties
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    keys.sort();
    assert_eq!(keys, [("a", 2), ("b", 2), ("c", 1)]);
    assert!(view.properties_at_limit);
    // d twice, e once.
    assert_eq!(
        store
            .discovery_totals()
            .expect("totals")
            .property_keys_not_listed,
        3
    );
    // Stored whole: the unlisted keys are still in the message.
    let events = store.profile_events(1, 10).expect("events");
    assert!(events.iter().any(|e| e.raw.contains("\"e\"")));
}

#[test]
fn pages_list_every_event_exactly_once() {
    let (_dir, store) = open(1_000, 10);
    let mut writer = store.writer().expect("writer");
    let names: Vec<String> = (0..57).map(|i| format!("Event {i:03}")).collect();
    let messages: Vec<Message> = names
        .iter()
        .enumerate()
        .map(|(i, n)| track(&format!("m{i}"), "u1", n, &["k"]))
        .collect();
    writer.append(&messages).expect("append");
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.events_page(after.as_deref(), 10).expect("page");
        assert!(page.events.len() <= 10);
        pages += 1;
        seen.extend(page.events.into_iter().map(|e| e.name));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
        // A name added between two pages, after the cursor, is listed in a later page.
        if pages == 2 {
            writer
                .append(&[track("late", "u1", "Event 999", &[])])
                .expect("append");
        }
    }
    assert_eq!(pages, 6);
    let mut expected = names.clone();
    expected.push("Event 999".into());
    assert_eq!(seen, expected);
    let known = store
        .events_known(&["Event 001", "Nope", "Event 999"])
        .expect("known");
    assert_eq!(known, [true, false, true]);
}
