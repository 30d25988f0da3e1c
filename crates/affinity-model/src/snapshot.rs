//! Saving a fitted model and loading it back, so that a restarted server answers from its
//! last model at once instead of after a retraining (minutes on large stores).
//!
//! The format is hand-written little-endian rather than a serde encoding: nearly all of a
//! file is a few long `f32`/`u32` arrays (ALS factors are hundreds of MB at 1M users), which
//! are streamed in chunks with no intermediate copy of the whole model, and the layout is
//! small enough to state here:
//!
//! ```text
//! header (56 bytes)  "AFFMODEL" | format version u32 | 0u32 | payload length u64 | SHA-256 of payload
//! payload            meta | fallback popularity | recommender
//! meta               model id i64 | as_of i64 | users u64 | items u64 | interactions u64
//!                    | catalog fingerprint [32] | fit_ms u64 | chosen candidate (JSON string)
//! recommender        tag u8, then per kind: popularity/trending: f32s; ALS: factors, users,
//!                    items (u64 each), user f32s, item f32s; EASE: items u64, f32s, rows;
//!                    item-kNN: items u64, rows ×3; blend: parts u32, (weight f32, recommender)…;
//!                    repeat: known items last (0) or re-scored (1) u8, weight f32, the
//!                    users' known items with their personal scores (rows), base recommender
//! arrays             length u64, then the elements; rows (sparse): ptr u64s, ids u32s, f32s
//! ```
//!
//! Loading checks the magic, the version, every length against the bytes left in the payload
//! (so a damaged length cannot make it allocate gigabytes), the structure of every array,
//! and finally the checksum, before anything is returned. What the model was fitted on is
//! not saved: the catalog is rebuilt from the store (it is deterministic for the same events)
//! and [`restore`] refuses it unless its users, items and configuration are the ones the
//! model was trained on (see [`catalog_fingerprint`]).

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use thiserror::Error;

use affinity_core::item_catalog::ItemCatalog;

use crate::blend::Blend;
use crate::interactions::Csr;
use crate::item_knn::ItemKnnRaw;
use crate::repeat::Repeat;
use crate::training::{Candidate, TrainedModel, matrix};
use crate::{AlsModel, EaseModel, ItemKnn, Popularity, Recommender, Trending};

const MAGIC: &[u8; 8] = b"AFFMODEL";
/// Bumped whenever the layout changes; older files are then refused (and retrained), never
/// misread.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: u64 = 8 + 4 + 4 + 8 + 32;

/// Elements converted per write or read: bounds the staging buffer at 256 KiB.
const CHUNK: usize = 65_536;

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("not a model file")]
    NotAModel,
    #[error("model file format version {found}; this Affinity reads version {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("model file is corrupt: {0}")]
    Corrupt(String),
    #[error("model file is corrupt: its checksum does not match its contents")]
    Checksum,
    #[error("model kind cannot be saved: {0}")]
    Unsupported(&'static str),
    /// The catalog rebuilt from the store is not the one the model was trained on (events
    /// changed its users or items, or the catalog configuration changed).
    #[error("the saved model does not match the catalog: {0}")]
    Mismatch(String),
}

pub type Result<T> = std::result::Result<T, SnapshotError>;

