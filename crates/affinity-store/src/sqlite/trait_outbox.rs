//! The outbox messages of computed profile traits (traits, goals' lists): which destinations
//! still exist, what counts as a change, and the messages built and queued a page at a time
//! inside the transaction that writes the values.

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::outbox::enqueue;
use crate::{BackfillOf, ProfileTraits, StoreError, TraitBackfill, TraitMessages};

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

/// Records, in `tx` (the transaction saving the definition that names `added`), that every
/// current value is to be queued for `added`; `None` when none is added.
pub(super) fn start_backfill(
    tx: &Transaction<'_>,
    of: BackfillOf,
    added: &[i64],
) -> Result<Option<TraitBackfill>, StoreError> {
    if added.is_empty() {
        return Ok(None);
    }
    let (name, goal) = match &of {
        BackfillOf::Trait(name) => (Some(name.as_str()), None),
        BackfillOf::Goal(id) => (None, Some(*id)),
    };
    let destinations = serde_json::to_string(added)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode destination ids: {e}")))?;
    tx.execute(
        "INSERT INTO trait_backfills (trait_name, goal_id, destinations, after)
         VALUES (?1, ?2, ?3, ?4)",
        params![name, goal, destinations, i64::MIN],
    )?;
    Ok(Some(TraitBackfill {
        id: tx.last_insert_rowid(),
        of,
        destinations: added.to_vec(),
        after: i64::MIN,
    }))
}

/// Forgets the backfills of a trait or goal being deleted, in `tx` (its deletion).
pub(super) fn forget_backfills(tx: &Transaction<'_>, of: &BackfillOf) -> Result<(), StoreError> {
    match of {
        BackfillOf::Trait(name) => {
            tx.execute("DELETE FROM trait_backfills WHERE trait_name = ?1", [name])?
        }
        BackfillOf::Goal(id) => {
            tx.execute("DELETE FROM trait_backfills WHERE goal_id = ?1", [id])?
        }
    };
    Ok(())
}

/// Backfills a stopped process left midway, oldest first.
pub(super) fn unfinished(conn: &Connection) -> Result<Vec<TraitBackfill>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, trait_name, goal_id, destinations, after FROM trait_backfills ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, goal, destinations, after) = row?;
        let of = match (name, goal) {
            (Some(name), None) => BackfillOf::Trait(name),
            (None, Some(goal)) => BackfillOf::Goal(goal),
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "trait backfill {id}: neither a trait nor a goal"
                )));
            }
        };
        let destinations = serde_json::from_str(&destinations)
            .map_err(|e| StoreError::Corrupt(format!("trait backfill {id}: destinations: {e}")))?;
        out.push(TraitBackfill {
            id,
            of,
            destinations,
            after,
        });
    }
    Ok(out)
}

/// Queues every current value after `backfill.after` (read by `page`: the values of profiles
/// after the given one, a page, and the last profile read) for its destinations, a page per
/// transaction that also records the page as done; the last one forgets the backfill.
///
/// Called once the definition naming the destinations is committed (with the backfill's
/// record, so a stop midway is resumed at the next start), and safe without holding the
/// write lock throughout (a million profiles held it for a minute): from that commit on,
/// every recomputation chunk reads the definition in its own transaction and queues its
/// changed values for the added destinations itself; each backfill page reads the values and
/// queues them in one immediate transaction, so a page sees each value either before a
/// recomputation's write (whose own message is queued after it) or after (the same value and
/// run, so the same `messageId`: the row already queued is kept). For every profile the
/// newest message queued carries the current value, and the worker sends in queue order. A
/// destination deleted meanwhile receives nothing more; a trait or goal deleted meanwhile
/// forgets its backfill, which stops.
pub(super) fn backfill(
    conn: &mut Connection,
    backfill: &TraitBackfill,
    messages: &mut TraitMessages<'_>,
    mut page: impl FnMut(&Transaction<'_>, i64) -> Result<(Vec<ProfileTraits>, Option<i64>), StoreError>,
) -> Result<(), StoreError> {
    let mut after = backfill.after;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !tx
            .prepare_cached("SELECT 1 FROM trait_backfills WHERE id = ?1")?
            .exists([backfill.id])?
        {
            return Ok(());
        }
        let added = existing_destinations(&tx, &backfill.destinations)?;
        let last = if added.is_empty() {
            None
        } else {
            let (mut values, last) = page(&tx, after)?;
            flush_page(&tx, &added, &mut values, messages)?;
            last
        };
        match last {
            Some(last) => tx.execute(
                "UPDATE trait_backfills SET after = ?2 WHERE id = ?1",
                params![backfill.id, last],
            )?,
            None => tx.execute("DELETE FROM trait_backfills WHERE id = ?1", [backfill.id])?,
        };
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
