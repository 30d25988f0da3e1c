//! Query parameters as an extractor, parsed by hand so that a bad one gets our JSON error
//! naming it, rather than the framework's plain-text rejection.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use affinity_core::item_rules::ItemRule;

use crate::ApiError;

pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Params(q))
            .map_err(|e| ApiError::invalid_parameter(format!("the query string is malformed: {e}")))
    }
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A whole number in `min..=max`, or `default` when absent.
    pub fn number(
        &self,
        name: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        text.parse::<usize>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "`{name}` must be a whole number from {min} to {max}, got {text:?}"
                ))
            })
    }

    /// `true`/`1` or `false`/`0`, or `default` when absent.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::invalid_parameter(format!(
                "`{name}` must be true or false, got {other:?}"
            ))),
        }
    }

    /// `col:value,col:value` pairs, e.g. `filter=brand:Acme,category:Shoes`: items must hold
    /// each value exactly. A range (`price:below:5`) is refused with where ranges go.
    pub fn pairs(&self, name: &str) -> Result<Vec<(String, String)>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(Vec::new());
        };
        text.split(',')
            .map(|p| {
                let (column, value) = p
                    .split_once(':')
                    .map(|(c, v)| (c.trim().to_string(), v.to_string()))
                    .filter(|(c, v)| !c.is_empty() && !v.is_empty())
                    .ok_or_else(|| {
                        ApiError::invalid_parameter(format!("`{name}` must be column:value pairs separated by commas, e.g. brand:Acme; got {p:?}"))
                    })?;
                if let Some((bound, _)) = range(&value) {
                    return Err(ApiError::invalid_parameter(format!(
                        "`{name}` keeps items holding an exact value (column:value); {p:?} is a range: \
                         to keep only {column} values {}, use exclude={column}:{}:N",
                        if bound == "below" { "below N" } else { "above N" },
                        if bound == "below" { "above" } else { "below" },
                    )));
                }
                Ok((column, value))
            })
            .collect()
    }

    /// Exclusion rules, comma-separated: `column:value` (items holding the value),
    /// `column:below:N` or `column:above:N` (items whose number is below or above N), the
    /// forms of a trait's `exclude` rules (`in`, `below`, `above`).
    pub fn exclusions(&self, name: &str) -> Result<Vec<ItemRule>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(Vec::new());
        };
        let forms = "column:value (exclude items with that value), column:below:N or column:above:N (exclude items whose number is below or above N)";
        text.split(',')
            .map(|p| {
                let (column, rest) = p
                    .split_once(':')
                    .map(|(c, v)| (c.trim().to_string(), v))
                    .filter(|(c, v)| !c.is_empty() && !v.is_empty())
                    .ok_or_else(|| {
                        ApiError::invalid_parameter(format!(
                            "`{name}` takes comma-separated rules: {forms}; got {p:?}"
                        ))
                    })?;
                let mut rule = ItemRule {
                    column,
                    values: Vec::new(),
                    below: None,
                    above: None,
                };
                match range(rest) {
                    Some((bound, number)) => {
                        let n = number.trim().parse::<f64>().ok().filter(|n| n.is_finite()).ok_or_else(|| {
                            ApiError::invalid_parameter(format!(
                                "`{name}`: {bound} needs a number, e.g. {}:{bound}:5; got {p:?}. Accepted: {forms}",
                                rule.column
                            ))
                        })?;
                        if bound == "below" {
                            rule.below = Some(n);
                        } else {
                            rule.above = Some(n);
                        }
                    }
                    None => rule.values.push(rest.to_string()),
                }
                Ok(rule)
            })
            .collect()
    }
}

/// `below:N` or `above:N` split into the bound and the text of N.
fn range(text: &str) -> Option<(&'static str, &str)> {
    let (bound, number) = text.split_once(':')?;
    match bound {
        "below" => Some(("below", number)),
        "above" => Some(("above", number)),
        _ => None,
    }
}
