//! Store tests: identity resolution checked against a plain in-memory model of the same rules
//! on seeded random message streams, across transactions and writer restarts; merges refused
//! by the one-userId rule and their record; recomputed traits; stored JSON documents and
//! their versions; audiences' numbered snapshots and their migration.

mod audience_snapshots;
mod computed_traits;
mod credentials;
mod discovery_limits;
mod identity_model;
mod permissions;
mod refused_merges;
mod stored_json;
