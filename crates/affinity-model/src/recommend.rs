//! Answers to "which items (or brands, categories…) does this person most likely want next":
//! the served model's item scores, optionally filtered, then aggregated to a catalog column.
//! Users the model cannot personalize for get the popularity fallback, marked as such.

use affinity_core::item_catalog::ItemCatalog;
use serde_json::Value;

use crate::error::Result;
use crate::recommender::Recommender;
use crate::training::TrainedModel;

pub struct RecommendRequest<'a> {
    /// The user's index in the catalog, if the catalog knows them.
    pub user: Option<u32>,
    pub k: usize,
    /// None: the product id itself; Some(c): values of catalog column `c`.
    pub column: Option<usize>,
    /// Leave out items (or column values) the user already interacted with.
    pub exclude_interacted: bool,
    /// Items allowed at all (filters and exclusion rules), as decided by the caller.
    pub allow: &'a (dyn Fn(u32) -> bool + Sync),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendations {
    /// Best first; ties broken by the value's text so pages and reruns agree.
    pub values: Vec<(Value, f32)>,
    /// True when the user could not be personalized for (no history in the model).
    pub fallback: bool,
}

/// The items a user interacted with, as the model saw them.
pub fn interacted(model: &TrainedModel, user: Option<u32>) -> Vec<u32> {
    user.and_then(|u| model.data.user_items(u).ok())
        .map(|r| r.ids.to_vec())
        .unwrap_or_default()
}

pub fn recommend(
    model: &TrainedModel,
    catalog: &ItemCatalog,
    request: &RecommendRequest<'_>,
) -> Result<Recommendations> {
    let personal = personal(model, request.user);
    let scores = match personal {
        Some(u) => model.recommender.score_items(u)?,
        None => model.fallback.score_items(0)?,
    };
    rank(model, catalog, request, &scores, personal.is_none())
}

/// The user the model can personalize for: known and with interactions in its data.
pub fn personal(model: &TrainedModel, user: Option<u32>) -> Option<u32> {
    user.filter(|&u| model.data.user_items(u).is_ok_and(|r| !r.is_empty()))
}

/// Recommendations for many users at once (a trait over every profile): personalized users
/// are scored in batches through [`Recommender::score_users`], the others get the fallback.
/// Each result is what [`recommend`] gives for that user alone.
pub fn recommend_many(
    model: &TrainedModel,
    catalog: &ItemCatalog,
    users: &[u32],
    request: &RecommendRequest<'_>,
) -> Result<Vec<Recommendations>> {
    let fallback = model.fallback.score_items(0)?;
    let batch: Vec<u32> = users
        .iter()
        .copied()
        .filter(|&u| personal(model, Some(u)).is_some())
        .collect();
    let scores = model.recommender.score_users(&batch)?;
    let n = model.recommender.n_items().max(1);
    let mut rows = batch.iter().copied().zip(scores.chunks_exact(n)).peekable();
    users
        .iter()
        .map(|&u| {
            let single = RecommendRequest {
                user: Some(u),
                ..*request
            };
            match rows.next_if(|(p, _)| *p == u) {
                Some((_, row)) => rank(model, catalog, &single, row, false),
                None => rank(model, catalog, &single, &fallback, true),
            }
        })
        .collect()
}

/// Orders item scores into the answer: exclusions, filters, column aggregation, top k.
fn rank(
    model: &TrainedModel,
    catalog: &ItemCatalog,
    request: &RecommendRequest<'_>,
    scores: &[f32],
    fallback: bool,
) -> Result<Recommendations> {
    let seen = interacted(model, request.user);
    let mut excluded = vec![false; scores.len()];
    if request.exclude_interacted {
        for &i in &seen {
            if let Some(e) = excluded.get_mut(i as usize) {
                *e = true;
            }
        }
    }
    let candidates = scores
        .iter()
        .enumerate()
        .filter(|&(i, s)| s.is_finite() && !excluded[i] && (request.allow)(i as u32))
        .map(|(i, &s)| (i as u32, s));
    let values = match request.column {
        None => {
            let order = |a: &(u32, f32), b: &(u32, f32)| {
                b.1.total_cmp(&a.1)
                    .then_with(|| catalog.items[a.0 as usize].cmp(&catalog.items[b.0 as usize]))
            };
            best_k(candidates.collect(), request.k, order)
                .into_iter()
                .map(|(i, s)| (Value::String(catalog.items[i as usize].clone()), s))
                .collect()
        }
        Some(column) => {
            // A value scores as its best allowed item: "contains the thing you most want".
            // Values are interned once per catalog, so this is array work, not hashing.
            let index = catalog.column_index(column);
            let mut best = vec![f32::NEG_INFINITY; index.values.len()];
            let mut present = vec![false; index.values.len()];
            for (i, s) in candidates {
                for &v in &index.of_item[i as usize] {
                    present[v as usize] = true;
                    best[v as usize] = best[v as usize].max(s);
                }
            }
            if request.exclude_interacted {
                for &i in &seen {
                    for &v in index.of_item.get(i as usize).into_iter().flatten() {
                        present[v as usize] = false;
                    }
                }
            }
            let all: Vec<(usize, f32)> = (0..best.len())
                .filter(|&v| present[v])
                .map(|v| (v, best[v]))
                .collect();
            let order = |a: &(usize, f32), b: &(usize, f32)| {
                b.1.total_cmp(&a.1)
                    .then_with(|| index.texts[a.0].cmp(&index.texts[b.0]))
            };
            best_k(all, request.k, order)
                .into_iter()
                .map(|(v, s)| (index.values[v].clone(), s))
                .collect()
        }
    };
    Ok(Recommendations { values, fallback })
}

/// The first `k` of `all` in `order`: the head is selected in linear time, then only it is
/// sorted.
fn best_k<T>(mut all: Vec<T>, k: usize, order: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    if k > 0 && all.len() > k {
        all.select_nth_unstable_by(k - 1, &order);
    }
    all.truncate(k);
    all.sort_by(order);
    all
}
