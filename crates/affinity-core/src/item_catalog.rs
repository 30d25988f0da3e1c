//! The catalog built from events: items (id + latest non-null value of each column), users,
//! and interactions. Pure: the store feeds events in, training reads the result.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::as_of::AsOf;
use crate::catalog::{CatalogConfig, ITEM_ID, value_matches};

const DAY_MS: f64 = 86_400_000.0;

/// One interaction: a user engaged with an item through one of the configured events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interaction {
    pub user: u32,
    pub item: u32,
    pub event: u8,
    pub timestamp: i64,
}

#[derive(Debug, Clone)]
pub struct ItemCatalog {
    pub config: CatalogConfig,
    /// Column names: the configured ones, then columns that only uploads provide.
    pub column_names: Vec<String>,
    pub items: Vec<String>,
    /// Per item, per column: the value (a scalar or a list), if any.
    pub values: Vec<Vec<Option<Value>>>,
    /// Canonical profile ids, indexed by the `user` of interactions.
    pub users: Vec<i64>,
    pub interactions: Vec<Interaction>,
    /// The "now" of training, evaluation, lookback windows and audience horizons (Unix ms):
    /// chosen by [`AsOf::choose`], so a handful of late events do not move it.
    pub as_of: i64,
    /// How `as_of` was chosen, with the data's own end (its newest interaction).
    pub time: AsOf,
    /// What each mapping of the configuration found, to name one that found nothing.
    pub yields: MappingYield,
    item_index: HashMap<String, u32>,
    user_index: HashMap<i64, u32>,
    /// Built on first use: scoring per column value must not re-hash value text per item.
    column_indexes: OnceLock<Vec<ColumnIndex>>,
    /// Built on first use, like `column_indexes`.
    item_ranks: OnceLock<Vec<u32>>,
}

/// One column's distinct values, interned: `of_item[i]` holds the indices (into `values`) of
/// item `i`'s value, one per element for lists.
#[derive(Debug, Clone, Default)]
pub struct ColumnIndex {
    pub values: Vec<Value>,
    /// The text of each value (strings as themselves, others as JSON), for ordering ties.
    pub texts: Vec<String>,
    /// Each value's position in ascending order of `texts`: the tie-break between equal
    /// scores as one integer comparison.
    pub ranks: Vec<u32>,
    pub of_item: Vec<Vec<u32>>,
}

/// What the configuration's mappings found in the events read by a build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingYield {
    /// Per configured event: messages read.
    pub messages: Vec<u64>,
    /// Per configured event: messages in which the product id property held at least one id.
    pub with_items: Vec<u64>,
    /// Per column, per configured event: items read from that event with a value for it.
    pub column_values: Vec<Vec<u64>>,
}

/// Accumulates events into an [`ItemCatalog`].
pub struct CatalogBuilder {
    catalog: ItemCatalog,
    /// Event time of each stored value, so the latest non-null value wins whatever the order.
    value_times: Vec<Vec<i64>>,
}

impl CatalogBuilder {
    pub fn new(config: CatalogConfig) -> Self {
        let column_names = config.columns.iter().map(|c| c.name.clone()).collect();
        let yields = MappingYield {
            messages: vec![0; config.events.len()],
            with_items: vec![0; config.events.len()],
            column_values: vec![vec![0; config.events.len()]; config.columns.len()],
        };
        Self {
            catalog: ItemCatalog {
                config,
                column_names,
                items: Vec::new(),
                values: Vec::new(),
                users: Vec::new(),
                interactions: Vec::new(),
                as_of: 0,
                time: AsOf::choose(&[]),
                yields,
                item_index: HashMap::new(),
                user_index: HashMap::new(),
                column_indexes: OnceLock::new(),
                item_ranks: OnceLock::new(),
            },
            value_times: Vec::new(),
        }
    }

    fn item(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.catalog.item_index.get(id) {
            return i;
        }
        let i = self.catalog.items.len() as u32;
        let width = self.catalog.column_names.len();
        self.catalog.items.push(id.to_string());
        self.catalog.values.push(vec![None; width]);
        self.value_times.push(vec![i64::MIN; width]);
        self.catalog.item_index.insert(id.to_string(), i);
        i
    }

