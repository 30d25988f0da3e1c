use std::sync::Arc;

use tokio::sync::oneshot;

use affinity_core::Message;
use affinity_store::group_commit::GroupCommitter;
use affinity_store::sqlite::SqliteStore;
use affinity_store::{CatalogStore, Outcome, StoreError};

use crate::catalog_state::CatalogState;
use crate::credentials::{Credentials, GeneratedCredential};
use crate::{ApiError, ServerConfig, ServerError};

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: SqliteStore,
    pub credentials: Arc<Credentials>,
    pub catalog: CatalogState,
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
                committer: Arc::new(committer),
            },
            generated,
        ))
    }

    /// Starts the background work of a serving process: the first catalog build. Needs a
    /// Tokio runtime, so it is not part of `open`.
    pub fn start_background(&self) {
        if self.catalog.snapshot().status != crate::catalog_state::BuildStatus::NotConfigured {
            self.catalog.rebuild(self.store.clone());
        }
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
