//! Audiences: the learned propensity ranking for a target, cut to the wanted size, a seeded
//! control group and the backtested estimate at that size; snapshots with who entered and
//! exited; explanations; previews of the whole size curve.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use affinity_core::audience::{AudienceSpec, Target, resolve_target};
use affinity_core::item_catalog::ItemCatalog;
use affinity_core::timestamp::format_millis;
use affinity_model::propensity::{
    AudienceOptions, AudienceScores, Contribution, CurvePoint, PropensityContext, PropensityModel,
    choose_horizon,
};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{AudienceRecord, AudienceStore, CatalogStore, Member, StoreError};

/// The guard's decision as stored in an estimate (plain data from the model crate).
pub use affinity_model::propensity::{Competitor, RankingChoice};

use crate::Engine;
use crate::clock::now_ms;
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

/// The audience's own horizon, or one chosen from the store's rhythm with the target
/// (`propensity::choose_horizon`: one pass over the target's interactions, no model fit).
pub fn resolve_horizon(model: &ServingModel, items: &[u32], given: Option<u32>) -> Horizon {
    match given {
        Some(days) => Horizon {
            days,
            source: "given",
            reason: None,
        },
        None => {
            let choice = choose_horizon(&model.catalog, items);
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
}

/// Who entered and who exited between a snapshot and the one before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChanges {
    pub previous_id: i64,
    pub entered: usize,
    pub exited: usize,
    pub stayed: usize,
    /// Up to [`LISTED_CHANGES`] ids each.
    pub entered_users: Vec<String>,
    pub exited_users: Vec<String>,
}

/// One audience snapshot as stored, with its parts typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Audience {
    pub id: i64,
    pub name: String,
    pub spec: AudienceSpec,
    pub status: AudienceStatus,
    pub size: i64,
    pub model_id: Option<i64>,
    pub created_at: i64,
    pub computed_at: Option<i64>,
    pub estimate: Option<AudienceEstimate>,
    pub error: Option<String>,
    pub previous_id: Option<i64>,
    pub changes: Option<SnapshotChanges>,
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

impl TryFrom<AudienceRecord> for Audience {
    type Error = EngineError;

    fn try_from(r: AudienceRecord) -> Result<Self> {
        let corrupt = |what: String| EngineError::from(StoreError::Corrupt(what));
        Ok(Self {
            spec: stored(r.id, "definition", &r.spec)?
                .ok_or_else(|| corrupt(format!("audience {}: no definition", r.id)))?,
            status: AudienceStatus::parse(&r.status)
                .ok_or_else(|| corrupt(format!("audience {}: status {:?}", r.id, r.status)))?,
            estimate: stored(r.id, "estimate", &r.estimate)?,
            changes: stored(r.id, "changes", &r.changes)?,
            id: r.id,
            name: r.name,
            size: r.size,
            model_id: r.model_id,
            created_at: r.created_at,
            computed_at: r.computed_at,
            error: r.error,
            previous_id: r.previous_id,
        })
    }
}

/// The target's items in the catalog, or a 422-style problem naming close values.
fn target_items(catalog: &ItemCatalog, target: &Target) -> Result<Vec<u32>> {
    resolve_target(catalog, target).map_err(|p| EngineError::invalid(Invalid::Audience, [p]))
}

/// Scores the target's items over the serving model's catalog.
fn score(
    model: &ServingModel,
    items: &[u32],
    horizon_days: Option<u32>,
    seed: u64,
) -> Result<(Arc<PropensityContext>, AudienceScores, Horizon)> {
    let horizon = resolve_horizon(model, items, horizon_days);
    let context = model.propensity(horizon.days)?;
    let scores = context.audience(
        items,
        &AudienceOptions {
            seed,
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
    pub estimate: AudienceEstimate,
}

/// Computes an audience snapshot for the resolved target `items`: members and the estimate.
pub fn compute(
    store: &SqliteStore,
    model: &ServingModel,
    spec: &AudienceSpec,
    items: &[u32],
    seed: u64,
) -> Result<Computed> {
    let (context, scores, horizon) = score(model, items, spec.horizon_days, seed)?;
    let scored = scores.ranked.len();
    let wanted = spec.wanted(scored);
    let floor = match &scores.model {
        Some(_) => (scores.base_rate * MEANINGFUL_SHARE_OF_BASE_RATE) as f32,
        None => f32::NEG_INFINITY,
    };
    let selected: Vec<(u32, f32)> = scores
        .ranked
        .iter()
        .take(wanted)
        .copied()
        .take_while(|&(_, s)| s >= floor)
        .collect();
    let size_reason = (selected.len() < wanted).then(|| {
        format!(
            "only {} of the {wanted} users asked for have a meaningful propensity (at least {:.0}% of the base rate of {:.4}); the rest would add almost no engaged users",
            selected.len(),
            MEANINGFUL_SHARE_OF_BASE_RATE * 100.0,
            scores.base_rate
        )
    });
    let labels = store.profile_labels()?;
    let mut members: Vec<Member> = selected
        .iter()
        .filter_map(|&(u, s)| {
            let profile = model.catalog.users[u as usize];
            labels
                .get(&profile)
                .map(|label| (profile, label.clone(), s))
        })
        .enumerate()
        .map(|(i, (profile_id, user_id, score))| Member {
            rank: i as i64 + 1,
            profile_id,
            user_id,
            score: f64::from(score),
            control: false,
        })
        .collect();
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
        target_items: items.len(),
        control_size: n_control,
        model: scores.model,
        fallback_reason: scores.fallback_reason,
        size_reason,
        ranking: Some(scores.ranking),
    };
    Ok(Computed { members, estimate })
}

/// Computes snapshot `id` (stored as computing) and stores its members, estimate and, for a
/// refresh of `previous`, who entered and exited, marking it live.
fn finish_snapshot(
    store: &SqliteStore,
    model: &ServingModel,
    spec: &AudienceSpec,
    items: &[u32],
    seed: u64,
    id: i64,
    previous: Option<i64>,
) -> Result<Computed> {
    let computed = compute(store, model, spec, items, seed)?;
    let changes = match previous {
        Some(p) => {
            let before = store.audience_members(p, 0, usize::MAX)?;
            Some(to_stored(
                "changes",
                &changes(&before, &computed.members, p),
            )?)
        }
        None => None,
    };
    // The messages for the audience's destinations, queued in the snapshot's transaction.
    let outbox = crate::destinations::snapshot_messages(
        store,
        id,
        previous,
        spec,
        &computed.members,
        now_ms(),
    )?;
    store.finish_audience(
        id,
        model.record.id,
        &computed.members,
        &to_stored("the estimate", &computed.estimate)?,
        changes.as_ref(),
        now_ms(),
        &outbox,
    )?;
    Ok(computed)
}

/// Creates and computes a new audience synchronously, for callers without a runtime to keep
/// free (`affinity demo`). Returns its id and what was computed.
pub fn create_now(
    store: &SqliteStore,
    model: &ServingModel,
    spec: &AudienceSpec,
    seed: u64,
) -> Result<(i64, Computed)> {
    let items = target_items(&model.catalog, &spec.target)?;
    let id = store.create_audience(
        &spec.name,
        &to_stored("the audience definition", spec)?,
        None,
        AudienceStatus::Computing.as_str(),
        now_ms(),
    )?;
    match finish_snapshot(store, model, spec, &items, seed, id, None) {
        Ok(computed) => Ok((id, computed)),
        Err(e) => {
            store.fail_audience(id, &e.to_string())?;
            Err(e)
        }
    }
}

/// Who entered and who left between two snapshots.
pub fn changes(before: &[Member], after: &[Member], previous_id: i64) -> SnapshotChanges {
    let old: HashSet<&str> = before.iter().map(|m| m.user_id.as_str()).collect();
    let new: HashSet<&str> = after.iter().map(|m| m.user_id.as_str()).collect();
    let entered: Vec<&str> = after
        .iter()
        .map(|m| m.user_id.as_str())
        .filter(|u| !old.contains(u))
        .collect();
    let exited: Vec<&str> = before
        .iter()
        .map(|m| m.user_id.as_str())
        .filter(|u| !new.contains(u))
        .collect();
    let listed = |ids: &[&str]| -> Vec<String> {
        ids.iter()
            .take(LISTED_CHANGES)
            .map(|s| s.to_string())
            .collect()
    };
    SnapshotChanges {
        previous_id,
        entered: entered.len(),
        exited: exited.len(),
        stayed: after.len() - entered.len(),
        entered_users: listed(&entered),
        exited_users: listed(&exited),
    }
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
    Explained {
        /// Each feature's contribution to the log-odds; None for a fallback audience.
        contributions: Option<Vec<Contribution>>,
        /// Their newest engagements with the target (up to 10).
        target_events: Vec<TargetEvent>,
        /// Their own items closest to the target (up to 5), with the cosine similarity.
        similar_items_engaged: Vec<(String, f32)>,
    },
}

/// Explains `profile_id`'s score with the audience's own fitted model (from its estimate) and
/// the serving model's features.
fn explain(
    model: &ServingModel,
    spec: &AudienceSpec,
    estimate: Option<&AudienceEstimate>,
    profile_id: i64,
) -> Result<Explanation> {
    let catalog = &model.catalog;
    let Some(user) = catalog.user_index(profile_id) else {
        return Ok(Explanation::NotInCatalog);
    };
    let items = target_items(catalog, &spec.target)?;
    // The horizon the estimate's model was fitted at (features such as "recent" depend on it).
    let horizon_days = match estimate {
        Some(e) => e.backtest.horizon_days,
        None => resolve_horizon(model, &items, spec.horizon_days).days,
    };
    let context = model.propensity(horizon_days)?;
    let contributions = match estimate.and_then(|e| e.model.as_ref()) {
        Some(m) => Some(m.contributions(&context.features(&items, user)?)?),
        None => None,
    };
    let target: HashSet<u32> = items.iter().copied().collect();
    let mut target_events: Vec<TargetEvent> = catalog
        .interactions
        .iter()
        .filter(|x| x.user == user && target.contains(&x.item))
        .map(|x| TargetEvent {
            item_id: catalog.items[x.item as usize].clone(),
            event: catalog.config.events[x.event as usize].name.clone(),
            timestamp: x.timestamp,
        })
        .collect();
    target_events.reverse();
    target_events.truncate(10);
    // The user's own items closest to the target, by the collaborative model's item vectors.
    let als = context.now_model();
    let mut centre = vec![0f32; als.factors()];
    for &i in &items {
        if let Ok(v) = als.item_vector(i) {
            centre.iter_mut().zip(v).for_each(|(c, x)| *c += x);
        }
    }
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let mut own: HashMap<u32, f32> = HashMap::new();
    for x in catalog
        .interactions
        .iter()
        .filter(|x| x.user == user && !target.contains(&x.item))
    {
        if let Ok(v) = als.item_vector(x.item) {
            let cos =
                v.iter().zip(&centre).map(|(a, b)| a * b).sum::<f32>() / (norm(v) * norm(&centre));
            own.insert(x.item, cos);
        }
    }
    let mut similar: Vec<(u32, f32)> = own.into_iter().collect();
    similar.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(Explanation::Explained {
        contributions,
        target_events,
        similar_items_engaged: similar
            .into_iter()
            .take(5)
            .map(|(i, s)| (catalog.items[i as usize].clone(), s))
            .collect(),
    })
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
}

impl Engine {
    /// Stores a new audience as `computing` (or `queued` behind others) and computes its
    /// first snapshot in the background. A target the catalog lacks is refused at once, with
    /// close values; so is an audience beyond the queue ([`EngineError::Busy`]).
    pub async fn create_audience(&self, spec: AudienceSpec) -> Result<Audience> {
        self.start_snapshot(spec, None).await
    }

    /// A new snapshot of audience `id`'s definition, recording who entered and exited.
    pub async fn refresh_audience(&self, id: i64) -> Result<Audience> {
        let audience = self.audience(id).await?;
        if matches!(
            audience.status,
            AudienceStatus::Queued | AudienceStatus::Computing
        ) {
            return Err(EngineError::AudienceComputing);
        }
        self.start_snapshot(audience.spec, Some(audience.id)).await
    }

    async fn start_snapshot(&self, spec: AudienceSpec, previous: Option<i64>) -> Result<Audience> {
        let model = self.serving()?;
        // Resolved once, here, so a misspelt brand is refused before anything is stored.
        let items = target_items(&model.catalog, &spec.target)?;
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
        let id = blocking(move || {
            Ok(store.create_audience(&name, &spec_json, previous, status.as_str(), now_ms())?)
        })
        .await?;
        let (store, seed) = (self.store.clone(), self.config.seed);
        tokio::spawn(ticket.run(worker, move || {
            // Deleted while it waited: nothing to compute.
            if status == AudienceStatus::Queued && !store.start_audience(id)? {
                return Ok(());
            }
            if let Err(e) = finish_snapshot(&store, &model, &spec, &items, seed, id, previous) {
                tracing::warn!(audience = id, error = %e, "audience failed");
                if let Err(e) = store.fail_audience(id, &e.to_string()) {
                    tracing::error!(audience = id, error = %e, "cannot record the failure");
                }
            }
            Ok(())
        }));
        self.audience(id).await
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

    /// The id of an existing audience, without decoding its definition (its members stay
    /// readable even if the rest of its record is not).
    async fn existing(&self, id: i64) -> Result<i64> {
        let store = self.store.clone();
        blocking(move || {
            store
                .audience(id)?
                .map(|r| r.id)
                .ok_or_else(|| EngineError::NotFound(format!("no audience {id}")))
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

    /// Members ranked after `after_rank` (0 for the first page), best first.
    pub async fn audience_members(
        &self,
        id: i64,
        after_rank: i64,
        limit: usize,
    ) -> Result<Vec<Member>> {
        let id = self.existing(id).await?;
        let store = self.store.clone();
        blocking(move || Ok(store.audience_members(id, after_rank, limit)?)).await
    }

    /// Every member as CSV (`user_id,score,rank,control`), best first.
    pub async fn audience_members_csv(&self, id: i64) -> Result<Vec<u8>> {
        let id = self.existing(id).await?;
        let store = self.store.clone();
        blocking(move || {
            let all = store.audience_members(id, 0, usize::MAX)?;
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

    /// One member and why they scored as they did, explained with the serving model; returns
    /// the id of the model used.
    pub async fn audience_member(
        &self,
        id: i64,
        user_id: String,
    ) -> Result<(Member, Explanation, i64)> {
        let audience = self.audience(id).await?;
        let store = self.store.clone();
        let uid = user_id.clone();
        let member = blocking(move || Ok(store.audience_member(audience.id, &uid)?))
            .await?
            .ok_or_else(|| {
                EngineError::NotFound(format!("{user_id:?} is not a member of audience {id}"))
            })?;
        let model = self.serving()?;
        let profile = member.profile_id;
        // With the horizon's context held, an explanation takes milliseconds; without it, it
        // fits one (seconds to minutes), so it waits its turn with the previews.
        // The horizon the estimate was fitted at; without an estimate (not computed yet) the
        // explanation resolves it itself and may need to fit.
        let cached = audience
            .estimate
            .as_ref()
            .is_some_and(|e| model.has_propensity(e.backtest.horizon_days));
        let job = move || {
            explain(&model, &audience.spec, audience.estimate.as_ref(), profile)
                .map(|w| (w, model.record.id))
        };
        let why = if cached {
            blocking(job).await?
        } else {
            self.previews.admit()?.run(None, job).await?
        };
        Ok((member, why.0, why.1))
    }

    /// The whole size curve for `target` at `horizon_days` (chosen from the data if `None`),
    /// computed by a preview worker (or refused with [`EngineError::Busy`] when the preview
    /// queue is full).
    pub async fn preview_audience(
        &self,
        target: Target,
        horizon_days: Option<u32>,
    ) -> Result<Preview> {
        let model = self.serving()?;
        let seed = self.config.seed;
        let ticket = self.previews.admit()?;
        ticket
            .run(None, move || {
                let items = target_items(&model.catalog, &target)?;
                let (_, scores, horizon) = score(&model, &items, horizon_days, seed)?;
                Ok(Preview {
                    at_20_percent: expectation_at(&scores.curve, 0.2),
                    target,
                    horizon_days: horizon.days,
                    horizon_reason: horizon.reason,
                    target_items: items.len(),
                    scores,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str]) -> Vec<Member> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| Member {
                rank: i as i64 + 1,
                profile_id: i as i64,
                user_id: id.to_string(),
                score: 1.0,
                control: false,
            })
            .collect()
    }

    #[test]
    fn changes_list_who_entered_and_who_exited() {
        let before = members(&["ann", "ben", "cid", "dan"]);
        let after = members(&["ben", "eve", "dan", "fay", "gus"]);
        let c = changes(&before, &after, 7);
        assert_eq!(
            c,
            SnapshotChanges {
                previous_id: 7,
                entered: 3,
                exited: 2,
                stayed: 2,
                entered_users: vec!["eve".into(), "fay".into(), "gus".into()],
                exited_users: vec!["ann".into(), "cid".into()],
            }
        );
        let same = changes(&after, &after, 8);
        assert_eq!((same.entered, same.exited, same.stayed), (0, 0, 5));
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
            }],
        });
        let stored = serde_json::to_value(&e).expect("encode");
        assert_eq!(stored["ranking"]["served"], "heuristic:past_count");
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
