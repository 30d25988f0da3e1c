//! Audiences: the learned propensity ranking for a target, cut to the wanted size, a seeded
//! control group and the backtested estimate at that size. An audience keeps its id; each
//! computation is its next numbered snapshot, with who entered and exited, each member's
//! explanation from that snapshot's model and where every scored user ranked (so a
//! non-member learns why they are out). Refreshes on request, after training or daily;
//! previews of the whole size curve.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use affinity_core::IdKind;
use affinity_core::audience::{AudienceQuestion, AudienceSpec, Refresh, Target, resolve_event};
use affinity_core::item_catalog::ItemCatalog;
use affinity_core::timestamp::format_millis;
use affinity_model::propensity::{
    AudienceOptions, AudienceScores, Contribution, CurvePoint, PropensityContext, PropensityModel,
    choose_horizon,
};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{
    AudienceRecord, AudienceStore, CatalogStore, DestinationStore, FinishedSnapshot,
    KEPT_MEMBER_LISTS, Member, Profiles, SnapshotFinished, SnapshotRecord, StoreError,
};

/// The guard's decision as stored in an estimate (plain data from the model crate).
pub use affinity_model::propensity::{Competitor, RankingChoice};

use crate::Engine;
use crate::audience_target::{self, BasisKind, RankingBasis, ResolvedTarget};
use crate::clock::Clock;
use crate::engine::blocking;
use crate::error::{EngineError, Invalid, Result};
use crate::training::ServingModel;

/// Users below this share of the base rate have no meaningful propensity: an audience stops
/// before them even if its maximum size is not reached.
const MEANINGFUL_SHARE_OF_BASE_RATE: f64 = 0.1;

/// Entered and exited users listed by id in a snapshot's changes (the counts are complete).
const LISTED_CHANGES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceStatus {
    /// Accepted, waiting for an audience worker (`WorkLimits`).
    Queued,
    Computing,
    Live,
    Failed,
}

impl AudienceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Computing => "computing",
            Self::Live => "live",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "computing" => Self::Computing,
            "live" => Self::Live,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// Expected precision, recall and lift at one audience size, read off the backtest curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    pub expected_precision: f64,
    pub expected_recall: f64,
    pub lift: f64,
}

/// The backtest window an estimate comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestWindow {
    /// RFC 3339, as shown (stored estimates have always kept them so).
    pub from: String,
    pub to: String,
    /// The horizon used: the audience's own, or chosen from the data.
    pub horizon_days: u32,
    /// `given` or `from_data`; None in estimates stored before horizons were chosen.
    #[serde(default)]
    pub horizon_source: Option<String>,
    /// How a horizon chosen from the data was chosen.
    #[serde(default)]
    pub horizon_reason: Option<String>,
}

/// The horizon an audience is computed at.
#[derive(Debug, Clone, PartialEq)]
pub struct Horizon {
    pub days: u32,
    /// `given` or `from_data`.
    pub source: &'static str,
    pub reason: Option<String>,
}

/// The catalog index of the event an audience predicts (a 422 when the serving model's
/// catalog counts no such event).
pub(crate) fn event_index(model: &ServingModel, event: Option<&str>) -> Result<Option<u8>> {
    resolve_event(&model.catalog, event).map_err(|p| EngineError::invalid(Invalid::Audience, [p]))
}

/// The audience's own horizon, or one chosen from the store's rhythm with the target
/// (`propensity::choose_horizon`: one pass over the target's interactions, no model fit).
pub fn resolve_horizon(
    model: &ServingModel,
    items: &[u32],
    given: Option<u32>,
    event: Option<u8>,
) -> Horizon {
    match given {
        Some(days) => Horizon {
            days,
            source: "given",
            reason: None,
        },
        None => {
            let choice = choose_horizon(&model.catalog, items, event);
            Horizon {
                days: choice.horizon_days,
                source: "from_data",
                reason: Some(choice.reason),
            }
        }
    }
}

/// How good an audience is expected to be at its size, and what it was computed from. Stored
/// flat, as estimates have been since audiences exist, so older snapshots stay readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudienceEstimate {
    /// None when the backtest had no curve (no eligible users).
    #[serde(flatten)]
    pub at_size: Option<Expectation>,
    pub expected_engaged: Option<f64>,
    pub base_rate: f64,
    pub average_precision: f64,
    pub positives_in_backtest: usize,
    pub eligible_in_backtest: usize,
    pub backtest: BacktestWindow,
    pub scored_users: usize,
    pub target_items: usize,
    pub control_size: usize,
    /// The fitted ranking model; None when the ranking fell back to CF affinity or a
    /// heuristic serves (see `ranking`).
    pub model: Option<PropensityModel>,
    pub fallback_reason: Option<String>,
    /// Why the audience is smaller than asked, when it is.
    pub size_reason: Option<String>,
    /// Which ranking serves (learned, or a heuristic that beat it on every held-out fold of
    /// the backtest), why, and each competitor's backtest figures. None in estimates stored
    /// before the guard existed.
    #[serde(default)]
    pub ranking: Option<RankingChoice>,
    /// What users were ranked by: the target's own interactions, or (for a target nobody
    /// engaged with yet) the items sharing its columns. None in estimates stored before.
    #[serde(default)]
    pub basis: Option<RankingBasis>,
}

/// Who entered and who exited between a snapshot and the live one before it (all members,
/// control group included: it is who the audience holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChanges {
    /// The snapshot compared with. None only in changes stored before snapshots were
    /// numbered whose previous row was gone at the v9 migration.
    #[serde(default)]
    pub previous_snapshot: Option<i64>,
    pub entered: usize,
    pub exited: usize,
    pub stayed: usize,
    /// Up to [`LISTED_CHANGES`] ids each.
    pub entered_users: Vec<String>,
    pub exited_users: Vec<String>,
}

/// One numbered computation of an audience, with its parts typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// 1 for the first.
    pub number: i64,
    pub status: AudienceStatus,
    pub model_id: Option<i64>,
    pub size: i64,
    pub created_at: i64,
    pub computed_at: Option<i64>,
    pub estimate: Option<AudienceEstimate>,
    pub changes: Option<SnapshotChanges>,
    pub error: Option<String>,
    /// False once its member list was dropped (only the newest [`KEPT_MEMBER_LISTS`] live
    /// snapshots keep theirs; estimate and changes are kept).
    pub members_kept: bool,
}

/// An audience: its definition, its newest snapshot and the newest live one (whose members
/// are the audience's while a refresh computes).
#[derive(Debug, Clone, PartialEq)]
pub struct Audience {
    pub id: i64,
    pub name: String,
    pub spec: AudienceSpec,
    pub created_at: i64,
    pub latest: Snapshot,
    pub live: Option<Snapshot>,
}

impl Audience {
    /// The newest snapshot is queued or computing.
    pub fn in_progress(&self) -> bool {
        matches!(
            self.latest.status,
            AudienceStatus::Queued | AudienceStatus::Computing
        )
    }
}

fn stored<T: serde::de::DeserializeOwned>(id: i64, what: &str, v: &Value) -> Result<Option<T>> {
    if v.is_null() {
        return Ok(None);
    }
    serde_json::from_value(v.clone())
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("audience {id}: unreadable {what}: {e}")).into())
}

fn to_stored<T: Serialize>(what: &str, v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| EngineError::Internal(format!("cannot encode {what}: {e}")))
}

impl Snapshot {
    fn decode(audience: i64, r: SnapshotRecord) -> Result<Self> {
        let what = |w: &str| format!("{w} of snapshot {}", r.snapshot);
        Ok(Self {
            status: AudienceStatus::parse(&r.status).ok_or_else(|| {
                EngineError::from(StoreError::Corrupt(format!(
                    "audience {audience}: snapshot {} status {:?}",
                    r.snapshot, r.status
                )))
            })?,
            estimate: stored(audience, &what("estimate"), &r.estimate)?,
            changes: stored(audience, &what("changes"), &r.changes)?,
            number: r.snapshot,
            model_id: r.model_id,
            size: r.size,
            created_at: r.created_at,
            computed_at: r.computed_at,
            error: r.error,
            members_kept: r.members_kept,
        })
    }
}

