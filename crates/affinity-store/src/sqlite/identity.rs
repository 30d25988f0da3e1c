//! Identity resolution inside the write transaction: which profile a message belongs to.
//!
//! Rules (Segment's, with its default identity-resolution limit of one `userId` per
//! profile, [`MAX_USER_IDS_PER_PROFILE`]):
//! - a message with only a `userId` or only an `anonymousId` finds or creates that profile;
//! - a message with both links them: an unseen id joins the other's profile; an anonymous
//!   profile that has no userId yet is merged into the user's profile; an anonymous id that
//!   already belongs to a *different* user stays there (a shared device must not fuse people);
//! - `alias` merges the profile of `previousId` (a userId or an anonymousId) into `userId`'s;
//! - no merge or link may put more than [`MAX_USER_IDS_PER_PROFILE`] user ids on one profile.
//!   Such a merge is refused and recorded in `refused_merges`, while the message itself is
//!   stored on the profile of its `userId`. The write key is public (it ships in browsers),
//!   so an `alias` is a claim from anyone, not a statement: honouring one between two
//!   identified people would hand one person's traits and history to whoever sent it.
//!
//! Every rule is idempotent, so a retried (duplicate) message resolves to the same profile
//! and changes nothing.

use affinity_core::{IdKind, Message, MessageType};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rustc_hash::FxHashMap as HashMap;

use crate::StoreError;

pub(crate) fn kind_code(kind: IdKind) -> i64 {
    match kind {
        IdKind::UserId => 0,
        IdKind::AnonymousId => 1,
    }
}

/// Caches identifier → profile for the writer. Entries may point at a profile merged since;
/// `forward` maps merged profiles to their survivor (merges are rare, so it stays small).
#[derive(Default)]
pub(crate) struct IdentityCache {
    // One map per kind, keyed by String, so a lookup borrows the id instead of allocating.
    users: HashMap<String, i64>,
    anonymous: HashMap<String, i64>,
    forward: HashMap<i64, i64>,
    /// Whether the maps hold every stored identifier, so that a miss means "new" without a
    /// query. True after `load`; false once the cache had to drop entries.
    complete: bool,
}

/// The identity rule: at most this many distinct user ids on one profile. A merge or link
/// that would exceed it is refused (and recorded) instead of applied.
pub const MAX_USER_IDS_PER_PROFILE: usize = 1;

/// Why a merge was refused, as stored in `refused_merges.reason`.
pub const REASON_USER_ID_LIMIT: &str = "user_id_limit";

/// A merge the rules refused, kept until the message that asked for it is known to be new
/// (a retried message must not record it twice).
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub user_id: String,
    pub kind: IdKind,
    pub identifier: String,
    pub owner: String,
}

/// Above this many cached identifiers the cache starts over, bounding the writer's memory.
const MAX_CACHED: usize = 2_000_000;

impl IdentityCache {
    /// Reads every identifier, unless there are too many to hold, in which case the cache
    /// starts empty and incomplete (misses are then looked up).
    pub(crate) fn load(conn: &Connection) -> Result<Self, StoreError> {
        let mut cache = Self::default();
        let count: i64 = conn.query_row("SELECT COUNT(*) FROM identities", [], |r| r.get(0))?;
        if count as usize >= MAX_CACHED {
            return Ok(cache);
        }
        let mut stmt = conn.prepare("SELECT kind, value, profile_id FROM identities")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let kind = if row.get::<_, i64>(0)? == 0 {
                IdKind::UserId
            } else {
                IdKind::AnonymousId
            };
            cache.map(kind).insert(row.get(1)?, row.get(2)?);
        }
        cache.complete = true;
        Ok(cache)
    }

    fn map(&mut self, kind: IdKind) -> &mut HashMap<String, i64> {
        match kind {
            IdKind::UserId => &mut self.users,
            IdKind::AnonymousId => &mut self.anonymous,
        }
    }

    pub(crate) fn canonical(&self, mut p: i64) -> i64 {
        while let Some(&next) = self.forward.get(&p) {
            p = next;
        }
        p
    }
}

pub(crate) struct Resolver<'a, 'c> {
    pub tx: &'a Transaction<'c>,
    pub cache: &'a mut IdentityCache,
    /// Merges refused while resolving the current message; the writer records them if the
    /// message turns out to be new.
    pub refused: Vec<Refusal>,
}

