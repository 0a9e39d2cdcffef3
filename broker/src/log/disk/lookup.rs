//! Finding batches in a disk log: the segments that may hold an offset, and the
//! searches by timestamp behind ListOffsets.

use std::ops::Bound;

use super::segment::{Header, Segment};
use super::DiskLog;
use crate::log::{FoundBatch, LogError, PartitionLog};

impl DiskLog {
    /// [`PartitionLog::find_by_timestamp`] for the disk log.
    pub(super) fn batch_at_timestamp(
        &self,
        timestamp_ms: i64,
        min_offset: i64,
    ) -> Result<Option<FoundBatch>, LogError> {
        let from = self.log_start_offset().max(min_offset);
        for seg in self.segments_from(from) {
            let hit = seg
                .find_by_timestamp(timestamp_ms, from)
                .map_err(|e| seg.io_error(e))?;
            if let Some((position, header)) = hit {
                return Self::found(seg, position, &header).map(Some);
            }
        }
        Ok(None)
    }

    /// [`PartitionLog::max_timestamp`] for the disk log.
    pub(super) fn batch_with_max_timestamp(&self) -> Result<Option<(i64, FoundBatch)>, LogError> {
        let lso = self.log_start_offset();
        // (timestamp, base offset of its first batch, segment), the earliest on ties.
        let mut best: Option<(i64, i64, &Segment)> = None;
        for seg in self.segments_from(lso) {
            let candidate = if seg.max_timestamp < 0 {
                None
            } else if seg.base_offset >= lso {
                Some((seg.max_timestamp, seg.max_timestamp_offset))
            } else {
                // DeleteRecords cut into this segment: its maximum may be gone.
                Self::max_from(seg, lso)?
            };
            if let Some((ts, offset)) = candidate {
                if best.is_none_or(|(b, _, _)| ts > b) {
                    best = Some((ts, offset, seg));
                }
            }
        }
        let Some((ts, offset, seg)) = best else {
            return Ok(None);
        };
        match seg.locate(offset).map_err(|e| seg.io_error(e))? {
            Some((position, header)) => Ok(Some((ts, Self::found(seg, position, &header)?))),
            None => Ok(None),
        }
    }

    /// The segment that may hold `offset`: the last one whose base is at or below it.
    fn segment_for(&self, offset: i64) -> Option<&Segment> {
        self.segments.range(..=offset).next_back().map(|(_, s)| s)
    }

    /// Segments from the one that may hold `offset` onwards.
    pub(super) fn segments_from(&self, offset: i64) -> impl Iterator<Item = &Segment> {
        let start = self.segment_for(offset).map_or(i64::MIN, |s| s.base_offset);
        self.segments
            .range((Bound::Included(start), Bound::Unbounded))
            .map(|(_, s)| s)
    }

    /// The largest timestamp among `seg`'s batches holding offsets at or above `from`, and
    /// the base offset of the first batch with it.
    fn max_from(seg: &Segment, from: i64) -> Result<Option<(i64, i64)>, LogError> {
        let mut best: Option<(i64, i64)> = None;
        seg.scan(from, &mut |b| {
            if b.max_timestamp() >= 0 && best.is_none_or(|(t, _)| b.max_timestamp() > t) {
                best = Some((b.max_timestamp(), b.base_offset()));
            }
            true
        })?;
        Ok(best)
    }

    fn found(seg: &Segment, position: u64, header: &Header) -> Result<FoundBatch, LogError> {
        Ok(FoundBatch {
            base_offset: header.base_offset,
            bytes: seg
                .read_batch(position, header)
                .map_err(|e| seg.io_error(e))?,
        })
    }
}
