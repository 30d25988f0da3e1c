//! Answers to "which items (or brands, categories…) does this person most likely want next":
//! the served model's item scores, optionally filtered, then aggregated to a catalog column.
//! Users the model cannot personalize for get the popularity fallback, marked as such.

use affinity_core::item_catalog::{ColumnIndex, ItemCatalog};
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::recommender::Recommender;
use crate::top_k::{Entry, TopK};
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
    rank_users(model, catalog, &[request.user], request)?
        .pop()
        .ok_or(ModelError::DimensionMismatch {
            what: "recommendation lists for one request",
            expected: 1,
            got: 0,
        })
}

/// The user the model can personalize for: known and with interactions in its data.
pub fn personal(model: &TrainedModel, user: Option<u32>) -> Option<u32> {
    user.filter(|&u| model.data.user_items(u).is_ok_and(|r| !r.is_empty()))
}

/// Recommendations for many users at once (a trait over every profile): personalized users
/// are scored together through [`Recommender::score_users_with`], which streams blocks of
/// scores into each user's running top k; the others get the fallback. Each result is
/// exactly what [`recommend`] gives for that user alone (`request.user` is ignored).
pub fn recommend_many(
    model: &TrainedModel,
    catalog: &ItemCatalog,
    users: &[u32],
    request: &RecommendRequest<'_>,
) -> Result<Vec<Recommendations>> {
    let users: Vec<Option<u32>> = users.iter().map(|&u| Some(u)).collect();
    rank_users(model, catalog, &users, request)
}

/// One list per entry of `users`, in order (`None`: no user, the fallback).
fn rank_users(
    model: &TrainedModel,
    catalog: &ItemCatalog,
    users: &[Option<u32>],
    request: &RecommendRequest<'_>,
) -> Result<Vec<Recommendations>> {
    let ranker = Ranker::new(model, catalog, request);
    let mut selections: Vec<Selection> = users.iter().map(|&u| ranker.start(u)).collect();
    let mut batch = Vec::new();
    let mut batch_rows = Vec::new();
    let mut fallback_rows = Vec::new();
    for (row, &user) in users.iter().enumerate() {
        match personal(model, user) {
            Some(u) => {
                batch.push(u);
                batch_rows.push(row);
            }
            None => fallback_rows.push(row),
        }
    }
    model
        .recommender
        .score_users_with(&batch, &mut |row, start, scores| {
            ranker.feed(&mut selections[batch_rows[row]], start, scores)
        })?;
    let mut is_fallback = vec![false; users.len()];
    if !fallback_rows.is_empty() {
        let fallback = model.fallback.score_items(0)?;
        for &row in &fallback_rows {
            ranker.feed(&mut selections[row], 0, &fallback);
            is_fallback[row] = true;
        }
    }
    Ok(selections
        .into_iter()
        .zip(is_fallback)
        .map(|(s, fallback)| ranker.finish(s, fallback))
        .collect())
}

/// What one request's ranking needs besides the scores: shared by every user it ranks.
struct Ranker<'a> {
    model: &'a TrainedModel,
    catalog: &'a ItemCatalog,
    request: &'a RecommendRequest<'a>,
    /// `Some` when answering with a column's values instead of items.
    column: Option<&'a ColumnIndex>,
    /// The tie-break of the keys ranked (items or column values), by text.
    ranks: &'a [u32],
}

/// One user's ranking in progress.
struct Selection {
    /// The user's interacted items (ascending), when they are to be left out.
    seen: Vec<u32>,
    /// Column values of those items, ascending: a value the user has is not recommended.
    seen_values: Vec<u32>,
    top: TopK,
}

impl<'a> Ranker<'a> {
    fn new(
        model: &'a TrainedModel,
        catalog: &'a ItemCatalog,
        request: &'a RecommendRequest<'a>,
    ) -> Ranker<'a> {
        let column = request.column.map(|c| catalog.column_index(c));
        Ranker {
            model,
            catalog,
            request,
            column,
            ranks: column.map_or_else(|| catalog.item_ranks(), |index| &index.ranks),
        }
    }

    fn start(&self, user: Option<u32>) -> Selection {
        let mut seen = if self.request.exclude_interacted {
            interacted(self.model, user)
        } else {
            Vec::new()
        };
        seen.sort_unstable();
        let mut seen_values: Vec<u32> = match self.column {
            Some(index) => seen
                .iter()
                .flat_map(|&i| index.of_item.get(i as usize).into_iter().flatten())
                .copied()
                .collect(),
            None => Vec::new(),
        };
        seen_values.sort_unstable();
        seen_values.dedup();
        Selection {
            seen,
            seen_values,
            top: TopK::new(self.request.k),
        }
    }

    /// Offers the scores of items `start..start + scores.len()`. Chunks whose best score is
    /// below the user's current k-th best are skipped with one comparison: after the first
    /// few hundred items that is nearly all of them.
    fn feed(&self, selection: &mut Selection, start: usize, scores: &[f32]) {
        const CHUNK: usize = 16;
        for (c, chunk) in scores.chunks(CHUNK).enumerate() {
            // `>` rather than `max` so NaN is ignored and the loop vectorizes.
            let best = chunk
                .iter()
                .fold(f32::NEG_INFINITY, |m, &s| if s > m { s } else { m });
            if best < selection.top.floor() || best == f32::NEG_INFINITY {
                continue;
            }
            for (j, &s) in chunk.iter().enumerate() {
                if s >= selection.top.floor() && s.is_finite() {
                    self.consider(selection, (start + c * CHUNK + j) as u32, s);
                }
            }
        }
    }

    fn consider(&self, selection: &mut Selection, item: u32, score: f32) {
        if selection.seen.binary_search(&item).is_ok() || !(self.request.allow)(item) {
            return;
        }
        match self.column {
            None => selection.top.offer(Entry {
                key: item,
                score,
                rank: self.ranks[item as usize],
            }),
            // A value scores as its best allowed item: "contains the thing you most want".
            Some(index) => {
                for &v in index.of_item.get(item as usize).into_iter().flatten() {
                    if selection.seen_values.binary_search(&v).is_err() {
                        selection.top.offer_max(Entry {
                            key: v,
                            score,
                            rank: self.ranks[v as usize],
                        });
                    }
                }
            }
        }
    }

    fn finish(&self, selection: Selection, fallback: bool) -> Recommendations {
        let values = selection
            .top
            .into_sorted()
            .into_iter()
            .map(|e| {
                let value = match self.column {
                    None => Value::String(self.catalog.items[e.key as usize].clone()),
                    Some(index) => index.values[e.key as usize].clone(),
                };
                (value, e.score)
            })
            .collect();
        Recommendations { values, fallback }
    }
}
