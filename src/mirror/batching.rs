//! Shapes one partition's fetched batches into the batches its Produce requests carry.
//!
//! Kafka takes one batch per partition per Produce request, with base offset 0 and
//! consecutive offsets. A source batch that already qualifies and is large goes out as it
//! is — bytes untouched apart from the producer stamp. Small batches that pile up while
//! the partition's in-flight window is full are merged into one batch of up to
//! `batch_bytes`, so a topic written by low-latency producers still mirrors at full speed.
//! Merging recompresses, so it is spent only where it pays: on tiny batches always (their
//! per-request cost exceeds the recompression), on small ones only while the target's
//! round trip limits the partition ([`MERGE_ROUND_TRIP`]); on a near target they go as
//! they are.
//! Batches with offset gaps (compacted sources), empty batches left by compaction, and the
//! first batch when the start offset lies inside it are rebuilt the same way
//! ([`kmirror_wire::rebuild`]). LogAppendTime batches are always rebuilt, into CreateTime
//! batches whose records carry the source's append time: that is what a consumer of the
//! source saw, and a CreateTime target topic would otherwise show the original create
//! times instead (Kafka rewrites a client's LogAppendTime attribute).
//!
//! Nothing here sends or stamps; memory permits travel with the batches until acked.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use kmirror_wire::batch::{BatchError, BatchView};
use kmirror_wire::rebuild::{self, RebuildError, Rebuilder};

use super::memory::Share;

/// Batches of one source partition from one fetch, in order, and the memory they hold.
#[derive(Debug)]
pub struct Chunk {
    /// Whole v2 batches laid end to end, owned.
    pub data: BytesMut,
    pub records: i64,
    /// The source offset after the last batch of this chunk.
    pub next_source_offset: i64,
    /// The partition leader epoch of the last source batch below `next_source_offset`
    /// (forwarded or dropped).
    pub last_epoch: Option<i32>,
    pub permit: Option<Share>,
}

/// A source batch waiting to be sent; empty `data` only moves the position (control or
/// aborted batches were dropped there).
struct Unit {
    data: BytesMut,
    base_offset: i64,
    next_source_offset: i64,
    /// The partition leader epoch of the last source batch below `next_source_offset`.
    leader_epoch: Option<i32>,
    permit: Option<Arc<Share>>,
}

/// One batch to produce (or, with empty `data`, a position to reach once all before it
/// are acknowledged).
#[derive(Debug)]
pub struct Ready {
    pub data: BytesMut,
    pub records: i32,
    /// The source offset of its first batch (what an error about it names).
    pub first_source_offset: i64,
    pub next_source_offset: i64,
    /// The partition leader epoch of the last source batch below `next_source_offset`.
    pub leader_epoch: Option<i32>,
    /// The source offsets of its records as `(first offset, count)` runs (for the offset
    /// map) when they are not simply `records` offsets from `first_source_offset` on (a
    /// rebuilt batch); empty otherwise, so a forwarded batch allocates nothing for it.
    pub source_runs: Vec<(i64, i64)>,
    pub permits: Vec<Arc<Share>>,
}

/// Why a partition's batches cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
}

impl ShapeError {
    /// The base offset of the batch that failed its CRC, if that is the error.
    pub fn corrupt_offset(&self) -> Option<i64> {
        match self {
            ShapeError::Batch(BatchError::CrcMismatch { base_offset, .. })
            | ShapeError::Rebuild(RebuildError::Batch(BatchError::CrcMismatch {
                base_offset,
                ..
            })) => Some(*base_offset),
            _ => None,
        }
    }
}

/// The batches of one partition waiting for room in its in-flight window.
pub struct Batcher {
    waiting: VecDeque<Unit>,
    waiting_bytes: usize,
    batch_bytes: usize,
    /// Records below this offset are never produced (the partition's start position).
    skip_below: i64,
}

