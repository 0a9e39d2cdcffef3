//! Versioned, checksummed snapshots of a partition's producer state.
//!
//! A snapshot records the log end offset at which it was taken; on start, restore it and
//! replay only the batches from that offset on. If the snapshot offset is beyond the log
//! end (the log lost its unflushed tail) or below its start, discard the snapshot and
//! rebuild from the log.
//!
//! Layout (big-endian): `"KMPS" | version u16 = 3 | snapshot_offset i64 | count u32 |
//! count × (producer_id i64 | epoch i16 | last_update_ms i64 | coordinator_epoch i32 |
//! last_timestamp i64 | n u8 | n × (first_seq i32 |
//! last_seq i32 | first_offset i64 | last_offset i64 | timestamp i64)) | open u32 | open ×
//! (producer_id i64 | first_offset i64) | aborted u32 | aborted × (producer_id i64 |
//! first_offset i64 | last_offset i64) | crc32c u32`, the CRC-32C covering every byte
//! before it. Entries are sorted by producer id. Versions 1 (no transaction sections) and
//! 2 (no coordinator epoch: -1; the last timestamp: the last batch's) are still read.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;

use super::state::{BatchMetadata, PartitionProducerState, ProducerEntry};
use super::txn::{AbortedTxn, PartitionTxns};
use super::NUM_BATCHES_TO_RETAIN;
use crate::fsutil::write_atomic;

const MAGIC: &[u8; 4] = b"KMPS";
const VERSION: u16 = 3;
const HEADER_LEN: usize = 4 + 2 + 8 + 4;
const ENTRY_LEN: usize = 8 + 2 + 8 + 4 + 8 + 1;
const BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;

