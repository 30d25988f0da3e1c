//! The model registry: one versioned JSON record per training run.

use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use super::SqliteStore;
use crate::{ModelRecord, ModelRegistry, ModelStatus, StoreError};

const RECORD_VERSION: u64 = 1;

fn encode(record: &ModelRecord) -> Result<String, StoreError> {
    let value = serde_json::to_value(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(json!({"version": RECORD_VERSION, "record": value}).to_string())
}

fn decode(text: &str) -> Result<ModelRecord, StoreError> {
    let stored: Value = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("model record: {e}")))?;
    if stored["version"].as_u64() != Some(RECORD_VERSION) {
        return Err(StoreError::Corrupt(format!(
            "model record version {}; this Affinity reads {RECORD_VERSION}",
            stored["version"]
        )));
    }
    serde_json::from_value(stored["record"].clone())
        .map_err(|e| StoreError::Corrupt(format!("model record: {e}")))
}

impl ModelRegistry for SqliteStore {
    fn create_model(&self, created_at: i64) -> Result<ModelRecord, StoreError> {
        let conn = self.write_conn()?;
        conn.execute(
            "INSERT INTO models (status, created_at, record) VALUES ('queued', ?1, '{}')",
            [created_at],
        )?;
        let record = ModelRecord::queued(conn.last_insert_rowid(), created_at);
        conn.execute(
            "UPDATE models SET record = ?2 WHERE id = ?1",
            params![record.id, encode(&record)?],
        )?;
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
            let mut stmt = c.prepare("SELECT record FROM models ORDER BY id DESC LIMIT ?1")?;
            let rows = stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?;
            rows.map(|r| decode(&r?)).collect()
        })
    }

    fn model(&self, id: i64) -> Result<Option<ModelRecord>, StoreError> {
        self.read(|c| {
            let text: Option<String> = c
                .query_row("SELECT record FROM models WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            text.map(|t| decode(&t)).transpose()
        })
    }

    fn fail_unfinished(&self, reason: &str) -> Result<usize, StoreError> {
        let unfinished: Vec<ModelRecord> = self.read(|c| {
            let mut stmt =
                c.prepare("SELECT record FROM models WHERE status IN ('queued', 'training')")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| decode(&r?)).collect()
        })?;
        for mut record in unfinished.iter().cloned() {
            record.status = ModelStatus::Failed;
            record.error = Some(reason.to_string());
            self.save_model(&record)?;
        }
        Ok(unfinished.len())
    }
}
