//! Training runs: build a fresh catalog, run the model pipeline, record the result, publish
//! the model. The same synchronous [`run_training`] serves the engine's background runs (on
//! demand and on schedule) and `affinity train`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use affinity_core::item_catalog::ItemCatalog;
use affinity_core::mapping_check::why_empty;
use affinity_core::timestamp::format_millis;
use affinity_model::co_occurrence::CoOccurrence;
use affinity_model::propensity::{PropensityContext, PropensityParams};
use affinity_model::snapshot::{self, SnapshotError, SnapshotMeta};
use affinity_model::training::{Holdout, Progress, TrainedModel, TrainingOptions, train};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{CatalogStore, ModelRecord, ModelRegistry, ModelStatus};

use crate::Engine;
use crate::catalog::{CatalogState, build_now};
use crate::clock::now_ms;
use crate::engine::blocking;
use crate::error::{EngineError, Result};
use crate::lru::LruCache;
use crate::sync::{lock, read, write};

/// A trained model ready to answer, with the catalog it was trained on.
pub struct ServingModel {
    pub record: ModelRecord,
    pub catalog: Arc<ItemCatalog>,
    pub model: TrainedModel,
    /// "Also engaged with" lists are computed from this at query time (any lookback).
    pub co_occurrence: CoOccurrence,
    /// Propensity contexts by horizon (days), built on first use: two or three ALS fits
    /// each, about 113 MB at 100 000 users and 1 GB at 1M. Least recently used first out,
    /// so that a client asking for every horizon from 1 to 365 cannot hold 365 of them.
    propensity: std::sync::Mutex<LruCache<u32, Arc<PropensityContext>>>,
}

/// How many propensity contexts a serving model keeps, and how much memory they may hold
/// together (as each context counts itself: [`PropensityContext::heap_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextLimits {
    pub contexts: usize,
    pub bytes: usize,
}

/// The limits of a model whose caller sets none (`affinity train`, `affinity demo`: one
/// process, one or two horizons): the settings' defaults.
impl Default for ContextLimits {
    fn default() -> Self {
        let work = crate::config::WorkLimits::default();
        ContextLimits::from(&work)
    }
}

impl From<&crate::config::WorkLimits> for ContextLimits {
    fn from(work: &crate::config::WorkLimits) -> Self {
        ContextLimits {
            contexts: work.propensity_contexts,
            bytes: work.propensity_context_mb.saturating_mul(1 << 20),
        }
    }
}

impl ServingModel {
    /// The propensity context for `horizon_days`, building it (seconds on large stores) the
    /// first time or after it was evicted. Builds are serialized so concurrent audiences do
    /// not fit twice (and two builds never hold their working memory at once).
    pub fn propensity(&self, horizon_days: u32) -> Result<Arc<PropensityContext>> {
        let mut cache = lock(&self.propensity);
        if let Some(c) = cache.get(&horizon_days) {
            return Ok(c);
        }
        let params = PropensityParams {
            horizon_days,
            ..PropensityParams::default()
        };
        // Room first, for a context like the heaviest held (one model's contexts differ by
        // their horizon only): the build's own working memory then runs beside what stays.
        let evicted = cache.evictions();
        let like = cache.heaviest();
        cache.make_room(like);
        let context = Arc::new(PropensityContext::build(&self.catalog, &params)?);
        cache.insert(horizon_days, context.clone());
        if cache.evictions() > evicted {
            tracing::debug!(
                horizon_days,
                kept = cache.len(),
                mib = cache.bytes() >> 20,
                evictions = cache.evictions(),
                "propensity context cache full (contexts or bytes): least recently used horizons dropped"
            );
        }
        Ok(context)
    }

