//! Audiences keep their id across numbered snapshots: member lists per snapshot, retention of
//! the newest ones, and the v9 migration of v4–v8 stores (one `audiences` row per snapshot,
//! linked by `previous_id`) into one audience per chain.

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use affinity_store::sqlite::SqliteStore;
use affinity_store::{
    AudienceStore, DestinationStore, FinishedSnapshot, KEPT_MEMBER_LISTS, Member, OutboxMessage,
    SnapshotFinished, SpecSaved, audience_cause,
};

/// The audience tables as v4 created them and v5–v8 kept them, replacing v9's (and v11's
/// aliases): for tests that build an older store by hand from a fresh one.
pub fn audiences_as_v8(conn: &Connection) {
    conn.execute_batch(
        "DROP TABLE audience_members; DROP TABLE audience_snapshots; DROP TABLE audiences;
         DROP TABLE audience_aliases;
         CREATE TABLE audiences (
             id          INTEGER PRIMARY KEY,
             name        TEXT    NOT NULL,
             spec        TEXT    NOT NULL,
             status      TEXT    NOT NULL,
             size        INTEGER NOT NULL DEFAULT 0,
             model_id    INTEGER,
             created_at  INTEGER NOT NULL,
             computed_at INTEGER,
             estimate    TEXT,
             error       TEXT,
             previous_id INTEGER,
             changes     TEXT
         );
         CREATE TABLE audience_members (
             audience_id INTEGER NOT NULL,
             rank        INTEGER NOT NULL,
             profile_id  INTEGER NOT NULL,
             user_id     TEXT    NOT NULL,
             score       REAL    NOT NULL,
             control     INTEGER NOT NULL,
             PRIMARY KEY (audience_id, rank)
         ) WITHOUT ROWID;
         CREATE INDEX audience_members_user ON audience_members (audience_id, user_id);",
    )
    .expect("v8 audience tables");
}

fn member(rank: i64, user: &str) -> Member {
    Member {
        rank,
        profile_id: rank,
        user_id: user.to_string(),
        score: 1.0 / rank as f64,
        control: false,
    }
}

fn finish(store: &SqliteStore, id: i64, snapshot: i64, members: &[Member]) {
    let why: Vec<String> = members
        .iter()
        .map(|m| format!("why {}", m.user_id))
        .collect();
    // Two chunks, as the engine adds a big snapshot's members (none once its audience is
    // deleted).
    let half = members.len() / 2;
    for (chunk, why) in [
        (&members[..half], &why[..half]),
        (&members[half..], &why[half..]),
    ] {
        store
            .add_snapshot_members(id, snapshot, chunk, why)
            .expect("add members");
    }
    store
        .finish_audience(
            id,
            snapshot,
            &FinishedSnapshot {
                model_id: snapshot,
                size: members.len() as i64,
                ranking: &[1, 2, 3],
                estimate: &json!({"snapshot": snapshot}),
                changes: (snapshot > 1).then_some(&json!({"previous_snapshot": snapshot - 1})),
                computed_at: snapshot * 10,
                spec: None,
            },
            None,
        )
        .expect("finish");
}