impl TryFrom<AudienceRecord> for Audience {
    type Error = EngineError;

    fn try_from(r: AudienceRecord) -> Result<Self> {
        let corrupt = |what: String| EngineError::from(StoreError::Corrupt(what));
        Ok(Self {
            spec: stored(r.id, "definition", &r.spec)?
                .ok_or_else(|| corrupt(format!("audience {}: no definition", r.id)))?,
            latest: Snapshot::decode(r.id, r.latest)?,
            live: r.live.map(|l| Snapshot::decode(r.id, l)).transpose()?,
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        })
    }
}

/// The target resolved against the serving model's catalog alone (no newer build to consult).
fn target_items(catalog: &ItemCatalog, target: &Target) -> Result<ResolvedTarget> {
    audience_target::resolve(catalog, catalog, target)
}

/// Scores the target's items over the serving model's catalog.
fn score(
    model: &ServingModel,
    items: &[u32],
    related: &[Vec<u32>],
    horizon_days: Option<u32>,
    event: Option<&str>,
    question: AudienceQuestion,
    seed: u64,
) -> Result<(Arc<PropensityContext>, AudienceScores, Horizon)> {
    let event = event_index(model, event)?;
    let horizon = resolve_horizon(model, items, horizon_days, event);
    let context = model.propensity(horizon.days)?;
    let scores = context.audience(
        items,
        &AudienceOptions {
            seed,
            event,
            related: related.to_vec(),
            question,
            ..AudienceOptions::default()
        },
    )?;
    Ok((context, scores, horizon))
}

/// The curve's expectation at `fraction` of scored users, linearly between its points.
pub fn expectation_at(curve: &[CurvePoint], fraction: f64) -> Option<Expectation> {
    let first = curve.first()?;
    let (a, b) = match curve.iter().position(|c| c.fraction >= fraction) {
        Some(0) => (first, first),
        Some(i) => (&curve[i - 1], &curve[i]),
        None => (&curve[curve.len() - 1], &curve[curve.len() - 1]),
    };
    let t = if b.fraction > a.fraction {
        ((fraction - a.fraction) / (b.fraction - a.fraction)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mix = |x: f64, y: f64| x + (y - x) * t;
    Some(Expectation {
        expected_precision: mix(a.expected_precision, b.expected_precision),
        expected_recall: mix(a.expected_recall, b.expected_recall),
        lift: mix(a.lift, b.lift),
    })
}

pub struct Computed {
    pub members: Vec<Member>,
    /// Each member's user index in the model's catalog, by position in `members`.
    pub users: Vec<u32>,
    /// Every scored user in rank order ([`encode_ranking`]).
    pub ranking: Vec<u8>,
    /// The horizon's context the members were scored with (for their explanations); None
    /// when the target gave nothing to rank by (no members).
    pub context: Option<Arc<PropensityContext>>,
    pub estimate: AudienceEstimate,
}

/// Computes an audience snapshot for the resolved target `items`: members and the estimate.
pub fn compute(
    store: &SqliteStore,
    model: &ServingModel,
    spec: &AudienceSpec,
    target: &ResolvedTarget,
    seed: u64,
) -> Result<Computed> {
    if target.basis.basis == BasisKind::Nothing {
        return Ok(nothing_to_rank(model, spec, target));
    }
    let items = &target.items;
    let (context, scores, horizon) = score(
        model,
        items,
        &target.related,
        spec.horizon_days,
        spec.event.as_deref(),
        spec.question,
        seed,
    )?;
    let scored = scores.ranked.len();
    let wanted = spec.wanted(scored);
    // The model's own scale where it predicts something else than the audience's question
    // (a next visit).
    let floor = match &scores.model {
        Some(m) => (m.base_rate.unwrap_or(scores.base_rate) * MEANINGFUL_SHARE_OF_BASE_RATE) as f32,
        None => f32::NEG_INFINITY,
    };
    // A score of 0 or less is no evidence at all (a collaborative affinity of nothing): such
    // users are never added to fill the size.
    let selected: Vec<(u32, f32)> = scores
        .ranked
        .iter()
        .take(wanted)
        .copied()
        .take_while(|&(_, s)| s >= floor && s > 0.0)
        .collect();
    let size_reason = (selected.len() < wanted).then(|| {
        if scores.model.is_none() {
            return format!(
                "only {} of the {wanted} users asked for have a positive score; the rest show no affinity for the target at all",
                selected.len()
            );
        }
        format!(
            "only {} of the {wanted} users asked for have a meaningful propensity (at least {:.0}% of the base rate of {:.4}); the rest would add almost no engaged users",
            selected.len(),
            MEANINGFUL_SHARE_OF_BASE_RATE * 100.0,
            scores.base_rate
        )
    });
    let labels = store.profile_labels()?;
    let (users, mut members): (Vec<u32>, Vec<Member>) = selected
        .iter()
        .filter_map(|&(u, s)| {
            let profile = model.catalog.users[u as usize];
            labels
                .get(&profile)
                .map(|label| (u, profile, label.clone(), s))
        })
        .enumerate()
        .map(|(i, (u, profile_id, user_id, score))| {
            (
                u,
                Member {
                    rank: i as i64 + 1,
                    profile_id,
                    user_id,
                    score: f64::from(score),
                    control: false,
                },
            )
        })
        .unzip();
    // The control group: a seeded random share of the selected users, so lift can be measured
    // after a campaign; the same audience and seed always hold out the same people.
    let n_control = ((spec.control_percent / 100.0) * members.len() as f64).round() as usize;
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x00c0_7201));
    for &i in order.iter().take(n_control) {
        members[i].control = true;
    }
    let fraction = if scored == 0 {
        0.0
    } else {
        members.len() as f64 / scored as f64
    };
    let at_size = expectation_at(&scores.curve, fraction);
    let estimate = AudienceEstimate {
        expected_engaged: at_size.map(|e| e.expected_precision * members.len() as f64),
        at_size,
        base_rate: scores.base_rate,
        average_precision: scores.average_precision,
        positives_in_backtest: scores.positives_in_backtest,
        eligible_in_backtest: scores.eligible_in_backtest,
        backtest: BacktestWindow {
            from: format_millis(context.backtest_time()),
            to: format_millis(context.as_of()),
            horizon_days: horizon.days,
            horizon_source: Some(horizon.source.to_string()),
            horizon_reason: horizon.reason,
        },
        scored_users: scored,
        target_items: target.target_items,
        control_size: n_control,
        model: scores.model,
        fallback_reason: scores.fallback_reason,
        size_reason,
        ranking: Some(scores.ranking),
        basis: Some(target.basis.clone()),
    };
    let ranking = encode_ranking(
        scores
            .ranked
            .iter()
            .map(|&(u, s)| (model.catalog.users[u as usize], s)),
    );
    Ok(Computed {
        members,
        users,
        ranking,
        context: Some(context),
        estimate,
    })
}

/// Bytes per scored user in a snapshot's ranking: the profile id (i64) and the score (f32),
/// little-endian, best first. 12 MB for a million scored users, kept with the member list.
const RANKED_BYTES: usize = 12;

pub fn encode_ranking(ranked: impl Iterator<Item = (i64, f32)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (profile, score) in ranked {
        out.extend_from_slice(&profile.to_le_bytes());
        out.extend_from_slice(&score.to_le_bytes());
    }
    out
}