    /// Whether the context for `horizon_days` is held (using it costs no fit). Never waits,
    /// so async code may ask: while a build holds the cache, the answer is false.
    pub fn has_propensity(&self, horizon_days: u32) -> bool {
        match self.propensity.try_lock() {
            Ok(cache) => cache.contains(&horizon_days),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().contains(&horizon_days),
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }

    /// (horizons whose context is held, contexts evicted so far), for tests and logs.
    pub fn propensity_cache(&self) -> (Vec<u32>, u64) {
        let cache = lock(&self.propensity);
        let mut held: Vec<u32> = cache.keys().copied().collect();
        held.sort_unstable();
        (held, cache.evictions())
    }
}

fn propensity_cache(
    limits: ContextLimits,
) -> std::sync::Mutex<LruCache<u32, Arc<PropensityContext>>> {
    std::sync::Mutex::new(LruCache::new(limits.contexts, limits.bytes, |c| {
        c.heap_bytes()
    }))
}

/// The model that currently serves, if any.
#[derive(Clone)]
pub struct ModelState {
    current: Arc<RwLock<Option<Arc<ServingModel>>>>,
    /// Held while a training run is in progress: runs never overlap.
    running: Arc<tokio::sync::Mutex<()>>,
    /// The run waiting for the one in progress, if any: further requests join it rather than
    /// queue runs of their own (ten requests, one run).
    waiting: Arc<std::sync::Mutex<Option<ModelRecord>>>,
    /// Set while a restarted server loads its last saved model (see [`Engine::load_saved_model`]).
    loading: Arc<AtomicBool>,
    /// Runs queued or in progress: answers say a model is training from the moment a run is
    /// queued, not only once it holds `running`.
    pending: Arc<AtomicUsize>,
    /// Propensity contexts each published model keeps (`WorkLimits::propensity_contexts`
    /// and `propensity_context_mb`).
    context_limits: ContextLimits,
}

impl ModelState {
    pub fn new(context_limits: ContextLimits) -> Self {
        Self {
            current: Arc::default(),
            running: Arc::default(),
            waiting: Arc::default(),
            loading: Arc::default(),
            pending: Arc::default(),
            context_limits,
        }
    }

    pub fn current(&self) -> Option<Arc<ServingModel>> {
        read(&self.current).clone()
    }

    fn publish(&self, model: ServingModel) -> Arc<ServingModel> {
        let model = Arc::new(model);
        *write(&self.current) = Some(model.clone());
        model
    }

    pub fn is_running(&self) -> bool {
        self.running.try_lock().is_err()
    }

    pub(crate) fn set_loading(&self, loading: bool) {
        self.loading.store(loading, Ordering::SeqCst);
    }

    pub fn is_loading(&self) -> bool {
        self.loading.load(Ordering::SeqCst)
    }

    /// A run is queued or training.
    fn is_pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0 || self.is_running()
    }

    /// Queues a training run for `record` and returns at once. The run waits for any earlier
    /// run, then trains on a blocking thread, publishes the model and its catalog, and hands
    /// the published model to `on_ready` on that blocking thread (it may read the store).
    pub fn spawn_run(
        &self,
        store: SqliteStore,
        catalog: CatalogState,
        record: ModelRecord,
        options: TrainingOptions,
        on_ready: impl FnOnce(Arc<ServingModel>) + Send + 'static,
    ) {
        let state = self.clone();
        let id = record.id;
        // Counted before the loading state ends (a saved model that could not be served is
        // followed by this run), so that no answer in between says there is no model.
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.set_loading(false);
        tokio::spawn(async move {
            let _guard = state.running.lock().await;
            // Started: a request from now on waits for a run of its own (it may have new data).
            {
                let mut waiting = lock(&state.waiting);
                if waiting.as_ref().is_some_and(|w| w.id == id) {
                    *waiting = None;
                }
            }
            let models = state.clone();
            let result = tokio::task::spawn_blocking(move || {
                let serving = run_training(
                    &store,
                    record,
                    &options,
                    Some((&catalog, &models)),
                    &mut |_| {},
                )?;
                on_ready(serving);
                Ok::<_, EngineError>(())
            })
            .await;
            state.pending.fetch_sub(1, Ordering::SeqCst);
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "training failed"),
                Err(e) => tracing::error!(error = %e, "training task panicked"),
            }
        });
    }
}

/// What a run records about the data it trained on (the model record's `data`).
#[derive(Serialize)]
struct RunData<'a> {
    users: usize,
    items: usize,
    interactions: usize,
    build_ms: u64,
    fit_ms: u64,
    seed: u64,
    holdout: &'a Option<Holdout>,
    holdout_skipped: &'a Option<String>,
    /// The model's "now" beside the data's own end, and how it was chosen.
    as_of: String,
    data_end: String,
    as_of_rule: String,
    interactions_after_as_of: u64,
    /// With the catalog's `lookback_days`: the oldest interaction time that counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    lookback_from: Option<String>,
}