#[test]
fn snapshots_are_numbered_under_one_id_and_old_member_lists_are_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let id = store
        .create_audience("buyers", &json!({"n": 1}), "computing", 1)
        .expect("create");
    assert_eq!(
        store.next_snapshot(id, "computing", 2).expect("next"),
        None,
        "one snapshot in progress at a time"
    );
    finish(&store, id, 1, &[member(1, "ann"), member(2, "ben")]);
    let next = store.next_snapshot(id, "queued", 3).expect("next");
    assert_eq!(next, Some(2));
    // While snapshot 2 waits, the audience's members are still snapshot 1's.
    let a = store.audience(id).expect("read").expect("exists");
    assert_eq!((a.latest.snapshot, a.latest.status.as_str()), (2, "queued"));
    assert_eq!(a.live.as_ref().map(|l| l.snapshot), Some(1));
    assert!(store.start_snapshot(id, 2).expect("start"));
    finish(&store, id, 2, &[member(1, "ben"), member(2, "cid")]);
    let a = store.audience(id).expect("read").expect("exists");
    assert_eq!(a.live.as_ref().map(|l| l.snapshot), Some(2));
    assert_eq!(
        a.live.expect("live").changes,
        json!({"previous_snapshot": 1})
    );
    let users = |n: i64| -> Vec<String> {
        store
            .audience_members(id, n, 0, 100)
            .expect("members")
            .into_iter()
            .map(|m| m.user_id)
            .collect()
    };
    assert_eq!(users(1), ["ann", "ben"]);
    assert_eq!(users(2), ["ben", "cid"]);
    let (m, why) = store
        .audience_member(id, 1, "ann")
        .expect("read")
        .expect("a member of snapshot 1");
    assert_eq!((m.rank, why.as_deref()), (1, Some("why ann")));
    assert_eq!(store.audience_member(id, 2, "ann").expect("read"), None);

    // Beyond KEPT_MEMBER_LISTS live snapshots, the oldest lists go; their records stay.
    for n in 3..=KEPT_MEMBER_LISTS + 1 {
        assert_eq!(
            store.next_snapshot(id, "computing", n).expect("next"),
            Some(n)
        );
        finish(&store, id, n, &[member(1, "dan")]);
    }
    let snapshots = store.audience_snapshots(id).expect("snapshots");
    assert_eq!(snapshots.len() as i64, KEPT_MEMBER_LISTS + 1);
    assert_eq!(snapshots[0].snapshot, KEPT_MEMBER_LISTS + 1, "newest first");
    let first = snapshots.last().expect("snapshot 1");
    assert!(!first.members_kept);
    assert_eq!(first.size, 2, "the record keeps its size");
    assert!(users(1).is_empty());
    assert_eq!(store.snapshot_ranking(id, 1).expect("read"), None);
    assert!(
        snapshots[..snapshots.len() - 1]
            .iter()
            .all(|s| s.members_kept)
    );
    assert_eq!(users(2), ["ben", "cid"]);
    assert_eq!(
        store.snapshot_ranking(id, 2).expect("read"),
        Some(vec![1, 2, 3])
    );

    assert!(store.delete_audience(id).expect("delete"));
    assert!(store.audience_snapshots(id).expect("snapshots").is_empty());
    assert!(users(2).is_empty());
    // A snapshot that finishes after its audience was deleted leaves nothing behind.
    finish(&store, id, KEPT_MEMBER_LISTS + 2, &[member(1, "eve")]);
    assert!(users(KEPT_MEMBER_LISTS + 2).is_empty());
    assert!(store.audience(id).expect("read").is_none());
}

/// One v8 row: `(id, previous_id, status, members)`.
type V8Row<'a> = (i64, Option<i64>, &'a str, &'a [&'a str]);