    /// Adds one stored event of the configured interaction event `event_index`.
    pub fn add_event(
        &mut self,
        profile: i64,
        event_index: usize,
        timestamp: i64,
        properties: &Value,
    ) {
        let extracted = self.catalog.config.extract(event_index, properties);
        let yields = &mut self.catalog.yields;
        if let Some(n) = yields.messages.get_mut(event_index) {
            *n += 1;
        }
        if extracted.is_empty() {
            return;
        }
        if let Some(n) = yields.with_items.get_mut(event_index) {
            *n += 1;
        }
        for e in &extracted {
            for (c, value) in e.columns.iter().enumerate() {
                if value.is_some()
                    && let Some(n) = yields
                        .column_values
                        .get_mut(c)
                        .and_then(|v| v.get_mut(event_index))
                {
                    *n += 1;
                }
            }
        }
        let next_user = self.catalog.users.len() as u32;
        let user = *self.catalog.user_index.entry(profile).or_insert(next_user);
        if user == next_user {
            self.catalog.users.push(profile);
        }
        for e in extracted {
            let item = self.item(&e.id);
            for (c, value) in e.columns.into_iter().enumerate() {
                if let Some(v) = value
                    && timestamp >= self.value_times[item as usize][c]
                {
                    self.catalog.values[item as usize][c] = Some(v);
                    self.value_times[item as usize][c] = timestamp;
                }
            }
            self.catalog.interactions.push(Interaction {
                user,
                item,
                event: event_index as u8,
                timestamp,
            });
        }
    }

    /// Applies an uploaded catalog row: its columns override what events said, and columns
    /// the config does not name are added. Items only in uploads have no interactions.
    pub fn add_upload(&mut self, item_id: &str, columns: &Map<String, Value>) {
        let item = self.item(item_id) as usize;
        for (name, value) in columns {
            if name == ITEM_ID {
                continue;
            }
            let c = match self.catalog.column_names.iter().position(|n| n == name) {
                Some(c) => c,
                None => {
                    self.catalog.column_names.push(name.clone());
                    self.catalog.values.iter_mut().for_each(|v| v.push(None));
                    self.value_times.iter_mut().for_each(|t| t.push(i64::MIN));
                    self.catalog.column_names.len() - 1
                }
            };
            self.catalog.values[item][c] = (!value.is_null()).then(|| value.clone());
            self.value_times[item][c] = i64::MAX;
        }
    }

    pub fn finish(mut self) -> ItemCatalog {
        // A stable order of interactions makes everything downstream deterministic.
        self.catalog
            .interactions
            .sort_unstable_by_key(|i| (i.timestamp, i.user, i.item, i.event));
        let times: Vec<i64> = self
            .catalog
            .interactions
            .iter()
            .map(|i| i.timestamp)
            .collect();
        self.catalog.time = AsOf::choose(&times);
        self.catalog.as_of = self.catalog.time.as_of;
        self.catalog
    }
}

/// Per-value counts for pickers.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueCount {
    pub value: Value,
    pub items: u64,
    pub users: u64,
}

impl ItemCatalog {
    pub fn item_index(&self, id: &str) -> Option<u32> {
        self.item_index.get(id).copied()
    }

    pub fn user_index(&self, profile: i64) -> Option<u32> {
        self.user_index.get(&profile).copied()
    }

    /// Each item's position in ascending order of its id: equal scores are ordered by it, so
    /// answers do not depend on the order in which items were first seen.
    pub fn item_ranks(&self) -> &[u32] {
        self.item_ranks.get_or_init(|| ranks_of(&self.items))
    }

    /// The interned values of `column` (built for every column on first use, then cached).
    pub fn column_index(&self, column: usize) -> &ColumnIndex {
        static EMPTY: OnceLock<ColumnIndex> = OnceLock::new();
        let all = self.column_indexes.get_or_init(|| {
            (0..self.column_names.len())
                .map(|c| self.build_column_index(c))
                .collect()
        });
        all.get(column)
            .unwrap_or_else(|| EMPTY.get_or_init(ColumnIndex::default))
    }

