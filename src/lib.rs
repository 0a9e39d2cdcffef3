//! kmirror: replicates Kafka topics between clusters.
//!
//! [`config`] turns a YAML topology into a validated [`config::Topology`]; [`client`] is
//! the Kafka client on `kmirror-wire`; [`mirror`] runs flows; [`throttle`] holds flows to
//! their rate limits.

pub mod allocator;
pub mod client;
pub mod config;
pub mod mirror;
pub mod offsets;
pub mod service;
pub mod telemetry;
pub mod throttle;