#[test]
fn members_and_messages_added_in_chunks_are_unseen_until_live_and_gone_with_a_failed_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let dest = store
        .create_destination("hook", "webhook", &json!({}), 1)
        .expect("destination");
    let id = store
        .create_audience("buyers", &json!({"n": 1}), "computing", 1)
        .expect("create");
    let members = [member(1, "ann"), member(2, "ben"), member(3, "cid")];
    assert!(
        store
            .add_snapshot_members(id, 1, &members[..2], &[])
            .expect("add")
    );
    assert!(
        store
            .add_snapshot_members(id, 1, &members[2..], &[])
            .expect("add")
    );
    let a = store.audience(id).expect("read").expect("exists");
    assert_eq!(a.live, None, "nothing is live while it computes");
    // Held messages are queued before the ones already due, so a due query that walked past
    // held rows (or let them through) would show it.
    let message = |n: usize, at: i64| OutboxMessage {
        destination_id: dest,
        cause: audience_cause(id),
        message_id: format!("m{n}"),
        body: "{}".into(),
        created_at: at,
    };
    let due = || -> Vec<String> {
        store
            .due_messages(dest, i64::MAX, 100)
            .expect("due")
            .into_iter()
            .map(|r| r.message_id)
            .collect()
    };
    let logged = || -> Vec<String> {
        store
            .deliveries(dest, None, 0, 100)
            .expect("log")
            .into_iter()
            .map(|r| r.message_id)
            .collect()
    };
    let counts = || {
        let c = store.delivery_counts(dest).expect("counts");
        (c.held, c.pending)
    };
    let finished = FinishedSnapshot {
        model_id: 1,
        size: 3,
        ranking: &[],
        estimate: &json!({}),
        changes: None,
        computed_at: 2,
        spec: None,
    };
    // Snapshot 1's messages, a chunk per transaction under a hold: the worker and the log do
    // not see them; the counts say they are held.
    let hold = store
        .create_outbox_hold("audience snapshot 1", 1)
        .expect("hold");
    assert_eq!(
        store
            .enqueue_held(hold, &[message(1, 1), message(2, 1)])
            .expect("held"),
        Some(2)
    );
    assert_eq!(store.enqueue_messages(&[message(0, 5)]).expect("queue"), 1);
    assert_eq!(due(), ["m0"]);
    assert_eq!(store.next_due(dest).expect("next"), Some(5));
    assert_eq!(logged(), ["m0"]);
    assert_eq!(counts(), (2, 1));
    // The snapshot fails: its held messages go with its members, and the hold takes no more.
    assert_eq!(store.drop_outbox_hold(hold).expect("drop"), 2);
    store.fail_audience(id, 1, "no recipients").expect("fail");
    assert_eq!(store.audience_members(id, 1, 0, 10).expect("members"), []);
    assert_eq!(counts(), (0, 1));
    assert_eq!(
        store.enqueue_held(hold, &[message(1, 1)]).expect("gone"),
        None
    );
    assert_eq!(due(), ["m0"]);

    // A snapshot that goes live releases its held messages in its transaction: all due at once.
    assert_eq!(
        store.next_snapshot(id, "computing", 3).expect("next"),
        Some(2)
    );
    assert!(
        store
            .add_snapshot_members(id, 2, &members, &[])
            .expect("add")
    );
    let hold = store
        .create_outbox_hold("audience snapshot 2", 3)
        .expect("hold");
    for chunk in [vec![message(3, 3)], vec![message(4, 3), message(5, 3)]] {
        assert_eq!(
            store.enqueue_held(hold, &chunk).expect("held"),
            Some(chunk.len())
        );
    }
    assert_eq!(due(), ["m0"]);
    assert_eq!(
        store
            .finish_audience(id, 2, &finished, Some(hold))
            .expect("finish"),
        SnapshotFinished::Live
    );
    assert_eq!(due(), ["m3", "m4", "m5", "m0"], "oldest due first");
    assert_eq!(store.next_due(dest).expect("next"), Some(3));
    assert_eq!(logged(), ["m0", "m3", "m4", "m5"]);
    assert_eq!(counts(), (0, 4));
    assert_eq!(
        store.drop_outbox_hold(hold).expect("drop"),
        0,
        "a released hold's messages are live: dropping it deletes nothing"
    );
    assert_eq!(counts(), (0, 4));
    assert_eq!(
        store.audience_members(id, 2, 0, 10).expect("members").len(),
        3
    );

    // A process stopped mid-computation: its snapshot fails at the next start, with the
    // members and held messages it had added; a new hold never reuses a released one's id.
    assert_eq!(
        store.next_snapshot(id, "computing", 4).expect("next"),
        Some(3)
    );
    assert!(
        store
            .add_snapshot_members(id, 3, &members[..1], &[])
            .expect("add")
    );
    let stopped = store
        .create_outbox_hold("audience snapshot 3", 4)
        .expect("hold");
    assert!(stopped > hold);
    assert_eq!(
        store.enqueue_held(stopped, &[message(6, 4)]).expect("held"),
        Some(1)
    );
    assert_eq!(counts(), (1, 4));
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("reopen");
    assert_eq!(store.fail_unfinished_audiences("stopped").expect("fail"), 1);
    assert_eq!(store.audience_members(id, 3, 0, 10).expect("members"), []);
    let c = store.delivery_counts(dest).expect("counts");
    assert_eq!((c.held, c.pending), (0, 4));
    assert_eq!(
        store.due_messages(dest, i64::MAX, 100).expect("due").len(),
        4
    );
    // Its finish, had the process lived on, finds the hold gone and stores nothing.
    assert_eq!(
        store
            .finish_audience(id, 3, &finished, Some(stopped))
            .expect("finish"),
        SnapshotFinished::Gone
    );
    assert_eq!(
        store.audience_members(id, 2, 0, 10).expect("members").len(),
        3
    );
    // Deleting the audience cancels its messages not sent yet: kept in the log, never sent.
    let other = OutboxMessage {
        cause: audience_cause(id + 1),
        ..message(7, 5)
    };
    assert_eq!(store.enqueue_messages(&[other]).expect("queue"), 1);
    assert!(store.delete_audience(id).expect("delete"));
    let c = store.delivery_counts(dest).expect("counts");
    assert_eq!((c.pending, c.cancelled), (1, 4), "another audience's stays");
    let due: Vec<String> = store
        .due_messages(dest, i64::MAX, 100)
        .expect("due")
        .into_iter()
        .map(|r| r.message_id)
        .collect();
    assert_eq!(due, ["m7"]);
    let log = store
        .deliveries(dest, Some("cancelled"), 0, 100)
        .expect("log");
    assert_eq!(log.len(), 4);
    assert!(
        !store
            .add_snapshot_members(id, 3, &members, &[])
            .expect("add")
    );
}