thread_local! {
    /// The buffers merges and rebuilds on this thread work in, kept between them: a few
    /// times `batch_bytes` per worker thread, not per partition.
    static REBUILDER: std::cell::RefCell<Rebuilder> = std::cell::RefCell::default();
}

const ATTR_CODEC: i16 = 0x07;

/// Batches below this are merged whenever they pile up: forwarding one costs a request
/// slot and per-batch work on both sides, more than decompressing and recompressing it.
pub const TINY_BATCH_BYTES: usize = 4 << 10;

/// The round trip from which a partition's window (five requests in flight) rather than
/// CPU limits it, and small batches are merged too: a WAN link, or acks=all on a
/// replicated cluster. Below it, requests turn over fast enough to carry small batches
/// as they are.
pub const MERGE_ROUND_TRIP: Duration = Duration::from_millis(3);

impl Batcher {
    pub fn new(batch_bytes: usize, skip_below: i64) -> Self {
        Self {
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            batch_bytes: batch_bytes.max(1),
            skip_below,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Bytes of batches waiting.
    pub fn waiting_bytes(&self) -> usize {
        self.waiting_bytes
    }

    /// Splits a chunk into its batches and queues them.
    pub fn push(&mut self, chunk: Chunk) -> Result<(), ShapeError> {
        let permit = chunk.permit.map(Arc::new);
        let mut data = chunk.data;
        let mut last_next = i64::MIN;
        while !data.is_empty() {
            let (size, base_offset, next, epoch) = {
                let b = BatchView::parse(&data, 0)?;
                let epoch = b.partition_leader_epoch();
                (b.size_bytes(), b.base_offset(), b.next_offset(), epoch)
            };
            let one = data.split_to(size);
            self.waiting_bytes += one.len();
            self.waiting.push_back(Unit {
                data: one,
                base_offset,
                next_source_offset: next,
                leader_epoch: (epoch >= 0).then_some(epoch),
                permit: permit.clone(),
            });
            last_next = next;
        }
        if chunk.next_source_offset > last_next {
            self.waiting.push_back(Unit {
                data: BytesMut::new(),
                base_offset: chunk.next_source_offset,
                next_source_offset: chunk.next_source_offset,
                leader_epoch: chunk.last_epoch,
                permit,
            });
        }
        Ok(())
    }

    /// The next batch to send: a large or lone batch as it is, a run of tiny ones merged
    /// (small ones too when `merge_small`, see [`MERGE_ROUND_TRIP`]), and anything Kafka would
    /// refuse from a client rebuilt.
    pub fn next_batch(&mut self, merge_small: bool) -> Result<Option<Ready>, ShapeError> {
        let Some(first) = self.waiting.pop_front() else {
            return Ok(None);
        };
        self.waiting_bytes -= first.data.len();
        if first.data.is_empty() {
            return Ok(Some(Ready {
                data: first.data,
                records: 0,
                first_source_offset: first.base_offset,
                next_source_offset: first.next_source_offset,
                leader_epoch: first.leader_epoch,
                source_runs: Vec::new(),
                permits: first.permit.into_iter().collect(),
            }));
        }
        let (kind, count, forwardable) = {
            let b = BatchView::parse(&first.data, 0)?;
            (
                b.attributes() & ATTR_CODEC,
                b.record_count(),
                rebuild::forwardable(&b) && !b.is_log_append_time(),
            )
        };
        let limit = if merge_small {
            self.batch_bytes / 8
        } else {
            TINY_BATCH_BYTES.min(self.batch_bytes / 8)
        };
        let small = |len: usize| len < limit;
        let mut run = vec![first];
        let verified = |data: &[u8]| {
            BatchView::parse(data, 0)
                .is_ok_and(|b| b.attributes() & ATTR_CODEC == kind && b.verify_crc().is_ok())
        };
        // Every batch of a merged run has its CRC verified here, the first one once a
        // second joins it.
        let mut first_verified = false;
        if small(run[0].data.len()) {
            let mut total = run[0].data.len();
            while let Some(next) = self.waiting.front() {
                // A corrupt batch ends the run: those before it go out, and it comes first
                // next time, where its error names it.
                let fits = !next.data.is_empty()
                    && small(next.data.len())
                    && total + next.data.len() <= self.batch_bytes
                    && verified(&next.data);
                if fits && !first_verified {
                    first_verified = verified(&run[0].data);
                }
                if !fits || !first_verified {
                    break;
                }
                let next = self.waiting.pop_front().expect("front exists");
                self.waiting_bytes -= next.data.len();
                total += next.data.len();
                run.push(next);
            }
        }
        let next_source_offset = run.last().expect("non-empty").next_source_offset;
        let leader_epoch = run.last().expect("non-empty").leader_epoch;
        let first_source_offset = run[0].base_offset;
        let needs_rebuild = run.len() > 1 || !forwardable || run[0].base_offset < self.skip_below;
        let mut permits: Vec<Arc<Share>> = Vec::new();
        for u in &run {
            if let Some(p) = &u.permit {
                if !permits.last().is_some_and(|l| Arc::ptr_eq(l, p)) {
                    permits.push(p.clone());
                }
            }
        }
        if !needs_rebuild {
            let u = run.pop().expect("one unit");
            return Ok(Some(Ready {
                data: u.data,
                records: count,
                first_source_offset,
                next_source_offset,
                leader_epoch,
                source_runs: Vec::new(),
                permits,
            }));
        }
        // A rebuilt batch made of the last batches of its fetched buffer gets a buffer of
        // its own size, that buffer is freed, and the charge shrinks to match: a merge
        // usually saves a quarter or more (one compression context instead of many), which
        // goes back to fetching now instead of at the ack. Otherwise it is written in place.
        let own_buffer = permits.len() == 1
            && Arc::strong_count(&permits[0])
                == 1 + run
                    .iter()
                    .filter(|u| {
                        u.permit
                            .as_ref()
                            .is_some_and(|p| Arc::ptr_eq(p, &permits[0]))
                    })
                    .count();
        let skip_below = self.skip_below;
        let (data, records, source_runs) = REBUILDER.with_borrow_mut(|rebuilder| {
            let raws: Vec<&[u8]> = run.iter().map(|u| &u.data[..]).collect();
            let rebuilt = if raws.len() > 1 {
                rebuilder.rebuild_verified(&raws, skip_below)?
            } else {
                rebuilder.rebuild(&raws, skip_below)?
            };
            drop(raws);
            Ok::<_, ShapeError>(match rebuilt {
                Some(r) if own_buffer => (BytesMut::from(r.bytes), r.records, r.source_runs),
                Some(r) => (in_place(run, r.bytes), r.records, r.source_runs),
                None => (BytesMut::new(), 0, Vec::new()),
            })
        })?;
        if own_buffer {
            if let Some(share) = Arc::get_mut(&mut permits[0]) {
                share.shrink_to(data.len());
            }
        }
        Ok(Some(Ready {
            data,
            records,
            first_source_offset,
            next_source_offset,
            leader_epoch,
            source_runs,
            permits,
        }))
    }
}

/// Puts a rebuilt batch where its source batches were, when they lie end to end in one
/// buffer (a fetched chunk) and it fits, which recompressing several batches into one
/// nearly always does: it then occupies memory already charged to the flow's budget.
/// Otherwise it is copied into a buffer of its own.
fn in_place(run: Vec<Unit>, rebuilt: &[u8]) -> BytesMut {
    let mut parts = run.into_iter().map(|u| u.data);
    let Some(mut region) = parts.next() else {
        return BytesMut::from(rebuilt);
    };
    for part in parts {
        if region.as_ptr().wrapping_add(region.len()) != part.as_ptr() {
            return BytesMut::from(rebuilt);
        }
        // Contiguous pieces of one buffer: joined without a copy.
        region.unsplit(part);
    }
    if rebuilt.len() > region.len() {
        return BytesMut::from(rebuilt);
    }
    region[..rebuilt.len()].copy_from_slice(rebuilt);
    region.truncate(rebuilt.len());
    region
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::memory::{Held, Memory};
    use bytes::Bytes;
    use kafka_protocol::records::Compression;

    fn batch(base: i64, count: i64, value_bytes: usize) -> Bytes {
        let records: Vec<_> = (0..count)
            .map(|i| {
                kmirror_wire::records::record(
                    base + i,
                    1_000,
                    None,
                    Some(Bytes::from(vec![b'x'; value_bytes])),
                )
            })
            .collect();
        kmirror_wire::records::encode(&records, Compression::Lz4).unwrap()
    }

    fn chunk(batches: &[Bytes], next: i64) -> Chunk {
        let mut data = BytesMut::new();
        for b in batches {
            data.extend_from_slice(b);
        }
        Chunk {
            records: 0,
            data,
            next_source_offset: next,
            last_epoch: None,
            permit: None,
        }
    }

    fn base_offset(b: &[u8]) -> i64 {
        BatchView::parse(b, 0).unwrap().base_offset()
    }

    #[test]
    fn a_large_batch_goes_out_as_it_is() {
        let big = batch(0, 100, 20_000);
        let mut q = Batcher::new(1 << 20, 0);
        q.push(chunk(std::slice::from_ref(&big), 100)).unwrap();
        let r = q.next_batch(true).unwrap().unwrap();
        assert_eq!(&r.data[..], &big[..], "forwarded byte for byte");
        assert_eq!((r.records, r.next_source_offset), (100, 100));
        assert!(q.next_batch(true).unwrap().is_none());
    }

    #[test]
    fn small_batches_waiting_together_become_one() {
        let small: Vec<Bytes> = (0..10).map(|i| batch(i * 3, 3, 50)).collect();
        let mut q = Batcher::new(1 << 20, 0);
        q.push(chunk(&small, 30)).unwrap();
        let r = q.next_batch(true).unwrap().unwrap();
        assert_eq!((r.records, r.next_source_offset), (30, 30));
        let v = BatchView::parse(&r.data, 0).unwrap();
        v.validate_for_append().unwrap();
        assert_eq!(v.size_bytes(), r.data.len(), "exactly one batch");
        assert!(q.is_empty());
    }

    /// A chunk of `batches` charged to `memory` as a fetch would charge it.
    fn charged_chunk(batches: &[Bytes], next: i64, memory: &Memory, held: &Held) -> Chunk {
        let mut c = chunk(batches, next);
        let mut reservation = memory.try_reserve_fetch(c.data.len()).unwrap();
        c.permit = reservation.take(c.data.len(), held, memory);
        c
    }

    #[test]
    fn a_merged_batch_shares_its_fetched_buffer_while_batches_of_it_still_wait() {
        let small: Vec<Bytes> = (0..10).map(|i| batch(i * 3, 3, 50)).collect();
        let (memory, held) = (Memory::new(1 << 20), Held::default());
        let c = charged_chunk(&small, 30, &memory, &held);
        let (buffer, charged) = (c.data.as_ptr_range(), c.data.len());
        // Room for nine of the ten: the last keeps the buffer allocated.
        let mut q = Batcher::new(small[0].len() * 9, 0);
        q.push(c).unwrap();
        let r = q.next_batch(true).unwrap().unwrap();
        assert!(
            buffer.contains(&r.data.as_ptr()),
            "the merged batch was not written into the fetched buffer"
        );
        BatchView::parse(&r.data, 0).unwrap().verify_crc().unwrap();
        assert_eq!(r.records, 27);
        assert_eq!(held.bytes(), charged, "the whole buffer is still allocated");
    }

    #[test]
    fn a_merged_batch_of_a_whole_fetched_buffer_gets_its_own_and_the_charge_shrinks() {
        // Values that compress well across batches, as records of one topic do.
        let small: Vec<Bytes> = (0..40).map(|i| batch(i * 3, 3, 500)).collect();
        let (memory, held) = (Memory::new(1 << 20), Held::default());
        let c = charged_chunk(&small, 120, &memory, &held);
        let (buffer, charged) = (c.data.as_ptr_range(), c.data.len());
        let mut q = Batcher::new(1 << 20, 0);
        q.push(c).unwrap();
        let r = q.next_batch(true).unwrap().unwrap();
        assert!(!buffer.contains(&r.data.as_ptr()), "a buffer of its own");
        assert_eq!(r.records, 120);
        assert!(r.data.len() < charged / 2, "{} of {charged}", r.data.len());
        assert_eq!(held.bytes(), r.data.len(), "charged only for what it holds");
        assert_eq!(
            memory.fetch_available(),
            memory.fetch_pool_bytes() - r.data.len(),
            "the rest went back to the fetch pool before any ack"
        );
        drop(r);
        assert_eq!(held.bytes(), 0);
    }

    #[test]
    fn merged_batches_stay_within_batch_bytes() {
        let small: Vec<Bytes> = (0..40).map(|i| batch(i * 10, 10, 1_000)).collect();
        let limit = 64 * 1024;
        let mut q = Batcher::new(limit, 0);
        q.push(chunk(&small, 400)).unwrap();
        let mut next = 0;
        let mut records = 0;
        while let Some(r) = q.next_batch(true).unwrap() {
            assert!(r.data.len() <= limit);
            records += r.records;
            assert!(r.next_source_offset > next);
            next = r.next_source_offset;
        }
        assert_eq!((records, next), (400, 400));
    }

    #[test]
    fn a_start_offset_inside_the_first_batch_leaves_out_the_records_before_it() {
        let mut q = Batcher::new(1 << 20, 7);
        q.push(chunk(&[batch(5, 5, 10_000)], 10)).unwrap();
        let r = q.next_batch(true).unwrap().unwrap();
        assert_eq!((r.records, r.next_source_offset), (3, 10));
        assert_eq!(base_offset(&r.data), 0);
    }

    #[test]
    fn dropped_control_batches_still_move_the_position() {
        let mut q = Batcher::new(1 << 20, 0);
        q.push(chunk(&[batch(0, 2, 10_000)], 5)).unwrap();
        assert_eq!(q.next_batch(true).unwrap().unwrap().next_source_offset, 2);
        let marker = q.next_batch(true).unwrap().unwrap();
        assert!(marker.data.is_empty());
        assert_eq!(marker.next_source_offset, 5);
    }

    #[test]
    fn each_batch_to_produce_carries_the_leader_epoch_of_its_last_source_batch() {
        let with_epoch = |b: Bytes, epoch: i32| {
            let mut b = b.to_vec();
            kmirror_wire::batch::set_partition_leader_epoch(&mut b, epoch);
            kmirror_wire::batch::update_crc(&mut b);
            Bytes::from(b)
        };
        let mut q = Batcher::new(1 << 20, 0);
        let small = [
            with_epoch(batch(0, 2, 10), 3),
            with_epoch(batch(2, 2, 10), 4),
        ];
        q.push(chunk(&small, 4)).unwrap();
        let mut tail = chunk(&[with_epoch(batch(4, 2, 10), 6)], 9);
        // Dropped control batches after it, written at epoch 7.
        tail.last_epoch = Some(7);
        q.push(tail).unwrap();
        let merged = q.next_batch(true).unwrap().unwrap();
        assert_eq!(
            (merged.next_source_offset, merged.leader_epoch),
            (6, Some(6))
        );
        let marker = q.next_batch(true).unwrap().unwrap();
        assert_eq!(
            (marker.next_source_offset, marker.leader_epoch),
            (9, Some(7))
        );
        q.push(chunk(&[with_epoch(batch(9, 2, 10), 8)], 11))
            .unwrap();
        let lone = q.next_batch(true).unwrap().unwrap();
        assert_eq!((lone.next_source_offset, lone.leader_epoch), (11, Some(8)));
    }
}
