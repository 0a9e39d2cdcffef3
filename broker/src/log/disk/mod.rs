//! The on-disk partition log: a directory of Kafka-style segments.
//!
//! Layout of a partition directory:
//! - `<20-digit base offset>.log`: v2 batches as produced, with broker-assigned offsets;
//! - `<base>.index`, `<base>.timeindex`: sparse offset and time indexes (see `index`),
//!   written when a segment is rolled and at close, rebuilt from the `.log` when missing or
//!   implausible;
//! - `log-start-offset`: the log start offset moved by DeleteRecords, in decimal;
//! - `clean-shutdown`: written by `close`, removed by `open`; when absent at open, the
//!   active segment is scanned and its torn or corrupt tail cut off (see `recovery`).
//!
//! What it does not do: fsync on append (see [`crate::log::flush`]), hold locks (the caller
//! holds the partition lock), compaction, transaction indexes, leader-epoch checkpoints,
//! or delayed deletion of segment files (files are removed at once).

mod index;
mod lookup;
mod recovery;
mod retention;
mod segment;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kmirror_wire::batch::{set_base_offset, set_partition_leader_epoch, BatchError, BatchView};

use self::retention::read_log_start;
use self::segment::{Header, Segment};
use super::{AppendInfo, FoundBatch, LogConfig, LogError, PartitionLog};

const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

/// A partition log stored in one directory.
#[derive(Debug)]
pub struct DiskLog {
    dir: PathBuf,
    config: LogConfig,
    /// Segments by base offset; never empty, the last one is active.
    segments: BTreeMap<i64, Segment>,
    /// Log start offset persisted by DeleteRecords (may be below the first segment).
    deleted_before: i64,
    /// `close` ran and left the clean-shutdown marker.
    closed: bool,
    /// Bytes cut off torn or corrupt segment tails when this log was opened.
    truncated_at_open: u64,
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl DiskLog {
    /// Opens (creating if needed) the log in `dir`. After an unclean shutdown the active
    /// segment is checked batch by batch and cut at the first torn or corrupt batch; any
    /// segment whose index files are missing or implausible gets them rebuilt.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<DiskLog, LogError> {
        let err = io_at(dir);
        fs::create_dir_all(dir).map_err(&err)?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).map_err(&err)? {
            let path = entry.map_err(&err)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".tmp") {
                segment::remove_if_exists(&path).map_err(&err)?;
            } else if let Some(stem) = name.strip_suffix(".log") {
                if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                    bases.push(stem.parse::<i64>().map_err(|e| err(io::Error::other(e)))?);
                }
            }
        }
        bases.sort_unstable();

        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        if clean {
            fs::remove_file(&marker).map_err(&err)?;
            index::sync_dir(dir).map_err(&err)?;
        }
        let deleted_before = read_log_start(dir)?;

        let mut segments = BTreeMap::new();
        let mut truncated_at_open = 0;
        for (i, &base) in bases.iter().enumerate() {
            let active = i + 1 == bases.len();
            let loaded =
                recovery::load_segment(dir, base, active && !clean, config.index_interval_bytes)?;
            truncated_at_open += loaded.truncated_bytes;
            let mut seg = loaded.segment;
            if loaded.rebuilt && !active {
                seg.write_indexes(dir).map_err(|e| seg.io_error(e))?;
            }
            segments.insert(base, seg);
        }
        if segments.is_empty() {
            let base = deleted_before.unwrap_or(0);
            let seg = Segment::create(dir, base).map_err(&err)?;
            index::sync_dir(dir).map_err(&err)?;
            segments.insert(base, seg);
        }
        let mut log = DiskLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            deleted_before: deleted_before.unwrap_or(0),
            closed: false,
            truncated_at_open,
        };
        log.init_active_clock(now_ms)?;
        Ok(log)
    }

    /// After a restart, `segment.ms` counts from the active segment's first batch
    /// timestamp (as in Kafka), never from the future.
    fn init_active_clock(&mut self, now_ms: i64) -> Result<(), LogError> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let first = active
            .locate(active.base_offset)
            .map_err(|e| active.io_error(e))?;
        let created = first.map_or(now_ms, |(_, h)| h.max_timestamp.clamp(0, now_ms));
        self.active_mut().created_ms = Some(created);
        Ok(())
    }

    /// The directory holding this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes that recovery cut off torn or corrupt segment tails when this log was opened.
    pub fn truncated_bytes_at_open(&self) -> u64 {
        self.truncated_at_open
    }

    /// Number of segments (for tests and metrics).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    fn active(&self) -> &Segment {
        self.segments.values().next_back().expect("never empty")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments.values_mut().next_back().expect("never empty")
    }

    fn first_base(&self) -> i64 {
        *self.segments.keys().next().expect("never empty")
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        }
    }

    fn should_roll(&self, append_bytes: u64, append_offsets: i64, now_ms: i64) -> bool {
        let a = self.active();
        if a.is_empty() {
            return false;
        }
        let new_size = a.size + append_bytes;
        new_size > self.config.segment_bytes
            || new_size > u64::from(u32::MAX)
            || a.next_offset + append_offsets - a.base_offset > i64::from(i32::MAX)
            || a.created_ms
                .is_some_and(|c| now_ms.saturating_sub(c) >= self.config.segment_ms)
    }

    /// Makes a new empty active segment at the log end offset, after fsyncing the old one
    /// and writing its index files.
    fn roll(&mut self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let active = self.active_mut();
        if active.is_empty() {
            return Ok(());
        }
        active.sync().map_err(|e| active.io_error(e))?;
        active.write_indexes(&dir).map_err(|e| active.io_error(e))?;
        let base = active.next_offset;
        let seg = Segment::create(&dir, base).map_err(io_at(&dir))?;
        index::sync_dir(&dir).map_err(io_at(&dir))?;
        tracing::debug!(dir = %dir.display(), base_offset = base, "rolled a new log segment");
        self.segments.insert(base, seg);
        Ok(())
    }

    fn reopen_if_closed(&mut self) -> Result<(), LogError> {
        if self.closed {
            let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
            segment::remove_if_exists(&marker).map_err(io_at(&marker))?;
            index::sync_dir(&self.dir).map_err(io_at(&self.dir))?;
            self.closed = false;
        }
        Ok(())
    }
}