#[test]
fn a_destination_added_receives_its_held_backfill_with_the_spec_or_not_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let dest = store
        .create_destination("hook", "webhook", &json!({}), 1)
        .expect("destination");
    let id = store
        .create_audience("buyers", &json!({"destinations": []}), "computing", 1)
        .expect("create");
    finish(&store, id, 1, &[member(1, "ann"), member(2, "ben")]);
    let message = |n: usize| OutboxMessage {
        destination_id: dest,
        cause: audience_cause(id),
        message_id: format!("m{n}"),
        body: "{}".into(),
        created_at: 2,
    };
    let due = || -> Vec<String> {
        store
            .due_messages(dest, i64::MAX, 100)
            .expect("due")
            .into_iter()
            .map(|r| r.message_id)
            .collect()
    };
    let spec = || store.audience(id).expect("read").expect("exists").spec;
    let added = json!({"destinations": [dest.to_string()]});

    // Snapshot 2 goes live while snapshot 1's members are queued for the new destination: the
    // change is refused as stale, nothing is stored, and dropping the hold leaves nothing.
    let hold = store
        .create_outbox_hold("destinations added", 2)
        .expect("hold");
    assert_eq!(
        store
            .enqueue_held(hold, &[message(1), message(2)])
            .expect("held"),
        Some(2)
    );
    assert_eq!(
        store.next_snapshot(id, "computing", 2).expect("next"),
        Some(2)
    );
    finish(&store, id, 2, &[member(1, "ann")]);
    assert_eq!(
        store
            .set_audience_spec(id, &added, Some(1), Some(hold))
            .expect("save"),
        SpecSaved::Stale
    );
    assert_eq!(spec(), json!({"destinations": []}));
    assert!(due().is_empty(), "held rows are never due");
    assert_eq!(store.drop_outbox_hold(hold).expect("drop"), 2);
    assert_eq!(store.delivery_counts(dest).expect("counts").held, 0);

    // Read again from snapshot 2: held until the spec is saved, then all due with it.
    let hold = store
        .create_outbox_hold("destinations added", 3)
        .expect("hold");
    assert_eq!(
        store.enqueue_held(hold, &[message(3)]).expect("held"),
        Some(1)
    );
    assert!(due().is_empty());
    assert_eq!(
        store
            .set_audience_spec(id, &added, Some(2), Some(hold))
            .expect("save"),
        SpecSaved::Saved
    );
    assert_eq!(spec(), added);
    assert_eq!(due(), ["m3"]);
    assert_eq!(
        store.drop_outbox_hold(hold).expect("drop"),
        0,
        "released with the spec: its rows are live"
    );
    assert_eq!(due(), ["m3"]);

    // No audience: nothing stored; with no live snapshot yet, `None` matches.
    assert_eq!(
        store
            .set_audience_spec(id + 1, &added, Some(2), None)
            .expect("save"),
        SpecSaved::NoAudience
    );
    let fresh = store
        .create_audience("new", &json!({"destinations": []}), "computing", 4)
        .expect("create");
    assert_eq!(
        store
            .set_audience_spec(fresh, &added, None, None)
            .expect("save"),
        SpecSaved::Saved
    );
}

