//! One segment of a disk log: the `N.log` file of batches starting at offset `N`, its
//! in-memory sparse indexes, and the positional reads that find batches in it.
//!
//! A segment appends with one positional write per append and truncates the file back if
//! that write fails; it reads with `read_at` into buffers reused across requests
//! ([`crate::buffers`]), one read for the whole returned range in the common case. It does not decide when to roll, what to retain, or how to recover a torn
//! file (see the parent module and `recovery`), and it never fsyncs on append.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kmirror_wire::batch::{BatchError, BatchView, Batches, HEADER_LEN, LOG_OVERHEAD};

use super::index::{self, OffsetIndex, TimeIndex};
use crate::log::LogError;

/// Bytes read at a time when walking a segment batch by batch.
const WALK_CHUNK: usize = 1 << 20;
/// Bytes read at a time when only batch headers are needed.
const HEADER_CHUNK: usize = 64 << 10;

/// Path of a segment file: 20-digit zero-padded base offset plus extension.
pub(crate) fn segment_path(dir: &Path, base_offset: i64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

/// Bytes of an entry up to and including its magic: all a header read needs to tell a v2
/// batch (read in [`HEADER_LEN`] bytes) from an older message, which may be shorter.
const THROUGH_MAGIC: usize = LOG_OVERHEAD + 5;

/// A magic-0/1 entry kept from an old message format (Kafka: FileLogInputStream.nextBatch,
/// AbstractLegacyRecordBatch): offset, size, then one message (crc, magic, attributes, a
/// timestamp from magic 1, key and value, each with its length), or a compressed wrapper
/// whose offset is its last inner record's. It has a v2 batch's framing and is served as it
/// is, looked up by that offset. `None` unless its key and value lengths account for its
/// size exactly (as far as `b` shows them), so that a v2 batch whose magic byte was damaged
/// is not read as one.
fn legacy_entry(b: &[u8]) -> Option<Header> {
    let be32 = |at: usize| Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?));
    let magic = *b.get(16)?;
    if magic > 1 {
        return None;
    }
    let length = be32(8)?;
    let timestamp_bytes = if magic == 1 { 8 } else { 0 };
    let key_at = LOG_OVERHEAD + 4 + 1 + 1 + timestamp_bytes;
    let overhead = (key_at + 8 - LOG_OVERHEAD) as i64;
    let key = i64::from(be32(key_at)?);
    if key < -1 || overhead + key.max(0) > i64::from(length) {
        return None;
    }
    let value_at = key_at + 4 + key.max(0) as usize;
    if let Some(value) = be32(value_at) {
        if value < -1 || overhead + key.max(0) + i64::from(value.max(0)) != i64::from(length) {
            return None;
        }
    }
    let offset = i64::from_be_bytes(b.get(..8)?.try_into().ok()?);
    let max_timestamp = if magic == 1 {
        i64::from_be_bytes(b.get(key_at - 8..key_at)?.try_into().ok()?)
    } else {
        -1
    };
    Some(Header {
        base_offset: offset,
        size: LOG_OVERHEAD as u64 + length as u64,
        last_offset: offset,
        max_timestamp,
    })
}

/// The header fields the log uses, read from the first [`HEADER_LEN`] bytes of a batch
/// (layout documented in [`kmirror_wire::batch`]). Used where only the header has been read,
/// so that [`BatchView`] (which needs the whole batch) cannot be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub base_offset: i64,
    pub size: u64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

impl Header {
    pub(crate) fn parse(b: &[u8]) -> io::Result<Self> {
        let be32 = |at: usize| i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let be64 = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if let Some(legacy) = legacy_entry(b) {
            return Ok(legacy);
        }
        if b.len() < HEADER_LEN || b[16] != 2 || be32(8) < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a v2 batch header where the index points",
            ));
        }
        let base_offset = be64(0);
        Ok(Self {
            base_offset,
            size: LOG_OVERHEAD as u64 + be32(8) as u64,
            last_offset: base_offset + i64::from(be32(23)),
            max_timestamp: be64(35),
        })
    }

    pub(crate) fn of(batch: &BatchView<'_>) -> Self {
        Self {
            base_offset: batch.base_offset(),
            size: batch.size_bytes() as u64,
            last_offset: batch.last_offset(),
            max_timestamp: batch.max_timestamp(),
        }
    }
}

