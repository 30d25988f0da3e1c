//! Personalized-items traits: computed for every profile after each training (and when a
//! trait is created), written onto profiles as ordered arrays.
//!
//! Computations go through [`TraitJobs`]: one at a time (each already uses every core), with
//! their progress visible while they run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde_json::Value;

use affinity_core::item_rules::{ItemFilter, ItemRule, TraitDefinition};
use affinity_model::recommend::{RecommendRequest, recommend_many};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{CatalogStore, StoreError, TraitDefinitionRecord, TraitStore};

use crate::Engine;
use crate::clock::now_ms;
use crate::engine::blocking;
use crate::error::{EngineError, Invalid, Problem, Result};
use crate::filters;
use crate::sync::lock;
use crate::training::ServingModel;
use crate::trait_messages::{trait_computation, with_change_outbox};

/// Users scored together: their vectors and a block of items stay in cache.
const USERS_PER_BATCH: usize = 256;

/// Users ranked between two writes to the store.
const USERS_PER_WRITE: usize = 16_384;

/// Computes one trait for every user of the serving model's catalog and writes it.
/// `done` counts the users ranked so far (for progress reports).
pub fn compute(
    store: &SqliteStore,
    model: &ServingModel,
    definition: &TraitDefinition,
    done: &AtomicUsize,
) -> Result<usize> {
    Ok(compute_unless(store, model, definition, done, &|| false)?.unwrap_or(0))
}

/// [`compute`], stopping before the next write once `cancelled` says so (the trait was
/// deleted or redefined meanwhile): `None` when it stopped.
fn compute_unless(
    store: &SqliteStore,
    model: &ServingModel,
    definition: &TraitDefinition,
    done: &AtomicUsize,
    cancelled: &dyn Fn() -> bool,
) -> Result<Option<usize>> {
    let catalog = &model.catalog;
    let column = if definition.column == affinity_core::catalog::ITEM_ID {
        None
    } else {
        Some(catalog.column(&definition.column).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "trait {} names column {:?}, which the catalog no longer has",
                definition.name, definition.column
            ))
        })?)
    };
    let filter = ItemFilter::new(catalog, &[], &definition.exclude).map_err(StoreError::Corrupt)?;
    let allow = |i: u32| filter.allows(i);
    let request = RecommendRequest {
        user: None,
        k: definition.k,
        column,
        exclude_interacted: definition.exclude_interacted,
        allow: &allow,
    };
    // Users in chunks written as they are ranked (a chunk's lists, not a million, are held
    // in memory); within a chunk, batches of users in parallel (the model scores a batch
    // against cache-sized blocks of items).
    let updated_at = now_ms();
    let computation = trait_computation(&definition.name);
    let n_users = catalog.users.len() as u32;
    for start in (0..n_users).step_by(USERS_PER_WRITE) {
        let users: Vec<u32> = (start..n_users.min(start + USERS_PER_WRITE as u32)).collect();
        let batches: Vec<Vec<(i64, Value)>> = users
            .par_chunks(USERS_PER_BATCH)
            .map(|batch| {
                let recs = recommend_many(&model.model, catalog, batch, &request)?;
                done.fetch_add(batch.len(), Ordering::Relaxed);
                Ok(batch
                    .iter()
                    .zip(recs)
                    .map(|(&u, r)| {
                        (
                            catalog.users[u as usize],
                            Value::Array(r.values.into_iter().map(|(v, _)| v).collect()),
                        )
                    })
                    .collect())
            })
            .collect::<Result<_, affinity_model::ModelError>>()?;
        let values: Vec<(i64, Value)> = batches.into_iter().flatten().collect();
        if cancelled() {
            return Ok(None);
        }
        // A profile whose value changed is told to the trait's destinations, in the
        // transaction writing the chunk.
        with_change_outbox(store, &computation, |outbox| {
            store.put_computed_traits(&definition.name, &values, updated_at, Some(outbox))
        })?;
    }
    if cancelled() {
        return Ok(None);
    }
    // Profiles the run did not reach lose their value: their destinations are told (null).
    with_change_outbox(store, &computation, |outbox| {
        store.finish_computed_traits(
            &definition.name,
            updated_at,
            n_users as usize,
            model.record.id,
            Some(outbox),
        )
    })?;
    Ok(Some(n_users as usize))
}