#[test]
fn who_entered_and_exited_is_read_from_the_stored_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let id = store
        .create_audience("buyers", &json!({"n": 1}), "computing", 1)
        .expect("create");
    let with_control = |users: &[&str], control: &[&str]| -> Vec<Member> {
        users
            .iter()
            .enumerate()
            .map(|(i, u)| Member {
                control: control.contains(u),
                ..member(i as i64 + 1, u)
            })
            .collect()
    };
    // ben: control, never sent; then ben moves into treatment (enters), cid into control
    // (exits), fay is a new control member (never sent).
    finish(
        &store,
        id,
        1,
        &with_control(&["ann", "ben", "cid", "dan"], &["ben"]),
    );
    assert_eq!(
        store.next_snapshot(id, "computing", 2).expect("next"),
        Some(2)
    );
    finish(
        &store,
        id,
        2,
        &with_control(&["ben", "cid", "eve", "fay", "dan"], &["cid", "fay"]),
    );
    let users = |snapshot: i64, other: i64, treatment: bool, after: i64, limit: usize| {
        store
            .members_not_in(id, snapshot, other, treatment, after, limit)
            .expect("diff")
            .into_iter()
            .map(|m| m.user_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        users(2, 1, true, 0, 10),
        ["ben", "eve"],
        "entered the treatment"
    );
    assert_eq!(
        users(1, 2, true, 0, 10),
        ["ann", "cid"],
        "exited the treatment"
    );
    assert_eq!(
        users(2, 1, false, 0, 10),
        ["eve", "fay"],
        "entered the audience"
    );
    assert_eq!(users(1, 2, false, 0, 10), ["ann"], "exited the audience");
    // A first snapshot (compared with none): every treatment member enters, in rank order,
    // a page at a time.
    assert_eq!(users(2, 0, true, 0, 10), ["ben", "eve", "dan"]);
    assert_eq!(users(2, 0, true, 0, 2), ["ben", "eve"]);
    assert_eq!(users(2, 0, true, 3, 2), ["dan"], "after rank 3");
    assert!(
        users(0, 2, true, 0, 10).is_empty(),
        "nobody exits a first snapshot"
    );
    assert_eq!(store.count_members_not_in(id, 2, 1).expect("count"), 2);
    assert_eq!(store.count_members_not_in(id, 1, 2).expect("count"), 1);
    assert_eq!(store.count_members_not_in(id, 2, 2).expect("count"), 0);
}

/// The outbox as v8–v11 kept it (no holds, no causes), replacing v12's, and no v13
/// `trait_backfills`: for tests that build an older store by hand from a fresh one.
pub fn outbox_as_v11(conn: &Connection) {
    conn.execute_batch(
        "DROP TABLE trait_backfills;
         DROP TABLE outbox_holds;
         DROP INDEX outbox_due;
         ALTER TABLE outbox DROP COLUMN hold_id;
         ALTER TABLE outbox DROP COLUMN cause;
         CREATE INDEX outbox_due ON outbox (destination_id, status, next_attempt_at);",
    )
    .expect("v11 outbox");
}

