//! Loading a segment at open: trusting its index files after a clean shutdown, or
//! rebuilding them from the `.log` file with a CRC-checked scan that truncates the file at
//! the first torn or corrupt batch.
//!
//! Trusted loading still checks what is cheap (index files plausible, the last offset index
//! entry pointing at the batch it names, well-framed batches after it) and falls back to a
//! full scan if anything is off. This module does not decide which segments need a full
//! scan (the log does: the active one after an unclean shutdown) and does not write index
//! files for rebuilt segments.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use kmirror_wire::batch::HEADER_LEN;

use super::index::{self, OffsetIndex, TimeIndex};
use super::segment::{open_rw, segment_path, walk_batches, Header, Segment};
use crate::log::LogError;

/// What loading found.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub segment: Segment,
    /// The indexes were rebuilt from the `.log` file (so the files should be rewritten).
    pub rebuilt: bool,
    /// Bytes cut off the end of the `.log` file.
    pub truncated_bytes: u64,
}

/// Opens segment `base_offset` in `dir`. With `verify`, every batch is checked (framing,
/// CRC, increasing offsets) and the indexes are rebuilt; otherwise the index files are used
/// if they look right.
pub(crate) fn load_segment(
    dir: &Path,
    base_offset: i64,
    verify: bool,
    index_interval_bytes: u32,
) -> Result<Loaded, LogError> {
    let log_path = segment_path(dir, base_offset, "log");
    let io_err = |source| LogError::Io {
        path: log_path.display().to_string(),
        source,
    };
    let file = open_rw(&log_path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    if !verify {
        let file2 = file.try_clone().map_err(io_err)?;
        if let Some(segment) =
            load_trusted(dir, base_offset, file2, file_len, index_interval_bytes).map_err(io_err)?
        {
            return Ok(Loaded {
                segment,
                rebuilt: false,
                truncated_bytes: 0,
            });
        }
    }
    let mut segment = Segment::empty(log_path.clone(), file, base_offset);
    let end = {
        let s = &mut segment;
        let file = s.file.clone();
        walk_batches(&file, 0, file_len, &mut |pos, batch| {
            let header = Header::of(&batch);
            if batch.verify_crc().is_err() || header.base_offset < s.next_offset {
                return false;
            }
            s.observe(pos, &header, index_interval_bytes);
            true
        })
        .map_err(io_err)?
    };
    let truncated_bytes = file_len - end.position;
    if truncated_bytes > 0 {
        tracing::warn!(
            path = %log_path.display(),
            truncated_bytes,
            valid_bytes = end.position,
            reason = %end.error.map_or_else(|| "bad CRC or offset order".to_string(), |e| e.to_string()),
            "truncated a torn or corrupt tail of a log segment"
        );
        segment.file.set_len(end.position).map_err(io_err)?;
        segment.file.sync_all().map_err(io_err)?;
    }
    Ok(Loaded {
        segment,
        rebuilt: true,
        truncated_bytes,
    })
}

/// Loads a segment from its index files plus a framing-only walk from the last index entry
/// to the end. `None` when anything looks wrong.
fn load_trusted(
    dir: &Path,
    base_offset: i64,
    file: File,
    file_len: u64,
    index_interval_bytes: u32,
) -> io::Result<Option<Segment>> {
    let Some(raw_offsets) = index::read_optional(&segment_path(dir, base_offset, "index"))? else {
        return Ok(None);
    };
    let Some(raw_times) = index::read_optional(&segment_path(dir, base_offset, "timeindex"))?
    else {
        return Ok(None);
    };
    let Some(offset_index) = OffsetIndex::decode(&raw_offsets, file_len) else {
        return Ok(None);
    };
    let Some(time_index) = TimeIndex::decode(&raw_times, u64::from(u32::MAX)) else {
        return Ok(None);
    };
    let (last_rel, last_pos) = offset_index.last().unwrap_or((0, 0));
    if offset_index.len() > 0 {
        let mut h = [0u8; HEADER_LEN];
        if u64::from(last_pos) + HEADER_LEN as u64 > file_len {
            return Ok(None);
        }
        file.read_exact_at(&mut h, u64::from(last_pos))?;
        match Header::parse(&h) {
            Ok(h) if h.base_offset == base_offset + i64::from(last_rel) => {}
            _ => return Ok(None),
        }
    }
    let log_path = segment_path(dir, base_offset, "log");
    let mut s = Segment::empty(log_path, file, base_offset);
    if let Some((ts, rel)) = time_index.last() {
        s.max_timestamp = ts;
        s.max_timestamp_offset = base_offset + i64::from(rel);
    }
    s.offset_index = offset_index;
    s.time_index = time_index;
    s.size = u64::from(last_pos);
    s.next_offset = base_offset + i64::from(last_rel);
    let file = s.file.clone();
    let end = walk_batches(&file, u64::from(last_pos), file_len, &mut |pos, batch| {
        let header = Header::of(&batch);
        if header.base_offset < s.next_offset {
            return false;
        }
        s.observe(pos, &header, index_interval_bytes);
        true
    })?;
    let times_ok = s
        .time_index
        .last()
        .is_none_or(|(_, rel)| base_offset + i64::from(rel) < s.next_offset);
    if end.position != file_len || !times_ok {
        return Ok(None);
    }
    Ok(Some(s))
}
