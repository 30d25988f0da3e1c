//! What every audience of one training run shares: the CF models, per-user activity at the
//! backtest time (and one horizon earlier, in stores of up to 250 000 users) and now, and an
//! item-major index of interactions.

use std::sync::OnceLock;

use affinity_core::item_catalog::ItemCatalog;

use super::PropensityParams;
use super::content::{ContentValues, UserValues};
use super::features::{UserDays, user_day};
use crate::als::AlsModel;
use crate::error::{ModelError, Result};
use crate::interactions::{Interactions, vec_bytes};

pub(super) const DAY_MS: i64 = 86_400_000;

/// Per-user activity up to (and including) one time.
pub(super) struct Activity {
    /// Newest interaction time; `i64::MIN` for a user with none yet.
    pub last: Vec<i64>,
    /// Oldest interaction time; `i64::MIN` for a user with none yet. Tenure tells a new
    /// user in their first burst of activity from a regular who happened to visit lately.
    pub first: Vec<i64>,
    pub count: Vec<u32>,
    /// Interactions in the last day and the last week: activity at the scales of a session
    /// and of a habit.
    pub day: Vec<u32>,
    pub week: Vec<u32>,
    /// Interactions in the horizon-long window ending at the snapshot time: "active lately"
    /// is measured on the same scale as the question asked.
    pub recent: Vec<u32>,
    /// Distinct items (as the CF model saw them, so within the catalog's lookback).
    pub distinct: Vec<u32>,
    /// Distinct days with any interaction: the denominator of "share of the user's days
    /// that contained the target" (orders or sessions, at the grain every store has).
    pub active_days: Vec<u32>,
    /// Each user's active days in order: the user's visits, so a target's place in them
    /// (visits since it was last engaged with, its share of the last few) is measured in
    /// visits, whatever the calendar time between them.
    pub visits: UserDays,
}

/// The world as seen at one time: the CF model fitted on interactions up to it and
/// everyone's activity.
pub(super) struct Snapshot {
    pub time: i64,
    pub als: AlsModel,
    pub activity: Activity,
    /// Each user's engagements by shared column value (see [`ContentValues`]).
    pub values: UserValues,
    /// Each user's days with each catalog event (`[event]`, as of `time`): an event
    /// audience's visits (a shopper's orders, not their browsing days). Computed the first
    /// time an audience of that event asks; empty when the catalog has one event.
    pub event_visits: Vec<OnceLock<UserDays>>,
}

/// One interaction in the item-major index.
#[derive(Debug, Clone, Copy)]
pub(super) struct Touch {
    pub timestamp: i64,
    pub user: u32,
    /// The catalog event (index in the config) of the interaction; its weight is the
    /// context's `event_weights[event]` (kept out of here: 16 bytes a touch, not 24).
    pub event: u8,
}

/// Built once per training run by [`PropensityContext::build`]; every audience reads it.
pub struct PropensityContext {
    pub(super) params: PropensityParams,
    pub(super) n_users: usize,
    pub(super) n_items: usize,
    pub(super) horizon_ms: i64,
    /// At the backtest time `T_b = as_of − horizon`, labelled by `(T_b, as_of]`: what the
    /// model learns from and is measured on.
    pub(super) past: Cut,
    /// One horizon earlier, labelled by `(T_b − horizon, T_b]`: more rows for the learners'
    /// fits (see [`EARLIER_CUT_MAX_USERS`]); `None` when the params turn it off, for a large
    /// store, or for one with no interactions before it.
    pub(super) earlier: Option<Cut>,
    /// At `as_of`: what the model is applied to.
    pub(super) now: Snapshot,
    /// Interactions grouped by item (`touches[item_offsets[i]..item_offsets[i + 1]]`), in time
    /// order within an item, so a target's work is proportional to its own interactions.
    pub(super) item_offsets: Vec<usize>,
    pub(super) touches: Vec<Touch>,
    /// Each catalog event's weight, by index.
    pub(super) event_weights: Vec<f32>,
    /// The catalog's shared column values ("items like the target").
    pub(super) content: ContentValues,
}

/// `next_visit` of a user who did not come back within the backtest window.
pub(super) const NO_VISIT: i64 = i64::MIN;