#[test]
fn a_v11_store_s_outbox_migrates_with_its_messages_due() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let dest = store
        .create_destination("hook", "webhook", &json!({}), 1)
        .expect("destination");
    drop(store);
    {
        let conn = Connection::open(dir.path().join("affinity.db")).expect("raw");
        outbox_as_v11(&conn);
        conn.execute(
            "INSERT INTO outbox (destination_id, message_id, body, status, next_attempt_at,
                created_at, queued_at, updated_at)
             VALUES (?1, 'v11', '{}', 'pending', 1, 1, 1, 1)",
            [dest],
        )
        .expect("v11 row");
        conn.pragma_update(None, "user_version", 11)
            .expect("user_version");
    }
    let store = SqliteStore::open(dir.path()).expect("reopen migrates");
    let version: i64 = Connection::open(store.path())
        .expect("raw")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 13, "the newest schema");
    let due = store.due_messages(dest, 10, 10).expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].message_id, "v11");
    let c = store.delivery_counts(dest).expect("counts");
    assert_eq!((c.held, c.pending), (0, 1));
    let hold = store
        .create_outbox_hold("after the migration", 2)
        .expect("hold");
    let held = OutboxMessage {
        destination_id: dest,
        cause: "test".into(),
        message_id: "held".into(),
        body: "{}".into(),
        created_at: 1,
    };
    assert_eq!(store.enqueue_held(hold, &[held]).expect("held"), Some(1));
    assert_eq!(store.due_messages(dest, 10, 10).expect("due").len(), 1);
}

