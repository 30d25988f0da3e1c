//! Training rows the learners borrow beyond the target's own at the backtest time: the
//! same users' rows toward related targets (the other values of the target's column, or the
//! other most engaged items), and, where the context has an earlier cut, their rows one
//! horizon earlier, toward the target and the related targets.
//!
//! One audience's backtest knows the target's own buyers only: a category of a shop has a
//! few hundred, and a learner fitted on them alone ranks its past buyers about as a share
//! of past orders does. The features are relative to the target (a user's count of it, its
//! share of their orders, how due it is) and to the time they are measured at, so they are
//! comparable across the values of a column and across cuts (an earlier cut's counts cover
//! less history, as a newer user's do): the other values' rows and the earlier cut's teach
//! the learner how repeat behaviour goes with many times the data. On
//! the repeat shop's next orders, a tree ensemble fitted on every category's rows ranked
//! better than one per category (average precision 0.481 against 0.438, seeds 0 and 1:
//! `bench/audiences_repeat_ceiling.sh`, LightGBM outside the product), and one fitted on
//! two cuts better than on one (see `EARLIER_CUT_MAX_USERS`). The held-out figures, the
//! guard's comparison and the served scores are still the target's own users at the
//! backtest time: only the learners' fits see the borrowed rows, each with its own user's
//! fold, so nothing a fold's model is measured on trains it.

use super::backtest::Folds;
use super::context::{Cut, NO_VISIT, PropensityContext};
#[cfg(test)]
use super::features::N_FEATURES;
use super::features::{TargetView, engaged_between, engaged_on_next_visit};
use super::learner::Borrowed;

/// Rows one group lends, at most: the related targets at the backtest time, the target
/// at the earlier cut, and the related targets there are three groups. Above it, each
/// target of a group lends a different stride of the training users. The budget is
/// absolute: borrowing matters where the target's own positives are few, and the learners'
/// time grows with their rows. On the repeat-purchase benchmark (about 3 100 training users
/// and 15 related targets: 46 500 rows to lend), lending every related row gave a little
/// more average precision over the best heuristic than 12 000 rows (brands 1.186 against
/// 1.170, categories 1.126 against 1.113, products 1.239 against 1.201) at five times the
/// cost (one audience of a 4 000-user store: 1.7 s against 0.34 s, 0.11 s without
/// borrowing; 63 MiB peak against 26); lift@20% moved by up to 0.03 either way from one
/// striding of the users to another. Where the target's own positives are many, borrowing
/// adds little: a brand of 12 500 positives among 95 000 users scored the same with 0,
/// 12 000 and 60 000 borrowed rows. (Those figures are of the first group alone; with the
/// earlier cut's two, an audience of the 4 000-user store took about 1.8× as long.)
const GROUP_ROWS: usize = 12_000;

/// How a lent row weighs on each of the backtest's questions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Weighing {
    /// As the question's folds weigh its user: a row of the backtest time.
    AsFolds,
    /// A row of the earlier cut, which asks its own questions: the first of everyone known
    /// then (weight 1), the next visit of those who `came_back` within its window (1, else
    /// 0). Lent only where the folds sample no negatives, so every user weighs 1 there too.
    Earlier { came_back: bool },
}

/// One lent row: its user's fold and position among the fold's members, the training
/// users it stands for (its group's stride), and how it weighs.
#[derive(Debug, Clone, Copy)]
struct Pick {
    fold: usize,
    member: usize,
    stride: f64,
    weighing: Weighing,
}

/// Each lent row is a training user's features toward one target as of one cut, with that
/// target's labels in the cut's window on both of the backtest's questions.
pub(super) struct LentRows {
    /// Row-major features of the lent rows.
    x: Vec<f32>,
    /// Did the user engage with the row's target within the cut's window (first question)?
    first: Vec<bool>,
    /// ...and on their first visit in it (the next-visit question)?
    next: Vec<bool>,
    picks: Vec<Pick>,
    /// How many related targets lent rows at the backtest time and at the earlier cut.
    pub targets: [usize; 2],
    /// Whether the target itself lent rows at the earlier cut.
    pub earlier_own: bool,
    /// How many rows came from the earlier cut.
    pub earlier: usize,
}

