//! Stored JSON documents (audience specs, estimates and changes; trait definitions): written
//! in a versioned envelope, read back unchanged, and a damaged or newer row reported with its
//! table and row instead of being read as `null`. Stores written by v4 (bare JSON) are
//! migrated on open.

use affinity_store::sqlite::SqliteStore;
use affinity_store::{AudienceStore, FinishedSnapshot, Member, StoreError, TraitStore};

use crate::audience_snapshots::audiences_as_v8;
use rusqlite::{Connection, params};
use serde_json::{Value, json};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    (dir, store)
}

/// A second connection to the store's file, as a person with `sqlite3` would have.
fn raw(store: &SqliteStore) -> Connection {
    let conn = Connection::open(store.path()).expect("raw connection");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    conn
}

fn member(rank: i64) -> Member {
    Member {
        rank,
        profile_id: rank,
        user_id: format!("u{rank}"),
        score: 1.0 / rank as f64,
        control: rank % 2 == 0,
    }
}

/// Adds `members` to the computing snapshot `id`/1 and what finishing it stores.
fn finished<'a>(
    store: &SqliteStore,
    id: i64,
    members: &[Member],
    estimate: &'a Value,
    changes: Option<&'a Value>,
    computed_at: i64,
) -> FinishedSnapshot<'a> {
    assert!(
        store
            .add_snapshot_members(id, 1, members, &[])
            .expect("add members")
    );
    FinishedSnapshot {
        model_id: 3,
        size: members.len() as i64,
        ranking: &[],
        estimate,
        changes,
        computed_at,
        spec: None,
    }
}

/// A live audience with a spec, an estimate and changes; returns its id.
fn live_audience(store: &SqliteStore, spec: &Value) -> i64 {
    let id = store
        .create_audience("buyers", spec, "computing", 10)
        .expect("create");
    let members = [member(1), member(2)];
    let (estimate, changes) = (json!({"expected": 1.5}), json!({"joined": ["u1"]}));
    store
        .finish_audience(
            id,
            1,
            &finished(store, id, &members, &estimate, Some(&changes), 20),
            None,
        )
        .expect("finish");
    id
}

/// The estimate and changes of an audience's live snapshot.
fn live_documents(store: &SqliteStore, id: i64) -> (Value, Value) {
    let live = store
        .audience(id)
        .expect("read")
        .expect("exists")
        .live
        .expect("live");
    (live.estimate, live.changes)
}

fn column(store: &SqliteStore, sql: &str, row: impl rusqlite::ToSql) -> String {
    raw(store)
        .query_row(sql, [row], |r| r.get(0))
        .expect("raw read")
}

#[test]
fn documents_round_trip_in_a_versioned_envelope() {
    let (_dir, store) = open();
    let spec = json!({"target": {"item": "sku-1"}, "size": 2, "version": "user data"});
    let id = live_audience(&store, &spec);
    // A first snapshot has no changes.
    let first = store
        .create_audience("first", &json!({"size": 1}), "computing", 30)
        .expect("create");
    store
        .finish_audience(
            first,
            1,
            &finished(&store, first, &[member(1)], &json!(null), None, 40),
            None,
        )
        .expect("finish");
    let definition = json!({"name": "top", "k": 3, "exclude": []});
    store
        .save_trait_definition("top", &definition, 1)
        .expect("define");

    let record = store.audience(id).expect("read").expect("exists");
    assert_eq!(record.spec, spec);
    assert_eq!(
        live_documents(&store, id),
        (json!({"expected": 1.5}), json!({"joined": ["u1"]}))
    );
    assert_eq!(live_documents(&store, first), (Value::Null, Value::Null));
    assert_eq!(store.audiences().expect("list").len(), 2);
    assert_eq!(
        store.trait_definitions().expect("list")[0].definition,
        definition
    );

    // What is on disk carries the format version.
    let stored: Value = serde_json::from_str(&column(
        &store,
        "SELECT spec FROM audiences WHERE id = ?1",
        id,
    ))
    .expect("json");
    assert_eq!(stored, json!({"version": 1, "spec": spec}));
    let stored: Value = serde_json::from_str(&column(
        &store,
        "SELECT definition FROM trait_definitions WHERE name = ?1",
        "top",
    ))
    .expect("json");
    assert_eq!(stored, json!({"version": 1, "definition": definition}));
}

