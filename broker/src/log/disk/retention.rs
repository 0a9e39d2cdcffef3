//! Deleting from the front of a disk log: DeleteRecords with its persisted
//! `log-start-offset` file, and time and size retention of whole segments.

use std::path::Path;

use super::segment::Segment;
use super::{index, io_at, DiskLog};
use crate::log::{LogError, PartitionLog};

const LOG_START_FILE: &str = "log-start-offset";

impl DiskLog {
    /// [`PartitionLog::delete_records_before`] for the disk log.
    pub(super) fn move_log_start(&mut self, offset: i64) -> Result<i64, LogError> {
        // Kafka: UnifiedLog.maybeIncrementLogStartOffset (only past the high watermark is out
        // of range; an offset at or below the log start is a no-op)
        if offset < 0 || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        if offset > self.deleted_before {
            let path = self.dir.join(LOG_START_FILE);
            index::write_atomic(&path, format!("{offset}\n").as_bytes())
                .and_then(|()| index::sync_dir(&self.dir))
                .map_err(io_at(&path))?;
            self.deleted_before = offset;
        }
        while self.segments.len() > 1 {
            let second = *self.segments.keys().nth(1).expect("two segments");
            if second > self.deleted_before {
                break;
            }
            self.delete_oldest()?;
        }
        Ok(self.log_start_offset())
    }

    /// [`PartitionLog::apply_retention`] for the disk log.
    pub(super) fn delete_expired_segments(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        if self.config.retention_ms >= 0 {
            let cutoff = now_ms.saturating_sub(self.config.retention_ms);
            loop {
                let oldest = self.segments.values().next().expect("never empty");
                if oldest.is_empty() {
                    if self.segments.len() == 1 {
                        break;
                    }
                } else if Self::retention_timestamp(oldest) >= cutoff {
                    break;
                }
                if self.segments.len() == 1 {
                    // The active segment expired too: roll so that it can go, keeping the
                    // log end offset as the new segment's base.
                    self.roll()?;
                }
                self.delete_oldest()?;
                deleted += 1;
            }
        }
        if self.config.retention_bytes >= 0 {
            let limit = self.config.retention_bytes as u64;
            while self.segments.len() > 1 {
                let oldest = self.segments.values().next().expect("never empty").size;
                if self.size_bytes() - oldest < limit {
                    break;
                }
                self.delete_oldest()?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Removes the oldest segment (never the only one).
    fn delete_oldest(&mut self) -> Result<(), LogError> {
        debug_assert!(self.segments.len() > 1);
        let (_, seg) = self.segments.pop_first().expect("never empty");
        seg.delete_files(&self.dir).map_err(|e| seg.io_error(e))?;
        tracing::debug!(
            dir = %self.dir.display(),
            base_offset = seg.base_offset,
            size_bytes = seg.size,
            "deleted a log segment"
        );
        Ok(())
    }

    /// The newest timestamp of a segment for retention: its max timestamp, or the file's
    /// modification time when its batches carry none.
    fn retention_timestamp(seg: &Segment) -> i64 {
        if seg.max_timestamp >= 0 {
            return seg.max_timestamp;
        }
        seg.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(i64::MAX, |d| d.as_millis() as i64)
    }
}

pub(super) fn read_log_start(dir: &Path) -> Result<Option<i64>, LogError> {
    let path = dir.join(LOG_START_FILE);
    let Some(raw) = index::read_optional(&path).map_err(io_at(&path))? else {
        return Ok(None);
    };
    match std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
    {
        Some(v) if v >= 0 => Ok(Some(v)),
        _ => {
            tracing::warn!(path = %path.display(), "ignoring an unreadable log start offset file");
            Ok(None)
        }
    }
}
