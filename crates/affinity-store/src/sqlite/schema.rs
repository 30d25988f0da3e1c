//! The schema, versioned with SQLite's `user_version` so that an upgrade can migrate old data
//! and an old binary refuses data written by a newer one.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::credentials::{secret_hash, secret_prefix};
use super::stored_json::Document;
use super::{audiences, computed_traits};
use crate::{CredentialKind, StoreError};

pub const SCHEMA_VERSION: i64 = 13;

const V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

-- Every accepted message, as received. `profile_id` is the profile the message resolved to
-- when it was stored; a later merge is followed through profiles.merged_into.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    message_id   TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    event        TEXT,
    user_id      TEXT,
    anonymous_id TEXT,
    profile_id   INTEGER NOT NULL,
    timestamp    INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    raw          TEXT    NOT NULL
);
CREATE UNIQUE INDEX events_message_id ON events (message_id);
CREATE INDEX events_event ON events (event) WHERE event IS NOT NULL;
CREATE INDEX events_profile ON events (profile_id);

-- Running counts for pickers, updated in the same transaction as the events they count.
CREATE TABLE event_stats (
    event      TEXT PRIMARY KEY,
    count      INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE event_properties (
    event    TEXT NOT NULL,
    property TEXT NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (event, property)
) WITHOUT ROWID;

CREATE TABLE profiles (
    id          INTEGER PRIMARY KEY,
    user_id     TEXT,
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    merged_into INTEGER
);
CREATE INDEX profiles_merged_into ON profiles (merged_into) WHERE merged_into IS NOT NULL;

-- kind: 0 = userId, 1 = anonymousId.
CREATE TABLE identities (
    kind       INTEGER NOT NULL,
    value      TEXT    NOT NULL,
    profile_id INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
CREATE INDEX identities_profile ON identities (profile_id);

CREATE TABLE traits (
    profile_id INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (profile_id, name)
) WITHOUT ROWID;
";

/// Catalog uploads and the model registry.
const V2: &str = "
-- Rows of uploaded catalog files: columns (a JSON object) override what events say.
CREATE TABLE catalog_items (
    item_id    TEXT PRIMARY KEY,
    columns    TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per training run; `record` is the versioned JSON of affinity_store::ModelRecord.
CREATE TABLE models (
    id         INTEGER PRIMARY KEY,
    status     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    record     TEXT    NOT NULL
);
";

/// Personalized-items traits: their definitions and the values written onto profiles.
const V3: &str = "
CREATE TABLE trait_definitions (
    name        TEXT PRIMARY KEY,
    definition  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    computed_at INTEGER,
    profiles    INTEGER NOT NULL DEFAULT 0,
    model_id    INTEGER
) WITHOUT ROWID;

CREATE TABLE computed_traits (
    profile_id INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (profile_id, name)
) WITHOUT ROWID;
";

/// Audiences: snapshots of ranked members with their estimates.
const V4: &str = "
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
CREATE INDEX audience_members_user ON audience_members (audience_id, user_id);
";

/// Identity merges refused by the identity rules (at most one userId per profile): the
/// message is stored, the merge it asked for is not, and this row says so.
const V6: &str = "
-- `identifier` (of `identifier_kind`, 0 = userId, 1 = anonymousId) belongs to the profile of
-- user `owner`; the message asked to join it to user `user_id`'s profile.
CREATE TABLE refused_merges (
    id              INTEGER PRIMARY KEY,
    message_id      TEXT    NOT NULL,
    message_type    TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    identifier_kind INTEGER NOT NULL,
    identifier      TEXT    NOT NULL,
    owner           TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    received_at     INTEGER NOT NULL
);
-- A message is recorded once whatever its retries. A link implied by a message carrying
-- both ids (a shared device) is recorded once per pair: every later message from that device
-- would otherwise add a row.
CREATE UNIQUE INDEX refused_merges_message ON refused_merges (message_id, identifier_kind, identifier);
CREATE UNIQUE INDEX refused_merges_link ON refused_merges (user_id, identifier_kind, identifier)
    WHERE message_type <> 'alias';
";

/// Credentials kept as SHA-256 hashes of the secret, never the secret itself (up to v6 the
/// generated write keys, admin token and Profile API token sat in `meta` in plain text).
const V7: &str = "
-- kind: 'write_key' | 'admin' | 'profile'. `hash` is the hex SHA-256 of the secret; `prefix`
-- its first characters (the kind's tag and 4 random ones), shown by `affinity credentials
-- list` to tell credentials apart. `origin`: 'generated' (first start), 'rotated' (the CLI),
-- 'migrated' (a plain secret of an older store, hashed by the v7 migration).
CREATE TABLE credentials (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL,
    hash       TEXT    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    origin     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX credentials_kind ON credentials (kind);
";

/// Destinations (activation) and the durable outbox of messages for them. An outbox row is
/// written in the same transaction as the snapshot (or trait change) that caused it, so a
/// crash can never record a change whose messages are lost; `message_id` is fixed by what the
/// message says, so writing the same message twice keeps one row.
const V8: &str = "
CREATE TABLE destinations (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    destination_id  INTEGER NOT NULL,
    message_id      TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    -- When the message was (re-)queued: the retry deadline counts from here.
    queued_at       INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (destination_id, message_id)
);
CREATE INDEX outbox_due ON outbox (destination_id, status, next_attempt_at);
CREATE INDEX outbox_log ON outbox (destination_id, id);
";

/// Audiences that keep their id: up to v8 each snapshot was an `audiences` row linked to the
/// one before by `previous_id`; from v9 an audience is one row and its computations are
/// numbered `audience_snapshots`, members keyed by (audience, snapshot, rank). `ranking` holds
/// every scored user in rank order (where a non-member stands) and `why` each member's
/// explanation as computed with the snapshot's model, both written by the engine.
const V9: &str = "
DROP INDEX audience_members_user;
ALTER TABLE audiences RENAME TO audiences_v8;
ALTER TABLE audience_members RENAME TO audience_members_v8;

-- `snapshot`: the newest snapshot's number; `live_snapshot`: the newest live one (whose
-- members are the audience's), NULL before the first is live.
CREATE TABLE audiences (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    spec          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    snapshot      INTEGER NOT NULL,
    live_snapshot INTEGER
);
-- `members_kept` = 0 once the member list and ranking were dropped (only the newest
-- KEPT_MEMBER_LISTS live snapshots keep theirs); estimate and changes are kept forever.
CREATE TABLE audience_snapshots (
    audience_id  INTEGER NOT NULL,
    snapshot     INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    model_id     INTEGER,
    size         INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    computed_at  INTEGER,
    estimate     TEXT,
    changes      TEXT,
    error        TEXT,
    ranking      BLOB,
    members_kept INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (audience_id, snapshot)
);
CREATE TABLE audience_members (
    audience_id INTEGER NOT NULL,
    snapshot    INTEGER NOT NULL,
    rank        INTEGER NOT NULL,
    profile_id  INTEGER NOT NULL,
    user_id     TEXT    NOT NULL,
    score       REAL    NOT NULL,
    control     INTEGER NOT NULL,
    why         TEXT,
    PRIMARY KEY (audience_id, snapshot, rank)
) WITHOUT ROWID;
CREATE INDEX audience_members_user ON audience_members (audience_id, snapshot, user_id);
";

/// Audience aliases (step `V11_AUDIENCE_ALIASES`): the v9 migration folded each chain of v8
/// snapshot rows into the audience of its first row, so the ids later refreshes had returned
/// stopped answering. `old_id` is such an id, `audience_id` the audience it now belongs to;
/// the audience routes look an unknown id up here. The v9 migration writes the rows (and so
/// creates the table when it runs); this step creates it, empty, for stores already past v9
/// (their old ids are lost). Ids of new audiences never reuse an `old_id`.
const V11_AUDIENCE_ALIASES: &str = "
CREATE TABLE IF NOT EXISTS audience_aliases (
    old_id      INTEGER PRIMARY KEY,
    audience_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audience_aliases_audience ON audience_aliases (audience_id);
";

/// One v8 `audiences` row (a snapshot), its documents as stored (already enveloped by v5).
struct V8Row {
    id: i64,
    name: String,
    spec: String,
    status: String,
    size: i64,
    model_id: Option<i64>,
    created_at: i64,
    computed_at: Option<i64>,
    estimate: Option<String>,
    error: Option<String>,
    previous_id: Option<i64>,
    changes: Option<String>,
}

/// Version 9: each chain of v8 snapshots (rows linked by `previous_id`) becomes one audience
/// with snapshots numbered in id order, members moved, nothing dropped. The chain keeps the
/// id of its first row: the id its creator was given, and the one every refresh started
/// from; the ids later refreshes returned become aliases of it (`audience_aliases`). A row
/// whose previous row was deleted starts a chain of its own. The changes document's `previous_id` becomes
/// `previous_snapshot` (the number, in the same chain).
fn number_snapshots(tx: &Transaction<'_>) -> Result<(), StoreError> {
    use std::collections::{BTreeMap, HashMap};
    let rows: Vec<V8Row> = {
        let mut stmt = tx.prepare(
            "SELECT id, name, spec, status, size, model_id, created_at, computed_at, estimate,
                    error, previous_id, changes
             FROM audiences_v8 ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(V8Row {
                id: r.get(0)?,
                name: r.get(1)?,
                spec: r.get(2)?,
                status: r.get(3)?,
                size: r.get(4)?,
                model_id: r.get(5)?,
                created_at: r.get(6)?,
                computed_at: r.get(7)?,
                estimate: r.get(8)?,
                error: r.get(9)?,
                previous_id: r.get(10)?,
                changes: r.get(11)?,
            })
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let previous: HashMap<i64, Option<i64>> = rows.iter().map(|r| (r.id, r.previous_id)).collect();
    let root = |mut id: i64| {
        // previous_id always pointed to an older row; the bound only guards a damaged store.
        for _ in 0..rows.len() {
            match previous.get(&id).copied().flatten() {
                Some(p) if p < id && previous.contains_key(&p) => id = p,
                _ => break,
            }
        }
        id
    };
    let mut chains: BTreeMap<i64, Vec<&V8Row>> = BTreeMap::new();
    for r in &rows {
        chains.entry(root(r.id)).or_default().push(r);
    }
    tx.execute_batch(V11_AUDIENCE_ALIASES)?;
    for (id, chain) in chains {
        for r in &chain[1..] {
            tx.execute(
                "INSERT INTO audience_aliases (old_id, audience_id) VALUES (?1, ?2)",
                params![r.id, id],
            )?;
        }
        let number: HashMap<i64, i64> = chain
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id, i as i64 + 1))
            .collect();
        let first = chain[0];
        let live = chain
            .iter()
            .filter(|r| r.status == "live")
            .map(|r| number[&r.id])
            .max();
        tx.execute(
            "INSERT INTO audiences (id, name, spec, created_at, snapshot, live_snapshot)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                first.name,
                first.spec,
                first.created_at,
                chain.len() as i64,
                live
            ],
        )?;
        for r in &chain {
            let n = number[&r.id];
            let changes = r
                .changes
                .as_deref()
                .map(|text| renumber_changes(text, &number));
            tx.execute(
                "INSERT INTO audience_snapshots (audience_id, snapshot, status, model_id, size,
                    created_at, computed_at, estimate, changes, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    id,
                    n,
                    r.status,
                    r.model_id,
                    r.size,
                    r.created_at,
                    r.computed_at,
                    r.estimate,
                    changes,
                    r.error
                ],
            )?;
            tx.execute(
                "INSERT INTO audience_members (audience_id, snapshot, rank, profile_id, user_id,
                    score, control)
                 SELECT ?1, ?2, rank, profile_id, user_id, score, control
                 FROM audience_members_v8 WHERE audience_id = ?3",
                params![id, n, r.id],
            )?;
        }
    }
    tx.execute_batch("DROP TABLE audiences_v8; DROP TABLE audience_members_v8;")?;
    Ok(())
}

/// A v8 changes document with `previous_id` replaced by the previous snapshot's number.
/// Text that is not an enveloped object is kept as it is (reading it reports it).
fn renumber_changes(text: &str, number: &std::collections::HashMap<i64, i64>) -> String {
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(text) else {
        return text.to_string();
    };
    let Some(changes) = doc
        .get_mut(audiences::CHANGES.key)
        .and_then(serde_json::Value::as_object_mut)
    else {
        return text.to_string();
    };
    if let Some(previous) = changes
        .remove("previous_id")
        .and_then(|p| p.as_i64())
        .and_then(|p| number.get(&p))
    {
        changes.insert("previous_snapshot".into(), (*previous).into());
    }
    doc.to_string()
}

/// Version 7: write keys sent in message bodies are removed from stored events, and the plain secrets of `meta` (`write_keys`, comma-separated, `admin_token`,
/// `profile_token`) become hashed rows of `credentials` and are deleted from `meta`, in the
/// same transaction as the schema bump. Their creation time was never recorded: they are
/// stamped with the migration's time and marked `migrated`. The secrets themselves keep
/// working (a client presents the same secret, whose hash now matches).
fn hash_plain_credentials(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let sources = [
        ("write_keys", CredentialKind::WriteKey),
        ("admin_token", CredentialKind::Admin),
        ("profile_token", CredentialKind::Profile),
    ];
    for (key, kind) in sources {
        let value: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?;
        let Some(value) = value else { continue };
        let secrets = match kind {
            CredentialKind::WriteKey => value.split(',').map(str::trim).collect::<Vec<_>>(),
            _ => vec![value.trim()],
        };
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            tx.execute(
                "INSERT INTO credentials (kind, hash, prefix, origin, created_at)
                 VALUES (?1, ?2, ?3, 'migrated', ?4) ON CONFLICT (hash) DO NOTHING",
                params![
                    kind.as_str(),
                    secret_hash(secret),
                    secret_prefix(secret),
                    now
                ],
            )?;
        }
        tx.execute("DELETE FROM meta WHERE key = ?1", [key])?;
    }
    // Up to v6 a `writeKey` sent in a message body was stored with the raw event (and echoed
    // by the events API). `instr` first: most rows never had one, and it is cheaper than
    // parsing each row's JSON. SQLite's json_remove keeps the other members' text (numbers
    // included), minified.
    let rewritten = tx.execute(
        "UPDATE events SET raw = json_remove(raw, '$.writeKey')
         WHERE instr(raw, '\"writeKey\"') > 0 AND json_valid(raw)
           AND json_type(raw, '$.writeKey') IS NOT NULL",
        [],
    )?;
    if rewritten > 0 {
        tracing::info!(rewritten, "removed writeKey from stored raw events");
    }
    Ok(())
}

/// Version 5: the JSON documents of audiences and trait definitions, stored bare up to v4,
/// are rewritten into the versioned envelope of `stored_json`, as version 1 of each.
///
/// Rewritten rather than read as an implicit legacy "version 0" when the version is missing:
/// a bare document is a JSON object that may well have a `"version"` field of its own (an
/// audience spec is user input), so telling bare from enveloped text by looking would be a
/// guess. After this every row is enveloped and readers never guess; and the schema bump
/// makes a v4 binary refuse the store instead of reading envelopes as specs.
///
/// A row whose text is not JSON is left as it is and logged: failing here would keep the
/// whole store from opening over one row, while reading that row reports it as corrupt.
fn version_documents(tx: &Transaction<'_>) -> Result<(), StoreError> {
    const WRAPPED_AS: u64 = 1;
    let documents = [
        ("id", &audiences::SPEC),
        ("id", &audiences::V4_ESTIMATE),
        ("id", &audiences::V4_CHANGES),
        ("name", &computed_traits::DEFINITION),
    ];
    for (key, doc) in documents {
        envelop(tx, key, doc, WRAPPED_AS)?;
    }
    Ok(())
}

fn envelop(
    tx: &Transaction<'_>,
    key: &str,
    doc: &Document,
    version: u64,
) -> Result<(), StoreError> {
    let (table, column) = (doc.table, doc.column);
    let rows: Vec<(rusqlite::types::Value, String)> = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut update = tx.prepare(&format!(
        "UPDATE {table} SET {column} = ?2 WHERE {key} = ?1"
    ))?;
    for (row, text) in rows {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(payload) => {
                update.execute(params![row, doc.encode_as(version, &payload)?])?;
            }
            Err(e) => tracing::warn!(
                table,
                column,
                row = ?row,
                error = %e,
                "stored JSON is unreadable; left as is, reading the row will report it"
            ),
        }
    }
    Ok(())
}

/// Goal-based recommendations: definitions (with their status and quality figures) and each
/// user's list. The lists are also written into `computed_traits` as `<key>` and
/// `<key>_is_control`, so the Profile API reads them like any computed trait.
const V10: &str = "
CREATE TABLE goal_definitions (
    id          INTEGER PRIMARY KEY,
    key         TEXT    NOT NULL UNIQUE,
    definition  TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    computed_at INTEGER,
    started_at  INTEGER,
    model_id    INTEGER,
    users       INTEGER NOT NULL DEFAULT 0,
    quality     TEXT
);
CREATE TABLE goal_results (
    goal_id     INTEGER NOT NULL,
    profile_id  INTEGER NOT NULL,
    items       TEXT    NOT NULL,
    is_control  INTEGER NOT NULL,
    computed_at INTEGER NOT NULL,
    PRIMARY KEY (goal_id, profile_id)
) WITHOUT ROWID;
";

/// Held outbox rows: a change with many messages (an audience snapshot of a million members,
/// a destination added to a trait) queues them in short transactions of their own *before*
/// the change commits, so that no transaction holds SQLite's write lock for minutes. Each
/// such row carries the id of its hold (`hold_id`; 0 for a row queued in the transaction of
/// its cause); while the `outbox_holds` row exists the worker does not see the row, and the
/// transaction that records the change deletes the hold: two million messages released in
/// O(1). A failed change deletes its held rows, and the start deletes every hold left by a
/// stopped process with its rows. `AUTOINCREMENT`: a released hold's id must never be given
/// to a new hold, or its delivered and pending rows would be hidden again. The worker's index
/// has `hold_id` before `next_attempt_at`, so the due rows of each visible hold (a handful) are
/// read in order without walking past held ones. `cause` names the audience, trait or goal a
/// row is about, so that deleting one cancels its messages (status `cancelled`).
const V12: &str = "
CREATE TABLE outbox_holds (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    cause      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
ALTER TABLE outbox ADD COLUMN hold_id INTEGER NOT NULL DEFAULT 0;
-- What the message is about (`audience:<id>`, `trait:<name>`, `goal:<id>`): deleting it
-- marks its messages not sent yet `cancelled`. '' for rows queued before v12.
ALTER TABLE outbox ADD COLUMN cause TEXT NOT NULL DEFAULT '';
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (destination_id, status, hold_id, next_attempt_at);
";

/// v13: a destination added to a trait or goal receives every current value, a page of
/// profiles per transaction after the definition naming it commits. The backfill's row is
/// written in that definition's transaction and each page moves `after` (the last profile
/// queued) in its own, so a process stopped midway resumes at the next start where it stopped
/// instead of leaving the rest unsent; the last page deletes the row, and so does deleting the
/// trait or goal. One of `trait_name` and `goal_id` is set; `destinations` is a JSON array.
const V13: &str = "
CREATE TABLE trait_backfills (
    id           INTEGER PRIMARY KEY,
    trait_name   TEXT,
    goal_id      INTEGER,
    destinations TEXT    NOT NULL,
    after        INTEGER NOT NULL
);
";

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if found < 7 {
        // The v7 migration deletes plain secrets: overwrite them rather than leave them in
        // free space of the page (and checkpoint below, so no old page image survives in
        // the WAL or the main file).
        conn.pragma_update(None, "secure_delete", true)?;
    }
    let tx = conn.transaction()?;
    if found < 1 {
        tx.execute_batch(V1)?;
    }
    if found < 2 {
        tx.execute_batch(V2)?;
    }
    if found < 3 {
        tx.execute_batch(V3)?;
    }
    if found < 4 {
        tx.execute_batch(V4)?;
    }
    if found < 5 {
        version_documents(&tx)?;
    }
    if found < 6 {
        tx.execute_batch(V6)?;
    }
    if found < 7 {
        tx.execute_batch(V7)?;
        hash_plain_credentials(&tx)?;
    }
    if found < 8 {
        tx.execute_batch(V8)?;
    }
    if found < 9 {
        tx.execute_batch(V9)?;
        number_snapshots(&tx)?;
    }
    if found < 10 {
        tx.execute_batch(V10)?;
    }
    if found < 11 {
        tx.execute_batch(V11_AUDIENCE_ALIASES)?;
    }
    if found < 12 {
        tx.execute_batch(V12)?;
    }
    if found < 13 {
        tx.execute_batch(V13)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    if found < 7 {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(())
}
