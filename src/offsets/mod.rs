//! Consumer-offset translation: the per-partition offset map the mirror keeps
//! ([`map`]), stored with the flow's progress on the target cluster, and the group offset sync
//! that uses it ([`sync`]).

pub mod map;
pub mod sync;

pub use map::{OffsetMap, Translation};
