//! Live answers from the serving model: a user's recommendations (with the reason when they
//! fall back to what is popular) and an item's similar items (by co-engagement, or by shared
//! column values for an item nobody engaged with yet).

use affinity_core::IdKind;
use affinity_core::catalog::value_matches;
use affinity_core::item_catalog::ItemCatalog;
use affinity_core::item_rules::{ItemFilter, ItemRule};
use affinity_model::co_occurrence::SimilarQuery;
use affinity_model::recommend::{RecommendRequest, recommend};
use affinity_store::Profiles;
use serde_json::Value;

use crate::Engine;

const DAY_MS: i64 = 86_400_000;
use crate::catalog::column_of;
use crate::engine::blocking;
use crate::error::{EngineError, Result};
use crate::filters::{self, FilterWarning};
use crate::training::ServingModel;

/// What to recommend to a user.
#[derive(Debug, Clone)]
pub struct RecommendationQuery {
    pub k: usize,
    /// A catalog column, or `item_id` for items themselves.
    pub column: String,
    pub exclude_interacted: bool,
    /// `(column, value)` pairs every recommended item must match.
    pub require: Vec<(String, String)>,
    pub exclude: Vec<ItemRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendations {
    /// Values of the column, best first, with scores.
    pub values: Vec<(Value, f32)>,
    /// Why the answer is the popular fallback, when it is.
    pub fallback_reason: Option<&'static str>,
    /// Filter values no item holds (the usual cause of an empty or unfiltered answer).
    pub warnings: Vec<FilterWarning>,
    pub model_id: i64,
}

/// What to find similar items for.
#[derive(Debug, Clone)]
pub struct SimilarItemsQuery {
    pub k: usize,
    pub lookback_days: Option<u32>,
    pub half_life_days: f64,
    /// Only items whose column holds this value.
    pub filter: Option<(String, String)>,
}

/// How similar items' scores read: both are in [0, 1], higher is closer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimilarScore {
    /// Recency-weighted co-engagement divided by the best match's: the best is 1.0, 0.5
    /// means half as much shared (recent) engagement as the best.
    RelativeCoEngagement,
    /// The share of the item's column values the other item holds too.
    SharedColumnValues,
}

impl SimilarScore {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RelativeCoEngagement => "relative_co_engagement",
            Self::SharedColumnValues => "shared_column_values",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimilarItems {
    pub similar: Vec<(String, f32)>,
    /// Why the answer is the shared-values fallback, when it is: nobody engaged with the
    /// item (in the window), so items sharing its column values answer instead.
    pub fallback_reason: Option<String>,
    pub score: SimilarScore,
    /// A `value` no item holds.
    pub warnings: Vec<FilterWarning>,
    pub model_id: i64,
    /// The window engagement was counted in (Unix ms): from `as_of - lookback_days` (None:
    /// all history) to the model's `as_of`.
    pub window_from: Option<i64>,
    pub as_of: i64,
}

impl Engine {
    /// A user's top `k` values of a column from the serving model.
    pub async fn recommend_for_user(
        &self,
        user_id: String,
        query: RecommendationQuery,
    ) -> Result<Recommendations> {
        let model = self.serving()?;
        let column = column_of(&model.catalog, &query.column)?;
        let store = self.store.clone();
        blocking(move || {
            let warnings = check_filters(&model.catalog, &query.require, &query.exclude)?;
            let profile = store.profile(IdKind::UserId, &user_id)?;
            let filter = ItemFilter::new(&model.catalog, &query.require, &query.exclude)
                .map_err(EngineError::InvalidParameter)?;
            let user = profile
                .as_ref()
                .and_then(|p| model.catalog.user_index(p.id));
            let allow = |i: u32| filter.allows(i);
            let recs = recommend(
                &model.model,
                &model.catalog,
                &RecommendRequest {
                    user,
                    k: query.k,
                    column,
                    exclude_interacted: query.exclude_interacted,
                    allow: &allow,
                },
            )?;
            let fallback_reason = match (&profile, user, recs.fallback) {
                (_, _, false) => None,
                (None, _, true) => Some("unknown user: showing what is popular"),
                (Some(_), None, true) => {
                    Some("no interactions with the catalog yet: showing what is popular")
                }
                (Some(_), Some(_), true) => {
                    Some("no interactions in the model's window: showing what is popular")
                }
            };
            Ok(Recommendations {
                values: recs.values,
                fallback_reason,
                warnings,
                model_id: model.record.id,
            })
        })
        .await
    }

