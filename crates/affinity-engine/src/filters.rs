//! Filters on catalog columns, checked against the catalog with one set of rules wherever they
//! come from: traits' exclusion rules, recommendations' `filter` and `exclude`, similar items'
//! `column`/`value`. A malformed or impossible rule is refused; a value no item holds is
//! answered (the list is simply empty, or nothing is excluded) with a warning naming close
//! values, since values match exactly and case-sensitively and a typo is the usual cause.

use serde_json::Value;

use affinity_core::audience::close_matches;
use affinity_core::item_catalog::ItemCatalog;
use affinity_core::item_rules::ItemRule;

/// A filter value no item of the catalog holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterWarning {
    /// The request's parameter or field (`filter`, `exclude`, `value`).
    pub parameter: String,
    pub column: String,
    pub value: String,
    pub message: String,
    /// Values of the column the caller may have meant (same letters in another case, or
    /// sharing a prefix).
    pub suggestions: Vec<String>,
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Array(a) => a.iter().find_map(number),
        _ => None,
    }
}

/// What makes a `below`/`above` rule impossible on this catalog: the column holds no number
/// (it would exclude nothing), or the two bounds together exclude every item.
pub fn range_problem(catalog: &ItemCatalog, rule: &ItemRule) -> Option<String> {
    if rule.below.is_none() && rule.above.is_none() {
        return None;
    }
    let column = catalog.column(&rule.column)?;
    if let (Some(b), Some(a)) = (rule.below, rule.above)
        && b > a
    {
        return Some(format!(
            "below {b} and above {a} together exclude every item with a {}; to keep a range, \
             give below as its low end and above as its high end",
            rule.column
        ));
    }
    let mut example = None;
    for row in &catalog.values {
        if let Some(v) = &row[column] {
            if number(v).is_some() {
                return None;
            }
            example.get_or_insert(v);
        }
    }
    Some(match example {
        Some(v) => format!(
            "below and above compare numbers, and no item has a number in {:?} (e.g. {v}); \
             exclude its values by name instead",
            rule.column
        ),
        None => format!(
            "no item has a value in {:?} yet, so below and above would exclude nothing",
            rule.column
        ),
    })
}

/// A warning when no item's `column` holds `value` (`None` when some item does, or the
/// column is not in the catalog: that is an error the caller reports).
pub fn unknown_value(
    catalog: &ItemCatalog,
    parameter: &str,
    column: &str,
    value: &str,
) -> Option<FilterWarning> {
    let c = catalog.column(column)?;
    let index = catalog.column_index(c);
    if index
        .values
        .iter()
        .any(|v| affinity_core::catalog::value_matches(v, value))
    {
        return None;
    }
    let suggestions = close_matches(index.texts.iter().map(String::as_str), value);
    let hint = if suggestions.is_empty() {
        format!("see GET /api/v1/catalog/columns/{column}/values")
    } else {
        format!(
            "did you mean {}?",
            suggestions
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Some(FilterWarning {
        parameter: parameter.to_string(),
        column: column.to_string(),
        value: value.to_string(),
        message: format!(
            "no item has {column} = {value:?} (values match exactly and case-sensitively); {hint}"
        ),
        suggestions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use affinity_core::catalog::CatalogConfig;
    use affinity_core::item_catalog::CatalogBuilder;
    use serde_json::json;

    fn catalog() -> ItemCatalog {
        let config: CatalogConfig = serde_json::from_value(json!({
            "events": [{"name": "Order Completed", "product_id_property": "product_id"}],
            "columns": [
                {"name": "brand", "properties": {"Order Completed": "brand"}},
                {"name": "price", "properties": {"Order Completed": "price"}}
            ]
        }))
        .expect("config");
        let mut b = CatalogBuilder::new(config);
        b.add_event(
            1,
            0,
            1,
            &json!({"product_id": "a", "brand": "Acme", "price": 3}),
        );
        b.add_event(
            2,
            0,
            2,
            &json!({"product_id": "b", "brand": "Globex", "price": "12.5"}),
        );
        b.finish()
    }

    fn rule(column: &str, below: Option<f64>, above: Option<f64>) -> ItemRule {
        ItemRule {
            column: column.into(),
            values: vec![],
            below,
            above,
        }
    }

    #[test]
    fn ranges_need_numbers_and_must_leave_something() {
        let c = catalog();
        assert_eq!(range_problem(&c, &rule("price", Some(5.0), None)), None);
        assert_eq!(
            range_problem(&c, &rule("price", Some(2.0), Some(20.0))),
            None
        );
        let p = range_problem(&c, &rule("brand", Some(5.0), None)).expect("no numbers");
        assert!(p.contains("no item has a number in \"brand\""), "{p}");
        let p = range_problem(&c, &rule("price", Some(20.0), Some(2.0))).expect("everything");
        assert!(p.contains("exclude every item"), "{p}");
    }

    #[test]
    fn unknown_values_warn_with_close_matches() {
        let c = catalog();
        assert_eq!(unknown_value(&c, "filter", "brand", "Acme"), None);
        let w = unknown_value(&c, "filter", "brand", "acme").expect("warning");
        assert_eq!(w.suggestions, vec!["Acme".to_string()]);
        assert!(
            w.message.contains("did you mean \"Acme\"?"),
            "{}",
            w.message
        );
        let w = unknown_value(&c, "exclude", "brand", "Initech").expect("warning");
        assert!(w.suggestions.is_empty());
        assert!(w.message.contains("/api/v1/catalog/columns/brand/values"));
    }
}
