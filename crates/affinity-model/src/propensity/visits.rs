//! The next-visit question learned from every visit, not from one per user: a row for each
//! of a user's recent visits, with the features as of just before it (`features::VISIT_COLUMNS`,
//! computed from the user's earlier days alone) and the label "the target was in this
//! visit". Next-basket models train this way: a returning shopper's first visit after the
//! backtest time is one label, their last ten visits are ten, and every backtest user with
//! two visits or more teaches, not only those who came back within the horizon.
//!
//! The rows use only the user's own days: a CF affinity as of a past visit would come from a
//! model fitted on that visit, so it would have seen the label.

use super::context::PropensityContext;
use super::features::{UserDays, user_day, visit_columns};

/// Each user's newest visits that become rows, at most (fewer where the users are so many
/// that the rows would pass the cap on training rows: from 25,000 users with visits to learn
/// from at the default cap of 250,000, and one each from 250,000).
pub(super) const RECENT_VISITS: usize = 10;

/// Visit rows of some groups of users.
pub(super) struct VisitRows {
    /// Row-major, `features::VISIT_COLUMNS.len()` columns.
    pub x: Vec<f32>,
    pub y: Vec<bool>,
    /// Per group given to [`VisitRows::build`]: its users' rows, each with its user's weight.
    pub groups: Vec<Vec<(u32, f64)>>,
}

impl VisitRows {
    /// The rows of the visits of each group's users, as the store has them now: each user's
    /// newest visits (after their first, which has nothing before it) on days before
    /// `before_day` (every day with `None`), at most [`RECENT_VISITS`] per user and, where
    /// the users with a visit to learn from are many, as many per user as keep the rows
    /// within `max_rows` (one at least). `target_days` are every user's days with the target,
    /// up to now.
    pub(super) fn build(
        ctx: &PropensityContext,
        target_days: &UserDays,
        groups: &[&[(u32, f64)]],
        before_day: Option<u32>,
        max_rows: usize,
    ) -> VisitRows {
        let visits = &ctx.now.activity.visits;
        let end_of =
            |all: &[u32]| before_day.map_or(all.len(), |d| all.partition_point(|&v| v < d));
        // Users with a visit after their first: the others make no row.
        let users = groups
            .iter()
            .flat_map(|g| g.iter())
            .filter(|&&(u, _)| end_of(visits.of(u as usize)) >= 2)
            .count();
        let per_user = (max_rows / users.max(1)).clamp(1, RECENT_VISITS);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let groups = groups
            .iter()
            .map(|members| {
                let mut rows = Vec::new();
                for &(user, weight) in members.iter() {
                    let all = visits.of(user as usize);
                    let mine = target_days.of(user as usize);
                    let end = end_of(all);
                    for j in end.saturating_sub(per_user).max(1)..end {
                        let day = all[j];
                        let before = &mine[..mine.partition_point(|&d| d < day)];
                        x.extend_from_slice(&visit_columns(before, &all[..j]));
                        y.push(mine.binary_search(&day).is_ok());
                        rows.push(((y.len() - 1) as u32, weight));
                    }
                }
                rows
            })
            .collect();
        VisitRows { x, y, groups }
    }

    /// Whether every group has rows with and without the target to learn from.
    pub(super) fn learnable(&self) -> bool {
        self.groups.iter().all(|g| {
            g.iter().any(|&(r, _)| self.y[r as usize])
                && g.iter().any(|&(r, _)| !self.y[r as usize])
        })
    }
}

/// Every user's days with the target, up to `time`.
pub(super) fn target_days(ctx: &PropensityContext, target: &[u32], time: i64) -> UserDays {
    let keys = target
        .iter()
        .flat_map(|&item| ctx.item_touches(item))
        .filter(|t| t.timestamp <= time)
        .map(|t| user_day(t.user, t.timestamp))
        .collect();
    UserDays::from_keys(keys, ctx.n_users)
}

/// The day (since the epoch) of a time, as the visit lists count days.
pub(super) fn day_of(time: i64) -> u32 {
    user_day(0, time) as u32
}

#[cfg(test)]
mod tests {
    use affinity_core::catalog::CatalogConfig;
    use affinity_core::item_catalog::CatalogBuilder;
    use serde_json::json;

    use super::*;
    use crate::als::AlsParams;
    use crate::propensity::backtest::Folds;
    use crate::propensity::features::VISIT_COLUMNS;
    use crate::propensity::{AudienceOptions, LearnerChoice, PropensityParams};

    const END: i64 = 1_767_225_600_000; // 2026-01-01, midnight UTC

    const DAY_MS: i64 = 86_400_000;

