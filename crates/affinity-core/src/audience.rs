//! An audience definition: who to find (a target), how many (a maximum size), over what
//! horizon, with what control group. Parsed by hand from JSON so every problem is named.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalog::ITEM_ID;
use crate::item_catalog::ItemCatalog;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Target {
    Item { item_id: String },
    Column { column: String, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MaxSize {
    Percent { percent: f64 },
    Count { count: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudienceSpec {
    pub name: String,
    pub target: Target,
    pub max_size: MaxSize,
    /// "Engages within the next `horizon_days`". `None` (not given): chosen from the store's
    /// rhythm with the target when the audience is computed (the estimate says which and
    /// why). Stored specs from before always hold a number.
    #[serde(default)]
    pub horizon_days: Option<u32>,
    pub control_percent: f64,
    pub destinations: Vec<String>,
    /// When the next snapshot is made without a request. Specs stored before audiences
    /// refreshed themselves read as `manual`.
    #[serde(default)]
    pub refresh: Refresh,
    /// The catalog event the audience predicts ("who will order it"), by name; every
    /// interaction still informs the ranking. `None`: any of the catalog's interactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The question the ranking answers, as resolved when the request was read (a request
    /// naming none gets [`AudienceQuestion::unasked`]'s). Specs stored before there was a
    /// choice read as `balanced`, what they were computed with; so do those created without
    /// one before 1 December 2026, when `balanced` was the default (stored as such).
    #[serde(default)]
    pub question: AudienceQuestion,
}

/// The question an audience's ranking answers. Who engages within the horizon and what a
/// user's next visit holds are different questions: a shopper who orders every week but
/// seldom buys a brand will likely buy it within 30 days, while one who buys it in every
/// order but orders rarely is likelier to have it in their next order. On the synthetic
/// repeat shops no one ranking wins both against the simple heuristics
/// (`bench/audiences_repeat.sh`): each question's own ranking wins its question, and a
/// compromise between them (`balanced`) can lose a little on both. So a request that does
/// not name one gets the question its other fields ask ([`AudienceQuestion::unasked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudienceQuestion {
    /// Both count alike: who engages within the horizon and, where enough users come back,
    /// what their next visit holds. Asked by name, and by audiences created before
    /// 1 December 2026 without naming one (it was the default then); specs stored before
    /// there was a choice read as this, what they were computed with (hence serde's
    /// default).
    #[default]
    Balanced,
    /// Only who engages within the horizon: the spec's question, asked strictly.
    WithinHorizon,
    /// Only what a user's next visit holds, whenever it comes ("what will their next order
    /// hold"): the ranking learned on the first visit after the backtest time of the users
    /// who came back, judged on that alone. Where too few came back to measure it, the
    /// ranking answers within the horizon and the estimate says so.
    NextVisit,
}

impl AudienceQuestion {
    pub const ALL: [AudienceQuestion; 3] = [
        AudienceQuestion::WithinHorizon,
        AudienceQuestion::NextVisit,
        AudienceQuestion::Balanced,
    ];

    /// The question of a request that names none. A `horizon_days` given is a time-boxed
    /// question ("who buys it within 30 days"): [`AudienceQuestion::WithinHorizon`]. Without
    /// one, the request asks who is likeliest to engage with the target next:
    /// [`AudienceQuestion::NextVisit`], whose horizon (chosen from the data) still sizes the
    /// estimate and answers where too few users came back to measure a next visit. Each
    /// question's own ranking is the one that wins it on the benchmarks.
    pub fn unasked(horizon_days: Option<u32>) -> AudienceQuestion {
        match horizon_days {
            Some(_) => AudienceQuestion::WithinHorizon,
            None => AudienceQuestion::NextVisit,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AudienceQuestion::Balanced => "balanced",
            AudienceQuestion::WithinHorizon => "within_horizon",
            AudienceQuestion::NextVisit => "next_visit",
        }
    }
}

/// When an audience makes its next snapshot by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refresh {
    /// Only on `POST …/refresh`.
    #[default]
    Manual,
    /// After each model a training run publishes.
    AfterTraining,
    /// When the newest snapshot is a day old (checked by the schedule).
    Daily,
}

impl Refresh {
    pub const ALL: [Refresh; 3] = [Refresh::Manual, Refresh::AfterTraining, Refresh::Daily];

    pub fn as_str(self) -> &'static str {
        match self {
            Refresh::Manual => "manual",
            Refresh::AfterTraining => "after_training",
            Refresh::Daily => "daily",
        }
    }
}

/// The horizon when neither the request nor the data says one (too few repeat engagements
/// with the target to measure its rhythm).
pub const DEFAULT_HORIZON_DAYS: u32 = 30;
const FIELDS: [&str; 9] = [
    "name",
    "target",
    "max_size",
    "horizon_days",
    "control_percent",
    "destinations",
    "refresh",
    "event",
    "question",
];

/// One problem with a request, located by field.
pub type FieldProblem = (String, String);

fn p(field: &str, message: impl Into<String>) -> FieldProblem {
    (field.to_string(), message.into())
}

/// Parses an optional `horizon_days`: absent or null → `None` (chosen from the data).
pub fn parse_horizon(v: Option<&Value>, out: &mut Vec<FieldProblem>) -> Option<u32> {
    match v {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(d @ 1..=365) => Some(d as u32),
            _ => {
                out.push(p(
                    "horizon_days",
                    format!(
                        "must be a whole number of days from 1 to 365, or omitted to choose it from the data; got {v}"
                    ),
                ));
                None
            }
        },
    }
}

