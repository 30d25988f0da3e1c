//! Rules that keep items out of recommendations and traits: by column value (a category
//! that must never be suggested) or by numeric range (too cheap, too expensive).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::value_matches;
use crate::item_catalog::ItemCatalog;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRule {
    pub column: String,
    /// Exclude items whose value (or any element of a list) is one of these.
    #[serde(default, rename = "in", skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Exclude items whose numeric value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// Exclude items whose numeric value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
}

impl ItemRule {
    /// What is wrong with the rule for this catalog, if anything.
    pub fn problem(&self, catalog_columns: &[String]) -> Option<String> {
        if !catalog_columns.contains(&self.column) {
            return Some(format!(
                "unknown column {:?}; columns: {}",
                self.column,
                catalog_columns.join(", ")
            ));
        }
        if self.values.is_empty() && self.below.is_none() && self.above.is_none() {
            return Some("give `in` (values to exclude), `below` or `above`".to_string());
        }
        None
    }

    /// Whether the rule excludes `item`. An item without a value for the column is kept.
    pub fn excludes(&self, catalog: &ItemCatalog, column: usize, item: u32) -> bool {
        let Some(value) = catalog.values[item as usize][column].as_ref() else {
            return false;
        };
        if self.values.iter().any(|v| value_matches(value, v)) {
            return true;
        }
        let number = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        number
            .is_some_and(|n| self.below.is_some_and(|b| n < b) || self.above.is_some_and(|a| n > a))
    }
}

/// Rules resolved against a catalog, ready to test items quickly.
pub struct ItemFilter<'a> {
    catalog: &'a ItemCatalog,
    /// (column, value) pairs every allowed item must match.
    require: Vec<(usize, String)>,
    exclude: Vec<(usize, &'a ItemRule)>,
}

impl<'a> ItemFilter<'a> {
    /// Fails with a message naming the first unknown column.
    pub fn new(
        catalog: &'a ItemCatalog,
        require: &[(String, String)],
        exclude: &'a [ItemRule],
    ) -> Result<Self, String> {
        let column = |name: &str| {
            catalog.column(name).ok_or_else(|| {
                format!(
                    "unknown column {name:?}; columns: {}",
                    catalog.column_names.join(", ")
                )
            })
        };
        let require = require
            .iter()
            .map(|(c, v)| Ok((column(c)?, v.clone())))
            .collect::<Result<_, String>>()?;
        let exclude = exclude
            .iter()
            .map(|r| Ok((column(&r.column)?, r)))
            .collect::<Result<_, String>>()?;
        Ok(Self {
            catalog,
            require,
            exclude,
        })
    }

    pub fn allows(&self, item: u32) -> bool {
        let values = &self.catalog.values[item as usize];
        self.require
            .iter()
            .all(|(c, v)| values[*c].as_ref().is_some_and(|x| value_matches(x, v)))
            && !self
                .exclude
                .iter()
                .any(|(c, r)| r.excludes(self.catalog, *c, item))
    }
}

/// A personalized-items trait: the `k` values of `column` each person most likely wants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraitDefinition {
    pub name: String,
    #[serde(default = "item_id_column")]
    pub column: String,
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default)]
    pub exclude_interacted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<ItemRule>,
    /// Destination ids (numbers or their text; stored as text once validated) that receive
    /// an `identify` for each profile whose values change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<Value>,
}

fn item_id_column() -> String {
    crate::catalog::ITEM_ID.to_string()
}

fn default_k() -> usize {
    5
}

impl TraitDefinition {
    /// Every problem at once, as (field, message).
    pub fn problems(&self, catalog_columns: &[String]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            out.push(("name".into(), "must be 1–64 characters of a-z, 0-9 and _, starting with a letter, e.g. recommended_brands".into()));
        }
        if self.column != crate::catalog::ITEM_ID && !catalog_columns.contains(&self.column) {
            out.push((
                "column".into(),
                format!(
                    "unknown column {:?}; use item_id or one of: {}",
                    self.column,
                    catalog_columns.join(", ")
                ),
            ));
        }
        if !(1..=10).contains(&self.k) {
            out.push(("k".into(), format!("must be from 1 to 10; got {}", self.k)));
        }
        for (i, r) in self.exclude.iter().enumerate() {
            if let Some(p) = r.problem(catalog_columns) {
                out.push((format!("exclude[{i}]"), p));
            }
        }
        self.destination_ids(&mut out);
        out
    }

    /// The destination ids as text (whether each exists is the engine's to check); a list
    /// that is not one of ids is a problem in `out`.
    pub fn destination_ids(&self, out: &mut Vec<(String, String)>) -> Vec<String> {
        crate::destination::parse_destination_ids(
            Some(&Value::Array(self.destinations.clone())),
            out,
        )
    }
}
