//! Trait definitions and the computed values written onto profiles.

use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::{Map, Value};

use super::SqliteStore;
use super::stored_json::Document;
use super::trait_outbox::{
    PROFILES_PER_PAGE, backfill, existing_destinations, flush_page, forget_backfills, is_change,
    start_backfill, unfinished,
};
use crate::{
    BackfillOf, ChangeOutbox, ProfileTraits, StoreError, Trait, TraitBackfill,
    TraitDefinitionRecord, TraitMessages, TraitStore,
};

/// A trait's definition, as the API received it.
pub(super) const DEFINITION: Document = Document {
    table: "trait_definitions",
    column: "definition",
    key: "definition",
    version: 1,
};

/// Rows per transaction when rewriting a trait: bounds how long ingest waits on the lock.
const ROWS_PER_TRANSACTION: usize = 20_000;

/// The destinations trait `name`'s definition names as stored in `tx`, those that exist.
fn trait_destinations(
    tx: &Transaction<'_>,
    name: &str,
    outbox: &ChangeOutbox<'_>,
) -> Result<Vec<i64>, StoreError> {
    let definition: Option<String> = tx
        .query_row(
            "SELECT definition FROM trait_definitions WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    match definition {
        Some(text) => {
            let definition = DEFINITION.decode(format_args!("{name:?}"), &text)?;
            existing_destinations(tx, &(outbox.destinations)(&definition))
        }
        None => Ok(Vec::new()),
    }
}

/// The values of trait `name` of the profiles after `after`, a page, and the last profile
/// read (`None` past the end): a backfill's page.
fn trait_values_page(
    tx: &Transaction<'_>,
    name: &str,
    after: i64,
) -> Result<(Vec<ProfileTraits>, Option<i64>), StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT profile_id, value, updated_at FROM computed_traits
         WHERE name = ?1 AND profile_id > ?2 ORDER BY profile_id LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![name, after, PROFILES_PER_PAGE as i64])?;
    let (mut page, mut last) = (Vec::new(), None);
    while let Some(row) = rows.next()? {
        let (profile_id, text, version): (i64, String, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        last = Some(profile_id);
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            StoreError::Corrupt(format!(
                "computed trait {name} of profile {profile_id}: {e}"
            ))
        })?;
        if is_change(None, &text) {
            let mut traits = Map::new();
            traits.insert(name.to_string(), value);
            page.push(ProfileTraits {
                profile_id,
                version,
                traits,
            });
        }
    }
    Ok((page, last))
}

impl TraitStore for SqliteStore {
    fn save_trait_definition(
        &self,
        name: &str,
        definition: &Value,
        created_at: i64,
    ) -> Result<(), StoreError> {
        let conn = self.write_conn()?;
        conn.execute(
            "INSERT INTO trait_definitions (name, definition, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition,
                 computed_at = NULL, profiles = 0, model_id = NULL",
            params![name, DEFINITION.encode(definition)?, created_at],
        )?;
        Ok(())
    }

    fn insert_trait_definition(
        &self,
        name: &str,
        definition: &Value,
        created_at: i64,
    ) -> Result<bool, StoreError> {
        let conn = self.write_conn()?;
        // One statement, so two concurrent creations of one name cannot both succeed.
        let n = conn.execute(
            "INSERT INTO trait_definitions (name, definition, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
            params![name, DEFINITION.encode(definition)?, created_at],
        )?;
        Ok(n == 1)
    }

    fn update_trait_definition(&self, name: &str, definition: &Value) -> Result<bool, StoreError> {
        let conn = self.write_conn()?;
        let n = conn.execute(
            "UPDATE trait_definitions SET definition = ?2, computed_at = NULL, profiles = 0,
                 model_id = NULL WHERE name = ?1",
            params![name, DEFINITION.encode(definition)?],
        )?;
        Ok(n == 1)
    }

