//! Items alike by their columns: for an item nobody has engaged with yet (new, or only
//! uploaded), the engaged items that share its brand, its category, its price band or any other
//! column value. An audience for such an item is ranked by users' propensity toward these
//! (`affinity-engine`'s `audience_target`), since its own interactions say nothing yet.
//!
//! Shared exact values weigh 1; a numeric column (a price) is compared by band, two values
//! within [`BAND_RATIO`] of each other, and weighs half: "about the same price" says less than
//! "same brand". The most alike items are taken first, whole tiers at a time, until there are
//! enough to learn from.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::item_catalog::ItemCatalog;

/// Two numbers are in one band when the larger is at most this times the smaller.
pub const BAND_RATIO: f64 = 1.25;
/// A column is compared by band when at least this share of the items holding it hold a
/// positive number (events send prices as numbers, CSV uploads as text: both count).
const NUMERIC_SHARE: f64 = 0.9;
const EXACT_WEIGHT: u32 = 2;
const BAND_WEIGHT: u32 = 1;
/// Distinct value profiles looked at: a new brand of thousands of uploaded items is usually a
/// few dozen (category, price band) profiles; beyond this many, the rest add little.
const MAX_PROFILES: usize = 200;

/// One item's column values by column name (names, not indices: the item may come from a newer
/// catalog than the one searched, with uploaded columns the other lacks).
pub type ColumnValues = Vec<(String, Value)>;

/// A value the chosen items share with the item(s) looked for.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedValue {
    pub column: String,
    /// The value as text (a number as written).
    pub value: String,
    /// Matched by band (within [`BAND_RATIO`]) rather than exactly.
    pub banded: bool,
    /// Chosen items holding it.
    pub items: usize,
}

/// Engaged items alike by columns, and what they share.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Alike {
    /// Item indices of the searched catalog, ascending.
    pub items: Vec<u32>,
    pub shared: Vec<SharedValue>,
}

/// `item`'s values, every column but `skip` (an audience's own target column: no engaged
/// item holds its value, or the item would not need this).
pub fn values_of(catalog: &ItemCatalog, item: u32, skip: Option<&str>) -> ColumnValues {
    catalog
        .column_names
        .iter()
        .zip(&catalog.values[item as usize])
        .filter(|(name, _)| Some(name.as_str()) != skip)
        .filter_map(|(name, v)| match v {
            None | Some(Value::Null) => None,
            Some(v) => Some((name.clone(), v.clone())),
        })
        .collect()
}

/// Per item: its interactions at or before the catalog's `as_of` (what the models learn
/// from).
pub fn engagement_counts(catalog: &ItemCatalog) -> Vec<u64> {
    let mut counts = vec![0u64; catalog.items.len()];
    for x in catalog
        .interactions
        .iter()
        .filter(|x| x.timestamp <= catalog.as_of)
    {
        counts[x.item as usize] += 1;
    }
    counts
}

/// Per item: has at least one interaction at or before the catalog's `as_of`.
pub fn engaged_items(catalog: &ItemCatalog) -> Vec<bool> {
    engagement_counts(catalog).iter().map(|&c| c > 0).collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn elements(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().filter(|v| !v.is_null()).collect(),
        Value::Null => Vec::new(),
        v => vec![v],
    }
}

fn positive_number(v: &Value) -> Option<f64> {
    let x = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (x.is_finite() && x > 0.0).then_some(x)
}

/// One column of the searched catalog, indexed for lookups by value or by band. Borrows the
/// catalog's interned values: no value text is copied per item.
struct ColumnLookup<'a> {
    /// Value text → its id in the column index.
    ids: HashMap<&'a str, u32>,
    /// Per value id: the eligible items holding it.
    postings: Vec<Vec<u32>>,
    /// (number, item) of eligible items, ascending: `Some` when the column is numeric.
    numbers: Option<Vec<(f64, u32)>>,
}