/// Where `profile` ranked in an encoded ranking: its 1-based rank and score, with the
/// number of users ranked. A linear scan (a few ms for a million users): read once per
/// explanation request.
pub fn find_in_ranking(ranking: &[u8], profile: i64) -> (Option<(usize, f32)>, usize) {
    let total = ranking.len() / RANKED_BYTES;
    let found = ranking
        .chunks_exact(RANKED_BYTES)
        .position(|c| c[..8] == profile.to_le_bytes())
        .map(|i| {
            let c = &ranking[i * RANKED_BYTES..(i + 1) * RANKED_BYTES];
            let score = f32::from_le_bytes([c[8], c[9], c[10], c[11]]);
            (i + 1, score)
        });
    (found, total)
}

/// A member's explanation as stored with the snapshot, computed with its model (so a later
/// model does not change it). Short keys: one is stored per member (about 300–600 bytes of
/// JSON with ten target events and five similar items).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredWhy {
    /// Raw features (input of the estimate's model); empty when no learned model ranked.
    f: Vec<f32>,
    /// Newest engagements with the target: (item, event, time), newest first, up to 10.
    t: Vec<(String, String, i64)>,
    /// Own items closest to the target: (item, cosine), up to 5.
    s: Vec<(String, f32)>,
}

/// Up to this many of a member's newest engagements with the target are kept.
const TARGET_EVENTS: usize = 10;
/// Up to this many of a member's own items closest to the target are kept.
const SIMILAR_ENGAGED: usize = 5;

/// Members explained and stored (and messages built) this many at a time: a snapshot of a
/// million members holds one chunk of explanations (about 0.4 KB each) and one chunk of
/// messages (about 0.5 KB each, two per member and destination) in memory, never all.
pub(crate) const SNAPSHOT_CHUNK: usize = 10_000;

/// Explains members with the snapshot's model, a chunk at a time: features (one pass over
/// the target per chunk), their engagements with the target and their own items closest to
/// it.
struct Explainer<'a> {
    model: &'a ServingModel,
    context: &'a PropensityContext,
    items: &'a [u32],
    learned: bool,
    /// The audience's event (its features are the model's input).
    event: Option<u8>,
    /// Positions in `catalog.interactions` grouped by user (oldest first within a user):
    /// user `u`'s are `by_user[starts[u]..starts[u + 1]]`. Four bytes per interaction, built
    /// once, instead of a pass over every interaction per chunk.
    starts: Vec<u32>,
    by_user: Vec<u32>,
    target: HashSet<u32>,
    centre: Vec<f32>,
}

impl<'a> Explainer<'a> {
    fn new(
        model: &'a ServingModel,
        context: &'a PropensityContext,
        items: &'a [u32],
        learned: bool,
        event: Option<u8>,
    ) -> Self {
        let catalog = &model.catalog;
        let n = catalog.users.len();
        let mut starts = vec![0u32; n + 1];
        for x in &catalog.interactions {
            starts[x.user as usize + 1] += 1;
        }
        for u in 0..n {
            starts[u + 1] += starts[u];
        }
        let mut next = starts.clone();
        let mut by_user = vec![0u32; catalog.interactions.len()];
        for (i, x) in catalog.interactions.iter().enumerate() {
            let slot = &mut next[x.user as usize];
            by_user[*slot as usize] = i as u32;
            *slot += 1;
        }
        Self {
            model,
            context,
            items,
            learned,
            event,
            starts,
            by_user,
            target: items.iter().copied().collect(),
            centre: target_centre(context.now_model(), items),
        }
    }

    /// The stored explanations of `users` (catalog indices), in order, computed in parallel.
    fn explain(&self, users: &[u32]) -> Result<Vec<String>> {
        use rayon::prelude::*;
        let catalog = &self.model.catalog;
        let features = if self.learned {
            self.context.feature_rows(self.items, users, self.event)?
        } else {
            vec![Vec::new(); users.len()]
        };
        let als = self.context.now_model();
        users
            .par_iter()
            .zip(features)
            .map(|(&u, f)| {
                let own = &self.by_user
                    [self.starts[u as usize] as usize..self.starts[u as usize + 1] as usize];
                let interactions = own.iter().map(|&i| &catalog.interactions[i as usize]);
                let why = StoredWhy {
                    f,
                    t: target_events(catalog, interactions.clone(), &self.target)
                        .into_iter()
                        .map(|e| (e.item_id, e.event, e.timestamp))
                        .collect(),
                    s: similar_engaged(catalog, als, &self.centre, interactions, &self.target),
                };
                serde_json::to_string(&why).map_err(|e| {
                    EngineError::Internal(format!("cannot encode an explanation: {e}"))
                })
            })
            .collect()
    }
}

fn target_centre(als: &affinity_model::AlsModel, items: &[u32]) -> Vec<f32> {
    let mut centre = vec![0f32; als.factors()];
    for &i in items {
        if let Ok(v) = als.item_vector(i) {
            centre.iter_mut().zip(v).for_each(|(c, x)| *c += x);
        }
    }
    centre
}

/// The newest engagements with the target among `interactions` (oldest first).
fn target_events<'a>(
    catalog: &ItemCatalog,
    interactions: impl DoubleEndedIterator<Item = &'a affinity_core::item_catalog::Interaction>,
    target: &HashSet<u32>,
) -> Vec<TargetEvent> {
    interactions
        .rev()
        .filter(|x| target.contains(&x.item))
        .take(TARGET_EVENTS)
        .map(|x| TargetEvent {
            item_id: catalog.items[x.item as usize].clone(),
            event: catalog.config.events[x.event as usize].name.clone(),
            timestamp: x.timestamp,
        })
        .collect()
}

/// The user's own items (not the target's) closest to the target by the collaborative
/// model's item vectors, with the cosine similarity.
fn similar_engaged<'a>(
    catalog: &ItemCatalog,
    als: &affinity_model::AlsModel,
    centre: &[f32],
    interactions: impl Iterator<Item = &'a affinity_core::item_catalog::Interaction>,
    target: &HashSet<u32>,
) -> Vec<(String, f32)> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let mut own: HashMap<u32, f32> = HashMap::new();
    for x in interactions.filter(|x| !target.contains(&x.item)) {
        if let Ok(v) = als.item_vector(x.item) {
            let cos =
                v.iter().zip(centre).map(|(a, b)| a * b).sum::<f32>() / (norm(v) * norm(centre));
            own.insert(x.item, cos);
        }
    }
    let mut similar: Vec<(u32, f32)> = own.into_iter().collect();
    similar.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    similar
        .into_iter()
        .take(SIMILAR_ENGAGED)
        .map(|(i, s)| (catalog.items[i as usize].clone(), s))
        .collect()
}

/// An audience whose target gives nothing to rank by: empty, live, with the reason (never
/// everyone at a score of 0).
fn nothing_to_rank(model: &ServingModel, spec: &AudienceSpec, target: &ResolvedTarget) -> Computed {
    let horizon = resolve_horizon(model, &[], spec.horizon_days, None);
    let as_of = model.catalog.as_of;
    let reason = target.basis.reason.clone();
    Computed {
        members: Vec::new(),
        users: Vec::new(),
        ranking: Vec::new(),
        context: None,
        estimate: AudienceEstimate {
            at_size: None,
            expected_engaged: None,
            base_rate: 0.0,
            average_precision: 0.0,
            positives_in_backtest: 0,
            eligible_in_backtest: 0,
            backtest: BacktestWindow {
                from: format_millis(as_of - i64::from(horizon.days) * 86_400_000),
                to: format_millis(as_of),
                horizon_days: horizon.days,
                horizon_source: Some(horizon.source.to_string()),
                horizon_reason: horizon.reason,
            },
            scored_users: 0,
            target_items: target.target_items,
            control_size: 0,
            model: None,
            fallback_reason: reason.clone(),
            size_reason: reason,
            ranking: None,
            basis: Some(target.basis.clone()),
        },
    }
}

