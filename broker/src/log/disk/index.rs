//! The sparse offset and time indexes of one segment, held in memory as vectors and
//! stored in Kafka's file layout: `N.index` holds 8-byte entries (relative offset u32,
//! file position u32), `N.timeindex` holds 12-byte entries (max timestamp so far i64,
//! relative offset u32), all big-endian.
//!
//! An offset index entry points at the start of a batch and names that batch's base
//! offset. A time index entry `(T, R)` says that the batch holding offset `R` is the first
//! one whose `maxTimestamp` reached `T`, so every earlier batch is below `T`.
//!
//! This module only encodes, decodes and sanity-checks; deciding when to add entries is the
//! segment's job, and rebuilding a bad index from the `.log` file is recovery's. Files are
//! written whole (at roll and close) through a temporary file and a rename, never mmapped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Size of one offset index entry on disk.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Size of one time index entry on disk.
pub(crate) const TIME_ENTRY_LEN: usize = 12;

/// Sparse map from relative offset to file position.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub(crate) fn push(&mut self, relative_offset: u32, position: u32) {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|&(r, p)| r < relative_offset && p < position));
        self.entries.push((relative_offset, position));
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    /// The last entry at or below `relative_offset`, or `(0, 0)` (the segment start).
    pub(crate) fn floor(&self, relative_offset: u32) -> (u32, u32) {
        let i = self.entries.partition_point(|&(r, _)| r <= relative_offset);
        if i == 0 {
            (0, 0)
        } else {
            self.entries[i - 1]
        }
    }

    /// Where to look for the batch holding `relative_offset`: it starts at or after the
    /// first returned position and before the second one (`segment_size` when no later
    /// entry exists).
    pub(crate) fn window(&self, relative_offset: u32, segment_size: u64) -> (u64, u64) {
        let i = self.entries.partition_point(|&(r, _)| r <= relative_offset);
        let start = if i == 0 { 0 } else { self.entries[i - 1].1 };
        let upper = self
            .entries
            .get(i)
            .map_or(segment_size, |&(_, p)| u64::from(p));
        (u64::from(start), upper)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_LEN);
        for &(r, p) in &self.entries {
            out.extend_from_slice(&r.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Decodes an index file, or `None` if it is not a plausible index for a segment of
    /// `segment_size` bytes (bad length, entries out of order, positions past the end).
    pub(crate) fn decode(bytes: &[u8], segment_size: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_LEN) {
            return None;
        }
        let mut index = Self::default();
        for e in bytes.chunks_exact(OFFSET_ENTRY_LEN) {
            let r = u32::from_be_bytes(e[0..4].try_into().ok()?);
            let p = u32::from_be_bytes(e[4..8].try_into().ok()?);
            if u64::from(p) >= segment_size || r > i32::MAX as u32 {
                return None;
            }
            if let Some((lr, lp)) = index.last() {
                if r <= lr || p <= lp {
                    return None;
                }
            }
            index.entries.push((r, p));
        }
        Some(index)
    }
}

/// Sparse map from timestamp to the relative offset of the first batch reaching it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Adds an entry if `timestamp` is above the last one.
    pub(crate) fn push_if_greater(&mut self, timestamp: i64, relative_offset: u32) {
        if self.entries.last().is_none_or(|&(t, _)| timestamp > t) {
            self.entries.push((timestamp, relative_offset));
        }
    }

    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// The relative offset to start scanning from when looking for the first batch whose
    /// `maxTimestamp >= timestamp`: the entry with the largest timestamp at or below it.
    pub(crate) fn start_for(&self, timestamp: i64) -> u32 {
        let i = self.entries.partition_point(|&(t, _)| t <= timestamp);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_LEN);
        for &(t, r) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&r.to_be_bytes());
        }
        out
    }

    /// Decodes a time index file, or `None` if it is not plausible for a segment whose
    /// relative offsets end before `relative_end`.
    pub(crate) fn decode(bytes: &[u8], relative_end: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_LEN) {
            return None;
        }
        let mut index = Self::default();
        for e in bytes.chunks_exact(TIME_ENTRY_LEN) {
            let t = i64::from_be_bytes(e[0..8].try_into().ok()?);
            let r = u32::from_be_bytes(e[8..12].try_into().ok()?);
            if u64::from(r) >= relative_end {
                return None;
            }
            if let Some((lt, lr)) = index.last() {
                if t <= lt || r < lr {
                    return None;
                }
            }
            index.entries.push((t, r));
        }
        Some(index)
    }
}

/// Reads a whole file, `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `bytes` durably: writes `path.tmp`, fsyncs it, renames it over
/// `path`. The caller fsyncs the directory when the rename itself must be durable.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp: PathBuf = path.to_path_buf().into_os_string().into();
    tmp.as_mut_os_string().push(".tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    fs::rename(&tmp, path)
}

/// Fsyncs a directory so that file creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_floor_window_and_roundtrip() {
        let mut ix = OffsetIndex::default();
        ix.push(10, 4000);
        ix.push(20, 8100);
        assert_eq!(ix.floor(0), (0, 0));
        assert_eq!(ix.floor(10), (10, 4000));
        assert_eq!(ix.floor(19), (10, 4000));
        assert_eq!(ix.floor(25), (20, 8100));
        assert_eq!(ix.window(5, 9000), (0, 4000));
        assert_eq!(ix.window(15, 9000), (4000, 8100));
        assert_eq!(ix.window(21, 9000), (8100, 9000));
        let back = OffsetIndex::decode(&ix.encode(), 9000).unwrap();
        assert_eq!(back, ix);
        assert!(
            OffsetIndex::decode(&ix.encode(), 8100).is_none(),
            "position past end"
        );
        assert!(OffsetIndex::decode(&ix.encode()[..7], 9000).is_none());
        let mut swapped = ix.encode();
        swapped.rotate_left(8);
        assert!(
            OffsetIndex::decode(&swapped, 9000).is_none(),
            "out of order"
        );
    }

    #[test]
    fn time_index_start_and_roundtrip() {
        let mut ix = TimeIndex::default();
        ix.push_if_greater(100, 0);
        ix.push_if_greater(100, 5);
        ix.push_if_greater(200, 7);
        assert_eq!(ix.last(), Some((200, 7)));
        assert_eq!(ix.start_for(50), 0);
        assert_eq!(ix.start_for(150), 0);
        assert_eq!(ix.start_for(200), 7);
        let back = TimeIndex::decode(&ix.encode(), 8).unwrap();
        assert_eq!(back, ix);
        assert!(TimeIndex::decode(&ix.encode(), 7).is_none());
    }
}
