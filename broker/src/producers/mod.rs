//! Idempotent and transactional producer state of partitions (KIP-98).
//!
//! - [`ProducerIdManager`] hands out producer ids, persisted in blocks so an id is never
//!   reused after a restart, and answers `InitProducerId`.
//! - [`PartitionProducerState`] keeps, per partition, each producer's epoch and the
//!   metadata of its last [`NUM_BATCHES_TO_RETAIN`] batches, validates sequence numbers
//!   (Kafka's `ProducerAppendInfo` order) and detects retried duplicates.
//! - [`txn::PartitionTxns`] keeps, per partition, the open transactions (the last stable
//!   offset) and the aborted ones (what read_committed fetches are told to drop).
//! - [`snapshot`] serialises that state so a restart only replays the log after the
//!   snapshot offset.
//!
//! # Produce-path contract (one partition, one produce request, one batch)
//!
//! With the partition lock held from the first step to the last:
//! 1. `state.check(&view, now_ms)` validates the request's one batch for the partition
//!    (Kafka allows exactly one from Produce v3 on). It does not change the state.
//!    - `Err(code)`: answer the partition with `code`; append nothing.
//!    - `Ok(Check::Duplicate { .. })`: answer success with those offsets; append nothing.
//!    - `Ok(Check::Append)`: go on.
//! 2. Append the batch with `PartitionLog::append`.
//! 3. Only if the append succeeded, call `state.record(&view, now_ms)` on the now
//!    offset-patched buffer. If the append failed, record nothing.
//!
//! On broker start, restore the latest snapshot (if its offset is within the log) and feed
//! every batch from the snapshot offset (or the scan start) to
//! `rebuild_from(&view, now_ms)`, in offset order. Without a snapshot, scanning the last
//! few MiB of the log is enough for retries that straddle a restart.

pub mod ids;
pub mod snapshot;
pub mod state;
pub mod txn;

#[cfg(test)]
pub(crate) mod testutil;

pub use ids::ProducerIdManager;
pub use snapshot::SnapshotError;
pub use state::{BatchMetadata, Check, PartitionProducerState, ProducerEntry};

/// Batches remembered per producer and partition for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`; the reason clients cap `max.in.flight` at 5 with idempotence).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;

/// Default `producer.id.expiration.ms`: one day.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 3600 * 1000;

/// `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `RecordBatch.NO_SEQUENCE`.
pub const NO_SEQUENCE: i32 = -1;