/// Where one trait's computation stands.
#[derive(Debug, Default)]
pub struct Progress {
    /// Users ranked so far.
    pub done: AtomicUsize,
    /// Users to rank (the serving catalog's); 0 while queued.
    pub total: AtomicUsize,
    /// Unix ms when ranking started; 0 while queued.
    pub started_at: std::sync::atomic::AtomicI64,
}

/// Trait computations: queued, run one at a time, observable while running.
#[derive(Clone, Default)]
pub struct TraitJobs {
    /// Traits queued or computing, by name.
    active: Arc<Mutex<HashMap<String, Arc<Progress>>>>,
    /// Held by the computation in progress.
    running: Arc<Mutex<()>>,
}

impl TraitJobs {
    /// The progress of `name` if it is queued or computing.
    pub fn progress(&self, name: &str) -> Option<Arc<Progress>> {
        lock(&self.active).get(name).cloned()
    }

    fn is_current(&self, name: &str, progress: &Arc<Progress>) -> bool {
        lock(&self.active)
            .get(name)
            .is_some_and(|p| Arc::ptr_eq(p, progress))
    }

    /// Drops `name`'s queued or running computation: a queued one is skipped, a running one
    /// stops before its next write.
    pub fn cancel(&self, name: &str) {
        lock(&self.active).remove(name);
    }

    /// Queues `definitions` and computes them one after the other on a blocking thread.
    pub fn spawn(
        &self,
        store: SqliteStore,
        model: Arc<ServingModel>,
        definitions: Vec<TraitDefinition>,
    ) {
        let queued: Vec<(TraitDefinition, Arc<Progress>)> = {
            let mut active = lock(&self.active);
            definitions
                .into_iter()
                .map(|d| {
                    // A newer request replaces an older queued one: that one is skipped.
                    let progress = Arc::new(Progress::default());
                    active.insert(d.name.clone(), progress.clone());
                    (d, progress)
                })
                .collect()
        };
        let jobs = self.clone();
        tokio::task::spawn_blocking(move || {
            let _running = lock(&jobs.running);
            for (definition, progress) in queued {
                if !jobs.is_current(&definition.name, &progress) {
                    continue;
                }
                progress
                    .total
                    .store(model.catalog.users.len(), Ordering::Relaxed);
                progress.started_at.store(now_ms(), Ordering::Relaxed);
                let started = std::time::Instant::now();
                let cancelled = || !jobs.is_current(&definition.name, &progress);
                match compute_unless(&store, &model, &definition, &progress.done, &cancelled) {
                    Ok(Some(n)) => tracing::info!(
                        name = definition.name,
                        profiles = n,
                        ms = started.elapsed().as_millis() as u64,
                        "trait computed"
                    ),
                    Ok(None) => {
                        // A delete may have landed while a chunk was being written: that
                        // chunk's values must not outlive the trait.
                        match store.drop_undefined_computed_traits(&definition.name) {
                            Ok(n) => tracing::info!(
                                name = definition.name,
                                dropped = n,
                                "trait computation stopped: deleted or redefined meanwhile"
                            ),
                            Err(e) => {
                                tracing::error!(name = definition.name, error = %e, "cannot drop a deleted trait's values")
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(name = definition.name, error = %e, "trait computation failed")
                    }
                }
                let mut active = lock(&jobs.active);
                // A newer request queued meanwhile keeps its entry.
                if active
                    .get(&definition.name)
                    .is_some_and(|p| Arc::ptr_eq(p, &progress))
                {
                    active.remove(&definition.name);
                }
            }
        });
    }

    /// Queues every defined trait (after a training run published `model`). Called on the
    /// blocking pool, where the training run ends: it reads the store.
    pub fn spawn_all(&self, store: SqliteStore, model: Arc<ServingModel>) {
        let definitions = match store.trait_definitions() {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read trait definitions");
                return;
            }
        };
        let definitions = definitions
            .into_iter()
            .filter_map(|record| match serde_json::from_value(record.definition) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!(name = record.name, error = %e, "unreadable trait definition");
                    None
                }
            })
            .collect();
        self.spawn(store, model, definitions);
    }
}

