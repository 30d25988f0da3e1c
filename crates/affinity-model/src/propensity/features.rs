//! The features of a user for a target at one time (the backtest time to learn, `as_of` to
//! apply), and the labels of the backtest.
//!
//! Cost per target: O(users × factors) for the CF affinities (one dot product per user with
//! the target's summed item vector, never one per target item) plus O(interactions of the
//! target's items) for the engagement statistics, plus O(users × their distinct brand,
//! category... values) for the content share.

use rayon::prelude::*;

use super::content::TargetContent;
use super::context::{Activity, Cut, DAY_MS, PropensityContext, Snapshot};
use crate::cpu::Isa;
use crate::dense::dot;
use crate::interactions::vec_bytes;

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
    // The heuristics a marketer would rank by, so the model can only add to them. Appended,
    // so the first 14 keep the indices older stored models were described with.
    "target_count",
    "target_days",
    "target_day_share",
    "target_decayed",
    "target_due",
    "active_days",
    // Relative to the user's own rhythm (appended for the same reason): lapsed by their own
    // standard, and the target's share of their engagements within the last horizon (recent
    // loyalty beside the lifetime share).
    "lapse",
    "recent_target_share",
    // Counted in the user's visits (active days) rather than in days: the next order's
    // question, where a shopper's next visit may come in a week or in three months. Visits
    // since the target was last engaged with, the target's share of the last
    // [`LAST_VISITS`] visits, and its share of all visits decayed by
    // [`VISIT_HALF_LIFE`] visits (recent loyalty, as next-basket models weigh it).
    "visits_since_target",
    "last_visits_share",
    "visit_decayed_share",
    // "Due at the user's next visit", by the target's own cycle: in visits (visits since
    // it over the user's visits per engagement with it), and in days from the user's last
    // visit plus their usual gap (over the target's usual gap). Measured from the user's
    // own last visit, not from the time the question is asked, so they are not
    // time-anchored: they say which of a shopper's staples the next order will hold.
    "visit_due",
    "due_next_visit",
    // "Likes things like it": the share of the user's engagements outside the target that
    // were with its brand, its category or its other shared column values (weighted by
    // where the target's demand is). What ranks the many who never engaged with the target
    // itself; for a brand, its own column adds nothing (no other item has the brand).
    "content_share",
    // An audience of one event ("who will order it"): the user's past engagements of that
    // event with the target, and the share of their days with that event that held it
    // (share of their orders), beside the same notions over every interaction (views
    // included). 0 for an audience of any event, where the others say it.
    "event_count",
    "event_share",
];

pub(super) const N_FEATURES: usize = 30;

/// The visits `last_visits_share` looks at.
const LAST_VISITS: usize = 5;
/// The half-life, in visits, of `visit_decayed_share`.
const VISIT_HALF_LIFE: f64 = 3.0;

/// Column indices of features the heuristics rank by.
pub(super) mod col {
    pub const CF_AFFINITY: usize = 0;
    pub const DAYS_SINCE_TARGET: usize = 5;
    pub const DAYS_SINCE_ACTIVE: usize = 7;
    pub const ACTIVITY: usize = 9;
    pub const TARGET_COUNT: usize = 14;
    pub const TARGET_DAY_SHARE: usize = 16;
    pub const TARGET_DECAYED: usize = 17;
    pub const EVENT_COUNT: usize = 28;
    pub const EVENT_SHARE: usize = 29;
}

/// The features that say *when* (days since, activity in the last day, week or horizon,
/// decayed counts, due, lapse): a ranking without them is the same whenever the question is
/// asked. See `learner::TIMING_MARGIN`. Tenure (`days_since_first`) stays: without it a
/// customer whose first orders were today looks like a one-time buyer of long ago.
pub(super) const TIME_ANCHORED: [usize; 10] = [3, 5, 7, 10, 11, 12, 17, 18, 20, 21];

