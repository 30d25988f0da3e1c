//! Goal-based recommendations: definitions created, read and deleted; each one computed from
//! the store's exposure and outcome events (`affinity_model::goal`) into a list per user of
//! its cohort, written with the user's control flag into `goal_results` and onto the profile
//! as the traits `<key>` and `<key>_is_control`.
//!
//! Computations go through [`GoalJobs`], one at a time, on a blocking thread: at creation,
//! and for every definition after each published model (so they follow the retrain
//! schedule). A computation does not need the serving model (the goal model fits its own
//! affinity on the exposures, which its holdout can refit without the held-out part), so a
//! definition goes live before any training.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use affinity_core::IdKind;
use affinity_core::edit_distance::closest;
use affinity_core::goal::{GoalDefinition, GoalMode, ItemsConsidered, control_seed, item_values};
use affinity_model::goal::{
    Comparison, GoalData, GoalModel, GoalParams, GoalQuality, Mode, two_proportions,
};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{
    CatalogStore, EventDiscovery, FinishedGoal, GoalRecord, GoalResult, GoalStore, Profiles,
    StoreError, TraitStore,
};

use crate::Engine;
use crate::clock::now_ms;
use crate::engine::blocking;
use crate::error::{EngineError, Invalid, Problem, Result};
use crate::sync::lock;
use crate::trait_messages::{goal_computation, with_change_outbox};

/// Users written per call to the store.
const USERS_PER_WRITE: usize = 10_000;
/// Event names read for "did you mean" suggestions.
const EVENT_NAMES_FOR_SUGGESTIONS: usize = 1_000;
/// The seed of every goal model (determinism per data snapshot).
const SEED: u64 = 20_261_129;

/// The figures stored with a live goal.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StoredQuality {
    pub holdout: GoalQuality,
    /// Recommended vs control users, counted on outcomes after the first lists went live.
    pub experiment: Option<Experiment>,
    pub users: usize,
    pub items: usize,
    pub as_of: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Experiment {
    pub since: i64,
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// A goal as the engine shows it.
#[derive(Debug, Clone)]
pub struct GoalView {
    pub definition: GoalDefinition,
    pub record: GoalRecord,
    pub quality: Option<StoredQuality>,
}

/// One user's list.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalList {
    pub user_id: String,
    pub items: Vec<(String, f64)>,
    pub is_control: bool,
    pub computed_at: i64,
}

/// Goal computations: run one at a time; a deleted goal's queued run is skipped.
#[derive(Clone, Default)]
pub struct GoalJobs {
    running: Arc<Mutex<()>>,
}

impl GoalJobs {
    /// Computes `goals` one after the other on a blocking thread.
    pub fn spawn(&self, store: SqliteStore, model_id: Option<i64>, goals: Vec<i64>) {
        let jobs = self.clone();
        tokio::task::spawn_blocking(move || {
            let _running = lock(&jobs.running);
            for id in goals {
                let started = std::time::Instant::now();
                match compute(&store, id, model_id) {
                    Ok(Some(users)) => tracing::info!(
                        goal = id,
                        users,
                        ms = started.elapsed().as_millis() as u64,
                        "goal recommendations computed"
                    ),
                    Ok(None) => tracing::info!(goal = id, "goal deleted before its computation"),
                    Err(e) => {
                        tracing::error!(goal = id, error = %e, "goal computation failed");
                        if let Err(e) = store.set_goal_status(id, "failed", Some(&e.to_string())) {
                            tracing::error!(goal = id, error = %e, "cannot record the failure");
                        }
                    }
                }
            }
        });
    }

    /// Queues every goal (after a training run published model `model_id`). Called on the
    /// blocking pool, where the training run ends: it reads the store.
    pub fn spawn_all(&self, store: SqliteStore, model_id: Option<i64>) {
        match store.goals() {
            Ok(goals) if goals.is_empty() => {}
            Ok(goals) => {
                let ids = goals.iter().map(|g| g.id).collect();
                self.spawn(store, model_id, ids)
            }
            Err(e) => tracing::error!(error = %e, "cannot read goal definitions"),
        }
    }
}

