//! The catalog configuration: which events are interactions, where each keeps its product id,
//! how much each counts, and which properties feed which item columns. Also the rules for
//! reading items out of an event's properties, including `products[]` events where each
//! product is one interaction.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most interaction events a catalog may use.
pub const MAX_EVENTS: usize = 10;
/// The pseudo-column meaning the product id itself.
pub const ITEM_ID: &str = "item_id";
/// The prefix naming a key inside each element of `properties.products`.
pub const PRODUCTS_PREFIX: &str = "products[].";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    pub events: Vec<InteractionEvent>,
    #[serde(default)]
    pub columns: Vec<ColumnConfig>,
    /// Only interactions within this many days before `as_of` count. None: all history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback_days: Option<u32>,
    /// Interactions lose half their weight every this many days before `as_of`. None: no decay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life_days: Option<f64>,
    /// How training compares candidate models. Default: `user_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_selection: Option<ModelSelection>,
}

/// The holdout that decides which model serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSelection {
    /// Hold out the newest interactions of the whole store (one global time cut). The test
    /// is whoever happened to be active last: on stores where a few users' late sessions
    /// make up that slice it measures those users, and trending tends to win for everyone.
    Time,
    /// Hold out a random share of each user's items: for data whose order carries little
    /// meaning (ratings collected in one sitting, imported histories).
    Random,
    /// Hold out each user's most recently discovered items ("what will this person engage
    /// with next"), for every user with enough history; the default. Every kind of user is
    /// in the test, each predicted from their own past, so a trend only wins where it
    /// really predicts people's next items.
    #[default]
    UserTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InteractionEvent {
    pub name: String,
    /// The property holding the product id: a top-level key, or for events with
    /// `products[]`, the key inside each product (`sku` or `products[].sku`).
    pub product_id_property: String,
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    pub name: String,
    /// Event name → property holding this column's value in that event.
    pub properties: BTreeMap<String, String>,
}

/// One thing wrong with a configuration, located by its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
    }
}

impl CatalogConfig {
    /// Every problem at once, so a user fixes them in one round.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.events.is_empty() {
            out.push(problem("events", "list at least one interaction event, e.g. {\"name\":\"Order Completed\",\"product_id_property\":\"product_id\"}"));
        }
        if self.events.len() > MAX_EVENTS {
            out.push(problem(
                "events",
                format!(
                    "at most {MAX_EVENTS} interaction events are allowed; got {}",
                    self.events.len()
                ),
            ));
        }
        let mut names = BTreeSet::new();
        for (i, e) in self.events.iter().enumerate() {
            let at = format!("events[{i}]");
            if e.name.trim().is_empty() {
                out.push(problem(
                    format!("{at}.name"),
                    "must be a non-empty event name",
                ));
            } else if !names.insert(e.name.as_str()) {
                out.push(problem(
                    format!("{at}.name"),
                    format!("event {:?} is listed twice", e.name),
                ));
            }
            let prop = e.product_id_property.trim();
            if prop.is_empty()
                || prop == PRODUCTS_PREFIX.trim_end_matches('.')
                || prop == PRODUCTS_PREFIX
            {
                out.push(problem(
                    format!("{at}.product_id_property"),
                    "name the property holding the product id, e.g. \"product_id\" (for products[] events, the key inside each product)",
                ));
            }
            if !(e.weight.is_finite() && e.weight > 0.0 && e.weight <= 1000.0) {
                out.push(problem(
                    format!("{at}.weight"),
                    format!(
                        "must be a number above 0 and at most 1000; got {}",
                        e.weight
                    ),
                ));
            }
        }
        let mut columns = BTreeSet::new();
        for (i, c) in self.columns.iter().enumerate() {
            let at = format!("columns[{i}]");
            let name = c.name.trim();
            if name.is_empty() || name.len() > 64 {
                out.push(problem(
                    format!("{at}.name"),
                    "must be a column name of 1 to 64 characters",
                ));
            } else if name == ITEM_ID {
                out.push(problem(
                    format!("{at}.name"),
                    "`item_id` is reserved: it is the product id itself",
                ));
            } else if !columns.insert(name) {
                out.push(problem(
                    format!("{at}.name"),
                    format!("column {name:?} is listed twice"),
                ));
            }
            if c.properties.is_empty() {
                out.push(problem(
                    format!("{at}.properties"),
                    "map at least one interaction event to the property holding this column, e.g. {\"Order Completed\":\"brand\"}",
                ));
            }
            for (event, property) in &c.properties {
                if !names.contains(event.as_str()) {
                    out.push(problem(
                        format!("{at}.properties.{event}"),
                        format!("{event:?} is not one of the interaction events; add it to `events` or remove the mapping"),
                    ));
                }
                if property.trim().is_empty() {
                    out.push(problem(
                        format!("{at}.properties.{event}"),
                        "must name a property",
                    ));
                }
            }
        }
        if self.lookback_days == Some(0) {
            out.push(problem(
                "lookback_days",
                "must be at least 1 (or omitted for all history)",
            ));
        }
        if let Some(h) = self.half_life_days
            && !(h.is_finite() && h > 0.0)
        {
            out.push(problem(
                "half_life_days",
                format!("must be a positive number of days (or omitted for no decay); got {h}"),
            ));
        }
        out
    }

    pub fn event(&self, name: &str) -> Option<(usize, &InteractionEvent)> {
        self.events.iter().enumerate().find(|(_, e)| e.name == name)
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The items one event's properties describe: one per product for `products[]` events.
    /// Each item carries the values of the configured columns found for it.
    pub fn extract(&self, event_index: usize, properties: &Value) -> Vec<ExtractedItem> {
        let Some(event) = self.events.get(event_index) else {
            return Vec::new();
        };
        let key = event.product_id_property.as_str();
        let column_keys: Vec<Option<&str>> = self
            .columns
            .iter()
            .map(|c| c.properties.get(&event.name).map(String::as_str))
            .collect();
        let (inner_key, forced) = match key.strip_prefix(PRODUCTS_PREFIX) {
            Some(k) => (k, true),
            None => (key, false),
        };
        let top_level = if forced {
            None
        } else {
            id_text(&properties[key])
        };
        if let Some(id) = top_level {
            let columns = column_keys
                .iter()
                .map(|k| k.and_then(|k| column_value(properties, None, k)))
                .collect();
            return vec![ExtractedItem { id, columns }];
        }
        let Some(products) = properties["products"].as_array() else {
            return Vec::new();
        };
        products
            .iter()
            .filter_map(|p| {
                let id = id_text(&p[inner_key])?;
                let columns = column_keys
                    .iter()
                    .map(|k| k.and_then(|k| column_value(properties, Some(p), k)))
                    .collect();
                Some(ExtractedItem { id, columns })
            })
            .collect()
    }
}

