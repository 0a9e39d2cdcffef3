//! Rebuilding record batches into one batch a Kafka broker accepts from a client.
//!
//! Kafka takes exactly one batch per partition per Produce request, with base offset 0 and
//! consecutive inner offsets (`LogValidator`). Batches fetched from a source do not always
//! qualify: a compacted topic's batches have offset gaps or no records at all, a start
//! offset may fall inside a batch, and runs of small batches want to become one. This module
//! turns a run of source batches into one batch: records are decompressed, walked by their
//! varint framing ([`crate::walk`]), their offset and timestamp deltas re-encoded against
//! the new batch, and
//! everything else in each record (attributes, key, value, headers — duplicate header keys
//! included) copied byte for byte; the result is compressed again with the source codec.
//! Several batches merged are compressed at [`codec::Effort::Fast`]: a rebuild is the
//! daemon's costliest work per byte, merges happen where a partition's round trip (not the
//! bytes it moves) limits it, one compression context for many small batches still saves
//! bytes, and the records stay byte-equal whatever the compressor's setting. One batch
//! rebuilt alone (offset gaps, a start offset inside it, LogAppendTime) keeps Kafka's
//! level, so it comes out about its source's size: a batch near the target's
//! `max.message.bytes` is not pushed over it.
//!
//! A LogAppendTime batch shows every record with the batch's append time; rebuilt, each
//! record carries that time itself in a CreateTime batch, so a consumer of the rebuilt
//! batch sees the same timestamps on any target topic (a CreateTime topic would otherwise
//! replace the attribute and show the records' original create times, as Kafka does).
//!
//! It does not decode records into `kafka_protocol::records::Record` (that type collapses
//! duplicate header keys), and it never sets the producer fields: the caller stamps the
//! batch afterwards. The codecs are [`crate::codec`]'s.

use std::ops::Range;

use bytes::{BufMut, BytesMut};

use crate::batch::{update_crc, BatchError, BatchHeader, BatchView, HEADER_LEN};
use crate::codec;
use crate::walk::{write_record, RecordWalker};

/// Why a run of batches cannot be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("batch with base offset {base_offset}: {reason}")]
    Malformed { base_offset: i64, reason: String },
    #[error("batches with base offsets {first} and {other} differ in codec")]
    Mixed { first: i64, other: i64 },
}

/// One rebuilt batch: base offset 0, consecutive offsets, no producer id yet.
#[derive(Debug)]
pub struct Rebuilt {
    pub bytes: BytesMut,
    pub records: i32,
    /// The source offset of its first record.
    pub first_source_offset: i64,
    /// The source offsets of its records, in order, as `(first offset, count)` runs of
    /// consecutive offsets: one run unless the sources had gaps.
    pub source_runs: Vec<(i64, i64)>,
}

/// Whether a source batch can be forwarded as it is (after restamping): it has records and
/// its offsets are consecutive (`recordCount == lastOffsetDelta + 1`), as Kafka requires of
/// a client batch.
pub fn forwardable(b: &BatchView<'_>) -> bool {
    b.record_count() > 0 && b.last_offset_delta() == b.record_count() - 1
}

/// Rebuilds `batches` (same codec, in offset order) into one CreateTime batch, leaving out
/// records below `skip_below`. `None` when no record remains. A caller rebuilding often
/// keeps a [`Rebuilder`] instead, whose buffers are reused.
pub fn rebuild(batches: &[&[u8]], skip_below: i64) -> Result<Option<Rebuilt>, RebuildError> {
    let mut rebuilder = Rebuilder::default();
    Ok(rebuilder.rebuild(batches, skip_below)?.map(|r| Rebuilt {
        bytes: BytesMut::from(r.bytes),
        records: r.records,
        first_source_offset: r.first_source_offset,
        source_runs: r.source_runs,
    }))
}

/// One rebuilt batch in a [`Rebuilder`]'s buffer, valid until its next rebuild.
#[derive(Debug)]
pub struct RebuiltRef<'a> {
    pub bytes: &'a [u8],
    pub records: i32,
    pub first_source_offset: i64,
    pub source_runs: Vec<(i64, i64)>,
}