    fn delete_trait_definition(&self, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        let n = tx.execute("DELETE FROM trait_definitions WHERE name = ?1", [name])?;
        tx.execute("DELETE FROM computed_traits WHERE name = ?1", [name])?;
        forget_backfills(&tx, &BackfillOf::Trait(name.to_string()))?;
        if n == 1 {
            super::outbox::cancel(&tx, &crate::trait_cause(name))?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    fn drop_undefined_computed_traits(&self, name: &str) -> Result<usize, StoreError> {
        let conn = self.write_conn()?;
        Ok(conn.execute(
            "DELETE FROM computed_traits WHERE name = ?1
             AND NOT EXISTS (SELECT 1 FROM trait_definitions WHERE name = ?1)",
            [name],
        )?)
    }

    fn trait_definition(&self, name: &str) -> Result<Option<TraitDefinitionRecord>, StoreError> {
        Ok(self.definitions(Some(name))?.into_iter().next())
    }

    fn trait_definitions(&self) -> Result<Vec<TraitDefinitionRecord>, StoreError> {
        self.definitions(None)
    }

    fn put_computed_traits(
        &self,
        name: &str,
        values: &[(i64, Value)],
        updated_at: i64,
        mut outbox: Option<&mut ChangeOutbox<'_>>,
    ) -> Result<(), StoreError> {
        // Overwritten in place, stale rows dropped at the end: readers see the previous value
        // or the new one, never none.
        let mut conn = self.write_conn()?;
        for chunk in values.chunks(ROWS_PER_TRANSACTION) {
            let tx = conn.transaction()?;
            if let Some(outbox) = outbox.as_deref_mut() {
                let destinations = trait_destinations(&tx, name, outbox)?;
                if !destinations.is_empty() {
                    let mut page = Vec::new();
                    let mut previous = tx.prepare_cached(
                        "SELECT value FROM computed_traits WHERE profile_id = ?1 AND name = ?2",
                    )?;
                    for (profile, value) in chunk {
                        let before: Option<String> = previous
                            .query_row(params![profile, name], |r| r.get(0))
                            .optional()?;
                        if is_change(before.as_deref(), &value.to_string()) {
                            let mut traits = Map::new();
                            traits.insert(name.to_string(), value.clone());
                            page.push(ProfileTraits {
                                profile_id: *profile,
                                version: updated_at,
                                traits,
                            });
                        }
                        if page.len() == PROFILES_PER_PAGE {
                            flush_page(&tx, &destinations, &mut page, outbox.messages)?;
                        }
                    }
                    flush_page(&tx, &destinations, &mut page, outbox.messages)?;
                }
            }
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO computed_traits (profile_id, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (profile, value) in chunk {
                    stmt.execute(params![profile, name, value.to_string(), updated_at])?;
                }
            }
            tx.commit()?;
        }
        Ok(())
    }

    fn set_trait_destinations(
        &self,
        name: &str,
        definition: &Value,
        added: &[i64],
        messages: &mut TraitMessages<'_>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.write_conn()?;
        let started = {
            let tx = conn.transaction()?;
            // The values and the record of their computation stay: only who receives them
            // changed.
            let n = tx.execute(
                "UPDATE trait_definitions SET definition = ?2 WHERE name = ?1",
                params![name, DEFINITION.encode(definition)?],
            )?;
            if n == 0 {
                return Ok(false);
            }
            let started = start_backfill(&tx, BackfillOf::Trait(name.to_string()), added)?;
            tx.commit()?;
            started
        };
        // See `backfill` for why pages in transactions of their own, after the definition,
        // keep every destination's last message the current value.
        if let Some(started) = started {
            backfill(&mut conn, &started, messages, |tx, after| {
                trait_values_page(tx, name, after)
            })?;
        }
        Ok(true)
    }

    fn unfinished_backfills(&self) -> Result<Vec<TraitBackfill>, StoreError> {
        self.read(unfinished)
    }

    fn resume_backfill(
        &self,
        started: &TraitBackfill,
        messages: &mut TraitMessages<'_>,
    ) -> Result<(), StoreError> {
        let mut conn = self.write_conn()?;
        match &started.of {
            BackfillOf::Trait(name) => backfill(&mut conn, started, messages, |tx, after| {
                trait_values_page(tx, name, after)
            }),
            BackfillOf::Goal(id) => {
                let Some(key) = super::goals::goal_key(&conn, *id)? else {
                    // Deleted with its goal (which forgets it): nothing to send.
                    conn.execute("DELETE FROM trait_backfills WHERE id = ?1", [started.id])?;
                    return Ok(());
                };
                backfill(&mut conn, started, messages, |tx, after| {
                    super::goals::goal_lists_page(tx, *id, &key, after)
                })
            }
        }
    }

    fn finish_computed_traits(
        &self,
        name: &str,
        updated_at: i64,
        profiles: usize,
        model_id: i64,
        outbox: Option<&mut ChangeOutbox<'_>>,
    ) -> Result<(), StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        if let Some(outbox) = outbox {
            let destinations = trait_destinations(&tx, name, outbox)?;
            if !destinations.is_empty() {
                // A profile the run did not reach (gone from the model) loses its value: as
                // Segment Engage does for a computed trait that no longer applies, its
                // destinations get the trait as null (only those that were sent a value).
                let mut stmt = tx.prepare(
                    "SELECT profile_id, value FROM computed_traits
                     WHERE name = ?1 AND updated_at <> ?2",
                )?;
                let mut rows = stmt.query(params![name, updated_at])?;
                let mut page = Vec::new();
                while let Some(row) = rows.next()? {
                    let (profile_id, before): (i64, String) = (row.get(0)?, row.get(1)?);
                    if !is_change(None, &before) {
                        continue;
                    }
                    let mut traits = Map::new();
                    traits.insert(name.to_string(), Value::Null);
                    page.push(ProfileTraits {
                        profile_id,
                        version: updated_at,
                        traits,
                    });
                    if page.len() == PROFILES_PER_PAGE {
                        flush_page(&tx, &destinations, &mut page, outbox.messages)?;
                    }
                }
                flush_page(&tx, &destinations, &mut page, outbox.messages)?;
            }
        }
        tx.execute(
            "DELETE FROM computed_traits WHERE name = ?1 AND updated_at <> ?2",
            params![name, updated_at],
        )?;
        tx.execute(
            "UPDATE trait_definitions SET computed_at = ?2, profiles = ?3, model_id = ?4 WHERE name = ?1",
            params![name, updated_at, profiles as i64, model_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn computed_traits(&self, profile_id: i64) -> Result<Vec<Trait>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT name, value, updated_at FROM computed_traits WHERE profile_id = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([profile_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?)))?;
            rows.map(|row| {
                let (name, text, updated_at) = row?;
                let value = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("computed trait {name}: {e}")))?;
                Ok(Trait { name, value, updated_at })
            })
            .collect()
        })
    }
}

impl SqliteStore {
    /// Every definition, or the one named `only`, by name.
    fn definitions(&self, only: Option<&str>) -> Result<Vec<TraitDefinitionRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT name, definition, created_at, computed_at, profiles, model_id
                 FROM trait_definitions WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([only], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.map(|row| {
                let (name, text, created_at, computed_at, profiles, model_id) = row?;
                let definition = DEFINITION.decode(format_args!("{name:?}"), &text)?;
                Ok(TraitDefinitionRecord {
                    name,
                    definition,
                    created_at,
                    computed_at,
                    profiles,
                    model_id,
                })
            })
            .collect()
        })
    }
}
