//! Goal-based recommendation definitions (Amplitude's Recommendations): an outcome event (the
//! goal), an exposure event upstream of it whose property names the item, the cohort and
//! items considered, the list length, the control group and the mode. Pure: validation, the
//! outcome's conditions, the profile key and the control-group draw.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::audience::audience_key;

/// Longest list a definition may ask for.
pub const MAX_K: usize = 50;
/// Most items a definition may consider (`items.top`, `items.values`).
pub const MAX_ITEMS: usize = 5_000;
/// Items considered when the definition does not say: the most exposed ones.
pub const DEFAULT_TOP_ITEMS: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalDefinition {
    pub name: String,
    pub outcome: Outcome,
    pub exposure: Exposure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<Cohort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemsConsidered>,
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default = "yes")]
    pub exclude_converted: bool,
    #[serde(default = "default_control")]
    pub control_percent: f64,
    #[serde(default)]
    pub mode: GoalMode,
    /// Destination ids (numbers or their text; stored as text once validated) that receive
    /// an `identify` for each user whose list changes, control users included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<Value>,
}

fn default_k() -> usize {
    10
}
fn yes() -> bool {
    true
}
fn default_control() -> f64 {
    10.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub event: String,
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub property: String,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exposure {
    pub event: String,
    pub item_property: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cohort {
    pub active_within_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ItemsConsidered {
    Top(TopItems),
    Values(ListedItems),
}

/// The `top` items by exposure count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopItems {
    pub top: usize,
}

/// Exactly these item values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedItems {
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalMode {
    /// Rank every item considered (items on a page).
    #[default]
    Assortment,
    /// Items that follow the user's last exposures (the second item, a post-purchase email).
    NextBestAction,
    /// Items the user has not reached yet.
    CrossSell,
}

impl GoalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assortment => "assortment",
            Self::NextBestAction => "next_best_action",
            Self::CrossSell => "cross_sell",
        }
    }
}

impl GoalDefinition {
    /// The profile trait key: the snake_case of the name (`Next likes` → `next_likes`); the
    /// control flag is `<key>_is_control`.
    pub fn key(&self) -> String {
        audience_key(&self.name)
    }

    /// Every problem at once, as (field, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |f: &str, m: String| out.push((f.to_string(), m));
        if self.name.trim().is_empty() || self.key().is_empty() {
            add(
                "name",
                "must contain a letter or digit (it becomes the profile trait key)".into(),
            );
        } else if self.name.len() > 100 {
            add("name", "must be at most 100 characters".into());
        }
        if self.outcome.event.trim().is_empty() {
            add(
                "outcome.event",
                "must name the goal event, e.g. \"Order Completed\"".into(),
            );
        }
        for (i, c) in self.outcome.conditions.iter().enumerate() {
            let field = format!("outcome.where[{i}]");
            if c.property.trim().is_empty() {
                add(&format!("{field}.property"), "must name a property".into());
            }
            match c.op {
                Op::Gt | Op::Gte | Op::Lt | Op::Lte if !c.value.is_number() => add(
                    &format!("{field}.value"),
                    format!("`{}` compares numbers: give a number", op_name(c.op)),
                ),
                Op::In if c.value.as_array().is_none_or(|a| a.is_empty()) => add(
                    &format!("{field}.value"),
                    "`in` takes a non-empty list of values".into(),
                ),
                Op::Eq | Op::Ne if c.value.is_array() || c.value.is_object() => add(
                    &format!("{field}.value"),
                    "`eq`/`ne` take one value; use `in` for a list".into(),
                ),
                _ => {}
            }
        }
        if self.exposure.event.trim().is_empty() {
            add(
                "exposure.event",
                "must name the exposure event, e.g. \"Product Added\"".into(),
            );
        }
        if self.exposure.item_property.trim().is_empty() {
            add(
                "exposure.item_property",
                "must name the exposure's property that holds the item, e.g. \"product_id\"".into(),
            );
        }
        if let Some(c) = &self.cohort
            && !(1..=3650).contains(&c.active_within_days)
        {
            add(
                "cohort.active_within_days",
                "must be between 1 and 3650".into(),
            );
        }
        match &self.items {
            Some(ItemsConsidered::Top(TopItems { top })) if !(1..=MAX_ITEMS).contains(top) => {
                add("items.top", format!("must be between 1 and {MAX_ITEMS}"))
            }
            Some(ItemsConsidered::Values(ListedItems { values }))
                if values.is_empty() || values.len() > MAX_ITEMS =>
            {
                add("items.values", format!("must list 1 to {MAX_ITEMS} values"))
            }
            _ => {}
        }
        if !(1..=MAX_K).contains(&self.k) {
            add("k", format!("must be between 1 and {MAX_K}"));
        }
        if !(self.control_percent.is_finite() && (0.0..=50.0).contains(&self.control_percent)) {
            add(
                "control_percent",
                "must be between 0 and 50 (percent of users who get a random order)".into(),
            );
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

    /// Whether an outcome event's properties meet every condition.
    pub fn outcome_matches(&self, properties: &Value) -> bool {
        self.outcome
            .conditions
            .iter()
            .all(|c| c.matches(properties.get(&c.property)))
    }

    /// Whether `user` is in this definition's control group: a hash of the definition's id
    /// and the user, so the same user stays in (or out of) it across retrains.
    pub fn is_control(&self, goal_id: i64, user: &str) -> bool {
        control_draw(goal_id, user) * 100.0 < self.control_percent
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Gt => "gt",
        Op::Gte => "gte",
        Op::Lt => "lt",
        Op::Lte => "lte",
        Op::In => "in",
    }
}

/// Values compare as numbers when both are (a revenue sent as `"120"` compares as 120), else
/// as JSON values.
fn same(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Condition {
    /// A missing property meets only `ne`.
    pub fn matches(&self, found: Option<&Value>) -> bool {
        let Some(found) = found.filter(|v| !v.is_null()) else {
            return self.op == Op::Ne;
        };
        let cmp = |f: fn(f64, f64) -> bool| match (number(found), number(&self.value)) {
            (Some(x), Some(y)) => f(x, y),
            _ => false,
        };
        match self.op {
            Op::Eq => same(found, &self.value),
            Op::Ne => !same(found, &self.value),
            Op::Gt => cmp(|x, y| x > y),
            Op::Gte => cmp(|x, y| x >= y),
            Op::Lt => cmp(|x, y| x < y),
            Op::Lte => cmp(|x, y| x <= y),
            Op::In => self
                .value
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| same(found, v))),
        }
    }
}