/// Computes snapshot `number` of `audience` (stored as computing) and stores its members with
/// their explanations (a chunk per transaction), the destinations' messages about who entered
/// and exited since the live snapshot before (held, a chunk per transaction), then, in one
/// short transaction, the ranking of every scored user, the estimate, the changes, and the
/// release of those messages.
fn finish_snapshot(
    store: &SqliteStore,
    model: &ServingModel,
    target: &ResolvedTarget,
    seed: u64,
    clock: &Clock,
    id: i64,
    number: i64,
) -> Result<Computed> {
    let audience: Audience = store
        .audience(id)?
        .ok_or_else(|| EngineError::NotFound(format!("no audience {id}")))?
        .try_into()?;
    let computed = compute(store, model, &audience.spec, target, seed)?;
    // The live snapshot before this one: what destinations hold now. Who entered and exited
    // since is read with SQL from both snapshots' stored members once this one's are written.
    let previous = audience
        .live
        .as_ref()
        .filter(|l| l.number < number)
        .map(|p| p.number);
    // The members with their explanations, a chunk at a time, each in a transaction of its
    // own: unread until the snapshot is live, deleted if it fails.
    let started = std::time::Instant::now();
    let event = event_index(model, audience.spec.event.as_deref())?;
    let explainer = computed.context.as_deref().map(|context| {
        Explainer::new(
            model,
            context,
            &target.items,
            computed.estimate.model.is_some(),
            event,
        )
    });
    let mut why_bytes = 0;
    for (members, users) in computed
        .members
        .chunks(SNAPSHOT_CHUNK)
        .zip(computed.users.chunks(SNAPSHOT_CHUNK))
    {
        let why = match &explainer {
            Some(e) => e.explain(users)?,
            // Nothing to rank by: no members to explain.
            None => Vec::new(),
        };
        why_bytes += why.iter().map(String::len).sum::<usize>();
        if !store.add_snapshot_members(id, number, members, &why)? {
            // Deleted while it computed: nothing more to store.
            return Ok(computed);
        }
    }
    drop(explainer);
    tracing::info!(
        audience = id,
        snapshot = number,
        members = computed.members.len(),
        bytes = why_bytes,
        ranking_bytes = computed.ranking.len(),
        ms = started.elapsed().as_millis() as u64,
        "members stored with their explanations"
    );
    let changes = previous
        .map(|p| {
            to_stored(
                "changes",
                &changes(store, id, number, p, computed.members.len())?,
            )
        })
        .transpose()?;
    let finished = FinishedSnapshot {
        model_id: model.record.id,
        size: computed.members.len() as i64,
        ranking: &computed.ranking,
        estimate: &to_stored("the estimate", &computed.estimate)?,
        changes: changes.as_ref(),
        computed_at: clock.now_ms(),
        spec: None,
    };
    publish_to_current_destinations(store, id, number, previous, &finished, clock)?;
    Ok(computed)
}

/// Publishes snapshot `number` of audience `id` ([`publish`]) to the audience's destinations
/// as they are now, not as when its computation started: a change made meanwhile backfilled
/// the new ones from the snapshot live then, so this one's entries and exits must reach them
/// too. Where they change again while the messages are queued, it queues them again.
fn publish_to_current_destinations(
    store: &SqliteStore,
    id: i64,
    number: i64,
    previous: Option<i64>,
    finished: &FinishedSnapshot<'_>,
    clock: &Clock,
) -> Result<SnapshotFinished> {
    for attempt in 1..=crate::destinations::SPEC_ATTEMPTS {
        let Some(current) = store.audience(id)? else {
            return Ok(SnapshotFinished::Gone); // deleted while it computed
        };
        let spec = current.spec.clone();
        let current: Audience = current.try_into()?;
        match publish(store, &current, number, previous, finished, &spec, clock)? {
            SnapshotFinished::Stale => tracing::info!(
                audience = id,
                snapshot = number,
                attempt,
                "the audience's destinations changed while the snapshot's messages were \
                 queued: queueing them again for the new ones"
            ),
            done => return Ok(done),
        }
    }
    // Each attempt queues the members' changes once: changing the destinations this often
    // while they are queued is a loop, not bad luck. The snapshot fails, saying why; the
    // next refresh computes it again.
    Err(EngineError::DestinationsChanging {
        snapshot: number,
        attempts: crate::destinations::SPEC_ATTEMPTS,
    })
}

/// Queues the messages for the audience's destinations (who entered and exited the treatment
/// group since `previous`), a chunk per transaction under a hold that the snapshot's own
/// transaction releases (SQLite's write lock is never held for more than a chunk, and the
/// worker sees the messages exactly when the snapshot is live), then makes the snapshot live
/// if the audience's definition is still `spec`, the one they were queued for. A hold whose
/// snapshot did not go live is dropped with its messages.
fn publish(
    store: &SqliteStore,
    audience: &Audience,
    number: i64,
    previous: Option<i64>,
    finished: &FinishedSnapshot<'_>,
    spec: &Value,
    clock: &Clock,
) -> Result<SnapshotFinished> {
    let id = audience.id;
    let started = std::time::Instant::now();
    let hold =
        store.create_outbox_hold(&format!("audience {id} snapshot {number}"), clock.now_ms())?;
    let outcome = crate::destinations::queue_snapshot_messages(
        store,
        audience,
        number,
        previous,
        hold,
        clock.now_ms(),
    )
    .and_then(|queued| {
        let Some(queued) = queued else {
            return Ok((SnapshotFinished::Gone, None));
        };
        let release = std::time::Instant::now();
        let finished = FinishedSnapshot {
            spec: Some(spec),
            ..*finished
        };
        let outcome = store.finish_audience(id, number, &finished, Some(hold))?;
        Ok((outcome, Some((queued, release.elapsed()))))
    });
    match outcome {
        // `live_ms`: the transaction that made it live (and released the messages).
        Ok((SnapshotFinished::Live, Some((queued, release)))) => {
            tracing::info!(
                audience = id,
                snapshot = number,
                entered = queued.entered,
                exited = queued.exited,
                ms = started.elapsed().as_millis() as u64,
                live_ms = release.as_millis() as u64,
                "snapshot live with its messages queued"
            );
            Ok(SnapshotFinished::Live)
        }
        // Deleted while it computed, or queued for destinations since replaced (or failed):
        // its held messages go, a chunk at a time.
        Ok((outcome, _)) => {
            store.drop_outbox_hold(hold)?;
            Ok(outcome)
        }
        Err(e) => {
            store.drop_outbox_hold(hold)?;
            Err(e)
        }
    }
}

/// Creates and computes a new audience synchronously, for callers without a runtime to keep
/// free (`affinity demo`). Returns its id and what was computed.
pub fn create_now(
    store: &SqliteStore,
    model: &ServingModel,
    spec: &AudienceSpec,
    seed: u64,
) -> Result<(i64, Computed)> {
    let target = target_items(&model.catalog, &spec.target)?;
    event_index(model, spec.event.as_deref())?;
    let clock = Clock::default();
    let id = store.create_audience(
        &spec.name,
        &to_stored("the audience definition", spec)?,
        AudienceStatus::Computing.as_str(),
        clock.now_ms(),
    )?;
    match finish_snapshot(store, model, &target, seed, &clock, id, 1) {
        Ok(computed) => Ok((id, computed)),
        Err(e) => {
            store.fail_audience(id, 1, &e.to_string())?;
            Err(e)
        }
    }
}

/// Who entered and who left between snapshot `previous` and snapshot `number` (of `size`
/// members) of audience `id`, both stored: counted and listed with SQL over the members.
fn changes(
    store: &SqliteStore,
    id: i64,
    number: i64,
    previous: i64,
    size: usize,
) -> Result<SnapshotChanges> {
    let entered = store.count_members_not_in(id, number, previous)? as usize;
    let exited = store.count_members_not_in(id, previous, number)? as usize;
    let listed = |snapshot: i64, other: i64| -> Result<Vec<String>> {
        Ok(store
            .members_not_in(id, snapshot, other, false, 0, LISTED_CHANGES)?
            .into_iter()
            .map(|m| m.user_id)
            .collect())
    };
    Ok(SnapshotChanges {
        previous_snapshot: Some(previous),
        entered,
        exited,
        stayed: size.saturating_sub(entered),
        entered_users: listed(number, previous)?,
        exited_users: listed(previous, number)?,
    })
}

