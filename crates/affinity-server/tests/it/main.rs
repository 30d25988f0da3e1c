//! Integration tests of the server through real HTTP on port 0 with a temporary data dir.

mod audiences;
mod catalog;
mod discovery;
mod hardening;
mod identity;
mod ingest;
mod models;
mod profile_api;
mod recommendations;
mod segment_python;
mod support;
mod tracking_auth;
mod traits;
mod validation;
