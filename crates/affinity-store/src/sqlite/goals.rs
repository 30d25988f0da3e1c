//! Goal-based recommendation definitions, each user's list, and the scan of the events a goal
//! learns from.

use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::{Map, Value};

use super::SqliteStore;
use super::stored_json::Document;
use super::track_scan::scan_tracked;
use super::trait_outbox::{
    PROFILES_PER_PAGE, backfill, existing_destinations, flush_page, forget_backfills, is_change,
    start_backfill,
};
use crate::{
    BackfillOf, ChangeOutbox, FinishedGoal, GoalRecord, GoalResult, GoalStore, ProfileTraits,
    StoreError, StoredGoalList, TraitMessages,
};

/// A goal's definition, as the API received it.
pub(super) const DEFINITION: Document = Document {
    table: "goal_definitions",
    column: "definition",
    key: "definition",
    version: 1,
};

/// A goal's holdout figures and the comparison of recommended and control users.
pub(super) const QUALITY: Document = Document {
    table: "goal_definitions",
    column: "quality",
    key: "quality",
    version: 1,
};

/// Rows per transaction when writing lists: bounds how long ingest waits on the lock.
const ROWS_PER_TRANSACTION: usize = 10_000;

const COLUMNS: &str = "id, key, definition, status, error, created_at, computed_at, started_at,
    model_id, users, quality";

/// The goal's trait key, or `None` when no goal has the id (deleted meanwhile).
pub(super) fn goal_key(conn: &rusqlite::Connection, id: i64) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT key FROM goal_definitions WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?)
}

fn control_key(key: &str) -> String {
    format!("{key}_is_control")
}