/// One of a member's own engagements with the target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetEvent {
    pub item_id: String,
    pub event: String,
    pub timestamp: i64,
}

/// Why a member scored as they did.
#[derive(Debug, Clone, PartialEq)]
pub enum Explanation {
    /// The person is no longer in the serving model's catalog (merged, or data removed).
    NotInCatalog,
    /// Not stored with the snapshot (computed before v9 stored explanations) and its model
    /// no longer serves: nothing honest to show.
    NotRecorded { snapshot_model: Option<i64> },
    Explained {
        /// Each feature's contribution to the log-odds; None for a fallback audience.
        contributions: Option<Vec<Contribution>>,
        /// Their newest engagements with the target (up to 10).
        target_events: Vec<TargetEvent>,
        /// Their own items closest to the target (up to 5), with the cosine similarity.
        similar_items_engaged: Vec<(String, f32)>,
    },
}

impl Explanation {
    fn from_stored(text: &str, estimate: Option<&AudienceEstimate>) -> Result<Self> {
        let why: StoredWhy = serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("unreadable member explanation: {e}")))?;
        let contributions = match estimate.and_then(|e| e.model.as_ref()) {
            Some(m) if !why.f.is_empty() => Some(m.contributions(&why.f)?),
            _ => None,
        };
        Ok(Self::Explained {
            contributions,
            target_events: why
                .t
                .into_iter()
                .map(|(item_id, event, timestamp)| TargetEvent {
                    item_id,
                    event,
                    timestamp,
                })
                .collect(),
            similar_items_engaged: why.s,
        })
    }
}

/// Explains `profile_id`'s score live with the serving model (which must be the snapshot's),
/// the audience's own fitted model (from its estimate) and that model's features: for
/// members of snapshots stored without explanations.
fn explain(
    model: &ServingModel,
    spec: &AudienceSpec,
    target: &ResolvedTarget,
    estimate: Option<&AudienceEstimate>,
    profile_id: i64,
) -> Result<Explanation> {
    let catalog = &model.catalog;
    let Some(user) = catalog.user_index(profile_id) else {
        return Ok(Explanation::NotInCatalog);
    };
    let items = target.items.clone();
    // The horizon the estimate's model was fitted at (features such as "recent" depend on it).
    let event = event_index(model, spec.event.as_deref())?;
    let horizon_days = match estimate {
        Some(e) => e.backtest.horizon_days,
        None => resolve_horizon(model, &items, spec.horizon_days, event).days,
    };
    let context = model.propensity(horizon_days)?;
    let contributions = match estimate.and_then(|e| e.model.as_ref()) {
        Some(m) => Some(m.contributions(&context.features(&items, user, event)?)?),
        None => None,
    };
    let target: HashSet<u32> = items.iter().copied().collect();
    let own: Vec<&affinity_core::item_catalog::Interaction> = catalog
        .interactions
        .iter()
        .filter(|x| x.user == user)
        .collect();
    let als = context.now_model();
    let centre = target_centre(als, &items);
    Ok(Explanation::Explained {
        contributions,
        target_events: target_events(catalog, own.iter().copied(), &target),
        similar_items_engaged: similar_engaged(catalog, als, &centre, own.into_iter(), &target),
    })
}

/// Why a user who is not in a snapshot's treatment group is out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutReason {
    /// Scored, but ranked after the last member (the maximum size, or the floor of
    /// meaningful propensity, cut before them).
    BelowCutoff,
    /// Not among the scored users: no activity in the snapshot's model (new since, or only
    /// non-interaction events).
    NotScored,
    /// The snapshot's ranking was dropped with its member list (retention).
    RankingNotKept,
}

impl OutReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BelowCutoff => "below_cutoff",
            Self::NotScored => "not_scored",
            Self::RankingNotKept => "ranking_not_kept",
        }
    }
}

/// The audience's last member in a snapshot: who is out ranks after them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cutoff {
    pub rank: i64,
    pub score: f64,
}

/// Where a user stands in a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// In the snapshot (`member.control` says whether in its control group, held out of
    /// destinations), explained with the snapshot's model.
    Member { member: Member, why: Explanation },
    Out {
        user_id: String,
        reason: OutReason,
        /// Their rank among the scored users and their score, when scored.
        rank: Option<usize>,
        score: Option<f32>,
        scored_users: usize,
        cutoff: Option<Cutoff>,
        /// Each feature's contribution under the snapshot's model, when that model still
        /// serves and a learned model ranked.
        contributions: Option<Vec<Contribution>>,
        /// Said plainly when the snapshot's model no longer serves.
        model_note: Option<String>,
    },
}

/// A user's standing in one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberAnswer {
    pub snapshot: i64,
    /// The model the snapshot (and so the explanation) was computed with.
    pub model_id: Option<i64>,
    pub standing: Standing,
}

/// The whole size curve of a target, for choosing a size before creating an audience.
#[derive(Debug, Clone)]
pub struct Preview {
    pub target: Target,
    /// The horizon used (given, or chosen from the data: then `horizon_reason` says how).
    pub horizon_days: u32,
    pub horizon_reason: Option<String>,
    pub target_items: usize,
    pub scores: AudienceScores,
    pub at_20_percent: Option<Expectation>,
    /// What users were ranked by (the target's interactions, or items sharing its columns).
    pub basis: RankingBasis,
}

/// The preview of a target that gives nothing to rank by: no curve, and the reason.
fn empty_preview(
    model: &ServingModel,
    target: Target,
    horizon_days: Option<u32>,
    resolved: ResolvedTarget,
) -> Preview {
    let horizon = resolve_horizon(model, &[], horizon_days, None);
    let reason = resolved.basis.reason.clone().unwrap_or_default();
    Preview {
        target,
        horizon_days: horizon.days,
        horizon_reason: horizon.reason,
        target_items: resolved.target_items,
        scores: AudienceScores {
            ranked: Vec::new(),
            curve: Vec::new(),
            base_rate: 0.0,
            average_precision: 0.0,
            positives_in_backtest: 0,
            eligible_in_backtest: 0,
            model: None,
            fallback_reason: Some(reason.clone()),
            ranking: RankingChoice {
                served: BasisKind::Nothing.as_str().to_string(),
                reason,
                competitors: Vec::new(),
                // Nothing was ranked, so no question was measured.
                answered: None,
            },
        },
        at_20_percent: None,
        basis: resolved.basis,
    }
}

/// What set off a refresh without a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshTrigger {
    /// A training run published model `0`.
    Trained(i64),
    /// The schedule's periodic look: `daily` audiences a day old.
    Schedule,
}

const DAY_MS: i64 = 86_400_000;

impl Engine {
    /// Stores a new audience as `computing` (or `queued` behind others) and computes its
    /// first snapshot in the background. A column the catalog lacks is refused at once; a
    /// value or item nobody holds yet is accepted (see [`Engine::check_audience_target`]); an
    /// audience beyond the queue is refused ([`EngineError::Busy`]).
    pub async fn create_audience(&self, spec: AudienceSpec) -> Result<Audience> {
        self.start_snapshot(spec, None).await
    }

    /// The next snapshot of audience `id` (same id), recording who entered and exited.
    pub async fn refresh_audience(&self, id: i64) -> Result<Audience> {
        let audience = self.audience(id).await?;
        if audience.in_progress() {
            return Err(EngineError::AudienceComputing);
        }
        self.start_snapshot(audience.spec, Some(audience.id)).await
    }

