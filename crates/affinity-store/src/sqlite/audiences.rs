//! Audience snapshots and their members.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

use super::SqliteStore;
use crate::{AudienceRecord, AudienceStore, Member, StoreError};

fn json_column(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn record(r: &Row<'_>) -> rusqlite::Result<AudienceRecord> {
    Ok(AudienceRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        spec: json_column(r.get(2)?),
        status: r.get(3)?,
        size: r.get(4)?,
        model_id: r.get(5)?,
        created_at: r.get(6)?,
        computed_at: r.get(7)?,
        estimate: json_column(r.get(8)?),
        error: r.get(9)?,
        previous_id: r.get(10)?,
        changes: json_column(r.get(11)?),
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
        created_at: i64,
    ) -> Result<i64, StoreError> {
        let conn = self.write_conn()?;
        conn.execute(
            "INSERT INTO audiences (name, spec, status, created_at, previous_id) VALUES (?1, ?2, 'computing', ?3, ?4)",
            params![name, spec.to_string(), created_at, previous_id],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn finish_audience(
        &self,
        id: i64,
        model_id: i64,
        members: &[Member],
        estimate: &Value,
        changes: Option<&Value>,
        computed_at: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
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
            params![id, members.len() as i64, model_id, estimate.to_string(), changes.map(Value::to_string), computed_at],
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
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM audiences WHERE id = ?1"),
                [id],
                record,
            )
            .optional()?)
        })
    }

    fn audiences(&self) -> Result<Vec<AudienceRecord>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare(&format!("SELECT {COLUMNS} FROM audiences ORDER BY id DESC"))?;
            let rows = stmt.query_map([], record)?;
            Ok(rows.collect::<Result<_, _>>()?)
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
            "UPDATE audiences SET status = 'failed', error = ?1 WHERE status = 'computing'",
            [reason],
        )?)
    }
}