fn decode(record: &GoalRecord) -> Result<GoalDefinition> {
    serde_json::from_value(record.definition.clone()).map_err(|e| {
        EngineError::Store(StoreError::Corrupt(format!(
            "goal_definitions row {}: {e}",
            record.id
        )))
    })
}

/// What the scan of a goal's events found.
#[derive(Default)]
struct Scanned {
    profiles: HashMap<i64, u32>,
    profile_ids: Vec<i64>,
    /// `(user, item value, time)`.
    exposures: Vec<(u32, String, i64)>,
    /// `(user, item values the outcome names, time)`.
    outcomes: Vec<(u32, Vec<String>, i64)>,
}

impl Scanned {
    fn user(&mut self, profile: i64) -> u32 {
        if let Some(&u) = self.profiles.get(&profile) {
            return u;
        }
        let u = self.profile_ids.len() as u32;
        self.profile_ids.push(profile);
        self.profiles.insert(profile, u);
        u
    }
}

fn scan(store: &SqliteStore, definition: &GoalDefinition) -> Result<Scanned> {
    let mut out = Scanned::default();
    let (exposure, outcome) = (&definition.exposure, &definition.outcome);
    let same = exposure.event == outcome.event;
    let names: Vec<&str> = if same {
        vec![exposure.event.as_str()]
    } else {
        vec![exposure.event.as_str(), outcome.event.as_str()]
    };
    store.scan_goal_events(&names, &mut |index, profile, t, properties| {
        let items = item_values(properties, &exposure.item_property);
        let user = out.user(profile);
        if index == 0 {
            for item in &items {
                out.exposures.push((user, item.clone(), t));
            }
        }
        if (same || index == 1) && definition.outcome_matches(properties) {
            out.outcomes.push((user, items, t));
        }
    })?;
    Ok(out)
}

/// The items considered, by index: the listed values, or the most exposed ones.
fn considered(definition: &GoalDefinition, scanned: &Scanned) -> Vec<String> {
    match &definition.items {
        Some(ItemsConsidered::Values(listed)) => {
            let mut seen = HashSet::new();
            listed
                .values
                .iter()
                .filter(|v| seen.insert(v.as_str()))
                .cloned()
                .collect()
        }
        other => {
            let top = match other {
                Some(ItemsConsidered::Top(t)) => t.top,
                _ => affinity_core::goal::DEFAULT_TOP_ITEMS,
            };
            let mut counts: HashMap<&str, u64> = HashMap::new();
            for (_, item, _) in &scanned.exposures {
                *counts.entry(item.as_str()).or_default() += 1;
            }
            let mut items: Vec<(&str, u64)> = counts.into_iter().collect();
            items.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            items
                .into_iter()
                .take(top)
                .map(|(v, _)| v.to_string())
                .collect()
        }
    }
}

