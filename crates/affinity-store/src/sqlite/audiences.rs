//! Audiences and their numbered snapshots: an audience keeps its id, each computation is the
//! next snapshot, with its own members, ranking of every scored user, estimate and changes.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::Value;

use super::SqliteStore;
use super::stored_json::Document;
use crate::{
    AudienceRecord, AudienceStore, FinishedSnapshot, KEPT_MEMBER_LISTS, Member, SnapshotFinished,
    SnapshotRecord, StoreError,
};

/// The audience's definition, as the API received it.
pub(super) const SPEC: Document = Document {
    table: "audiences",
    column: "spec",
    key: "spec",
    version: 1,
};
/// The expected outcome computed with the members; `NULL` until computed.
pub(super) const ESTIMATE: Document = Document {
    table: "audience_snapshots",
    column: "estimate",
    key: "estimate",
    version: 1,
};
/// The difference from the previous live snapshot; `NULL` for a first snapshot.
pub(super) const CHANGES: Document = Document {
    table: "audience_snapshots",
    column: "changes",
    key: "changes",
    version: 1,
};
/// Where estimates and changes lived up to v8 (one `audiences` row per snapshot): the v5
/// migration envelops them there, before the v9 migration moves them.
pub(super) const V4_ESTIMATE: Document = Document {
    table: "audiences",
    ..ESTIMATE
};
pub(super) const V4_CHANGES: Document = Document {
    table: "audiences",
    ..CHANGES
};

const SNAPSHOT_COLUMNS: &str = "snapshot, status, model_id, size, created_at, computed_at, estimate, changes, error, members_kept";

/// A snapshot row read from [`SNAPSHOT_COLUMNS`] starting at column `at`; `row` names it in
/// errors (`<audience>/<snapshot>`).
fn snapshot_at(r: &Row<'_>, at: usize, audience: i64) -> Result<SnapshotRecord, StoreError> {
    let snapshot: i64 = r.get(at)?;
    let row = format!("{audience}/{snapshot}");
    Ok(SnapshotRecord {
        snapshot,
        status: r.get(at + 1)?,
        model_id: r.get(at + 2)?,
        size: r.get(at + 3)?,
        created_at: r.get(at + 4)?,
        computed_at: r.get(at + 5)?,
        estimate: ESTIMATE.decode_nullable(&row, r.get::<_, Option<String>>(at + 6)?.as_deref())?,
        changes: CHANGES.decode_nullable(&row, r.get::<_, Option<String>>(at + 7)?.as_deref())?,
        error: r.get(at + 8)?,
        members_kept: r.get::<_, i64>(at + 9)? != 0,
    })
}

/// Columns of an audience with its newest snapshot (`l`) and newest live one (`v`, all NULL
/// before the first is live).
fn audience_query(filter: &str) -> String {
    let cols = |t: &str| {
        SNAPSHOT_COLUMNS
            .split(", ")
            .map(|c| format!("{t}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT a.id, a.name, a.spec, a.created_at, {}, {}
         FROM audiences a
         JOIN audience_snapshots l ON l.audience_id = a.id AND l.snapshot = a.snapshot
         LEFT JOIN audience_snapshots v ON v.audience_id = a.id AND v.snapshot = a.live_snapshot
         {filter}",
        cols("l"),
        cols("v")
    )
}

const LATEST_AT: usize = 4;
const LIVE_AT: usize = LATEST_AT + 10;

fn record(r: &Row<'_>) -> Result<AudienceRecord, StoreError> {
    let id: i64 = r.get(0)?;
    let live = match r.get::<_, Option<i64>>(LIVE_AT)? {
        Some(_) => Some(snapshot_at(r, LIVE_AT, id)?),
        None => None,
    };
    Ok(AudienceRecord {
        id,
        name: r.get(1)?,
        spec: SPEC.decode(id, &r.get::<_, String>(2)?)?,
        created_at: r.get(3)?,
        latest: snapshot_at(r, LATEST_AT, id)?,
        live,
    })
}

fn member(r: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        rank: r.get(0)?,
        profile_id: r.get(1)?,
        user_id: r.get(2)?,
        score: r.get(3)?,
        control: r.get::<_, i64>(4)? != 0,
    })
}

