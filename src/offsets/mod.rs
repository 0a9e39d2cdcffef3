//! Consumer-offset translation: the per-partition offset map the mirror keeps ([`map`]),
//! stored with the flow's progress on the target cluster; the group offset sync that uses
//! it ([`sync`]); translation reports ([`report`]) for `kmirror offsets` ([`cli`]),
//! `kmirror failover` ([`failover`]) and `GET /offsets`; MirrorMaker 2 checkpoints and
//! heartbeats ([`mm2`]).

pub mod cli;
pub mod failover;
pub mod map;
pub mod mm2;
pub mod report;
pub mod sync;

pub use map::{OffsetMap, Translation};