/// Computes goal `id` and writes its lists: `Some(users)`, or `None` when it was deleted.
pub fn compute(store: &SqliteStore, id: i64, model_id: Option<i64>) -> Result<Option<usize>> {
    let Some(record) = store.goal(id)? else {
        return Ok(None);
    };
    let definition = decode(&record)?;
    if !store.set_goal_status(id, "computing", None)? {
        return Ok(None);
    }
    let scanned = scan(store, &definition)?;
    let items = considered(&definition, &scanned);
    if scanned.exposures.is_empty() || items.is_empty() {
        return Err(EngineError::InvalidParameter(format!(
            "no {:?} event carries the item property {:?}: nothing to learn from yet",
            definition.exposure.event, definition.exposure.item_property
        )));
    }
    let index: HashMap<&str, u32> = items
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_str(), i as u32))
        .collect();
    let mut data = GoalData {
        n_users: scanned.profile_ids.len(),
        n_items: items.len(),
        ..GoalData::default()
    };
    for (u, item, t) in &scanned.exposures {
        if let Some(&i) = index.get(item.as_str()) {
            data.exposures.push((*u, i, *t));
        }
    }
    for (u, named, t) in &scanned.outcomes {
        if named.is_empty() {
            data.outcomes.push((*u, None, *t));
        }
        for v in named {
            // An outcome about an item not considered cannot be credited to one that is.
            if let Some(&i) = index.get(v.as_str()) {
                data.outcomes.push((*u, Some(i), *t));
            }
        }
    }
    let as_of = scanned
        .exposures
        .iter()
        .map(|e| e.2)
        .chain(scanned.outcomes.iter().map(|o| o.2))
        .max()
        .unwrap_or(0);
    let params = GoalParams {
        k: definition.k,
        mode: match definition.mode {
            GoalMode::Assortment => Mode::Assortment,
            GoalMode::NextBestAction => Mode::NextBestAction,
            GoalMode::CrossSell => Mode::CrossSell,
        },
        exclude_converted: definition.exclude_converted,
        seed: SEED,
        ..GoalParams::default()
    };
    let model = GoalModel::fit(&data, &params)?;

    // The cohort: users active (any goal event) within the window before the data's end.
    let mut last_seen = vec![i64::MIN; data.n_users];
    for &(u, _, t) in &scanned.exposures {
        last_seen[u as usize] = last_seen[u as usize].max(t);
    }
    for &(u, _, t) in &scanned.outcomes {
        last_seen[u as usize] = last_seen[u as usize].max(t);
    }
    let since = definition
        .cohort
        .as_ref()
        .map(|c| as_of - i64::from(c.active_within_days) * 86_400_000);
    let labels = store.profile_labels()?;
    let cohort: Vec<(u32, &String)> = (0..data.n_users as u32)
        .filter(|&u| since.is_none_or(|s| last_seen[u as usize] >= s))
        .filter_map(|u| labels.get(&scanned.profile_ids[u as usize]).map(|l| (u, l)))
        .collect();

    let computed_at = now_ms();
    let computation = goal_computation(id, &record.key);
    let mut written = 0;
    for chunk in cohort.chunks(USERS_PER_WRITE) {
        let results: Vec<GoalResult> = chunk
            .par_iter()
            .map(|&(u, label)| {
                let mut list = model.recommend(u)?;
                let is_control = definition.is_control(id, label);
                if is_control {
                    // The same items in an order that ignores the model: what the outcome
                    // rate would be without it.
                    list.shuffle(&mut ChaCha8Rng::seed_from_u64(control_seed(id, label)));
                }
                Ok(GoalResult {
                    profile_id: scanned.profile_ids[u as usize],
                    values: list
                        .iter()
                        .map(|&(i, _)| items[i as usize].clone())
                        .collect(),
                    scores: list.iter().map(|&(_, s)| s).collect(),
                    is_control,
                })
            })
            .collect::<Result<_, affinity_model::ModelError>>()?;
        // A user whose list changed is told to the goal's destinations, in the transaction
        // writing the chunk.
        let written_chunk = with_change_outbox(store, &computation, |outbox| {
            store.put_goal_results(id, &record.key, &results, computed_at, Some(outbox))
        })?;
        if !written_chunk {
            return Ok(None);
        }
        written += results.len();
    }
    let experiment = record
        .started_at
        .map(|since| experiment(&definition, id, &scanned, &labels, since));
    let quality = StoredQuality {
        holdout: model.quality.clone(),
        experiment,
        users: written,
        items: items.len(),
        as_of,
    };
    let quality =
        serde_json::to_value(&quality).map_err(|e| EngineError::Internal(e.to_string()))?;
    // Users the run did not reach lose their list: their destinations are told (null).
    let live = with_change_outbox(store, &computation, |outbox| {
        store.finish_goal(
            id,
            &record.key,
            &FinishedGoal {
                computed_at,
                model_id,
                users: written,
                quality: &quality,
            },
            Some(outbox),
        )
    })?;
    Ok(live.then_some(written))
}

