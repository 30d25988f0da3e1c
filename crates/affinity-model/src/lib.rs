//! Affinity's recommendation models, evaluated offline.
//!
//! - [`Interactions`]: the sparse user × item confidence matrix (both orientations).
//! - [`AlsModel`]: implicit-feedback ALS with a conjugate-gradient solver.
//! - [`EaseModel`]: EASE, a closed-form item-item linear model (dense; small catalogues).
//! - [`ItemKnn`]: item-item cosine nearest neighbours (sparse; also serves "similar items").
//! - [`Popularity`]: the non-personalized baseline.
//! - [`repeat::Repeat`]: a user's own items re-scored by frequency and recency over a base model.
//! - [`Recommender`]: the scoring interface both implement.
//! - [`metrics`]: precision/recall/NDCG@k and coverage.
//! - [`split`]: temporal and per-user random train/test splits.
//! - [`cpu`]: the instruction set hot loops run with, chosen at run time (one portable build).
//!
//! Everything is synchronous and free of I/O; the only parallelism is rayon
//! inside [`AlsModel::fit`] and [`metrics::evaluate`], and results do not
//! depend on the number of threads.

mod als;
mod blend;
pub mod co_occurrence;
pub mod cpu;
mod dense;
mod ease;
mod error;
pub mod goal;
mod interactions;
mod item_knn;
mod low_pass;
pub mod metrics;
mod popularity;
pub mod propensity;
pub mod recommend;
mod recommender;
pub mod repeat;
pub mod snapshot;
pub mod split;
mod top_k;
pub mod training;
mod trending;

pub use als::{AlsModel, AlsParams};
pub use ease::{EaseModel, EaseParams};
pub use error::{ModelError, Result};
pub use interactions::{Interactions, Row, Triplet};
pub use item_knn::{ItemKnn, ItemKnnParams};
pub use popularity::Popularity;
pub use recommender::Recommender;
pub use repeat::{KnownItems, Repeat};
pub use trending::Trending;
