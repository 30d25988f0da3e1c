//! The schema, versioned with SQLite's `user_version` so that an upgrade can migrate old data
//! and an old binary refuses data written by a newer one.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::credentials::{secret_hash, secret_prefix};
use super::stored_json::Document;
use super::{audiences, computed_traits};
use crate::{CredentialKind, StoreError};

pub const SCHEMA_VERSION: i64 = 10;

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
    updated_at      INTEGER NOT NULL,
    UNIQUE (destination_id, message_id)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
";

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
        ("id", &audiences::ESTIMATE),
        ("id", &audiences::CHANGES),
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
    if found < 10 {
        tx.execute_batch(V10)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    if found < 7 {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(())
}