/// Outcome rates of recommended and control users exposed after `since` (the first lists
/// went live then): a user converts with an outcome at or after their first exposure since.
fn experiment(
    definition: &GoalDefinition,
    id: i64,
    scanned: &Scanned,
    labels: &HashMap<i64, String>,
    since: i64,
) -> Experiment {
    let mut first: HashMap<u32, i64> = HashMap::new();
    for &(u, _, t) in &scanned.exposures {
        if t > since {
            let e = first.entry(u).or_insert(t);
            *e = (*e).min(t);
        }
    }
    let mut converted: HashSet<u32> = HashSet::new();
    for &(u, _, t) in &scanned.outcomes {
        if first.get(&u).is_some_and(|&f| t >= f) {
            converted.insert(u);
        }
    }
    let (mut n, mut y, mut nc, mut yc) = (0u64, 0u64, 0u64, 0u64);
    for u in first.keys() {
        let Some(label) = labels.get(&scanned.profile_ids[*u as usize]) else {
            continue;
        };
        let hit = u64::from(converted.contains(u));
        if definition.is_control(id, label) {
            nc += 1;
            yc += hit;
        } else {
            n += 1;
            y += hit;
        }
    }
    Experiment {
        since,
        comparison: two_proportions(n, y, nc, yc),
    }
}

fn no_goal(id: i64) -> EngineError {
    EngineError::NotFound(format!(
        "no goal recommendation {id} (GET /api/v1/goal-recommendations lists them)"
    ))
}

