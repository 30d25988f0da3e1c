//! The one scan of stored track events by name, shared by the catalog build and goal-based
//! recommendations: each event's profile (after merges), time and `properties`.

use std::collections::HashMap;

use rusqlite::Connection;
use serde_json::Value;

use crate::StoreError;

/// The part of a stored track message the scans read.
#[derive(serde::Deserialize)]
struct Tracked {
    #[serde(default)]
    properties: Value,
}

/// Feeds every stored track event named one of `events` to `f(index of its name, profile,
/// time, properties)`, event by event in storage order; returns how many. A message whose
/// text does not parse is skipped.
pub(super) fn scan_tracked(
    c: &Connection,
    events: &[&str],
    f: &mut dyn FnMut(usize, i64, i64, &Value),
) -> Result<u64, StoreError> {
    // Profiles merged since their events were stored count for the survivor.
    let mut merged: HashMap<i64, i64> = HashMap::new();
    let mut stmt =
        c.prepare("SELECT id, merged_into FROM profiles WHERE merged_into IS NOT NULL")?;
    for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (from, into) = row?;
        merged.insert(from, into);
    }
    let mut scanned = 0u64;
    let mut stmt = c.prepare(
        "SELECT profile_id, timestamp, raw FROM events
         WHERE event = ?1 AND type = 'track' ORDER BY seq",
    )?;
    for (index, event) in events.iter().enumerate() {
        let mut rows = stmt.query([event])?;
        while let Some(row) = rows.next()? {
            let profile: i64 = row.get(0)?;
            let timestamp: i64 = row.get(1)?;
            let raw = row.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
            // Only `properties` is built as a value; the rest of the message (context,
            // traits…) is skipped by the parser instead of being allocated.
            let Ok(message) = serde_json::from_str::<Tracked>(raw) else {
                continue;
            };
            let profile = merged.get(&profile).copied().unwrap_or(profile);
            f(index, profile, timestamp, &message.properties);
            scanned += 1;
        }
    }
    Ok(scanned)
}