/// Parses an optional `question`: absent or null → the question `horizon_days` asks
/// ([`AudienceQuestion::unasked`]).
pub fn parse_question(
    v: Option<&Value>,
    horizon_days: Option<u32>,
    out: &mut Vec<FieldProblem>,
) -> AudienceQuestion {
    one_of(
        "question",
        v,
        &AudienceQuestion::ALL,
        AudienceQuestion::as_str,
        " (omitted: \"within_horizon\" when horizon_days is given, else \"next_visit\"; \"within_horizon\": who engages within the horizon; \"next_visit\": what their next visit holds, whenever it comes; \"balanced\": both alike)",
        out,
    )
    .unwrap_or_else(|| AudienceQuestion::unasked(horizon_days))
}

/// An optional setting named by one of `all`'s names: absent or null → `None`; any other
/// value is a problem listing the names (and `explained`, when it says more).
fn one_of<T: Copy>(
    field: &str,
    v: Option<&Value>,
    all: &[T],
    name: fn(T) -> &'static str,
    explained: &str,
    out: &mut Vec<FieldProblem>,
) -> Option<T> {
    let v = v.filter(|v| !v.is_null())?;
    match all.iter().copied().find(|&x| v.as_str() == Some(name(x))) {
        Some(x) => Some(x),
        None => {
            let names: Vec<String> = all.iter().map(|&x| format!("{:?}", name(x))).collect();
            out.push(p(
                field,
                format!("must be one of {}{explained}; got {v}", names.join(", ")),
            ));
            None
        }
    }
}

/// Parses an optional `event`: absent or null → `None` (any of the catalog's interactions).
/// Whether the catalog counts it is checked against the catalog ([`resolve_event`]).
pub fn parse_event(v: Option<&Value>, out: &mut Vec<FieldProblem>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 200 => Some(s.clone()),
        Some(v) => {
            out.push(p(
                "event",
                format!(
                    "must be the name of one of the catalog's interaction events (e.g. \"Order Completed\"), or omitted for any of them; got {v}"
                ),
            ));
            None
        }
    }
}

