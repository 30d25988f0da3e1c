//! Event discovery for pickers: counts kept by the writer, and observed values read from the
//! newest messages of an event.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use super::SqliteStore;
use super::writer::{FUTURE_TIMESTAMPS_CLAMPED, PROPERTY_KEYS_NOT_LISTED, REFUSED_OVER_LIMITS};
use crate::{
    DiscoveryTotals, EventDiscovery, EventPage, EventSummary, PropertyValues, StoreError,
    ValuesQuery,
};

/// How many of an event's newest messages a values query reads at most: enough for a
/// picker, and a bounded cost however large the store grows.
const MAX_SCANNED: u64 = 100_000;

impl EventDiscovery for SqliteStore {
    fn events_page(&self, after: Option<&str>, limit: usize) -> Result<EventPage, StoreError> {
        let max_keys = self.limits().property_keys_per_event;
        self.read(|c| {
            // Name order, not count order: counts change between two page requests, and a
            // cursor over a moving order would skip or repeat events.
            let mut stmt = c.prepare_cached(
                "SELECT event, count, first_seen, last_seen FROM event_stats
                 WHERE ?1 IS NULL OR event > ?1 ORDER BY event LIMIT ?2",
            )?;
            // One more than asked says whether another page follows.
            let rows = stmt.query_map(params![after, limit as u64 + 1], summary_row)?;
            let mut events = rows.collect::<Result<Vec<_>, _>>()?;
            let more = events.len() > limit;
            events.truncate(limit);
            for e in &mut events {
                with_properties(c, e, max_keys)?;
            }
            let next_after = if more {
                events.last().map(|e| e.name.clone())
            } else {
                None
            };
            Ok(EventPage { events, next_after })
        })
    }

    fn event(&self, name: &str) -> Result<Option<EventSummary>, StoreError> {
        let max_keys = self.limits().property_keys_per_event;
        self.read(|c| {
            let found = c
                .prepare_cached(
                    "SELECT event, count, first_seen, last_seen FROM event_stats WHERE event = ?1",
                )?
                .query_row([name], summary_row)
                .optional()?;
            let Some(mut e) = found else { return Ok(None) };
            with_properties(c, &mut e, max_keys)?;
            Ok(Some(e))
        })
    }

    fn events_known(&self, names: &[&str]) -> Result<Vec<bool>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT 1 FROM event_stats WHERE event = ?1")?;
            names.iter().map(|n| Ok(stmt.exists([n])?)).collect()
        })
    }

    fn discovery_totals(&self) -> Result<DiscoveryTotals, StoreError> {
        let limits = self.limits();
        self.read(|c| {
            // event_stats is bounded by the name limit, so this is a scan of at most that
            // many short rows.
            let (event_names, track_messages): (u64, u64) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM event_stats",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let counter = |key: &str| -> Result<u64, StoreError> {
                Ok(
                    c.prepare_cached("SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1")?
                        .query_row([key], |r| r.get(0))
                        .optional()?
                        .unwrap_or(0),
                )
            };
            Ok(DiscoveryTotals {
                event_names,
                track_messages,
                refused_over_limits: counter(REFUSED_OVER_LIMITS)?,
                property_keys_not_listed: counter(PROPERTY_KEYS_NOT_LISTED)?,
                future_timestamps_clamped: counter(FUTURE_TIMESTAMPS_CLAMPED)?,
                limits,
            })
        })
    }

    fn property_values(&self, q: &ValuesQuery<'_>) -> Result<PropertyValues, StoreError> {
        let path = PropertyPath::parse(q.property);
        let prefix = q.prefix.map(str::to_lowercase);
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT raw FROM events WHERE event = ?1 AND type = 'track'
                 ORDER BY seq DESC LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![q.event, MAX_SCANNED + 1])?;
            let mut counts: HashMap<String, (Value, u64)> = HashMap::new();
            let mut scanned = 0u64;
            let mut sampled = false;
            while let Some(row) = rows.next()? {
                if scanned == MAX_SCANNED {
                    sampled = true;
                    break;
                }
                scanned += 1;
                let raw: String = row.get(0)?;
                let Ok(msg) = serde_json::from_str::<Value>(&raw) else {
                    continue;
                };
                // Count each value once per message, however often it repeats inside it.
                let mut here: Vec<&Value> = Vec::new();
                path.for_each_value(&msg["properties"], &mut |v| {
                    if !here.contains(&v) {
                        here.push(v);
                    }
                });
                for v in here {
                    counts
                        .entry(v.to_string())
                        .or_insert_with(|| (v.clone(), 0))
                        .1 += 1;
                }
            }
            let mut values: Vec<(Value, u64)> = counts
                .into_values()
                .filter(|(v, _)| match &prefix {
                    None => true,
                    Some(p) => value_text(v).to_lowercase().starts_with(p.as_str()),
                })
                .collect();
            values.sort_by(|a, b| {
                b.1.cmp(&a.1)
                    .then_with(|| value_text(&a.0).cmp(&value_text(&b.0)))
            });
            values.truncate(q.limit);
            Ok(PropertyValues {
                values,
                scanned,
                sampled,
            })
        })
    }
}

fn summary_row(r: &Row<'_>) -> rusqlite::Result<EventSummary> {
    Ok(EventSummary {
        name: r.get(0)?,
        count: r.get(1)?,
        first_seen: r.get(2)?,
        last_seen: r.get(3)?,
        properties: Vec::new(),
        properties_at_limit: false,
    })
}

/// Fills in an event's property keys, most frequent first: at most `max_keys` rows, which the
/// writer never exceeds.
fn with_properties(c: &Connection, e: &mut EventSummary, max_keys: u64) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT property, count FROM event_properties WHERE event = ?1
         ORDER BY count DESC, property LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![e.name, max_keys], |r| Ok((r.get(0)?, r.get(1)?)))?;
    e.properties = rows.collect::<Result<Vec<_>, _>>()?;
    e.properties_at_limit = e.properties.len() as u64 >= max_keys;
    Ok(())
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where a property lives in `properties`: a top-level key or a key of `products[]` items.
enum PropertyPath<'a> {
    Top(&'a str),
    InProducts(&'a str),
}

impl<'a> PropertyPath<'a> {
    fn parse(s: &'a str) -> Self {
        match s.strip_prefix("products[].") {
            Some(inner) => Self::InProducts(inner),
            None => Self::Top(s),
        }
    }

    /// Calls `f` with each scalar value found; list values (genres) give each element.
    fn for_each_value<'v>(&self, properties: &'v Value, f: &mut impl FnMut(&'v Value)) {
        match self {
            Self::Top(key) => scalars(&properties[*key], f),
            Self::InProducts(key) => {
                if let Some(products) = properties["products"].as_array() {
                    for p in products {
                        scalars(&p[*key], f);
                    }
                }
            }
        }
    }
}

fn scalars<'v>(v: &'v Value, f: &mut impl FnMut(&'v Value)) {
    match v {
        Value::Null | Value::Object(_) => {}
        Value::Array(items) => items
            .iter()
            .filter(|i| !matches!(i, Value::Array(_) | Value::Object(_) | Value::Null))
            .for_each(f),
        scalar => f(scalar),
    }
}
