//! Integration tests of the engine crate: the workspace's structural rules (tidy).

mod tidy;
