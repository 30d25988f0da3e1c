//! "Items like the target": what each user engages with, counted by the values of the
//! catalog's shared columns (brand, category, genre), and the target's own spread over those
//! values. A shopper who never bought a product but fills their orders with its brand and
//! its category is likelier to try it than one who never touches either; the target's own
//! statistics are zero for both, and the CF affinity mixes taste with activity.

use affinity_core::item_catalog::ItemCatalog;
use rayon::prelude::*;

use crate::error::{ModelError, Result};
use crate::interactions::Csr;

/// The catalog columns whose values items share, their values interned into one id space.
pub(super) struct ContentValues {
    n_values: usize,
    /// The column (among the shared ones, 0-based) of each value id.
    column_of: Vec<u32>,
    n_columns: usize,
    /// Row `i`: item `i`'s value ids, each with the item's share of its column (1, or 1/k
    /// for each of a list's k values).
    items: Csr,
}

impl ContentValues {
    pub(super) fn heap_bytes(&self) -> usize {
        crate::interactions::vec_bytes(&self.column_of) + self.items.heap_bytes()
    }

    /// A column counts when its values are shared: at least two distinct values, held on
    /// average by at least two items each (list elements counted one by one). A title or an
    /// id (one value per item) would only repeat the target's own statistics, at the cost of
    /// one entry per item a user touched.
    pub(super) fn new(catalog: &ItemCatalog) -> Result<ContentValues> {
        let n_items = catalog.items.len();
        let mut column_of = Vec::new();
        let mut per_item: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_items];
        let mut n_columns = 0;
        for c in 0..catalog.column_names.len() {
            let index = catalog.column_index(c);
            let distinct = index.values.len();
            let held: usize = index.of_item.iter().map(Vec::len).sum();
            if distinct < 2 || held < 2 * distinct {
                continue;
            }
            let offset = column_of.len() as u32;
            column_of.extend(std::iter::repeat_n(n_columns as u32, distinct));
            for (item, values) in index.of_item.iter().enumerate() {
                let share = 1.0 / values.len() as f32;
                per_item[item].extend(values.iter().map(|&v| (offset + v, share)));
            }
            n_columns += 1;
        }
        let n_values = column_of.len();
        Ok(ContentValues {
            n_values,
            column_of,
            n_columns,
            items: sparse_rows(per_item, n_values)?,
        })
    }
}

/// Rows of `(id, weight)` pairs, ids ascending within each, as a [`Csr`] of `n_cols` columns.
fn sparse_rows(rows: Vec<Vec<(u32, f32)>>, n_cols: usize) -> Result<Csr> {
    let mut ptr = Vec::with_capacity(rows.len() + 1);
    ptr.push(0);
    let nnz = rows.iter().map(Vec::len).sum();
    let (mut ids, mut weights) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
    for row in rows {
        for (id, w) in row {
            ids.push(id);
            weights.push(w);
        }
        ptr.push(ids.len());
    }
    Csr::from_raw(ptr, ids, weights, n_cols).map_err(|reason| ModelError::InvalidParameter {
        name: "catalog",
        reason,
    })
}

/// Each user's engagements per shared value, up to one time: row `u` holds user `u`'s
/// value ids with their engagement counts.
pub(super) struct UserValues(Csr);

impl UserValues {
    pub(super) fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }

    pub(super) fn build(
        catalog: &ItemCatalog,
        content: &ContentValues,
        time: i64,
    ) -> Result<UserValues> {
        let n_users = catalog.users.len();
        if content.n_values == 0 {
            return sparse_rows(vec![Vec::new(); n_users], 0).map(UserValues);
        }
        // The items of each user's interactions (the weights unused): each user's values are
        // then gathered and counted on their own, in parallel, with no table the size of
        // interactions × values.
        let until = catalog.interactions.iter().filter(|x| x.timestamp <= time);
        let by_user = Csr::from_sorted_by_row(
            n_users,
            until.clone().count(),
            until.map(|x| (x.user, x.item, 0.0)),
        );
        let per_user: Vec<Vec<(u32, f32)>> = (0..n_users)
            .into_par_iter()
            .map(|u| {
                let mut ids: Vec<u32> = by_user
                    .row(u)
                    .ids
                    .iter()
                    .flat_map(|&item| content.items.row(item as usize).ids.iter().copied())
                    .collect();
                ids.sort_unstable();
                let mut counted: Vec<(u32, f32)> = Vec::new();
                for id in ids {
                    match counted.last_mut() {
                        Some((last, n)) if *last == id => *n += 1.0,
                        _ => counted.push((id, 1.0)),
                    }
                }
                counted
            })
            .collect();
        sparse_rows(per_user, content.n_values).map(UserValues)
    }

    /// User `u`'s `(value id, engagements)`, ascending by id.
    pub(super) fn of(&self, u: usize) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.0.row(u).iter()
    }
}