/// Where a trait stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraitStatus {
    /// Defined before any model: it is computed by the first training.
    WaitingForModel,
    /// Defined, not computed yet, nothing queued (e.g. after a restart).
    Pending,
    Queued,
    Computing,
    Computed,
}

impl TraitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WaitingForModel => "waiting_for_model",
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Computing => "computing",
            Self::Computed => "computed",
        }
    }
}

/// A computation in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraitProgress {
    pub profiles_done: usize,
    pub profiles_total: usize,
    pub started_at: i64,
}

/// A stored trait with its definition and where its computation stands.
#[derive(Debug, Clone)]
pub struct TraitView {
    pub definition: TraitDefinition,
    pub record: TraitDefinitionRecord,
    pub status: TraitStatus,
    pub progress: Option<TraitProgress>,
}

/// A change to a trait: the fields given replace the stored ones, the others are kept (an
/// update never drops a part of the definition it does not mention).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraitUpdate {
    pub column: Option<String>,
    pub k: Option<usize>,
    pub exclude_interacted: Option<bool>,
    /// `Some(vec![])` removes every exclusion rule.
    pub exclude: Option<Vec<ItemRule>>,
}

impl TraitUpdate {
    /// The definition after this update.
    pub fn apply(self, mut definition: TraitDefinition) -> TraitDefinition {
        if let Some(column) = self.column {
            definition.column = column;
        }
        if let Some(k) = self.k {
            definition.k = k;
        }
        if let Some(x) = self.exclude_interacted {
            definition.exclude_interacted = x;
        }
        if let Some(exclude) = self.exclude {
            definition.exclude = exclude;
        }
        definition
    }
}

fn no_trait(name: &str, known: &[String]) -> EngineError {
    EngineError::NotFound(if known.is_empty() {
        format!("no trait named {name:?}: none is defined yet (POST /api/v1/traits)")
    } else {
        format!("no trait named {name:?}; traits: {}", known.join(", "))
    })
}

fn decode(record: &TraitDefinitionRecord) -> Result<TraitDefinition> {
    serde_json::from_value(record.definition.clone()).map_err(|e| {
        EngineError::Store(StoreError::Corrupt(format!(
            "trait_definitions row {:?}: {e}",
            record.name
        )))
    })
}

impl Engine {
    /// Every problem of `definition` against the catalog: its name and `k`, its column, and
    /// its exclusion rules (the same rules recommendations' `exclude` is checked with).
    async fn trait_problems(&self, definition: &TraitDefinition) -> Result<Vec<Problem>> {
        let store = self.store.clone();
        let config = blocking(move || Ok(store.catalog_config()?)).await?;
        let config = config.ok_or(EngineError::NotConfigured)?;
        // Columns a trait may use: the configured ones and those uploads added.
        let mut columns: Vec<String> = config.columns.iter().map(|c| c.name.clone()).collect();
        let catalog = self.catalog.snapshot().catalog;
        if let Some(c) = &catalog {
            for name in &c.column_names {
                if !columns.contains(name) {
                    columns.push(name.clone());
                }
            }
        }
        let mut problems: Vec<Problem> = definition
            .problems(&columns)
            .into_iter()
            .map(Problem::from)
            .collect();
        if let Some(c) = &catalog {
            for (i, rule) in definition.exclude.iter().enumerate() {
                if let Some(p) = filters::range_problem(c, rule) {
                    problems.push(Problem::new(format!("exclude[{i}]"), p));
                }
            }
        }
        Ok(problems)
    }

    fn queue_trait(&self, definition: TraitDefinition) -> TraitStatus {
        match self.models.current() {
            Some(model) => {
                self.traits
                    .spawn(self.store.clone(), model, vec![definition]);
                TraitStatus::Queued
            }
            None => TraitStatus::WaitingForModel,
        }
    }