/// A uniform draw in [0, 1) fixed by (goal, user).
pub fn control_draw(goal_id: i64, user: &str) -> f64 {
    let digest = Sha256::new()
        .chain_update(goal_id.to_le_bytes())
        .chain_update(user.as_bytes())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The seed of a control user's random order: fixed by (goal, user), so the order is the
/// same on every read and across retrains that keep the same items.
pub fn control_seed(goal_id: i64, user: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(b"order")
        .chain_update(goal_id.to_le_bytes())
        .chain_update(user.as_bytes())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// The item values an event carries under `property`: the top-level key (a string or a
/// number), else that key inside each of `products[]`.
pub fn item_values(properties: &Value, property: &str) -> Vec<String> {
    let as_text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if let Some(v) = properties.get(property).and_then(as_text) {
        return vec![v];
    }
    properties
        .get("products")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get(property).and_then(as_text))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> GoalDefinition {
        serde_json::from_value(v).expect("definition")
    }

    #[test]
    fn defaults_and_key() {
        let d = parse(
            json!({"name": "Next likes", "outcome": {"event": "Movie Liked"},
            "exposure": {"event": "Movie Viewed", "item_property": "movie_id"}}),
        );
        assert_eq!(d.k, 10);
        assert!(d.exclude_converted);
        assert_eq!(d.control_percent, 10.0);
        assert_eq!(d.mode, GoalMode::Assortment);
        assert_eq!(d.key(), "next_likes");
        assert!(d.problems().is_empty());
    }

    #[test]
    fn every_problem_at_once() {
        let d = parse(json!({"name": " ", "outcome": {"event": "", "where": [
                {"property": "revenue", "op": "gt", "value": "x"},
                {"property": "plan", "op": "in", "value": []}]},
            "exposure": {"event": "", "item_property": ""}, "k": 0, "control_percent": 80,
            "items": {"top": 0}, "cohort": {"active_within_days": 0},
            "destinations": [{"id": 1}]}));
        let fields: Vec<String> = d.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "name",
                "outcome.event",
                "outcome.where[0].value",
                "outcome.where[1].value",
                "exposure.event",
                "exposure.item_property",
                "cohort.active_within_days",
                "items.top",
                "k",
                "control_percent",
                "destinations"
            ]
        );
    }

    #[test]
    fn unknown_fields_and_ops_are_refused() {
        let base = json!({"name": "a", "outcome": {"event": "o"},
            "exposure": {"event": "e", "item_property": "p"}});
        let mut extra = base.clone();
        extra["colour"] = json!("red");
        assert!(serde_json::from_value::<GoalDefinition>(extra).is_err());
        let mut bad_op = base;
        bad_op["outcome"]["where"] = json!([{"property": "x", "op": "like", "value": 1}]);
        assert!(serde_json::from_value::<GoalDefinition>(bad_op).is_err());
    }

    #[test]
    fn conditions() {
        let c = |op: Op, value: Value| Condition {
            property: "revenue".into(),
            op,
            value,
        };
        let p = json!({"revenue": "120", "plan": "pro"});
        assert!(c(Op::Gt, json!(100)).matches(p.get("revenue")));
        assert!(!c(Op::Lt, json!(100)).matches(p.get("revenue")));
        assert!(c(Op::Eq, json!(120)).matches(p.get("revenue")));
        assert!(c(Op::In, json!([1, 120])).matches(p.get("revenue")));
        assert!(c(Op::Ne, json!(1)).matches(None));
        assert!(!c(Op::Gte, json!(1)).matches(None));
    }

    #[test]
    fn items_from_top_level_or_products() {
        assert_eq!(item_values(&json!({"sku": 12}), "sku"), ["12"]);
        let p = json!({"products": [{"sku": "a"}, {"sku": "b"}, {"x": 1}]});
        assert_eq!(item_values(&p, "sku"), ["a", "b"]);
        assert!(item_values(&json!({}), "sku").is_empty());
    }

    #[test]
    fn control_draw_is_fixed_and_spread() {
        assert_eq!(control_draw(3, "u1"), control_draw(3, "u1"));
        let below = (0..10_000)
            .filter(|i| control_draw(1, &format!("user-{i}")) < 0.1)
            .count();
        // Binomial(10 000, 0.1): mean 1000, sd 30; fixed inputs, so this never flakes.
        assert!((880..=1120).contains(&below), "{below}");
    }
}