impl LentRows {
    /// The rows of `related` (each sorted, deduplicated and in range; the target itself and
    /// empty ones are skipped) at the backtest time, and of the target and `related` at the
    /// context's earlier cut, for the members of `folds` (at the earlier cut, those known
    /// then; none where the folds sample negatives). A target none of whose lent users did
    /// it in the cut's window (on either question: of an audience of one event, say, a
    /// value nobody ordered) would lend negatives only, and is skipped.
    pub(super) fn new(
        ctx: &PropensityContext,
        related: &[Vec<u32>],
        target: &[u32],
        folds: &Folds,
        event: Option<u8>,
    ) -> LentRows {
        Self::within(ctx, related, target, folds, event, GROUP_ROWS)
    }

    /// [`LentRows::new`] with `budget` rows per group at most.
    fn within(
        ctx: &PropensityContext,
        related: &[Vec<u32>],
        target: &[u32],
        folds: &Folds,
        event: Option<u8>,
        budget: usize,
    ) -> LentRows {
        let related: Vec<&[u32]> = related
            .iter()
            .map(Vec::as_slice)
            .filter(|r| !r.is_empty() && *r != target)
            .collect();
        let mut out = LentRows {
            x: Vec::new(),
            first: Vec::new(),
            next: Vec::new(),
            picks: Vec::new(),
            targets: [0, 0],
            earlier_own: false,
            earlier: 0,
        };
        let lent = out.lend(ctx, &ctx.past, &related, folds, event, budget, false);
        out.targets[0] = lent.iter().filter(|&&l| l).count();
        let unsampled = folds.members.iter().flatten().all(|m| m.1 == 1.0);
        if let Some(cut) = ctx.earlier.as_ref().filter(|_| unsampled) {
            let before = out.rows();
            out.earlier_own = out.lend(ctx, cut, &[target], folds, event, budget, true)[0];
            let lent = out.lend(ctx, cut, &related, folds, event, budget, true);
            out.targets[1] = lent.iter().filter(|&&l| l).count();
            out.earlier = out.rows() - before;
        }
        out
    }

    /// Lends the rows of `targets` at `cut` (`earlier`: the context's earlier cut, whose
    /// users and questions are its own) for the members of `folds` known then, each target
    /// a different stride of them within `budget` rows in all. Returns which targets lent.
    #[allow(clippy::too_many_arguments)]
    fn lend(
        &mut self,
        ctx: &PropensityContext,
        cut: &Cut,
        targets: &[&[u32]],
        folds: &Folds,
        event: Option<u8>,
        budget: usize,
        earlier: bool,
    ) -> Vec<bool> {
        let known = &cut.snapshot.activity.count;
        // Per fold, its members known at the cut: (position among the fold's members, user).
        let members: Vec<Vec<(usize, u32)>> = folds
            .members
            .iter()
            .map(|fold| {
                fold.iter()
                    .enumerate()
                    .filter(|&(_, &(u, _))| known[u as usize] > 0)
                    .map(|(j, &(u, _))| (j, u))
                    .collect()
            })
            .collect();
        let k = targets.len();
        let n_members: usize = members.iter().map(Vec::len).sum();
        let stride = (k * n_members).div_ceil(budget.max(1)).max(1);
        let next_visit = cut.next_visits(ctx, event);
        let mut lent = vec![false; k];
        for (r, items) in targets.iter().enumerate() {
            let first = engaged_between(ctx, items, cut.time(), cut.until, event);
            let next = engaged_on_next_visit(ctx, cut, items, event);
            // Each target lends the users at its own offset in the stride, the offsets spread
            // over it: where the stride is at most the number of targets, together they lend
            // every user.
            let offset = r * stride / k;
            let picks: Vec<(usize, usize, u32)> = members
                .iter()
                .enumerate()
                .flat_map(|(f, fold)| {
                    fold.iter()
                        .enumerate()
                        .filter(|&(p, _)| p % stride == offset)
                        .map(move |(_, &(j, u))| (f, j, u))
                })
                .collect();
            if !picks
                .iter()
                .any(|&(_, _, u)| first[u as usize] || next[u as usize])
            {
                continue;
            }
            lent[r] = true;
            let users: Vec<u32> = picks.iter().map(|p| p.2).collect();
            for &(fold, member, u) in &picks {
                let weighing = if earlier {
                    Weighing::Earlier {
                        came_back: next_visit[u as usize] != NO_VISIT,
                    }
                } else {
                    Weighing::AsFolds
                };
                self.picks.push(Pick {
                    fold,
                    member,
                    stride: stride as f64,
                    weighing,
                });
                self.first.push(first[u as usize]);
                self.next.push(next[u as usize]);
            }
            let view = TargetView::new(ctx, &cut.snapshot, items, None, event);
            self.x.extend(view.rows(&users));
        }
        lent
    }

