//! The durable outbox: messages for destinations, written in the transaction of the change
//! that caused them and delivered by the engine's worker.

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::{OutboxMessage, StoreError};

/// Queues `messages` as pending, due at once. A message already queued (same destination
/// and `message_id`) is left as it is: its body is the same by construction, and its
/// delivery state must not be reset. Returns how many were new.
pub(super) fn enqueue(
    tx: &Transaction<'_>,
    messages: &[OutboxMessage],
) -> Result<usize, StoreError> {
    if messages.is_empty() {
        return Ok(0);
    }
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO outbox (destination_id, message_id, body, status, next_attempt_at,
            created_at, queued_at, updated_at, cause)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?4, ?4, ?5)",
    )?;
    let mut added = 0;
    for m in messages {
        added += stmt.execute(params![
            m.destination_id,
            m.message_id,
            m.body,
            m.created_at,
            m.cause
        ])?;
    }
    Ok(added)
}

/// Held rows deleted per transaction when a hold is dropped: a failed snapshot's two million
/// messages go in short transactions too.
const DROP_CHUNK: i64 = 10_000;

/// Creates a hold: rows queued under it stay unseen by the worker (and out of the delivery
/// log) until [`release`] deletes it in the transaction of their cause.
pub(super) fn create_hold(conn: &Connection, cause: &str, now: i64) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO outbox_holds (cause, created_at) VALUES (?1, ?2)",
        params![cause, now],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Whether hold `hold` still holds (not released, not dropped).
pub(super) fn holds(conn: &Connection, hold: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM outbox_holds WHERE id = ?1")?
        .exists([hold])?)
}

/// Queues `messages` under `hold` in a transaction of their own, to destinations that still
/// exist; `None` (nothing queued) when the hold is gone. A message already queued is left as
/// it is, as in [`enqueue`]: its `message_id` names this change alone, so an existing row is
/// this hold's own.
pub(super) fn enqueue_held(
    conn: &mut Connection,
    hold: i64,
    messages: &[OutboxMessage],
) -> Result<Option<usize>, StoreError> {
    // Immediate: a deferred transaction that reads the hold and then writes fails at once
    // (SQLITE_BUSY, no busy wait) when another writer (ingest) committed in between.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !holds(&tx, hold)? {
        return Ok(None);
    }
    let mut ids: Vec<i64> = messages.iter().map(|m| m.destination_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let existing = super::trait_outbox::existing_destinations(&tx, &ids)?;
    let mut added = 0;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO outbox (destination_id, message_id, body, status,
                next_attempt_at, created_at, queued_at, updated_at, hold_id, cause)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?4, ?4, ?5, ?6)",
        )?;
        for m in messages {
            if existing.binary_search(&m.destination_id).is_ok() {
                added += stmt.execute(params![
                    m.destination_id,
                    m.message_id,
                    m.body,
                    m.created_at,
                    hold,
                    m.cause
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(Some(added))
}

/// Releases `hold` in `tx` (the transaction of its cause): its rows become due, whatever
/// their number, by deleting one row. False when the hold was gone.
pub(super) fn release(tx: &Transaction<'_>, hold: i64) -> Result<bool, StoreError> {
    Ok(tx.execute("DELETE FROM outbox_holds WHERE id = ?1", [hold])? > 0)
}

/// Deletes the rows held by `hold`, [`DROP_CHUNK`] per transaction while the hold keeps them
/// unseen, then the hold itself. Nothing when it was released (its rows are live).
pub(super) fn drop_hold(conn: &mut Connection, hold: i64) -> Result<usize, StoreError> {
    let destinations: Vec<i64> = {
        let mut stmt = conn.prepare_cached("SELECT id FROM destinations")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut dropped = 0;
    for destination in destinations {
        loop {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !holds(&tx, hold)? {
                return Ok(dropped);
            }
            // Through `outbox_due`: (destination, status, hold) are its first columns.
            let n = tx.execute(
                "DELETE FROM outbox WHERE id IN (
                     SELECT id FROM outbox
                     WHERE destination_id = ?1 AND status IN ('pending', 'cancelled')
                       AND hold_id = ?2
                     LIMIT ?3)",
                params![destination, hold, DROP_CHUNK],
            )?;
            tx.commit()?;
            dropped += n;
            if n < DROP_CHUNK as usize {
                break;
            }
        }
    }
    conn.execute("DELETE FROM outbox_holds WHERE id = ?1", [hold])?;
    Ok(dropped)
}

/// Drops every hold with its rows: at start, a hold still there belongs to a change the
/// stopped process never recorded.
pub(super) fn drop_all_holds(conn: &mut Connection) -> Result<usize, StoreError> {
    let holds: Vec<i64> = {
        let mut stmt = conn.prepare("SELECT id FROM outbox_holds")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut dropped = 0;
    for hold in holds {
        dropped += drop_hold(conn, hold)?;
    }
    Ok(dropped)
}

/// The holds whose pending rows for `destination_id` the worker may see: 0 (rows queued in
/// their cause's transaction) and every released hold that still has pending rows. Found by
/// skipping from one `hold_id` to the next in `outbox_due` (a seek per hold, however many rows
/// a hold has), so a held snapshot's two million rows are never walked.
pub(super) fn visible_holds(
    conn: &Connection,
    destination_id: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut next = conn.prepare_cached(
        "SELECT MIN(hold_id) FROM outbox
         WHERE destination_id = ?1 AND status = 'pending' AND hold_id > ?2",
    )?;
    let mut out = Vec::new();
    let mut after = -1;
    while let Some(hold) = next.query_row(params![destination_id, after], |r| {
        r.get::<_, Option<i64>>(0)
    })? {
        if hold == 0 || !holds(conn, hold)? {
            out.push(hold);
        }
        after = hold;
    }
    Ok(out)
}

/// Marks the messages about `cause` not sent yet (held ones included) `cancelled`, in `tx`
/// (the deletion of the audience, trait or goal): the log keeps their record, the worker
/// skips them. Through `outbox_due`, one destination's pending rows at a time.
pub(super) fn cancel(tx: &Transaction<'_>, cause: &str) -> Result<usize, StoreError> {
    let destinations: Vec<i64> = {
        let mut stmt = tx.prepare_cached("SELECT id FROM destinations")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut stmt = tx.prepare_cached(
        // `updated_at`: now, in Unix ms (the deletions take no time from the engine).
        "UPDATE outbox SET status = 'cancelled',
            updated_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
         WHERE destination_id = ?1 AND status = 'pending' AND cause = ?2",
    )?;
    let mut n = 0;
    for destination in destinations {
        n += stmt.execute(params![destination, cause])?;
    }
    Ok(n)
}