fn recorded<T: Serialize>(value: &T) -> Value {
    // These are plain structs of numbers and strings: encoding cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Trains synchronously: marks `record` training, builds the catalog, runs the pipeline,
/// saves the record as ready (or failed, with the reason) and returns the serving model.
///
/// A server passes its `serve` states: the catalog is published as soon as it is built (the
/// catalog endpoints need not wait for the fit), and the model is published *before* its
/// record says ready, so a client that sees `ready` is answered by that model.
pub fn run_training(
    store: &SqliteStore,
    mut record: ModelRecord,
    options: &TrainingOptions,
    serve: Option<(&CatalogState, &ModelState)>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Arc<ServingModel>> {
    let started = Instant::now();
    record.status = ModelStatus::Training;
    store.save_model(&record)?;
    let outcome = (|| {
        let build_started = Instant::now();
        let catalog = Arc::new(build_now(store)?.ok_or(EngineError::NotConfigured)?);
        let build_ms = build_started.elapsed().as_millis() as u64;
        if let Some((state, _)) = serve {
            state.replace(catalog.clone(), build_ms);
        }
        if catalog.interactions.is_empty() {
            // The model crate's own error cannot name the mapping; this one does.
            return Err(EngineError::NoInteractions(why_empty(&catalog)));
        }
        let model = train(&catalog, options, progress)?;
        Ok::<_, EngineError>((catalog, model, build_ms))
    })();
    record.duration_ms = Some(started.elapsed().as_millis() as u64);
    match outcome {
        Ok((catalog, model, build_ms)) => {
            record.status = ModelStatus::Ready;
            record.algorithm = Some(model.chosen.name().to_string());
            record.params = model.chosen.params();
            record.as_of = Some(model.as_of);
            record.trained_at = Some(now_ms());
            record.metrics = recorded(&model.metrics);
            record.candidates = model.candidates_json();
            record.data = recorded(&RunData {
                users: catalog.users.len(),
                items: catalog.items.len(),
                interactions: catalog.interactions.len(),
                build_ms,
                fit_ms: model.fit_ms,
                seed: options.seed,
                holdout: &model.holdout,
                holdout_skipped: &model.holdout_skipped,
                as_of: format_millis(catalog.time.as_of),
                data_end: format_millis(catalog.time.data_end),
                as_of_rule: catalog.time.rule(),
                interactions_after_as_of: catalog.time.after_as_of,
                lookback_from: catalog
                    .config
                    .lookback_days
                    .map(|d| format_millis(catalog.as_of - i64::from(d) * 86_400_000)),
            });
            let contexts = serve.map_or_else(ContextLimits::default, |(_, m)| m.context_limits);
            let serving = ServingModel {
                record,
                co_occurrence: CoOccurrence::new(&catalog),
                propensity: propensity_cache(contexts),
                catalog,
                model,
            };
            let serving = match serve {
                Some((_, models)) => models.publish(serving),
                None => Arc::new(serving),
            };
            // Saved before the record says ready, so that a ready record has its file (unless
            // saving failed: the model still serves, and a restart retrains instead).
            save_snapshot(store, &serving);
            let record = &serving.record;
            store.save_model(record)?;
            tracing::info!(model = record.id, algorithm = ?record.algorithm, ms = ?record.duration_ms, "model ready");
            Ok(serving)
        }
        Err(e) => {
            record.status = ModelStatus::Failed;
            record.error = Some(e.to_string());
            store.save_model(&record)?;
            Err(e)
        }
    }
}

/// Saves `serving`'s model to its file and removes older ones (only the last ready model is
/// ever loaded). Failures are logged, not returned: the model serves all the same, and a
/// restart without the file retrains.
fn save_snapshot(store: &SqliteStore, serving: &ServingModel) {
    let started = Instant::now();
    let files = store.model_files();
    let id = serving.record.id;
    let meta = SnapshotMeta::new(id, &serving.catalog, &serving.model);
    match files.save(id, |w| snapshot::write(w, &meta, &serving.model)) {
        Ok(bytes) => {
            tracing::info!(
                model = id,
                bytes,
                ms = started.elapsed().as_millis() as u64,
                "model saved"
            );
            if let Err(e) = files.prune(&[id]) {
                tracing::warn!(error = %e, "cannot remove older model files");
            }
        }
        Err(e) => {
            tracing::warn!(model = id, error = %e, "cannot save the model; a restart will retrain")
        }
    }
}

/// Why a saved model was not loaded: nothing to load, or a problem to report.
enum NotLoaded {
    Nothing(&'static str),
    Refused(i64, EngineError),
}

/// Loads the last ready model on a blocking thread: its record, the catalog rebuilt from the
/// store (published as the current catalog), and its file, matched against that catalog.
/// Returns the model and whether the catalog holds exactly the interactions it was trained on.
fn load_last(
    store: &SqliteStore,
    catalog_state: &CatalogState,
    context_limits: ContextLimits,
) -> std::result::Result<(ServingModel, bool), NotLoaded> {
    let record = store
        .last_ready_model()
        .map_err(|e| NotLoaded::Refused(0, e.into()))?
        .ok_or(NotLoaded::Nothing("no model is ready yet"))?;
    let id = record.id;
    let refused = |e: EngineError| NotLoaded::Refused(id, e);
    let mut file = store
        .model_files()
        .open(id)
        .map_err(|e| refused(SnapshotError::Io(e).into()))?
        .ok_or(NotLoaded::Nothing("the last ready model has no saved file"))?;
    let build_started = Instant::now();
    let catalog = Arc::new(
        build_now(store)
            .map_err(|e| refused(e.into()))?
            .ok_or(NotLoaded::Nothing("no catalog is configured"))?,
    );
    // The catalog serves its own endpoints whether or not the model matches it.
    catalog_state.replace(catalog.clone(), build_started.elapsed().as_millis() as u64);
    let saved = snapshot::read(&mut file).map_err(|e| refused(e.into()))?;
    if saved.meta.model_id != id {
        return Err(refused(
            SnapshotError::Corrupt(format!("the file holds model {}", saved.meta.model_id)).into(),
        ));
    }
    let current = saved.meta.interactions == catalog.interactions.len() as u64
        && saved.meta.as_of == catalog.as_of;
    let model = snapshot::restore(saved, &catalog).map_err(|e| refused(e.into()))?;
    Ok((
        ServingModel {
            record,
            co_occurrence: CoOccurrence::new(&catalog),
            propensity: propensity_cache(context_limits),
            catalog,
            model,
        },
        current,
    ))
}

impl Engine {
    /// The model that serves, or why there is none.
    pub fn serving(&self) -> Result<Arc<ServingModel>> {
        // The states are read before the model: they end only after the model they wait for
        // is published, so a request racing that publication sees one or the other, never
        // neither (which would say there is no model).
        let (loading, pending) = (self.models.is_loading(), self.models.is_pending());
        if let Some(model) = self.models.current() {
            return Ok(model);
        }
        Err(if loading {
            EngineError::ModelNotReady("the last model is loading; retry in a few seconds")
        } else if pending {
            EngineError::ModelNotReady("the first model is training; retry in a few seconds")
        } else {
            EngineError::NoModel
        })
    }

    /// Says "loading" in answers when there is a saved model to load, until
    /// [`Engine::load_saved_model`] is done. Checked before serving starts, so that no request
    /// is told there is no model while one loads.
    pub(crate) async fn begin_loading(&self) {
        let store = self.store.clone();
        let saved = blocking(move || {
            let record = store.last_ready_model()?;
            Ok(record.is_some_and(|r| store.model_files().path(r.id).exists()))
        })
        .await;
        self.models.set_loading(saved.unwrap_or(false));
    }

    /// At start: serves the last ready model from its saved file, so that a restart answers
    /// within seconds instead of after a retraining. Returns true when that model was trained
    /// on every interaction the store holds now (the schedule need not retrain at once); false
    /// when nothing was loaded (reported; the schedule trains) or events arrived since (the
    /// model serves meanwhile). Clears the loading state [`Engine::start_background`] set when
    /// a model was loaded; otherwise the schedule clears it once it has queued a training.
    pub(crate) async fn load_saved_model(&self) -> bool {
        let (store, catalog) = (self.store.clone(), self.catalog.clone());
        let contexts = self.models.context_limits;
        let started = Instant::now();
        let outcome =
            tokio::task::spawn_blocking(move || load_last(&store, &catalog, contexts)).await;
        let current = match outcome {
            Ok(Ok((serving, current))) => {
                let id = serving.record.id;
                self.models.publish(serving);
                self.models.set_loading(false);
                tracing::info!(
                    model = id,
                    current,
                    ms = started.elapsed().as_millis() as u64,
                    "saved model loaded"
                );
                current
            }
            Ok(Err(NotLoaded::Nothing(why))) => {
                tracing::info!(reason = why, "no saved model to load");
                false
            }
            Ok(Err(NotLoaded::Refused(model, e))) => {
                tracing::warn!(model, error = %e, "cannot serve the saved model; retraining");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "loading the saved model panicked; retraining");
                false
            }
        };
        // Not loaded: "loading" stays until the schedule has queued the run that replaces it
        // (which counts itself pending first), so no answer in between says "no model".
        current
    }

    pub fn serving_model_id(&self) -> Option<i64> {
        self.models.current().map(|m| m.record.id)
    }

    pub fn is_training(&self) -> bool {
        self.models.is_running()
    }

    /// Records a queued training run and starts it in the background; returns its record.
    /// `seed` None: the configured seed. A run already waiting to start is returned instead
    /// of queuing another (it trains on the same data, with the seed it was queued with).
    pub async fn train(&self, seed: Option<u64>) -> Result<ModelRecord> {
        if let Some(waiting) = lock(&self.models.waiting).clone() {
            return Ok(waiting);
        }
        let store = self.store.clone();
        let record = blocking(move || {
            if store.catalog_config()?.is_none() {
                return Err(EngineError::NotConfigured);
            }
            Ok(store.create_model(now_ms())?)
        })
        .await?;
        let options = TrainingOptions::with_seed(seed.unwrap_or(self.config.seed));
        let earlier = {
            let mut waiting = lock(&self.models.waiting);
            let earlier = waiting.clone();
            if earlier.is_none() {
                *waiting = Some(record.clone());
            }
            earlier
        };
        if let Some(earlier) = earlier {
            // Another request queued one while this record was being written: join it.
            let store = self.store.clone();
            let mut orphan = record;
            orphan.status = ModelStatus::Failed;
            orphan.error = Some(format!("joined run {} queued at the same time", earlier.id));
            blocking(move || Ok(store.save_model(&orphan)?)).await?;
            return Ok(earlier);
        }
        self.start_training(record.clone(), options);
        Ok(record)
    }

    /// Starts the run recorded as `record` in the background; once its model serves, every
    /// defined trait and goal recommendation is recomputed with it and every `after_training`
    /// audience gets its next snapshot.
    pub(crate) fn start_training(&self, record: ModelRecord, options: TrainingOptions) {
        let (traits, goals, store, engine) = (
            self.traits.clone(),
            self.goals.clone(),
            self.store.clone(),
            self.clone(),
        );
        self.models.spawn_run(
            self.store.clone(),
            self.catalog.clone(),
            record,
            options,
            move |model| {
                let id = model.record.id;
                goals.spawn_all(store.clone(), Some(id));
                traits.spawn_all(store, model);
                // On the blocking thread the run ends on, which is inside the runtime.
                tokio::runtime::Handle::current()
                    .spawn(async move { engine.refresh_after_training(id).await });
            },
        );
    }

    /// Training runs, newest first.
    pub async fn models(&self, limit: usize) -> Result<Vec<ModelRecord>> {
        let store = self.store.clone();
        blocking(move || Ok(store.models(limit)?)).await
    }

    pub async fn model(&self, id: i64) -> Result<ModelRecord> {
        let store = self.store.clone();
        blocking(move || {
            store
                .model(id)?
                .ok_or(EngineError::NotFound(format!("no model {id}")))
        })
        .await
    }
}