    pub(super) fn rows(&self) -> usize {
        self.picks.len()
    }

    /// What a fit on `borrowed` (from [`LentRows::extra`], after `n` own rows) saw, as the
    /// model's `chosen_because` says it.
    pub(super) fn note(&self, borrowed: &Borrowed, n: usize) -> Option<String> {
        let first_earlier = n + self.rows() - self.earlier;
        let (mut related, mut earlier) = (0, 0);
        for &(row, _) in borrowed.iter().flatten() {
            if row as usize >= first_earlier {
                earlier += 1;
            } else {
                related += 1;
            }
        }
        let mut parts = Vec::new();
        if related > 0 {
            parts.push(format!(
                "{related} rows of the same users toward {} related targets (the other values of the target's column, or other items)",
                self.targets[0]
            ));
        }
        if earlier > 0 {
            let toward: Vec<String> = [
                self.earlier_own.then(|| "the target".to_string()),
                (self.targets[1] > 0).then(|| format!("{} related targets", self.targets[1])),
            ]
            .into_iter()
            .flatten()
            .collect();
            parts.push(format!(
                "{earlier} rows of theirs one horizon earlier (toward {}, labelled by the horizon before the backtest time)",
                toward.join(" and ")
            ));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "its fits also saw {}; its held-out figures are of the target's own users at the backtest time",
                parts.join(" and ")
            )
        })
    }

    /// `own` (the target's features of all `n` users) followed by the lent rows: row
    /// `n + i` is lent row `i`.
    pub(super) fn matrix(&self, own: Vec<f32>) -> Vec<f32> {
        let mut x = own;
        // Exactly: `own` is every user's row, and doubling it would reserve as much again.
        x.reserve_exact(self.x.len());
        x.extend_from_slice(&self.x);
        x
    }

    /// `own` labels followed by the lent rows' on the same question (`next_visit`: the
    /// next-visit question's).
    pub(super) fn labels(&self, own: &[bool], next_visit: bool) -> Vec<bool> {
        let mut labels = own.to_vec();
        labels.extend_from_slice(if next_visit { &self.next } else { &self.first });
        labels
    }

    /// Per fold, the lent rows (indices after the `n` own rows) that train with that fold's
    /// users on one question (`next_visit`: the next-visit question), each weighted as the
    /// question weighs its user at its cut (at the backtest time, as `folds` do: the ones
    /// the rows were lent for, or the question's reweighting of them, the same members in
    /// the same order) times the stride it stands for. Rows of weight 0 are left out.
    pub(super) fn extra(&self, folds: &Folds, n: usize, next_visit: bool) -> Borrowed {
        let mut extra = [Vec::new(), Vec::new()];
        for (i, p) in self.picks.iter().enumerate() {
            let w = match p.weighing {
                Weighing::AsFolds => folds.members[p.fold][p.member].1,
                Weighing::Earlier { came_back } => f64::from(u8::from(came_back || !next_visit)),
            };
            if w > 0.0 {
                extra[p.fold].push(((n + i) as u32, w * p.stride));
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
    /// `changing`: every tenth shopper stops 45 days before the end, and 42 newcomers
    /// start buying "a" weekly 30 days before it.
    fn catalog(changing: bool) -> ItemCatalog {
        let config: CatalogConfig = serde_json::from_value(json!({
            "events": [{"name": "Order Completed", "product_id_property": "product_id"}]
        }))
        .expect("a valid config");
        let mut b = CatalogBuilder::new(config);
        let end = 1_767_225_600_000i64;
        for u in 0..300i64 {
            let days = if changing && u % 10 == 9 { 45 } else { 90 };
            for day in (0..days).step_by(7 + (u % 5) as usize) {
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
        for u in 300..if changing { 342 } else { 300 } {
            for day in (60..90).step_by(7) {
                let t = end - (90 - day) * DAY_MS + u * 1000;
                b.add_event(u, 0, t, &json!({ "product_id": "a" }));
            }
        }
        b.finish()
    }

    fn context(catalog: &ItemCatalog) -> PropensityContext {
        PropensityContext::build(
            catalog,
            &PropensityParams {
                horizon_days: 20,
                als: AlsParams {
                    factors: 4,
                    iterations: 2,
                    ..PropensityParams::default().als
                },
                ..PropensityParams::default()
            },
        )
        .expect("a context")
    }

    #[test]
    fn borrowed_rows_train_with_their_own_fold_and_line_up_with_their_labels() {
        let catalog = catalog(false);
        let ctx = context(&catalog);
        assert!(ctx.earlier.is_some(), "90 days hold an earlier cut");
        let item = |id: &str| catalog.item_index(id).expect("an item");
        let target = vec![item("a")];
        let users: Vec<u32> = (0..ctx.n_users as u32).collect();
        let (pos, neg): (Vec<u32>, Vec<u32>) = users.iter().partition(|&&u| u % 2 == 0);
        // Sampled negatives weigh more than 1: the weights must follow the users (and the
        // earlier cut, whose users are all asked alike, lends nothing).
        let folds = Folds::new(&pos, &neg, 200, 7);
        let related = vec![
            vec![item("b")],
            target.clone(),
            vec![item("c")],
            vec![item("d")],
        ];
        let r = LentRows::within(&ctx, &related, &target, &folds, None, 150);
        // The target itself and "c" (nobody did it after the backtest time) lend nothing.
        assert_eq!((r.targets, r.earlier_own, r.earlier), ([2, 0], false, 0));
        // 3 candidates × 200 members over a budget of 150: a stride of 4, a quarter of
        // each fold's 100 members for each of the 2 that lend.
        assert!(r.picks.iter().all(|p| p.stride == 4.0));
        assert_eq!(r.rows(), 2 * 2 * 25);
        let n = ctx.n_users;
        for next_visit in [false, true] {
            let extra = r.extra(&folds, n, next_visit);
            for (f, rows) in extra.iter().enumerate() {
                for &(row, w) in rows {
                    let p = r.picks[row as usize - n];
                    assert_eq!(p.fold, f, "a borrowed row trains with its user's fold");
                    assert_eq!(w, folds.members[f][p.member].1 * 4.0);
                }
            }
        }
        // Each borrowed row is its user's features and labels toward its related target.
        let own = vec![false; n];
        let first = r.labels(&own, false);
        let next = r.labels(&own, true);
        let x = r.matrix(vec![0f32; n * N_FEATURES]);
        let rows_of_b = r.rows() / 2;
        for (i, p) in r.picks.iter().enumerate() {
            let user = folds.members[p.fold][p.member].0;
            let lent = if i < rows_of_b { item("b") } else { item("d") };
            let view = TargetView::new(&ctx, &ctx.past.snapshot, &[lent], None, None);
            let row = n + i;
            assert_eq!(
                &x[row * N_FEATURES..(row + 1) * N_FEATURES],
                view.row(user).as_slice()
            );
            let engaged = engaged_between(&ctx, &[lent], ctx.past.time(), ctx.now.time, None);
            assert_eq!(first[row], engaged[user as usize]);
            assert_eq!(
                next[row],
                engaged_on_next_visit(&ctx, &ctx.past, &[lent], None)[user as usize]
            );
        }
        // The two targets' offsets differ: together they lend users the other does not.
        let lent: Vec<(usize, usize)> = r.picks[..rows_of_b]
            .iter()
            .map(|p| (p.fold, p.member))
            .collect();
        assert!(
            r.picks[rows_of_b..]
                .iter()
                .all(|p| !lent.contains(&(p.fold, p.member)))
        );
    }

    #[test]
    fn the_earlier_cut_lends_rows_of_its_own_time_window_and_questions() {
        let catalog = catalog(true);
        let ctx = context(&catalog);
        let earlier = ctx.earlier.as_ref().expect("an earlier cut");
        assert_eq!(earlier.until, ctx.past.time());
        assert_eq!(earlier.time(), ctx.past.time() - 20 * DAY_MS);
        let item = |id: &str| catalog.item_index(id).expect("an item");
        let target = vec![item("a")];
        // Every user, unsampled, newest first: the 42 newcomers, unknown at the earlier cut,
        // come first in each fold (21 each), so a user's position among the fold's members
        // and among those known at the cut differ, also modulo the strides below.
        let users: Vec<u32> = (0..ctx.n_users as u32).rev().collect();
        let folds = Folds {
            members: [0, 1].map(|f| {
                users
                    .iter()
                    .filter(|&&u| u % 2 == f)
                    .map(|&u| (u, 1.0))
                    .collect()
            }),
        };
        let known = |u: u32| earlier.snapshot.activity.count[u as usize] > 0;
        assert_eq!(users.iter().filter(|&&u| !known(u)).count(), 42);
        let related = vec![vec![item("b")], vec![item("c")]];
        // 300 known users over a budget of 90: the target lends a quarter of them (stride
        // 4), "b" and "c" a seventh each (stride 7, "b" at offset 0, "c" at 3; a stride
        // prime to the fixture's cycles of 2, 3 and 5 users).
        let r = LentRows::within(&ctx, &related, &target, &folds, None, 90);
        // "b" lends at both cuts; "c" at neither (bought 80 days before the end only, before
        // the earlier cut's window); the target at the earlier cut.
        assert_eq!((r.targets, r.earlier_own), ([1, 1], true));
        // Per fold, the members known at the cut, by position among them: the target's
        // rows are the first, fifth, ... of them (offset 0).
        let known_members: Vec<Vec<usize>> = folds
            .members
            .iter()
            .map(|fold| {
                (0..fold.len())
                    .filter(|&j| known(fold[j].0))
                    .collect::<Vec<_>>()
            })
            .collect();
        let of_target: Vec<(usize, usize)> = known_members
            .iter()
            .enumerate()
            .flat_map(|(f, js)| js.iter().step_by(4).map(move |&j| (f, j)))
            .collect();
        let earlier_rows = r.rows() - r.earlier;
        let lent_for_target: Vec<(usize, usize)> = r.picks[earlier_rows..]
            .iter()
            .take(of_target.len())
            .map(|p| (p.fold, p.member))
            .collect();
        assert_eq!(lent_for_target, of_target);
        let of_b = r.earlier - of_target.len();
        assert_eq!(
            of_b,
            known_members
                .iter()
                .map(|js| js.len().div_ceil(7))
                .sum::<usize>()
        );
        let n = ctx.n_users;
        let (first, next) = (r.labels(&[], false), r.labels(&[], true));
        let x = r.matrix(Vec::new());
        let came_back = earlier.next_visits(&ctx, None);
        for (k, p) in r.picks[earlier_rows..].iter().enumerate() {
            let i = earlier_rows + k;
            let user = folds.members[p.fold][p.member].0;
            assert!(known(user));
            let (lent, stride) = if k < of_target.len() {
                (&target[..], 4.0)
            } else {
                (&[item("b")][..], 7.0)
            };
            assert_eq!(p.stride, stride);
            let view = TargetView::new(&ctx, &earlier.snapshot, lent, None, None);
            assert_eq!(
                &x[i * N_FEATURES..(i + 1) * N_FEATURES],
                view.row(user).as_slice()
            );
            let engaged = engaged_between(&ctx, lent, earlier.time(), earlier.until, None);
            assert_eq!(first[i], engaged[user as usize]);
            assert_eq!(
                next[i],
                engaged_on_next_visit(&ctx, earlier, lent, None)[user as usize]
            );
            assert_eq!(
                p.weighing,
                Weighing::Earlier {
                    came_back: came_back[user as usize] != NO_VISIT
                }
            );
        }
        // On the first question every earlier row weighs its stride; on the next-visit one,
        // its stride where its user came back in the earlier window and 0 (left out)
        // otherwise, whatever the backtest time's folds say of them.
        let weights = |folds: &Folds, next_visit: bool| -> Vec<(usize, f64)> {
            let mut rows: Vec<(usize, f64)> = r
                .extra(folds, n, next_visit)
                .iter()
                .flatten()
                .map(|&(row, w)| (row as usize - n, w))
                .filter(|&(i, _)| i >= earlier_rows)
                .collect();
            rows.sort_by_key(|&(i, _)| i);
            rows
        };
        let stride_of = |i: usize| r.picks[i].stride;
        let all: Vec<(usize, f64)> = (earlier_rows..r.rows())
            .map(|i| (i, stride_of(i)))
            .collect();
        assert_eq!(weights(&folds, false), all);
        let none_back = Folds {
            members: folds
                .members
                .clone()
                .map(|f| f.into_iter().map(|(u, _)| (u, 0.0)).collect()),
        };
        let back: Vec<(usize, f64)> = all
            .iter()
            .copied()
            .filter(|&(i, _)| {
                let p = r.picks[i];
                came_back[folds.members[p.fold][p.member].0 as usize] != NO_VISIT
            })
            .collect();
        assert!(!back.is_empty() && back.len() < r.earlier);
        assert_eq!(weights(&none_back, true), back);
        // What the fits saw, as the model says it.
        let note = r
            .note(&r.extra(&folds, n, false), n)
            .expect("rows were lent");
        assert!(
            note.contains(&format!(
                "{} rows of the same users toward 1 related targets",
                earlier_rows
            )) && note.contains(&format!(
                "{} rows of theirs one horizon earlier (toward the target and 1 related targets",
                r.earlier
            )),
            "{note}"
        );
    }
}