    fn build_column_index(&self, column: usize) -> ColumnIndex {
        let mut index = ColumnIndex {
            of_item: vec![Vec::new(); self.items.len()],
            ..ColumnIndex::default()
        };
        let mut ids: HashMap<String, u32> = HashMap::new();
        for (item, row) in self.values.iter().enumerate() {
            let elements: Vec<&Value> = match &row[column] {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.iter().filter(|v| !v.is_null()).collect(),
                Some(v) => vec![v],
            };
            for v in elements {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let id = *ids.entry(text.clone()).or_insert_with(|| {
                    index.values.push(v.clone());
                    index.texts.push(text);
                    (index.values.len() - 1) as u32
                });
                if !index.of_item[item].contains(&id) {
                    index.of_item[item].push(id);
                }
            }
        }
        index.ranks = ranks_of(&index.texts);
        index
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.column_names.iter().position(|n| n == name)
    }

    /// Items whose `column` matches `value` (any element of a list).
    pub fn items_matching(&self, column: usize, value: &str) -> Vec<u32> {
        (0..self.items.len() as u32)
            .filter(|&i| {
                self.values[i as usize][column]
                    .as_ref()
                    .is_some_and(|v| value_matches(v, value))
            })
            .collect()
    }

    /// The distinct values of a column with how many items have each and how many users
    /// interacted with those items; optional case-insensitive prefix; most users first.
    pub fn column_values(
        &self,
        column: usize,
        prefix: Option<&str>,
        limit: usize,
    ) -> Vec<ValueCount> {
        let prefix = prefix.map(str::to_lowercase);
        let mut by_value: HashMap<String, (Value, u64, HashSet<u32>)> = HashMap::new();
        let mut item_values: Vec<Vec<String>> = vec![Vec::new(); self.items.len()];
        for (i, row) in self.values.iter().enumerate() {
            let Some(v) = &row[column] else { continue };
            let elements: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for e in elements {
                let text = match e {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if prefix
                    .as_ref()
                    .is_some_and(|p| !text.to_lowercase().starts_with(p.as_str()))
                {
                    continue;
                }
                let entry = by_value
                    .entry(text.clone())
                    .or_insert_with(|| (e.clone(), 0, HashSet::new()));
                entry.1 += 1;
                item_values[i].push(text);
            }
        }
        for x in &self.interactions {
            for text in &item_values[x.item as usize] {
                if let Some(entry) = by_value.get_mut(text) {
                    entry.2.insert(x.user);
                }
            }
        }
        let mut out: Vec<ValueCount> = by_value
            .into_values()
            .map(|(value, items, users)| ValueCount {
                value,
                items,
                users: users.len() as u64,
            })
            .collect();
        out.sort_by(|a, b| {
            b.users
                .cmp(&a.users)
                .then(b.items.cmp(&a.items))
                .then_with(|| a.value.to_string().cmp(&b.value.to_string()))
        });
        out.truncate(limit);
        out
    }

    /// Interaction weights per (user, item) as of `as_of`: event weight, times a half-life
    /// decay by age when configured, summed; interactions after `as_of` or beyond the lookback
    /// window are left out. Sorted by (user, item).
    pub fn weighted(&self, as_of: i64) -> Vec<(u32, u32, f32)> {
        self.weighted_where(as_of, |_| true)
    }

    /// As [`ItemCatalog::weighted`], over the interactions whose index in `interactions`
    /// passes `keep` (a holdout's training side).
    pub fn weighted_where(&self, as_of: i64, keep: impl Fn(usize) -> bool) -> Vec<(u32, u32, f32)> {
        let lookback = self.config.lookback_days.map(|d| f64::from(d) * DAY_MS);
        let half_life = self.config.half_life_days.map(|d| d * DAY_MS);
        let mut sums: HashMap<(u32, u32), f64> = HashMap::new();
        for (index, x) in self.interactions.iter().enumerate() {
            if x.timestamp > as_of || !keep(index) {
                continue;
            }
            let age = (as_of - x.timestamp) as f64;
            if lookback.is_some_and(|l| age > l) {
                continue;
            }
            let mut w = self.config.events[x.event as usize].weight;
            if let Some(h) = half_life {
                w *= 0.5f64.powf(age / h);
            }
            *sums.entry((x.user, x.item)).or_default() += w;
        }
        let mut out: Vec<(u32, u32, f32)> = sums
            .into_iter()
            .map(|((u, i), w)| (u, i, w as f32))
            .collect();
        out.sort_unstable_by_key(|&(u, i, _)| (u, i));
        out
    }
}

/// `ranks[i]` = position of `texts[i]` in ascending order.
fn ranks_of(texts: &[String]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..texts.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| texts[a as usize].cmp(&texts[b as usize]));
    let mut ranks = vec![0u32; texts.len()];
    for (rank, &i) in order.iter().enumerate() {
        ranks[i as usize] = rank as u32;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: Value) -> CatalogConfig {
        let mut c = json!({
            "events": [
                {"name": "Order Completed", "product_id_property": "product_id", "weight": 3.0},
                {"name": "Product Viewed", "product_id_property": "product_id"}
            ],
            "columns": [{"name": "brand", "properties": {"Order Completed": "brand", "Product Viewed": "brand"}}]
        });
        if let (Some(obj), Value::Object(more)) = (c.as_object_mut(), extra) {
            obj.extend(more);
        }
        serde_json::from_value(c).expect("config")
    }