/// An item read from one event: its id and, per configured column, the value found (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedItem {
    pub id: String,
    pub columns: Vec<Option<Value>>,
}

/// Product ids are strings; numbers are accepted and written as text (`42` and `"42"` are one
/// item, as Segment treats ids).
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A column value: from the product (for `products[]` events) first, then the top level.
/// Empty strings, empty lists and objects count as absent.
fn column_value(properties: &Value, product: Option<&Value>, key: &str) -> Option<Value> {
    let key = key.strip_prefix(PRODUCTS_PREFIX).unwrap_or(key);
    let usable = |v: &Value| match v {
        Value::Null | Value::Object(_) => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    };
    product
        .map(|p| &p[key])
        .filter(|v| usable(v))
        .or_else(|| Some(&properties[key]).filter(|v| usable(v)))
        .cloned()
}

/// Whether an item's column value matches a target value: equal, or equal to an element of a
/// list. Matching is exact and case-sensitive; numbers match their text form.
pub fn value_matches(value: &Value, target: &str) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| value_matches(v, target)),
        Value::String(s) => s == target,
        Value::Number(n) => n.to_string() == target,
        Value::Bool(b) => (if *b { "true" } else { "false" }) == target,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> CatalogConfig {
        serde_json::from_value(json!({
            "events": [
                {"name": "Order Completed", "product_id_property": "product_id", "weight": 3.0},
                {"name": "Product Viewed", "product_id_property": "sku"}
            ],
            "columns": [
                {"name": "brand", "properties": {"Order Completed": "brand", "Product Viewed": "brand"}},
                {"name": "genres", "properties": {"Product Viewed": "genres"}}
            ]
        }))
        .expect("valid shape")
    }

    #[test]
    fn products_become_one_item_each_with_their_columns() {
        let c = config();
        let props = json!({"order_id": "o1", "brand": "TopLevel",
            "products": [{"product_id": "a", "brand": "Acme"}, {"product_id": 7}, {"brand": "no id"}]});
        let items = c.extract(0, &props);
        assert_eq!(
            items,
            vec![
                ExtractedItem {
                    id: "a".into(),
                    columns: vec![Some(json!("Acme")), None]
                },
                ExtractedItem {
                    id: "7".into(),
                    columns: vec![Some(json!("TopLevel")), None]
                },
            ]
        );
        let viewed = c.extract(
            1,
            &json!({"sku": "m1", "genres": ["Comedy", "Drama"], "brand": ""}),
        );
        assert_eq!(
            viewed,
            vec![ExtractedItem {
                id: "m1".into(),
                columns: vec![None, Some(json!(["Comedy", "Drama"]))]
            }]
        );
        assert!(c.extract(1, &json!({"other": 1})).is_empty());
    }

    #[test]
    fn list_values_match_any_element_exactly() {
        assert!(value_matches(&json!(["Comedy", "Drama"]), "Drama"));
        assert!(!value_matches(&json!(["Comedy"]), "comedy"));
        assert!(value_matches(&json!(1995), "1995"));
        assert!(!value_matches(&json!(null), ""));
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let bad: CatalogConfig = serde_json::from_value(json!({
            "events": [
                {"name": "A", "product_id_property": "", "weight": 0},
                {"name": "A", "product_id_property": "id"}
            ],
            "columns": [
                {"name": "item_id", "properties": {}},
                {"name": "brand", "properties": {"Z": "brand"}}
            ],
            "lookback_days": 0
        }))
        .expect("shape");
        let fields: Vec<String> = bad.validate().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec![
                "events[0].product_id_property",
                "events[0].weight",
                "events[1].name",
                "columns[0].name",
                "columns[0].properties",
                "columns[1].properties.Z",
                "lookback_days"
            ]
        );
        assert!(config().validate().is_empty());
        let many = CatalogConfig {
            events: (0..11)
                .map(|i| InteractionEvent {
                    name: format!("E{i}"),
                    product_id_property: "id".into(),
                    weight: 1.0,
                })
                .collect(),
            ..config()
        };
        assert!(
            many.validate()
                .iter()
                .any(|p| p.message.contains("at most 10"))
        );
    }
}
