//! Personalized-items traits: computed for every profile after each training (and when a
//! trait is created), written onto profiles as ordered arrays.
//!
//! Computations go through [`TraitJobs`]: one at a time (each already uses every core), with
//! their progress visible to `GET /api/v1/traits` while they run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rayon::prelude::*;
use serde_json::Value;

use affinity_core::item_rules::{ItemFilter, TraitDefinition};
use affinity_model::recommend::{RecommendRequest, recommend_many};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{StoreError, TraitStore};

use crate::ServerError;
use crate::catalog_state::now_ms;
use crate::training::ServingModel;

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
) -> Result<usize, ServerError> {
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
        store.put_computed_traits(&definition.name, &values, updated_at)?;
    }
    store.finish_computed_traits(
        &definition.name,
        updated_at,
        n_users as usize,
        model.record.id,
    )?;
    Ok(n_users as usize)
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
                match compute(&store, &model, &definition, &progress.done) {
                    Ok(n) => tracing::info!(
                        name = definition.name,
                        profiles = n,
                        ms = started.elapsed().as_millis() as u64,
                        "trait computed"
                    ),
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

    /// Queues every defined trait (after a training run published `model`).
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
