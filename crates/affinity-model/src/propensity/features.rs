//! The features of a user for a target at one time (the backtest time to learn, `as_of` to
//! apply), and the labels of the backtest.
//!
//! Cost per target: O(users × factors) for the CF affinities (one dot product per user with
//! the target's summed item vector, never one per target item) plus O(interactions of the
//! target's items) for the engagement statistics.

use rayon::prelude::*;

use super::context::{DAY_MS, PropensityContext, Snapshot};
use crate::dense::dot;

/// Names of the features, in the order of every feature row.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "cf_affinity",
    "cf_affinity_popular",
    "target_weight",
    "target_recent",
    "target_never",
    "days_since_target",
    "target_share",
    "days_since_active",
    "days_since_first",
    "activity",
    "activity_day",
    "activity_week",
    "recent_activity",
    "distinct_items",
];

pub(super) const N_FEATURES: usize = 14;

/// "Days since" saturates here: a year ago and never are equally cold for a horizon of days
/// to weeks, and the cap keeps one ancient user from stretching the standardization.
const DAYS_CAP: f64 = 365.0;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 2048;

/// The target seen from one snapshot: its CF vectors and each user's engagement with it.
pub(super) struct TargetView<'a> {
    snapshot: &'a Snapshot,
    /// Mean of the target items' vectors: u·mean = the user's mean predicted preference.
    mean_vector: Vec<f32>,
    /// Mean weighted by each item's interactions so far: where the target's demand is, so a
    /// user who likes its popular items scores higher than one who likes its long tail.
    popular_vector: Vec<f32>,
    weight: Vec<f32>,
    count: Vec<u32>,
    recent: Vec<u32>,
    last: Vec<i64>,
}

impl<'a> TargetView<'a> {
    /// `target` must be sorted, deduplicated and in range. `only_user` restricts the
    /// engagement statistics to one user (for explanations); the arrays stay full-length.
    pub(super) fn new(
        ctx: &PropensityContext,
        snapshot: &'a Snapshot,
        target: &[u32],
        only_user: Option<u32>,
    ) -> TargetView<'a> {
        let n = ctx.n_users;
        let time = snapshot.time;
        let recent_from = time.saturating_sub(ctx.horizon_ms);
        let mut weight = vec![0f32; n];
        let mut count = vec![0u32; n];
        let mut recent = vec![0u32; n];
        let mut last = vec![i64::MIN; n];
        let mut item_counts = Vec::with_capacity(target.len());
        for &item in target {
            let mut seen = 0u64;
            for t in ctx.item_touches(item) {
                if t.timestamp > time {
                    continue;
                }
                seen += 1;
                if only_user.is_some_and(|u| u != t.user) {
                    continue;
                }
                let u = t.user as usize;
                weight[u] += t.weight;
                count[u] += 1;
                if t.timestamp > recent_from {
                    recent[u] += 1;
                }
                last[u] = last[u].max(t.timestamp);
            }
            item_counts.push(seen as f64);
        }

        // Summed in f64 in target order: exact enough and independent of threads.
        let f = snapshot.als.factors();
        let items = snapshot.als.item_factors();
        let mut mean = vec![0f64; f];
        let mut popular = vec![0f64; f];
        let total: f64 = item_counts.iter().sum();
        for (&item, &c) in target.iter().zip(&item_counts) {
            let v = &items[item as usize * f..(item as usize + 1) * f];
            for k in 0..f {
                mean[k] += f64::from(v[k]);
                popular[k] += c * f64::from(v[k]);
            }
        }
        let scale = |v: Vec<f64>, by: f64| -> Vec<f32> {
            v.into_iter()
                .map(|x| if by > 0.0 { (x / by) as f32 } else { 0.0 })
                .collect()
        };
        TargetView {
            snapshot,
            mean_vector: scale(mean, target.len() as f64),
            popular_vector: scale(popular, total),
            weight,
            count,
            recent,
            last,
        }
    }

    /// Features of every user, row-major (`n_users × N_FEATURES`).
    pub(super) fn matrix(&self) -> Vec<f32> {
        let n = self.count.len();
        let mut x = vec![0f32; n * N_FEATURES];
        x.par_chunks_mut(N_FEATURES * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, block)| {
                for (j, row) in block.chunks_exact_mut(N_FEATURES).enumerate() {
                    self.fill_row((task * ROWS_PER_TASK + j) as u32, row);
                }
            });
        x
    }

    pub(super) fn row(&self, user: u32) -> Vec<f32> {
        let mut row = vec![0f32; N_FEATURES];
        self.fill_row(user, &mut row);
        row
    }

    fn fill_row(&self, user: u32, row: &mut [f32]) {
        let u = user as usize;
        let s = self.snapshot;
        let f = s.als.factors();
        let uv = &s.als.user_factors()[u * f..(u + 1) * f];
        let activity = &s.activity;
        let days_since = |t: i64| -> f64 {
            if t == i64::MIN {
                DAYS_CAP
            } else {
                ((s.time - t) as f64 / DAY_MS as f64).clamp(0.0, DAYS_CAP)
            }
        };
        let ln1p = |x: f64| x.ln_1p() as f32;
        let count = activity.count[u];
        let values = [
            dot(uv, &self.mean_vector),
            dot(uv, &self.popular_vector),
            ln1p(f64::from(self.weight[u])),
            ln1p(f64::from(self.recent[u])),
            if self.count[u] == 0 { 1.0 } else { 0.0 },
            ln1p(days_since(self.last[u])),
            (f64::from(self.count[u]) / f64::from(count.max(1))) as f32,
            ln1p(days_since(activity.last[u])),
            ln1p(days_since(activity.first[u])),
            ln1p(f64::from(count)),
            ln1p(f64::from(activity.day[u])),
            ln1p(f64::from(activity.week[u])),
            ln1p(f64::from(activity.recent[u])),
            ln1p(f64::from(activity.distinct[u])),
        ];
        row.copy_from_slice(&values);
    }
}

/// Who engaged with the target in `(from, until]`: the labels of the backtest.
pub(super) fn engaged_between(
    ctx: &PropensityContext,
    target: &[u32],
    from: i64,
    until: i64,
) -> Vec<bool> {
    let mut engaged = vec![false; ctx.n_users];
    for &item in target {
        for t in ctx.item_touches(item) {
            if t.timestamp > from && t.timestamp <= until {
                engaged[t.user as usize] = true;
            }
        }
    }
    engaged
}
