//! Integration tests: one binary (faster to link than one per file).
//!
//! Sized for opt-level 0: every fit here is on a ~100 × 80 matrix.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod data;
mod metrics;
mod models;
mod neighbours;
mod propensity;
mod repeat;
mod selection;
mod snapshot;
mod splits;
mod training;