#[test]
fn a_v8_store_s_chains_become_audiences_with_numbered_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = json!({"name": "buyers", "target": {"item_id": "sku-1"}});
    let envelope = |key: &str, v: &Value| json!({"version": 1, key: v}).to_string();
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        let conn = Connection::open(store.path()).expect("raw");
        audiences_as_v8(&conn);
        // Chain 1 → 3 → 4 (refreshed twice, 2 is another audience), 5 alone and failed, 7
        // refreshed from 6, which was deleted: 7 starts a chain of its own.
        let rows: [V8Row; 5] = [
            (1, None, "live", &["ann", "ben"]),
            (2, None, "live", &["zed"]),
            (3, Some(1), "live", &["ben", "cid"]),
            (4, Some(3), "live", &["cid", "dan", "eve"]),
            (7, Some(6), "live", &["fay"]),
        ];
        for (id, previous, status, members) in rows {
            let changes = previous.map(|p| {
                envelope(
                    "changes",
                    &json!({"previous_id": p, "entered": 1, "exited": 1, "stayed": 1,
                            "entered_users": [], "exited_users": []}),
                )
            });
            conn.execute(
                "INSERT INTO audiences (id, name, spec, status, size, model_id, created_at,
                    computed_at, estimate, previous_id, changes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    id,
                    format!("audience {id}"),
                    envelope("spec", &spec),
                    status,
                    members.len() as i64,
                    id * 100,
                    id * 1000,
                    id * 1000 + 1,
                    envelope("estimate", &json!({"row": id})),
                    previous,
                    changes
                ],
            )
            .expect("v8 row");
            for (i, user) in members.iter().enumerate() {
                conn.execute(
                    "INSERT INTO audience_members (audience_id, rank, profile_id, user_id, score, control)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, i as i64 + 1, i as i64 + 1, user, 0.5, i64::from(i == 1)],
                )
                .expect("v8 member");
            }
        }
        conn.execute(
            "INSERT INTO audiences (id, name, spec, status, created_at, error)
             VALUES (5, 'audience 5', ?1, 'failed', 5000, 'no model')",
            [envelope("spec", &spec)],
        )
        .expect("v8 failed row");
        // v10's tables did not exist in a v8 store (v11's went with `audiences_as_v8`).
        conn.execute_batch("DROP TABLE goal_definitions; DROP TABLE goal_results")
            .expect("as v8");
        outbox_as_v11(&conn);
        conn.pragma_update(None, "user_version", 8)
            .expect("user_version");
    }

    let store = SqliteStore::open(dir.path()).expect("reopen migrates");
    let conn = Connection::open(store.path()).expect("raw");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 13, "the newest schema");
    let ids: Vec<i64> = store
        .audiences()
        .expect("list")
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        ids,
        [7, 5, 2, 1],
        "one audience per chain, keeping its first id"
    );
    for gone in [3, 4] {
        assert!(store.audience(gone).expect("read").is_none());
    }

    let a = store.audience(1).expect("read").expect("chain 1");
    assert_eq!((a.name.as_str(), a.created_at), ("audience 1", 1000));
    assert_eq!(a.spec, spec);
    assert_eq!(a.latest.snapshot, 3);
    let live = a.live.expect("live");
    assert_eq!((live.snapshot, live.model_id, live.size), (3, Some(400), 3));
    assert_eq!(live.estimate, json!({"row": 4}));
    let snapshots = store.audience_snapshots(1).expect("snapshots");
    let numbers: Vec<(i64, Option<i64>, i64)> = snapshots
        .iter()
        .map(|s| (s.snapshot, s.model_id, s.created_at))
        .collect();
    assert_eq!(
        numbers,
        [
            (3, Some(400), 4000),
            (2, Some(300), 3000),
            (1, Some(100), 1000)
        ]
    );
    // Changes name the previous snapshot by number now.
    assert_eq!(snapshots[0].changes["previous_snapshot"], 2);
    assert_eq!(snapshots[1].changes["previous_snapshot"], 1);
    assert!(snapshots[1].changes.get("previous_id").is_none());
    assert_eq!(snapshots[2].changes, Value::Null);
    // Every member list moved, controls included, with no explanation recorded.
    let users = |id: i64, n: i64| -> Vec<(String, bool)> {
        store
            .audience_members(id, n, 0, 100)
            .expect("members")
            .into_iter()
            .map(|m| (m.user_id, m.control))
            .collect()
    };
    let list = |xs: &[&str]| -> Vec<(String, bool)> {
        xs.iter()
            .enumerate()
            .map(|(i, u)| (u.to_string(), i == 1))
            .collect()
    };
    assert_eq!(users(1, 1), list(&["ann", "ben"]));
    assert_eq!(users(1, 2), list(&["ben", "cid"]));
    assert_eq!(users(1, 3), list(&["cid", "dan", "eve"]));
    assert_eq!(users(2, 1), list(&["zed"]));
    assert_eq!(users(7, 1), list(&["fay"]));
    assert_eq!(
        store
            .audience_member(1, 1, "ann")
            .expect("read")
            .map(|m| m.1),
        Some(None)
    );
    let moved: i64 = conn
        .query_row("SELECT COUNT(*) FROM audience_members", [], |r| r.get(0))
        .expect("count");
    assert_eq!(moved, 2 + 1 + 2 + 3 + 1, "nothing lost");
    // A chain whose first row was deleted starts at the row that remained.
    let seven = store.audience(7).expect("read").expect("chain 7");
    assert_eq!(seven.latest.snapshot, 1);
    assert_eq!(
        store.audience_snapshots(7).expect("snapshots")[0].changes["previous_snapshot"],
        Value::Null,
        "its previous row is gone"
    );
    let failed = store.audience(5).expect("read").expect("failed audience");
    assert_eq!(
        (
            failed.latest.status.as_str(),
            failed.latest.error.as_deref(),
            failed.live
        ),
        ("failed", Some("no model"), None)
    );

    // The ids refreshes returned name their chain's audience (aliases); an audience's own
    // id names itself; an id that never was, or a deleted row's, nothing.
    let resolve = |id: i64| store.resolve_audience_id(id).expect("resolve");
    assert_eq!(
        [1, 2, 3, 4, 5, 6, 7, 99].map(resolve),
        [
            Some(1),
            Some(2),
            Some(1),
            Some(1),
            Some(5),
            None,
            Some(7),
            None
        ]
    );

    // The migrated store works on: the next snapshot of chain 1 is number 4.
    assert_eq!(
        store.next_snapshot(1, "computing", 9).expect("next"),
        Some(4)
    );
    // A new audience never takes an id kept as an alias, even once the audiences above it
    // are gone; deleting an audience drops its aliases.
    for id in [7, 5, 2] {
        assert!(store.delete_audience(id).expect("delete"));
    }
    let new = store
        .create_audience("new", &spec, "computing", 9000)
        .expect("create");
    assert_eq!(new, 5, "past the alias 4, not 2");
    assert!(store.delete_audience(1).expect("delete"));
    assert_eq!([3, 4].map(resolve), [None, None]);
}
