//! Store tests: identity resolution checked against a plain in-memory model of the same rules
//! on seeded random message streams, across transactions and writer restarts.

mod computed_traits;
mod identity_model;