impl Engine {
    /// Every problem of `definition` (the API refuses it), and warnings: events and
    /// properties never received, with the closest names that were.
    async fn goal_problems(
        &self,
        definition: &GoalDefinition,
    ) -> Result<(Vec<Problem>, Vec<String>)> {
        let mut problems: Vec<Problem> = definition
            .problems()
            .into_iter()
            .map(Problem::from)
            .collect();
        let store = self.store.clone();
        let d = definition.clone();
        let (warnings, trait_taken) = blocking(move || {
            let key = d.key();
            let trait_taken = store.trait_definition(&key)?.is_some()
                || store
                    .trait_definition(&format!("{key}_is_control"))?
                    .is_some();
            let mut warnings = Vec::new();
            let names: Vec<String> = store
                .events_page(None, EVENT_NAMES_FOR_SUGGESTIONS)?
                .events
                .into_iter()
                .map(|e| e.name)
                .collect();
            let mut check = |field: &str, event: &str, properties: &[(&str, &str)]| -> Result<()> {
                if event.trim().is_empty() {
                    return Ok(());
                }
                match store.event(event)? {
                    None => {
                        let close = closest(event, &names, |n| n.as_str(), 3);
                        warnings.push(format!(
                            "{field}: no {event:?} event has been received yet{}",
                            suggest(&close)
                        ));
                    }
                    Some(summary) => {
                        let keys: Vec<String> = summary
                            .properties
                            .iter()
                            .map(|(k, _)| k.strip_prefix("products[].").unwrap_or(k).to_string())
                            .collect();
                        for (pfield, property) in properties {
                            if !property.is_empty() && !keys.iter().any(|k| k == property) {
                                let close = closest(property, &keys, |k| k.as_str(), 3);
                                warnings.push(format!(
                                    "{pfield}: no {event:?} event has carried {property:?}{}",
                                    suggest(&close)
                                ));
                            }
                        }
                    }
                }
                Ok(())
            };
            check(
                "exposure.event",
                &d.exposure.event,
                &[("exposure.item_property", d.exposure.item_property.as_str())],
            )?;
            let conditions: Vec<(String, &str)> = d
                .outcome
                .conditions
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("outcome.where[{i}].property"), c.property.as_str()))
                .collect();
            let conditions: Vec<(&str, &str)> =
                conditions.iter().map(|(f, p)| (f.as_str(), *p)).collect();
            check("outcome.event", &d.outcome.event, &conditions)?;
            Ok((warnings, trait_taken))
        })
        .await?;
        if trait_taken {
            problems.push(Problem::new(
                "name",
                format!(
                    "the profile trait key {:?} is a trait's name already: choose another name",
                    definition.key()
                ),
            ));
        }
        Ok((problems, warnings))
    }

    /// Validates and stores a definition, then computes it in the background. Returns it
    /// with the warnings about events and properties never received.
    pub async fn create_goal(
        &self,
        mut definition: GoalDefinition,
    ) -> Result<(GoalView, Vec<String>)> {
        let (mut problems, warnings) = self.goal_problems(&definition).await?;
        let ids = definition.destination_ids(&mut Vec::new());
        let (destinations, unknown) = self.known_destinations(ids).await?;
        problems.extend(unknown);
        if !problems.is_empty() {
            return Err(EngineError::invalid(Invalid::Goal, problems));
        }
        definition.destinations = destinations;
        let saved =
            serde_json::to_value(&definition).map_err(|e| EngineError::Internal(e.to_string()))?;
        let key = definition.key();
        let store = self.store.clone();
        let k = key.clone();
        let id = blocking(move || Ok(store.create_goal(&k, &saved, now_ms())?)).await?;
        let Some(id) = id else {
            return Err(EngineError::invalid(
                Invalid::Goal,
                [Problem::new(
                    "name",
                    format!(
                        "a goal recommendation with the key {key:?} exists: choose another \
                         name, or DELETE that one first"
                    ),
                )],
            ));
        };
        let model_id = self.models.current().map(|m| m.record.id);
        self.goals.spawn(self.store.clone(), model_id, vec![id]);
        Ok((self.goal(id).await?, warnings))
    }

    /// Recomputes goal `id` now (it also is after every published model).
    pub async fn refresh_goal(&self, id: i64) -> Result<GoalView> {
        let store = self.store.clone();
        let found = blocking(move || Ok(store.set_goal_status(id, "computing", None)?)).await?;
        if !found {
            return Err(no_goal(id));
        }
        let model_id = self.models.current().map(|m| m.record.id);
        self.goals.spawn(self.store.clone(), model_id, vec![id]);
        self.goal(id).await
    }

    pub async fn goal(&self, id: i64) -> Result<GoalView> {
        let store = self.store.clone();
        let record = blocking(move || Ok(store.goal(id)?)).await?;
        view(record.ok_or_else(|| no_goal(id))?)
    }

    /// Every goal, oldest first. An unreadable one is left out and logged.
    pub async fn goals(&self) -> Result<Vec<GoalView>> {
        let store = self.store.clone();
        let records = blocking(move || Ok(store.goals()?)).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let id = r.id;
                view(r)
                    .inspect_err(
                        |e| tracing::error!(goal = id, error = %e, "unreadable goal left out"),
                    )
                    .ok()
            })
            .collect())
    }

    pub async fn delete_goal(&self, id: i64) -> Result<()> {
        let store = self.store.clone();
        let deleted = blocking(move || Ok(store.delete_goal(id)?)).await?;
        if deleted { Ok(()) } else { Err(no_goal(id)) }
    }

    /// `user_id`'s list of goal `id`.
    pub async fn goal_list(&self, id: i64, user_id: String) -> Result<GoalList> {
        let store = self.store.clone();
        blocking(move || {
            let record = store.goal(id)?.ok_or_else(|| no_goal(id))?;
            let profile = store.profile(IdKind::UserId, &user_id)?.ok_or_else(|| {
                EngineError::NotFound(format!("no profile has the userId {user_id:?}"))
            })?;
            let Some(list) = store.goal_list(id, profile.id)? else {
                return Err(if record.computed_at.is_none() {
                    EngineError::ModelNotReady(
                        "the goal's lists are being computed; retry in a few seconds",
                    )
                } else {
                    EngineError::NotFound(format!(
                        "user {user_id:?} has no list for goal {id}: not in its cohort (no \
                         exposure or outcome in the cohort's window)"
                    ))
                });
            };
            Ok(GoalList {
                user_id,
                items: list.items,
                is_control: list.is_control,
                computed_at: list.computed_at,
            })
        })
        .await
    }
}

fn view(record: GoalRecord) -> Result<GoalView> {
    let definition = decode(&record)?;
    let quality = match &record.quality {
        Some(q) => Some(serde_json::from_value(q.clone()).map_err(|e| {
            EngineError::Store(StoreError::Corrupt(format!(
                "goal_definitions row {} quality: {e}",
                record.id
            )))
        })?),
        None => None,
    };
    Ok(GoalView {
        definition,
        record,
        quality,
    })
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(
            "; closest: {}",
            close
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