/// Rebuilds batches in buffers it keeps from one rebuild to the next: a merge of 1 MiB of
/// small batches decompresses to a few MiB, which would otherwise be allocated, grown and
/// faulted in anew every time. Buffers grown beyond [`KEEP_BYTES`] are not kept.
#[derive(Debug, Default)]
pub struct Rebuilder {
    /// One source batch's records, decompressed.
    decompressed: Vec<u8>,
    /// The rebuilt batch's records, uncompressed.
    records: Vec<u8>,
    /// The rebuilt batch.
    out: Vec<u8>,
}

/// A rebuild's result besides the bytes left in [`Rebuilder`]'s output buffer.
struct Done {
    records: i32,
    first_source_offset: i64,
    source_runs: Vec<(i64, i64)>,
}

/// The most a [`Rebuilder`] keeps per buffer between rebuilds.
pub const KEEP_BYTES: usize = 8 << 20;

impl Rebuilder {
    /// Rebuilds `batches` as [`rebuild`] does, into this rebuilder's buffer.
    pub fn rebuild(
        &mut self,
        batches: &[&[u8]],
        skip_below: i64,
    ) -> Result<Option<RebuiltRef<'_>>, RebuildError> {
        self.rebuild_checking(batches, skip_below..i64::MAX, true)
    }

    /// Rebuilds `batches` whose CRCs the caller has verified (a batch is read here, and the
    /// rebuilt one gets a fresh CRC: a corrupt source batch must be caught before this).
    pub fn rebuild_verified(
        &mut self,
        batches: &[&[u8]],
        skip_below: i64,
    ) -> Result<Option<RebuiltRef<'_>>, RebuildError> {
        self.rebuild_checking(batches, skip_below..i64::MAX, false)
    }

    /// Splits one batch with consecutive offsets into `parts` batches (at most one per
    /// record) of about as many records each, at Kafka's compression level, records
    /// byte-equal: what Kafka's producer does with a batch the broker refused as too large
    /// (`Sender.completeBatch`, MESSAGE_TOO_LARGE). One part is the batch rebuilt.
    pub fn split(&mut self, batch: &[u8], parts: usize) -> Result<Vec<Rebuilt>, RebuildError> {
        let b = BatchView::parse(batch, 0)?;
        if !forwardable(&b) {
            return Err(malformed(
                &b,
                "offset gaps: only a batch Kafka takes can be split",
            ));
        }
        let (base, count) = (b.base_offset(), i64::from(b.record_count()));
        let parts = (parts.max(1) as i64).min(count);
        let mut out = Vec::with_capacity(parts as usize);
        for i in 0..parts {
            let keep = base + count * i / parts..base + count * (i + 1) / parts;
            let r = self
                .rebuild_checking(&[batch], keep, true)?
                .ok_or_else(|| malformed(&b, "no records in a part"))?;
            out.push(Rebuilt {
                bytes: BytesMut::from(r.bytes),
                records: r.records,
                first_source_offset: r.first_source_offset,
                source_runs: r.source_runs,
            });
        }
        Ok(out)
    }

    /// Rebuilds the records of `batches` whose offsets lie in `keep`.
    fn rebuild_checking(
        &mut self,
        batches: &[&[u8]],
        keep: Range<i64>,
        verify_crc: bool,
    ) -> Result<Option<RebuiltRef<'_>>, RebuildError> {
        if self.out.capacity() > KEEP_BYTES {
            self.out = Vec::new();
        }
        let result = self.rebuild_into(batches, keep, verify_crc);
        for buffer in [&mut self.decompressed, &mut self.records] {
            if buffer.capacity() > KEEP_BYTES {
                *buffer = Vec::new();
            }
        }
        let Some(done) = result? else {
            return Ok(None);
        };
        Ok(Some(RebuiltRef {
            bytes: &self.out,
            records: done.records,
            first_source_offset: done.first_source_offset,
            source_runs: done.source_runs,
        }))
    }

    /// Leaves the rebuilt batch in `self.out` and returns what else describes it.
    fn rebuild_into(
        &mut self,
        batches: &[&[u8]],
        keep: Range<i64>,
        verify_crc: bool,
    ) -> Result<Option<Done>, RebuildError> {
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        let first = BatchView::parse(first, 0)?;
        let codec_id = first.compression();
        let Self {
            decompressed,
            records,
            out,
        } = self;
        records.clear();
        let mut count: i32 = 0;
        let mut base_timestamp = 0i64;
        let mut max_timestamp = i64::MIN;
        let mut first_source_offset = -1;
        let mut source_runs: Vec<(i64, i64)> = Vec::new();
        for raw in batches {
            let b = BatchView::parse(raw, 0)?;
            // The records are read, and the new batch gets a fresh CRC: a corrupt source batch
            // must be caught here or never.
            if verify_crc {
                b.verify_crc()?;
            }
            if b.compression() != codec_id {
                return Err(RebuildError::Mixed {
                    first: first.base_offset(),
                    other: b.base_offset(),
                });
            }
            let body: &[u8] = if b.compression() == codec::NONE {
                b.records_bytes()
            } else {
                codec::decompress_into(b.compression(), b.records_bytes(), decompressed)
                    .map_err(|e| malformed(&b, &e.to_string()))?;
                decompressed
            };
            for r in RecordWalker::new(body, b.record_count()) {
                let r = r.map_err(|e| malformed(&b, &e.to_string()))?;
                let offset = b.base_offset() + i64::from(r.offset_delta);
                if !keep.contains(&offset) {
                    continue;
                }
                // Kafka: DefaultRecordBatch — records of a LogAppendTime batch take its time.
                let timestamp = if b.is_log_append_time() {
                    b.max_timestamp()
                } else {
                    b.base_timestamp().wrapping_add(r.timestamp_delta)
                };
                if count == 0 {
                    base_timestamp = timestamp;
                    first_source_offset = offset;
                }
                match source_runs.last_mut() {
                    Some((start, n)) if *start + *n == offset => *n += 1,
                    _ => source_runs.push((offset, 1)),
                }
                max_timestamp = max_timestamp.max(timestamp);
                write_record(records, &r, timestamp.wrapping_sub(base_timestamp), count);
                count += 1;
            }
        }
        if count == 0 {
            return Ok(None);
        }
        // The records go right after room for the header, compressed in place.
        out.clear();
        out.put_bytes(0, HEADER_LEN);
        // A merge makes one batch of many small ones: fast, it still comes out smaller than
        // its sources. One batch rebuilt alone may be near the target's max.message.bytes,
        // so it keeps Kafka's level and its size.
        let effort = if batches.len() > 1 {
            codec::Effort::Fast
        } else {
            codec::Effort::Kafka
        };
        compress(codec_id, records, effort, out).map_err(|reason| malformed(&first, &reason))?;
        let mut header = Vec::with_capacity(HEADER_LEN);
        BatchHeader {
            base_offset: 0, // Kafka wants 0 from clients
            partition_leader_epoch: -1,
            attributes: codec_id, // CreateTime
            last_offset_delta: count - 1,
            base_timestamp,
            max_timestamp,
            producer_id: -1, // producer id, epoch and sequence: stamped by the caller
            producer_epoch: -1,
            base_sequence: -1,
            record_count: count,
        }
        .write(&mut header, out.len() - HEADER_LEN);
        out[..HEADER_LEN].copy_from_slice(&header);
        update_crc(out);
        Ok(Some(Done {
            records: count,
            first_source_offset,
            source_runs,
        }))
    }
}

