//! The embedded SQLite store: one file `affinity.db` in the data directory, WAL mode.

mod audiences;
mod catalog;
mod computed_traits;
pub mod credentials;
mod destinations;
mod discovery;
mod goals;
mod identity;
mod meta;
mod models;
mod outbox;
mod profiles;
mod schema;
mod stored_json;
mod track_scan;
mod trait_outbox;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

pub use writer::Writer;

use crate::{DiscoveryLimits, StoreError};

pub const DB_FILE: &str = "affinity.db";

/// A handle to the store. Cheap to clone; reads use a small pool of read-only connections,
/// writes need the single [`Writer`] from [`SqliteStore::writer`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    limits: DiscoveryLimits,
}

/// Readers kept open for reuse; more may be open at once, the extra ones are closed.
const POOLED_READERS: usize = 8;

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, migrating an older schema and
    /// refusing a newer one.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_limits(data_dir, DiscoveryLimits::default())
    }

    /// [`SqliteStore::open`] with other discovery bounds (tests use small ones). The bounds
    /// are enforced by this handle's writers; they are not stored with the data.
    pub fn open_with_limits(data_dir: &Path, limits: DiscoveryLimits) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        restrict(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        // Larger pages mean fewer B-tree splits for rows of a few hundred bytes; the size can
        // only be chosen before the first table exists, so an existing store keeps its own.
        conn.pragma_update(None, "page_size", 16_384)?;
        configure_writer(&conn)?;
        schema::migrate(&mut conn)?;
        restrict_files(data_dir)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                readers: Mutex::new(Vec::new()),
                limits,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn limits(&self) -> DiscoveryLimits {
        self.inner.limits
    }

    /// Where fitted models are saved: `models/` beside the database.
    pub fn model_files(&self) -> crate::model_files::ModelFiles {
        crate::model_files::ModelFiles::new(self.path().parent().unwrap_or(Path::new(".")))
    }

    /// Opens the write connection. Only one should be live per process; another process
    /// (say `affinity import` while the server runs) waits on SQLite's lock.
    pub fn writer(&self) -> Result<Writer, StoreError> {
        // One thread owns the writer, so SQLite's own mutexes are pure overhead.
        let conn = Connection::open_with_flags(
            &self.inner.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure_writer(&conn)?;
        Writer::new(conn, self.inner.limits)
    }

    /// A writer for bulk loads (`affinity import`): commits are not fsynced one by one
    /// (`synchronous=NORMAL`; a crash can lose only the last chunks, which a re-run restores
    /// since duplicates are skipped) and [`Writer::finish`] makes everything durable at the end.
    pub fn bulk_writer(&self) -> Result<Writer, StoreError> {
        let writer = self.writer()?;
        writer.set_synchronous("NORMAL")?;
        Ok(writer)
    }

    /// A short-lived write connection for rare writes (settings, models, traits), keeping
    /// them off the ingest writer; SQLite serializes it with the writer through its lock.
    ///
    /// Its transactions begin IMMEDIATE: most of them read before they write, and in WAL mode
    /// a deferred transaction whose snapshot another writer moved past gets `SQLITE_BUSY` at
    /// its first write *at once*, without waiting out the busy timeout (CI met it as a 503 on
    /// a catalog upload while a catalog build committed).
    pub(crate) fn write_conn(&self) -> Result<Connection, StoreError> {
        let mut conn = Connection::open(self.path())?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        Ok(conn)
    }

    /// Runs `f` on a pooled read connection.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.inner.readers.lock().ok().and_then(|mut p| p.pop());
        let conn = match pooled {
            Some(c) => c,
            None => {
                // Read-write open with query_only: a READ_ONLY connection cannot create the
                // WAL index when it is the first to open the file.
                let c = Connection::open_with_flags(
                    &self.inner.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c.pragma_update(None, "query_only", true)?;
                // Scans (catalog builds read every interaction event) then read pages in
                // place instead of copying each through a read() call: measured 22% of a
                // 1M-user build in the kernel's copy. SQLite clamps this to its maximum.
                c.pragma_update(None, "mmap_size", 1_i64 << 31)?;
                c
            }
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.inner.readers.lock()
            && pool.len() < POOLED_READERS
        {
            pool.push(conn);
        }
        result
    }
}

fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // WAL lets readers run during writes; synchronous=FULL fsyncs the WAL at every commit, so
    // a committed transaction survives a crash or power loss: what a `200` promises.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Fewer, larger checkpoints during heavy ingest.
    conn.pragma_update(None, "wal_autocheckpoint", 8_192)?;
    Ok(())
}

/// The data directory holds credentials and everyone's events: only its owner may enter it
/// (0700), and the database files are the owner's alone (0600). Applied at every open, so a
/// store created by an older version (0755/0644) is tightened too.
#[cfg(unix)]
fn restrict(data_dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
        StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        }
    })
}

#[cfg(unix)]
fn restrict_files(data_dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    for name in [
        DB_FILE.to_string(),
        format!("{DB_FILE}-wal"),
        format!("{DB_FILE}-shm"),
    ] {
        let path = data_dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|source| StoreError::DataDir { path, source })?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(not(unix))]
fn restrict_files(_: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::SqliteStore;

    /// A write connection's transaction takes the write lock when it begins, before its first
    /// read: another writer then waits (here: fails, with no busy timeout) instead of
    /// committing under it and making this transaction's first write fail without waiting.
    #[test]
    fn a_write_connection_s_transaction_holds_the_write_lock_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut conn = store.write_conn().unwrap();
        let tx = conn.transaction().unwrap();
        let _: i64 = tx
            .query_row("SELECT count(*) FROM catalog_items", [], |r| r.get(0))
            .unwrap();

        let other = rusqlite::Connection::open(store.path()).unwrap();
        other.busy_timeout(std::time::Duration::ZERO).unwrap();
        let err = other
            .execute(
                "INSERT INTO catalog_items (item_id, columns, updated_at) VALUES ('b', '{}', 0)",
                [],
            )
            .unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy),
            "{err}"
        );

        tx.execute(
            "INSERT INTO catalog_items (item_id, columns, updated_at) VALUES ('a', '{}', 0)",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
}
