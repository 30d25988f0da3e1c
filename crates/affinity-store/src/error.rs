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
    /// A stored JSON document that cannot be read: not JSON, not in the versioned envelope,
    /// or not the shape its version promises. Names the row so it can be found and fixed.
    #[error("stored data is corrupt: {table}.{column} of row {row}: {problem}")]
    CorruptDocument {
        table: &'static str,
        column: &'static str,
        row: String,
        problem: String,
    },
    /// A stored JSON document written by a newer Affinity (a downgrade): refused rather than
    /// misread, like [`StoreError::NewerSchema`] for the whole store.
    #[error(
        "{table}.{column} of row {row} is in format version {found}, newer than this Affinity \
         reads ({supported}); run a newer Affinity"
    )]
    NewerDocument {
        table: &'static str,
        column: &'static str,
        row: String,
        found: u64,
        supported: u64,
    },
    /// A document could not be serialized (a map with non-string keys, say): a bug in the
    /// caller's value, reported instead of storing something unreadable.
    #[error("cannot encode {table}.{column}: {source}")]
    Encode {
        table: &'static str,
        column: &'static str,
        source: serde_json::Error,
    },
}