/// The features counted in visits (visits since the target, its share of the last visits
/// and of all visits decayed by visit, due in visits and at the next visit): the
/// next-visit question's. The first question's learner does without them, so where that
/// question is asked alone (few users come back within the horizon) nothing changes; it
/// has the same notions counted in days, anchored at the time it is asked.
pub(super) const NEXT_VISIT_ONLY: [usize; 5] = [22, 23, 24, 25, 26];

/// The features of an audience of one event (`event_count`, `event_share`): 0 for an
/// audience of any event, whose models do not list them.
pub(super) const EVENT_ONLY: [usize; 2] = [col::EVENT_COUNT, col::EVENT_SHARE];

/// Sets the [`NEXT_VISIT_ONLY`] columns of `x` to 0 (see [`without_time_anchored`]), in
/// place: the feature matrix is the largest allocation of an audience.
pub(super) fn zero_next_visit_only(x: &mut [f32]) {
    for row in x.chunks_exact_mut(N_FEATURES) {
        for &k in &NEXT_VISIT_ONLY {
            row[k] = 0.0;
        }
    }
}

/// `x` (row-major, [`N_FEATURES`] columns) with the [`TIME_ANCHORED`] columns set to 0: a
/// constant column gives a tree no split and a logistic regression a coefficient of 0, so a
/// model fitted on it ignores them on any row it is later applied to.
pub(super) fn without_time_anchored(x: &[f32]) -> Vec<f32> {
    let mut out = x.to_vec();
    for row in out.chunks_exact_mut(N_FEATURES) {
        for &k in &TIME_ANCHORED {
            row[k] = 0.0;
        }
    }
    out
}

/// `target_due` when the user has no cycle yet (fewer than two days with the target): the
/// middle of its range, so "no cycle" is neither "due" nor "not due" to a linear model.
const NO_CYCLE: f32 = 0.0;
/// `target_due` is a log-ratio, clamped so a decades-long "gap" stays finite.
const DUE_CAP: f64 = 4.0;

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
    first: Vec<i64>,
    /// Distinct days with an engagement with the target: "bought it on n occasions", which
    /// several items of one order or one binge do not inflate.
    days: Vec<u32>,
    /// Engagements decayed with a half-life of the horizon: count and recency in one number.
    decayed: Vec<f32>,
    /// The user's visits (active days) after the last one with the target; every visit for
    /// a user who never engaged with it.
    visits_since: Vec<u32>,
    last_visits_share: Vec<f32>,
    visit_decayed_share: Vec<f32>,
    content: TargetContent,
    own_content: Vec<f64>,
    horizon_days: f64,
    /// The audience's event, and each user's engagements of it with the target (empty
    /// without an event).
    event: Option<u8>,
    event_count: Vec<u32>,
    /// The share of the user's days with the event that held the target; with an event, the
    /// visit features are counted in those days (a shopper's orders, not their browsing).
    event_share: Vec<f32>,
    event_due_next_visit: Vec<f32>,
    /// "Due at the visit after the last one", in the visits the visit features count.
    visit_due: Vec<f32>,
}

