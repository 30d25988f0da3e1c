//! What an audience ranks users by. A target is looked up in the newest built catalog, so
//! items and columns from an upload are targetable at once (no retraining), and mapped by id
//! to the serving model's catalog:
//!
//! - some of its items were engaged with: the target's own interactions (`interactions`);
//! - it exists but nobody engaged with it yet (a new or only uploaded item, a new value):
//!   users' propensity toward the engaged items sharing its columns (`columns`, through
//!   `column_similarity`). The same learned propensity machinery ranks them, so a user
//!   who keeps buying that brand's boots ranks first, and the backtest stays honest about
//!   the similar items; zero-evidence users are not added to fill the size;
//! - no item holds it, or none shares anything with an engaged item: nothing to rank by
//!   (`none`), an empty audience with the reason.
//!
//! Why the propensity machinery rather than the similar-items list
//! (`recommendations::shared_values`): that list ranks items, not users; an audience needs
//! users ranked by how likely they are to engage, which is what the propensity model learns,
//! and its estimate then says how well such a ranking did on the store's own past.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use affinity_core::audience::{Target, UnseenTarget, resolve_target, unseen_target};
use affinity_core::catalog::value_matches;
use affinity_core::column_similarity::{
    BAND_RATIO, ColumnValues, SharedValue, alike_by_columns, engagement_counts, values_of,
};
use affinity_core::item_catalog::ItemCatalog;

use crate::Engine;
use crate::engine::blocking;
use crate::error::{EngineError, Invalid, Result};
use crate::training::ServingModel;

/// Similar items wanted before likeness is relaxed to the next tier: fewer and the backtest
/// rarely holds enough users who engaged with them to learn from.
pub const MIN_SIMILAR_ITEMS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BasisKind {
    /// The target's own interactions.
    #[serde(rename = "interactions")]
    Interactions,
    /// Propensity toward the engaged items sharing the target's column values.
    #[serde(rename = "columns")]
    Columns,
    /// Nothing to rank users by: an empty audience.
    #[serde(rename = "none")]
    Nothing,
}

impl BasisKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactions => "interactions",
            Self::Columns => "columns",
            Self::Nothing => "none",
        }
    }
}

/// A column value the similar items share with the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedColumn {
    pub column: String,
    pub value: String,
    /// Matched by band (within 25%) rather than exactly.
    pub banded: bool,
    /// Similar items holding it.
    pub items: usize,
}

impl From<SharedValue> for SharedColumn {
    fn from(v: SharedValue) -> Self {
        Self {
            column: v.column,
            value: v.value,
            banded: v.banded,
            items: v.items,
        }
    }
}

/// What an audience's ranking was computed from, stored in its estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingBasis {
    pub basis: BasisKind,
    /// Why, when the basis is not the target's own interactions.
    pub reason: Option<String>,
    /// The values the similar items share with the target (basis `columns`).
    #[serde(default)]
    pub shared: Vec<SharedColumn>,
    /// The engaged items users were ranked toward (basis `columns`).
    #[serde(default)]
    pub similar_items: usize,
}

/// A target resolved for scoring.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTarget {
    /// Items of the serving model's catalog to rank users toward: the target's own, or the
    /// similar ones; empty for basis `none`.
    pub items: Vec<u32>,
    /// Items holding the target in the newest catalog.
    pub target_items: usize,
    pub basis: RankingBasis,
    /// Targets of the same kind, each as items of the serving model's catalog, whose rows
    /// train the audience's learners with the target's own (basis `interactions` only).
    pub related: Vec<Vec<u32>>,
}

/// Related targets at most: their users' rows train an audience's learners beside the
/// target's own (the model's `propensity/lent_rows.rs` says why). The most engaged first;
/// 15 is every category and brand of the repeat-purchase benchmark's top ones, and the
/// model bounds the rows they lend on a large store.
const MAX_RELATED: usize = 15;

