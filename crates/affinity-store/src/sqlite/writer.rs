//! The single writer: appends messages, resolves identities, merges traits and keeps the
//! discovery counts, all in one transaction per call so a crash leaves all or nothing.

use affinity_core::{Message, MessageType};
use rusqlite::{Connection, Transaction, params};
use rustc_hash::FxHashMap as HashMap;

use super::identity::{IdentityCache, Resolver, record_refusals};
use crate::{DiscoveryLimits, EventLog, Outcome, Refusal, StoreError};

pub struct Writer {
    conn: Connection,
    identities: IdentityCache,
    limits: DiscoveryLimits,
}

/// `meta` keys of the discovery counters: kept there so that the bounds need no new table.
pub(crate) const REFUSED_OVER_LIMITS: &str = "discovery.refused_over_limits";
pub(crate) const PROPERTY_KEYS_NOT_LISTED: &str = "discovery.property_keys_not_listed";
/// Stored messages whose stated time lay in the future and was clamped to their receipt.
pub(crate) const FUTURE_TIMESTAMPS_CLAMPED: &str = "events.future_timestamps_clamped";

struct EventTally {
    count: u64,
    first: i64,
    last: i64,
    properties: HashMap<String, u64>,
    /// Whether `event_stats` already had the name when this transaction first met it.
    stored: bool,
    /// How many keys `event_properties` lists for the event, read when first needed.
    stored_keys: Option<u64>,
    /// Keys this transaction adds to the listing.
    new_keys: u64,
}

impl EventTally {
    fn new(stored: bool) -> Self {
        Self {
            count: 0,
            // Widened by the first counted message; an entry whose messages all turned out to
            // be duplicates keeps count 0 and is not written.
            first: i64::MAX,
            last: i64::MIN,
            properties: HashMap::default(),
            stored,
            stored_keys: if stored { None } else { Some(0) },
            new_keys: 0,
        }
    }
}

/// Counts gathered over one transaction and written once at its end, and the bounds they are
/// checked against. The bounds are checked against the tables inside the transaction rather
/// than a cache, so that another writer (`affinity import` beside the server) cannot slip
/// names past them.
struct Tally {
    limits: DiscoveryLimits,
    events: HashMap<String, EventTally>,
    last_seen: HashMap<i64, i64>,
    /// Rows of `event_stats` when this transaction first needed the figure.
    stored_names: Option<u64>,
    new_names: u64,
    refused: u64,
    keys_not_listed: u64,
    clamped: u64,
}