/// A fitted model as a saver sees it: [`Recommender::fitted`] returns this, so that a boxed
/// recommender can be saved without knowing its type.
pub enum Fitted<'a> {
    Popularity(&'a Popularity),
    Trending(&'a Trending),
    Als(&'a AlsModel),
    Ease(&'a EaseModel),
    ItemKnn(&'a ItemKnn),
    Blend(&'a Blend),
    Repeat(&'a Repeat),
}

/// What a model file says about the model besides its numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotMeta {
    /// The model record's id.
    pub model_id: i64,
    pub as_of: i64,
    pub users: u64,
    pub items: u64,
    /// The catalog's interactions when the model was trained: the same count on a rebuilt
    /// catalog (with the same fingerprint) means no events arrived since.
    pub interactions: u64,
    pub catalog_fingerprint: [u8; 32],
    pub fit_ms: u64,
    pub chosen: Candidate,
}

impl SnapshotMeta {
    pub fn new(model_id: i64, catalog: &ItemCatalog, model: &TrainedModel) -> Self {
        Self {
            model_id,
            as_of: model.as_of,
            users: catalog.users.len() as u64,
            items: catalog.items.len() as u64,
            interactions: catalog.interactions.len() as u64,
            catalog_fingerprint: catalog_fingerprint(catalog),
            fit_ms: model.fit_ms,
            chosen: model.chosen.clone(),
        }
    }
}

/// SHA-256 of what gives a model's indexes their meaning: the catalog's user ids and item
/// ids in index order, and its configuration (event weights shape the interactions matrix).
pub fn catalog_fingerprint(catalog: &ItemCatalog) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((catalog.users.len() as u64).to_le_bytes());
    for u in &catalog.users {
        h.update(u.to_le_bytes());
    }
    h.update((catalog.items.len() as u64).to_le_bytes());
    for i in &catalog.items {
        h.update((i.len() as u64).to_le_bytes());
        h.update(i.as_bytes());
    }
    // Vectors and structs only: serde_json writes the same text for the same configuration.
    h.update(serde_json::to_vec(&catalog.config).unwrap_or_default());
    h.finalize().into()
}

/// Writes `model` to `w` and returns the bytes written. `w` must be positioned at the start
/// of an empty file: the header is written last (the checksum is known only then), at offset 0.
pub fn write<W: Write + Seek>(w: &mut W, meta: &SnapshotMeta, model: &TrainedModel) -> Result<u64> {
    w.write_all(&[0u8; HEADER_LEN as usize])?;
    let mut enc = Encoder {
        w: &mut *w,
        hash: Sha256::new(),
        len: 0,
    };
    enc.i64(meta.model_id)?;
    enc.i64(meta.as_of)?;
    enc.u64(meta.users)?;
    enc.u64(meta.items)?;
    enc.u64(meta.interactions)?;
    enc.bytes(&meta.catalog_fingerprint)?;
    enc.u64(meta.fit_ms)?;
    let chosen = serde_json::to_vec(&meta.chosen)
        .map_err(|e| SnapshotError::Corrupt(format!("cannot encode the candidate: {e}")))?;
    enc.u64(chosen.len() as u64)?;
    enc.bytes(&chosen)?;
    enc.f32s(model.fallback.scores())?;
    enc.recommender(model.recommender.as_ref())?;
    let (len, hash) = (enc.len, enc.hash.finalize());
    w.seek(SeekFrom::Start(0))?;
    w.write_all(MAGIC)?;
    w.write_all(&FORMAT_VERSION.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&hash)?;
    w.seek(SeekFrom::Start(HEADER_LEN + len))?;
    w.flush()?;
    Ok(HEADER_LEN + len)
}

/// A model file, read and checked but not yet matched to a catalog.
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub fallback: Popularity,
    pub recommender: Box<dyn Recommender + Send>,
}

/// Reads a model file written by [`write`], checking it whole (see the module documentation).
pub fn read<R: Read>(r: &mut R) -> Result<Snapshot> {
    let mut header = [0u8; HEADER_LEN as usize];
    r.read_exact(&mut header).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => SnapshotError::NotAModel,
        _ => SnapshotError::Io(e),
    })?;
    if &header[..8] != MAGIC {
        return Err(SnapshotError::NotAModel);
    }
    let found = u32::from_le_bytes(le(&header[8..12]));
    if found != FORMAT_VERSION {
        return Err(SnapshotError::Version { found });
    }
    let len = u64::from_le_bytes(le(&header[16..24]));
    let mut dec = Decoder {
        r,
        hash: Sha256::new(),
        left: len,
        buf: Vec::new(),
    };
    let mut meta = SnapshotMeta {
        model_id: dec.i64()?,
        as_of: dec.i64()?,
        users: dec.u64()?,
        items: dec.u64()?,
        interactions: dec.u64()?,
        catalog_fingerprint: [0; 32],
        fit_ms: 0,
        chosen: Candidate::Popularity,
    };
    dec.read(&mut meta.catalog_fingerprint)?;
    meta.fit_ms = dec.u64()?;
    let n = dec.len(1)?;
    let mut chosen = vec![0u8; n];
    dec.read(&mut chosen)?;
    let fallback = Popularity::from_scores(dec.f32s()?);
    let recommender = dec.recommender(0)?;
    if dec.left != 0 {
        return Err(SnapshotError::Corrupt(format!(
            "{} bytes after the model",
            dec.left
        )));
    }
    if dec.hash.finalize()[..] != header[24..56] {
        return Err(SnapshotError::Checksum);
    }
    // Parsed only now: the checksum vouches for the text.
    meta.chosen = serde_json::from_slice(&chosen)
        .map_err(|e| SnapshotError::Corrupt(format!("the candidate: {e}")))?;
    Ok(Snapshot {
        meta,
        fallback,
        recommender,
    })
}

/// Makes the served model of `snapshot` on `catalog` (rebuilt from the store), refusing a
/// catalog whose users, items or configuration differ from the model's.
pub fn restore(snapshot: Snapshot, catalog: &ItemCatalog) -> Result<TrainedModel> {
    let meta = &snapshot.meta;
    let (users, items) = (catalog.users.len() as u64, catalog.items.len() as u64);
    if (users, items) != (meta.users, meta.items) {
        return Err(SnapshotError::Mismatch(format!(
            "the model has {} users and {} items, the catalog {users} and {items}",
            meta.users, meta.items
        )));
    }
    if catalog_fingerprint(catalog) != meta.catalog_fingerprint {
        return Err(SnapshotError::Mismatch(
            "the catalog's user ids, item ids or configuration changed".to_string(),
        ));
    }
    if snapshot.recommender.n_items() as u64 != items
        || snapshot.fallback.scores().len() as u64 != items
    {
        return Err(SnapshotError::Corrupt(
            "the model scores a different number of items than it records".to_string(),
        ));
    }
    let data = matrix(catalog, meta.as_of)
        .map_err(|e| SnapshotError::Mismatch(format!("cannot rebuild the interactions: {e}")))?;
    Ok(TrainedModel {
        chosen: meta.chosen.clone(),
        // The evidence (metrics, candidates, holdout) stays in the model record.
        metrics: None,
        next_metrics: None,
        results: Vec::new(),
        holdout: None,
        runner_up: None,
        holdout_skipped: None,
        as_of: meta.as_of,
        data,
        recommender: snapshot.recommender,
        fallback: snapshot.fallback,
        fit_ms: meta.fit_ms,
    })
}

fn le<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

const TAG_POPULARITY: u8 = 1;
const TAG_TRENDING: u8 = 2;
const TAG_ALS: u8 = 3;
const TAG_EASE: u8 = 4;
const TAG_ITEM_KNN: u8 = 5;
const TAG_BLEND: u8 = 6;
/// Added after version 1 was released without a version bump: files of the kinds above read
/// as before, and an older reader refuses this kind as an unknown one (then retrains).
const TAG_REPEAT: u8 = 7;

/// Blends nest other models; a file claiming deeper nesting is damaged (and recursion on it
/// must stay bounded).
const MAX_DEPTH: u32 = 4;

struct Encoder<'w, W> {
    w: &'w mut W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Encoder<'_, W> {
    fn bytes(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b)?;
        self.hash.update(b);
        self.len += b.len() as u64;
        Ok(())
    }

    fn u64(&mut self, x: u64) -> Result<()> {
        self.bytes(&x.to_le_bytes())
    }

    fn i64(&mut self, x: i64) -> Result<()> {
        self.bytes(&x.to_le_bytes())
    }

    /// A length, then each element's little-endian bytes, staged a chunk at a time.
    fn array<T: Copy, const N: usize>(
        &mut self,
        xs: &[T],
        to: impl Fn(T) -> [u8; N],
    ) -> Result<()> {
        self.u64(xs.len() as u64)?;
        let mut buf = Vec::with_capacity(CHUNK.min(xs.len()) * N);
        for chunk in xs.chunks(CHUNK) {
            buf.clear();
            for &x in chunk {
                buf.extend_from_slice(&to(x));
            }
            self.bytes(&buf)?;
        }
        Ok(())
    }

    fn f32s(&mut self, xs: &[f32]) -> Result<()> {
        // Bits, not values: NaN payloads and -0.0 come back as they were.
        self.array(xs, |x| x.to_bits().to_le_bytes())
    }

    fn u32s(&mut self, xs: &[u32]) -> Result<()> {
        self.array(xs, u32::to_le_bytes)
    }

    fn usizes(&mut self, xs: &[usize]) -> Result<()> {
        self.array(xs, |x| (x as u64).to_le_bytes())
    }

    fn rows(&mut self, (ptr, ids, weights): (&[usize], &[u32], &[f32])) -> Result<()> {
        self.usizes(ptr)?;
        self.u32s(ids)?;
        self.f32s(weights)
    }

    fn recommender(&mut self, model: &dyn Recommender) -> Result<()> {
        let fitted = model.fitted().ok_or(SnapshotError::Unsupported(
            "a model from outside this crate",
        ))?;
        match fitted {
            Fitted::Popularity(m) => {
                self.bytes(&[TAG_POPULARITY])?;
                self.f32s(m.scores())
            }
            Fitted::Trending(m) => {
                self.bytes(&[TAG_TRENDING])?;
                self.f32s(m.scores())
            }
            Fitted::Als(m) => {
                let (factors, users, items, uf, itf) = m.raw();
                self.bytes(&[TAG_ALS])?;
                self.u64(factors as u64)?;
                self.u64(users as u64)?;
                self.u64(items as u64)?;
                self.f32s(uf)?;
                self.f32s(itf)
            }
            Fitted::Ease(m) => {
                let (items, weights, users) = m.raw();
                self.bytes(&[TAG_EASE])?;
                self.u64(items as u64)?;
                self.f32s(weights)?;
                self.rows(users.raw())
            }
            Fitted::ItemKnn(m) => {
                let (items, neighbours, reverse, users) = m.raw();
                self.bytes(&[TAG_ITEM_KNN])?;
                self.u64(items as u64)?;
                self.rows(neighbours)?;
                self.rows(reverse)?;
                self.rows(users.raw())
            }
            Fitted::Blend(m) => {
                self.bytes(&[TAG_BLEND])?;
                self.u64(m.parts().len() as u64)?;
                for (weight, part) in m.parts() {
                    self.bytes(&weight.to_bits().to_le_bytes())?;
                    self.recommender(part.as_ref())?;
                }
                Ok(())
            }
            Fitted::Repeat(m) => {
                let (base, known, weight) = m.raw();
                self.bytes(&[TAG_REPEAT, u8::from(weight.is_some())])?;
                self.bytes(&weight.unwrap_or(0.0).to_bits().to_le_bytes())?;
                self.rows(known.raw())?;
                self.recommender(base)
            }
        }
    }
}

