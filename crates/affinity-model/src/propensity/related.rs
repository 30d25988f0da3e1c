//! Training rows borrowed from related targets: the other values of the target's column,
//! or the other most engaged items.
//!
//! One audience's backtest knows the target's own buyers only: a category of a shop has a
//! few hundred, and a learner fitted on them alone ranks its past buyers about as a share
//! of past orders does. The features are relative to the target (a user's count of it, its
//! share of their orders, how due it is), so they mean the same for every value of a
//! column: the rows of the other values teach the learner how repeat behaviour goes with
//! many times the data. On the repeat shop's next orders, a tree ensemble fitted on every
//! category's rows ranked better than one per category (average precision 0.481 against
//! 0.438, seeds 0 and 1: `bench/audiences_repeat_ceiling.sh`, LightGBM outside the
//! product). The held-out figures, the guard's comparison and the served scores are still
//! the target's own users: only the learners' fits see the borrowed rows.

use super::backtest::Folds;
use super::context::PropensityContext;
#[cfg(test)]
use super::features::N_FEATURES;
use super::features::{TargetView, engaged_between, engaged_on_next_visit};

/// Borrowed rows in all, at most; above it, each related target lends a different stride
/// of the training users. The budget is absolute: borrowing matters where the target's own
/// positives are few, and the learners' time grows with their rows. On the repeat-purchase
/// benchmark (about 3 100 training users and 15 related targets: 46 500 rows to lend),
/// lending every row gave a little more average precision over the best heuristic than
/// 12 000 rows (brands 1.186 against 1.170, categories 1.126 against 1.113, products 1.239
/// against 1.201) at five times the cost (one audience of a 4 000-user store: 1.7 s against
/// 0.34 s, 0.11 s without borrowing; 63 MiB peak against 26); lift@20% moved by up to 0.03
/// either way from one striding of the users to another. Where the target's own positives
/// are many, borrowing adds little: a brand of 12 500 positives among 95 000 users scored
/// the same with 0, 12 000 and 60 000 borrowed rows.
const RELATED_ROWS: usize = 12_000;

/// Each borrowed row is a training user's features toward one related target, as of the
/// backtest time, with that target's labels on both of the backtest's questions.
pub(super) struct Related {
    /// Row-major features of the borrowed rows.
    x: Vec<f32>,
    /// Did the user engage with the related target within the horizon (first question)?
    first: Vec<bool>,
    /// ...and on their next visit (the next-visit question)?
    next: Vec<bool>,
    /// Per borrowed row: the fold and position of its user among the folds' members, whose
    /// weight on a question is the row's too.
    picks: Vec<(usize, usize)>,
    /// Training users per borrowed row of one target: rows stand for this many.
    stride: usize,
    /// How many related targets lent rows.
    pub targets: usize,
}

impl Related {
    /// The rows of `related` (each sorted, deduplicated and in range; the target itself and
    /// empty ones are skipped) for the members of `folds`. A related target none of whose
    /// lent users did it (on either question: of an audience of one event, say, a value
    /// nobody ordered) would lend negatives only, and is skipped too.
    pub(super) fn new(
        ctx: &PropensityContext,
        related: &[Vec<u32>],
        target: &[u32],
        folds: &Folds,
        event: Option<u8>,
    ) -> Related {
        Self::within(ctx, related, target, folds, event, RELATED_ROWS)
    }

    /// [`Related::new`] with `budget` rows at most.
    fn within(
        ctx: &PropensityContext,
        related: &[Vec<u32>],
        target: &[u32],
        folds: &Folds,
        event: Option<u8>,
        budget: usize,
    ) -> Related {
        let related: Vec<&Vec<u32>> = related
            .iter()
            .filter(|r| !r.is_empty() && r.as_slice() != target)
            .collect();
        let members = folds.members[0].len() + folds.members[1].len();
        let stride = (related.len() * members).div_ceil(budget.max(1)).max(1);
        let mut out = Related {
            x: Vec::new(),
            first: Vec::new(),
            next: Vec::new(),
            picks: Vec::new(),
            stride,
            targets: 0,
        };
        let k = related.len();
        for (r, items) in related.into_iter().enumerate() {
            let first = engaged_between(ctx, items, ctx.past.time, ctx.now.time, event);
            let next = engaged_on_next_visit(ctx, items, event);
            // Each target lends the users at its own offset in the stride, the offsets spread
            // over it: where the stride is at most the number of targets, together they lend
            // every user.
            let offset = r * stride / k;
            let picks: Vec<(usize, usize, u32)> = folds
                .members
                .iter()
                .enumerate()
                .flat_map(|(f, fold)| {
                    fold.iter()
                        .enumerate()
                        .filter(|&(j, _)| j % stride == offset)
                        .map(move |(j, &(u, _))| (f, j, u))
                })
                .collect();
            if !picks
                .iter()
                .any(|&(_, _, u)| first[u as usize] || next[u as usize])
            {
                continue;
            }
            out.targets += 1;
            let users: Vec<u32> = picks.iter().map(|p| p.2).collect();
            for &(f, j, u) in &picks {
                out.picks.push((f, j));
                out.first.push(first[u as usize]);
                out.next.push(next[u as usize]);
            }
            let view = TargetView::new(ctx, &ctx.past, items, None, event);
            out.x.extend(view.rows(&users));
        }
        out
    }

    pub(super) fn rows(&self) -> usize {
        self.picks.len()
    }

    /// `own` (the target's features of all `n` users) followed by the borrowed rows: row
    /// `n + i` is borrowed row `i`.
    pub(super) fn matrix(&self, own: Vec<f32>) -> Vec<f32> {
        let mut x = own;
        // Exactly: `own` is every user's row, and doubling it would reserve as much again.
        x.reserve_exact(self.x.len());
        x.extend_from_slice(&self.x);
        x
    }

