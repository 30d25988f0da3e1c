use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the data directory holds schema version {found}, newer than this Affinity understands \
         ({supported}); run a newer Affinity or point --data-dir elsewhere"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the store's writer has shut down")]
    Closed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}
