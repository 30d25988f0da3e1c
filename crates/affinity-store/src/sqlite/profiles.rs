use affinity_core::IdKind;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::identity::kind_code;
use crate::{Profile, Profiles, RefusedMerge, StoreError, StoredEvent, Trait};

impl Profiles for SqliteStore {
    fn profile(&self, kind: IdKind, id: &str) -> Result<Option<Profile>, StoreError> {
        self.read(|c| {
            let found: Option<i64> = c
                .query_row(
                    "SELECT COALESCE(p.merged_into, p.id) FROM identities i
                     JOIN profiles p ON p.id = i.profile_id
                     WHERE i.kind = ?1 AND i.value = ?2",
                    params![kind_code(kind), id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(pid) = found else { return Ok(None) };
            let (user_id, created_at, last_seen) = c.query_row(
                "SELECT user_id, created_at, last_seen FROM profiles WHERE id = ?1",
                [pid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let mut stmt = c.prepare(
                "SELECT kind, value FROM identities WHERE profile_id = ?1 ORDER BY kind, value",
            )?;
            let identities = stmt
                .query_map([pid], |r| {
                    let kind = if r.get::<_, i64>(0)? == 0 {
                        IdKind::UserId
                    } else {
                        IdKind::AnonymousId
                    };
                    Ok((kind, r.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut stmt = c.prepare(
                "SELECT name, value, updated_at FROM traits WHERE profile_id = ?1 ORDER BY name",
            )?;
            let traits = stmt
                .query_map([pid], |r| {
                    let text: String = r.get(1)?;
                    Ok((r.get::<_, String>(0)?, text, r.get::<_, i64>(2)?))
                })?
                .map(|row| {
                    let (name, text, updated_at) = row?;
                    let value = serde_json::from_str(&text)
                        .map_err(|e| StoreError::Corrupt(format!("trait {name}: {e}")))?;
                    Ok(Trait {
                        name,
                        value,
                        updated_at,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            Ok(Some(Profile {
                id: pid,
                user_id,
                identities,
                traits,
                created_at,
                last_seen,
            }))
        })
    }

    fn profile_events(
        &self,
        profile_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT seq, message_id, type, event, user_id, anonymous_id, timestamp,
                        received_at, raw
                 FROM events
                 WHERE profile_id IN (SELECT id FROM profiles WHERE id = ?1 OR merged_into = ?1)
                 ORDER BY timestamp DESC, seq DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![profile_id, limit as i64], |r| {
                Ok(StoredEvent {
                    seq: r.get(0)?,
                    message_id: r.get(1)?,
                    kind: r.get(2)?,
                    event: r.get(3)?,
                    user_id: r.get(4)?,
                    anonymous_id: r.get(5)?,
                    timestamp: r.get(6)?,
                    received_at: r.get(7)?,
                    raw: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn refused_merges(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<RefusedMerge>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, message_id, message_type, user_id, identifier_kind, identifier,
                        owner, reason, received_at
                 FROM refused_merges WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![before.unwrap_or(i64::MAX), limit as i64], |r| {
                Ok(RefusedMerge {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    message_type: r.get(2)?,
                    user_id: r.get(3)?,
                    identifier_kind: if r.get::<_, i64>(4)? == 0 {
                        IdKind::UserId
                    } else {
                        IdKind::AnonymousId
                    },
                    identifier: r.get(5)?,
                    owner: r.get(6)?,
                    reason: r.get(7)?,
                    received_at: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}