/// How a walk over a file region ended.
#[derive(Debug)]
pub(crate) struct WalkEnd {
    /// Position of the first batch not accepted (the region end if all were).
    pub position: u64,
    /// Why walking stopped before the end, when the framing was at fault.
    pub error: Option<BatchError>,
}

/// Walks the whole batches in `[start, end)` of `file`, reading a large chunk at a time,
/// and calls `f(position, batch)` for each until it returns false. A batch cut by `end`
/// or badly framed stops the walk with an error.
pub(crate) fn walk_batches(
    file: &File,
    start: u64,
    end: u64,
    f: &mut dyn FnMut(u64, BatchView<'_>) -> bool,
) -> io::Result<WalkEnd> {
    let mut pos = start;
    let mut chunk = WALK_CHUNK;
    let mut buf = Vec::new();
    while pos < end {
        let want = (end - pos).min(chunk as u64) as usize;
        buf.resize(want, 0);
        file.read_exact_at(&mut buf, pos)?;
        let mut batches = Batches::new(&buf);
        let mut consumed = 0;
        for item in batches.by_ref() {
            match item {
                Ok(batch) => {
                    if !f(pos + consumed, batch) {
                        return Ok(WalkEnd {
                            position: pos + consumed,
                            error: None,
                        });
                    }
                    consumed += batch.size_bytes() as u64;
                }
                Err(error) => {
                    return Ok(WalkEnd {
                        position: pos + consumed,
                        error: Some(error),
                    })
                }
            }
        }
        if consumed > 0 {
            pos += consumed;
            chunk = WALK_CHUNK;
            continue;
        }
        // Not even one whole batch in `want` bytes: either a batch larger than the chunk,
        // or a torn tail.
        match BatchView::parse(&buf, pos as usize) {
            Err(BatchError::Truncated { needed_bytes, .. })
                if needed_bytes > want && pos + needed_bytes as u64 <= end =>
            {
                chunk = needed_bytes;
            }
            Err(error) => {
                return Ok(WalkEnd {
                    position: pos,
                    error: Some(error),
                })
            }
            Ok(_) => unreachable!("a whole batch would have been iterated"),
        }
    }
    Ok(WalkEnd {
        position: pos,
        error: None,
    })
}

/// One segment: file, size, offsets, timestamps and indexes.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    pub log_path: PathBuf,
    pub file: Arc<File>,
    /// Bytes of whole batches in the file; the file is never read past this.
    pub size: u64,
    /// The offset after the last batch (`base_offset` when empty).
    pub next_offset: i64,
    /// Largest batch `maxTimestamp`, -1 when empty.
    pub max_timestamp: i64,
    /// Base offset of the first batch that reached `max_timestamp`.
    pub max_timestamp_offset: i64,
    /// Wall-clock time of the first append (or the first batch's timestamp after a
    /// restart), for `segment.ms`.
    pub created_ms: Option<i64>,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    pub bytes_since_index: u64,
    /// Test hook: the next append writes this many bytes, then fails like a full disk.
    #[cfg(test)]
    pub fail_next_write: Option<usize>,
}

impl Segment {
    /// An in-memory segment over an open file, with nothing observed yet.
    pub(crate) fn empty(log_path: PathBuf, file: File, base_offset: i64) -> Self {
        Self {
            base_offset,
            log_path,
            file: Arc::new(file),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            max_timestamp_offset: base_offset,
            created_ms: None,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            #[cfg(test)]
            fail_next_write: None,
        }
    }