/// The targets of the same kind as `target` (whose items are `own`, sorted), most engaged
/// first: the other values of its column, or for an item the other items. None engaged is
/// left out.
fn related_targets(
    model: &ItemCatalog,
    target: &Target,
    own: &[u32],
    counts: &[u64],
) -> Vec<Vec<u32>> {
    let mut candidates: Vec<(u64, u32, Vec<u32>)> = match target {
        Target::Item { .. } => (0..model.items.len() as u32)
            .filter(|&i| counts[i as usize] > 0 && own.binary_search(&i).is_err())
            .map(|i| (counts[i as usize], model.item_ranks()[i as usize], vec![i]))
            .collect(),
        Target::Column { column, value } => {
            let Some(c) = model.column(column) else {
                return Vec::new();
            };
            let index = model.column_index(c);
            let mut items = vec![Vec::new(); index.values.len()];
            for (item, values) in index.of_item.iter().enumerate() {
                for &v in values {
                    items[v as usize].push(item as u32);
                }
            }
            // The target's own value is left out by value, not by its items: `own` may come
            // from a newer catalog, where an item's value changed.
            items
                .into_iter()
                .enumerate()
                .filter(|(v, items)| {
                    !value_matches(&index.values[*v], value) && items.as_slice() != own
                })
                .map(|(v, items)| {
                    let count = items.iter().map(|&i| counts[i as usize]).sum();
                    (count, index.ranks[v], items)
                })
                .collect()
        }
    };
    candidates.retain(|c| c.0 > 0);
    candidates.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    candidates
        .into_iter()
        .take(MAX_RELATED)
        .map(|c| c.2)
        .collect()
}

fn describe(target: &Target, n: usize) -> String {
    match target {
        Target::Item { item_id } => format!("item {item_id:?}"),
        Target::Column { column, value } => {
            format!("the {n} item(s) with {column} = {value:?}")
        }
    }
}

