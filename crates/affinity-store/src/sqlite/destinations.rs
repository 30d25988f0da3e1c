//! Destinations and the delivery state of their outbox.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

use super::SqliteStore;
use super::audiences::SPEC;
use super::stored_json::Document;
use crate::{
    DeliveryCounts, DeliveryOutcome, DeliveryRecord, DestinationRecord, DestinationStore,
    OutboxMessage, OutboxRow, Recipient, SpecSaved, StoreError,
};

/// A destination's configuration (its type's settings, secrets included).
const CONFIG: Document = Document {
    table: "destinations",
    column: "config",
    key: "config",
    version: 1,
};

fn destination(r: &Row<'_>) -> Result<DestinationRecord, StoreError> {
    let id: i64 = r.get(0)?;
    Ok(DestinationRecord {
        id,
        name: r.get(1)?,
        kind: r.get(2)?,
        config: CONFIG.decode(id, &r.get::<_, String>(3)?)?,
        created_at: r.get(4)?,
    })
}

fn delivery(r: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: r.get(0)?,
        message_id: r.get(1)?,
        status: r.get(2)?,
        attempts: r.get(3)?,
        last_status: r.get(4)?,
        last_error: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

impl DestinationStore for SqliteStore {
    fn create_destination(
        &self,
        name: &str,
        kind: &str,
        config: &Value,
        created_at: i64,
    ) -> Result<i64, StoreError> {
        let conn = self.write_conn()?;
        conn.execute(
            "INSERT INTO destinations (name, kind, config, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, kind, CONFIG.encode(config)?, created_at],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn destination(&self, id: i64) -> Result<Option<DestinationRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, kind, config, created_at FROM destinations WHERE id = ?1",
            )?;
            let mut rows = stmt.query([id])?;
            match rows.next()? {
                Some(r) => Ok(Some(destination(r)?)),
                None => Ok(None),
            }
        })
    }

    fn destinations(&self) -> Result<Vec<DestinationRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, kind, config, created_at FROM destinations ORDER BY id",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(destination(r)?);
            }
            Ok(out)
        })
    }

    fn delete_destination(&self, id: i64) -> Result<bool, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM outbox WHERE destination_id = ?1", [id])?;
        let n = tx.execute("DELETE FROM destinations WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn enqueue_messages(&self, messages: &[OutboxMessage]) -> Result<usize, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        let added = super::outbox::enqueue(&tx, messages)?;
        tx.commit()?;
        Ok(added)
    }

    fn set_audience_spec(
        &self,
        id: i64,
        spec: &Value,
        live: Option<i64>,
        hold: Option<i64>,
    ) -> Result<SpecSaved, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        // `IS`: an audience with no live snapshot yet matches `None`.
        let n = tx.execute(
            "UPDATE audiences SET spec = ?2 WHERE id = ?1 AND live_snapshot IS ?3",
            params![id, SPEC.encode(spec)?, live],
        )?;
        if n == 0 {
            let exists = tx
                .prepare_cached("SELECT 1 FROM audiences WHERE id = ?1")?
                .exists([id])?;
            return Ok(if exists {
                SpecSaved::Stale
            } else {
                SpecSaved::NoAudience
            });
        }
        // Its messages, queued beforehand, become due with it: one row deleted.
        if let Some(hold) = hold
            && !super::outbox::release(&tx, hold)?
        {
            return Ok(SpecSaved::Stale);
        }
        tx.commit()?;
        Ok(SpecSaved::Saved)
    }

    fn due_messages(
        &self,
        destination_id: i64,
        now: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|conn| {
            // Each visible hold's due rows in order through `outbox_due`, merged: rows still
            // held are never read, however many there are.
            let mut stmt = conn.prepare_cached(
                "SELECT id, message_id, body, attempts, queued_at, next_attempt_at FROM outbox
                 WHERE destination_id = ?1 AND status = 'pending' AND hold_id = ?2
                   AND next_attempt_at <= ?3
                 ORDER BY next_attempt_at, id LIMIT ?4",
            )?;
            let mut due = Vec::new();
            for hold in super::outbox::visible_holds(conn, destination_id)? {
                let rows =
                    stmt.query_map(params![destination_id, hold, now, limit as i64], |r| {
                        Ok((
                            (r.get::<_, i64>(5)?, r.get::<_, i64>(0)?),
                            OutboxRow {
                                id: r.get(0)?,
                                message_id: r.get(1)?,
                                body: r.get(2)?,
                                attempts: r.get(3)?,
                                queued_at: r.get(4)?,
                            },
                        ))
                    })?;
                for row in rows {
                    due.push(row?);
                }
            }
            due.sort_unstable_by_key(|(order, _)| *order);
            due.truncate(limit);
            Ok(due.into_iter().map(|(_, row)| row).collect())
        })
    }

    fn next_due(&self, destination_id: i64) -> Result<Option<i64>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT MIN(next_attempt_at) FROM outbox
                 WHERE destination_id = ?1 AND status = 'pending' AND hold_id = ?2",
            )?;
            let mut next: Option<i64> = None;
            for hold in super::outbox::visible_holds(conn, destination_id)? {
                let due = stmt.query_row(params![destination_id, hold], |r| {
                    r.get::<_, Option<i64>>(0)
                })?;
                next = match (next, due) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Ok(next)
        })
    }

    fn create_outbox_hold(&self, cause: &str, now: i64) -> Result<i64, StoreError> {
        super::outbox::create_hold(&self.write_conn()?, cause, now)
    }

    fn enqueue_held(
        &self,
        hold: i64,
        messages: &[OutboxMessage],
    ) -> Result<Option<usize>, StoreError> {
        if messages.is_empty() {
            return Ok(Some(0));
        }
        super::outbox::enqueue_held(&mut self.write_conn()?, hold, messages)
    }

    fn drop_outbox_hold(&self, hold: i64) -> Result<usize, StoreError> {
        super::outbox::drop_hold(&mut self.write_conn()?, hold)
    }

    fn record_deliveries(&self, outcomes: &[DeliveryOutcome], now: i64) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        {
            // Only pending rows change: a destination deleted (or retried) meanwhile wins.
            let mut stmt = tx.prepare_cached(
                "UPDATE outbox SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3,
                    last_status = ?4, last_error = ?5, updated_at = ?6
                 WHERE id = ?1 AND status = 'pending'",
            )?;
            for o in outcomes {
                match o {
                    DeliveryOutcome::Delivered { id, status } => {
                        stmt.execute(params![id, "delivered", now, status, None::<String>, now])?
                    }
                    DeliveryOutcome::Retry {
                        id,
                        next_attempt_at,
                        status,
                        error,
                    } => {
                        stmt.execute(params![id, "pending", next_attempt_at, status, error, now])?
                    }
                    DeliveryOutcome::Failed { id, status, error } => {
                        stmt.execute(params![id, "failed", now, status, error, now])?
                    }
                };
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn delivery_counts(&self, destination_id: i64) -> Result<DeliveryCounts, StoreError> {
        self.read(|conn| {
            // Grouped by hold too (in `outbox_due`'s order): a held row is counted as held,
            // whatever its status says.
            let mut stmt = conn.prepare_cached(
                "SELECT status, hold_id, COUNT(*) FROM outbox WHERE destination_id = ?1
                 GROUP BY status, hold_id",
            )?;
            let mut counts = DeliveryCounts::default();
            let rows = stmt.query_map([destination_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (status, hold, n) = row?;
                if hold != 0 && super::outbox::holds(conn, hold)? {
                    counts.held += n;
                    continue;
                }
                match status.as_str() {
                    "pending" => counts.pending += n,
                    "delivered" => counts.delivered += n,
                    "failed" => counts.failed += n,
                    "cancelled" => counts.cancelled += n,
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "outbox of destination {destination_id}: status {other:?}"
                        )));
                    }
                }
            }
            Ok(counts)
        })
    }

    fn deliveries(
        &self,
        destination_id: i64,
        status: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, message_id, status, attempts, last_status, last_error, updated_at
                 FROM outbox WHERE destination_id = ?1 AND id > ?2 AND (?3 IS NULL OR status = ?3)
                   AND (hold_id = 0 OR hold_id NOT IN (SELECT id FROM outbox_holds))
                 ORDER BY id LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![destination_id, after, status, limit as i64],
                delivery,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn retry_failed(&self, destination_id: i64, now: i64) -> Result<usize, StoreError> {
        let conn = self.write_conn()?;
        Ok(conn.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ?2, queued_at = ?2,
                updated_at = ?2
             WHERE destination_id = ?1 AND status = 'failed'",
            params![destination_id, now],
        )?)
    }

    fn recipients(&self, profiles: &[i64]) -> Result<HashMap<i64, Recipient>, StoreError> {
        self.read(|conn| {
            let mut user = conn.prepare_cached("SELECT user_id FROM profiles WHERE id = ?1")?;
            // Through `events_profile`: each lookup walks one profile's events newest first.
            let mut anonymous = conn.prepare_cached(
                "SELECT anonymous_id FROM events
                 WHERE profile_id = ?1 AND anonymous_id IS NOT NULL
                 ORDER BY seq DESC LIMIT 1",
            )?;
            let mut out = HashMap::with_capacity(profiles.len());
            for &p in profiles {
                let Some(user_id) = user
                    .query_row([p], |r| r.get::<_, Option<String>>(0))
                    .optional()?
                else {
                    continue;
                };
                let anonymous_id = anonymous
                    .query_row([p], |r| r.get::<_, String>(0))
                    .optional()?;
                out.insert(
                    p,
                    Recipient {
                        user_id,
                        anonymous_id,
                    },
                );
            }
            Ok(out)
        })
    }
}