/// Why a snapshot cannot be used. Any of these means: rebuild from the log instead.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("producer state snapshot I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("producer state snapshot has a bad magic")]
    BadMagic,
    #[error("producer state snapshot version {0} is not supported")]
    UnsupportedVersion(u16),
    #[error("producer state snapshot checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("producer state snapshot is malformed: {0}")]
    Malformed(&'static str),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        if self.buf.len() < N {
            return Err(SnapshotError::Malformed("truncated"));
        }
        let (head, rest) = self.buf.split_at(N);
        self.buf = rest;
        Ok(head.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn u16(&mut self) -> Result<u16, SnapshotError> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

/// The transaction sections of a version 2 snapshot.
fn read_txns(r: &mut Reader<'_>) -> Result<PartitionTxns, SnapshotError> {
    let open = r.u32()? as usize;
    if open > r.buf.len() / 16 {
        return Err(SnapshotError::Malformed(
            "open transaction count exceeds the size",
        ));
    }
    let mut ongoing = HashMap::with_capacity(open);
    for _ in 0..open {
        let pid = r.i64()?;
        ongoing.insert(pid, r.i64()?);
    }
    let aborted = r.u32()? as usize;
    if aborted > r.buf.len() / 24 {
        return Err(SnapshotError::Malformed(
            "aborted transaction count exceeds the size",
        ));
    }
    let mut list = Vec::with_capacity(aborted);
    for _ in 0..aborted {
        list.push(AbortedTxn {
            producer_id: r.i64()?,
            first_offset: r.i64()?,
            last_offset: r.i64()?,
        });
    }
    Ok(PartitionTxns::from_parts(ongoing, list))
}

impl PartitionProducerState {
    /// Serialises the state, taken when the log end offset is `log_end_offset` (call it
    /// under the partition lock so state and offset match).
    pub fn snapshot(&self, log_end_offset: i64) -> Vec<u8> {
        self.encode(log_end_offset, VERSION)
    }

    /// The snapshot in the layout of `version` (older ones for the tests of reading them).
    fn encode(&self, log_end_offset: i64, version: u16) -> Vec<u8> {
        let mut entries: Vec<(i64, &ProducerEntry)> = self.entries().collect();
        entries.sort_unstable_by_key(|(pid, _)| *pid);
        let mut out = Vec::with_capacity(
            HEADER_LEN + entries.len() * (ENTRY_LEN + NUM_BATCHES_TO_RETAIN * BATCH_LEN) + 4,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&log_end_offset.to_be_bytes());
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for (pid, e) in entries {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_update_ms.to_be_bytes());
            if version >= 3 {
                out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
                out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            }
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        if version >= 2 {
            self.encode_txns(&mut out);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// The transaction sections (version 2 on).
    fn encode_txns(&self, out: &mut Vec<u8>) {
        let open = self.txns.ongoing();
        out.extend_from_slice(&(open.len() as u32).to_be_bytes());
        for (pid, first) in open {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&first.to_be_bytes());
        }
        let aborted = self.txns.aborted();
        out.extend_from_slice(&(aborted.len() as u32).to_be_bytes());
        for a in aborted {
            out.extend_from_slice(&a.producer_id.to_be_bytes());
            out.extend_from_slice(&a.first_offset.to_be_bytes());
            out.extend_from_slice(&a.last_offset.to_be_bytes());
        }
    }

    /// Parses a snapshot. Returns the state and the offset to replay the log from.
    pub fn restore(bytes: &[u8], expiration_ms: i64) -> Result<(Self, i64), SnapshotError> {
        if bytes.len() < HEADER_LEN + 4 {
            return Err(SnapshotError::Malformed("shorter than the header"));
        }
        if &bytes[..4] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_be_bytes(crc.try_into().expect("4 bytes"));
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(SnapshotError::ChecksumMismatch { stored, computed });
        }
        let mut r = Reader { buf: &body[4..] };
        let version = r.u16()?;
        if !(1..=VERSION).contains(&version) {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let offset = r.i64()?;
        let count = r.u32()? as usize;
        if count > body.len() / (ENTRY_LEN - 12) {
            return Err(SnapshotError::Malformed("entry count exceeds the size"));
        }
        let mut producers = HashMap::with_capacity(count);
        for _ in 0..count {
            let pid = r.i64()?;
            let epoch = r.i16()?;
            let last_update_ms = r.i64()?;
            let (coordinator_epoch, last_timestamp) = if version >= 3 {
                (r.i32()?, Some(r.i64()?))
            } else {
                (-1, None)
            };
            let n = usize::from(r.u8()?);
            if n > NUM_BATCHES_TO_RETAIN {
                return Err(SnapshotError::Malformed("too many batches for a producer"));
            }
            let mut batches = VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            let last_timestamp =
                last_timestamp.unwrap_or_else(|| batches.back().map_or(-1, |b| b.timestamp));
            let entry = ProducerEntry {
                epoch,
                batches,
                last_update_ms,
                coordinator_epoch,
                last_timestamp,
            };
            if producers.insert(pid, entry).is_some() {
                return Err(SnapshotError::Malformed("duplicate producer id"));
            }
        }
        let txns = if version >= 2 {
            read_txns(&mut r)?
        } else {
            PartitionTxns::default()
        };
        if !r.buf.is_empty() {
            return Err(SnapshotError::Malformed("trailing bytes"));
        }
        Ok((Self::from_entries(producers, expiration_ms, txns), offset))
    }

    /// Writes [`Self::snapshot`] to `path` atomically and durably.
    pub fn save_snapshot(&self, path: &Path, log_end_offset: i64) -> io::Result<()> {
        write_atomic(path, &self.snapshot(log_end_offset))
    }

    /// Reads a snapshot file; `Ok(None)` if there is none.
    pub fn load_snapshot(
        path: &Path,
        expiration_ms: i64,
    ) -> Result<Option<(Self, i64)>, SnapshotError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::restore(&bytes, expiration_ms).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use kmirror_wire::batch::set_base_offset;

    use super::super::state::Check;
    use super::super::testutil::{batch, view};
    use super::*;

    fn sample_state() -> (PartitionProducerState, Vec<Vec<u8>>) {
        let mut state = PartitionProducerState::new(5_000);
        let mut log = Vec::new();
        let mut offset = 0;
        for i in 0..7 {
            for (pid, epoch) in [(3i64, 0i16), (1_000_000_007, 4)] {
                let mut raw = batch(pid, epoch, i * 2, 2, 0, 100 + i64::from(i));
                set_base_offset(&mut raw, offset);
                offset += 2;
                state.record(&view(&raw), 50 + i64::from(i));
                log.push(raw);
            }
        }
        (state, log)
    }

    #[test]
    fn snapshot_round_trips() {
        let (state, _) = sample_state();
        let bytes = state.snapshot(28);
        let (restored, offset) = PartitionProducerState::restore(&bytes, 5_000).unwrap();
        assert_eq!(offset, 28);
        assert_eq!(restored.len(), 2);
        for (pid, e) in state.entries() {
            assert_eq!(restored.entry(pid, 60), Some(e));
        }
        assert_eq!(restored.expiration_ms(), 5_000);
        // Deterministic.
        assert_eq!(restored.snapshot(28), bytes);
    }

    #[test]
    fn restored_state_detects_duplicates_and_keeps_expiry_times() {
        let (state, log) = sample_state();
        let (restored, _) = PartitionProducerState::restore(&state.snapshot(28), 5_000).unwrap();
        let last = view(log.last().unwrap());
        let retry = batch(1_000_000_007, 4, 12, 2, 0, 0);
        assert_eq!(
            restored.check(&view(&retry), 100),
            Ok(Check::Duplicate {
                base_offset: last.base_offset(),
                last_offset: last.last_offset(),
                timestamp: last.max_timestamp()
            })
        );
        // last_update_ms was 56: expired at 5_056.
        assert_eq!(restored.check(&view(&retry), 5_056), Ok(Check::Append));
    }

    #[test]
    fn open_and_aborted_transactions_round_trip() {
        let mut txns = PartitionTxns::default();
        let mut open = batch(9, 0, 0, 2, 0, 1);
        open[21..23]
            .copy_from_slice(&kmirror_wire::batch::attributes(0, false, true).to_be_bytes());
        kmirror_wire::batch::update_crc(&mut open);
        let mut aborted = open.clone();
        aborted[43..51].copy_from_slice(&4i64.to_be_bytes());
        kmirror_wire::batch::update_crc(&mut aborted);
        txns.on_batch(&view(&aborted));
        let mut abort =
            crate::transactions::markers::marker_batch(4, 0, super::super::txn::ABORT, 0).to_vec();
        set_base_offset(&mut abort, 3);
        txns.on_batch(&view(&abort));
        set_base_offset(&mut open, 4);
        txns.on_batch(&view(&open));
        let state = PartitionProducerState::from_entries(HashMap::new(), 5_000, txns.clone());
        let (restored, _) = PartitionProducerState::restore(&state.snapshot(6), 5_000).unwrap();
        assert_eq!(restored.txns, txns);
        assert_eq!(restored.txns.last_stable_offset(6), 4);
        assert_eq!(restored.txns.aborted().len(), 1);
    }

    #[test]
    fn older_snapshots_are_read_without_what_they_lack() {
        let (state, _) = sample_state();
        for version in [1, 2] {
            let bytes = state.encode(28, version);
            let (restored, offset) = PartitionProducerState::restore(&bytes, 5_000).unwrap();
            assert_eq!((restored.len(), offset), (2, 28), "version {version}");
            assert!(restored.entries().all(|(_, e)| e.coordinator_epoch == -1));
        }
    }

    /// A marker sets the producer's coordinator epoch and last timestamp (Kafka:
    /// ProducerAppendInfo.appendEndTxnMarker); both are kept in the snapshot.
    #[test]
    fn a_markers_coordinator_epoch_and_timestamp_are_kept() {
        let mut state = PartitionProducerState::default();
        let mut data = batch(9, 0, 0, 2, 0, 1);
        set_base_offset(&mut data, 0);
        state.record(&view(&data), 1);
        let entry = |s: &PartitionProducerState| {
            let e = s.entry(9, 1).unwrap();
            (e.coordinator_epoch, e.last_timestamp)
        };
        let data_timestamp = view(&data).max_timestamp();
        assert_eq!(entry(&state), (-1, data_timestamp));
        let mut commit =
            crate::transactions::markers::marker_batch(9, 0, super::super::txn::COMMIT, 77)
                .to_vec();
        set_base_offset(&mut commit, 2);
        state.record(&view(&commit), 1);
        assert_eq!(entry(&state), (0, 77));
        let (restored, _) = PartitionProducerState::restore(&state.snapshot(3), 5_000).unwrap();
        assert_eq!(entry(&restored), (0, 77));
    }

    #[test]
    fn an_empty_state_round_trips() {
        let state = PartitionProducerState::default();
        let (restored, offset) = PartitionProducerState::restore(&state.snapshot(0), 1).unwrap();
        assert!(restored.is_empty());
        assert_eq!(offset, 0);
    }

    #[test]
    fn damaged_snapshots_are_rejected() {
        let (state, _) = sample_state();
        let bytes = state.snapshot(28);
        for i in [0, 5, 10, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                PartitionProducerState::restore(&bad, 1).is_err(),
                "byte {i}"
            );
        }
        assert!(matches!(
            PartitionProducerState::restore(&bytes[..bytes.len() - 3], 1),
            Err(SnapshotError::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            PartitionProducerState::restore(&bytes[..10], 1),
            Err(SnapshotError::Malformed(_))
        ));
        // A future version with a valid checksum.
        let mut v4 = bytes[..bytes.len() - 4].to_vec();
        v4[4..6].copy_from_slice(&4u16.to_be_bytes());
        let crc = crc32c::crc32c(&v4);
        v4.extend_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            PartitionProducerState::restore(&v4, 1),
            Err(SnapshotError::UnsupportedVersion(4))
        ));
    }

    #[test]
    fn snapshot_files_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000028.producers");
        assert!(PartitionProducerState::load_snapshot(&path, 1)
            .unwrap()
            .is_none());
        let (state, _) = sample_state();
        state.save_snapshot(&path, 28).unwrap();
        let (restored, offset) = PartitionProducerState::load_snapshot(&path, 5_000)
            .unwrap()
            .unwrap();
        assert_eq!(offset, 28);
        assert_eq!(restored.len(), state.len());
    }
}
