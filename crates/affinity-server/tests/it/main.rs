//! Integration tests of the server through real HTTP on port 0 with a temporary data dir.

mod audiences;
mod background_work;
mod catalog;
mod destinations;
mod discovery;
mod error_bodies;
mod event_time;
mod goals;
mod hardening;
mod identity;
mod ingest;
mod living_audiences;
mod model_now;
mod models;
mod new_items;
mod profile_api;
mod receiver;
mod recommendations;
mod segment_python;
mod setup_mistakes;
mod stored_bodies;
mod support;
mod tracking_auth;
mod trait_destinations;
mod traits;
mod validation;
