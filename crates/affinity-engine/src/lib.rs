//! Affinity's application layer: everything the product does between a request and the
//! models, with no HTTP in sight. The server and the CLI both call it.
//!
//! - [`Engine`]: the handle every caller shares. Its `async` methods run store reads, catalog
//!   builds, training and scoring on the blocking pool, never on the caller's async threads,
//!   so an HTTP handler can await any of them.
//! - [`catalog`]: the most recently built catalog, its background builds, catalog-file
//!   uploads and catalog queries.
//! - [`training`]: training runs and the serving model (with its propensity contexts).
//! - [`traits`]: trait computations, queued after every published model, one at a time.
//! - [`audience_target`]: what an audience ranks users by: its target's interactions, or for
//!   a new item or value the items sharing its columns.
//! - [`goals`]: goal-based recommendations (outcome, exposure, control group), computed at
//!   creation and after every published model, one at a time.
//! - [`audiences`]: audience snapshots (ranked, sized, control group, estimate), changes
//!   between snapshots, explanations, previews.
//! - [`recommendations`]: live answers: a user's recommendations, an item's similar items.
//! - [`credentials`]: write keys and tokens, configured or generated and kept in the store as
//!   hashes; rotation.
//! - [`destinations`]: webhooks, Segment-compatible APIs and export files that receive
//!   audience and trait messages (Segment Engage's), through a durable outbox that a
//!   delivery worker (`delivery`) drains with retries.
//! - [`schedule`]: the retrain loop.
//! - [`work_queue`]: bounded queues of background work (audience snapshots, previews) that
//!   refuse work beyond their bound instead of accepting what they cannot do soon.
//!
//! Synchronous entry points (`training::run_training`, `catalog::build_now`) serve the CLI,
//! which has no async runtime to protect.

pub mod audience_target;
pub mod audiences;
pub mod catalog;
pub mod catalog_file;
pub mod clock;
pub mod config;
pub mod credentials;
mod delivery;
pub mod destinations;
mod engine;
pub mod error;
pub use affinity_store::StoreError;
pub mod events;
pub mod filters;
pub mod goals;
mod lru;
pub mod profiles;
pub mod recommendations;
pub mod schedule;
mod sync;
pub mod training;
pub mod trait_messages;
pub mod traits;
pub mod work_queue;

pub use config::{DeliverySettings, EngineConfig, WorkLimits};
pub use credentials::{Credentials, GeneratedCredential, NewCredential};
pub use delivery::unrecorded_window;
pub use engine::Engine;
pub use error::{EngineError, Problem};

/// Plain data the engine hands out, re-exported so that callers need not depend on the store
/// crate (and cannot reach its blocking methods).
pub mod data {
    pub use affinity_model::propensity::{
        Contribution, CurvePoint, FeatureWeight, PropensityModel,
    };
    pub use affinity_store::{
        AudienceMembership, AudienceRecord, CredentialKind, CredentialRecord, DeliveryCounts,
        DeliveryRecord, DiscoveryLimits, DiscoveryTotals, EventPage, EventSummary, Member,
        ModelRecord, ModelStatus, Outcome, Profile, ProfileActivity, ProfileEventsQuery,
        ProfileIdentifier, PropertyValues, Refusal, RefusedMerge, StoredEvent, Trait,
        TraitDefinitionRecord,
    };
}
