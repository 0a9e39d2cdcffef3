//! Consumer-offset translation: the per-partition offset map the mirror keeps ([`map`]),
//! stored with the flow's progress on the target cluster; the group offset sync that uses
//! it ([`sync`]); translation reports ([`report`]) for `kmirror offsets` ([`cli`]),
//! `kmirror failover` ([`failover`]) and `GET /offsets`.

pub mod cli;
pub mod failover;
pub mod map;
pub mod report;
pub mod sync;

pub use map::{OffsetMap, Translation};
