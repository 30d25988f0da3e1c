use std::sync::Arc;

use tokio::sync::oneshot;

use affinity_core::Message;
use affinity_store::group_commit::GroupCommitter;
use affinity_store::sqlite::SqliteStore;
use affinity_store::{
    AudienceStore, CatalogStore, EventDiscovery, ModelRegistry, Outcome, StoreError,
};

use crate::catalog_state::CatalogState;
use crate::credentials::{Credentials, GeneratedCredential};
use crate::training::ModelState;
use crate::traits::TraitJobs;
use crate::{ApiError, ServerConfig, ServerError};

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: SqliteStore,
    pub credentials: Arc<Credentials>,
    pub catalog: CatalogState,
    pub models: ModelState,
    pub traits: TraitJobs,
    /// Seed for training runs that do not name one.
    pub seed: u64,
    retrain_interval: std::time::Duration,
    committer: Arc<GroupCommitter>,
}

impl AppState {
    /// Opens the store in the configured data directory and starts its writer.
    pub fn open(config: &ServerConfig) -> Result<(Self, Vec<GeneratedCredential>), ServerError> {
        let store = SqliteStore::open(&config.data_dir)?;
        let (credentials, generated) = Credentials::resolve(&store, config)?;
        let committer = GroupCommitter::start(store.writer()?)?;
        let catalog = CatalogState::new(store.catalog_config()?.is_some());
        Ok((
            Self {
                store,
                credentials: Arc::new(credentials),
                catalog,
                models: ModelState::default(),
                traits: TraitJobs::default(),
                seed: 42,
                retrain_interval: config.retrain_interval,
                committer: Arc::new(committer),
            },
            generated,
        ))
    }

    /// Starts the background work of a serving process (it needs a Tokio runtime, so it is not
    /// part of `open`). Work left unfinished by a previous process is marked failed; with a
    /// catalog configured, a model is trained at once (so that answers are available after a
    /// restart) and then every `retrain_interval` when new events arrived.
    pub fn start_background(&self) {
        if let Err(e) = self
            .store
            .fail_unfinished_audiences("interrupted: the server stopped while computing")
        {
            tracing::error!(error = %e, "cannot read audiences");
        }
        match self
            .store
            .fail_unfinished("interrupted: the server stopped during training")
        {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "marked interrupted training runs as failed"),
            Err(e) => tracing::error!(error = %e, "cannot read the model registry"),
        }
        // No separate catalog build here: with a catalog configured, the loop below starts a
        // training run at once, and the run publishes the catalog it builds before fitting
        // (two concurrent builds of a large store would each take twice as long).
        let state = self.clone();
        tokio::spawn(async move {
            let mut last_count = None;
            loop {
                let store = state.store.clone();
                let seen = tokio::task::spawn_blocking(move || {
                    let configured = store.catalog_config()?.is_some();
                    let count: u64 = store.events()?.iter().map(|s| s.count).sum();
                    Ok::<_, StoreError>((configured, count))
                })
                .await;
                if let Ok(Ok((true, count))) = seen
                    && last_count != Some(count)
                    && !state.models.is_running()
                {
                    last_count = Some(count);
                    state.queue_training();
                }
                tokio::time::sleep(state.retrain_interval).await;
            }
        });
    }

    /// Records a queued run and starts it in the background.
    pub fn queue_training(&self) {
        match self.store.create_model(crate::catalog_state::now_ms()) {
            Ok(record) => self.start_training(
                record,
                affinity_model::training::TrainingOptions::with_seed(self.seed),
            ),
            Err(e) => tracing::error!(error = %e, "cannot record a training run"),
        }
    }

    /// Starts the run recorded as `record` in the background; once its model serves, every
    /// defined trait is recomputed with it.
    pub fn start_training(
        &self,
        record: affinity_store::ModelRecord,
        options: affinity_model::training::TrainingOptions,
    ) {
        let (traits, store) = (self.traits.clone(), self.store.clone());
        self.models.spawn_run(
            self.store.clone(),
            self.catalog.clone(),
            record,
            options,
            move |model| traits.spawn_all(store, model),
        );
    }

    /// Stores messages through group commit and waits until they are durable.
    pub async fn commit(&self, messages: Vec<Message>) -> Result<Vec<Outcome>, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.committer.submit(
            messages,
            Box::new(move |result| {
                // The client may have gone; its messages are stored all the same.
                let _ = tx.send(result);
            }),
        )?;
        Ok(rx.await.map_err(|_| StoreError::Closed)??)
    }
}
