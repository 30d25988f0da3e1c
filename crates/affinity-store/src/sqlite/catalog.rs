//! Catalog storage: the configuration (versioned JSON in `meta`), uploaded item rows, and the
//! scan that feeds stored interaction events to a [`CatalogBuilder`].

use std::collections::HashMap;

use affinity_core::catalog::CatalogConfig;
use affinity_core::item_catalog::CatalogBuilder;
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};

use super::SqliteStore;
use super::stored_json::Document;
use super::track_scan::scan_tracked;
use crate::{CatalogStore, Meta, StoreError};

const CONFIG_KEY: &str = "catalog_config";
const CONFIG: Document = Document {
    table: "meta",
    column: "value",
    key: "config",
    version: 1,
};

impl CatalogStore for SqliteStore {
    fn catalog_config(&self) -> Result<Option<CatalogConfig>, StoreError> {
        let Some(text) = self.get_meta(CONFIG_KEY)? else {
            return Ok(None);
        };
        CONFIG.decode(CONFIG_KEY, &text).map(Some)
    }

    fn set_catalog_config(&self, config: &CatalogConfig) -> Result<(), StoreError> {
        self.set_meta(CONFIG_KEY, &CONFIG.encode(config)?)
    }

    fn scan_interactions(
        &self,
        builder: &mut CatalogBuilder,
        config: &CatalogConfig,
    ) -> Result<u64, StoreError> {
        self.read(|c| {
            let names: Vec<&str> = config.events.iter().map(|e| e.name.as_str()).collect();
            let scanned = scan_tracked(c, &names, &mut |index, profile, timestamp, properties| {
                builder.add_event(profile, index, timestamp, properties)
            })?;
            let mut stmt =
                c.prepare("SELECT item_id, columns FROM catalog_items ORDER BY item_id")?;
            for row in
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            {
                let (id, columns) = row?;
                if let Ok(Value::Object(columns)) = serde_json::from_str(&columns) {
                    builder.add_upload(&id, &columns);
                }
            }
            Ok(scanned)
        })
    }

    fn upload_items(
        &self,
        rows: &[(String, Map<String, Value>)],
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        {
            let mut get = tx.prepare("SELECT columns FROM catalog_items WHERE item_id = ?1")?;
            let mut put = tx.prepare(
                "INSERT INTO catalog_items (item_id, columns, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (item_id) DO UPDATE SET columns = excluded.columns,
                   updated_at = excluded.updated_at",
            )?;
            for (id, columns) in rows {
                let existing: Option<String> = get.query_row([id], |r| r.get(0)).optional()?;
                let mut merged = match existing.and_then(|t| serde_json::from_str::<Value>(&t).ok())
                {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                merged.extend(columns.clone());
                put.execute(params![id, Value::Object(merged).to_string(), now])?;
            }
        }
        tx.commit()?;
        Ok(rows.len())
    }

    fn profile_labels(&self) -> Result<HashMap<i64, String>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT p.id, COALESCE(p.user_id,
                    (SELECT value FROM identities i WHERE i.profile_id = p.id AND i.kind = 1
                     ORDER BY value LIMIT 1))
                 FROM profiles p WHERE p.merged_into IS NULL",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            let mut out = HashMap::new();
            for row in rows {
                let (id, label) = row?;
                if let Some(label) = label {
                    out.insert(id, label);
                }
            }
            Ok(out)
        })
    }
}