    /// Validates, stores, and queues a computation at once when a model serves. A name
    /// already defined is refused (`TraitExists`): changing a trait is an update.
    pub async fn define_trait(&self, mut definition: TraitDefinition) -> Result<TraitStatus> {
        let mut problems = self.trait_problems(&definition).await?;
        let ids = definition.destination_ids(&mut Vec::new());
        let (destinations, unknown) = self.known_destinations(ids).await?;
        problems.extend(unknown);
        if !problems.is_empty() {
            return Err(EngineError::invalid(Invalid::Trait, problems));
        }
        definition.destinations = destinations;
        let store = self.store.clone();
        let saved =
            serde_json::to_value(&definition).map_err(|e| EngineError::Task(e.to_string()))?;
        let name = definition.name.clone();
        let created =
            blocking(move || Ok(store.insert_trait_definition(&name, &saved, now_ms())?)).await?;
        if !created {
            return Err(EngineError::TraitExists(definition.name));
        }
        Ok(self.queue_trait(definition))
    }

    /// Changes the fields `update` gives, keeps the others, validates the result as a new
    /// definition and recomputes it. Returns the definition now stored.
    pub async fn update_trait(
        &self,
        name: String,
        update: TraitUpdate,
    ) -> Result<(TraitDefinition, TraitStatus)> {
        let current = self.trait_view(name.clone()).await?;
        let definition = update.apply(current.definition);
        let problems = self.trait_problems(&definition).await?;
        if !problems.is_empty() {
            return Err(EngineError::invalid(Invalid::Trait, problems));
        }
        let store = self.store.clone();
        let saved =
            serde_json::to_value(&definition).map_err(|e| EngineError::Task(e.to_string()))?;
        let updated = blocking(move || Ok(store.update_trait_definition(&name, &saved)?)).await?;
        if !updated {
            // Deleted between the read and the write.
            return Err(no_trait(&definition.name, &[]));
        }
        Ok((definition.clone(), self.queue_trait(definition)))
    }

    /// Deletes a trait and its values on every profile; a computation in progress stops.
    pub async fn delete_trait(&self, name: String) -> Result<()> {
        self.traits.cancel(&name);
        let store = self.store.clone();
        let n = name.clone();
        let deleted = blocking(move || Ok(store.delete_trait_definition(&n)?)).await?;
        if deleted {
            Ok(())
        } else {
            let known = self.trait_names().await?;
            Err(no_trait(&name, &known))
        }
    }

    async fn trait_names(&self) -> Result<Vec<String>> {
        let store = self.store.clone();
        let records = blocking(move || Ok(store.trait_definitions()?)).await?;
        Ok(records.into_iter().map(|r| r.name).collect())
    }

    /// One trait with its status; an unreadable definition is an error naming its row.
    pub async fn trait_view(&self, name: String) -> Result<TraitView> {
        let store = self.store.clone();
        let n = name.clone();
        let record = blocking(move || Ok(store.trait_definition(&n)?)).await?;
        match record {
            Some(record) => {
                let definition = decode(&record)?;
                Ok(self.view(definition, record))
            }
            None => Err(no_trait(&name, &self.trait_names().await?)),
        }
    }

    fn view(&self, definition: TraitDefinition, record: TraitDefinitionRecord) -> TraitView {
        let progress = self.traits.progress(&record.name).map(|p| TraitProgress {
            profiles_done: p.done.load(Ordering::Relaxed),
            profiles_total: p.total.load(Ordering::Relaxed),
            started_at: p.started_at.load(Ordering::Relaxed),
        });
        let status = match (&progress, record.computed_at) {
            (Some(p), _) if p.profiles_total > 0 => TraitStatus::Computing,
            (Some(_), _) => TraitStatus::Queued,
            (None, Some(_)) => TraitStatus::Computed,
            (None, None) => TraitStatus::Pending,
        };
        TraitView {
            definition,
            record,
            status,
            progress: progress.filter(|p| p.profiles_total > 0),
        }
    }

    /// Every defined trait with its status. An unreadable definition is left out and logged,
    /// as the computations after each training skip it.
    pub async fn traits(&self) -> Result<Vec<TraitView>> {
        let store = self.store.clone();
        let records = blocking(move || Ok(store.trait_definitions()?)).await?;
        Ok(records
            .into_iter()
            .filter_map(|record| match decode(&record) {
                Ok(definition) => Some(self.view(definition, record)),
                Err(e) => {
                    tracing::error!(name = record.name, error = %e, "unreadable trait definition left out of the list");
                    None
                }
            })
            .collect())
    }
}