fn shared_text(shared: &[SharedColumn]) -> String {
    shared
        .iter()
        .map(|s| {
            if s.banded {
                format!(
                    "{} within {:.0}% of {}",
                    s.column,
                    (BAND_RATIO - 1.0) * 100.0,
                    s.value
                )
            } else {
                format!("{} = {:?}", s.column, s.value)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ids of the items holding `target` in `newest` (or, for a column only the model's
/// catalog still has, in that one). Refused only for a column neither has.
fn target_ids(model: &ItemCatalog, newest: &ItemCatalog, target: &Target) -> Result<Vec<String>> {
    let ids = |c: &ItemCatalog, items: Vec<u32>| -> Vec<String> {
        items
            .into_iter()
            .map(|i| c.items[i as usize].clone())
            .collect()
    };
    match resolve_target(newest, target) {
        Ok(items) => Ok(ids(newest, items)),
        Err(problem) => match resolve_target(model, target) {
            Ok(items) => Ok(ids(model, items)),
            Err(_) => Err(EngineError::invalid(Invalid::Audience, [problem])),
        },
    }
}

/// Resolves `target` against the newest built catalog and maps it to the serving model's
/// (`model`), choosing the basis of its ranking. Call from a blocking thread: it reads every
/// interaction once.
pub fn resolve(
    model: &ItemCatalog,
    newest: &ItemCatalog,
    target: &Target,
) -> Result<ResolvedTarget> {
    let ids = target_ids(model, newest, target)?;
    let mut own: Vec<u32> = ids.iter().filter_map(|id| model.item_index(id)).collect();
    own.sort_unstable();
    own.dedup();
    let counts = engagement_counts(model);
    let engaged: Vec<bool> = counts.iter().map(|&c| c > 0).collect();
    if own.iter().any(|&i| engaged[i as usize]) {
        return Ok(ResolvedTarget {
            related: related_targets(model, target, &own, &counts),
            items: own,
            target_items: ids.len(),
            basis: RankingBasis {
                basis: BasisKind::Interactions,
                reason: None,
                shared: Vec::new(),
                similar_items: 0,
            },
        });
    }
    let nothing = |reason: String| ResolvedTarget {
        related: Vec::new(),
        items: Vec::new(),
        target_items: ids.len(),
        basis: RankingBasis {
            basis: BasisKind::Nothing,
            reason: Some(reason),
            shared: Vec::new(),
            similar_items: 0,
        },
    };
    let later = "the audience is empty until it is: refresh it after an upload \
                 (POST /api/v1/catalog/items) or once people engage with it";
    if ids.is_empty() {
        let what = match target {
            Target::Item { item_id } => format!("no item {item_id:?} is in the catalog yet"),
            Target::Column { column, value } => format!("no item has {column} = {value:?} yet"),
        };
        return Ok(nothing(format!(
            "{what}, so there is nobody to rank for it and no column to compare; {later}"
        )));
    }
    let skip = match target {
        Target::Column { column, .. } => Some(column.as_str()),
        Target::Item { .. } => None,
    };
    let wanted: Vec<ColumnValues> = ids
        .iter()
        .filter_map(|id| {
            newest
                .item_index(id)
                .map(|i| values_of(newest, i, skip))
                .or_else(|| model.item_index(id).map(|i| values_of(model, i, skip)))
        })
        .collect();
    let alike = alike_by_columns(model, &wanted, &engaged, MIN_SIMILAR_ITEMS);
    let what = describe(target, ids.len());
    if alike.items.is_empty() {
        return Ok(nothing(format!(
            "nobody has engaged with {what} yet, and no engaged item shares any of its column \
             values, so there is nothing to rank users by; {later}"
        )));
    }
    let shared: Vec<SharedColumn> = alike.shared.into_iter().map(SharedColumn::from).collect();
    let reason = format!(
        "nobody has engaged with {what} yet: users are ranked by their propensity toward the {} \
         engaged item(s) sharing its {}; the expected figures are those of these similar items",
        alike.items.len(),
        shared_text(&shared)
    );
    Ok(ResolvedTarget {
        related: Vec::new(),
        target_items: ids.len(),
        basis: RankingBasis {
            basis: BasisKind::Columns,
            reason: Some(reason),
            shared,
            similar_items: alike.items.len(),
        },
        items: alike.items,
    })
}

/// The warning for a target no item of `newest` holds yet (with close values), or a 422 for
/// a column no catalog has.
pub fn check(
    model: Option<&ItemCatalog>,
    newest: &ItemCatalog,
    target: &Target,
) -> Result<Option<UnseenTarget>> {
    match resolve_target(newest, target) {
        Ok(_) => Ok(unseen_target(newest, target)),
        Err(problem) => match model.map(|m| resolve_target(m, target)) {
            Some(Ok(items)) if !items.is_empty() => Ok(None),
            Some(Ok(_)) => Ok(model.and_then(|m| unseen_target(m, target))),
            _ => Err(EngineError::invalid(Invalid::Audience, [problem])),
        },
    }
}

impl Engine {
    /// `target` resolved for the serving `model` against the newest built catalog (the
    /// model's own when no build is held), on the blocking pool.
    pub(crate) async fn resolve_target(
        &self,
        model: &Arc<ServingModel>,
        target: Target,
    ) -> Result<ResolvedTarget> {
        let newest = self.catalog.snapshot().catalog;
        let model = model.clone();
        blocking(move || {
            let newest = newest.as_deref().unwrap_or(&model.catalog);
            resolve(&model.catalog, newest, &target)
        })
        .await
    }

    /// Checks the event an audience would predict against the serving model's catalog (a 422
    /// for one it does not count); without a model there is nothing to check it against, and
    /// creating the audience says so.
    pub async fn check_audience_event(&self, event: Option<&str>) -> Result<()> {
        match self.serving() {
            Ok(model) => crate::audiences::event_index(&model, event).map(|_| ()),
            Err(_) => Ok(()),
        }
    }

    /// Checks an audience target before it is created: a 422 for a column no catalog has, a
    /// warning with close values for a value or item no item holds yet (allowed), else `None`.
    pub async fn check_audience_target(&self, target: Target) -> Result<Option<UnseenTarget>> {
        let newest = self.catalog.snapshot().catalog;
        let model = self.models.current();
        blocking(move || {
            let model = model.as_ref().map(|m| &*m.catalog);
            match newest.as_deref().or(model) {
                Some(newest) => check(model, newest, &target),
                // No catalog at all: creating the audience says what is missing.
                None => Ok(None),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use affinity_core::catalog::CatalogConfig;
    use affinity_core::item_catalog::CatalogBuilder;
    use serde_json::json;

    /// A store counting orders, with a brand column.
    fn orders_by_brand() -> CatalogBuilder {
        let config: CatalogConfig = serde_json::from_value(json!({
            "events": [{"name": "Order Completed", "product_id_property": "product_id"}],
            "columns": [{"name": "brand", "properties": {"Order Completed": "brand"}}]
        }))
        .expect("a valid config");
        CatalogBuilder::new(config)
    }

    /// Brand A's two items are ordered twice in all, Brand B's one item three times, and
    /// Brand C's item never.
    fn catalog() -> ItemCatalog {
        let mut b = orders_by_brand();
        let t = 1_767_225_600_000i64;
        for (user, item, brand) in [
            (1, "a1", "Brand A"),
            (2, "a2", "Brand A"),
            (1, "b1", "Brand B"),
            (2, "b1", "Brand B"),
            (3, "b1", "Brand B"),
        ] {
            b.add_event(user, 0, t, &json!({"product_id": item, "brand": brand}));
        }
        b.add_upload(
            "c1",
            json!({"brand": "Brand C"}).as_object().expect("an object"),
        );
        b.finish()
    }

    fn ids(catalog: &ItemCatalog, related: &[Vec<u32>]) -> Vec<Vec<String>> {
        related
            .iter()
            .map(|r| {
                r.iter()
                    .map(|&i| catalog.items[i as usize].clone())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn related_targets_are_the_column_s_other_engaged_values_or_the_other_engaged_items() {
        let c = catalog();
        let brand = |value: &str| Target::Column {
            column: "brand".to_string(),
            value: value.to_string(),
        };
        let resolved = resolve(&c, &c, &brand("Brand A")).expect("resolved");
        assert_eq!(resolved.basis.basis, BasisKind::Interactions);
        // Not itself, not Brand C (nobody engaged with it).
        assert_eq!(ids(&c, &resolved.related), vec![vec!["b1"]]);
        let resolved = resolve(&c, &c, &brand("Brand B")).expect("resolved");
        assert_eq!(ids(&c, &resolved.related), vec![vec!["a1", "a2"]]);
        // An item: the other engaged items, the most engaged first.
        let item = |id: &str| Target::Item {
            item_id: id.to_string(),
        };
        let resolved = resolve(&c, &c, &item("a1")).expect("resolved");
        assert_eq!(ids(&c, &resolved.related), vec![vec!["b1"], vec!["a2"]]);
        // A target nobody engaged with is ranked by similar items, with nothing related.
        let resolved = resolve(&c, &c, &brand("Brand C")).expect("resolved");
        assert_ne!(resolved.basis.basis, BasisKind::Interactions);
        assert!(resolved.related.is_empty());
    }

    #[test]
    fn at_most_fifteen_related_targets_the_most_engaged_first_ties_by_value() {
        let mut b = orders_by_brand();
        let t = 1_767_225_600_000i64;
        // Brand 00 to 19, one item each; brands 17 to 19 ordered twice, the rest once.
        for k in 0..20i64 {
            for user in 0..(if k >= 17 { 2 } else { 1 }) {
                b.add_event(
                    user,
                    0,
                    t,
                    &json!({"product_id": format!("i{k:02}"), "brand": format!("Brand {k:02}")}),
                );
            }
        }
        let c = b.finish();
        let target = Target::Column {
            column: "brand".to_string(),
            value: "Brand 18".to_string(),
        };
        let related = resolve(&c, &c, &target).expect("resolved").related;
        let got: Vec<String> = ids(&c, &related).into_iter().flatten().collect();
        let mut want = vec!["i17".to_string(), "i19".to_string()];
        want.extend((0..13).map(|k| format!("i{k:02}")));
        assert_eq!(got, want);
    }
}
