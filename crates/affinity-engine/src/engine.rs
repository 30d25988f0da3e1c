//! [`Engine`]: the handle the server and the CLI share.

use std::sync::Arc;

use tokio::sync::oneshot;

use affinity_core::Message;
use affinity_store::group_commit::GroupCommitter;
use affinity_store::sqlite::SqliteStore;
use affinity_store::{CatalogStore, Outcome, StoreError};

use crate::EngineConfig;
use crate::catalog::CatalogState;
use crate::credentials::{Credentials, GeneratedCredential};
use crate::delivery::Delivery;
use crate::error::{EngineError, Result};
use crate::goals::GoalJobs;
use crate::training::{ContextLimits, ModelState};
use crate::traits::TraitJobs;
use crate::work_queue::{WorkQueue, WorkStats};

/// Everything the product does, behind one cheaply cloned handle.
#[derive(Clone)]
pub struct Engine {
    pub(crate) store: SqliteStore,
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) catalog: CatalogState,
    pub(crate) models: ModelState,
    pub(crate) traits: TraitJobs,
    pub(crate) goals: GoalJobs,
    pub(crate) config: Arc<EngineConfig>,
    /// Audience snapshots (creations, refreshes) and previews, each bounded.
    pub(crate) snapshots: WorkQueue,
    pub(crate) previews: WorkQueue,
    /// The outbox worker's handle (destinations).
    pub(crate) delivery: Arc<Delivery>,
    committer: Arc<GroupCommitter>,
}

impl Engine {
    /// Opens the store in the configured data directory and starts its writer. Returns the
    /// credentials generated on this start (to be printed once).
    pub fn open(config: &EngineConfig) -> Result<(Self, Vec<GeneratedCredential>)> {
        let store = SqliteStore::open(&config.data_dir)?;
        let (credentials, generated) = Credentials::resolve(&store, config)?;
        let committer = GroupCommitter::start(store.writer()?)?;
        let catalog = CatalogState::new(store.catalog_config()?.is_some());
        let delivery = Delivery::new(config.delivery.clone(), config.export_dir())?;
        Ok((
            Self {
                store,
                credentials: Arc::new(credentials),
                catalog,
                models: ModelState::new(ContextLimits::from(&config.work)),
                traits: TraitJobs::default(),
                goals: GoalJobs::default(),
                config: Arc::new(config.clone()),
                snapshots: WorkQueue::new(
                    "audience computations",
                    config.work.audience_workers,
                    config.work.audience_queue,
                ),
                previews: WorkQueue::new(
                    "audience previews",
                    config.work.preview_workers,
                    config.work.preview_queue,
                ),
                delivery: Arc::new(delivery),
                committer: Arc::new(committer),
            },
            generated,
        ))
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Whether `secret` is a current credential of `kind` (configured, or stored and
    /// re-read at most once a second, so a rotation by the CLI applies without a restart).
    pub async fn verify_credential(
        &self,
        kind: affinity_store::CredentialKind,
        secret: &str,
    ) -> bool {
        self.credentials.verify(&self.store, kind, secret).await
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The audience snapshot queue's state (running, waiting, peak, refused).
    pub fn audience_work(&self) -> WorkStats {
        self.snapshots.stats()
    }

    /// The preview queue's state.
    pub fn preview_work(&self) -> WorkStats {
        self.previews.stats()
    }

    /// Stores messages through group commit and waits until they are durable.
    pub async fn ingest(&self, messages: Vec<Message>) -> Result<Vec<Outcome>> {
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

/// Runs blocking work (store reads, scoring) on the blocking pool, so that async callers never
/// block their runtime's threads (invariant 6 in ARCHITECTURE.md).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?
}