impl<'a> TargetView<'a> {
    /// `target` must be sorted, deduplicated and in range. `only_user` restricts the
    /// engagement statistics to one user (for explanations); the arrays stay full-length.
    pub(super) fn new(
        ctx: &PropensityContext,
        snapshot: &'a Snapshot,
        target: &[u32],
        only_user: Option<u32>,
        event: Option<u8>,
    ) -> TargetView<'a> {
        let n = ctx.n_users;
        let time = snapshot.time;
        let recent_from = time.saturating_sub(ctx.horizon_ms);
        let mut weight = vec![0f32; n];
        let mut count = vec![0u32; n];
        let mut recent = vec![0u32; n];
        let mut last = vec![i64::MIN; n];
        let mut first = vec![i64::MAX; n];
        let mut decayed = vec![0f32; n];
        let mut day_keys: Vec<u64> = Vec::new();
        let mut event_count = vec![0u32; if event.is_some() { n } else { 0 }];
        let mut event_keys: Vec<u64> = Vec::new();
        let horizon_days = (ctx.horizon_ms as f64 / DAY_MS as f64).max(1.0);
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
                weight[u] += ctx.weight(t);
                count[u] += 1;
                if t.timestamp > recent_from {
                    recent[u] += 1;
                }
                last[u] = last[u].max(t.timestamp);
                first[u] = first[u].min(t.timestamp);
                let age_days = (time - t.timestamp) as f64 / DAY_MS as f64;
                decayed[u] += 0.5f64.powf(age_days / horizon_days) as f32;
                day_keys.push(user_day(t.user, t.timestamp));
                if event == Some(t.event) {
                    event_count[u] += 1;
                    event_keys.push(user_day(t.user, t.timestamp));
                }
            }
            item_counts.push(seen as f64);
        }
        let target_days = UserDays::from_keys(day_keys, n);
        let days: Vec<u32> = (0..n).map(|u| target_days.of(u).len() as u32).collect();
        // The visits the visit features count: every active day, or the days with the
        // audience's event (and the target's among them).
        let event_target_days = event.map(|_| UserDays::from_keys(event_keys, n));
        let (mine, visits) = match (&event_target_days, event) {
            (Some(t), Some(_)) => (t, ctx.visits_of(snapshot, event)),
            _ => (&target_days, &snapshot.activity.visits),
        };
        let mut visits_since: Vec<u32> = (0..n).map(|u| visits.of(u).len() as u32).collect();
        let mut last_visits_share = vec![0f32; n];
        let mut visit_decayed_share = vec![0f32; n];
        let mut visit_due = vec![NO_CYCLE; n];
        for u in 0..n {
            if let Some(v) = VisitFeatures::of(mine.of(u), visits.of(u)) {
                visits_since[u] = v.since;
                last_visits_share[u] = v.last_share;
                visit_decayed_share[u] = v.decayed_share;
            }
            visit_due[u] = visit_due_of(mine.of(u), visits.of(u), visits_since[u]);
        }
        let (mut event_share, mut event_due_next_visit) = (Vec::new(), Vec::new());
        if event_target_days.is_some() {
            for u in 0..n {
                let (t, v) = (mine.of(u), visits.of(u));
                event_share.push(t.len() as f32 / v.len().max(1) as f32);
                event_due_next_visit.push(due_next_visit_in_days(t, v));
            }
        }

        let content = TargetContent::new(
            &ctx.content,
            &target
                .iter()
                .zip(&item_counts)
                .map(|(&item, &c)| (item, c))
                .collect::<Vec<_>>(),
        );
        // What the target's own engagements add to each user's content sum: taken out, so
        // the feature says how much the user engages with *other* items like it.
        let mut own_content = vec![0f64; n];
        for &item in target {
            let like = content.of_item(&ctx.content, item);
            for t in ctx.item_touches(item) {
                if t.timestamp <= time && only_user.is_none_or(|u| u == t.user) {
                    own_content[t.user as usize] += like;
                }
            }
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
            first,
            days,
            decayed,
            visits_since,
            last_visits_share,
            visit_decayed_share,
            content,
            own_content,
            horizon_days,
            event,
            event_count,
            event_share,
            event_due_next_visit,
            visit_due,
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

    /// Features of `users` only, row-major, in their order.
    pub(super) fn rows(&self, users: &[u32]) -> Vec<f32> {
        let mut x = vec![0f32; users.len() * N_FEATURES];
        x.par_chunks_mut(N_FEATURES * ROWS_PER_TASK)
            .zip(users.par_chunks(ROWS_PER_TASK))
            .for_each(|(block, users)| {
                for (row, &u) in block.chunks_exact_mut(N_FEATURES).zip(users) {
                    self.fill_row(u, row);
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
            dot(Isa::Baseline, uv, &self.mean_vector),
            dot(Isa::Baseline, uv, &self.popular_vector),
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
            ln1p(f64::from(self.count[u])),
            ln1p(f64::from(self.days[u])),
            (f64::from(self.days[u]) / f64::from(activity.active_days[u].max(1))) as f32,
            ln1p(f64::from(self.decayed[u])),
            self.due(u, s.time),
            ln1p(f64::from(activity.active_days[u])),
            lapse(activity, u, s.time),
            (f64::from(self.recent[u]) / f64::from(activity.recent[u].max(1))) as f32,
            ln1p(f64::from(self.visits_since[u])),
            self.last_visits_share[u],
            self.visit_decayed_share[u],
            self.visit_due[u],
            match self.event {
                Some(_) => self.event_due_next_visit[u],
                None => self.due_next_visit(u, activity),
            },
            self.content
                .share(s.values.of(u), count, self.own_content[u], self.count[u]),
            match self.event {
                Some(_) => ln1p(f64::from(self.event_count[u])),
                None => 0.0,
            },
            match self.event {
                Some(_) => self.event_share[u],
                None => 0.0,
            },
        ];
        row.copy_from_slice(&values);
    }
}

/// `visit_due`: ln((visits since the target + 1) / (the user's visits per day with the
/// target)), about 0 or above when as many visits as usual have passed since it.
/// [`NO_CYCLE`] before a second day with it. `mine`: the user's days with the target, `all`:
/// their visits (every active day, or the days with an audience's event), `since`: visits
/// since the target.
fn visit_due_of(mine: &[u32], all: &[u32], since: u32) -> f32 {
    if mine.len() < 2 {
        return NO_CYCLE;
    }
    let per_engagement = all.len() as f64 / mine.len() as f64;
    ((f64::from(since) + 1.0) / per_engagement)
        .ln()
        .clamp(-DUE_CAP, DUE_CAP) as f32
}

/// [`TargetView::due_next_visit`] counted in the days of an audience's event (whole days).
fn due_next_visit_in_days(mine: &[u32], all: &[u32]) -> f32 {
    let (Some((&t_first, &t_last)), Some((&first, &last))) =
        (mine.first().zip(mine.last()), all.first().zip(all.last()))
    else {
        return NO_CYCLE;
    };
    if mine.len() < 2 || all.len() < 2 {
        return NO_CYCLE;
    }
    let target_gap = (f64::from(t_last - t_first) / (mine.len() - 1) as f64).max(1.0);
    let user_gap = f64::from(last - first) / (all.len() - 1) as f64;
    let since = f64::from(last.saturating_sub(t_last));
    ((since + user_gap.max(1.0)) / target_gap)
        .ln()
        .clamp(-DUE_CAP, DUE_CAP) as f32
}

impl TargetView<'_> {
    /// "Due for a repeat": log of (days since the last engagement + the horizon) over the
    /// user's typical gap between engagement days. Near 0 or above, the user's own cycle
    /// says they come back within the horizon; well below, they were here too recently; far
    /// above, they have lapsed. Non-monotone on purpose: trees split it into those regimes.
    fn due(&self, u: usize, time: i64) -> f32 {
        if self.days[u] < 2 {
            return NO_CYCLE;
        }
        let span_days = (self.last[u] - self.first[u]) as f64 / DAY_MS as f64;
        let gap = (span_days / f64::from(self.days[u] - 1)).max(1.0);
        let since = ((time - self.last[u]) as f64 / DAY_MS as f64).max(0.0);
        ((since + self.horizon_days) / gap)
            .ln()
            .clamp(-DUE_CAP, DUE_CAP) as f32
    }
}

impl TargetView<'_> {
    /// ln((days from the target's last engagement to the user's last visit + the user's
    /// usual gap between visits) / the target's usual gap): about 0 when the target falls
    /// due at the visit after the last one. [`NO_CYCLE`] before a second day with the target
    /// or with anything.
    fn due_next_visit(&self, u: usize, activity: &Activity) -> f32 {
        if self.days[u] < 2 || activity.active_days[u] < 2 {
            return NO_CYCLE;
        }
        let days = |ms: i64| ms as f64 / DAY_MS as f64;
        let target_gap =
            (days(self.last[u] - self.first[u]) / f64::from(self.days[u] - 1)).max(1.0);
        let user_gap =
            days(activity.last[u] - activity.first[u]) / f64::from(activity.active_days[u] - 1);
        let since = days(activity.last[u] - self.last[u]).max(0.0);
        ((since + user_gap.max(1.0)) / target_gap)
            .ln()
            .clamp(-DUE_CAP, DUE_CAP) as f32
    }
}

