//! Consumer-offset translation: the per-partition offset map the mirror keeps
//! ([`map`]), stored with the flow's progress on the target cluster.

pub mod map;

pub use map::{OffsetMap, Translation};