/// Checks that `batches` is whole v2 batches and returns each one's position and header.
fn frame(batches: &[u8]) -> Result<Vec<(u64, Header)>, LogError> {
    let mut out = Vec::new();
    let mut it = kmirror_wire::batch::Batches::new(batches);
    for item in it.by_ref() {
        let b: BatchView<'_> = item?;
        out.push((0, Header::of(&b)));
    }
    if it.truncated_tail() || it.position() != batches.len() {
        return Err(LogError::Corrupt(BatchError::Truncated {
            position: it.position(),
            needed_bytes: batches.len() - it.position() + 1,
            available_bytes: batches.len() - it.position(),
        }));
    }
    let mut pos = 0;
    for (p, h) in &mut out {
        *p = pos;
        pos += h.size;
    }
    Ok(out)
}

impl PartitionLog for DiskLog {
    fn append(
        &mut self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut headers = frame(batches)?;
        let leo = self.log_end_offset();
        if headers.is_empty() {
            return Ok(AppendInfo {
                base_offset: leo,
                last_offset: leo - 1,
                max_timestamp: -1,
            });
        }
        self.reopen_if_closed()?;
        let span: i64 = headers
            .iter()
            .map(|(_, h)| h.last_offset - h.base_offset + 1)
            .sum();
        if self.should_roll(batches.len() as u64, span, now_ms) {
            self.roll()?;
        }
        let mut next = leo;
        let mut max_timestamp = -1;
        for (pos, h) in &mut headers {
            let batch = &mut batches[*pos as usize..];
            set_base_offset(batch, next);
            set_partition_leader_epoch(batch, leader_epoch);
            h.last_offset = next + (h.last_offset - h.base_offset);
            h.base_offset = next;
            next = h.last_offset + 1;
            max_timestamp = max_timestamp.max(h.max_timestamp);
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut()
            .append(batches, &headers, interval, now_ms)?;
        Ok(AppendInfo {
            base_offset: leo,
            last_offset: next - 1,
            max_timestamp,
        })
    }

    fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, LogError> {
        let leo = self.log_end_offset();
        if offset < self.log_start_offset() || offset > leo {
            return Err(self.out_of_range(offset));
        }
        for seg in self.segments_from(offset) {
            if offset >= seg.next_offset {
                continue; // at the end of a rolled segment, or in a gap
            }
            let bytes = seg
                .read(offset.max(seg.base_offset), max_bytes)
                .map_err(|e| seg.io_error(e))?;
            if !bytes.is_empty() {
                return Ok(bytes);
            }
        }
        Ok(Bytes::new())
    }

    fn log_start_offset(&self) -> i64 {
        self.first_base()
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
        self.batch_at_timestamp(timestamp_ms, min_offset)
    }

    fn max_timestamp(&self) -> Result<Option<(i64, FoundBatch)>, LogError> {
        self.batch_with_max_timestamp()
    }

    fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        self.move_log_start(offset)
    }

    fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        self.delete_expired_segments(now_ms)
    }

    fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    fn sync_handle(&self) -> Option<Arc<fs::File>> {
        Some(self.active().file.clone())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        let active = self.active();
        active.sync().map_err(|e| active.io_error(e))
    }

    fn scan(
        &self,
        from_offset: i64,
        f: &mut dyn FnMut(BatchView<'_>) -> bool,
    ) -> Result<(), LogError> {
        let from = from_offset.max(self.log_start_offset());
        for seg in self.segments_from(from) {
            if from >= seg.next_offset {
                continue;
            }
            if !seg.scan(from.max(seg.base_offset), f)? {
                break;
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let active = self.active_mut();
        active
            .file
            .set_len(active.size)
            .map_err(|e| active.io_error(e))?;
        active.sync().map_err(|e| active.io_error(e))?;
        active.write_indexes(&dir).map_err(|e| active.io_error(e))?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        index::write_atomic(&marker, b"")
            .and_then(|()| index::sync_dir(&dir))
            .map_err(io_at(&marker))?;
        self.closed = true;
        Ok(())
    }

    fn delete(self: Box<Self>) -> Result<(), LogError> {
        fs::remove_dir_all(&self.dir).map_err(io_at(&self.dir))
    }
}

#[cfg(test)]
mod tests;