    async fn start_snapshot(&self, spec: AudienceSpec, existing: Option<i64>) -> Result<Audience> {
        let model = self.serving()?;
        // Resolved once, here, so an unknown column or event is refused before anything is
        // stored.
        let target = self.resolve_target(&model, spec.target.clone()).await?;
        event_index(&model, spec.event.as_deref())?;
        // A place in the bounded queue before anything is stored: a refused audience leaves no
        // row, an accepted one is sure to be computed.
        let ticket = self.snapshots.admit()?;
        let worker = ticket.try_worker();
        let status = match worker {
            Some(_) => AudienceStatus::Computing,
            None => AudienceStatus::Queued,
        };
        let store = self.store.clone();
        let spec_json = to_stored("the audience definition", &spec)?;
        let name = spec.name.clone();
        let now = self.config.clock.now_ms();
        let (id, number) = blocking(move || match existing {
            None => Ok((
                store.create_audience(&name, &spec_json, status.as_str(), now)?,
                1,
            )),
            Some(id) => store
                .next_snapshot(id, status.as_str(), now)?
                .map(|n| (id, n))
                .ok_or(EngineError::AudienceComputing),
        })
        .await?;
        let (store, seed, clock) = (
            self.store.clone(),
            self.config.seed,
            self.config.clock.clone(),
        );
        tokio::spawn(ticket.run(worker, move || {
            // Deleted while it waited: nothing to compute.
            if status == AudienceStatus::Queued && !store.start_snapshot(id, number)? {
                return Ok(());
            }
            if let Err(e) = finish_snapshot(&store, &model, &target, seed, &clock, id, number) {
                tracing::warn!(audience = id, snapshot = number, error = %e, "audience snapshot failed");
                if let Err(e) = store.fail_audience(id, number, &e.to_string()) {
                    tracing::error!(audience = id, error = %e, "cannot record the failure");
                }
            }
            Ok(())
        }));
        self.audience(id).await
    }