/// Drops the member lists and rankings of `id`'s live snapshots older than the newest
/// [`KEPT_MEMBER_LISTS`]; their estimates and changes stay.
fn prune(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
    let old: Vec<i64> = {
        let mut stmt = tx.prepare_cached(
            "SELECT snapshot FROM audience_snapshots
             WHERE audience_id = ?1 AND status = 'live' AND members_kept = 1
             ORDER BY snapshot DESC LIMIT -1 OFFSET ?2",
        )?;
        let rows = stmt.query_map(params![id, KEPT_MEMBER_LISTS], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for snapshot in old {
        tx.execute(
            "DELETE FROM audience_members WHERE audience_id = ?1 AND snapshot = ?2",
            params![id, snapshot],
        )?;
        tx.execute(
            "UPDATE audience_snapshots SET members_kept = 0, ranking = NULL
             WHERE audience_id = ?1 AND snapshot = ?2",
            params![id, snapshot],
        )?;
    }
    Ok(())
}

fn insert_snapshot(
    conn: &Connection,
    id: i64,
    snapshot: i64,
    status: &str,
    created_at: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audience_snapshots (audience_id, snapshot, status, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![id, snapshot, status, created_at],
    )?;
    Ok(())
}

impl AudienceStore for SqliteStore {
    fn create_audience(
        &self,
        name: &str,
        spec: &Value,
        status: &str,
        created_at: i64,
    ) -> Result<i64, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        // Past every id in use, an old id kept as an alias included: an id a v8 refresh
        // returned must never name another audience.
        tx.execute(
            "INSERT INTO audiences (id, name, spec, created_at, snapshot)
             VALUES (1 + MAX((SELECT COALESCE(MAX(id), 0) FROM audiences),
                             (SELECT COALESCE(MAX(old_id), 0) FROM audience_aliases)),
                     ?1, ?2, ?3, 1)",
            params![name, SPEC.encode(spec)?, created_at],
        )?;
        let id = tx.last_insert_rowid();
        insert_snapshot(&tx, id, 1, status, created_at)?;
        tx.commit()?;
        Ok(id)
    }

    fn next_snapshot(
        &self,
        id: i64,
        status: &str,
        created_at: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        // One snapshot in progress at a time: the next is numbered only once the newest is
        // live or failed.
        let next: Option<i64> = tx
            .query_row(
                "UPDATE audiences SET snapshot = snapshot + 1
                 WHERE id = ?1 AND NOT EXISTS (
                     SELECT 1 FROM audience_snapshots s
                     WHERE s.audience_id = audiences.id AND s.snapshot = audiences.snapshot
                       AND s.status IN ('queued', 'computing'))
                 RETURNING snapshot",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(next) = next else {
            return Ok(None);
        };
        insert_snapshot(&tx, id, next, status, created_at)?;
        tx.commit()?;
        Ok(Some(next))
    }

    fn start_snapshot(&self, id: i64, snapshot: i64) -> Result<bool, StoreError> {
        let conn = self.write_conn()?;
        Ok(conn.execute(
            "UPDATE audience_snapshots SET status = 'computing'
             WHERE audience_id = ?1 AND snapshot = ?2 AND status = 'queued'",
            params![id, snapshot],
        )? > 0)
    }

    fn add_snapshot_members(
        &self,
        id: i64,
        snapshot: i64,
        members: &[Member],
        explanations: &[String],
    ) -> Result<bool, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        // Checked in the chunk's transaction: a deletion commits either before (nothing is
        // added) or after (it deletes what was added).
        let computing = tx
            .query_row(
                "SELECT 1 FROM audience_snapshots
                 WHERE audience_id = ?1 AND snapshot = ?2 AND status = 'computing'",
                params![id, snapshot],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !computing {
            return Ok(false);
        }
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO audience_members (audience_id, snapshot, rank, profile_id, user_id, score, control, why)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (i, m) in members.iter().enumerate() {
                let why = explanations.get(i);
                stmt.execute(params![
                    id,
                    snapshot,
                    m.rank,
                    m.profile_id,
                    m.user_id,
                    m.score,
                    i64::from(m.control),
                    why
                ])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    fn finish_audience(
        &self,
        id: i64,
        snapshot: i64,
        finished: &FinishedSnapshot<'_>,
        hold: Option<i64>,
    ) -> Result<SnapshotFinished, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        if let Some(expected) = finished.spec {
            let stored: Option<String> = tx
                .prepare_cached("SELECT spec FROM audiences WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            match stored {
                None => return Ok(SnapshotFinished::Gone),
                Some(text) if SPEC.decode::<Value>(id, &text)? != *expected => {
                    return Ok(SnapshotFinished::Stale);
                }
                Some(_) => {}
            }
        }
        let updated = tx.execute(
            "UPDATE audience_snapshots SET status = 'live', size = ?3, model_id = ?4, estimate = ?5,
                changes = ?6, computed_at = ?7, ranking = ?8, error = NULL
             WHERE audience_id = ?1 AND snapshot = ?2",
            params![
                id,
                snapshot,
                finished.size,
                finished.model_id,
                ESTIMATE.encode(finished.estimate)?,
                finished.changes.map(|c| CHANGES.encode(c)).transpose()?,
                finished.computed_at,
                finished.ranking
            ],
        )?;
        if updated == 0 {
            // Deleted while it computed: store nothing (dropping the transaction rolls back).
            return Ok(SnapshotFinished::Gone);
        }
        // Its messages, queued beforehand, become due with it: one row deleted.
        if let Some(hold) = hold
            && !super::outbox::release(&tx, hold)?
        {
            return Ok(SnapshotFinished::Gone);
        }
        tx.execute(
            "UPDATE audiences SET live_snapshot = ?2
             WHERE id = ?1 AND (live_snapshot IS NULL OR live_snapshot < ?2)",
            params![id, snapshot],
        )?;
        prune(&tx, id)?;
        tx.commit()?;
        Ok(SnapshotFinished::Live)
    }

    fn members_not_in(
        &self,
        id: i64,
        snapshot: i64,
        other: i64,
        treatment: bool,
        after_rank: i64,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        self.read(|c| {
            // Keyset pages by rank; each member looked up in `other` through
            // `audience_members_user`.
            let mut stmt = c.prepare_cached(
                "SELECT n.rank, n.profile_id, n.user_id, n.score, n.control FROM audience_members n
                 WHERE n.audience_id = ?1 AND n.snapshot = ?2 AND n.rank > ?4
                   AND (?5 = 0 OR n.control = 0)
                   AND NOT EXISTS (
                       SELECT 1 FROM audience_members o
                       WHERE o.audience_id = ?1 AND o.snapshot = ?3 AND o.user_id = n.user_id
                         AND (?5 = 0 OR o.control = 0))
                 ORDER BY n.rank LIMIT ?6",
            )?;
            let rows = stmt.query_map(
                params![
                    id,
                    snapshot,
                    other,
                    after_rank,
                    i64::from(treatment),
                    limit as i64
                ],
                member,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn count_members_not_in(&self, id: i64, snapshot: i64, other: i64) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM audience_members n
                 WHERE n.audience_id = ?1 AND n.snapshot = ?2
                   AND NOT EXISTS (
                       SELECT 1 FROM audience_members o
                       WHERE o.audience_id = ?1 AND o.snapshot = ?3 AND o.user_id = n.user_id)",
                params![id, snapshot, other],
                |r| r.get(0),
            )?)
        })
    }

    fn fail_audience(&self, id: i64, snapshot: i64, error: &str) -> Result<(), StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        let failed = tx.execute(
            "UPDATE audience_snapshots SET status = 'failed', error = ?3
             WHERE audience_id = ?1 AND snapshot = ?2 AND status != 'live'",
            params![id, snapshot, error],
        )?;
        if failed > 0 {
            tx.execute(
                "DELETE FROM audience_members WHERE audience_id = ?1 AND snapshot = ?2",
                params![id, snapshot],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn resolve_audience_id(&self, id: i64) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            // An audience's own id first (an alias never names one, see `create_audience`).
            Ok(c.query_row(
                "SELECT COALESCE((SELECT id FROM audiences WHERE id = ?1),
                                 (SELECT audience_id FROM audience_aliases WHERE old_id = ?1))",
                [id],
                |r| r.get(0),
            )?)
        })
    }

    fn audience(&self, id: i64) -> Result<Option<AudienceRecord>, StoreError> {
        self.read(|c| {
            c.query_row(&audience_query("WHERE a.id = ?1"), [id], |r| Ok(record(r)))
                .optional()?
                .transpose()
        })
    }

    fn audiences(&self) -> Result<Vec<AudienceRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(&audience_query("ORDER BY a.id DESC"))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(record(r)?);
            }
            Ok(out)
        })
    }

    fn audience_snapshots(&self, id: i64) -> Result<Vec<SnapshotRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM audience_snapshots WHERE audience_id = ?1
                 ORDER BY snapshot DESC"
            ))?;
            let mut rows = stmt.query([id])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(snapshot_at(r, 0, id)?);
            }
            Ok(out)
        })
    }

    fn audience_snapshot(
        &self,
        id: i64,
        snapshot: i64,
    ) -> Result<Option<SnapshotRecord>, StoreError> {
        self.read(|c| {
            c.query_row(
                &format!(
                    "SELECT {SNAPSHOT_COLUMNS} FROM audience_snapshots
                     WHERE audience_id = ?1 AND snapshot = ?2"
                ),
                params![id, snapshot],
                |r| Ok(snapshot_at(r, 0, id)),
            )
            .optional()?
            .transpose()
        })
    }

    fn audience_members(
        &self,
        id: i64,
        snapshot: i64,
        after_rank: i64,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT rank, profile_id, user_id, score, control FROM audience_members
                 WHERE audience_id = ?1 AND snapshot = ?2 AND rank > ?3 ORDER BY rank LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![id, snapshot, after_rank, limit as i64], member)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn audience_member(
        &self,
        id: i64,
        snapshot: i64,
        user_id: &str,
    ) -> Result<Option<(Member, Option<String>)>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT rank, profile_id, user_id, score, control, why FROM audience_members
                 WHERE audience_id = ?1 AND snapshot = ?2 AND user_id = ?3",
                params![id, snapshot, user_id],
                |r| Ok((member(r)?, r.get(5)?)),
            )
            .optional()?)
        })
    }

    fn snapshot_ranking(&self, id: i64, snapshot: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT ranking FROM audience_snapshots WHERE audience_id = ?1 AND snapshot = ?2",
                params![id, snapshot],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()?
            .flatten())
        })
    }

    fn delete_audience(&self, id: i64) -> Result<bool, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM audience_members WHERE audience_id = ?1", [id])?;
        tx.execute(
            "DELETE FROM audience_snapshots WHERE audience_id = ?1",
            [id],
        )?;
        tx.execute("DELETE FROM audience_aliases WHERE audience_id = ?1", [id])?;
        let n = tx.execute("DELETE FROM audiences WHERE id = ?1", [id])?;
        if n > 0 {
            super::outbox::cancel(&tx, &crate::audience_cause(id))?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    fn fail_unfinished_audiences(&self, reason: &str) -> Result<usize, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        // The members a computation had added before the stop (never live, never read).
        tx.execute(
            "DELETE FROM audience_members WHERE (audience_id, snapshot) IN (
                 SELECT audience_id, snapshot FROM audience_snapshots
                 WHERE status IN ('queued', 'computing'))",
            [],
        )?;
        let n = tx.execute(
            "UPDATE audience_snapshots SET status = 'failed', error = ?1
             WHERE status IN ('queued', 'computing')",
            [reason],
        )?;
        tx.commit()?;
        // The messages those snapshots (or any other unrecorded change) had queued under a
        // hold: at start no hold can belong to a change still in progress.
        let dropped = super::outbox::drop_all_holds(&mut conn)?;
        if dropped > 0 {
            tracing::info!(dropped, "held outbox rows of unrecorded changes deleted");
        }
        Ok(n)
    }
}
