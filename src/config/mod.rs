//! Topology configuration (stub).
pub mod interpolate;
pub mod locate;
pub mod names;
pub mod units;