/// Above this many users the context has no earlier cut: the backtest's own rows are then
/// plenty to learn from, and the cut would cost a third ALS fit and its per-user tables
/// (at 1M users its user factors alone would be 256 MB, kept as long as the context). The
/// same number as `AudienceOptions::max_training_users`' default: above that the folds
/// sample negatives, and the earlier cut's rows are lent only where they do not. The
/// earlier cut's rows matter where a target's buyers are few: on the repeat-purchase
/// shop's next orders (3 100 shoppers), a tree ensemble fitted on every brand's rows at two
/// cuts 30 days apart ranked better than at the later one alone (average precision 1.31×
/// "share of past orders" against 1.27×, categories 1.25× against 1.23×; seeds 0 and 1,
/// LightGBM outside the product: `CUTS=2 CUT_DAYS=30 bench/audiences_repeat_ceiling.sh`,
/// against `CUTS=1`).
pub(super) const EARLIER_CUT_MAX_USERS: usize = 250_000;

/// A time the model learns from: the world as seen then, and the window its labels come
/// from, `(snapshot.time, until]`.
pub(super) struct Cut {
    pub snapshot: Snapshot,
    pub until: i64,
    /// Each user's first visit in the window: the day (days since the epoch) of their
    /// first interaction in it, [`NO_VISIT`] when they had none. The backtest's second
    /// question, "what does their next visit hold", asks about it.
    next_visit: Vec<i64>,
    /// The same, counting one catalog event only (`[event]`): the next visit of an audience
    /// that predicts one event is the next time the user did that. Computed the first time
    /// an audience of that event asks (most stores never do); empty when the catalog has
    /// one event (`next_visit` is that one's).
    next_visit_by_event: Vec<OnceLock<Vec<i64>>>,
}

impl Activity {
    fn heap_bytes(&self) -> usize {
        vec_bytes(&self.last)
            + vec_bytes(&self.first)
            + vec_bytes(&self.count)
            + vec_bytes(&self.day)
            + vec_bytes(&self.week)
            + vec_bytes(&self.recent)
            + vec_bytes(&self.distinct)
            + vec_bytes(&self.active_days)
            + self.visits.heap_bytes()
    }
}

impl Snapshot {
    fn heap_bytes(&self) -> usize {
        self.als.heap_bytes()
            + self.activity.heap_bytes()
            + self.values.heap_bytes()
            + self
                .event_visits
                .iter()
                .filter_map(OnceLock::get)
                .map(UserDays::heap_bytes)
                .sum::<usize>()
    }
}

impl Cut {
    fn heap_bytes(&self) -> usize {
        self.snapshot.heap_bytes()
            + vec_bytes(&self.next_visit)
            + self
                .next_visit_by_event
                .iter()
                .filter_map(OnceLock::get)
                .map(vec_bytes)
                .sum::<usize>()
    }

    fn new(catalog: &ItemCatalog, snapshot: Snapshot, until: i64) -> Cut {
        let times = catalog.interactions.iter().map(|x| (x.user, x.timestamp));
        Cut {
            next_visit: first_visits_of(catalog.users.len(), times, snapshot.time, until),
            next_visit_by_event: per_event(catalog),
            snapshot,
            until,
        }
    }

    pub fn time(&self) -> i64 {
        self.snapshot.time
    }

    /// Each user's next visit in the window, counting `event` only when given.
    pub(super) fn next_visits(&self, ctx: &PropensityContext, event: Option<u8>) -> &[i64] {
        let Some((e, slot)) = event_slot(&self.next_visit_by_event, event) else {
            return &self.next_visit;
        };
        slot.get_or_init(|| {
            let times = ctx
                .touches
                .iter()
                .filter(|t| t.event == e)
                .map(|t| (t.user, t.timestamp));
            first_visits_of(ctx.n_users, times, self.snapshot.time, self.until)
        })
    }
}

