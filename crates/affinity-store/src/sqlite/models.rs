//! The model registry: one versioned JSON record per training run.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::stored_json::Document;
use crate::{ModelRecord, ModelRegistry, ModelStatus, StoreError};

const RECORD: Document = Document {
    table: "models",
    column: "record",
    key: "record",
    version: 1,
};

fn encode(record: &ModelRecord) -> Result<String, StoreError> {
    RECORD.encode(record)
}

fn decode(id: i64, text: &str) -> Result<ModelRecord, StoreError> {
    RECORD.decode(id, text)
}

impl SqliteStore {
    /// The newest run that finished ready: the model a restarted server serves first.
    pub fn last_ready_model(&self) -> Result<Option<ModelRecord>, StoreError> {
        self.read(|c| {
            let row: Option<(i64, String)> = c
                .query_row(
                    "SELECT id, record FROM models WHERE status = 'ready' ORDER BY id DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            row.map(|(id, text)| decode(id, &text)).transpose()
        })
    }
}

impl ModelRegistry for SqliteStore {
    fn create_model(&self, created_at: i64) -> Result<ModelRecord, StoreError> {
        let mut conn = self.write_conn()?;
        // The record holds its own id, known only after the insert: one transaction, so no
        // reader ever sees the placeholder (which would read as a corrupt row).
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO models (status, created_at, record) VALUES ('queued', ?1, '{}')",
            [created_at],
        )?;
        let record = ModelRecord::queued(tx.last_insert_rowid(), created_at);
        tx.execute(
            "UPDATE models SET record = ?2 WHERE id = ?1",
            params![record.id, encode(&record)?],
        )?;
        tx.commit()?;
        Ok(record)
    }

    fn save_model(&self, record: &ModelRecord) -> Result<(), StoreError> {
        let conn = self.write_conn()?;
        conn.execute(
            "UPDATE models SET status = ?2, record = ?3 WHERE id = ?1",
            params![record.id, record.status.as_str(), encode(record)?],
        )?;
        Ok(())
    }

    fn models(&self, limit: usize) -> Result<Vec<ModelRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT id, record FROM models ORDER BY id DESC LIMIT ?1")?;
            let rows =
                stmt.query_map([limit as i64], |r| Ok((r.get(0)?, r.get::<_, String>(1)?)))?;
            rows.map(|r| {
                let (id, text) = r?;
                decode(id, &text)
            })
            .collect()
        })
    }

    fn model(&self, id: i64) -> Result<Option<ModelRecord>, StoreError> {
        self.read(|c| {
            let text: Option<String> = c
                .query_row("SELECT record FROM models WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            text.map(|t| decode(id, &t)).transpose()
        })
    }

    fn fail_unfinished(&self, reason: &str) -> Result<usize, StoreError> {
        let unfinished: Vec<ModelRecord> = self.read(|c| {
            let mut stmt =
                c.prepare("SELECT id, record FROM models WHERE status IN ('queued', 'training')")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(1)?)))?;
            rows.map(|r| {
                let (id, text) = r?;
                decode(id, &text)
            })
            .collect()
        })?;
        for mut record in unfinished.iter().cloned() {
            record.status = ModelStatus::Failed;
            record.error = Some(reason.to_string());
            self.save_model(&record)?;
        }
        Ok(unfinished.len())
    }
}