    /// Refreshes the audiences `trigger` makes due; each failure is logged (one audience's
    /// full queue or error must not keep the others from refreshing).
    async fn refresh_due(&self, trigger: RefreshTrigger) {
        let audiences = match self.audiences().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot read audiences to refresh");
                return;
            }
        };
        let now = self.config.clock.now_ms();
        for a in audiences.iter().filter(|a| !a.in_progress()) {
            let due = match (trigger, a.spec.refresh) {
                // Not again for a model its live snapshot already used.
                (RefreshTrigger::Trained(model), Refresh::AfterTraining) => {
                    a.live.as_ref().and_then(|l| l.model_id) != Some(model)
                }
                // A day after the newest snapshot started (a failed one is retried a day on).
                (RefreshTrigger::Schedule, Refresh::Daily) => now - a.latest.created_at >= DAY_MS,
                _ => false,
            };
            if !due {
                continue;
            }
            match self.refresh_audience(a.id).await {
                Ok(r) => tracing::info!(
                    audience = a.id,
                    snapshot = r.latest.number,
                    refresh = a.spec.refresh.as_str(),
                    "audience refreshing"
                ),
                Err(e) => {
                    tracing::warn!(audience = a.id, error = %e, "cannot refresh the audience")
                }
            }
        }
    }

    /// After a training run published `model_id`: a new snapshot of every `after_training`
    /// audience.
    pub(crate) async fn refresh_after_training(&self, model_id: i64) {
        self.refresh_due(RefreshTrigger::Trained(model_id)).await;
    }

    /// The schedule's look for `daily` audiences whose newest snapshot is a day old.
    pub(crate) async fn refresh_daily(&self) {
        self.refresh_due(RefreshTrigger::Schedule).await;
    }

    /// The audience `id` names: itself, or the audience an id returned by a refresh before
    /// audiences kept their id now belongs to (an alias kept by the store's migration). An
    /// unknown id is returned as it is (reading it answers 404).
    pub async fn resolve_audience_id(&self, id: i64) -> Result<i64> {
        let store = self.store.clone();
        let resolved = blocking(move || Ok(store.resolve_audience_id(id)?)).await?;
        Ok(resolved.unwrap_or(id))
    }

    pub async fn audience(&self, id: i64) -> Result<Audience> {
        let store = self.store.clone();
        let record = blocking(move || Ok(store.audience(id)?)).await?;
        record
            .ok_or_else(|| EngineError::NotFound(format!("no audience {id}")))?
            .try_into()
    }

    /// Newest first. An unreadable audience is left out of the list and logged (reading it
    /// by id reports what is wrong): one bad row must not hide every other audience.
    pub async fn audiences(&self) -> Result<Vec<Audience>> {
        let store = self.store.clone();
        let records = blocking(move || Ok(store.audiences()?)).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let id = r.id;
                Audience::try_from(r)
                    .inspect_err(|e| tracing::error!(audience = id, error = %e, "unreadable audience left out of the list"))
                    .ok()
            })
            .collect())
    }

    /// Every snapshot of audience `id`, newest first.
    pub async fn audience_snapshots(&self, id: i64) -> Result<Vec<Snapshot>> {
        let store = self.store.clone();
        blocking(move || {
            if store.audience(id)?.is_none() {
                return Err(EngineError::NotFound(format!("no audience {id}")));
            }
            store
                .audience_snapshots(id)?
                .into_iter()
                .map(|r| Snapshot::decode(id, r))
                .collect()
        })
        .await
    }

    pub async fn delete_audience(&self, id: i64) -> Result<()> {
        let store = self.store.clone();
        let deleted = blocking(move || Ok(store.delete_audience(id)?)).await?;
        if deleted {
            Ok(())
        } else {
            Err(EngineError::NotFound(format!("no audience {id}")))
        }
    }

    /// The snapshot whose members are read: `snapshot`, or the audience's live one (None
    /// when no snapshot is live yet). An unknown, unfinished or pruned snapshot is a 404
    /// that says which.
    async fn members_snapshot(&self, id: i64, snapshot: Option<i64>) -> Result<Option<Snapshot>> {
        let store = self.store.clone();
        blocking(move || {
            let record = store
                .audience(id)?
                .ok_or_else(|| EngineError::NotFound(format!("no audience {id}")))?;
            let Some(n) = snapshot else {
                return record.live.map(|l| Snapshot::decode(id, l)).transpose();
            };
            let newest = record.latest.snapshot;
            let s = store.audience_snapshot(id, n)?.ok_or_else(|| {
                EngineError::NotFound(format!(
                    "audience {id} has no snapshot {n}: its snapshots are numbered 1 to {newest}"
                ))
            })?;
            let s = Snapshot::decode(id, s)?;
            if s.status != AudienceStatus::Live {
                return Err(EngineError::NotFound(format!(
                    "snapshot {n} of audience {id} is {}: it has no members",
                    s.status.as_str()
                )));
            }
            if !s.members_kept {
                return Err(EngineError::NotFound(format!(
                    "the members of snapshot {n} of audience {id} are no longer kept (only the newest {KEPT_MEMBER_LISTS} live snapshots keep theirs); its size and changes remain at /api/v1/audiences/{id}/snapshots"
                )));
            }
            Ok(Some(s))
        })
        .await
    }

    /// Members of `snapshot` (the live one if None) ranked after `after_rank` (0 for the
    /// first page), best first, with the snapshot read (None: nothing live yet, no members).
    pub async fn audience_members(
        &self,
        id: i64,
        snapshot: Option<i64>,
        after_rank: i64,
        limit: usize,
    ) -> Result<(Option<i64>, Vec<Member>)> {
        let Some(s) = self.members_snapshot(id, snapshot).await? else {
            return Ok((None, Vec::new()));
        };
        let store = self.store.clone();
        let n = s.number;
        let members =
            blocking(move || Ok(store.audience_members(id, n, after_rank, limit)?)).await?;
        Ok((Some(n), members))
    }

    /// Every member of `snapshot` (the live one if None) as CSV
    /// (`user_id,score,rank,control`), best first.
    pub async fn audience_members_csv(&self, id: i64, snapshot: Option<i64>) -> Result<Vec<u8>> {
        let number = self.members_snapshot(id, snapshot).await?.map(|s| s.number);
        let store = self.store.clone();
        blocking(move || {
            let all = match number {
                Some(n) => store.audience_members(id, n, 0, usize::MAX)?,
                None => Vec::new(),
            };
            let mut out = csv::Writer::from_writer(Vec::new());
            let failed = |e: csv::Error| EngineError::Internal(format!("cannot write CSV: {e}"));
            out.write_record(["user_id", "score", "rank", "control"])
                .map_err(failed)?;
            for m in &all {
                out.write_record([
                    m.user_id.clone(),
                    m.score.to_string(),
                    m.rank.to_string(),
                    m.control.to_string(),
                ])
                .map_err(failed)?;
            }
            out.into_inner()
                .map_err(|e| EngineError::Internal(format!("cannot write CSV: {e}")))
        })
        .await
    }

    /// Where `user_id` stands in `snapshot` (the live one if None): a member (treatment or
    /// control) with the explanation stored with the snapshot, or out, with their rank among
    /// the scored users, the cutoff and why. 404 only for a user the store does not know.
    pub async fn audience_member(
        &self,
        id: i64,
        snapshot: Option<i64>,
        user_id: String,
    ) -> Result<MemberAnswer> {
        let audience = self.audience(id).await?;
        let s = self.members_snapshot(id, snapshot).await?.ok_or_else(|| {
            EngineError::NotFound(format!(
                "audience {id} has no live snapshot yet: no one is a member"
            ))
        })?;
        let store = self.store.clone();
        let (uid, n) = (user_id.clone(), s.number);
        let (found, profile, ranking, last) = blocking(move || {
            let found = store.audience_member(id, n, &uid)?;
            let profile = match &found {
                Some((m, _)) => Some(m.profile_id),
                None => match store.profile(IdKind::UserId, &uid)? {
                    Some(p) => Some(p.id),
                    None => store.profile(IdKind::AnonymousId, &uid)?.map(|p| p.id),
                },
            };
            let (ranking, last) = if found.is_none() && profile.is_some() {
                let last = match store.audience_snapshot(id, n)? {
                    Some(r) if r.size > 0 => store.audience_members(id, n, r.size - 1, 1)?.pop(),
                    _ => None,
                };
                (store.snapshot_ranking(id, n)?, last)
            } else {
                (None, None)
            };
            Ok((found, profile, ranking, last))
        })
        .await?;
        let Some(profile) = profile else {
            return Err(EngineError::NotFound(format!(
                "no user {user_id:?} in the store (neither a userId nor an anonymousId)"
            )));
        };
        let serving = self.serving().ok();
        let same_model = serving
            .as_ref()
            .is_some_and(|m| Some(m.record.id) == s.model_id);
        let standing = match found {
            Some((member, Some(text))) => Standing::Member {
                why: Explanation::from_stored(&text, s.estimate.as_ref())?,
                member,
            },
            Some((member, None)) => {
                let why = match serving.filter(|_| same_model) {
                    Some(model) => {
                        self.explain_live(model, audience.spec.clone(), s.estimate.clone(), profile)
                            .await?
                    }
                    None => Explanation::NotRecorded {
                        snapshot_model: s.model_id,
                    },
                };
                Standing::Member { member, why }
            }
            None => {
                let (place, scored_users) = match &ranking {
                    Some(r) => find_in_ranking(r, profile),
                    None => (None, 0),
                };
                let reason = match (&ranking, place) {
                    (None, _) => OutReason::RankingNotKept,
                    (Some(_), Some(_)) => OutReason::BelowCutoff,
                    (Some(_), None) => OutReason::NotScored,
                };
                // Reasons by feature need the snapshot's model (and its context, fitted
                // again if evicted); None when a heuristic ranked.
                let (contributions, model_note) = match serving {
                    Some(model) if same_model && place.is_some() => {
                        match self
                            .explain_live(model, audience.spec.clone(), s.estimate.clone(), profile)
                            .await?
                        {
                            Explanation::Explained { contributions, .. } => (contributions, None),
                            _ => (None, None),
                        }
                    }
                    Some(model) if !same_model && place.is_some() => (
                        None,
                        Some(format!(
                            "snapshot {} was computed with model {}, which no longer serves (model {} does): its reasons by feature cannot be recomputed; rank and score are the snapshot's",
                            s.number,
                            s.model_id.map_or("?".into(), |m| m.to_string()),
                            model.record.id
                        )),
                    ),
                    _ => (None, None),
                };
                Standing::Out {
                    user_id,
                    reason,
                    rank: place.map(|p| p.0),
                    score: place.map(|p| p.1),
                    scored_users,
                    cutoff: last.map(|m| Cutoff {
                        rank: m.rank,
                        score: m.score,
                    }),
                    contributions,
                    model_note,
                }
            }
        };
        Ok(MemberAnswer {
            snapshot: s.number,
            model_id: s.model_id,
            standing,
        })
    }

    /// Explains `profile` live with `model` (the snapshot's own). With the horizon's context
    /// held, that takes milliseconds; without it, it fits one (seconds to minutes), so it
    /// waits its turn with the previews.
    async fn explain_live(
        &self,
        model: Arc<ServingModel>,
        spec: AudienceSpec,
        estimate: Option<AudienceEstimate>,
        profile: i64,
    ) -> Result<Explanation> {
        let cached = estimate
            .as_ref()
            .is_some_and(|e| model.has_propensity(e.backtest.horizon_days));
        let newest = self.catalog.snapshot().catalog;
        let job = move || {
            let newest = newest.as_deref().unwrap_or(&model.catalog);
            let target = audience_target::resolve(&model.catalog, newest, &spec.target)?;
            explain(&model, &spec, &target, estimate.as_ref(), profile)
        };
        if cached {
            blocking(job).await
        } else {
            self.previews.admit()?.run(None, job).await
        }
    }

    /// The whole size curve for `target` at `horizon_days` (chosen from the data if `None`),
    /// computed by a preview worker (or refused with [`EngineError::Busy`] when the preview
    /// queue is full).
    pub async fn preview_audience(
        &self,
        target: Target,
        horizon_days: Option<u32>,
        event: Option<String>,
        question: AudienceQuestion,
    ) -> Result<Preview> {
        let model = self.serving()?;
        // Refused before taking a place in the queue.
        event_index(&model, event.as_deref())?;
        let seed = self.config.seed;
        let ticket = self.previews.admit()?;
        let newest = self.catalog.snapshot().catalog;
        ticket
            .run(None, move || {
                let newest = newest.as_deref().unwrap_or(&model.catalog);
                let resolved = audience_target::resolve(&model.catalog, newest, &target)?;
                if resolved.basis.basis == BasisKind::Nothing {
                    return Ok(empty_preview(&model, target, horizon_days, resolved));
                }
                let (_, scores, horizon) = score(
                    &model,
                    &resolved.items,
                    &resolved.related,
                    horizon_days,
                    event.as_deref(),
                    question,
                    seed,
                )?;
                Ok(Preview {
                    at_20_percent: expectation_at(&scores.curve, 0.2),
                    target,
                    horizon_days: horizon.days,
                    horizon_reason: horizon.reason,
                    target_items: resolved.target_items,
                    scores,
                    basis: resolved.basis,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(rank: i64, user: &str) -> Member {
        Member {
            rank,
            profile_id: rank,
            user_id: user.to_string(),
            score: 1.0 / rank as f64,
            control: false,
        }
    }

    /// (user, event) of the destination's track messages due, not sent yet.
    fn told(store: &SqliteStore, destination: i64) -> HashSet<(String, String)> {
        store
            .due_messages(destination, i64::MAX, 1000)
            .expect("due")
            .iter()
            .filter_map(|r| {
                let body: Value = serde_json::from_str(&r.body).expect("a JSON body");
                Some((
                    body["userId"].as_str()?.to_string(),
                    body["event"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    fn entered(user: &str) -> (String, String) {
        (user.to_string(), "Audience Entered".to_string())
    }

    fn exited(user: &str) -> (String, String) {
        (user.to_string(), "Audience Exited".to_string())
    }

    /// A destination added while a snapshot computes is backfilled from the snapshot live
    /// then; the snapshot, once computed, must tell it who entered and exited too, or it keeps
    /// the old members for good (the next snapshot only sends changes from this one). And a
    /// snapshot whose messages were queued for destinations replaced since does not go live
    /// with them.
    #[test]
    fn a_snapshot_reaches_the_destinations_its_audience_has_when_it_goes_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        let hook = |name: &str| {
            store
                .create_destination(name, "webhook", &serde_json::json!({}), 1)
                .expect("destination")
        };
        let (a, b) = (hook("a"), hook("b"));
        let spec = |destinations: &[i64]| AudienceSpec {
            name: "buyers".into(),
            target: Target::Item {
                item_id: "sku-1".into(),
            },
            max_size: affinity_core::audience::MaxSize::Count { count: 10 },
            horizon_days: Some(30),
            control_percent: 0.0,
            destinations: destinations.iter().map(i64::to_string).collect(),
            refresh: Default::default(),
            event: None,
            question: Default::default(),
        };
        let stored_spec = |d: &[i64]| to_stored("the definition", &spec(d)).expect("spec");
        let id = store
            .create_audience("buyers", &stored_spec(&[a]), "computing", 1)
            .expect("create");
        let clock = Clock::default();
        let estimate = serde_json::json!({
            "base_rate": 0.05, "average_precision": 0.2, "positives_in_backtest": 5,
            "eligible_in_backtest": 100, "scored_users": 100, "target_items": 1,
            "backtest": {"from": "2026-01-01T00:00:00.000Z", "to": "2026-01-31T00:00:00.000Z", "horizon_days": 30},
            "control_size": 0, "model": null, "fallback_reason": null, "size_reason": null
        });
        let finished = FinishedSnapshot {
            model_id: 1,
            size: 2,
            ranking: &[],
            estimate: &estimate,
            changes: None,
            computed_at: 2,
            spec: None,
        };
        let members = [member(1, "u1"), member(2, "u2")];
        assert!(
            store
                .add_snapshot_members(id, 1, &members, &[])
                .expect("add")
        );
        let live = publish_to_current_destinations(&store, id, 1, None, &finished, &clock);
        assert_eq!(live.expect("publish"), SnapshotFinished::Live);
        assert_eq!(
            told(&store, a),
            HashSet::from([entered("u1"), entered("u2")])
        );

        // Snapshot 2 computes (u1 leaves, u3 enters) while `b` is added (the change's backfill
        // of snapshot 1's members to `b`, `destinations::save_destinations`, is left out).
        assert_eq!(
            store.next_snapshot(id, "computing", 3).expect("next"),
            Some(2)
        );
        let read_at_start = store.audience(id).expect("read").expect("exists");
        let members = [member(1, "u2"), member(2, "u3")];
        assert!(
            store
                .add_snapshot_members(id, 2, &members, &[])
                .expect("add")
        );
        let saved = store
            .set_audience_spec(id, &stored_spec(&[a, b]), Some(1), None)
            .expect("change");
        assert_eq!(saved, affinity_store::SpecSaved::Saved);

        // Queued for the destinations read when the computation started: not made live.
        let stale: Audience = read_at_start.clone().try_into().expect("audience");
        let previous = Some(1);
        let outcome = publish(
            &store,
            &stale,
            2,
            previous,
            &finished,
            &read_at_start.spec,
            &clock,
        );
        assert_eq!(outcome.expect("publish"), SnapshotFinished::Stale);
        let audience = store.audience(id).expect("read").expect("exists");
        assert_eq!(audience.live.map(|l| l.snapshot), Some(1));
        assert!(told(&store, b).is_empty());
        let counts = store.delivery_counts(a).expect("counts");
        assert_eq!(
            (counts.held, counts.pending),
            (0, 4),
            "its hold was dropped"
        );

        // Published to the destinations as they are: `b` hears who entered and who exited.
        let live = publish_to_current_destinations(&store, id, 2, previous, &finished, &clock);
        assert_eq!(live.expect("publish"), SnapshotFinished::Live);
        assert_eq!(
            told(&store, b),
            HashSet::from([exited("u1"), entered("u3")])
        );
        let all = [entered("u1"), entered("u2"), exited("u1"), entered("u3")];
        assert_eq!(told(&store, a), HashSet::from(all));
        let audience = store.audience(id).expect("read").expect("exists");
        assert_eq!(audience.live.map(|l| l.snapshot), Some(2));
    }

    #[test]
    fn a_ranking_finds_each_user_s_rank_and_score() {
        let ranking = encode_ranking([(42, 0.9f32), (7, 0.5), (-3, 0.25)].into_iter());
        assert_eq!(ranking.len(), 3 * RANKED_BYTES);
        assert_eq!(find_in_ranking(&ranking, 7), (Some((2, 0.5)), 3));
        assert_eq!(find_in_ranking(&ranking, -3), (Some((3, 0.25)), 3));
        assert_eq!(find_in_ranking(&ranking, 8), (None, 3));
        assert_eq!(find_in_ranking(&[], 8), (None, 0));
    }

    #[test]
    fn estimates_stored_before_the_guard_still_decode_and_new_ones_keep_it() {
        let old = serde_json::json!({
            "expected_precision": 0.1, "expected_recall": 0.4, "lift": 2.0,
            "expected_engaged": 10.0, "base_rate": 0.05, "average_precision": 0.2,
            "positives_in_backtest": 50, "eligible_in_backtest": 1000,
            "backtest": {"from": "2026-01-01T00:00:00.000Z", "to": "2026-01-31T00:00:00.000Z", "horizon_days": 30},
            "scored_users": 1000, "target_items": 3, "control_size": 10,
            "model": null, "fallback_reason": null, "size_reason": null
        });
        let mut e: AudienceEstimate = serde_json::from_value(old).expect("an older estimate");
        assert_eq!(e.ranking, None);
        e.ranking = Some(RankingChoice {
            served: "heuristic:past_count".into(),
            reason: "why".into(),
            competitors: vec![Competitor {
                name: "past_count".into(),
                average_precision: 0.3,
                lift_at_20: 2.5,
                next_visit_average_precision: Some(0.4),
                next_visit_lift_at_20: None,
            }],
            answered: Some(AudienceQuestion::Balanced),
        });
        let stored = serde_json::to_value(&e).expect("encode");
        assert_eq!(stored["ranking"]["served"], "heuristic:past_count");
        assert_eq!(stored["ranking"]["answered"], "balanced");
        // A ranking stored before the answered question was recorded reads as unknown.
        let mut before = stored.clone();
        before["ranking"]
            .as_object_mut()
            .expect("ranking")
            .remove("answered");
        let before: AudienceEstimate = serde_json::from_value(before).expect("decode");
        assert_eq!(before.ranking.expect("ranking").answered, None);
        assert_eq!(
            serde_json::from_value::<AudienceEstimate>(stored).expect("decode"),
            e
        );
    }

    #[test]
    fn the_estimate_interpolates_the_curve() {
        let point = |fraction: f64, precision: f64, lift: f64| CurvePoint {
            fraction,
            size: (fraction * 100.0) as usize,
            expected_precision: precision,
            expected_recall: fraction,
            expected_engaged: precision * fraction * 100.0,
            lift,
        };
        let curve = [point(0.1, 0.5, 5.0), point(0.2, 0.3, 3.0)];
        let mid = expectation_at(&curve, 0.15).expect("a curve");
        assert!((mid.expected_precision - 0.4).abs() < 1e-9, "{mid:?}");
        assert!((mid.lift - 4.0).abs() < 1e-9, "{mid:?}");
        let lift = |f: f64| expectation_at(&curve, f).map(|e| e.lift);
        assert_eq!(
            lift(0.05),
            Some(5.0),
            "below the first point: the first point"
        );
        assert_eq!(
            lift(0.9),
            Some(3.0),
            "beyond the last point: the last point"
        );
        assert_eq!(expectation_at(&[], 0.5), None);
    }
}