impl PropensityContext {
    /// Fits the past, earlier (see [`EARLIER_CUT_MAX_USERS`]) and now CF models and
    /// precomputes what audiences need. The slow part of audiences (two or three ALS fits);
    /// done once per training run and horizon.
    pub fn build(catalog: &ItemCatalog, params: &PropensityParams) -> Result<PropensityContext> {
        params.validate()?;
        let n_users = catalog.users.len();
        let n_items = catalog.items.len();
        let horizon_ms = i64::from(params.horizon_days) * DAY_MS;
        let as_of = catalog.as_of;
        let backtest_time = as_of.saturating_sub(horizon_ms);

        for x in &catalog.interactions {
            if x.user as usize >= n_users {
                return Err(ModelError::UserOutOfRange {
                    user: x.user,
                    n_users,
                });
            }
            if x.item as usize >= n_items {
                return Err(ModelError::ItemOutOfRange {
                    item: x.item,
                    n_items,
                });
            }
        }

        let content = ContentValues::new(catalog)?;
        let past = snapshot(catalog, &content, backtest_time, horizon_ms, params)?;
        let past = Cut::new(catalog, past, as_of);
        let earlier_time = backtest_time.saturating_sub(horizon_ms);
        let earlier = if params.earlier_cut
            && n_users <= EARLIER_CUT_MAX_USERS
            && catalog
                .interactions
                .iter()
                .any(|x| x.timestamp <= earlier_time)
        {
            let snapshot = snapshot(catalog, &content, earlier_time, horizon_ms, params)?;
            Some(Cut::new(catalog, snapshot, backtest_time))
        } else {
            None
        };
        let now = snapshot(catalog, &content, as_of, horizon_ms, params)?;

        // Counting sort by item; stable, so each item's touches keep the catalog's time order.
        let mut item_offsets = vec![0usize; n_items + 1];
        for x in &catalog.interactions {
            item_offsets[x.item as usize + 1] += 1;
        }
        for i in 0..n_items {
            item_offsets[i + 1] += item_offsets[i];
        }
        let mut next = item_offsets.clone();
        let mut touches = vec![
            Touch {
                timestamp: 0,
                user: 0,
                event: 0,
            };
            catalog.interactions.len()
        ];
        for x in &catalog.interactions {
            let slot = &mut next[x.item as usize];
            touches[*slot] = Touch {
                timestamp: x.timestamp,
                user: x.user,
                event: x.event,
            };
            *slot += 1;
        }

        let event_weights = catalog
            .config
            .events
            .iter()
            .map(|e| e.weight as f32)
            .collect();

        Ok(PropensityContext {
            params: params.clone(),
            n_users,
            n_items,
            horizon_ms,
            past,
            earlier,
            now,
            item_offsets,
            touches,
            event_weights,
            content,
        })
    }

    pub fn params(&self) -> &PropensityParams {
        &self.params
    }

    /// Users of the catalog (all of them are scored by every audience).
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// The backtest time `as_of − horizon` (Unix ms).
    pub fn backtest_time(&self) -> i64 {
        self.past.time()
    }

    /// About how many bytes of memory the context holds (its arrays' capacities; the event
    /// tables computed so far included, so it grows as audiences of new events ask): what
    /// a cache of contexts weighs them by, each time it makes room.
    pub fn heap_bytes(&self) -> usize {
        self.past.heap_bytes()
            + self.earlier.as_ref().map_or(0, Cut::heap_bytes)
            + self.now.heap_bytes()
            + vec_bytes(&self.item_offsets)
            + vec_bytes(&self.touches)
            + vec_bytes(&self.event_weights)
            + self.content.heap_bytes()
    }

    /// Whether the learners also see rows of the earlier cut (see [`EARLIER_CUT_MAX_USERS`]).
    pub fn has_earlier_cut(&self) -> bool {
        self.earlier.is_some()
    }

    pub fn as_of(&self) -> i64 {
        self.now.time
    }

    /// The CF model fitted on everything up to `as_of`.
    pub fn now_model(&self) -> &AlsModel {
        &self.now.als
    }

    /// The users' visits as of `snapshot`, counting `event` only when given: an event
    /// audience's visits are the days its users did that event.
    pub(super) fn visits_of<'s>(&self, snapshot: &'s Snapshot, event: Option<u8>) -> &'s UserDays {
        let Some((e, slot)) = event_slot(&snapshot.event_visits, event) else {
            return &snapshot.activity.visits;
        };
        slot.get_or_init(|| {
            let keys = self
                .touches
                .iter()
                .filter(|t| t.event == e && t.timestamp <= snapshot.time)
                .map(|t| user_day(t.user, t.timestamp))
                .collect();
            UserDays::from_keys(keys, self.n_users)
        })
    }

    /// The weight of an interaction (its event's).
    pub(super) fn weight(&self, t: &Touch) -> f32 {
        self.event_weights
            .get(usize::from(t.event))
            .copied()
            .unwrap_or(1.0)
    }

    /// The interactions of one item, oldest first.
    pub(super) fn item_touches(&self, item: u32) -> &[Touch] {
        let i = item as usize;
        &self.touches[self.item_offsets[i]..self.item_offsets[i + 1]]
    }
}

