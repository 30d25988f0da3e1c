//! Audience snapshots and their members.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

use super::SqliteStore;
use super::stored_json::Document;
use crate::{AudienceRecord, AudienceStore, Member, OutboxMessage, StoreError};

/// The audience's definition, as the API received it.
pub(super) const SPEC: Document = Document {
    table: "audiences",
    column: "spec",
    key: "spec",
    version: 1,
};
/// The expected outcome computed with the members; `NULL` until computed.
pub(super) const ESTIMATE: Document = Document {
    table: "audiences",
    column: "estimate",
    key: "estimate",
    version: 1,
};
/// The difference from the previous snapshot; `NULL` for a first snapshot.
pub(super) const CHANGES: Document = Document {
    table: "audiences",
    column: "changes",
    key: "changes",
    version: 1,
};

fn record(r: &Row<'_>) -> Result<AudienceRecord, StoreError> {
    let id: i64 = r.get(0)?;
    Ok(AudienceRecord {
        id,
        name: r.get(1)?,
        spec: SPEC.decode(id, &r.get::<_, String>(2)?)?,
        status: r.get(3)?,
        size: r.get(4)?,
        model_id: r.get(5)?,
        created_at: r.get(6)?,
        computed_at: r.get(7)?,
        estimate: ESTIMATE.decode_nullable(id, r.get::<_, Option<String>>(8)?.as_deref())?,
        error: r.get(9)?,
        previous_id: r.get(10)?,
        changes: CHANGES.decode_nullable(id, r.get::<_, Option<String>>(11)?.as_deref())?,
    })
}

const COLUMNS: &str = "id, name, spec, status, size, model_id, created_at, computed_at, estimate, error, previous_id, changes";

fn member(r: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        rank: r.get(0)?,
        profile_id: r.get(1)?,
        user_id: r.get(2)?,
        score: r.get(3)?,
        control: r.get::<_, i64>(4)? != 0,
    })
}

impl AudienceStore for SqliteStore {
    fn create_audience(
        &self,
        name: &str,
        spec: &Value,
        previous_id: Option<i64>,
        status: &str,
        created_at: i64,
    ) -> Result<i64, StoreError> {
        let conn = self.write_conn()?;
        conn.execute(
            "INSERT INTO audiences (name, spec, status, created_at, previous_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, SPEC.encode(spec)?, status, created_at, previous_id],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn start_audience(&self, id: i64) -> Result<bool, StoreError> {
        let conn = self.write_conn()?;
        Ok(conn.execute(
            "UPDATE audiences SET status = 'computing' WHERE id = ?1 AND status = 'queued'",
            [id],
        )? > 0)
    }

    fn finish_audience(
        &self,
        id: i64,
        model_id: i64,
        members: &[Member],
        estimate: &Value,
        changes: Option<&Value>,
        computed_at: i64,
        outbox: &[OutboxMessage],
    ) -> Result<(), StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        super::outbox::enqueue(&tx, outbox)?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO audience_members (audience_id, rank, profile_id, user_id, score, control)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for m in members {
                stmt.execute(params![
                    id,
                    m.rank,
                    m.profile_id,
                    m.user_id,
                    m.score,
                    i64::from(m.control)
                ])?;
            }
        }
        tx.execute(
            "UPDATE audiences SET status = 'live', size = ?2, model_id = ?3, estimate = ?4, changes = ?5,
                computed_at = ?6 WHERE id = ?1",
            params![
                id,
                members.len() as i64,
                model_id,
                ESTIMATE.encode(estimate)?,
                changes.map(|c| CHANGES.encode(c)).transpose()?,
                computed_at
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn fail_audience(&self, id: i64, error: &str) -> Result<(), StoreError> {
        let conn = self.write_conn()?;
        conn.execute(
            "UPDATE audiences SET status = 'failed', error = ?2 WHERE id = ?1",
            params![id, error],
        )?;
        Ok(())
    }

    fn audience(&self, id: i64) -> Result<Option<AudienceRecord>, StoreError> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM audiences WHERE id = ?1"),
                [id],
                |r| Ok(record(r)),
            )
            .optional()?
            .transpose()
        })
    }

    fn audiences(&self) -> Result<Vec<AudienceRecord>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare(&format!("SELECT {COLUMNS} FROM audiences ORDER BY id DESC"))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(record(r)?);
            }
            Ok(out)
        })
    }

    fn audience_members(
        &self,
        id: i64,
        after_rank: i64,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT rank, profile_id, user_id, score, control FROM audience_members
                 WHERE audience_id = ?1 AND rank > ?2 ORDER BY rank LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![id, after_rank, limit as i64], member)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn audience_member(&self, id: i64, user_id: &str) -> Result<Option<Member>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT rank, profile_id, user_id, score, control FROM audience_members
                 WHERE audience_id = ?1 AND user_id = ?2",
                params![id, user_id],
                member,
            )
            .optional()?)
        })
    }

    fn delete_audience(&self, id: i64) -> Result<bool, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM audience_members WHERE audience_id = ?1", [id])?;
        let n = tx.execute("DELETE FROM audiences WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn fail_unfinished_audiences(&self, reason: &str) -> Result<usize, StoreError> {
        let conn = self.write_conn()?;
        Ok(conn.execute(
            "UPDATE audiences SET status = 'failed', error = ?1 WHERE status IN ('queued', 'computing')",
            [reason],
        )?)
    }
}
