//! Per-partition logs: the storage trait the handlers use, and its engines.
//!
//! A log holds v2 record batches exactly as producers sent them; the log assigns offsets
//! by patching each batch's base offset (outside the CRC) and stamps the leader epoch.
//! Batches are never decompressed here. Engines:
//! - [`disk`]: segmented files with sparse offset and time indexes, recovery, retention;
//! - [`memory`]: the same behaviour in memory, for unit tests.
//!
//! Durability policy ([`FlushPolicy`]) is applied by [`flush::GroupCommit`] above the logs,
//! so one fsync can cover many partitions.

pub mod disk;
pub mod flush;
pub mod memory;
#[cfg(test)]
mod test_support;

pub use disk::DiskLog;
pub use flush::{spawn_interval_flusher, GroupCommit};
pub use memory::MemoryLog;

use std::sync::Arc;

use bytes::Bytes;

/// Settings of one partition's log (from topic configs with broker defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before an append that would take it past
    /// this size (as Kafka does); a single larger append still goes into one segment.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment once its first batch is this old.
    pub segment_ms: i64,
    /// `retention.ms`: delete whole segments whose newest timestamp is older; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest whole segments while the log is larger; -1 = no limit.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
        }
    }
}

/// When appended data is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Never explicitly (page cache; survives a process crash, like Kafka's default).
    Never,
    /// Every `interval_ms` milliseconds, in the background.
    Interval { interval_ms: u64 },
    /// Before acknowledging: group commit, one fsync covering every batch that arrived
    /// while the previous fsync ran.
    Always,
}

/// Errors of a log operation.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("corrupt batch: {0}")]
    Corrupt(#[from] kmirror_wire::batch::BatchError),
    #[error("storage error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record of the first batch.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Largest `maxTimestamp` among the appended batches.
    pub max_timestamp: i64,
}

/// A batch located by a timestamp or offset search: its bytes, for callers that need to
/// look inside (for example to find the exact record for a timestamp).
#[derive(Debug, Clone)]
pub struct FoundBatch {
    pub base_offset: i64,
    pub bytes: Bytes,
}

/// One partition's log. Calls are made with the partition's lock held; implementations do
/// plain (blocking) file I/O against the page cache and never fsync in `append` — flushing
/// is [`PartitionLog::sync_handle`]'s and [`PartitionLog::flush`]'s job.
pub trait PartitionLog: Send + Sync + std::fmt::Debug {
    /// Appends whole, already validated v2 batches laid end to end in `batches`. Assigns
    /// consecutive offsets from [`Self::log_end_offset`] by patching each base offset,
    /// writes `leader_epoch` into each batch, and rolls segments by size and time first.
    /// On an I/O error (disk full) nothing of this append remains in the log.
    fn append(
        &mut self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError>;

    /// Reads the bytes of one segment from the batch that contains `offset`, up to
    /// `max_bytes` (so the last batch may be cut, as Kafka's LogSegment.read cuts it), but
    /// always at least one whole batch if one exists at or after `offset` (KIP-74). Returns
    /// empty bytes at the log end offset. An offset below the log start
    /// offset or above the log end offset is [`LogError::OffsetOutOfRange`].
    fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, LogError>;

    /// The first offset still in the log.
    fn log_start_offset(&self) -> i64;
    /// The offset the next appended record will get.
    fn log_end_offset(&self) -> i64;

    /// The first batch whose `maxTimestamp >= timestamp_ms` and whose last offset is at or
    /// above both `min_offset` and the log start, if any (ListOffsets by time).
    fn find_by_timestamp(
        &self,
        timestamp_ms: i64,
        min_offset: i64,
    ) -> Result<Option<FoundBatch>, LogError>;
    /// The batch holding the largest timestamp in the log, with that timestamp.
    fn max_timestamp(&self) -> Result<Option<(i64, FoundBatch)>, LogError>;

    /// Moves the log start offset to `offset` (DeleteRecords), deleting whole segments that
    /// lie entirely below it. An offset below the log start changes nothing; one below 0 or
    /// past the log end is [`LogError::OffsetOutOfRange`]. Returns the log start offset.
    fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError>;

    /// Applies `retention.ms` and `retention.bytes`, deleting whole inactive segments.
    /// Returns the number of segments deleted.
    fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError>;

    /// Replaces this log's configuration (topic config change).
    fn set_config(&mut self, config: LogConfig);

    /// Total bytes held.
    fn size_bytes(&self) -> u64;

    /// A handle to fsync the data written so far without holding the partition lock
    /// (`None` for engines with nothing to sync).
    fn sync_handle(&self) -> Option<Arc<std::fs::File>>;

    /// Fsyncs everything written so far.
    fn flush(&mut self) -> Result<(), LogError>;

    /// Calls `f` with every batch from the one containing `from_offset` to the end, in
    /// offset order (producer-state rebuild on start). Stops early if `f` returns false.
    /// An offset below the log start offset scans from the log start offset; one at or past
    /// the log end offset calls `f` for nothing.
    fn scan(
        &self,
        from_offset: i64,
        f: &mut dyn FnMut(kmirror_wire::batch::BatchView<'_>) -> bool,
    ) -> Result<(), LogError>;

    /// Flushes and marks the log as cleanly closed, so the next open skips recovery.
    fn close(&mut self) -> Result<(), LogError>;

    /// Removes the log's files (topic deletion).
    fn delete(self: Box<Self>) -> Result<(), LogError>;
}