/// Each user's first visit after `from`: the day of the first of `times` (their
/// interactions) in `(from, until]`, [`NO_VISIT`] when they had none.
fn first_visits_of(
    n_users: usize,
    times: impl Iterator<Item = (u32, i64)>,
    from: i64,
    until: i64,
) -> Vec<i64> {
    let mut first_after = vec![i64::MAX; n_users];
    for (user, t) in times {
        if t > from && t <= until {
            let first = &mut first_after[user as usize];
            *first = (*first).min(t);
        }
    }
    first_after
        .into_iter()
        .map(|t| {
            if t == i64::MAX {
                NO_VISIT
            } else {
                t.div_euclid(DAY_MS)
            }
        })
        .collect()
}

/// The lazy slot of `event` among `slots` (one per catalog event), with the event; `None`
/// for any event, and where the catalog has one event (no slots: the all-event answers are
/// that event's).
fn event_slot<T>(slots: &[OnceLock<T>], event: Option<u8>) -> Option<(u8, &OnceLock<T>)> {
    event.and_then(|e| Some((e, slots.get(usize::from(e))?)))
}

/// One empty lazy slot per catalog event; none when the catalog has one event (whose
/// answers are the all-event ones).
fn per_event<T>(catalog: &ItemCatalog) -> Vec<OnceLock<T>> {
    let n = catalog.config.events.len();
    (0..if n > 1 { n } else { 0 })
        .map(|_| OnceLock::new())
        .collect()
}

fn snapshot(
    catalog: &ItemCatalog,
    content: &ContentValues,
    time: i64,
    horizon_ms: i64,
    params: &PropensityParams,
) -> Result<Snapshot> {
    let n_users = catalog.users.len();
    let n_items = catalog.items.len();
    let triplets = catalog.weighted(time);
    let mut distinct = vec![0u32; n_users];
    for &(u, _, _) in &triplets {
        distinct[u as usize] += 1;
    }
    let data = Interactions::from_triplets(n_users, n_items, &triplets)?;
    drop(triplets);
    let als = AlsModel::fit(&data, &params.als)?;
    drop(data);

    let mut last = vec![i64::MIN; n_users];
    let mut first = vec![i64::MAX; n_users];
    let mut count = vec![0u32; n_users];
    let mut day = vec![0u32; n_users];
    let mut week = vec![0u32; n_users];
    let mut recent = vec![0u32; n_users];
    let mut day_keys = Vec::new();
    let recent_from = time.saturating_sub(horizon_ms);
    let day_from = time.saturating_sub(DAY_MS);
    let week_from = time.saturating_sub(7 * DAY_MS);
    for x in &catalog.interactions {
        // `continue`, not `break`: the fields are public, so the time order is not a given.
        if x.timestamp > time {
            continue;
        }
        let u = x.user as usize;
        last[u] = last[u].max(x.timestamp);
        first[u] = first[u].min(x.timestamp);
        count[u] += 1;
        day[u] += u32::from(x.timestamp > day_from);
        week[u] += u32::from(x.timestamp > week_from);
        if x.timestamp > recent_from {
            recent[u] += 1;
        }
        day_keys.push(user_day(x.user, x.timestamp));
    }
    let visits = UserDays::from_keys(day_keys, n_users);
    let active_days = (0..n_users).map(|u| visits.of(u).len() as u32).collect();
    Ok(Snapshot {
        time,
        als,
        values: UserValues::build(catalog, content, time)?,
        activity: Activity {
            last,
            first: first
                .into_iter()
                .map(|t| if t == i64::MAX { i64::MIN } else { t })
                .collect(),
            count,
            day,
            week,
            recent,
            distinct,
            active_days,
            visits,
        },
        event_visits: per_event(catalog),
    })
}