/// The target's demand spread over the shared values: per column, the share of the target's
/// engagements whose item has each value (a product: its brand and its category, 1 each; a
/// brand: 1 for itself and its spread over the categories), divided by the number of columns
/// the target has values in.
pub(super) struct TargetContent {
    weight: Vec<f32>,
}

impl TargetContent {
    /// `items`: the target's items with their engagements so far (where none has any yet,
    /// each item counts alike: what the target is, if not yet where its demand is).
    pub(super) fn new(content: &ContentValues, items: &[(u32, f64)]) -> TargetContent {
        let mut weight = vec![0f64; content.n_values];
        // Over the items that say something (hold a shared value): engagements with others
        // leave every weight at 0.
        let untried = items
            .iter()
            .all(|&(item, e)| e <= 0.0 || content.items.row(item as usize).is_empty());
        for &(item, engagements) in items {
            let w = if untried { 1.0 } else { engagements };
            // A list column (several genres) splits the item's weight among its values.
            for (v, share) in content.items.row(item as usize).iter() {
                weight[v as usize] += w * f64::from(share);
            }
        }
        let mut totals = vec![0f64; content.n_columns];
        for (v, w) in weight.iter().enumerate() {
            totals[content.column_of[v] as usize] += w;
        }
        let columns = totals.iter().filter(|&&t| t > 0.0).count().max(1) as f64;
        TargetContent {
            weight: weight
                .iter()
                .enumerate()
                .map(|(v, &w)| {
                    let total = totals[content.column_of[v] as usize];
                    if total > 0.0 {
                        (w / total / columns) as f32
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }

    /// What one engagement with `item` adds to a user's content sum: the target's weights
    /// of the item's values.
    pub(super) fn of_item(&self, content: &ContentValues, item: u32) -> f64 {
        content
            .items
            .row(item as usize)
            .ids
            .iter()
            .map(|&v| f64::from(self.weight[v as usize]))
            .sum()
    }

    /// The user's engagements like the target's, as a share of their engagements outside
    /// it: in each column, their engagements with each value weighted by the target's share
    /// of it, summed, averaged over the target's columns, with what their `own_engagements`
    /// with the target items added (`own`, by [`Self::of_item`]) taken out, over their
    /// `engagements` less those. In [0, 1]; 0 without engagements outside the target.
    pub(super) fn share(
        &self,
        values: impl Iterator<Item = (u32, f32)>,
        engagements: u32,
        own: f64,
        own_engagements: u32,
    ) -> f32 {
        let others = engagements.saturating_sub(own_engagements);
        if others == 0 || self.weight.is_empty() {
            return 0.0;
        }
        let sum: f64 = values
            .map(|(v, n)| f64::from(self.weight[v as usize]) * f64::from(n))
            .sum();
        ((sum - own).max(0.0) / f64::from(others)).min(1.0) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items 0..4: brand A, A, B, B; category x, y, x, y. Nothing else.
    fn content() -> ContentValues {
        // A, B (column 0), x, y (column 1)
        let rows = [[0, 2], [0, 3], [1, 2], [1, 3]]
            .iter()
            .map(|r| r.iter().map(|&v| (v, 1.0)).collect())
            .collect();
        ContentValues {
            n_values: 4,
            column_of: vec![0, 0, 1, 1],
            n_columns: 2,
            items: sparse_rows(rows, 4).expect("valid rows"),
        }
    }

    /// A user's `(value id, engagements)`, as [`UserValues::of`] gives them.
    fn user(pairs: &[(u32, u32)]) -> impl Iterator<Item = (u32, f32)> + '_ {
        pairs.iter().map(|&(v, n)| (v, n as f32))
    }

    #[test]
    fn a_product_is_its_brand_and_its_category() {
        let c = content();
        let target = TargetContent::new(&c, &[(0, 10.0)]);
        // A user whose 4 engagements were items 1 (A, y) ×2 and 2 (B, x) ×2: half their
        // engagements in brand A, half in category x.
        let mixed = [(0, 2), (1, 2), (2, 2), (3, 2)];
        assert!((target.share(user(&mixed), 4, 0.0, 0) - 0.5).abs() < 1e-6);
        // All in brand B, category y: nothing like item 0.
        assert_eq!(target.share(user(&[(1, 3), (3, 3)]), 3, 0.0, 0), 0.0);
        assert_eq!(target.share(user(&[]), 0, 0.0, 0), 0.0);
        // Item 0 itself bought twice more: it counts neither way.
        let own = 2.0 * target.of_item(&c, 0);
        let with_own = [(0, 4), (1, 2), (2, 4), (3, 2)];
        assert!((target.share(user(&with_own), 6, own, 2) - 0.5).abs() < 1e-6);
        // Only ever the target: nothing outside it to measure.
        assert_eq!(
            target.share(user(&[(0, 3), (2, 3)]), 3, 3.0 * own / 2.0, 3),
            0.0
        );
    }

    /// Columns from a real catalog: a brand, a list of tags and a name; one user's
    /// engagements counted as of two times.
    #[test]
    fn shared_columns_and_each_users_values_as_of_a_time() {
        use affinity_core::catalog::CatalogConfig;
        use affinity_core::item_catalog::CatalogBuilder;
        use serde_json::json;
        let config: CatalogConfig = serde_json::from_value(json!({
            "events": [{"name": "Order Completed", "product_id_property": "product_id"}],
            "columns": [
                {"name": "brand", "properties": {"Order Completed": "brand"}},
                {"name": "tags", "properties": {"Order Completed": "tags"}},
                {"name": "name", "properties": {"Order Completed": "name"}}
            ]
        }))
        .expect("a valid config");
        let mut b = CatalogBuilder::new(config);
        let day = 86_400_000i64;
        // Tags x ×3, y ×2, z ×1: six over three values, shared enough; names one each.
        for (t, (id, brand, tags)) in [
            ("a", "A", vec!["x", "y"]),
            ("b", "A", vec!["x"]),
            ("c", "B", vec!["y"]),
            ("d", "B", vec!["x", "z"]),
        ]
        .into_iter()
        .enumerate()
        {
            let props = json!({"product_id": id, "brand": brand, "tags": tags, "name": id});
            b.add_event(2, 0, 1_000 * day + t as i64, &props);
        }
        let a = json!({"product_id": "a", "brand": "A", "tags": ["x", "y"], "name": "a"});
        let c = json!({"product_id": "c", "brand": "B", "tags": ["y"], "name": "c"});
        b.add_event(1, 0, 1_001 * day, &a);
        b.add_event(1, 0, 1_010 * day, &c);
        let catalog = b.finish();
        let content = ContentValues::new(&catalog).expect("valid rows");
        assert_eq!(
            (content.n_columns, content.n_values),
            (2, 5),
            "name left out"
        );
        let one = catalog.user_index(1).expect("user 1 engaged") as usize;
        let counts = |time: i64| -> Vec<u32> {
            let values = UserValues::build(&catalog, &content, time).expect("valid rows");
            values.of(one).map(|(_, n)| n as u32).collect()
        };
        // Before c: a's brand and its two tags, once each.
        assert_eq!(counts(1_005 * day), [1, 1, 1]);
        // After: A, B, x once, y twice (a and c).
        let mut after = counts(1_010 * day);
        after.sort_unstable();
        assert_eq!(after, [1, 1, 1, 2]);
        // Nobody before their first engagement.
        assert!(counts(999 * day).is_empty());
    }

    #[test]
    fn a_target_nobody_engaged_with_yet_is_weighted_by_its_items() {
        let c = content();
        // Brand A before anyone engaged with it: its two items alike, categories x and y
        // half each.
        let untried = TargetContent::new(&c, &[(0, 0.0), (1, 0.0)]);
        let x_only = untried.share(user(&[(1, 1), (2, 1)]), 1, 0.0, 0);
        let y_only = untried.share(user(&[(1, 1), (3, 1)]), 1, 0.0, 0);
        assert!((x_only - 0.25).abs() < 1e-6 && (y_only - 0.25).abs() < 1e-6);
        // Once one has engagements, where the demand is decides: none goes to y.
        let tried = TargetContent::new(&c, &[(0, 30.0), (1, 0.0)]);
        assert_eq!(tried.share(user(&[(1, 1), (3, 1)]), 1, 0.0, 0), 0.0);
    }

    #[test]
    fn a_brand_is_weighted_by_where_its_demand_is() {
        let c = content();
        // Brand A: item 0 (category x) has nearly all of its engagements, item 1 (y) few.
        let target = TargetContent::new(&c, &[(0, 30.0), (1, 0.1)]);
        let x_only = target.share(user(&[(1, 1), (2, 1)]), 1, 0.0, 0); // item 2: brand B, category x
        let y_only = target.share(user(&[(1, 1), (3, 1)]), 1, 0.0, 0); // item 3: brand B, category y
        assert!(x_only > 10.0 * y_only, "{x_only} vs {y_only}");
        // Its own brand counts in full.
        assert!((target.share(user(&[(0, 1), (2, 1)]), 1, 0.0, 0) - 0.5 - x_only).abs() < 1e-6);
    }
}