impl<'a> ColumnLookup<'a> {
    fn new(catalog: &'a ItemCatalog, column: usize, eligible: &[bool]) -> Self {
        let index = catalog.column_index(column);
        let ids = index
            .texts
            .iter()
            .enumerate()
            .map(|(id, t)| (t.as_str(), id as u32))
            .collect();
        let mut postings = vec![Vec::new(); index.values.len()];
        let (mut holding, mut numeric) = (0usize, 0usize);
        let mut numbers = Vec::new();
        for (item, held) in index.of_item.iter().enumerate() {
            if held.is_empty() {
                continue;
            }
            holding += 1;
            let number = held
                .iter()
                .find_map(|&id| positive_number(&index.values[id as usize]));
            numeric += usize::from(number.is_some());
            if !eligible.get(item).copied().unwrap_or(false) {
                continue;
            }
            for &id in held {
                postings[id as usize].push(item as u32);
            }
            if let Some(x) = number {
                numbers.push((x, item as u32));
            }
        }
        let is_numeric = holding > 0 && numeric as f64 >= NUMERIC_SHARE * holding as f64;
        numbers.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Self {
            ids,
            postings,
            numbers: is_numeric.then_some(numbers),
        }
    }

    /// Eligible items matching `value` (any element of a list), and whether by band.
    fn matching(&self, value: &Value) -> (BTreeSet<u32>, bool) {
        let mut out = BTreeSet::new();
        let mut banded = false;
        for e in elements(value) {
            match (&self.numbers, positive_number(e)) {
                (Some(numbers), Some(x)) => {
                    banded = true;
                    let (low, high) = (x / BAND_RATIO, x * BAND_RATIO);
                    let start = numbers.partition_point(|&(y, _)| y < low);
                    out.extend(
                        numbers[start..]
                            .iter()
                            .take_while(|&&(y, _)| y <= high)
                            .map(|&(_, i)| i),
                    );
                }
                _ => {
                    if let Some(&id) = self.ids.get(text(e).as_str()) {
                        out.extend(self.postings[id as usize].iter().copied());
                    }
                }
            }
        }
        (out, banded)
    }
}

