//! The identity rule at the store: an alias between two identified people is stored as a
//! message but refused as a merge, recorded once, and listed newest first by pages.

use affinity_core::{IdKind, Message};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{EventLog, Profiles};
use rusqlite::Connection;
use serde_json::{Value, json};

fn msg(body: Value, received_at: i64) -> Message {
    Message::parse(&body.to_string(), None, received_at).expect("valid")
}

fn alias(id: &str, user: &str, previous: &str, at: i64) -> Message {
    msg(
        json!({"type": "alias", "messageId": id, "userId": user, "previousId": previous}),
        at,
    )
}

#[test]
fn an_alias_between_two_users_is_refused_recorded_once_and_paged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let mut writer = store.writer().expect("writer");
    writer
        .append(&[
            msg(
                json!({"type": "identify", "messageId": "i1", "userId": "owner",
                       "anonymousId": "owner-device", "traits": {"email": "o@x.io"}}),
                1,
            ),
            msg(
                json!({"type": "identify", "messageId": "i2", "userId": "intruder"}),
                2,
            ),
        ])
        .expect("append");
    let attacks = [
        alias("al1", "intruder", "owner", 3),
        alias("al2", "intruder", "owner-device", 4),
        alias("al3", "intruder", "owner", 5),
    ];
    writer.append(&attacks).expect("append");
    // A retry records nothing more.
    writer.append(&attacks).expect("retry");

    let owner = store
        .profile(IdKind::UserId, "owner")
        .expect("read")
        .expect("exists");
    let intruder = store
        .profile(IdKind::UserId, "intruder")
        .expect("read")
        .expect("exists");
    assert_ne!(owner.id, intruder.id);
    assert!(intruder.traits.is_empty(), "{:?}", intruder.traits);
    assert_eq!(
        intruder.identities,
        vec![(IdKind::UserId, "intruder".to_string())]
    );
    let events: Vec<String> = store
        .profile_events(intruder.id, 100)
        .expect("events")
        .into_iter()
        .map(|e| e.message_id)
        .collect();
    assert_eq!(
        events,
        ["al3", "al2", "al1", "i2"],
        "the aliases are stored"
    );
    assert_eq!(
        store.profile_events(owner.id, 100).expect("events").len(),
        1
    );

    let all = store.refused_merges(None, 10).expect("list");
    let listed: Vec<(&str, IdKind, &str, &str)> = all
        .iter()
        .map(|r| {
            (
                r.message_id.as_str(),
                r.identifier_kind,
                r.identifier.as_str(),
                r.owner.as_str(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("al3", IdKind::UserId, "owner", "owner"),
            ("al2", IdKind::AnonymousId, "owner-device", "owner"),
            ("al1", IdKind::UserId, "owner", "owner"),
        ]
    );
    assert!(all.iter().all(|r| r.user_id == "intruder"
        && r.reason == "user_id_limit"
        && r.message_type == "alias"));
    assert_eq!(all[0].received_at, 5);
    let page = store.refused_merges(Some(all[1].id), 10).expect("page");
    assert_eq!(page, all[2..].to_vec());
}

#[test]
fn a_shared_device_is_recorded_once_and_anonymous_aliases_still_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let mut writer = store.writer().expect("writer");
    let track = |id: &str, user: &str| {
        msg(
            json!({"type": "track", "event": "E", "messageId": id, "userId": user,
                   "anonymousId": "kiosk"}),
            1,
        )
    };
    writer
        .append(&[
            track("c1", "carol"),
            track("d1", "dave"),
            track("d2", "dave"),
        ])
        .expect("append");
    let refused = store.refused_merges(None, 10).expect("list");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (refused[0].message_id.as_str(), refused[0].user_id.as_str()),
        ("d1", "dave")
    );
    assert_eq!(refused[0].owner, "carol");

    writer
        .append(&[
            msg(
                json!({"type": "track", "event": "E", "messageId": "a1", "anonymousId": "anon"}),
                2,
            ),
            alias("al", "dave", "anon", 3),
        ])
        .expect("append");
    let dave = store
        .profile(IdKind::UserId, "dave")
        .expect("read")
        .expect("exists");
    assert!(
        dave.identities
            .contains(&(IdKind::AnonymousId, "anon".to_string()))
    );
    assert_eq!(store.profile_events(dave.id, 100).expect("events").len(), 4);
    assert_eq!(store.refused_merges(None, 10).expect("list").len(), 1);
}

#[test]
fn a_v5_store_gains_the_refused_merges_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        let conn = Connection::open(store.path()).expect("raw");
        crate::audience_snapshots::audiences_as_v8(&conn);
        conn.execute_batch(
            "DROP TABLE refused_merges; DROP TABLE credentials; DROP TABLE trait_backfills; DROP TABLE outbox_holds; DROP TABLE outbox; DROP TABLE destinations; DROP TABLE goal_definitions; DROP TABLE goal_results; PRAGMA user_version = 5;",
        )
        .expect("as v5");
    }
    let store = SqliteStore::open(dir.path()).expect("reopen migrates");
    assert_eq!(store.refused_merges(None, 10).expect("list"), []);
    let mut writer = store.writer().expect("writer");
    writer
        .append(&[
            msg(
                json!({"type": "identify", "messageId": "1", "userId": "a"}),
                1,
            ),
            msg(
                json!({"type": "identify", "messageId": "2", "userId": "b"}),
                1,
            ),
            alias("3", "b", "a", 2),
        ])
        .expect("append");
    assert_eq!(store.refused_merges(None, 10).expect("list").len(), 1);
}
