//! The outbox messages of computed profile traits (traits, goals' lists): which destinations
//! still exist, what counts as a change, and the messages built and queued a page at a time
//! inside the transaction that writes the values.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::outbox::enqueue;
use crate::{ProfileTraits, StoreError, TraitMessages};

/// The ids of `ids` that name a stored destination, in order: one deleted since a
/// definition named it receives nothing.
pub(super) fn existing_destinations(
    tx: &Transaction<'_>,
    ids: &[i64],
) -> Result<Vec<i64>, StoreError> {
    let mut stmt = tx.prepare_cached("SELECT 1 FROM destinations WHERE id = ?1")?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if stmt.exists([id])? {
            out.push(id);
        }
    }
    Ok(out)
}

/// Profiles whose traits are sent a page at a time: a page's messages, not a million, are
/// held in memory.
pub(super) const PROFILES_PER_PAGE: usize = 4_096;

/// Builds and queues the messages of `page` (then empties it).
pub(super) fn flush_page(
    tx: &Transaction<'_>,
    destinations: &[i64],
    page: &mut Vec<ProfileTraits>,
    messages: &mut TraitMessages<'_>,
) -> Result<(), StoreError> {
    if page.is_empty() || destinations.is_empty() {
        page.clear();
        return Ok(());
    }
    enqueue(tx, &messages(destinations, page)?)?;
    page.clear();
    Ok(())
}

/// Queues every current value (read by `page`: the values of profiles after the given one, a
/// page, and the last profile read) for the destinations `added`, a page per transaction.
///
/// Called once the definition naming `added` is committed, and safe without holding the
/// write lock throughout (a million profiles held it for a minute): from that commit on,
/// every recomputation chunk reads the definition in its own transaction and queues its
/// changed values for `added` itself; each backfill page reads the values and queues them in
/// one immediate transaction, so a page sees each value either before a recomputation's write
/// (whose own message is queued after it) or after (the same value and run, so the same
/// `messageId`: the row already queued is kept). For every profile the newest message queued
/// carries the current value, and the worker sends in queue order. A destination deleted
/// meanwhile receives nothing more.
pub(super) fn backfill(
    conn: &mut Connection,
    added: &[i64],
    messages: &mut TraitMessages<'_>,
    mut page: impl FnMut(&Transaction<'_>, i64) -> Result<(Vec<ProfileTraits>, Option<i64>), StoreError>,
) -> Result<(), StoreError> {
    let mut after = i64::MIN;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let added = existing_destinations(&tx, added)?;
        if added.is_empty() {
            return Ok(());
        }
        let (mut values, last) = page(&tx, after)?;
        flush_page(&tx, &added, &mut values, messages)?;
        tx.commit()?;
        match last {
            Some(last) => after = last,
            None => return Ok(()),
        }
    }
}

/// Whether a computed value (as stored text) changed: an empty list where there was no value
/// is no change, so a first computation sends only the profiles it found values for.
pub(super) fn is_change(before: Option<&str>, after: &str) -> bool {
    match before {
        Some(b) => b != after,
        None => after != "[]",
    }
}

#[cfg(test)]
mod tests {
    use super::is_change;

    #[test]
    fn a_change_is_a_different_value_or_a_first_non_empty_one() {
        assert!(is_change(None, r#"["a"]"#));
        assert!(!is_change(None, "[]"));
        assert!(is_change(Some(r#"["a"]"#), "[]"));
        assert!(is_change(Some(r#"["a","b"]"#), r#"["b","a"]"#));
        assert!(!is_change(Some(r#"["a"]"#), r#"["a"]"#));
    }
}