/// The engaged items (`eligible`) of `catalog` most alike, by shared column values, to each of
/// `wanted` (the values of the items looked for), together: for each, the items sharing the
/// most are taken first, whole tiers of equal likeness at a time, until at least `min_items`
/// are chosen or none is left that shares anything.
pub fn alike_by_columns(
    catalog: &ItemCatalog,
    wanted: &[ColumnValues],
    eligible: &[bool],
    min_items: usize,
) -> Alike {
    let mut profiles: Vec<&ColumnValues> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for w in wanted {
        let key = serde_json::to_string(w).unwrap_or_default();
        if !w.is_empty() && seen.insert(key) {
            profiles.push(w);
        }
        if profiles.len() == MAX_PROFILES {
            break;
        }
    }
    let mut lookups: HashMap<usize, ColumnLookup> = HashMap::new();
    let mut chosen: BTreeSet<u32> = BTreeSet::new();
    // (column, value text) → (banded, items), over every profile.
    let mut shared: BTreeMap<(String, String), (bool, BTreeSet<u32>)> = BTreeMap::new();
    for profile in profiles {
        let mut matches: Vec<(&str, &Value, BTreeSet<u32>, bool)> = Vec::new();
        for (name, value) in profile {
            let Some(c) = catalog.column(name) else {
                continue; // a column only the newer catalog has: no engaged item holds it
            };
            let lookup = lookups
                .entry(c)
                .or_insert_with(|| ColumnLookup::new(catalog, c, eligible));
            let (items, banded) = lookup.matching(value);
            if !items.is_empty() {
                matches.push((name, value, items, banded));
            }
        }
        let mut likeness: HashMap<u32, u32> = HashMap::new();
        for (_, _, items, banded) in &matches {
            let w = if *banded { BAND_WEIGHT } else { EXACT_WEIGHT };
            for &i in items {
                *likeness.entry(i).or_default() += w;
            }
        }
        let mut tiers: Vec<u32> = likeness.values().copied().collect();
        tiers.sort_unstable_by(|a, b| b.cmp(a));
        tiers.dedup();
        let Some(&lowest) = tiers.last() else {
            continue;
        };
        let threshold = tiers
            .iter()
            .copied()
            .find(|&t| likeness.values().filter(|&&l| l >= t).count() >= min_items)
            .unwrap_or(lowest);
        let picked: BTreeSet<u32> = likeness
            .iter()
            .filter(|&(_, &l)| l >= threshold)
            .map(|(&i, _)| i)
            .collect();
        for (name, value, items, banded) in matches {
            let held: BTreeSet<u32> = items.intersection(&picked).copied().collect();
            if held.is_empty() {
                continue;
            }
            let entry = shared
                .entry((name.to_string(), text(value)))
                .or_insert_with(|| (banded, BTreeSet::new()));
            entry.1.extend(held);
        }
        chosen.extend(picked);
    }
    let mut shared: Vec<SharedValue> = shared
        .into_iter()
        .map(|((column, value), (banded, items))| SharedValue {
            column,
            value,
            banded,
            items: items.len(),
        })
        .collect();
    shared.sort_by(|a, b| b.items.cmp(&a.items).then(a.column.cmp(&b.column)));
    Alike {
        items: chosen.into_iter().collect(),
        shared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogConfig;
    use crate::item_catalog::CatalogBuilder;
    use serde_json::{Map, json};

    fn catalog() -> ItemCatalog {
        let config: CatalogConfig = serde_json::from_value(json!({
            "events": [{"name": "Order Completed", "product_id_property": "product_id"}],
            "columns": [
                {"name": "brand", "properties": {"Order Completed": "brand"}},
                {"name": "category", "properties": {"Order Completed": "category"}},
                {"name": "price", "properties": {"Order Completed": "price"}}
            ]
        }))
        .expect("config");
        let mut b = CatalogBuilder::new(config);
        let rows = [
            ("boot-1", "North", "Boots", json!(90)),
            ("boot-2", "North", "Boots", json!("95.5")),
            ("boot-3", "North", "Boots", json!(300)),
            ("sandal-1", "North", "Sandals", json!(30)),
            ("boot-9", "South", "Boots", json!(88)),
            ("cap-1", "South", "Caps", json!(12)),
        ];
        for (n, (id, brand, category, price)) in rows.into_iter().enumerate() {
            b.add_event(
                n as i64,
                0,
                n as i64,
                &json!({"product_id": id, "brand": brand, "category": category, "price": price}),
            );
        }
        // Uploaded, nobody engaged: never chosen.
        let mut m = Map::new();
        m.insert("brand".into(), json!("North"));
        m.insert("category".into(), json!("Boots"));
        b.add_upload("boot-new-old", &m);
        b.finish()
    }

    fn ids(c: &ItemCatalog, a: &Alike) -> Vec<String> {
        a.items
            .iter()
            .map(|&i| c.items[i as usize].clone())
            .collect()
    }

    #[test]
    fn the_most_alike_engaged_items_come_first_by_whole_tiers() {
        let c = catalog();
        let eligible = engaged_items(&c);
        assert_eq!(eligible.iter().filter(|&&e| e).count(), 6);
        let new_boot: ColumnValues = vec![
            ("brand".into(), json!("North")),
            ("category".into(), json!("Boots")),
            ("price".into(), json!("92")),
            ("material".into(), json!("leather")),
        ];
        // Brand, category and price band: boot-1 and boot-2 only.
        let a = alike_by_columns(&c, std::slice::from_ref(&new_boot), &eligible, 2);
        assert_eq!(ids(&c, &a), vec!["boot-1", "boot-2"]);
        let price = a
            .shared
            .iter()
            .find(|s| s.column == "price")
            .expect("price");
        assert!(price.banded && price.items == 2, "{a:?}");
        // Asking for more adds the next tiers: brand and category, then category and price.
        let a = alike_by_columns(&c, std::slice::from_ref(&new_boot), &eligible, 3);
        assert_eq!(ids(&c, &a), vec!["boot-1", "boot-2", "boot-3"]);
        let a = alike_by_columns(&c, std::slice::from_ref(&new_boot), &eligible, 4);
        assert_eq!(ids(&c, &a), vec!["boot-1", "boot-2", "boot-3", "boot-9"]);
        // Nothing shared: nothing chosen.
        let odd: ColumnValues = vec![("brand".into(), json!("Nobody"))];
        assert_eq!(alike_by_columns(&c, &[odd], &eligible, 2), Alike::default());
    }

    #[test]
    fn text_columns_match_exactly_and_list_elements_count() {
        let c = catalog();
        let eligible = engaged_items(&c);
        let wanted: ColumnValues = vec![("category".into(), json!(["Caps", "Hats"]))];
        let a = alike_by_columns(&c, &[wanted], &eligible, 10);
        assert_eq!(ids(&c, &a), vec!["cap-1"]);
        assert_eq!(
            a.shared,
            vec![SharedValue {
                column: "category".into(),
                value: "[\"Caps\",\"Hats\"]".into(),
                banded: false,
                items: 1
            }]
        );
        let skip = values_of(&c, c.item_index("boot-1").expect("item"), Some("price"));
        assert_eq!(
            skip,
            vec![
                ("brand".to_string(), json!("North")),
                ("category".to_string(), json!("Boots"))
            ]
        );
    }
}
