//! Live answers from the serving model: a user's recommendations (with the reason when they
//! fall back to what is popular) and an item's similar items (by co-engagement, or by shared
//! column values for an item nobody engaged with yet).

use affinity_core::IdKind;
use affinity_core::catalog::value_matches;
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

#[derive(Debug, Clone, PartialEq)]
pub struct SimilarItems {
    pub similar: Vec<(String, f32)>,
    /// Nobody engaged with the item (in the window): items sharing its column values instead.
    pub fallback: bool,
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
                        "filter on a catalog column, not item_id".to_string(),
                    )
                })?,
                v.clone(),
            )),
            None => None,
        };
        blocking(move || {
            let catalog = &model.catalog;
            let allow = |j: u32| {
                filter.as_ref().is_none_or(|(c, v)| {
                    catalog.values[j as usize][*c]
                        .as_ref()
                        .is_some_and(|x| value_matches(x, v))
                })
            };
            let (list, fallback) = if model
                .co_occurrence
                .has_interactions(item, query.lookback_days)
            {
                let q = SimilarQuery {
                    k: query.k,
                    lookback_days: query.lookback_days,
                    half_life_days: query.half_life_days,
                };
                (model.co_occurrence.similar(item, &q, &allow), false)
            } else {
                (shared_values(&model, item, query.k, &allow), true)
            };
            Ok(SimilarItems {
                similar: list
                    .into_iter()
                    .map(|(j, s)| (catalog.items[j as usize].clone(), s))
                    .collect(),
                fallback,
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