/// "Lapsed by their own standard": log of (days since the user's last activity + 1) over
/// (their typical gap between active days + 1). A shopper on a 30-day cycle, 20 days in, is
/// not lapsed (about −0.4); a daily visitor gone for 20 days is (about 2.3). Days since
/// activity alone calls both equally cold. [`NO_CYCLE`] with fewer than two active days.
fn lapse(activity: &Activity, u: usize, time: i64) -> f32 {
    let days = activity.active_days[u];
    if days < 2 || activity.last[u] == i64::MIN {
        return NO_CYCLE;
    }
    let span_days = (activity.last[u] - activity.first[u]) as f64 / DAY_MS as f64;
    let gap = span_days / f64::from(days - 1);
    let since = ((time - activity.last[u]) as f64 / DAY_MS as f64).max(0.0);
    ((since + 1.0) / (gap + 1.0)).ln().clamp(-DUE_CAP, DUE_CAP) as f32
}

/// A (user, day) key: sorting and deduplicating them counts each user's distinct days.
pub(super) fn user_day(user: u32, timestamp: i64) -> u64 {
    // Days since the epoch fit 32 bits for any plausible timestamp; the mask keeps a wild
    // one from spilling into the user bits.
    (u64::from(user) << 32) | (timestamp.div_euclid(DAY_MS) as u64 & 0xffff_ffff)
}

