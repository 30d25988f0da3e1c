//! The single writer: appends messages, resolves identities, merges traits and keeps the
//! discovery counts, all in one transaction per call so a crash leaves all or nothing.

use affinity_core::{Message, MessageType};
use rusqlite::{Connection, Transaction, params};
use rustc_hash::FxHashMap as HashMap;

use super::identity::{IdentityCache, Resolver, record_refusals};
use crate::{EventLog, Outcome, StoreError};

pub struct Writer {
    conn: Connection,
    identities: IdentityCache,
}

#[derive(Default)]
struct EventTally {
    count: u64,
    first: i64,
    last: i64,
    properties: HashMap<String, u64>,
}

/// Counts gathered over one transaction and written once at its end.
#[derive(Default)]
struct Tally {
    events: HashMap<String, EventTally>,
    last_seen: HashMap<i64, i64>,
}

impl Writer {
    pub(crate) fn new(conn: Connection) -> Result<Self, StoreError> {
        let identities = IdentityCache::load(&conn)?;
        Ok(Self { conn, identities })
    }

    pub(crate) fn set_synchronous(&self, mode: &str) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "synchronous", mode)?;
        Ok(())
    }

    /// Checkpoints the WAL into the database with a full sync: after this returns, everything
    /// appended is on disk whatever the synchronous mode was.
    pub fn finish(&self) -> Result<(), StoreError> {
        self.set_synchronous("FULL")?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Appends several groups of messages (one group per client request) in one transaction
    /// and returns each group's outcomes. This is what makes group commit cheap: one fsync
    /// for all the groups.
    pub fn append_groups(
        &mut self,
        groups: &[&[Message]],
    ) -> Result<Vec<Vec<Outcome>>, StoreError> {
        let result = append_in_tx(&mut self.conn, &mut self.identities, groups);
        if result.is_err() {
            // The transaction rolled back: cached ids may name profiles that do not exist.
            self.identities = IdentityCache::load(&self.conn).unwrap_or_default();
        }
        result
    }
}

impl EventLog for Writer {
    fn append(&mut self, messages: &[Message]) -> Result<Vec<Outcome>, StoreError> {
        let mut groups = self.append_groups(&[messages])?;
        Ok(groups.pop().unwrap_or_default())
    }
}

fn append_in_tx(
    conn: &mut Connection,
    identities: &mut IdentityCache,
    groups: &[&[Message]],
) -> Result<Vec<Vec<Outcome>>, StoreError> {
    let tx = conn.transaction()?;
    let mut tally = Tally::default();
    let mut all = Vec::with_capacity(groups.len());
    {
        let mut resolver = Resolver {
            tx: &tx,
            cache: identities,
            refused: Vec::new(),
        };
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (message_id, type, event, user_id, anonymous_id, profile_id,
                                 timestamp, received_at, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (message_id) DO NOTHING",
        )?;
        for group in groups {
            let mut outcomes = Vec::with_capacity(group.len());
            for msg in *group {
                // Resolution is idempotent, so resolving a duplicate before knowing it is one
                // changes nothing and saves a second index probe for every new message.
                resolver.refused.clear();
                let profile = resolver.resolve(msg)?;
                let inserted = insert.execute(params![
                    msg.message_id,
                    msg.kind.as_str(),
                    msg.event,
                    msg.user_id,
                    msg.anonymous_id,
                    profile,
                    msg.timestamp,
                    msg.received_at,
                    msg.raw,
                ])? == 1;
                if !inserted {
                    outcomes.push(Outcome::Duplicate);
                    continue;
                }
                outcomes.push(Outcome::Stored);
                record_refusals(&tx, msg, &resolver.refused)?;
                if let Some(traits) = &msg.traits {
                    upsert_traits(&tx, profile, traits, msg.timestamp)?;
                }
                tally.count(msg, profile);
            }
            all.push(outcomes);
        }
    }
    tally.write(&tx, identities)?;
    tx.commit()?;
    Ok(all)
}

fn upsert_traits(
    tx: &Transaction<'_>,
    profile: i64,
    traits: &serde_json::Map<String, serde_json::Value>,
    ts: i64,
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO traits (profile_id, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (profile_id, name) DO UPDATE
           SET value = excluded.value, updated_at = excluded.updated_at
           WHERE excluded.updated_at >= traits.updated_at",
    )?;
    for (name, value) in traits {
        stmt.execute(params![profile, name, value.to_string(), ts])?;
    }
    Ok(())
}

impl Tally {
    fn count(&mut self, msg: &Message, profile: i64) {
        let seen = self.last_seen.entry(profile).or_insert(msg.timestamp);
        *seen = (*seen).max(msg.timestamp);
        if msg.kind != MessageType::Track {
            return;
        }
        let Some(event) = &msg.event else { return };
        // Look up before inserting: the common case (a known event and key) allocates nothing.
        if !self.events.contains_key(event) {
            self.events.insert(
                event.clone(),
                EventTally {
                    first: msg.timestamp,
                    last: msg.timestamp,
                    ..EventTally::default()
                },
            );
        }
        let Some(e) = self.events.get_mut(event) else {
            return;
        };
        e.count += 1;
        e.first = e.first.min(msg.timestamp);
        e.last = e.last.max(msg.timestamp);
        for key in &msg.property_keys {
            match e.properties.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    e.properties.insert(key.clone(), 1);
                }
            }
        }
    }

    fn write(&self, tx: &Transaction<'_>, identities: &IdentityCache) -> Result<(), StoreError> {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO event_stats (event, count, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (event) DO UPDATE SET count = count + excluded.count,
               first_seen = MIN(first_seen, excluded.first_seen),
               last_seen = MAX(last_seen, excluded.last_seen)",
        )?;
        for (event, e) in &self.events {
            stmt.execute(params![event, e.count, e.first, e.last])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO event_properties (event, property, count) VALUES (?1, ?2, ?3)
             ON CONFLICT (event, property) DO UPDATE SET count = count + excluded.count",
        )?;
        for (event, e) in &self.events {
            for (property, count) in &e.properties {
                stmt.execute(params![event, property, count])?;
            }
        }
        // A profile may have been merged after its events were counted: credit the survivor.
        let mut stmt =
            tx.prepare_cached("UPDATE profiles SET last_seen = MAX(last_seen, ?2) WHERE id = ?1")?;
        for (&profile, seen) in &self.last_seen {
            stmt.execute(params![identities.canonical(profile), seen])?;
        }
        Ok(())
    }
}
