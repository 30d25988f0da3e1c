//! Event discovery for pickers: counts kept by the writer, and observed values read from the
//! newest messages of an event.

use std::collections::HashMap;

use rusqlite::params;
use serde_json::Value;

use super::SqliteStore;
use crate::{EventDiscovery, EventSummary, PropertyValues, StoreError, ValuesQuery};

/// How many of an event's newest messages a values query reads at most: enough for a
/// picker, and a bounded cost however large the store grows.
const MAX_SCANNED: u64 = 100_000;

impl EventDiscovery for SqliteStore {
    fn events(&self) -> Result<Vec<EventSummary>, StoreError> {
        self.read(|c| {
            let mut props: HashMap<String, Vec<(String, u64)>> = HashMap::new();
            let mut stmt = c.prepare(
                "SELECT event, property, count FROM event_properties
                 ORDER BY count DESC, property",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            for row in rows {
                let (event, property, count): (String, String, u64) = row?;
                props.entry(event).or_default().push((property, count));
            }
            let mut stmt = c.prepare(
                "SELECT event, count, first_seen, last_seen FROM event_stats
                 ORDER BY count DESC, event",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(EventSummary {
                    name: r.get(0)?,
                    count: r.get(1)?,
                    first_seen: r.get(2)?,
                    last_seen: r.get(3)?,
                    properties: Vec::new(),
                })
            })?;
            rows.map(|row| {
                let mut summary = row?;
                summary.properties = props.remove(&summary.name).unwrap_or_default();
                Ok(summary)
            })
            .collect()
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