    /// Items engaged with by the same people as `item_id`, weighted to recent activity.
    pub async fn similar_items(
        &self,
        item_id: String,
        query: SimilarItemsQuery,
    ) -> Result<SimilarItems> {
        let model = self.serving()?;
        let catalog = &model.catalog;
        let item = catalog.item_index(&item_id).ok_or_else(|| {
            EngineError::NotFound(format!(
                "no item {item_id:?} in the catalog (as of the serving model)"
            ))
        })?;
        let filter = match &query.filter {
            Some((c, v)) => Some((
                column_of(catalog, c)?.ok_or_else(|| {
                    EngineError::InvalidParameter(
                        "`column` must be a catalog column, not item_id".to_string(),
                    )
                })?,
                v.clone(),
            )),
            None => None,
        };
        let warnings: Vec<FilterWarning> = query
            .filter
            .as_ref()
            .and_then(|(c, v)| filters::unknown_value(catalog, "value", c, v))
            .into_iter()
            .collect();
        blocking(move || {
            let catalog = &model.catalog;
            let allow = |j: u32| {
                filter.as_ref().is_none_or(|(c, v)| {
                    catalog.values[j as usize][*c]
                        .as_ref()
                        .is_some_and(|x| value_matches(x, v))
                })
            };
            let (list, fallback_reason, score) = if model
                .co_occurrence
                .has_interactions(item, query.lookback_days)
            {
                let q = SimilarQuery {
                    k: query.k,
                    lookback_days: query.lookback_days,
                    half_life_days: query.half_life_days,
                };
                let list = relative_to_best(model.co_occurrence.similar(item, &q, &allow));
                (list, None, SimilarScore::RelativeCoEngagement)
            } else {
                let list = shared_values(&model, item, query.k, &allow);
                let nobody = match query.lookback_days {
                    Some(d) => format!(
                        "nobody engaged with {item_id:?} in the {d} days before the model's data ends"
                    ),
                    None => format!("nobody engaged with {item_id:?} yet"),
                };
                let instead = if list.is_empty() {
                    "and no other item shares any of its column values, so there is nothing to show"
                        .to_string()
                } else {
                    "showing the items sharing most of its column values (brand, category, …), \
                     the more popular first"
                        .to_string()
                };
                (
                    list,
                    Some(format!("{nobody}: {instead}")),
                    SimilarScore::SharedColumnValues,
                )
            };
            Ok(SimilarItems {
                similar: list
                    .into_iter()
                    .map(|(j, s)| (catalog.items[j as usize].clone(), s))
                    .collect(),
                fallback_reason,
                score,
                warnings,
                model_id: model.record.id,
                window_from: query
                    .lookback_days
                    .map(|d| catalog.as_of - i64::from(d) * DAY_MS),
                as_of: catalog.as_of,
            })
        })
        .await
    }
}

/// Co-engagement scores divided by the best one. The raw figures are recency-weighted sums
/// whose size depends on how old the data is (`1e-8` for a catalog whose interactions are
/// a few years before the model's "now"), which tells a reader nothing; the ratio to the best
/// keeps the order and reads the same on any data.
fn relative_to_best(list: Vec<(u32, f32)>) -> Vec<(u32, f32)> {
    let best = list.first().map_or(0.0, |&(_, s)| s);
    // A NaN or zero best (no shared engagement at all) leaves the list as it is.
    if best.is_nan() || best <= 0.0 {
        return list;
    }
    list.into_iter()
        .map(|(j, s)| (j, (s / best).clamp(0.0, 1.0)))
        .collect()
}

/// Checks recommendations' filters: unknown columns and impossible ranges are refused,
/// naming the parameter; values no item holds are returned as warnings.
fn check_filters(
    catalog: &ItemCatalog,
    require: &[(String, String)],
    exclude: &[ItemRule],
) -> Result<Vec<FilterWarning>> {
    let columns = &catalog.column_names;
    let mut warnings = Vec::new();
    for (column, value) in require {
        if catalog.column(column).is_none() {
            return Err(EngineError::InvalidParameter(format!(
                "`filter`: unknown column {column:?}; columns: {}",
                columns.join(", ")
            )));
        }
        warnings.extend(filters::unknown_value(catalog, "filter", column, value));
    }
    for rule in exclude {
        if let Some(p) = rule
            .problem(columns)
            .or_else(|| filters::range_problem(catalog, rule))
        {
            return Err(EngineError::InvalidParameter(format!("`exclude`: {p}")));
        }
        for value in &rule.values {
            warnings.extend(filters::unknown_value(
                catalog,
                "exclude",
                &rule.column,
                value,
            ));
        }
    }
    // In a query string each bound is its own rule (`price:below:5,price:above:50`): checked
    // together, as one trait rule's `below` and `above` are.
    for rule in exclude {
        let same = || exclude.iter().filter(|r| r.column == rule.column);
        let combined = ItemRule {
            column: rule.column.clone(),
            values: Vec::new(),
            below: same().filter_map(|r| r.below).reduce(f64::max),
            above: same().filter_map(|r| r.above).reduce(f64::min),
        };
        if let Some(p) = filters::range_problem(catalog, &combined) {
            return Err(EngineError::InvalidParameter(format!("`exclude`: {p}")));
        }
    }
    Ok(warnings)
}

/// For an item nobody engaged with (yet): the items sharing most of its column values, the
/// more popular first. Scores are the share of its values they share.
fn shared_values(
    model: &ServingModel,
    item: u32,
    k: usize,
    allow: &dyn Fn(u32) -> bool,
) -> Vec<(u32, f32)> {
    let catalog = &model.catalog;
    let mine = &catalog.values[item as usize];
    let total = mine.iter().filter(|v| v.is_some()).count().max(1) as f32;
    let popularity = model.model.fallback.scores();
    let mut out: Vec<(u32, f32, f32)> = (0..catalog.items.len() as u32)
        .filter(|&j| j != item && allow(j))
        .filter_map(|j| {
            let shared = mine
                .iter()
                .zip(&catalog.values[j as usize])
                .filter(|(a, b)| a.is_some() && a == b)
                .count() as f32;
            (shared > 0.0).then(|| {
                (
                    j,
                    shared / total,
                    popularity.get(j as usize).copied().unwrap_or(0.0),
                )
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(b.2.total_cmp(&a.2))
            .then(a.0.cmp(&b.0))
    });
    out.into_iter().take(k).map(|(j, s, _)| (j, s)).collect()
}
