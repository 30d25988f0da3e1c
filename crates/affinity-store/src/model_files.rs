//! Fitted models, one file each under `<data_dir>/models/` (`<id>.bin`, the model record's
//! id). Files rather than SQLite blobs: ALS factors reach hundreds of MB at 1M users, which
//! would bloat the database and its WAL and be read back through SQLite's page cache; a file
//! is streamed in and out. The format belongs to the model crate (`affinity_model::snapshot`);
//! this module only makes writes atomic and durable and finds the files again.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The directory under the data directory.
pub const MODELS_DIR: &str = "models";

/// Suffix of a file being written: never read, removed by [`ModelFiles::prune`].
const PARTIAL: &str = ".partial";

#[derive(Debug, Clone)]
pub struct ModelFiles {
    dir: PathBuf,
}

impl ModelFiles {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(MODELS_DIR),
        }
    }

    pub fn path(&self, id: i64) -> PathBuf {
        self.dir.join(format!("{id}.bin"))
    }

    /// Writes model `id` through `write` to a temporary file, fsyncs it, renames it into place
    /// and fsyncs the directory: a crash leaves the old file or the new one, never half of one.
    /// Returns what `write` returned.
    pub fn save<T, E: From<io::Error>>(
        &self,
        id: i64,
        write: impl FnOnce(&mut BufWriter<File>) -> Result<T, E>,
    ) -> Result<T, E> {
        fs::create_dir_all(&self.dir)?;
        let target = self.path(id);
        let partial = self.dir.join(format!("{id}.bin{PARTIAL}"));
        let outcome = (|| {
            let mut out = BufWriter::with_capacity(1 << 20, File::create(&partial)?);
            let value = write(&mut out)?;
            out.flush()?;
            out.get_ref().sync_all()?;
            fs::rename(&partial, &target)?;
            sync_dir(&self.dir)?;
            Ok(value)
        })();
        if outcome.is_err() {
            // Best effort: a leftover is also removed by the next prune.
            let _ = fs::remove_file(&partial);
        }
        outcome
    }

    /// Model `id`'s file, or None when there is none.
    pub fn open(&self, id: i64) -> io::Result<Option<BufReader<File>>> {
        match File::open(self.path(id)) {
            Ok(f) => Ok(Some(BufReader::with_capacity(1 << 20, f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes every model file but those of `keep` (and leftovers of interrupted writes).
    /// Returns how many were removed.
    pub fn prune(&self, keep: &[i64]) -> io::Result<usize> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let kept = name
                .strip_suffix(".bin")
                .and_then(|id| id.parse::<i64>().ok())
                .is_some_and(|id| keep.contains(&id));
            let ours = name.ends_with(".bin") || name.ends_with(PARTIAL);
            if ours && !kept {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Makes a rename in `dir` durable. Directories cannot be opened for syncing on Windows,
/// where the rename is durable on its own.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn saves_atomically_reads_back_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let files = ModelFiles::new(dir.path());
        assert!(files.open(1).unwrap().is_none());
        files.save(1, |w| w.write_all(b"one").map(|_| ())).unwrap();
        files.save(2, |w| w.write_all(b"two").map(|_| ())).unwrap();
        // A failed write leaves the previous file and no partial one.
        let failed: io::Result<()> = files.save(2, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        let mut text = String::new();
        files
            .open(2)
            .unwrap()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "two");
        fs::write(dir.path().join(MODELS_DIR).join("3.bin.partial"), b"x").unwrap();
        assert_eq!(files.prune(&[2]).unwrap(), 2);
        assert!(files.open(1).unwrap().is_none());
        assert!(files.open(2).unwrap().is_some());
        let left: Vec<_> = fs::read_dir(dir.path().join(MODELS_DIR)).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
