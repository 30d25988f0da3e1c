//! The crate's single error type.

use thiserror::Error;

/// Everything that can go wrong in this crate. All variants describe bad input;
/// the algorithms themselves have no failure modes once their input is valid.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelError {
    #[error("user {user} is out of range (model has {n_users} users)")]
    UserOutOfRange { user: u32, n_users: usize },

    #[error("item {item} is out of range (model has {n_items} items)")]
    ItemOutOfRange { item: u32, n_items: usize },

    #[error("interaction (user {user}, item {item}) has a non-finite weight {weight}")]
    NonFiniteWeight { user: u32, item: u32, weight: f32 },

    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },

    #[error("{what}: expected {expected}, got {got}")]
    DimensionMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },

    /// A dense model (EASE) would need an `n_items × n_items` matrix larger
    /// than the caller allowed; the caller should fall back to another model.
    #[error("{n_items} items exceed the limit of {max_items} for this model")]
    TooManyItems { n_items: usize, max_items: usize },

    /// A matrix that should be symmetric positive definite was not, in `f32`
    /// arithmetic (e.g. a regularization too small for the data's scale).
    #[error("matrix is not positive definite (pivot {pivot} is {value})")]
    NotPositiveDefinite { pivot: usize, value: f32 },
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, ModelError>;
