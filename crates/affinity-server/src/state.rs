use std::sync::Arc;

use tokio::sync::oneshot;

use affinity_core::Message;
use affinity_store::group_commit::GroupCommitter;
use affinity_store::sqlite::SqliteStore;
use affinity_store::{Outcome, StoreError};

use crate::credentials::{Credentials, GeneratedCredential};
use crate::{ApiError, ServerConfig, ServerError};

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: SqliteStore,
    pub credentials: Arc<Credentials>,
    committer: Arc<GroupCommitter>,
}

impl AppState {
    /// Opens the store in the configured data directory and starts its writer.
    pub fn open(config: &ServerConfig) -> Result<(Self, Vec<GeneratedCredential>), ServerError> {
        let store = SqliteStore::open(&config.data_dir)?;
        let (credentials, generated) = Credentials::resolve(&store, config)?;
        let committer = GroupCommitter::start(store.writer()?)?;
        Ok((
            Self {
                store,
                credentials: Arc::new(credentials),
                committer: Arc::new(committer),
            },
            generated,
        ))
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