#[test]
fn a_corrupt_row_is_reported_with_its_table_and_row() {
    let (_dir, store) = open();
    let good = live_audience(&store, &json!({"size": 2}));
    let bad = live_audience(&store, &json!({"size": 3}));
    raw(&store)
        .execute(
            "UPDATE audience_snapshots SET estimate = '{\"version\": 1, \"estim' WHERE audience_id = ?1",
            [bad],
        )
        .expect("damage");

    let err = store
        .audience(bad)
        .expect_err("a damaged row must not read");
    match &err {
        StoreError::CorruptDocument {
            table,
            column,
            row,
            problem,
        } => {
            assert_eq!((*table, *column), ("audience_snapshots", "estimate"));
            assert_eq!(row, &format!("{bad}/1"));
            assert!(problem.contains("not JSON"), "{problem}");
        }
        other => panic!("expected CorruptDocument, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("audience_snapshots.estimate of row {bad}/1")),
        "{err}"
    );
    // The list reports it too rather than showing a record with a null estimate…
    assert!(matches!(
        store.audiences(),
        Err(StoreError::CorruptDocument { .. })
    ));
    // …and the other rows still read.
    assert!(store.audience(good).expect("read").is_some());

    // Valid JSON without the envelope is no better.
    store
        .save_trait_definition("top", &json!({"name": "top"}), 1)
        .expect("define");
    raw(&store)
        .execute(
            "UPDATE trait_definitions SET definition = '{\"name\": \"top\"}' WHERE name = 'top'",
            [],
        )
        .expect("damage");
    match store.trait_definitions() {
        Err(StoreError::CorruptDocument {
            table: "trait_definitions",
            column: "definition",
            row,
            problem,
        }) => {
            assert_eq!(row, "\"top\"");
            assert!(problem.contains("no format version"), "{problem}");
        }
        other => panic!("expected CorruptDocument, got {other:?}"),
    }
}

#[test]
fn a_document_from_a_newer_affinity_is_refused() {
    let (_dir, store) = open();
    let id = live_audience(&store, &json!({"size": 2}));
    raw(&store)
        .execute(
            "UPDATE audiences SET spec = '{\"version\": 2, \"spec\": {\"size\": 2}}' WHERE id = ?1",
            [id],
        )
        .expect("write");
    let err = store.audience(id).expect_err("newer format");
    assert!(
        matches!(
            &err,
            StoreError::NewerDocument {
                table: "audiences",
                column: "spec",
                row,
                found: 2,
                supported: 1,
            } if *row == id.to_string()
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("newer than this Affinity"),
        "{err}"
    );

    store
        .save_trait_definition("top", &json!({"name": "top"}), 1)
        .expect("define");
    raw(&store)
        .execute(
            "UPDATE trait_definitions SET definition = '{\"version\": 9, \"definition\": {}}'",
            [],
        )
        .expect("write");
    assert!(matches!(
        store.trait_definitions(),
        Err(StoreError::NewerDocument { found: 9, .. })
    ));
}

#[test]
fn a_v4_store_with_bare_json_is_migrated_and_still_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A store as v4 left it: the same tables (v5 adds none; v6's refused_merges dropped),
    // documents stored bare.
    let (id, first, broken) = (1, 2, 3);
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        store
            .save_trait_definition("top", &json!({}), 1)
            .expect("define");
        let conn = raw(&store);
        audiences_as_v8(&conn);
        // A spec that has a "version" of its own: why v4 rows are rewritten instead of being
        // told apart from enveloped ones by looking at them.
        let rows = [
            (
                id,
                r#"{"version": 1, "size": 2}"#,
                Some(r#"{"expected": 1.5}"#),
                Some(r#"{"joined": ["u1"]}"#),
            ),
            (first, r#"{"size": 1}"#, Some("null"), None),
            // v4 read this row's spec as null without a word.
            (broken, "not json", Some("null"), None),
        ];
        for (row, spec, estimate, changes) in rows {
            conn.execute(
                "INSERT INTO audiences (id, name, spec, status, size, model_id, created_at,
                    computed_at, estimate, changes)
                 VALUES (?1, 'buyers', ?2, 'live', 1, 3, 10, 20, ?3, ?4)",
                params![row, spec, estimate, changes],
            )
            .expect("v4 row");
        }
        conn.execute(
            "UPDATE trait_definitions SET definition = '{\"name\": \"top\", \"k\": 3}'",
            [],
        )
        .expect("v4 row");
        conn.execute_batch("DROP TABLE refused_merges; DROP TABLE credentials; DROP TABLE trait_backfills; DROP TABLE outbox_holds; DROP TABLE outbox; DROP TABLE destinations; DROP TABLE goal_definitions; DROP TABLE goal_results")
            .expect("as v4");
        conn.pragma_update(None, "user_version", 4)
            .expect("user_version");
    }

    let store = SqliteStore::open(dir.path()).expect("reopen migrates");
    let version: i64 = raw(&store)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 13, "the newest schema");

    let record = store.audience(id).expect("read").expect("exists");
    assert_eq!(record.spec, json!({"version": 1, "size": 2}));
    assert_eq!(
        live_documents(&store, id),
        (json!({"expected": 1.5}), json!({"joined": ["u1"]}))
    );
    let record = store.audience(first).expect("read").expect("exists");
    assert_eq!(record.spec, json!({"size": 1}));
    assert_eq!(live_documents(&store, first), (Value::Null, Value::Null));
    assert_eq!(
        store.trait_definitions().expect("list")[0].definition,
        json!({"name": "top", "k": 3})
    );
    // The unreadable row survived the migration and is now reported.
    assert!(matches!(
        store.audience(broken),
        Err(StoreError::CorruptDocument { table: "audiences", column: "spec", ref row, .. })
            if *row == broken.to_string()
    ));
    // Rewritten on disk, so opening again changes nothing.
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store.audience(id).expect("read").expect("exists").spec,
        json!({"version": 1, "size": 2})
    );
}