struct Decoder<'r, R> {
    r: &'r mut R,
    hash: Sha256,
    /// Payload bytes not read yet.
    left: u64,
    buf: Vec<u8>,
}

fn corrupt(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt(what.into())
}

impl<R: Read> Decoder<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> Result<()> {
        if out.len() as u64 > self.left {
            return Err(corrupt("the payload ends early"));
        }
        self.r.read_exact(out).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => corrupt("the file is truncated"),
            _ => SnapshotError::Io(e),
        })?;
        self.hash.update(&*out);
        self.left -= out.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read(&mut b)?;
        Ok(b[0])
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn i64(&mut self) -> Result<i64> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(i64::from_le_bytes(b))
    }

    fn usize(&mut self) -> Result<usize> {
        let x = self.u64()?;
        usize::try_from(x).map_err(|_| corrupt(format!("{x} does not fit this machine")))
    }

    /// An element count, refused when its elements cannot fit in what is left of the payload:
    /// allocation is then bounded by the file's size.
    fn len(&mut self, elem: u64) -> Result<usize> {
        let n = self.u64()?;
        if n.checked_mul(elem).is_none_or(|bytes| bytes > self.left) {
            return Err(corrupt(format!(
                "an array of {n} elements overruns the file"
            )));
        }
        usize::try_from(n).map_err(|_| corrupt("an array too long for this machine"))
    }

    fn array<T, const N: usize>(&mut self, from: impl Fn([u8; N]) -> T) -> Result<Vec<T>> {
        let n = self.len(N as u64)?;
        let mut out = Vec::with_capacity(n);
        let mut buf = std::mem::take(&mut self.buf);
        while out.len() < n {
            let take = (n - out.len()).min(CHUNK);
            buf.resize(take * N, 0);
            self.read(&mut buf)?;
            out.extend(buf.chunks_exact(N).map(|c| from(le(c))));
        }
        self.buf = buf;
        Ok(out)
    }

    fn f32s(&mut self) -> Result<Vec<f32>> {
        self.array(|b| f32::from_bits(u32::from_le_bytes(b)))
    }

    fn u32s(&mut self) -> Result<Vec<u32>> {
        self.array(u32::from_le_bytes)
    }

    fn usizes(&mut self) -> Result<Vec<usize>> {
        let xs: Vec<u64> = self.array(u64::from_le_bytes)?;
        xs.into_iter()
            .map(|x| {
                usize::try_from(x).map_err(|_| corrupt("an offset too large for this machine"))
            })
            .collect()
    }

    fn rows(&mut self, n_rows: usize, n_cols: usize) -> Result<Csr> {
        let (ptr, ids, weights) = (self.usizes()?, self.u32s()?, self.f32s()?);
        if ptr.len() != n_rows + 1 {
            return Err(corrupt(format!(
                "{} row offsets for {n_rows} rows",
                ptr.len()
            )));
        }
        Csr::from_raw(ptr, ids, weights, n_cols).map_err(corrupt)
    }

    fn recommender(&mut self, depth: u32) -> Result<Box<dyn Recommender + Send>> {
        if depth > MAX_DEPTH {
            return Err(corrupt("blends nested too deeply"));
        }
        Ok(match self.u8()? {
            TAG_POPULARITY => Box::new(Popularity::from_scores(self.f32s()?)),
            TAG_TRENDING => Box::new(Trending::from_scores(self.f32s()?)),
            TAG_ALS => {
                let (factors, users, items) = (self.usize()?, self.usize()?, self.usize()?);
                let (uf, itf) = (self.f32s()?, self.f32s()?);
                Box::new(AlsModel::from_raw(factors, users, items, uf, itf).map_err(corrupt)?)
            }
            TAG_EASE => {
                let items = self.usize()?;
                let weights = self.f32s()?;
                let users = self.rows_any(items)?;
                Box::new(EaseModel::from_raw(items, weights, users).map_err(corrupt)?)
            }
            TAG_ITEM_KNN => {
                let items = self.usize()?;
                let neighbours = self.rows(items, items)?;
                let reverse = self.rows(items, items)?;
                let users = self.rows_any(items)?;
                Box::new(
                    ItemKnn::from_raw(ItemKnnRaw {
                        n_items: items,
                        neighbours,
                        reverse,
                        users,
                    })
                    .map_err(corrupt)?,
                )
            }
            TAG_BLEND => {
                let n = self.len(5)?;
                let mut parts: Vec<(f32, Arc<dyn Recommender + Send>)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let mut w = [0u8; 4];
                    self.read(&mut w)?;
                    let weight = f32::from_bits(u32::from_le_bytes(w));
                    parts.push((weight, Arc::from(self.recommender(depth + 1)?)));
                }
                Box::new(Blend::new(parts).map_err(|e| corrupt(e.to_string()))?)
            }
            TAG_REPEAT => {
                let rescored = match self.u8()? {
                    0 => false,
                    1 => true,
                    flag => return Err(corrupt(format!("re-engagement flag {flag}"))),
                };
                let mut w = [0u8; 4];
                self.read(&mut w)?;
                let weight = rescored.then_some(f32::from_bits(u32::from_le_bytes(w)));
                let (ptr, ids, weights) = (self.usizes()?, self.u32s()?, self.f32s()?);
                let base: Arc<dyn Recommender + Send> = Arc::from(self.recommender(depth + 1)?);
                if ptr.is_empty() {
                    return Err(corrupt("rows without offsets"));
                }
                let known = Csr::from_raw(ptr, ids, weights, base.n_items()).map_err(corrupt)?;
                Box::new(Repeat::from_raw(base, known, weight).map_err(corrupt)?)
            }
            tag => return Err(corrupt(format!("unknown model kind {tag}"))),
        })
    }

    /// Users' rows, however many users there are (the model's own count).
    fn rows_any(&mut self, n_cols: usize) -> Result<Csr> {
        let (ptr, ids, weights) = (self.usizes()?, self.u32s()?, self.f32s()?);
        if ptr.is_empty() {
            return Err(corrupt("rows without offsets"));
        }
        Csr::from_raw(ptr, ids, weights, n_cols).map_err(corrupt)
    }
}