impl Writer {
    pub(crate) fn new(conn: Connection, limits: DiscoveryLimits) -> Result<Self, StoreError> {
        let identities = IdentityCache::load(&conn)?;
        Ok(Self {
            conn,
            identities,
            limits,
        })
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
        let result = append_in_tx(&mut self.conn, &mut self.identities, self.limits, groups);
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
    limits: DiscoveryLimits,
    groups: &[&[Message]],
) -> Result<Vec<Vec<Outcome>>, StoreError> {
    // IMMEDIATE: the transaction reads (identities, discovery bounds) before it writes. A
    // deferred one would start as a read snapshot, and if another connection (a model record,
    // an audience) committed meanwhile, upgrading it to write fails at once with
    // SQLITE_BUSY_SNAPSHOT, busy timeout or not: a spurious 503 for the client. Taking the
    // write lock at BEGIN waits for the other writer instead.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut tally = Tally::new(limits);
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
                // Checked first: a refused message must leave no trace (no profile either).
                // It cannot be a duplicate, since a stored message's name is always listed.
                if let Some(refusal) = tally.admit(&tx, msg)? {
                    outcomes.push(Outcome::Refused(refusal));
                    continue;
                }
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
                tally.count(&tx, msg, profile)?;
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
    fn new(limits: DiscoveryLimits) -> Self {
        Self {
            limits,
            events: HashMap::default(),
            last_seen: HashMap::default(),
            stored_names: None,
            new_names: 0,
            refused: 0,
            keys_not_listed: 0,
            clamped: 0,
        }
    }

    /// Whether the message may be stored: a track message may add its name to the listing
    /// only while the store holds fewer than the bound. Known names cost one lookup per
    /// transaction.
    fn admit(
        &mut self,
        tx: &Transaction<'_>,
        msg: &Message,
    ) -> Result<Option<Refusal>, StoreError> {
        if msg.kind != MessageType::Track {
            return Ok(None);
        }
        let Some(event) = &msg.event else {
            return Ok(None);
        };
        if self.events.contains_key(event) {
            return Ok(None);
        }
        let stored = tx
            .prepare_cached("SELECT 1 FROM event_stats WHERE event = ?1")?
            .exists([event])?;
        if !stored {
            let names = match self.stored_names {
                Some(n) => n,
                None => {
                    let n = tx.query_row("SELECT COUNT(*) FROM event_stats", [], |r| r.get(0))?;
                    self.stored_names = Some(n);
                    n
                }
            };
            if names + self.new_names >= self.limits.event_names {
                self.refused += 1;
                return Ok(Some(Refusal::TooManyEventNames {
                    limit: self.limits.event_names,
                }));
            }
            self.new_names += 1;
        }
        self.events.insert(event.clone(), EventTally::new(stored));
        Ok(None)
    }

    /// Counts a stored message; [`Tally::admit`] has made its event's entry.
    fn count(
        &mut self,
        tx: &Transaction<'_>,
        msg: &Message,
        profile: i64,
    ) -> Result<(), StoreError> {
        self.clamped += u64::from(msg.timestamp_clamped);
        let seen = self.last_seen.entry(profile).or_insert(msg.timestamp);
        *seen = (*seen).max(msg.timestamp);
        if msg.kind != MessageType::Track {
            return Ok(());
        }
        let Some(event) = &msg.event else {
            return Ok(());
        };
        let Some(e) = self.events.get_mut(event) else {
            return Ok(());
        };
        e.count += 1;
        e.first = e.first.min(msg.timestamp);
        e.last = e.last.max(msg.timestamp);
        for key in &msg.property_keys {
            // The common case (a key already met in this transaction) allocates nothing.
            if let Some(n) = e.properties.get_mut(key) {
                *n += 1;
                continue;
            }
            let listed = e.stored
                && tx
                    .prepare_cached(
                        "SELECT 1 FROM event_properties WHERE event = ?1 AND property = ?2",
                    )?
                    .exists(params![event, key])?;
            if !listed {
                let keys = match e.stored_keys {
                    Some(n) => n,
                    None => {
                        let n = tx
                            .prepare_cached(
                                "SELECT COUNT(*) FROM event_properties WHERE event = ?1",
                            )?
                            .query_row([event], |r| r.get(0))?;
                        e.stored_keys = Some(n);
                        n
                    }
                };
                if keys + e.new_keys >= self.limits.property_keys_per_event {
                    // Left out of the listing only: the message itself is stored whole.
                    self.keys_not_listed += 1;
                    continue;
                }
                e.new_keys += 1;
            }
            e.properties.insert(key.clone(), 1);
        }
        Ok(())
    }

    fn write(&self, tx: &Transaction<'_>, identities: &IdentityCache) -> Result<(), StoreError> {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO event_stats (event, count, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (event) DO UPDATE SET count = count + excluded.count,
               first_seen = MIN(first_seen, excluded.first_seen),
               last_seen = MAX(last_seen, excluded.last_seen)",
        )?;
        for (event, e) in self.events.iter().filter(|(_, e)| e.count > 0) {
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
        let mut stmt = tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE
               SET value = CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER)",
        )?;
        for (key, n) in [
            (REFUSED_OVER_LIMITS, self.refused),
            (PROPERTY_KEYS_NOT_LISTED, self.keys_not_listed),
            (FUTURE_TIMESTAMPS_CLAMPED, self.clamped),
        ] {
            if n > 0 {
                stmt.execute(params![key, n])?;
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