    /// One shopper ordering on the given days before `END` (day 0 = 30 days before it),
    /// "t" on the days in `with_target` and "other" on the rest.
    fn context(days: &[i64], with_target: &[i64]) -> (PropensityContext, u32) {
        let orders: Vec<(i64, i64, bool)> = days
            .iter()
            .map(|&d| (1, d, with_target.contains(&d)))
            .collect();
        context_of(&orders)
    }

    /// Orders (shopper, day as in [`context`], with "t"?).
    fn context_of(orders: &[(i64, i64, bool)]) -> (PropensityContext, u32) {
        let config: CatalogConfig = serde_json::from_value(json!({
            "events": [{"name": "Order Completed", "product_id_property": "product_id"}]
        }))
        .expect("config");
        let mut b = CatalogBuilder::new(config);
        for &(user, d, with_t) in orders {
            let item = if with_t { "t" } else { "other" };
            let t = END - (30 - d) * DAY_MS + 3_600_000;
            b.add_event(user, 0, t, &json!({ "product_id": item }));
        }
        let params = PropensityParams {
            horizon_days: 7,
            als: AlsParams {
                factors: 2,
                iterations: 1,
                ..PropensityParams::default().als
            },
        };
        let catalog = b.finish();
        let t = catalog.item_index("t").expect("the target");
        let ctx = PropensityContext::build(&catalog, &params).expect("context");
        (ctx, t)
    }

    #[test]
    fn each_visit_after_the_first_is_a_row_as_of_the_visits_before_it() {
        let (ctx, t) = context(&[0, 3, 6, 9, 12, 29], &[3, 9, 29]);
        let days = target_days(&ctx, &[t], ctx.as_of());
        let all = ctx.now.activity.visits.of(0).to_vec();
        let mine = days.of(0).to_vec();
        assert_eq!((all.len(), mine.len()), (6, 3));
        let members = [(0u32, 2.0)];

        // Every visit but the first, each as of the visits before it.
        let rows = VisitRows::build(&ctx, &days, &[&members], None, 1000);
        let d = VISIT_COLUMNS.len();
        assert_eq!(rows.y, [true, false, true, false, true]);
        assert_eq!(
            rows.groups,
            [vec![(0, 2.0), (1, 2.0), (2, 2.0), (3, 2.0), (4, 2.0)]]
        );
        for j in 1..all.len() {
            let before: Vec<u32> = mine.iter().copied().filter(|&m| m < all[j]).collect();
            let want = visit_columns(&before, &all[..j]);
            assert_eq!(rows.x[(j - 1) * d..j * d], want, "visit {j}");
        }

        // Before a day: only the visits before it; and at most the newest `max_rows` per user.
        let rows = VisitRows::build(&ctx, &days, &[&members], Some(all[4]), 1000);
        assert_eq!(rows.y, [true, false, true]);
        let rows = VisitRows::build(&ctx, &days, &[&members], None, 2);
        assert_eq!(rows.y, [false, true]);
        assert_eq!(rows.x[..d], visit_columns(&mine[..2], &all[..4]));
        // Both labels in every group: learnable; one visit with the target only is not.
        assert!(VisitRows::build(&ctx, &days, &[&members], None, 1000).learnable());
        assert!(!VisitRows::build(&ctx, &days, &[&members], Some(all[2]), 1000).learnable());
    }

    #[test]
    fn an_audience_learns_the_next_visit_from_visit_rows_unless_only_logistic_may_serve() {
        // 40 shoppers ordering every third day from day 0 to 27, "t" on every third order.
        let orders: Vec<(i64, i64, bool)> = (0..40)
            .flat_map(|u| (0..10).map(move |k| (u, 3 * k, (k + u) % 3 == 0)))
            .collect();
        let (ctx, t) = context_of(&orders);
        let users: Vec<u32> = (0..40).collect();
        let folds = Folds::new(&users[..20], &users[20..], 1000, 0);
        let options = AudienceOptions::default();
        let (cross, refit) = ctx.visit_rows(&[t], &folds, &options).expect("visit rows");
        // Every visit after each shopper's first, as the store has them now (9); to
        // cross-fit, those before the backtest time's day (day 20, 7 days before the last
        // order): days 3 to 18 (6), each fold its own shoppers.
        assert_eq!(refit.groups[0].len(), 40 * 9);
        let sizes: Vec<usize> = cross.groups.iter().map(Vec::len).collect();
        assert_eq!(sizes, [20 * 6, 20 * 6]);
        let logistic = AudienceOptions {
            learner: LearnerChoice::Logistic,
            ..options
        };
        assert!(ctx.visit_rows(&[t], &folds, &logistic).is_none());
    }
}
