//! Helpers for this package's end-to-end tests, built on the process harness of
//! `kmirror-testkit` (re-exported here, so a test writes `use support::*`).
// Each test file uses a part of these helpers.
#![allow(dead_code)]

pub mod cluster;
pub mod records;

pub use kmirror_testkit::*;