/// Where the target's days fall among one user's visits.
#[derive(Debug, PartialEq)]
struct VisitFeatures {
    since: u32,
    last_share: f32,
    decayed_share: f32,
}

impl VisitFeatures {
    /// `mine`: the days with the target; `all`: every active day (a superset); both sorted.
    /// `None` when the user never engaged with the target.
    fn of(mine: &[u32], all: &[u32]) -> Option<VisitFeatures> {
        let &last_target = mine.last()?;
        let behind = |d: u32| all.len() - all.partition_point(|&v| v <= d);
        let window = LAST_VISITS.min(all.len()).max(1);
        let from = all.len().saturating_sub(window);
        let in_window = all.get(from).map_or(0, |&first| {
            mine.len() - mine.partition_point(|&d| d < first)
        });
        // Visit j from the end weighs ratio^j; all visits' weights sum to
        // (1 − ratio^n) / (1 − ratio).
        let ratio = 0.5f64.powf(1.0 / VISIT_HALF_LIFE);
        let decayed: f64 = mine.iter().map(|&d| ratio.powi(behind(d) as i32)).sum();
        let total = (1.0 - ratio.powi(all.len() as i32)) / (1.0 - ratio);
        Some(VisitFeatures {
            since: behind(last_target) as u32,
            last_share: in_window as f32 / window as f32,
            decayed_share: if total > 0.0 {
                (decayed / total) as f32
            } else {
                0.0
            },
        })
    }
}

/// Each user's distinct days, in order, from (user, day) keys.
pub(super) struct UserDays {
    offsets: Vec<usize>,
    days: Vec<u32>,
}

impl UserDays {
    pub(super) fn heap_bytes(&self) -> usize {
        vec_bytes(&self.offsets) + vec_bytes(&self.days)
    }

    pub(super) fn from_keys(mut keys: Vec<u64>, n_users: usize) -> UserDays {
        keys.sort_unstable();
        keys.dedup();
        let mut offsets = vec![0usize; n_users + 1];
        let mut days = Vec::with_capacity(keys.len());
        for k in keys {
            let u = (k >> 32) as usize;
            if u < n_users {
                offsets[u + 1] += 1;
                days.push(k as u32);
            }
        }
        for u in 0..n_users {
            offsets[u + 1] += offsets[u];
        }
        UserDays { offsets, days }
    }

    /// User `u`'s days, oldest first (empty for a user out of range).
    pub(super) fn of(&self, u: usize) -> &[u32] {
        match (self.offsets.get(u), self.offsets.get(u + 1)) {
            (Some(&a), Some(&b)) => &self.days[a..b],
            _ => &[],
        }
    }
}