    /// `own` labels followed by the borrowed rows' on the same question (`next_visit`: the
    /// next-visit question's).
    pub(super) fn labels(&self, own: &[bool], next_visit: bool) -> Vec<bool> {
        let mut labels = own.to_vec();
        labels.extend_from_slice(if next_visit { &self.next } else { &self.first });
        labels
    }

    /// Per fold, the borrowed rows (indices after the `n` own rows) that train with that
    /// fold's users, weighted as `folds` weighs their users on the question (0: a user it
    /// does not ask about) times the stride they stand for. `folds` are the ones the rows
    /// were borrowed for, or a question's reweighting of them (the same members in the same
    /// order).
    pub(super) fn extra(&self, folds: &Folds, n: usize) -> [Vec<(u32, f64)>; 2] {
        let mut extra = [Vec::new(), Vec::new()];
        for (i, &(f, j)) in self.picks.iter().enumerate() {
            let w = folds.members[f][j].1;
            if w > 0.0 {
                extra[f].push(((n + i) as u32, w * self.stride as f64));
            }
        }
        extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlsParams;
    use crate::propensity::PropensityParams;
    use affinity_core::catalog::CatalogConfig;
    use affinity_core::item_catalog::{CatalogBuilder, ItemCatalog};
    use serde_json::json;

    const DAY_MS: i64 = 86_400_000;

    /// 300 shoppers over 90 days: "a" bought by every second one, "b" by every third, "c"
    /// only before the backtest window (so nobody buys it in it), "d" by every fifth.
    fn catalog() -> ItemCatalog {
        let config: CatalogConfig = serde_json::from_value(json!({
            "events": [{"name": "Order Completed", "product_id_property": "product_id"}]
        }))
        .expect("a valid config");
        let mut b = CatalogBuilder::new(config);
        let end = 1_767_225_600_000i64;
        for u in 0..300i64 {
            for day in (0..90).step_by(7 + (u % 5) as usize) {
                let t = end - (90 - day) * DAY_MS + u * 1000;
                let item = match (u % 2, u % 3, u % 5) {
                    (0, _, _) if day % 2 == 0 => "a",
                    (_, 0, _) => "b",
                    (_, _, 0) => "d",
                    _ => "a",
                };
                b.add_event(u, 0, t, &json!({ "product_id": item }));
            }
            b.add_event(u, 0, end - 80 * DAY_MS, &json!({ "product_id": "c" }));
        }
        b.finish()
    }

    #[test]
    fn borrowed_rows_train_with_their_own_fold_and_line_up_with_their_labels() {
        let catalog = catalog();
        let ctx = PropensityContext::build(
            &catalog,
            &PropensityParams {
                horizon_days: 20,
                als: AlsParams {
                    factors: 4,
                    iterations: 2,
                    ..PropensityParams::default().als
                },
            },
        )
        .expect("a context");
        let item = |id: &str| catalog.item_index(id).expect("an item");
        let target = vec![item("a")];
        let users: Vec<u32> = (0..ctx.n_users as u32).collect();
        let (pos, neg): (Vec<u32>, Vec<u32>) = users.iter().partition(|&&u| u % 2 == 0);
        // Sampled negatives weigh more than 1: the weights must follow the users.
        let folds = Folds::new(&pos, &neg, 200, 7);
        let related = vec![
            vec![item("b")],
            target.clone(),
            vec![item("c")],
            vec![item("d")],
        ];
        let r = Related::within(&ctx, &related, &target, &folds, None, 150);
        // The target itself and "c" (nobody did it after the backtest time) lend nothing.
        assert_eq!(r.targets, 2);
        // 3 candidates × 200 members over a budget of 150: a stride of 4, a quarter of
        // each fold's 100 members for each of the 2 that lend.
        assert_eq!(r.stride, 4);
        assert_eq!(r.rows(), 2 * 2 * 25);
        let n = ctx.n_users;
        let extra = r.extra(&folds, n);
        for (f, rows) in extra.iter().enumerate() {
            for &(row, w) in rows {
                let (pf, j) = r.picks[row as usize - n];
                assert_eq!(pf, f, "a borrowed row trains with its user's fold");
                assert_eq!(w, folds.members[f][j].1 * 4.0);
            }
        }
        // Each borrowed row is its user's features and labels toward its related target.
        let own = vec![false; n];
        let first = r.labels(&own, false);
        let next = r.labels(&own, true);
        let x = r.matrix(vec![0f32; n * N_FEATURES]);
        let rows_of_b = r.rows() / 2;
        for (i, &(f, j)) in r.picks.iter().enumerate() {
            let user = folds.members[f][j].0;
            let lent = if i < rows_of_b { item("b") } else { item("d") };
            let view = TargetView::new(&ctx, &ctx.past, &[lent], None, None);
            let row = n + i;
            assert_eq!(
                &x[row * N_FEATURES..(row + 1) * N_FEATURES],
                view.row(user).as_slice()
            );
            let engaged = engaged_between(&ctx, &[lent], ctx.past.time, ctx.now.time, None);
            assert_eq!(first[row], engaged[user as usize]);
            assert_eq!(
                next[row],
                engaged_on_next_visit(&ctx, &[lent], None)[user as usize]
            );
        }
        // The two targets' offsets differ: together they lend users the other does not.
        let lent: Vec<(usize, usize)> = r.picks[..rows_of_b].to_vec();
        assert!(r.picks[rows_of_b..].iter().all(|p| !lent.contains(p)));
    }
}