/// The index in the catalog config of the event an audience predicts; a problem naming
/// the catalog's events when it counts no such event.
pub fn resolve_event(
    catalog: &ItemCatalog,
    event: Option<&str>,
) -> Result<Option<u8>, FieldProblem> {
    let Some(name) = event else {
        return Ok(None);
    };
    let events = &catalog.config.events;
    match events.iter().position(|e| e.name == name) {
        Some(i) => Ok(Some(i as u8)),
        None => Err(p(
            "event",
            format!(
                "the serving model's catalog counts no event {name:?} (names match exactly); its events: {}; to count another, add it with PUT /api/v1/catalog and train",
                events
                    .iter()
                    .map(|e| format!("{:?}", e.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Parses a target object: `{"item_id"}` or `{"column","value"}`.
pub fn parse_target(v: Option<&Value>, out: &mut Vec<FieldProblem>) -> Option<Target> {
    let hint = "give {\"item_id\":\"sku-1\"} or {\"column\":\"brand\",\"value\":\"Acme\"}";
    let Some(Value::Object(t)) = v else {
        out.push(p("target", format!("is required: {hint}")));
        return None;
    };
    for key in t
        .keys()
        .filter(|k| !["item_id", "column", "value"].contains(&k.as_str()))
    {
        out.push(p(
            &format!("target.{key}"),
            format!("unknown field: {hint}"),
        ));
    }
    let text = |k: &str| match t.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    match (text("item_id"), text("column"), text("value")) {
        (Some(item_id), None, None) => Some(Target::Item { item_id }),
        (None, Some(column), Some(value)) if column == ITEM_ID => {
            Some(Target::Item { item_id: value })
        }
        (None, Some(column), Some(value)) => Some(Target::Column { column, value }),
        _ => {
            out.push(p(
                "target",
                format!("must name an item or a column and a value: {hint}"),
            ));
            None
        }
    }
}

impl AudienceSpec {
    /// Parses and validates a create request, listing every problem.
    pub fn parse(body: &Value) -> Result<AudienceSpec, Vec<FieldProblem>> {
        let mut out = Vec::new();
        let Some(obj) = body.as_object() else {
            return Err(vec![p("body", "must be a JSON object")]);
        };
        for key in obj.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
            out.push(p(
                key,
                format!("unknown field; fields are: {}", FIELDS.join(", ")),
            ));
        }
        let name = match obj.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => s.clone(),
            _ => {
                out.push(p("name", "is required: a name of 1 to 200 characters"));
                String::new()
            }
        };
        let target = parse_target(obj.get("target"), &mut out);
        let max_size = match obj.get("max_size") {
            None => Some(MaxSize::Percent { percent: 20.0 }),
            Some(v) => match (
                v.get("percent").and_then(Value::as_f64),
                v.get("count").and_then(Value::as_u64),
                v.as_object().map(|o| o.len()),
            ) {
                (Some(percent), None, Some(1)) if percent > 0.0 && percent <= 100.0 => {
                    Some(MaxSize::Percent { percent })
                }
                (None, Some(count), Some(1)) if count >= 1 => Some(MaxSize::Count { count }),
                _ => {
                    out.push(p(
                        "max_size",
                        "must be {\"percent\": 0 < p <= 100} or {\"count\": n >= 1}",
                    ));
                    None
                }
            },
        };
        let horizon_days = parse_horizon(obj.get("horizon_days"), &mut out);
        let event = parse_event(obj.get("event"), &mut out);
        let question = parse_question(obj.get("question"), horizon_days, &mut out);
        let control_percent = match obj.get("control_percent") {
            None => 0.0,
            Some(v) => match v.as_f64() {
                Some(c) if (0.0..=50.0).contains(&c) => c,
                _ => {
                    out.push(p(
                        "control_percent",
                        format!("must be a number from 0 to 50; got {v}"),
                    ));
                    0.0
                }
            },
        };
        let destinations =
            crate::destination::parse_destination_ids(obj.get("destinations"), &mut out);
        let refresh = one_of(
            "refresh",
            obj.get("refresh"),
            &Refresh::ALL,
            Refresh::as_str,
            "",
            &mut out,
        )
        .unwrap_or_default();
        match (out.is_empty(), target, max_size) {
            (true, Some(target), Some(max_size)) => Ok(AudienceSpec {
                name,
                target,
                max_size,
                horizon_days,
                control_percent,
                destinations,
                refresh,
                event,
                question,
            }),
            _ => Err(out),
        }
    }

    /// Members wanted out of `scored` users.
    pub fn wanted(&self, scored: usize) -> usize {
        match self.max_size {
            MaxSize::Percent { percent } => {
                ((percent / 100.0) * scored as f64).round().max(1.0) as usize
            }
            MaxSize::Count { count } => count as usize,
        }
        .min(scored)
    }
}

/// A target no item of the catalog holds yet: allowed (a marketer may name a product or a
/// value before it ships), with close values the user may have meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnseenTarget {
    /// `target.item_id` or `target.value`.
    pub field: String,
    pub message: String,
    /// Existing values (or item ids) equal ignoring case or sharing a prefix.
    pub suggestions: Vec<String>,
}

/// The target's items in the catalog (empty when none holds it yet: see [`unseen_target`]).
/// The only impossible target is a column the catalog does not have.
pub fn resolve_target(catalog: &ItemCatalog, target: &Target) -> Result<Vec<u32>, FieldProblem> {
    match target {
        Target::Item { item_id } => Ok(catalog.item_index(item_id).into_iter().collect()),
        Target::Column { column, value } => match catalog.column(column) {
            Some(c) => Ok(catalog.items_matching(c, value)),
            None => Err(p(
                "target.column",
                format!(
                    "no column {column:?}; columns: item_id, {}",
                    catalog.column_names.join(", ")
                ),
            )),
        },
    }
}

/// The warning for a target no item holds, with close values; `None` when an item holds it
/// (or the column is unknown, which [`resolve_target`] refuses).
pub fn unseen_target(catalog: &ItemCatalog, target: &Target) -> Option<UnseenTarget> {
    if !resolve_target(catalog, target).ok()?.is_empty() {
        return None;
    }
    let later = "the audience is accepted and stays empty until an item with it is uploaded \
                 (POST /api/v1/catalog/items) or engaged with; refresh it then";
    Some(match target {
        Target::Item { item_id } => {
            let close = close_matches(catalog.items.iter().map(String::as_str), item_id);
            UnseenTarget {
                field: "target.item_id".into(),
                message: format!(
                    "no item {item_id:?} in the catalog yet{}; {later}",
                    suggest(&close)
                ),
                suggestions: close,
            }
        }
        Target::Column { column, value } => {
            let c = catalog.column(column)?;
            let index = catalog.column_index(c);
            let close = close_matches(index.texts.iter().map(String::as_str), value);
            UnseenTarget {
                field: "target.value".into(),
                message: format!(
                    "no item has {column} = {value:?} yet (values match exactly and case-sensitively){}; {later}",
                    suggest(&close)
                ),
                suggestions: close,
            }
        }
    })
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(
            "; did you mean {}?",
            close
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Candidates equal ignoring case, or sharing a case-insensitive prefix either way.
pub fn close_matches<'a>(candidates: impl Iterator<Item = &'a str>, wanted: &str) -> Vec<String> {
    let w = wanted.to_lowercase();
    let mut exact = Vec::new();
    let mut prefix = Vec::new();
    for c in candidates {
        let l = c.to_lowercase();
        if l == w {
            exact.push(c.to_string());
        } else if !w.is_empty() && (l.starts_with(&w) || w.starts_with(&l)) {
            prefix.push(c.to_string());
        }
    }
    prefix.sort();
    exact.extend(prefix);
    exact.truncate(5);
    exact
}

impl Target {
    pub fn to_json(&self) -> Value {
        match self {
            Target::Item { item_id } => json!({"item_id": item_id}),
            Target::Column { column, value } => json!({"column": column, "value": value}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_omitted_horizon_is_left_to_the_data_and_a_given_one_kept() {
        let base =
            json!({"name": "a", "target": {"item_id": "sku-1"}, "max_size": {"percent": 20}});
        let spec = AudienceSpec::parse(&base).expect("valid");
        assert_eq!(spec.horizon_days, None);
        let mut given = base.clone();
        given["horizon_days"] = json!(14);
        assert_eq!(
            AudienceSpec::parse(&given).expect("valid").horizon_days,
            Some(14)
        );
        given["horizon_days"] = json!(0);
        let problems = AudienceSpec::parse(&given).expect_err("0 days");
        assert_eq!(problems[0].0, "horizon_days");
        // Specs stored before the horizon could be left out still decode.
        let stored = json!({"name": "a", "target": {"item_id": "sku-1"},
            "max_size": {"percent": 20}, "horizon_days": 30, "control_percent": 0.0,
            "destinations": []});
        let spec: AudienceSpec = serde_json::from_value(stored).expect("stored spec");
        assert_eq!(spec.horizon_days, Some(30));
        assert_eq!(spec.refresh, Refresh::Manual, "older specs refresh by hand");
        assert_eq!(
            spec.question,
            AudienceQuestion::Balanced,
            "older specs were computed balanced"
        );
    }

    #[test]
    fn an_unnamed_question_is_the_one_the_horizon_asks() {
        // No horizon: who engages with the target next. A horizon given: who engages
        // within it. Either is stored as resolved, so a later default cannot change it.
        let mut body = json!({"name": "a", "target": {"item_id": "sku-1"}});
        let spec = AudienceSpec::parse(&body).expect("valid");
        assert_eq!(spec.question, AudienceQuestion::NextVisit);
        assert_eq!(
            serde_json::to_value(&spec).expect("json")["question"],
            "next_visit"
        );
        body["horizon_days"] = json!(14);
        assert_eq!(
            AudienceSpec::parse(&body).expect("valid").question,
            AudienceQuestion::WithinHorizon
        );
        body["horizon_days"] = Value::Null;
        assert_eq!(
            AudienceSpec::parse(&body).expect("valid").question,
            AudienceQuestion::NextVisit,
            "a null horizon is chosen from the data"
        );
        // A question named is the one asked, with or without a horizon.
        body["horizon_days"] = json!(14);
        body["question"] = json!("balanced");
        assert_eq!(
            AudienceSpec::parse(&body).expect("valid").question,
            AudienceQuestion::Balanced
        );
        body["question"] = json!("next_visit");
        assert_eq!(
            AudienceSpec::parse(&body).expect("valid").question,
            AudienceQuestion::NextVisit
        );
        body["horizon_days"] = Value::Null;
        body["question"] = json!("within_horizon");
        let spec = AudienceSpec::parse(&body).expect("valid");
        assert_eq!(spec.question, AudienceQuestion::WithinHorizon);
        // Stored and read back as it was asked.
        let stored: AudienceSpec =
            serde_json::from_value(serde_json::to_value(&spec).expect("json")).expect("spec");
        assert_eq!(stored.question, AudienceQuestion::WithinHorizon);
        body["question"] = json!("next_order");
        let problems = AudienceSpec::parse(&body).expect_err("unknown question");
        assert_eq!(problems[0].0, "question");
        assert!(
            problems[0]
                .1
                .contains(r#""within_horizon", "next_visit", "balanced""#)
                && problems[0].1.contains("next_order"),
            "{problems:?}"
        );
    }

    #[test]
    fn refresh_is_one_of_three_settings() {
        let mut body =
            json!({"name": "a", "target": {"item_id": "sku-1"}, "refresh": "after_training"});
        assert_eq!(
            AudienceSpec::parse(&body).expect("valid").refresh,
            Refresh::AfterTraining
        );
        body["refresh"] = json!("hourly");
        let problems = AudienceSpec::parse(&body).expect_err("unknown setting");
        assert_eq!(problems[0].0, "refresh");
        assert!(
            problems[0]
                .1
                .contains(r#""manual", "after_training", "daily""#),
            "{problems:?}"
        );
    }

    #[test]
    fn an_event_is_a_name_the_catalog_counts_or_left_out() {
        let mut body = json!({"name": "a", "target": {"item_id": "sku-1"}});
        assert_eq!(AudienceSpec::parse(&body).expect("valid").event, None);
        body["event"] = json!("Order Completed");
        let spec = AudienceSpec::parse(&body).expect("valid");
        assert_eq!(spec.event.as_deref(), Some("Order Completed"));
        body["event"] = json!(3);
        let problems = AudienceSpec::parse(&body).expect_err("not a name");
        assert_eq!(problems[0].0, "event", "{problems:?}");

        let config: crate::catalog::CatalogConfig = serde_json::from_value(json!({"events": [
            {"name": "Order Completed", "product_id_property": "product_id"},
            {"name": "Product Viewed", "product_id_property": "product_id"}]}))
        .expect("config");
        let catalog = crate::item_catalog::CatalogBuilder::new(config).finish();
        assert_eq!(resolve_event(&catalog, None), Ok(None));
        assert_eq!(resolve_event(&catalog, Some("Product Viewed")), Ok(Some(1)));
        let (field, message) =
            resolve_event(&catalog, Some("order completed")).expect_err("names match exactly");
        assert_eq!(field, "event");
        assert!(
            message.contains(r#""Order Completed", "Product Viewed""#),
            "{message}"
        );
    }
}

/// The key Segment Engage gives an audience, used on profiles and in destination messages:
/// the snake_case of its name (`Likely Acme buyers` → `likely_acme_buyers`).
pub fn audience_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() {
            key.extend(c.to_lowercase());
        } else if !key.is_empty() && !key.ends_with('_') {
            key.push('_');
        }
    }
    while key.ends_with('_') {
        key.pop();
    }
    key
}

#[cfg(test)]
mod key_tests {
    use super::audience_key;

    #[test]
    fn audience_keys_are_the_snake_case_of_the_name() {
        assert_eq!(audience_key("Likely Acme buyers"), "likely_acme_buyers");
        assert_eq!(
            audience_key("  Brand 001 fans!! (EU) "),
            "brand_001_fans_eu"
        );
        assert_eq!(audience_key("Déjà vu"), "déjà_vu");
    }
}