/// The goal's stored definition (JSON), `None` once it is deleted.
fn stored_definition(tx: &Transaction<'_>, id: i64) -> Result<Option<String>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT definition FROM goal_definitions WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Queues, for each user the run did not reach whose list had been sent (a non-empty one),
/// the goal's traits as null: as Segment Engage does for a computed trait that no longer
/// applies.
fn dropped_lists_as_null(
    tx: &Transaction<'_>,
    id: i64,
    key: &str,
    computed_at: i64,
    outbox: &mut ChangeOutbox<'_>,
) -> Result<(), StoreError> {
    let Some(definition) = stored_definition(tx, id)? else {
        return Ok(());
    };
    let definition = DEFINITION.decode(format_args!("{id}"), &definition)?;
    let destinations = existing_destinations(tx, &(outbox.destinations)(&definition))?;
    if destinations.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare(
        "SELECT profile_id, items FROM goal_results WHERE goal_id = ?1 AND computed_at <> ?2",
    )?;
    let mut rows = stmt.query(params![id, computed_at])?;
    let mut page = Vec::new();
    while let Some(row) = rows.next()? {
        let (profile_id, items): (i64, String) = (row.get(0)?, row.get(1)?);
        if stored_values(&items, id, profile_id)?.is_empty() {
            continue;
        }
        let mut traits = Map::new();
        traits.insert(key.to_string(), Value::Null);
        traits.insert(control_key(key), Value::Null);
        page.push(ProfileTraits {
            profile_id,
            version: computed_at,
            traits,
        });
        if page.len() == PROFILES_PER_PAGE {
            flush_page(tx, &destinations, &mut page, outbox.messages)?;
        }
    }
    flush_page(tx, &destinations, &mut page, outbox.messages)
}

/// The profile traits of one user's list, as destinations receive them: the values in order
/// and the control flag (a control user's list is sent too: the tool behind the destination
/// shows it, in its random order, or the experiment cannot run).
fn list_traits(key: &str, values: Vec<Value>, is_control: bool) -> Map<String, Value> {
    let mut traits = Map::new();
    traits.insert(key.to_string(), Value::Array(values));
    traits.insert(control_key(key), Value::Bool(is_control));
    traits
}

/// The values of a stored list (`[[value, score], …]`), in order.
fn stored_values(text: &str, id: i64, profile_id: i64) -> Result<Vec<Value>, StoreError> {
    let pairs: Vec<(Value, f64)> = serde_json::from_str(text)
        .map_err(|_| StoreError::Corrupt(format!("goal_results ({id}, {profile_id})")))?;
    Ok(pairs.into_iter().map(|(v, _)| v).collect())
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(GoalRecord, String, Option<String>)> {
    Ok((
        GoalRecord {
            id: r.get(0)?,
            key: r.get(1)?,
            definition: Value::Null,
            status: r.get(3)?,
            error: r.get(4)?,
            created_at: r.get(5)?,
            computed_at: r.get(6)?,
            started_at: r.get(7)?,
            model_id: r.get(8)?,
            users: r.get(9)?,
            quality: None,
        },
        r.get(2)?,
        r.get(10)?,
    ))
}

fn decoded(
    (mut goal, definition, quality): (GoalRecord, String, Option<String>),
) -> Result<GoalRecord, StoreError> {
    goal.definition = DEFINITION.decode(goal.id, &definition)?;
    goal.quality = quality.map(|q| QUALITY.decode(goal.id, &q)).transpose()?;
    Ok(goal)
}

/// Every user's current list of goal `id` (trait `key`) after profile `after`, a page, and
/// the last profile read (`None` past the end): a backfill's page.
pub(super) fn goal_lists_page(
    tx: &Transaction<'_>,
    id: i64,
    key: &str,
    after: i64,
) -> Result<(Vec<ProfileTraits>, Option<i64>), StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT profile_id, items, is_control, computed_at FROM goal_results
         WHERE goal_id = ?1 AND profile_id > ?2 ORDER BY profile_id LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![id, after, PROFILES_PER_PAGE as i64])?;
    let (mut page, mut last) = (Vec::new(), None);
    while let Some(row) = rows.next()? {
        let (profile_id, items, is_control, version): (i64, String, bool, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        last = Some(profile_id);
        let values = stored_values(&items, id, profile_id)?;
        if !values.is_empty() {
            page.push(ProfileTraits {
                profile_id,
                version,
                traits: list_traits(key, values, is_control),
            });
        }
    }
    Ok((page, last))
}

impl GoalStore for SqliteStore {
    fn create_goal(
        &self,
        key: &str,
        definition: &Value,
        created_at: i64,
    ) -> Result<Option<i64>, StoreError> {
        let conn = self.write_conn()?;
        // One statement, so two concurrent creations of one key cannot both succeed.
        let n = conn.execute(
            "INSERT INTO goal_definitions (key, definition, status, created_at)
             VALUES (?1, ?2, 'computing', ?3) ON CONFLICT (key) DO NOTHING",
            params![key, DEFINITION.encode(definition)?, created_at],
        )?;
        Ok((n == 1).then(|| conn.last_insert_rowid()))
    }

    fn goal(&self, id: i64) -> Result<Option<GoalRecord>, StoreError> {
        let row = self.read(|c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM goal_definitions WHERE id = ?1"),
                [id],
                record,
            )
            .optional()?)
        })?;
        row.map(decoded).transpose()
    }

    fn goals(&self) -> Result<Vec<GoalRecord>, StoreError> {
        let rows = self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM goal_definitions ORDER BY id"
            ))?;
            let rows = stmt.query_map([], record)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        rows.into_iter().map(decoded).collect()
    }

    fn set_goal_status(
        &self,
        id: i64,
        status: &str,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let conn = self.write_conn()?;
        let n = conn.execute(
            "UPDATE goal_definitions SET status = ?2, error = ?3 WHERE id = ?1",
            params![id, status, error],
        )?;
        Ok(n == 1)
    }

    fn put_goal_results(
        &self,
        id: i64,
        key: &str,
        results: &[GoalResult],
        computed_at: i64,
        mut outbox: Option<&mut ChangeOutbox<'_>>,
    ) -> Result<bool, StoreError> {
        let control = control_key(key);
        let mut conn = self.write_conn()?;
        for chunk in results.chunks(ROWS_PER_TRANSACTION) {
            let tx = conn.transaction()?;
            let Some(definition) = stored_definition(&tx, id)? else {
                return Ok(false);
            };
            if let Some(outbox) = outbox.as_deref_mut() {
                let definition = DEFINITION.decode(format_args!("{id}"), &definition)?;
                let destinations = existing_destinations(&tx, &(outbox.destinations)(&definition))?;
                if !destinations.is_empty() {
                    let mut page = Vec::new();
                    let mut previous = tx.prepare_cached(
                        "SELECT items, is_control FROM goal_results
                         WHERE goal_id = ?1 AND profile_id = ?2",
                    )?;
                    for r in chunk {
                        let before: Option<(String, bool)> = previous
                            .query_row(params![id, r.profile_id], |row| {
                                Ok((row.get(0)?, row.get(1)?))
                            })
                            .optional()?;
                        let values: Vec<Value> =
                            r.values.iter().map(|v| Value::from(v.as_str())).collect();
                        let changed = match before {
                            Some((items, was_control)) => {
                                was_control != r.is_control
                                    || stored_values(&items, id, r.profile_id)? != values
                            }
                            None => is_change(None, &Value::Array(values.clone()).to_string()),
                        };
                        if changed {
                            page.push(ProfileTraits {
                                profile_id: r.profile_id,
                                version: computed_at,
                                traits: list_traits(key, values, r.is_control),
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
                let mut list = tx.prepare_cached(
                    "INSERT OR REPLACE INTO goal_results
                     (goal_id, profile_id, items, is_control, computed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                let mut put_trait = tx.prepare_cached(
                    "INSERT OR REPLACE INTO computed_traits (profile_id, name, value, updated_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for r in chunk {
                    let items: Vec<Value> = r
                        .values
                        .iter()
                        .zip(&r.scores)
                        .map(|(v, s)| Value::Array(vec![Value::from(v.as_str()), Value::from(*s)]))
                        .collect();
                    list.execute(params![
                        id,
                        r.profile_id,
                        Value::Array(items).to_string(),
                        r.is_control,
                        computed_at
                    ])?;
                    let values = Value::from(r.values.clone());
                    put_trait.execute(params![
                        r.profile_id,
                        key,
                        values.to_string(),
                        computed_at
                    ])?;
                    put_trait.execute(params![
                        r.profile_id,
                        control,
                        Value::Bool(r.is_control).to_string(),
                        computed_at
                    ])?;
                }
            }
            tx.commit()?;
        }
        Ok(true)
    }

    fn set_goal_destinations(
        &self,
        id: i64,
        definition: &Value,
        added: &[i64],
        messages: &mut TraitMessages<'_>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.write_conn()?;
        let (key, started) = {
            let tx = conn.transaction()?;
            let Some(key) = goal_key(&tx, id)? else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE goal_definitions SET definition = ?2 WHERE id = ?1",
                params![id, DEFINITION.encode(definition)?],
            )?;
            let started = start_backfill(&tx, BackfillOf::Goal(id), added)?;
            tx.commit()?;
            (key, started)
        };
        // Each user's current list, a page per transaction after the definition (`backfill`).
        if let Some(started) = started {
            backfill(&mut conn, &started, messages, |tx, after| {
                goal_lists_page(tx, id, &key, after)
            })?;
        }
        Ok(true)
    }

    fn finish_goal(
        &self,
        id: i64,
        key: &str,
        run: &FinishedGoal<'_>,
        outbox: Option<&mut ChangeOutbox<'_>>,
    ) -> Result<bool, StoreError> {
        let FinishedGoal {
            computed_at,
            model_id,
            users,
            quality,
        } = *run;
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        if let Some(outbox) = outbox {
            dropped_lists_as_null(&tx, id, key, computed_at, outbox)?;
        }
        let n = tx.execute(
            "UPDATE goal_definitions SET status = 'live', error = NULL, computed_at = ?2,
                 started_at = COALESCE(started_at, ?2), model_id = ?3, users = ?4, quality = ?5
             WHERE id = ?1",
            params![
                id,
                computed_at,
                model_id,
                users as i64,
                QUALITY.encode(quality)?
            ],
        )?;
        let live = n == 1;
        // Deleted meanwhile: every list of this run goes too.
        let (results, traits) = if live {
            (
                "DELETE FROM goal_results WHERE goal_id = ?1 AND computed_at <> ?2",
                "DELETE FROM computed_traits WHERE name = ?1 AND updated_at <> ?2",
            )
        } else {
            (
                "DELETE FROM goal_results WHERE goal_id = ?1 AND ?2 = ?2",
                "DELETE FROM computed_traits WHERE name = ?1 AND ?2 = ?2",
            )
        };
        tx.execute(results, params![id, computed_at])?;
        for name in [key.to_string(), control_key(key)] {
            tx.execute(traits, params![name, computed_at])?;
        }
        tx.commit()?;
        Ok(live)
    }

    fn goal_list(&self, id: i64, profile_id: i64) -> Result<Option<StoredGoalList>, StoreError> {
        let row: Option<(String, bool, i64)> = self.read(|c| {
            Ok(c.query_row(
                "SELECT items, is_control, computed_at FROM goal_results
                 WHERE goal_id = ?1 AND profile_id = ?2",
                params![id, profile_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
        })?;
        let Some((text, is_control, computed_at)) = row else {
            return Ok(None);
        };
        let corrupt = || StoreError::Corrupt(format!("goal_results ({id}, {profile_id})"));
        let pairs: Vec<(String, f64)> = serde_json::from_str(&text).map_err(|_| corrupt())?;
        Ok(Some(StoredGoalList {
            items: pairs,
            is_control,
            computed_at,
        }))
    }

    fn delete_goal(&self, id: i64) -> Result<bool, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        let Some(key) = goal_key(&tx, id)? else {
            return Ok(false);
        };
        tx.execute("DELETE FROM goal_definitions WHERE id = ?1", [id])?;
        tx.execute("DELETE FROM goal_results WHERE goal_id = ?1", [id])?;
        tx.execute(
            "DELETE FROM computed_traits WHERE name = ?1 OR name = ?2",
            params![key, control_key(&key)],
        )?;
        forget_backfills(&tx, &BackfillOf::Goal(id))?;
        super::outbox::cancel(&tx, &crate::goal_cause(id))?;
        tx.commit()?;
        Ok(true)
    }

    fn fail_unfinished_goals(&self, reason: &str) -> Result<usize, StoreError> {
        let conn = self.write_conn()?;
        Ok(conn.execute(
            "UPDATE goal_definitions SET status = 'failed', error = ?1 WHERE status = 'computing'",
            [reason],
        )?)
    }

    fn scan_goal_events(
        &self,
        events: &[&str],
        f: &mut dyn FnMut(usize, i64, i64, &Value),
    ) -> Result<u64, StoreError> {
        self.read(|c| scan_tracked(c, events, f))
    }
}