impl Resolver<'_, '_> {
    /// The profile `msg` belongs to, creating, linking and merging as the rules say.
    pub(crate) fn resolve(&mut self, msg: &Message) -> Result<i64, StoreError> {
        let ts = msg.timestamp;
        if msg.kind == MessageType::Alias
            && let (Some(previous), Some(user)) = (&msg.previous_id, &msg.user_id)
        {
            let into = self.ensure(IdKind::UserId, user, ts)?;
            let before = match self.lookup(IdKind::UserId, previous)? {
                Some(p) => Some((IdKind::UserId, p)),
                None => self
                    .lookup(IdKind::AnonymousId, previous)?
                    .map(|p| (IdKind::AnonymousId, p)),
            };
            match before {
                Some((kind, p)) if p != into => match self.conflict(p, into)? {
                    Some(owner) => self.refuse(user, kind, previous, owner),
                    None => self.merge(p, into)?,
                },
                Some(_) => {}
                None => self.attach(IdKind::AnonymousId, previous, into)?,
            }
            if let Some(anon) = &msg.anonymous_id {
                self.link(user, anon, ts)?;
            }
            return Ok(self.cache.canonical(into));
        }
        match (&msg.user_id, &msg.anonymous_id) {
            (Some(user), Some(anon)) => self.link(user, anon, ts),
            (Some(user), None) => self.ensure(IdKind::UserId, user, ts),
            (None, Some(anon)) => self.ensure(IdKind::AnonymousId, anon, ts),
            (None, None) => Err(StoreError::Corrupt(format!(
                "message {} has neither userId nor anonymousId",
                msg.message_id
            ))),
        }
    }

    fn link(&mut self, user: &str, anon: &str, ts: i64) -> Result<i64, StoreError> {
        let pu = self.lookup(IdKind::UserId, user)?;
        let pa = self.lookup(IdKind::AnonymousId, anon)?;
        match (pu, pa) {
            (None, None) => {
                let p = self.create(Some(user), ts)?;
                self.attach(IdKind::UserId, user, p)?;
                self.attach(IdKind::AnonymousId, anon, p)?;
                Ok(p)
            }
            (Some(p), None) => {
                self.attach(IdKind::AnonymousId, anon, p)?;
                Ok(p)
            }
            (None, Some(q)) => {
                let users = self.user_ids(q)?;
                if users.len() < MAX_USER_IDS_PER_PROFILE {
                    // COALESCE: `user_id` names the profile's first user when several are allowed.
                    self.tx.execute(
                        "UPDATE profiles SET user_id = COALESCE(user_id, ?1) WHERE id = ?2",
                        params![user, q],
                    )?;
                    self.attach(IdKind::UserId, user, q)?;
                    Ok(q)
                } else {
                    // A shared device: the anonymous id stays with the user who has it.
                    let p = self.create(Some(user), ts)?;
                    self.attach(IdKind::UserId, user, p)?;
                    if let Some(owner) = users.into_iter().next() {
                        self.refuse(user, IdKind::AnonymousId, anon, owner);
                    }
                    Ok(p)
                }
            }
            (Some(p), Some(q)) if p == q => Ok(p),
            (Some(p), Some(q)) => {
                match self.conflict(q, p)? {
                    Some(owner) => self.refuse(user, IdKind::AnonymousId, anon, owner),
                    None => self.merge(q, p)?,
                }
                Ok(p)
            }
        }
    }

    fn ensure(&mut self, kind: IdKind, id: &str, ts: i64) -> Result<i64, StoreError> {
        if let Some(p) = self.lookup(kind, id)? {
            return Ok(p);
        }
        let user = (kind == IdKind::UserId).then_some(id);
        let p = self.create(user, ts)?;
        self.attach(kind, id, p)?;
        Ok(p)
    }

    fn lookup(&mut self, kind: IdKind, id: &str) -> Result<Option<i64>, StoreError> {
        if let Some(&p) = self.cache.map(kind).get(id) {
            return Ok(Some(self.cache.canonical(p)));
        }
        if self.cache.complete {
            return Ok(None);
        }
        let found: Option<i64> = self
            .tx
            .prepare_cached("SELECT profile_id FROM identities WHERE kind = ?1 AND value = ?2")?
            .query_row(params![kind_code(kind), id], |r| r.get(0))
            .optional()?;
        if let Some(p) = found {
            self.remember(kind, id, p);
        }
        Ok(found.map(|p| self.cache.canonical(p)))
    }

    fn remember(&mut self, kind: IdKind, id: &str, p: i64) {
        if self.cache.users.len() + self.cache.anonymous.len() >= MAX_CACHED {
            self.cache.users.clear();
            self.cache.anonymous.clear();
            self.cache.complete = false;
        }
        let map = self.cache.map(kind);
        map.insert(id.to_string(), p);
    }