    /// Creates the files of a new, empty segment. An existing empty `.log` is reused; a
    /// non-empty one is an error (it would hold offsets the log no longer knows).
    pub(crate) fn create(dir: &Path, base_offset: i64) -> io::Result<Self> {
        let log_path = segment_path(dir, base_offset, "log");
        let file = open_rw(&log_path)?;
        if file.metadata()?.len() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not empty", log_path.display()),
            ));
        }
        for ext in ["index", "timeindex"] {
            remove_if_exists(&segment_path(dir, base_offset, ext))?;
        }
        Ok(Self::empty(log_path, file, base_offset))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub(crate) fn io_error(&self, source: io::Error) -> LogError {
        LogError::Io {
            path: self.log_path.display().to_string(),
            source,
        }
    }

    fn relative(&self, offset: i64) -> u32 {
        (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Records a batch that now sits at `position`: offsets, timestamps, index entries.
    pub(crate) fn observe(&mut self, position: u64, header: &Header, index_interval_bytes: u32) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.max_timestamp_offset = header.base_offset;
        }
        if position > 0 && self.bytes_since_index >= u64::from(index_interval_bytes) {
            let rel = self.relative(header.base_offset);
            if self.offset_index.last().is_none_or(|(r, _)| rel > r) {
                self.offset_index.push(rel, position as u32);
            }
            let ts_rel = self.relative(self.max_timestamp_offset);
            self.time_index.push_if_greater(self.max_timestamp, ts_rel);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.size;
        self.next_offset = header.last_offset + 1;
        self.size = position + header.size;
    }

    /// Appends `buf` (whole batches whose offsets are already assigned; `headers` gives
    /// each batch's position inside `buf`) with one positional write. On failure the file
    /// is cut back to its previous length and nothing in memory changes.
    pub(crate) fn append(
        &mut self,
        buf: &[u8],
        headers: &[(u64, Header)],
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let start = self.size;
        if let Err(e) = self.write_at(buf, start) {
            if let Err(trunc) = self.file.set_len(start) {
                tracing::error!(
                    path = %self.log_path.display(),
                    error = %trunc,
                    "could not cut a failed append back; the bytes past the log end will be overwritten"
                );
            }
            return Err(self.io_error(e));
        }
        for (pos, header) in headers {
            self.observe(start + pos, header, index_interval_bytes);
        }
        self.created_ms.get_or_insert(now_ms);
        Ok(())
    }

    fn write_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(n) = self.fail_next_write.take() {
            self.file.write_all_at(&buf[..n.min(buf.len())], position)?;
            return Err(io::Error::other("no space left on device (injected)"));
        }
        self.file.write_all_at(buf, position)
    }

    fn read_range(&self, start: u64, end: u64) -> io::Result<Bytes> {
        crate::buffers::read_at(&self.file, start, (end - start) as usize)
    }

    /// Reads the header at `position`, from `buf` (which starts at `buf_start`) when it
    /// holds it, else from the file through `cache`.
    fn header_at(&self, cache: &mut HeaderCache, position: u64) -> io::Result<Header> {
        if let Some(h) = cache.get(position) {
            return Header::parse(h);
        }
        if position + THROUGH_MAGIC as u64 > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "batch header runs past the segment end",
            ));
        }
        let end = self.size.min(position + HEADER_CHUNK as u64);
        cache.buf = self.read_range(position, end)?;
        cache.start = position;
        // An old message at the segment's end may be shorter than a v2 header.
        Header::parse(&cache.buf[..cache.buf.len().min(HEADER_LEN)])
    }

    /// Finds the batch holding `offset` (or the first batch after it, in a gap) by walking
    /// headers from `from`. `None` if the segment ends first.
    fn find_from(
        &self,
        cache: &mut HeaderCache,
        mut position: u64,
        offset: i64,
    ) -> io::Result<Option<(u64, Header)>> {
        while position < self.size {
            let h = self.header_at(cache, position)?;
            if h.last_offset >= offset {
                return Ok(Some((position, h)));
            }
            position += h.size;
        }
        Ok(None)
    }

    /// The position and header of the batch holding `offset` (or the next one).
    pub(crate) fn locate(&self, offset: i64) -> io::Result<Option<(u64, Header)>> {
        let (_, start) = self.offset_index.floor(self.relative(offset));
        self.find_from(&mut HeaderCache::default(), u64::from(start), offset)
    }

    /// The segment's bytes from the batch holding `offset` (or the next one), `max_bytes` of
    /// them but at least that whole batch, as Kafka's LogSegment.read (minOneMessage): the
    /// slice may end inside a batch, which clients drop and fetch again. Empty if no batch
    /// at or after `offset` is in this segment.
    pub(crate) fn read(&self, offset: i64, max_bytes: usize) -> io::Result<Bytes> {
        let (start, upper) = self.offset_index.window(self.relative(offset), self.size);
        let slack = (max_bytes as u64).max(HEADER_LEN as u64);
        let end = self.size.min(upper.saturating_add(slack));
        let mut cache = HeaderCache {
            start,
            buf: self.read_range(start, end)?,
        };
        let Some((first, h)) = self.find_from(&mut cache, start, offset)? else {
            return Ok(Bytes::new());
        };
        let stop = self.size.min(first + h.size.max(max_bytes as u64));
        let buf_end = cache.start + cache.buf.len() as u64;
        if cache.start > first || stop > buf_end {
            return self.read_range(first, stop);
        }
        let from = (first - cache.start) as usize;
        let to = (stop - cache.start) as usize;
        Ok(cache.buf.slice(from..to))
    }

    /// The bytes of the batch at `position`.
    pub(crate) fn read_batch(&self, position: u64, header: &Header) -> io::Result<Bytes> {
        self.read_range(position, position + header.size)
    }

    /// The first batch whose `maxTimestamp >= timestamp_ms` and whose last offset is at or
    /// above `min_offset`.
    pub(crate) fn find_by_timestamp(
        &self,
        timestamp_ms: i64,
        min_offset: i64,
    ) -> io::Result<Option<(u64, Header)>> {
        if self.max_timestamp < timestamp_ms || self.next_offset <= min_offset {
            return Ok(None);
        }
        let rel = self
            .time_index
            .start_for(timestamp_ms)
            .max(self.relative(min_offset));
        let (_, start) = self.offset_index.floor(rel);
        let mut cache = HeaderCache::default();
        let mut position = u64::from(start);
        while position < self.size {
            let h = self.header_at(&mut cache, position)?;
            if h.max_timestamp >= timestamp_ms && h.last_offset >= min_offset {
                return Ok(Some((position, h)));
            }
            position += h.size;
        }
        Ok(None)
    }

    /// Calls `f` with each batch from the one holding `from_offset` to the segment end.
    /// Returns false if `f` asked to stop.
    pub(crate) fn scan(
        &self,
        from_offset: i64,
        f: &mut dyn FnMut(BatchView<'_>) -> bool,
    ) -> Result<bool, LogError> {
        let Some((start, _)) = self.locate(from_offset).map_err(|e| self.io_error(e))? else {
            return Ok(true);
        };
        let mut stopped = false;
        let end = walk_batches(&self.file, start, self.size, &mut |_, batch| {
            stopped = !f(batch);
            !stopped
        })
        .map_err(|e| self.io_error(e))?;
        match end.error {
            Some(e) => Err(LogError::Corrupt(e)),
            None => Ok(!stopped),
        }
    }

    /// Adds the final time index entry and writes both index files (at roll and close).
    pub(crate) fn write_indexes(&mut self, dir: &Path) -> io::Result<()> {
        if self.max_timestamp >= 0 {
            let rel = self.relative(self.max_timestamp_offset);
            self.time_index.push_if_greater(self.max_timestamp, rel);
        }
        index::write_atomic(
            &segment_path(dir, self.base_offset, "index"),
            &self.offset_index.encode(),
        )?;
        index::write_atomic(
            &segment_path(dir, self.base_offset, "timeindex"),
            &self.time_index.encode(),
        )
    }

    /// Fsyncs the segment's data.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Removes the segment's files.
    pub(crate) fn delete_files(&self, dir: &Path) -> io::Result<()> {
        for ext in ["log", "index", "timeindex"] {
            remove_if_exists(&segment_path(dir, self.base_offset, ext))?;
        }
        Ok(())
    }
}

/// A window of file bytes holding batch headers, refilled on demand.
#[derive(Debug, Default)]
struct HeaderCache {
    start: u64,
    buf: Bytes,
}

impl HeaderCache {
    fn get(&self, position: u64) -> Option<&[u8]> {
        let at = position.checked_sub(self.start)? as usize;
        self.buf.get(at..at + HEADER_LEN)
    }
}

pub(crate) fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
