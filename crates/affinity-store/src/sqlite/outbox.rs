//! The durable outbox: messages for destinations, written in the transaction of the change
//! that caused them and delivered by the engine's worker.

use rusqlite::{Transaction, params};

use crate::{OutboxChunks, OutboxMessage, StoreError};

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
            created_at, queued_at, updated_at)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?4, ?4)",
    )?;
    let mut added = 0;
    for m in messages {
        added += stmt.execute(params![
            m.destination_id,
            m.message_id,
            m.body,
            m.created_at
        ])?;
    }
    Ok(added)
}

/// Queues every chunk `chunks` yields, one at a time (so only one chunk of messages is in
/// memory); returns how many were new.
pub(super) fn enqueue_chunks(
    tx: &Transaction<'_>,
    chunks: &mut OutboxChunks<'_>,
) -> Result<usize, StoreError> {
    let mut added = 0;
    while let Some(chunk) = chunks()? {
        added += enqueue(tx, &chunk)?;
    }
    Ok(added)
}