fn malformed(b: &BatchView<'_>, reason: &str) -> RebuildError {
    RebuildError::Malformed {
        base_offset: b.base_offset(),
        reason: reason.to_string(),
    }
}

/// Appends the records section to `out`, compressed with `codec_id`.
fn compress(
    codec_id: i16,
    records: &[u8],
    effort: codec::Effort,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    codec::compress_into(codec_id, records, effort, out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batches;
    use bytes::Bytes;
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};

    fn records(offsets: &[i64]) -> Vec<Record> {
        offsets
            .iter()
            .map(|&o| {
                crate::records::record(
                    o,
                    1_000 + o * 10,
                    Some(Bytes::from(format!("k{o}"))),
                    Some(Bytes::from(vec![b'v'; 100])),
                )
            })
            .collect()
    }

    fn encode(offsets: &[i64], c: Compression) -> Bytes {
        crate::records::encode(&records(offsets), c).unwrap()
    }

    /// A batch as a compacting source leaves it: `keep` of `base..base+span` kept, and the
    /// header's lastOffsetDelta still `span - 1`.
    fn compacted(base: i64, span: i32, keep: &[i64], c: Compression) -> Vec<u8> {
        let mut raw = encode(keep, c).to_vec();
        raw[0..8].copy_from_slice(&base.to_be_bytes());
        raw[23..27].copy_from_slice(&(span - 1).to_be_bytes());
        let crc = crc32c::crc32c(&raw[21..]);
        raw[17..21].copy_from_slice(&crc.to_be_bytes());
        raw
    }

    fn decode(b: &[u8]) -> Vec<Record> {
        let mut bytes = Bytes::copy_from_slice(b);
        RecordBatchDecoder::decode(&mut bytes).unwrap().records
    }

    #[test]
    fn merges_small_batches_into_one_valid_batch_for_every_codec() {
        for c in crate::records::EVERY_COMPRESSION {
            let a = encode(&[10, 11], c);
            let b = encode(&[12, 13, 14], c);
            let out = rebuild(&[&a, &b], 0).unwrap().unwrap();
            assert_eq!(out.records, 5);
            assert_eq!(out.first_source_offset, 10);
            let views: Vec<_> = Batches::new(&out.bytes).collect();
            assert_eq!(views.len(), 1, "{c:?}");
            let v = views[0].as_ref().unwrap();
            v.validate_for_append().unwrap();
            assert_eq!(v.base_offset(), 0);
            assert_eq!(v.compression(), a[22] as i16 & 7);
            let got = decode(&out.bytes);
            let want = records(&[10, 11, 12, 13, 14]);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.offset, i as i64);
                assert_eq!(
                    (&g.key, &g.value, g.timestamp),
                    (&w.key, &w.value, w.timestamp)
                );
            }
        }
    }

    #[test]
    fn one_batch_rebuilt_alone_keeps_kafkas_level_and_its_size() {
        for c in crate::records::EVERY_COMPRESSION {
            let a = encode(&[10, 11, 12, 13], c);
            let out = rebuild(&[&a], 0).unwrap().unwrap();
            assert_eq!(out.bytes.len(), a.len(), "{c:?}");
        }
    }

    #[test]
    fn closes_compaction_gaps_and_drops_empty_batches() {
        let gap = compacted(100, 10, &[100, 104, 109], Compression::Lz4);
        assert!(!forwardable(&BatchView::parse(&gap, 0).unwrap()));
        let next = compacted(110, 3, &[110, 111, 112], Compression::Lz4);
        let out = rebuild(&[&gap, &next], 0).unwrap().unwrap();
        assert_eq!(out.records, 6);
        assert_eq!(out.source_runs, [(100, 1), (104, 1), (109, 4)]);
        let v = BatchView::parse(&out.bytes, 0).unwrap();
        v.validate_for_append().unwrap();
        let got = decode(&out.bytes);
        assert_eq!(
            got.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
            vec![2_000, 2_040, 2_090, 2_100, 2_110, 2_120]
        );
        // The cleaner keeps a batch whose records are all gone (count 0) for producer state.
        let mut empty = compacted(200, 5, &[200], Compression::None);
        empty.truncate(HEADER_LEN);
        empty[57..61].copy_from_slice(&0i32.to_be_bytes());
        let len = (empty.len() - 12) as i32;
        empty[8..12].copy_from_slice(&len.to_be_bytes());
        update_crc(&mut empty);
        assert!(rebuild(&[&empty], 0).unwrap().is_none());
    }

    #[test]
    fn a_corrupt_source_batch_is_refused_not_given_a_fresh_crc() {
        let a = encode(&[10, 11], Compression::None);
        let mut b = encode(&[12, 13], Compression::None).to_vec();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            rebuild(&[&a, &b], 0),
            Err(RebuildError::Batch(BatchError::CrcMismatch {
                base_offset: 12,
                ..
            }))
        ));
    }

    #[test]
    fn a_reused_rebuilder_gives_what_a_fresh_rebuild_gives() {
        let mut rebuilder = Rebuilder::default();
        let runs = [
            vec![
                encode(&[0, 1, 2], Compression::Lz4),
                encode(&[3, 4], Compression::Lz4),
            ],
            vec![encode(&[5], Compression::Gzip)],
            vec![encode(&[6, 7, 8, 9], Compression::Lz4)],
        ];
        for run in &runs {
            let raws: Vec<&[u8]> = run.iter().map(|b| &b[..]).collect();
            let fresh = rebuild(&raws, 0).unwrap().unwrap();
            let reused = rebuilder.rebuild(&raws, 0).unwrap().unwrap();
            assert_eq!(reused.bytes, &fresh.bytes[..]);
            assert_eq!(reused.records, fresh.records);
            assert_eq!(reused.source_runs, fresh.source_runs);
        }
    }

    #[test]
    fn only_the_checking_rebuild_verifies_crcs() {
        let mut b = encode(&[12, 13], Compression::None).to_vec();
        b[45] ^= 0x01; // in the producer id: covered by the CRC, not read by a rebuild
        let mut rebuilder = Rebuilder::default();
        assert!(rebuilder.rebuild(&[&b], 0).is_err());
        // The caller vouches for the CRC (it verified it), so it is not computed twice.
        assert!(rebuilder.rebuild_verified(&[&b], 0).is_ok());
    }

    #[test]
    fn a_batch_splits_into_two_halves_with_its_records_byte_equal() {
        for c in crate::records::EVERY_COMPRESSION {
            let whole = encode(&[0, 1, 2, 3, 4], c);
            let mut halves = Rebuilder::default().split(&whole, 2).unwrap().into_iter();
            let (first, second) = (halves.next().unwrap(), halves.next().unwrap());
            assert_eq!((first.records, second.records), (2, 3), "{c:?}");
            assert_eq!(
                (first.first_source_offset, second.first_source_offset),
                (0, 2)
            );
            assert_eq!(
                (&first.source_runs[..], &second.source_runs[..]),
                (&[(0, 2)][..], &[(2, 3)][..])
            );
            for half in [&first, &second] {
                let v = BatchView::parse(&half.bytes, 0).unwrap();
                v.validate_for_append().unwrap();
                assert_eq!(
                    v.compression(),
                    BatchView::parse(&whole, 0).unwrap().compression()
                );
            }
            // Offsets run on across the halves; sequences are the caller's to stamp.
            let plain = |records: Vec<Record>, from: i64| -> Vec<Record> {
                records
                    .into_iter()
                    .map(|mut r| {
                        r.offset += from;
                        r.sequence = -1;
                        r
                    })
                    .collect()
            };
            let mut rejoined = plain(decode(&first.bytes), 0);
            rejoined.extend(plain(decode(&second.bytes), 2));
            assert_eq!(rejoined, plain(decode(&whole), 0), "{c:?}");
        }
        let one = Rebuilder::default()
            .split(&encode(&[7], Compression::None), 2)
            .unwrap();
        assert_eq!(one.len(), 1, "a single record stays one batch");
        let parts = Rebuilder::default()
            .split(&encode(&[10, 11, 12, 13, 14, 15, 16], Compression::Lz4), 3)
            .unwrap();
        let shape: Vec<_> = parts
            .iter()
            .map(|p| (p.first_source_offset, p.records))
            .collect();
        assert_eq!(shape, [(10, 2), (12, 2), (14, 3)]);
        let gaps = compacted(0, 5, &[0, 3], Compression::None);
        assert!(Rebuilder::default().split(&gaps, 2).is_err());
    }

    #[test]
    fn leaves_out_records_below_the_start_offset() {
        let a = encode(&[0, 1, 2, 3], Compression::Snappy);
        let out = rebuild(&[&a], 2).unwrap().unwrap();
        assert_eq!(out.records, 2);
        assert_eq!(out.first_source_offset, 2);
        let got = decode(&out.bytes);
        assert_eq!(got[0].key.as_deref(), Some(&b"k2"[..]));
    }

    #[test]
    fn keeps_duplicate_header_keys_byte_for_byte() {
        // Two headers with the same key, which kafka-protocol's Record cannot represent.
        let mut body = Vec::new();
        crate::walk::encode_record(
            &mut body,
            0,
            0,
            Some(b"k"),
            b"v",
            &[(b"h", b"1"), (b"h", b"2")],
        );
        let mut raw = encode(&[0], Compression::None).to_vec();
        raw.truncate(HEADER_LEN);
        raw.extend_from_slice(&body);
        let len = (raw.len() - 12) as i32;
        raw[8..12].copy_from_slice(&len.to_be_bytes());
        update_crc(&mut raw);
        let out = rebuild(&[&raw], 0).unwrap().unwrap();
        assert_eq!(&out.bytes[HEADER_LEN..], &body[..]);
    }

    #[test]
    fn log_append_time_becomes_each_records_own_timestamp() {
        let mut raw = encode(&[0, 1, 2], Compression::Lz4).to_vec();
        let attrs = i16::from_be_bytes([raw[21], raw[22]]) | 0x08; // LogAppendTime
        raw[21..23].copy_from_slice(&attrs.to_be_bytes());
        raw[35..43].copy_from_slice(&9_999i64.to_be_bytes());
        let crc = crc32c::crc32c(&raw[21..]);
        raw[17..21].copy_from_slice(&crc.to_be_bytes());
        let out = rebuild(&[&raw], 0).unwrap().unwrap();
        let v = BatchView::parse(&out.bytes, 0).unwrap();
        assert!(!v.is_log_append_time());
        assert_eq!(v.max_timestamp(), 9_999);
        let got = decode(&out.bytes);
        assert!(got.iter().all(|r| r.timestamp == 9_999), "{got:?}");
    }

    #[test]
    fn a_delete_horizon_batch_is_rebuilt_plain_with_its_records_timestamps() {
        let mut tombstones = records(&[0, 1, 2]);
        for r in &mut tombstones {
            r.delete_horizon = true;
            r.value = None;
        }
        let mut raw = crate::records::encode(&tombstones, Compression::Lz4)
            .unwrap()
            .to_vec();
        // As Kafka's cleaner writes it: the base timestamp is the horizon, later than every
        // record, and each record's timestamp is the horizon plus its (negative) delta.
        raw[27..35].copy_from_slice(&86_400_000i64.to_be_bytes());
        crate::batch::update_crc(&mut raw);
        assert!(BatchView::parse(&raw, 0).unwrap().has_delete_horizon());
        let out = rebuild(&[&raw], 0).unwrap().unwrap();
        let v = BatchView::parse(&out.bytes, 0).unwrap();
        v.validate_for_append().unwrap();
        assert!(!v.has_delete_horizon());
        let (got, want) = (decode(&out.bytes), decode(&raw));
        assert_eq!(
            got.iter()
                .map(|r| (r.timestamp, r.value.is_none()))
                .collect::<Vec<_>>(),
            want.iter().map(|r| (r.timestamp, true)).collect::<Vec<_>>()
        );
        assert_eq!(v.base_timestamp(), want[0].timestamp);
    }

    #[test]
    fn refuses_mixed_codecs_and_garbage() {
        let a = encode(&[0], Compression::None);
        let b = encode(&[1], Compression::Lz4);
        assert!(matches!(
            rebuild(&[&a, &b], 0),
            Err(RebuildError::Mixed { .. })
        ));
        let mut bad = a.to_vec();
        bad[HEADER_LEN] = 0x7f; // a record length far past the end
        assert!(rebuild(&[&bad], 0).is_err());
    }
}
