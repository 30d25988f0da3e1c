//! Affinity's domain types. Pure: no I/O, no async, no clocks (callers pass the time in).
//!
//! - [`message`]: a Segment message parsed and validated from its raw JSON.
//! - [`batch`]: the body of `/v1/batch` and its limits.
//! - [`limits`]: the Tracking API's size limits, shared by HTTP and `affinity import`.
//! - [`synthetic`]: a seeded generator of Segment messages for tests, demos and benchmarks.

pub mod as_of;
pub mod audience;
pub mod batch;
pub mod catalog;
pub mod column_similarity;
pub mod destination;
pub mod edit_distance;
pub mod engage;
pub mod error;
pub mod goal;
pub mod goal_funnel;
pub mod item_catalog;
pub mod item_rules;
pub mod limits;
pub mod mapping_check;
pub mod message;
pub mod synthetic;
pub mod timestamp;

pub use error::MessageError;
pub use message::{IdKind, Message, MessageType};
