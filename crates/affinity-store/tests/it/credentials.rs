//! Credentials are stored as hashes; a v6 store's plain secrets are hashed by the migration
//! and leave no trace in the database files; so do write keys stored in v6 raw events.

use rusqlite::Connection;

use affinity_store::sqlite::SqliteStore;
use affinity_store::sqlite::credentials::secret_hash;
use affinity_store::{CredentialKind, CredentialStore, Meta};

const ADMIN: &str = "adm_PlainSecretOfAVersion6Store0001";
const PROFILE: &str = "prf_PlainSecretOfAVersion6Store0002";
const EVENT_WITH_KEY: &str = r#"{"type":"track", "writeKey":"wk_InABodyOfAVersion6Event000005","userId":98765432109876543210001,"event":"E","properties":{"price":1.50}}"#;
const KEYS: [&str; 2] = [
    "wk_PlainSecretOfAVersion6Store0003",
    "wk_PlainSecretOfAVersion6Store0004",
];

/// Every byte of the database files, to look for secrets.
fn files(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            all.extend(std::fs::read(&path).expect("read"));
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_v6_store_with_plain_secrets_migrates_to_hashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // A v6 store as v6 wrote it: the secrets in `meta`, in plain text.
        let store = SqliteStore::open(dir.path()).expect("open");
        let conn = Connection::open(store.path()).expect("raw");
        crate::audience_snapshots::audiences_as_v8(&conn);
        conn.execute_batch("DROP TABLE credentials; DROP TABLE trait_backfills; DROP TABLE outbox_holds; DROP TABLE outbox; DROP TABLE destinations; DROP TABLE goal_definitions; DROP TABLE goal_results; PRAGMA user_version = 6;")
            .expect("as v6");
        for (key, value) in [
            ("write_keys", KEYS.join(",")),
            ("admin_token", ADMIN.to_string()),
            ("profile_token", PROFILE.to_string()),
        ] {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                [key, value.as_str()],
            )
            .expect("plain secret");
        }
        // v6 kept a body's writeKey in the raw event.
        for (seq, raw) in [
            (1, EVENT_WITH_KEY),
            (2, r#"{"type":"track","userId":"u","event":"writeKey"}"#),
        ] {
            conn.execute(
                "INSERT INTO events (seq, message_id, type, event, user_id, profile_id, timestamp,
                 received_at, raw) VALUES (?1, ?1, 'track', 'E', 'u', 1, 0, 0, ?2)",
                rusqlite::params![seq, raw],
            )
            .expect("v6 event");
        }
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        assert!(
            contains(&files(dir.path()), ADMIN),
            "the v6 fixture holds it"
        );
    }

    let store = SqliteStore::open(dir.path()).expect("reopen migrates");
    let version: i64 = Connection::open(store.path())
        .expect("raw")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 13, "the newest schema");
    let stored = store.credentials().expect("list");
    let of = |kind| {
        stored
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| (c.hash.clone(), c.prefix.clone(), c.origin.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(CredentialKind::Admin),
        [(secret_hash(ADMIN), "adm_Plai".into(), "migrated".into())]
    );
    assert_eq!(
        of(CredentialKind::Profile),
        [(secret_hash(PROFILE), "prf_Plai".into(), "migrated".into())]
    );
    assert_eq!(
        of(CredentialKind::WriteKey)
            .into_iter()
            .map(|c| c.0)
            .collect::<Vec<_>>(),
        KEYS.map(secret_hash)
    );
    for key in ["write_keys", "admin_token", "profile_token"] {
        assert_eq!(
            store.get_meta(key).expect("meta"),
            None,
            "{key} left in meta"
        );
    }
    let raws: Vec<String> = Connection::open(store.path())
        .expect("raw")
        .prepare("SELECT raw FROM events ORDER BY seq")
        .expect("select")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        raws,
        [
            r#"{"type":"track","userId":98765432109876543210001,"event":"E","properties":{"price":1.50}}"#,
            r#"{"type":"track","userId":"u","event":"writeKey"}"#
        ]
    );
    let bytes = files(dir.path());
    for secret in KEYS
        .iter()
        .chain([&ADMIN, &PROFILE, &"wk_InABodyOfAVersion6Event000005"])
    {
        assert!(!contains(&bytes, secret), "{secret} still on disk");
    }
}

#[test]
fn a_rotation_replaces_the_kind_and_keeps_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let old = store
        .add_credential(CredentialKind::Admin, "adm_old", "generated", 1, false)
        .expect("add");
    store
        .add_credential(CredentialKind::WriteKey, "wk_1", "generated", 1, false)
        .expect("add");
    let new = store
        .add_credential(CredentialKind::Admin, "adm_new", "rotated", 2, true)
        .expect("rotate");
    let kinds: Vec<_> = store
        .credentials()
        .expect("list")
        .into_iter()
        .map(|c| (c.kind, c.id))
        .collect();
    assert_eq!(
        kinds,
        [
            (CredentialKind::WriteKey, old.id + 1),
            (CredentialKind::Admin, new.id)
        ]
    );
    assert_eq!(store.revoke_credential(new.id).expect("revoke"), Some(new));
    assert_eq!(store.revoke_credential(old.id).expect("revoke"), None);
}