    fn create(&mut self, user: Option<&str>, ts: i64) -> Result<i64, StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO profiles (user_id, created_at, last_seen) VALUES (?1, ?2, ?2)",
            )?
            .execute(params![user, ts])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn attach(&mut self, kind: IdKind, id: &str, p: i64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO identities (kind, value, profile_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, value) DO UPDATE SET profile_id = excluded.profile_id",
            )?
            .execute(params![kind_code(kind), id, p])?;
        self.remember(kind, id, p);
        Ok(())
    }

    /// The user ids on profile `p`, in order. Read from the table rather than the cache:
    /// the cache maps ids to profiles, not the reverse, and this is only asked when two
    /// profiles are about to be joined, which is rare.
    fn user_ids(&self, p: i64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT value FROM identities WHERE profile_id = ?1 AND kind = ?2 ORDER BY value",
        )?;
        let rows = stmt.query_map(params![p, kind_code(IdKind::UserId)], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether merging `from` into `into` would break the identity rule: if so, a user id
    /// of `from` that `into` does not have (to name in the record).
    fn conflict(&self, from: i64, into: i64) -> Result<Option<String>, StoreError> {
        let theirs = self.user_ids(from)?;
        if theirs.is_empty() {
            return Ok(None);
        }
        let mut all = self.user_ids(into)?;
        all.extend(theirs.iter().cloned());
        all.sort_unstable();
        all.dedup();
        if all.len() <= MAX_USER_IDS_PER_PROFILE {
            return Ok(None);
        }
        Ok(theirs.into_iter().next())
    }

    fn refuse(&mut self, user: &str, kind: IdKind, identifier: &str, owner: String) {
        self.refused.push(Refusal {
            user_id: user.to_string(),
            kind,
            identifier: identifier.to_string(),
            owner,
        });
    }

    /// Moves everything of profile `from` into `into`: identifiers, traits (newest wins), and
    /// its events (through `merged_into`, so event rows are never rewritten).
    fn merge(&mut self, from: i64, into: i64) -> Result<(), StoreError> {
        let tx = self.tx;
        tx.execute(
            "UPDATE identities SET profile_id = ?2 WHERE profile_id = ?1",
            params![from, into],
        )?;
        tx.execute(
            "INSERT INTO traits (profile_id, name, value, updated_at)
             SELECT ?2, name, value, updated_at FROM traits WHERE profile_id = ?1
             ON CONFLICT (profile_id, name) DO UPDATE
               SET value = excluded.value, updated_at = excluded.updated_at
               WHERE excluded.updated_at > traits.updated_at",
            params![from, into],
        )?;
        tx.execute("DELETE FROM traits WHERE profile_id = ?1", [from])?;
        tx.execute(
            "UPDATE profiles SET
               user_id = COALESCE(user_id, (SELECT user_id FROM profiles WHERE id = ?1)),
               created_at = MIN(created_at, (SELECT created_at FROM profiles WHERE id = ?1)),
               last_seen = MAX(last_seen, (SELECT last_seen FROM profiles WHERE id = ?1))
             WHERE id = ?2",
            params![from, into],
        )?;
        // Flatten: anything merged into `from` now points straight at `into`.
        tx.execute(
            "UPDATE profiles SET merged_into = ?2 WHERE id = ?1 OR merged_into = ?1",
            params![from, into],
        )?;
        self.cache.forward.insert(from, into);
        Ok(())
    }
}

/// Records the merges refused for a newly stored message. Ignored conflicts are the retries
/// of a recorded message and the later messages of an already recorded shared device.
pub(crate) fn record_refusals(
    tx: &Transaction<'_>,
    msg: &Message,
    refused: &[Refusal],
) -> Result<(), StoreError> {
    if refused.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO refused_merges (message_id, message_type, user_id, identifier_kind,
                                     identifier, owner, reason, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT DO NOTHING",
    )?;
    for r in refused {
        let recorded = stmt.execute(params![
            msg.message_id,
            msg.kind.as_str(),
            r.user_id,
            kind_code(r.kind),
            r.identifier,
            r.owner,
            REASON_USER_ID_LIMIT,
            msg.received_at,
        ])? == 1;
        if !recorded {
            continue;
        }
        tracing::info!(
            message_id = %msg.message_id,
            user_id = %r.user_id,
            identifier = %r.identifier,
            owner = %r.owner,
            "identity merge refused: it would put two user ids on one profile"
        );
    }
    Ok(())
}