    #[test]
    fn latest_non_null_value_wins_whatever_the_order() {
        let mut b = CatalogBuilder::new(config(json!({})));
        b.add_event(1, 1, 200, &json!({"product_id": "a", "brand": "New"}));
        b.add_event(2, 1, 100, &json!({"product_id": "a", "brand": "Old"}));
        b.add_event(2, 1, 300, &json!({"product_id": "a"}));
        b.add_event(
            3,
            0,
            250,
            &json!({"products": [{"product_id": "b", "brand": "B"}, {"product_id": "a"}]}),
        );
        let c = b.finish();
        assert_eq!(c.items, vec!["a", "b"]);
        assert_eq!(c.values[0][0], Some(json!("New")));
        assert_eq!(c.users, vec![1, 2, 3]);
        assert_eq!(c.interactions.len(), 5);
        assert_eq!(c.as_of, 300);
    }

    #[test]
    fn uploads_override_and_add_columns() {
        let mut b = CatalogBuilder::new(config(json!({})));
        b.add_event(1, 1, 100, &json!({"product_id": "a", "brand": "FromEvent"}));
        let row = json!({"brand": "Uploaded", "category": ["Shoes", "Sale"]});
        b.add_upload("a", row.as_object().expect("obj"));
        b.add_upload("z", json!({"category": "Hats"}).as_object().expect("obj"));
        let c = b.finish();
        assert_eq!(c.column_names, vec!["brand", "category"]);
        assert_eq!(
            c.values[0],
            vec![Some(json!("Uploaded")), Some(json!(["Shoes", "Sale"]))]
        );
        assert_eq!(c.items_matching(1, "Sale"), vec![0]);
        assert_eq!(c.items_matching(1, "Hats"), vec![1]);
    }

    #[test]
    fn weights_decay_and_respect_the_lookback() {
        let day = 86_400_000;
        let mut b =
            CatalogBuilder::new(config(json!({"lookback_days": 10, "half_life_days": 2.0})));
        b.add_event(1, 0, 10 * day, &json!({"product_id": "a"})); // weight 3, age 0
        b.add_event(1, 1, 8 * day, &json!({"product_id": "a"})); // weight 1, age 2 days: 0.5
        b.add_event(1, 1, -day, &json!({"product_id": "b"})); // 11 days old: outside
        b.add_event(2, 1, 11 * day, &json!({"product_id": "b"})); // after as_of
        let c = b.finish();
        let w = c.weighted(10 * day);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].0, w[0].1), (0, 0));
        assert!((w[0].2 - 3.5).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn column_values_count_items_and_users() {
        let mut b = CatalogBuilder::new(config(json!({})));
        b.add_event(1, 1, 1, &json!({"product_id": "a", "brand": "Acme"}));
        b.add_event(2, 1, 2, &json!({"product_id": "a", "brand": "Acme"}));
        b.add_event(2, 1, 3, &json!({"product_id": "b", "brand": "Acme"}));
        b.add_event(3, 1, 4, &json!({"product_id": "c", "brand": "Globex"}));
        let c = b.finish();
        let v = c.column_values(0, None, 10);
        assert_eq!(
            v[0],
            ValueCount {
                value: json!("Acme"),
                items: 2,
                users: 2
            }
        );
        assert_eq!(
            v[1],
            ValueCount {
                value: json!("Globex"),
                items: 1,
                users: 1
            }
        );
        assert_eq!(c.column_values(0, Some("gl"), 10).len(), 1);
    }
}