/// Who engaged with the target in `(from, until]`: the labels of the backtest.
pub(super) fn engaged_between(
    ctx: &PropensityContext,
    target: &[u32],
    from: i64,
    until: i64,
    event: Option<u8>,
) -> Vec<bool> {
    let mut engaged = vec![false; ctx.n_users];
    for &item in target {
        for t in ctx.item_touches(item) {
            if t.timestamp > from && t.timestamp <= until && event.is_none_or(|e| e == t.event) {
                engaged[t.user as usize] = true;
            }
        }
    }
    engaged
}

/// Who engaged with the target on their first visit in `cut`'s window (only the
/// interactions in it count, on that day): the labels of the next-visit question, for the
/// users who came back (their next visit is not [`NO_VISIT`](super::context::NO_VISIT)).
pub(super) fn engaged_on_next_visit(
    ctx: &PropensityContext,
    cut: &Cut,
    target: &[u32],
    event: Option<u8>,
) -> Vec<bool> {
    let mut engaged = vec![false; ctx.n_users];
    let (from, until) = (cut.time(), cut.until);
    let next_visit = cut.next_visits(ctx, event);
    for &item in target {
        for t in ctx.item_touches(item) {
            if t.timestamp > from
                && t.timestamp <= until
                && event.is_none_or(|e| e == t.event)
                && t.timestamp.div_euclid(DAY_MS) == next_visit[t.user as usize]
            {
                engaged[t.user as usize] = true;
            }
        }
    }
    engaged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(days: &[(u32, i64, i64)]) -> Activity {
        let n = days.len();
        Activity {
            last: days.iter().map(|d| d.2).collect(),
            first: days.iter().map(|d| d.1).collect(),
            count: days.iter().map(|d| d.0).collect(),
            day: vec![0; n],
            week: vec![0; n],
            recent: vec![0; n],
            distinct: vec![0; n],
            active_days: days.iter().map(|d| d.0).collect(),
            visits: UserDays::from_keys(Vec::new(), n),
        }
    }

    #[test]
    fn visit_features_count_visits_not_days() {
        // Visits on days 1, 2, 3, 5, 8 and 9; the target on days 2 and 5.
        let v = VisitFeatures::of(&[2, 5], &[1, 2, 3, 5, 8, 9]).expect("engaged");
        assert_eq!(v.since, 2);
        assert!((v.last_share - 2.0 / 5.0).abs() < 1e-6, "{v:?}");
        let r = 0.5f64.powf(1.0 / 3.0);
        let want = (r.powi(2) + r.powi(4)) / ((1.0 - r.powi(6)) / (1.0 - r));
        assert!((f64::from(v.decayed_share) - want).abs() < 1e-6, "{v:?}");
        // Every visit with the target: a share of 1 both ways, none since.
        let v = VisitFeatures::of(&[4, 7], &[4, 7]).expect("engaged");
        assert_eq!((v.since, v.last_share), (0, 1.0));
        assert!((v.decayed_share - 1.0).abs() < 1e-6, "{v:?}");
        assert_eq!(VisitFeatures::of(&[], &[1, 2]), None);
    }

    #[test]
    fn lapse_is_measured_against_the_users_own_rhythm() {
        let now = 400 * DAY_MS;
        // A monthly shopper 20 days after their last order, a daily visitor gone 20 days,
        // and a user seen on one day only. Both were last seen 20 days ago.
        let a = activity(&[
            (7, now - 200 * DAY_MS, now - 20 * DAY_MS),
            (61, now - 80 * DAY_MS, now - 20 * DAY_MS),
            (1, now - 20 * DAY_MS, now - 20 * DAY_MS),
        ]);
        let monthly = lapse(&a, 0, now);
        let daily = lapse(&a, 1, now);
        assert!(monthly < 0.0, "{monthly}");
        assert!(daily > 2.0, "{daily}");
        assert_eq!(lapse(&a, 2, now), NO_CYCLE);
    }
}
