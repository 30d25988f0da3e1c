//! Tests of the `affinity` binary as a user runs it.

mod crash;
mod credentials;
mod delivery;
mod generate;
mod import;
mod serve;
mod support;
