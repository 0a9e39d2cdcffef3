//! An in-memory partition log with the observable behaviour of the disk log, for unit
//! tests of the handlers.
//!
//! Batches are kept as `Bytes` in pseudo-segments that roll by the same `segment.bytes` and
//! `segment.ms` rules as on disk, so offset assignment, read semantics (whole batches, at
//! least one, reads stop at a segment end), retention by time and bytes, and DeleteRecords
//! match the disk engine. It holds nothing across restarts, never fails with I/O errors,
//! and has nothing to fsync.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kmirror_wire::batch::{
    set_base_offset, set_partition_leader_epoch, BatchError, BatchView, Batches,
};

use super::{AppendInfo, FoundBatch, LogConfig, LogError, PartitionLog};

#[derive(Debug, Clone)]
struct StoredBatch {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    bytes: Bytes,
}

#[derive(Debug)]
struct MemSegment {
    base_offset: i64,
    next_offset: i64,
    size: u64,
    max_timestamp: i64,
    created_ms: Option<i64>,
    batches: Vec<StoredBatch>,
}

impl MemSegment {
    fn new(base_offset: i64) -> Self {
        Self {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: -1,
            created_ms: None,
            batches: Vec::new(),
        }
    }

    /// Index of the batch holding `offset` or the first one after it.
    fn batch_index(&self, offset: i64) -> usize {
        self.batches.partition_point(|b| b.last_offset < offset)
    }
}

/// A partition log held in memory.
#[derive(Debug)]
pub struct MemoryLog {
    config: LogConfig,
    /// Never empty; the last one is active.
    segments: VecDeque<MemSegment>,
    deleted_before: i64,
}

impl MemoryLog {
    /// An empty log starting at offset 0.
    pub fn new(config: LogConfig) -> Self {
        Self {
            config,
            segments: VecDeque::from([MemSegment::new(0)]),
            deleted_before: 0,
        }
    }

    /// Number of pseudo-segments (for tests).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn active(&self) -> &MemSegment {
        self.segments.back().expect("never empty")
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        }
    }

    fn roll(&mut self) {
        if !self.active().batches.is_empty() {
            let leo = self.log_end_offset();
            self.segments.push_back(MemSegment::new(leo));
        }
    }

    /// Segments from the one that may hold `offset` onwards.
    fn segments_from(&self, offset: i64) -> impl Iterator<Item = &MemSegment> {
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        self.segments.range(first..)
    }

    fn found(b: &StoredBatch) -> FoundBatch {
        FoundBatch {
            base_offset: b.base_offset,
            bytes: b.bytes.clone(),
        }
    }
}

impl PartitionLog for MemoryLog {
    fn append(
        &mut self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut sizes = Vec::new();
        let mut it = Batches::new(batches);
        for item in it.by_ref() {
            sizes.push(item?.size_bytes());
        }
        if it.truncated_tail() || it.position() != batches.len() {
            return Err(LogError::Corrupt(BatchError::Truncated {
                position: it.position(),
                needed_bytes: batches.len() - it.position() + 1,
                available_bytes: batches.len() - it.position(),
            }));
        }
        let leo = self.log_end_offset();
        if sizes.is_empty() {
            return Ok(AppendInfo {
                base_offset: leo,
                last_offset: leo - 1,
                max_timestamp: -1,
            });
        }
        let a = self.active();
        let expired = a
            .created_ms
            .is_some_and(|c| now_ms.saturating_sub(c) >= self.config.segment_ms);
        if a.size + batches.len() as u64 > self.config.segment_bytes || expired {
            self.roll();
        }
        let mut next = leo;
        let mut max_timestamp = -1;
        let mut stored = Vec::with_capacity(sizes.len());
        let mut pos = 0;
        for size in sizes {
            let raw = &mut batches[pos..pos + size];
            set_base_offset(raw, next);
            set_partition_leader_epoch(raw, leader_epoch);
            let view = BatchView::parse(raw, pos)?;
            stored.push(StoredBatch {
                base_offset: next,
                last_offset: view.last_offset(),
                max_timestamp: view.max_timestamp(),
                bytes: Bytes::copy_from_slice(raw),
            });
            max_timestamp = max_timestamp.max(view.max_timestamp());
            next = view.next_offset();
            pos += size;
        }
        let seg = self.segments.back_mut().expect("never empty");
        seg.created_ms.get_or_insert(now_ms);
        seg.size += batches.len() as u64;
        seg.next_offset = next;
        seg.max_timestamp = seg.max_timestamp.max(max_timestamp);
        seg.batches.extend(stored);
        Ok(AppendInfo {
            base_offset: leo,
            last_offset: next - 1,
            max_timestamp,
        })
    }

    fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, LogError> {
        if offset < self.log_start_offset() || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        for seg in self.segments_from(offset) {
            let first = seg.batch_index(offset);
            let Some(head) = seg.batches.get(first) else {
                continue;
            };
            // As Kafka's LogSegment.read: `max_bytes` of the segment but at least the first
            // batch, so the last batch may be cut.
            let want = head.bytes.len().max(max_bytes);
            let mut total = 0;
            for b in &seg.batches[first..] {
                total += b.bytes.len();
                if total >= want {
                    break;
                }
            }
            let total = total.min(want);
            if total == head.bytes.len() {
                return Ok(head.bytes.clone());
            }
            let mut out = BytesMut::with_capacity(total);
            for b in &seg.batches[first..] {
                let take = b.bytes.len().min(total - out.len());
                out.extend_from_slice(&b.bytes[..take]);
                if out.len() == total {
                    break;
                }
            }
            return Ok(out.freeze());
        }
        Ok(Bytes::new())
    }

    fn log_start_offset(&self) -> i64 {
        self.segments
            .front()
            .expect("never empty")
            .base_offset
            .max(self.deleted_before)
            .min(self.log_end_offset())
    }

    fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    fn find_by_timestamp(
        &self,
        timestamp_ms: i64,
        min_offset: i64,
    ) -> Result<Option<FoundBatch>, LogError> {
        let from = self.log_start_offset().max(min_offset);
        Ok(self
            .segments_from(from)
            .flat_map(|s| &s.batches)
            .find(|b| b.last_offset >= from && b.max_timestamp >= timestamp_ms)
            .map(Self::found))
    }

    fn max_timestamp(&self) -> Result<Option<(i64, FoundBatch)>, LogError> {
        let lso = self.log_start_offset();
        let mut best: Option<&StoredBatch> = None;
        for b in self.segments_from(lso).flat_map(|s| &s.batches) {
            if b.last_offset >= lso
                && b.max_timestamp >= 0
                && best.is_none_or(|x| b.max_timestamp > x.max_timestamp)
            {
                best = Some(b);
            }
        }
        Ok(best.map(|b| (b.max_timestamp, Self::found(b))))
    }

    fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        // Kafka: UnifiedLog.maybeIncrementLogStartOffset (only past the high watermark is out
        // of range; an offset at or below the log start is a no-op)
        if offset < 0 || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        self.deleted_before = self.deleted_before.max(offset);
        while self.segments.len() > 1 && self.segments[1].base_offset <= self.deleted_before {
            self.segments.pop_front();
        }
        Ok(self.log_start_offset())
    }

    fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        if self.config.retention_ms >= 0 {
            let cutoff = now_ms.saturating_sub(self.config.retention_ms);
            loop {
                let oldest = self.segments.front().expect("never empty");
                if oldest.batches.is_empty() || oldest.max_timestamp >= cutoff {
                    break;
                }
                if self.segments.len() == 1 {
                    self.roll();
                }
                self.segments.pop_front();
                deleted += 1;
            }
        }
        if self.config.retention_bytes >= 0 {
            let limit = self.config.retention_bytes as u64;
            while self.segments.len() > 1 {
                let oldest = self.segments.front().expect("never empty").size;
                if self.size_bytes() - oldest < limit {
                    break;
                }
                self.segments.pop_front();
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    fn sync_handle(&self) -> Option<Arc<std::fs::File>> {
        None
    }

    fn flush(&mut self) -> Result<(), LogError> {
        Ok(())
    }

    fn scan(
        &self,
        from_offset: i64,
        f: &mut dyn FnMut(BatchView<'_>) -> bool,
    ) -> Result<(), LogError> {
        let from = from_offset.max(self.log_start_offset());
        for b in self.segments_from(from).flat_map(|s| &s.batches) {
            if b.last_offset >= from && !f(BatchView::parse(&b.bytes, 0)?) {
                break;
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), LogError> {
        Ok(())
    }

    fn delete(self: Box<Self>) -> Result<(), LogError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_support::batch;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1000,
            segment_ms: 10_000,
            retention_ms: 60_000,
            retention_bytes: -1,
            index_interval_bytes: 100,
        }
    }

    #[test]
    fn assigns_offsets_and_reads_whole_batches() {
        let mut log = MemoryLog::new(config());
        let mut b = batch(3, 1_000, 10);
        b.extend(batch(2, 2_000, 10));
        let info = log.append(&mut b, 5, 0).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 4));
        let info = log.append(&mut batch(1, 3_000, 10), 5, 0).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (5, 5));
        let one = log.read(4, 1).unwrap();
        let v = BatchView::parse(&one, 0).unwrap();
        assert_eq!((v.base_offset(), v.partition_leader_epoch()), (3, 5));
        assert_eq!(one.len(), v.size_bytes());
        let all = log.read(0, 1 << 20).unwrap();
        assert_eq!(Batches::new(&all).count(), 3);
        // A limit inside the second batch cuts it, as Kafka's LogSegment.read.
        let first = BatchView::parse(&all, 0).unwrap().size_bytes();
        let cut = log.read(0, first + 10).unwrap();
        assert_eq!(cut.len(), first + 10);
        let mut batches = Batches::new(&cut);
        assert_eq!(batches.by_ref().count(), 1);
        assert!(batches.truncated_tail());
        assert!(log.read(6, 100).unwrap().is_empty());
        assert!(matches!(
            log.read(7, 100),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        let found = log.find_by_timestamp(1_003, 0).unwrap().unwrap();
        assert_eq!(found.base_offset, 3);
        let (ts, found) = log.max_timestamp().unwrap().unwrap();
        assert_eq!((ts, found.base_offset), (3_000, 5));
    }

    #[test]
    fn rolls_and_retains_like_the_disk_log() {
        let mut log = MemoryLog::new(config());
        for i in 0..10 {
            log.append(&mut batch(1, 1_000 + i, 300), 0, 0).unwrap();
        }
        assert!(log.segment_count() > 1);
        let mut cfg = config();
        cfg.retention_bytes = 1000;
        log.set_config(cfg);
        assert!(log.apply_retention(0).unwrap() > 0);
        assert!(log.size_bytes() >= 1000);
        assert_eq!(
            log.log_start_offset(),
            log.segments.front().unwrap().base_offset
        );
        // Everything expires: the log empties but keeps its end offset.
        assert!(log.apply_retention(1_000 + 10 + 60_001).unwrap() > 0);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
        assert_eq!(log.delete_records_before(10).unwrap(), 10);
        assert!(log.read(9, 100).is_err());
    }

    #[test]
    fn delete_records_moves_the_start() {
        let mut log = MemoryLog::new(config());
        for i in 0..5 {
            log.append(&mut batch(2, i, 10), 0, 0).unwrap();
        }
        assert_eq!(log.delete_records_before(3).unwrap(), 3);
        assert!(log.read(2, 100).is_err());
        let got = log.read(3, 1).unwrap();
        assert_eq!(BatchView::parse(&got, 0).unwrap().base_offset(), 2);
        assert!(log.delete_records_before(11).is_err());
        assert_eq!(
            log.delete_records_before(1).unwrap(),
            3,
            "below the start: no-op"
        );
        assert!(log.delete_records_before(-3).is_err());
        let mut seen = Vec::new();
        log.scan(0, &mut |b| {
            seen.push(b.base_offset());
            true
        })
        .unwrap();
        assert_eq!(seen, vec![2, 4, 6, 8]);
    }
}
